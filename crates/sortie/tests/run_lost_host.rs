//! A host whose sshd dies mid-run: its running jobs are reported lost, rerun elsewhere when
//! retries allow, and the host is not used again. Two fixture sshds on different ports make
//! the two hosts independent.

mod run_support;

use std::sync::{Arc, Mutex};

use run_support::*;
use sortie::runner::run::{RunOptions, Spread};
use sortie::{CancellationToken, ConnectFailure, Event, Outcome};
use sortie_testkit::Sshd;

async fn lose_host_mid_run(retries: u32) {
    let doomed = Arc::new(Mutex::new(Some(Sshd::start().unwrap())));
    let steady = Sshd::start().unwrap();
    let mut targets = fleet(doomed.lock().unwrap().as_ref().unwrap(), "doomed", 0, 1);
    targets.extend(fleet(&steady, "steady", 1, 1));
    let started_on_doomed = Arc::new(Mutex::new(0));
    let (d, s) = (doomed.clone(), started_on_doomed.clone());
    let (events, _result) = run_all(
        targets,
        range(6),
        "sleep 2; echo {}",
        RunOptions {
            slots: 2,
            retries,
            spread: Spread::RoundRobin,
            ..Default::default()
        },
        CancellationToken::new(),
        move |ev| {
            if let Event::JobStarted { host, .. } = ev {
                if host == "doomed1" {
                    let mut n = s.lock().unwrap();
                    *n += 1;
                    if *n == 2 {
                        // Both slots busy: the host dies.
                        if let Some(mut sshd) = d.lock().unwrap().take() {
                            sshd.kill();
                        }
                    }
                }
            }
        },
    )
    .await;
    let finished = finished(&events);
    assert_eq!(finished.len(), 6, "{finished:?}");
    let lost: Vec<u64> = finished
        .iter()
        .filter(|f| {
            matches!(
                f.2,
                Outcome::ConnectFailed {
                    failure: ConnectFailure::ConnectionLost,
                    ..
                }
            )
        })
        .map(|f| f.0)
        .collect();
    let host_failed = events
        .iter()
        .filter(|e| matches!(e, Event::HostFailed { host, failure: ConnectFailure::ConnectionLost, .. } if host == "doomed1"))
        .count();
    assert_eq!(host_failed, 1, "the loss is reported once");
    assert_eq!(
        *started_on_doomed.lock().unwrap(),
        2,
        "the lost host is not used again"
    );
    if retries == 0 {
        assert_eq!(lost.len(), 2, "{finished:?}");
        assert!(finished
            .iter()
            .filter(|f| !lost.contains(&f.0))
            .all(|f| f.2 == Outcome::Ok && f.1 == "steady1"));
    } else {
        assert!(lost.is_empty(), "{finished:?}");
        assert!(
            finished
                .iter()
                .all(|f| f.2 == Outcome::Ok && f.1 == "steady1"),
            "{finished:?}"
        );
        // The rerun jobs started twice (once on each host), the others once.
        let starts = events
            .iter()
            .filter(|e| matches!(e, Event::JobStarted { .. }))
            .count();
        assert_eq!(starts, 8);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_host_jobs_are_reported_lost_without_retries() {
    require_sshd!();
    lose_host_mid_run(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_host_jobs_run_elsewhere_with_retries() {
    require_sshd!();
    lose_host_mid_run(1).await;
}
