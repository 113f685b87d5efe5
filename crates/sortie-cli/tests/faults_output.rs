//! Remote processes that are hard to live with: 200 MB of output as fast as the host can make
//! it, a last line without a newline from a process that never exits, and a process that
//! ignores SIGTERM. No output is lost, sortie's memory stays bounded, and the time limit ends
//! them all.

mod faults_support;

use std::time::Duration;

use faults_support::{record, run, sortie, sshd_or_skip, summary_line, RUN_LIMIT};

/// Bound for anything that needs a fresh remote shell (a stop): a few seconds normally, but a
/// login shell whose ~/.bashrc waits on a lock (pyenv rehash takes up to 60 s when contended,
/// as on the shared CI machine) delays it by that much. The bound rules out a hang.
const SLOW_SHELL_BOUND: Duration = Duration::from_secs(75);

fn sha256_of(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn two_hundred_megabytes_arrive_intact_with_bounded_memory() {
    let Some(sshd) = sshd_or_skip("two_hundred_megabytes_arrive_intact_with_bounded_memory") else {
        return;
    };
    let hosts = ["127.0.0.1", "127.0.0.2"];
    let cfg = sshd.ssh_config_for(&hosts).unwrap();
    let work = tempfile::tempdir().unwrap();
    let od = work.path().join("out");
    // Each host writes 200 MB of random bytes to stdout and, through a FIFO, the SHA-256 of
    // exactly what it wrote to a file of its own: the generator's sum, not a copy's.
    let cmd = format!(
        "d={w}/$(echo $SSH_CONNECTION | cut -d' ' -f3); mkdir -p $d; rm -f $d/p; mkfifo $d/p; \
         sha256sum < $d/p > $d/sum & head -c 200000000 /dev/urandom | tee $d/p; wait",
        w = work.path().display()
    );
    let done = run(
        sortie()
            .args(["exec", "--out-dir"])
            .arg(&od)
            .arg("-F")
            .arg(&cfg)
            .args(["-H", &hosts.join(","), "--", &cmd]),
        Duration::from_secs(300),
    );
    let shown = done.shown();
    assert_eq!(done.code(), Some(0), "{shown}");
    for h in hosts {
        let out = od.join(format!("{h}.out"));
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            200_000_000,
            "{h}: {shown}"
        );
        let remote = std::fs::read_to_string(work.path().join(h).join("sum")).unwrap();
        let remote = remote.split_whitespace().next().unwrap_or_default();
        assert_eq!(
            sha256_of(&out),
            remote,
            "{h}: bytes differ from what the host wrote"
        );
    }
    let peak_mib = done.peak_rss_kib / 1024;
    eprintln!(
        "TIMING 2 x 200 MB through sortie exec --out-dir: {:.1} s, peak RSS {peak_mib} MiB",
        done.elapsed.as_secs_f64()
    );
    assert!(done.peak_rss_kib > 0, "memory was measured");
    assert!(
        peak_mib < 300,
        "sortie peaked at {peak_mib} MiB for 400 MB of output"
    );
}

#[test]
fn unterminated_last_line_of_an_endless_process_is_kept() {
    let Some(sshd) = sshd_or_skip("unterminated_last_line_of_an_endless_process_is_kept") else {
        return;
    };
    let hosts = ["127.0.0.1", "127.0.0.2"];
    let cfg = sshd.ssh_config_for(&hosts).unwrap();
    let marker = format!("nonl-{}", std::process::id());
    let cmd = format!("echo first; printf 'no newline here'; sleep 1000; : {marker}");
    let od = tempfile::tempdir().unwrap();
    let done = run(
        sortie()
            .args(["exec", "--out-dir"])
            .arg(od.path())
            .arg("-F")
            .arg(&cfg)
            .args([
                "-H",
                &hosts.join(","),
                "--timeout",
                "2s",
                "--kill-grace",
                "1s",
                "--",
                &cmd,
            ]),
        RUN_LIMIT,
    );
    let shown = done.shown();
    assert_eq!(done.code(), Some(1), "{shown}");
    for h in hosts {
        assert_eq!(
            std::fs::read_to_string(od.path().join(format!("{h}.out"))).unwrap(),
            "first\nno newline here",
            "{h}"
        );
    }
    assert!(summary_line(&done.stderr, "timed out").is_some(), "{shown}");
    // The same in the default line-prefixed mode: the partial line is printed at the end.
    let done = run(
        sortie().args(["exec", "-F"]).arg(&cfg).args([
            "-H",
            hosts[0],
            "--timeout",
            "2s",
            "--kill-grace",
            "1s",
            "--",
            &cmd,
        ]),
        RUN_LIMIT,
    );
    assert!(
        done.stdout.contains("| no newline here"),
        "{}",
        done.shown()
    );
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn process_ignoring_sigterm_is_killed_after_the_grace() {
    let Some(sshd) = sshd_or_skip("process_ignoring_sigterm_is_killed_after_the_grace") else {
        return;
    };
    let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let cfg = sshd.ssh_config_for(&hosts).unwrap();
    let marker = format!("noterm-{}", std::process::id());
    // Ignored signals stay ignored across exec, so `sleep` ignores TERM (and HUP, INT) too.
    let cmd = format!("trap '' TERM HUP INT; echo up; sleep 1000; : {marker}");
    let done = run(
        sortie().args(["exec", "-F"]).arg(&cfg).args([
            "-H",
            &hosts.join(","),
            "--timeout",
            "1s",
            "--kill-grace",
            "1s",
            "--",
            &cmd,
        ]),
        RUN_LIMIT,
    );
    let shown = done.shown();
    assert_eq!(done.code(), Some(1), "{shown}");
    let line = summary_line(&done.stderr, "timed out").unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains("127.0.0.[1-3]") || hosts.iter().all(|h| line.contains(h)),
        "{shown}"
    );
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(3));
    assert!(left.is_empty(), "survived TERM and KILL: {left:?}");
    // From the first output to the end: 1 s timeout + 1 s grace, plus the stop command's own
    // trip through the remote login shell (slow when a ~/.bashrc waits on a lock). Without
    // the escalation the command would run 1000 s; the bound rules out a hang.
    let from_up = done.elapsed - done.first_line_at("| up").unwrap_or_default();
    let bound = SLOW_SHELL_BOUND;
    record(
        "SIGTERM-ignoring process ended by KILL (--timeout 1s --kill-grace 1s), from first output",
        from_up,
        bound,
    );
    assert!(from_up < bound, "{shown}");
}
