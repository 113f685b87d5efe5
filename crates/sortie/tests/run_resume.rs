//! `resume_failed` against a real host: only the jobs whose last job log row failed run again.

mod run_support;

use run_support::*;
use sortie::runner::run::{Resume, RunOptions, JOBLOG_HEADER};
use sortie::{CancellationToken, Outcome};
use sortie_testkit::Sshd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_failed_reruns_exactly_the_failed_jobs() {
    require_sshd!();
    let sshd = Sshd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("joblog");
    let fixed = dir.path().join("fixed");
    let ran = dir.path().join("ran");
    // Jobs whose value is not 0 fail until the `fixed` file exists.
    let template = format!(
        "echo {{seq}} >> {ran}; test -e {fixed} || exit {{}}",
        ran = ran.display(),
        fixed = fixed.display()
    );
    let options = RunOptions {
        slots: 3,
        joblog: Some(log.clone()),
        ..Default::default()
    };
    let jobs = ["0", "1", "0", "3", "0"];
    let (events, _) = run_all(
        fleet(&sshd, "r", 60, 2),
        values(&jobs),
        &template,
        options.clone(),
        CancellationToken::new(),
        |_| {},
    )
    .await;
    let outcomes: Vec<Outcome> = finished(&events).into_iter().map(|f| f.2).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Ok,
            Outcome::Exited { code: 1 },
            Outcome::Ok,
            Outcome::Exited { code: 3 },
            Outcome::Ok
        ]
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().next(), Some(JOBLOG_HEADER));
    assert_eq!(text.lines().count(), 6);

    std::fs::write(&fixed, "").unwrap();
    std::fs::remove_file(&ran).unwrap();
    let (events, result) = run_all(
        fleet(&sshd, "r", 60, 2),
        values(&jobs),
        &template,
        RunOptions {
            resume: Resume::Failed,
            ..options
        },
        CancellationToken::new(),
        |_| {},
    )
    .await;
    let rerun: Vec<(u64, Outcome)> = finished(&events).into_iter().map(|f| (f.0, f.2)).collect();
    assert_eq!(
        rerun,
        [(2, Outcome::Ok), (4, Outcome::Ok)],
        "{:?}",
        events
            .iter()
            .filter(|e| matches!(e, sortie::Event::HostFailed { .. }))
            .collect::<Vec<_>>()
    );
    assert_eq!(result.counts.done, 2);
    let mut remote: Vec<String> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    remote.sort();
    assert_eq!(remote, ["2", "4"], "exactly the failed jobs ran again");
    // The log gained the two rows; the last row of every job now succeeded.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 8);
    let last_rows: Vec<(String, String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].to_owned(), c[6].to_owned(), c[7].to_owned())
        })
        .collect();
    let mut appended = last_rows[5..].to_vec();
    appended.sort();
    assert_eq!(
        appended,
        [
            ("2".into(), "0".into(), "0".into()),
            ("4".into(), "0".into(), "0".into())
        ]
    );
}
