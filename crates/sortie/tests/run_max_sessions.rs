//! `run` against OpenSSH's default `MaxSessions 10` with more slots than that: the runner
//! opens more connections to the host instead of failing or repeating jobs.

mod run_support;

use run_support::*;
use sortie::runner::run::RunOptions;
use sortie::{CancellationToken, Event, Outcome};
use sortie_testkit::Sshd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_slots_on_a_default_max_sessions_server_run_every_job_once() {
    require_sshd!();
    // Default builder: no MaxSessions line, so OpenSSH's 10 applies.
    let sshd = Sshd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seqs");
    let template = format!(
        "{}; echo {{}} >> {}",
        // every job holds until its host runs all 32 at once: the slots are really used
        counted_until(dir.path(), 32, 30),
        out.display()
    );
    let (events, result) = run_all(
        fleet(&sshd, "m", 40, 2),
        range(64),
        &template,
        RunOptions {
            slots: 32,
            ..Default::default()
        },
        CancellationToken::new(),
        {
            let t0 = std::time::Instant::now();
            move |e: &Event| {
                if std::env::var_os("RUN_TRACE").is_some()
                    && !matches!(e, Event::Progress { .. } | Event::Output { .. })
                {
                    eprintln!("{:>8.3} {}", t0.elapsed().as_secs_f64(), e.to_json_line());
                }
            }
        },
    )
    .await;
    let finished = finished(&events);
    let bad: Vec<_> = finished.iter().filter(|f| f.2 != Outcome::Ok).collect();
    assert!(bad.is_empty(), "{bad:?}\n{}", sshd.log());
    assert_eq!(result.counts.done, 64);
    let mut lines: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    lines.sort();
    assert_eq!(lines, (1..=64).collect::<Vec<_>>(), "each job exactly once");
    // 32 at once on each host: every slot used, more channels than one connection allows,
    // never more than the slots.
    let maxes = max_counts(dir.path());
    assert_eq!(maxes.len(), 2, "{maxes:?}");
    assert!(maxes.iter().all(|(_, m)| *m == 32), "{maxes:?}");
    let connections = events
        .iter()
        .filter(|e| matches!(e, Event::HostConnected { host, .. } if host == "m1"))
        .count();
    assert!(
        connections >= 4,
        "32 jobs at once over MaxSessions 10 need 4+ connections, saw {connections}"
    );
}
