//! `sortie run` through the binary against a real sshd fixture: CSV columns, slots, job log,
//! resume-failed, and secrets kept out of every record.

use std::process::Command;

use sortie_testkit::Sshd;

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1");
    c
}

#[test]
fn csv_jobs_run_once_each_with_joblog_and_resume_failed() {
    if sortie_testkit::require_sshd().is_none() {
        sortie_testkit::skip(
            "csv_jobs_run_once_each_with_joblog_and_resume_failed",
            "OpenSSH sshd is not installed",
        );
        return;
    }
    let sshd = Sshd::builder().start().unwrap();
    let hosts = sortie_testkit::hosts(3);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("channels.csv");
    let mut rows = String::from("channel,sn\n");
    for i in 1..=12 {
        rows.push_str(&format!("ch{i},SN-{i:03}\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    let out_file = dir.path().join("done");
    let joblog = dir.path().join("jobs.tsv");
    let secret = "s3cr3t-value-xyz";
    // ch5 and ch7 fail on the first run.
    let template = format!(
        "echo {{channel}} {{sn}} $TOKEN_LEN >> {}; case {{channel}} in ch5|ch7) [ -e {}/fixed ] || exit 4;; esac",
        out_file.display(),
        dir.path().display()
    );
    let run = |extra: &[&str]| {
        let mut c = sortie();
        c.args(["run", "-F"])
            .arg(&cfg)
            .args(["-H", &hosts.join(","), "--slots", "2", "--csv"])
            .arg(&csv)
            .arg("--joblog")
            .arg(&joblog)
            .args([
                "--env",
                &format!("SECRET={secret}"),
                "--env",
                "TOKEN_LEN=16",
                "--json",
            ])
            .args(extra)
            .arg("--")
            .arg(&template);
        c.output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(done.lines().count(), 12, "every job once: {done}");
    for i in 1..=12 {
        assert_eq!(
            done.lines()
                .filter(|l| *l == format!("ch{i} SN-{i:03} 16"))
                .count(),
            1,
            "ch{i}"
        );
    }
    let log = std::fs::read_to_string(&joblog).unwrap();
    assert!(
        log.starts_with(
            "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
        ),
        "{log}"
    );
    assert_eq!(log.lines().count(), 13);
    assert_eq!(
        log.lines()
            .filter(|l| l.split('\t').nth(6) == Some("4"))
            .count(),
        2,
        "{log}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for text in [
        &log,
        &stdout.to_string(),
        &String::from_utf8_lossy(&out.stderr).to_string(),
    ] {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }

    // --resume-failed reruns exactly the two failed jobs.
    std::fs::write(dir.path().join("fixed"), "").unwrap();
    std::fs::write(&out_file, "").unwrap();
    let out = run(&["--resume-failed"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rerun = std::fs::read_to_string(&out_file).unwrap();
    let mut lines: Vec<&str> = rerun.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["ch5 SN-005 16", "ch7 SN-007 16"]);
}

#[test]
fn bad_csv_and_unknown_placeholder_are_refused_before_contact() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "a,b\n1,2\n3\n").unwrap();
    let out = sortie()
        .args(["run", "-H", "127.0.0.1:1", "--csv"])
        .arg(&csv)
        .args(["--", "echo {a}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:3:"), "{err}");
    let out = sortie()
        .args([
            "run",
            "-H",
            "127.0.0.1:1",
            "--",
            "echo {channel}",
            ":::",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("{channel}"));
    let out = sortie()
        .args([
            "run",
            "-H",
            "127.0.0.1:1",
            "--rate",
            "fast",
            "--",
            "echo",
            ":::",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
