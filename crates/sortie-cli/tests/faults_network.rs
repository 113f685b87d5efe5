//! Hosts that die, vanish or change, each in its own network namespace with its own sshd
//! (sortie_testkit::NetnsFleet): what `sortie exec` reports, how fast, and that the other hosts
//! are not affected. Needs root (CI runs as root); skipped visibly otherwise.

mod faults_support;

use std::time::{Duration, Instant};

use faults_support::{fleet_or_skip, record, run, sortie, spawn, summary_line, RUN_LIMIT};

/// Fast keepalives in the client config: a silent peer is declared lost after 3 x 1 s.
const KEEPALIVE: &[&str] = &["ServerAliveInterval 1", "ServerAliveCountMax 3"];

#[test]
fn blackholed_host_is_unreachable_within_the_connect_timeout() {
    let test = "blackholed_host_is_unreachable_within_the_connect_timeout";
    let Some(mut fleet) = fleet_or_skip(test, 4) else {
        return;
    };
    let cfg = fleet.ssh_config(KEEPALIVE).unwrap();
    let names = fleet.names();
    let dead = names[1].clone();
    fleet.blackhole(1).unwrap();
    let done = run(
        sortie().args(["exec", "--json", "-F"]).arg(&cfg).args([
            "-H",
            &names.join(","),
            "--connect-timeout",
            "2s",
            "--",
            "echo hi",
        ]),
        RUN_LIMIT,
    );
    let shown = done.shown();
    assert_eq!(done.code(), Some(3), "{shown}");
    let (at, failure) = done
        .host_failed_at(&dead)
        .unwrap_or_else(|| panic!("{shown}"));
    assert_eq!(failure, "unreachable", "{shown}");
    let line = summary_line(&done.stderr, "unreachable").unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains(&dead), "{shown}");
    let ok = summary_line(&done.stderr, "ok").unwrap_or_else(|| panic!("{shown}"));
    for h in names.iter().filter(|h| **h != dead) {
        assert!(done.host_failed_at(h).is_none(), "{h}: {shown}");
    }
    assert!(!ok.contains(&dead) && ok.contains("3"), "{shown}");
    // From sortie's start (the connection attempt starts at once) to the event.
    let bound = Duration::from_secs(4);
    record(
        "blackholed host reported unreachable (--connect-timeout 2s)",
        at,
        bound,
    );
    assert!(at < bound, "reported after {at:?}: {shown}");
}

/// Runs `sleep 300` (with `marker`) on `victim` and `sleep 2` on the others, with JSON events.
fn spawn_long_on(
    cfg: &std::path::Path,
    names: &[String],
    victim: &str,
    marker: &str,
) -> faults_support::Running {
    let cmd = format!(
        "echo started; case \"$SSH_CONNECTION\" in *\" {victim} \"*) sleep 300 # {marker}\n;; *) sleep 2;; esac; echo done"
    );
    let mut running = spawn(sortie().args(["exec", "--json", "-F"]).arg(cfg).args([
        "-H",
        &names.join(","),
        "--connect-timeout",
        "10s",
        "--",
        &cmd,
    ]));
    let deadline = Instant::now() + RUN_LIMIT;
    while sortie_testkit::remote_processes(marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the command never started on {victim}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Drain what arrived so far (keeps the event times exact).
    let _ = running.wait_line("\u{0}never", Duration::from_millis(1));
    running
}

#[test]
fn network_cut_mid_command_is_detected_by_keepalives() {
    let test = "network_cut_mid_command_is_detected_by_keepalives";
    let Some(mut fleet) = fleet_or_skip(test, 3) else {
        return;
    };
    let cfg = fleet.ssh_config(KEEPALIVE).unwrap();
    let names = fleet.names();
    let cut = names[2].clone();
    let marker = format!("netcut-{}", std::process::id());
    let mut running = spawn_long_on(&cfg, &names, &cut, &marker);
    fleet.blackhole(2).unwrap();
    let cut_at = running.started.elapsed();
    let seen = running.wait_host_failed(&cut, Duration::from_secs(60));
    let done = running.finish(RUN_LIMIT);
    let shown = done.shown();
    let detected =
        seen.unwrap_or_else(|| panic!("no host_failed event for {cut}: {shown}")) - cut_at;
    assert_eq!(done.code(), Some(3), "{shown}");
    assert_eq!(
        done.host_failed_at(&cut).unwrap().1,
        "connection_lost",
        "{shown}"
    );
    let lost = summary_line(&done.stderr, "connection lost").unwrap_or_else(|| panic!("{shown}"));
    assert!(lost.contains(&cut), "{shown}");
    let ok = summary_line(&done.stderr, "ok").unwrap_or_else(|| panic!("{shown}"));
    assert!(!ok.contains(&cut) && ok.contains("[2-3]"), "{shown}");
    // ServerAliveInterval 1 x ServerAliveCountMax 3: russh gives up at the 4th unanswered
    // keepalive, so about 4 s; the rest is margin for a loaded machine.
    let bound = Duration::from_secs(8);
    record(
        "network cut mid-command reported connection lost (ServerAliveInterval 1, CountMax 3)",
        detected,
        bound,
    );
    assert!(detected < bound, "detected after {detected:?}: {shown}");
    // The host's sshd drops the silent client too (ClientAliveInterval 1 x 3), which closes
    // the command's stdin: sortie's remote watchdog then ends the process group, even while
    // the host is still cut off.
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(10));
    assert!(left.is_empty(), "still running on the cut host: {left:?}");
}

#[test]
fn killed_sshd_is_reported_lost_at_once_and_a_restarted_one_works_again() {
    let test = "killed_sshd_is_reported_lost_at_once_and_a_restarted_one_works_again";
    let Some(mut fleet) = fleet_or_skip(test, 3) else {
        return;
    };
    let cfg = fleet.ssh_config(KEEPALIVE).unwrap();
    let names = fleet.names();
    let victim = names[0].clone();
    let marker = format!("sshdkill-{}", std::process::id());
    let mut running = spawn_long_on(&cfg, &names, &victim, &marker);
    // SIGKILL to sshd and all it started: the kernel closes the sockets, as on a crash.
    fleet.host(0).sshd().kill();
    let killed_at = running.started.elapsed();
    let seen = running.wait_host_failed(&victim, Duration::from_secs(60));
    let done = running.finish(RUN_LIMIT);
    let shown = done.shown();
    let detected = seen
        .unwrap_or_else(|| panic!("no host_failed event for {victim}: {shown}"))
        .saturating_sub(killed_at);
    assert_eq!(done.code(), Some(3), "{shown}");
    let lost = summary_line(&done.stderr, "connection lost").unwrap_or_else(|| panic!("{shown}"));
    assert!(lost.contains(&victim), "{shown}");
    // Known at once from the closed socket, long before keepalives would tell.
    let bound = Duration::from_secs(2);
    record(
        "sshd killed mid-command reported connection lost",
        detected,
        bound,
    );
    assert!(detected < bound, "{detected:?}: {shown}");

    // A host whose sshd is down: connection refused, reported at once.
    let down = run(
        sortie().args(["exec", "--json", "-F"]).arg(&cfg).args([
            "-H",
            &names.join(","),
            "--connect-timeout",
            "10s",
            "--",
            "echo again",
        ]),
        RUN_LIMIT,
    );
    let (at, failure) = down
        .host_failed_at(&victim)
        .unwrap_or_else(|| panic!("{}", down.shown()));
    assert_eq!(failure, "unreachable", "{}", down.shown());
    assert_eq!(down.code(), Some(3), "{}", down.shown());
    record(
        "stopped sshd (connection refused) reported unreachable",
        at,
        Duration::from_secs(2),
    );
    assert!(at < Duration::from_secs(2), "{}", down.shown());

    // Back up: the next run works everywhere.
    fleet.host(0).sshd().restart().unwrap();
    let again = run(
        sortie()
            .args(["exec", "-F"])
            .arg(&cfg)
            .args(["-H", &names.join(","), "--", "echo again"]),
        RUN_LIMIT,
    );
    assert_eq!(again.code(), Some(0), "{}", again.shown());
    assert_eq!(
        again.stdout.matches("| again").count(),
        3,
        "{}",
        again.shown()
    );
}

#[test]
fn changed_host_key_stops_only_that_host_and_shows_the_fingerprint() {
    let test = "changed_host_key_stops_only_that_host_and_shows_the_fingerprint";
    let Some(mut fleet) = fleet_or_skip(test, 4) else {
        return;
    };
    // known_hosts is written now, with the old keys.
    let cfg = fleet.ssh_config(KEEPALIVE).unwrap();
    let names = fleet.names();
    fleet.host(2).sshd().change_host_keys().unwrap();
    let new_fps = fleet.hosts()[2].sshd_ref().host_key_fingerprints().unwrap();
    let marker = format!("hostkey-{}", std::process::id());
    let exec = |json: bool| {
        let mut c = sortie();
        c.arg("exec");
        if json {
            c.arg("--json");
        }
        c.arg("-F").arg(&cfg).args([
            "-H",
            &names.join(","),
            "--",
            &format!("echo ran # {marker}"),
        ]);
        run(&mut c, RUN_LIMIT)
    };
    let done = exec(false);
    let shown = done.shown();
    assert_eq!(done.code(), Some(3), "{shown}");
    let refused =
        summary_line(&done.stderr, "host key refused").unwrap_or_else(|| panic!("{shown}"));
    assert!(refused.contains(&names[2]), "{shown}");
    for (k, h) in names.iter().enumerate() {
        let ran = done
            .stdout
            .lines()
            .any(|l| l.starts_with(h.as_str()) && l.ends_with("| ran"));
        assert_eq!(ran, k != 2, "{h}: {shown}");
    }
    // The full warning, with the offered key's fingerprint, is in the JSON event (the
    // terminal summary shows its first lines).
    let json = exec(true);
    let refused: Vec<_> = json
        .events()
        .into_iter()
        .filter(|e| e.to_string().contains("host_key_refused"))
        .collect();
    assert!(
        refused.iter().any(|e| {
            let t = e.to_string();
            t.contains(&names[2]) && new_fps.iter().any(|f| t.contains(&f.sha256))
        }),
        "the offered key's fingerprint is reported ({new_fps:?}): {refused:?}\n{}",
        json.shown()
    );
    // Not even a session was opened on the refused host.
    assert!(
        !fleet.hosts()[2]
            .sshd_ref()
            .log()
            .contains("Accepted publickey"),
        "{}",
        fleet.hosts()[2].sshd_ref().log()
    );
}
