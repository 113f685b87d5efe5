//! Ctrl-C (SIGINT to the sortie process) in every phase: while hosts are still connecting,
//! while commands run (including commands that ignore SIGTERM), and during `sortie run` and
//! `sortie launch`. Each time: exit code 130, "interrupted" in the summary, no process left on
//! any host, and no hang.

mod faults_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faults_support::{record, sortie, spawn, sshd_or_skip, Finished, Running, RUN_LIMIT};
use sortie_testkit::{Behavior, KeyKind, Proxy, Sshd};

/// Upper bound for stopping remote processes after Ctrl-C: kill grace plus the stop command's
/// trip through the remote login shell, which a ~/.bashrc waiting on a lock (pyenv rehash, up
/// to 60 s when contended, as on the shared CI machine) can delay. Rules out a hang; typical
/// values are in docs/reliability.md.
const STOP_BOUND: Duration = Duration::from_secs(75);

/// Sends Ctrl-C and waits for sortie to exit: what it printed, and how long after the signal.
fn interrupt(running: Running) -> (Finished, Duration) {
    running.interrupt();
    let sent = Instant::now();
    let done = running.finish(RUN_LIMIT);
    (done, sent.elapsed())
}

/// Exit 130 and no process carrying `marker` left on the hosts.
fn assert_nothing_left(done: &Finished, marker: &str) {
    assert_eq!(done.code(), Some(130), "{}", done.shown());
    let left = sortie_testkit::wait_for_no_remote_processes(marker, Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}\n{}", done.shown());
}

fn wait_remote(marker: &str, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while sortie_testkit::remote_processes(marker).len() < n {
        assert!(
            Instant::now() < deadline,
            "only {:?} started",
            sortie_testkit::remote_processes(marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// ssh_config: 127.0.0.x direct, and `mute1`, `mute2` behind proxies that never send a banner.
fn config_with_mute(sshd: &Sshd, mutes: &[&Proxy], dir: &Path) -> PathBuf {
    let mut cfg = String::new();
    for (i, p) in mutes.iter().enumerate() {
        cfg.push_str(&format!(
            "Host mute{}\n    HostName 127.0.0.1\n    Port {}\n",
            i + 1,
            p.port()
        ));
    }
    let kh = sshd
        .known_hosts_for(&["127.0.0.1", "127.0.0.2", "127.0.0.3"])
        .unwrap();
    cfg.push_str(&format!(
        "Host *\n    Port {}\n    User {}\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
         UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n    BatchMode yes\n",
        sshd.port(),
        sshd.user(),
        sshd.client_key(KeyKind::Ed25519).display(),
        kh.display()
    ));
    let path = dir.join("ssh_config");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn ctrl_c_while_connecting_and_running_exec() {
    let Some(sshd) = sshd_or_skip("ctrl_c_while_connecting_and_running_exec") else {
        return;
    };
    let up = SocketAddr::from(([127, 0, 0, 1], sshd.port()));
    let mute1 = Proxy::start("127.0.0.1:0".parse().unwrap(), up, Behavior::Silent).unwrap();
    let mute2 = Proxy::start("127.0.0.1:0".parse().unwrap(), up, Behavior::Silent).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_mute(&sshd, &[&mute1, &mute2], dir.path());

    // Phase 1: every host is still connecting (no banner yet).
    let running = spawn(sortie().args(["exec", "-F"]).arg(&cfg).args([
        "-H",
        "mute1,mute2",
        "--connect-timeout",
        "60s",
        "--",
        "true",
    ]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while mute1.accepted() + mute2.accepted() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (done, took) = interrupt(running);
    assert_eq!(done.code(), Some(130), "{}", done.shown());
    assert!(done.stderr.contains("interrupted"), "{}", done.shown());
    record(
        "Ctrl-C while connecting -> exit 130",
        took,
        Duration::from_secs(2),
    );
    assert!(took < Duration::from_secs(2), "{}", done.shown());

    // Phase 2: some hosts connecting, others running commands that ignore SIGTERM.
    let marker = format!("ctrlc-mixed-{}", std::process::id());
    let running = spawn(sortie().args(["exec", "-F"]).arg(&cfg).args([
        "-H",
        "mute1,127.0.0.1,127.0.0.2,127.0.0.3",
        "--connect-timeout",
        "60s",
        "--kill-grace",
        "1s",
        "--",
        &format!("trap '' TERM HUP; echo up; sleep 1000; : {marker}"),
    ]));
    wait_remote(&marker, 3, RUN_LIMIT);
    let (done, took) = interrupt(running);
    assert_nothing_left(&done, &marker);
    // TERM, then KILL after the 1 s grace: about 2 s. The stop itself is a command run
    // through the remote login shell, so a slow shell start-up (a ~/.bashrc waiting on a lock)
    // adds to it; the bound only rules out a hang.
    record(
        "Ctrl-C while running TERM-ignoring commands (--kill-grace 1s) -> exit 130",
        took,
        STOP_BOUND,
    );
    assert!(took < STOP_BOUND, "{}", done.shown());
}

#[test]
fn ctrl_c_during_run_leaves_no_job_behind() {
    let Some(sshd) = sshd_or_skip("ctrl_c_during_run_leaves_no_job_behind") else {
        return;
    };
    let hosts = ["127.0.0.1", "127.0.0.2"];
    let cfg = sshd.ssh_config_for(&hosts).unwrap();
    let marker = format!("ctrlc-run-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let joblog = dir.path().join("joblog");
    let running = spawn(
        sortie()
            .args(["run", "-F"])
            .arg(&cfg)
            .args([
                "-H",
                &hosts.join(","),
                "--slots",
                "2",
                "--kill-grace",
                "1s",
                "--joblog",
            ])
            .arg(&joblog)
            .args([
                "--",
                &format!("echo job {{}}; sleep 1000 # {marker}"),
                ":::",
                "a",
                "b",
                "c",
                "d",
                "e",
                "f",
            ]),
    );
    wait_remote(&marker, 4, RUN_LIMIT);
    let (done, took) = interrupt(running);
    assert_nothing_left(&done, &marker);
    record("Ctrl-C during sortie run -> exit 130", took, STOP_BOUND);
    assert!(took < STOP_BOUND, "{}", done.shown());
}

#[test]
fn ctrl_c_during_launch_stops_every_process() {
    let Some(sshd) = sshd_or_skip("ctrl_c_during_launch_stops_every_process") else {
        return;
    };
    let hosts = ["127.0.0.1", "127.0.0.2"];
    let cfg = sshd.ssh_config_for(&hosts).unwrap();
    let marker = format!("ctrlc-launch-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"faults\"\n\n[groups.box]\nhosts = [\"127.0.0.[1-2]\"]\n\n\
             [roles.worker]\ngroup = \"box\"\ncount = 4\nslots = 2\n\
             command = \"echo ready; sleep 1000 # {marker}\"\nready = 'ready'\n\
             stop = [{{ signal = \"TERM\", grace = \"1s\" }}]\n\n[run]\nduration = \"10m\"\n"
        ),
    )
    .unwrap();
    let running = spawn(
        sortie()
            .arg("launch")
            .arg(&plan)
            .arg("-F")
            .arg(&cfg)
            .arg("--run-dir")
            .arg(dir.path().join("run")),
    );
    wait_remote(&marker, 4, RUN_LIMIT);
    let (done, took) = interrupt(running);
    assert_nothing_left(&done, &marker);
    record("Ctrl-C during sortie launch -> exit 130", took, STOP_BOUND);
    assert!(took < STOP_BOUND, "{}", done.shown());
}

/// The stop requests other than Ctrl-C: SIGTERM (`timeout`, `systemctl stop`, a cancelled CI
/// job) and SIGHUP (a closed terminal), with their numbers.
const STOP_SIGNALS: [(&str, i32); 2] = [("SIGTERM", 15), ("SIGHUP", 1)];

/// exec and run, each stopped by `sig` once `n` of its commands run: exit 130, the signal named
/// on stderr, nothing carrying the marker left. `hosts` are `-H` values, `args` come before them.
fn stop_exec_and_run(args: &[&str], hosts: &str, n: usize, (sig, num): (&str, i32), local: bool) {
    let marker = format!("stopsig-{}-{}-{local}", std::process::id(), num);
    let exec = [
        "exec",
        "--kill-grace",
        "1s",
        "-H",
        hosts,
        "--",
        &format!("echo up; sleep 1000; : {marker}-exec"),
    ];
    let job = format!("sleep 1000 # {marker}-run {{}}");
    let run = [
        "run",
        "--slots",
        "2",
        "--kill-grace",
        "1s",
        "-H",
        hosts,
        "--",
        &job,
        ":::",
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
    ];
    for (what, cmd) in [("exec", &exec[..]), ("run", &run[..])] {
        let (command, rest) = cmd.split_first().unwrap();
        let running = spawn(sortie().arg(command).args(args).args(rest));
        let mark = format!("{marker}-{what}");
        let sortie_pid = running.child.id();
        let alive = || -> Vec<String> {
            if local {
                sortie_testkit::processes_matching(&mark)
                    .into_iter()
                    .filter(|p| p.pid != sortie_pid)
                    .map(|p| p.cmdline)
                    .collect()
            } else {
                sortie_testkit::remote_processes(&mark)
                    .into_iter()
                    .map(|p| p.1)
                    .collect()
            }
        };
        let deadline = Instant::now() + RUN_LIMIT;
        while alive().len() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: only {:?} started",
                alive()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        running.signal(num);
        let done = running.finish(RUN_LIMIT);
        assert_eq!(done.code(), Some(130), "{what} {sig}: {}", done.shown());
        assert!(
            done.stderr.contains(&format!("interrupted ({sig})")),
            "{what} {sig}: {}",
            done.shown()
        );
        let gone = Instant::now() + Duration::from_secs(3);
        while !alive().is_empty() && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(alive().is_empty(), "{what} {sig} left {:?}", alive());
    }
}

#[test]
fn sigterm_and_sighup_stop_exec_and_run_like_ctrl_c_on_the_local_transport() {
    for sig in STOP_SIGNALS {
        stop_exec_and_run(&[], "local", 1, sig, true);
    }
}

#[test]
fn sigterm_and_sighup_stop_exec_and_run_like_ctrl_c_over_ssh() {
    let Some(sshd) = sshd_or_skip("sigterm_and_sighup_stop_exec_and_run_like_ctrl_c_over_ssh")
    else {
        return;
    };
    let hosts = ["127.0.0.1", "127.0.0.2"];
    let cfg = sshd.ssh_config_for(&hosts).unwrap();
    let cfg = cfg.display().to_string();
    for sig in STOP_SIGNALS {
        stop_exec_and_run(&["-F", &cfg], &hosts.join(","), 2, sig, false);
    }
}
