//! ssh_config's ProxyCommand against a real fixture sshd, through a real separate proxy process
//! (Debian's `socat`): every host answers through its own proxy, the proxies end with the run
//! and after Ctrl-C, and a proxy that fails is reported with what it said.

mod faults_support;

use std::time::{Duration, Instant};

use faults_support::{sortie, spawn, sshd_or_skip, RUN_LIMIT};

/// socat, or a named skip.
fn socat_or_skip(test: &str) -> bool {
    let found = std::process::Command::new("socat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        sortie_testkit::skip(
            test,
            "socat is not installed (scripts/test.sh installs it through apt as root)",
        );
    }
    found
}

/// The proxies of this test still running (their argv carries `tag`).
fn proxies(tag: &str) -> Vec<String> {
    sortie_testkit::processes_matching(tag)
        .into_iter()
        .filter(|p| p.cmdline.contains("socat"))
        .map(|p| p.cmdline)
        .collect()
}

fn wait_gone(tag: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = proxies(tag);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn twenty_hosts_answer_through_socat_and_no_proxy_outlives_the_run_or_ctrl_c() {
    let test = "twenty_hosts_answer_through_socat_and_no_proxy_outlives_the_run_or_ctrl_c";
    if !socat_or_skip(test) {
        return;
    }
    let Some(sshd) = sshd_or_skip(test) else {
        return;
    };
    let hosts = sortie_testkit::hosts(20);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let tag = format!("sortie-proxy-{}", std::process::id());
    // %h and %p expanded by sortie; the proxy is a separate process per host.
    let proxy = format!("ProxyCommand socat -lp {tag} - TCP:%h:%p");
    let cfg = sshd.ssh_config_with(&refs, &[&proxy]).unwrap();
    let cfg = cfg.to_str().unwrap();
    let selection = "127.0.0.[1-20]";

    let done = faults_support::run(
        sortie().args(["exec", "-F", cfg, "-H", selection, "--", "echo via-proxy"]),
        RUN_LIMIT,
    );
    assert_eq!(done.code(), Some(0), "{}", done.shown());
    let answered = |h: &str, text: &str| {
        done.stdout.lines().any(|l| {
            l.split_once(" | ")
                .is_some_and(|(host, out)| host.trim_end() == h && out == text)
        })
    };
    for h in &hosts {
        assert!(answered(h, "via-proxy"), "{h} answered: {}", done.shown());
    }
    let left = wait_gone(&tag);
    assert!(left.is_empty(), "proxies left after the run: {left:?}");

    // Ctrl-C while every host runs a command: the commands and the proxies end.
    let marker = format!("{tag}-sleep");
    let running = spawn(sortie().args([
        "exec",
        "-F",
        cfg,
        "-H",
        selection,
        "--kill-grace",
        "1s",
        "--",
        &format!("sleep 1000; : {marker}"),
    ]));
    let deadline = Instant::now() + RUN_LIMIT;
    while sortie_testkit::remote_processes(&marker).len() < 20 {
        assert!(Instant::now() < deadline, "not every host started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(proxies(&tag).len(), 20, "one proxy per host");
    running.interrupt();
    let done = running.finish(RUN_LIMIT);
    assert_eq!(done.code(), Some(130), "{}", done.shown());
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "commands left: {left:?}");
    let left = wait_gone(&tag);
    assert!(left.is_empty(), "proxies left after Ctrl-C: {left:?}");
}

#[test]
fn a_failing_proxy_is_unreachable_with_what_it_said_and_proxycommand_none_goes_direct() {
    let test = "a_failing_proxy_is_unreachable_with_what_it_said_and_proxycommand_none_goes_direct";
    let Some(sshd) = sshd_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = sshd.ssh_config_for(&["127.0.0.1", "127.0.0.2"]).unwrap();
    // 127.0.0.2 opts out with `ProxyCommand none` (first match wins); everything else goes
    // through a proxy that fails the way a bastion without a route does.
    let cfg = dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host 127.0.0.2\n    ProxyCommand none\nHost *\n    ProxyCommand sh -c 'echo \"no route to %h\" >&2; exit 1'\nInclude {}\n",
            base.display()
        ),
    )
    .unwrap();
    let done = faults_support::run(
        sortie().args([
            "exec",
            "-F",
            cfg.to_str().unwrap(),
            "-H",
            "127.0.0.1,127.0.0.2",
            "--",
            "echo direct",
        ]),
        RUN_LIMIT,
    );
    assert_eq!(done.code(), Some(3), "{}", done.shown());
    assert!(
        done.stdout
            .lines()
            .any(|l| l.starts_with("127.0.0.2") && l.ends_with("| direct")),
        "{}",
        done.shown()
    );
    assert!(
        done.stderr.contains("no route to 127.0.0.1"),
        "the proxy's words reach the user: {}",
        done.shown()
    );
}
