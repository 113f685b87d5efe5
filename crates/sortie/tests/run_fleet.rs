//! `run` over a real fleet (one fixture sshd, many loopback hosts): every job runs exactly
//! once and no host ever runs more jobs at once than its slots.

mod run_support;

use std::collections::BTreeMap;

use run_support::*;
use sortie::runner::run::RunOptions;
use sortie::{CancellationToken, Event, Outcome, Stream};
use sortie_testkit::Sshd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_jobs_over_twenty_hosts_run_exactly_once_within_slots() {
    require_sshd!();
    let _ = sortie::limits::raise_nofile();
    let sshd = Sshd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seqs");
    let slots = 3;
    let template = format!(
        "{}; echo {{seq}} >> {}; echo job {{}} on {{host}} slot {{slot}}",
        counted(dir.path(), "0.02"),
        out.display()
    );
    let (events, result) = run_all(
        fleet(&sshd, "h", 0, 20),
        range(1000),
        &template,
        RunOptions {
            slots,
            ..Default::default()
        },
        CancellationToken::new(),
        |_| {},
    )
    .await;
    let finished = finished(&events);
    let bad: Vec<_> = finished.iter().filter(|f| f.2 != Outcome::Ok).collect();
    assert!(bad.is_empty(), "{bad:?}\n{}", sshd.log());
    assert_eq!(finished.len(), 1000, "one JobFinished per job");
    assert_eq!(result.counts.done, 1000);

    // Remote side: each seq appended exactly once.
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for l in std::fs::read_to_string(&out).unwrap().lines() {
        *seen.entry(l.parse().unwrap()).or_default() += 1;
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n == 1), "repeated jobs");
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );

    // Slots: never exceeded on any host, and actually used.
    let maxes = max_counts(dir.path());
    assert_eq!(maxes.len(), 20, "{maxes:?}");
    assert!(maxes.iter().all(|(_, m)| *m <= slots), "{maxes:?}");
    assert!(maxes.iter().any(|(_, m)| *m > 1), "{maxes:?}");

    // Output lines carry the job's own host and a slot within range.
    for e in &events {
        // stderr may carry the remote login shell's own noise; the job prints on stdout.
        if let Event::Output {
            host,
            line,
            stream: Stream::Stdout,
            ..
        } = e
        {
            let line = String::from_utf8_lossy(line);
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts[3], host, "{line}");
            let slot: u32 = parts[5].parse().unwrap();
            assert!((1..=slots).contains(&slot), "{line}");
        }
    }
}
