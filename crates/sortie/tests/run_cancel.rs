//! Cancellation and timeouts of `run` jobs leave no remote process behind, and the job log
//! says how each job ended.

mod run_support;

use std::time::Duration;

use run_support::*;
use sortie::runner::run::RunOptions;
use sortie::{CancellationToken, Event, Outcome};
use sortie_testkit::{wait_for_no_remote_processes, Sshd};

/// A `sleep` whose command line carries `marker`, so leftover processes can be found.
fn marked_sleep(dir: &std::path::Path, marker: &str) -> String {
    let link = dir.join(format!("sleep-{marker}"));
    std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
    link.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_every_running_job_and_leaves_no_remote_process() {
    require_sshd!();
    let sshd = Sshd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sortie-run-cancel-{}", std::process::id());
    let sleep = marked_sleep(dir.path(), &marker);
    let log = dir.path().join("joblog");
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let mut started = 0;
    let (events, result) = run_all(
        fleet(&sshd, "c", 80, 2),
        range(20),
        &format!("{sleep} 300; echo {{}}"),
        RunOptions {
            slots: 3,
            joblog: Some(log.clone()),
            ..Default::default()
        },
        cancel,
        move |ev| {
            if matches!(ev, Event::JobStarted { .. }) {
                started += 1;
                if started == 6 {
                    c.cancel();
                }
            }
        },
    )
    .await;
    assert!(result.interrupted);
    let finished = finished(&events);
    assert_eq!(finished.len(), 6, "only started jobs finish: {finished:?}");
    assert!(
        finished.iter().all(|f| f.2 == Outcome::Interrupted),
        "{finished:?}"
    );
    let left = wait_for_no_remote_processes(&marker, Duration::from_secs(10));
    assert!(left.is_empty(), "left behind: {left:?}");
    // Six rows, each saying sortie ended the job with TERM.
    let text = std::fs::read_to_string(&log).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r[6] == "-1" && r[7] == "15"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_jobs_are_stopped_and_logged() {
    require_sshd!();
    let sshd = Sshd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sortie-run-timeout-{}", std::process::id());
    let sleep = marked_sleep(dir.path(), &marker);
    let results = dir.path().join("results");
    let (events, _) = run_all(
        fleet(&sshd, "t", 90, 1),
        values(&["0.1", "300"]),
        &format!("echo start; {sleep} {{}}"),
        RunOptions {
            slots: 2,
            timeout: Some(Duration::from_secs(2)),
            results: Some(results.clone()),
            ..Default::default()
        },
        CancellationToken::new(),
        |_| {},
    )
    .await;
    let outcomes: Vec<Outcome> = finished(&events).into_iter().map(|f| f.2).collect();
    assert_eq!(outcomes, [Outcome::Ok, Outcome::TimedOut]);
    let left = wait_for_no_remote_processes(&marker, Duration::from_secs(10));
    assert!(left.is_empty(), "left behind: {left:?}");
    let read = |p: &str| std::fs::read_to_string(results.join(p)).unwrap();
    assert_eq!(read("1/exit"), "0\n");
    assert_eq!(read("2/exit"), "143\n", "128 + TERM");
    assert_eq!(read("2/stdout"), "start\n");
}
