//! `sortie launch` end to end with the stand-in KVS scripts of `examples/local`: on the local
//! transport and over a fixture OpenSSH sshd. What a user checks: the exit code, the summary,
//! `report.json`, the per-process logs, the signal each process got, the order of starts, and
//! that no process is left behind after the duration, a failure, or Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skip(test: &str, reason: &str) {
    sortie_testkit::skip(test, reason);
}

/// A copy of examples/local in a temp dir, with channel names made unique to this test (so
/// processes can be found by name), run from the temp dir as the example is from the repo.
struct Example {
    dir: tempfile::TempDir,
    tag: String,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Example {
    fn new(edit: impl Fn(String) -> String) -> Example {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!(
            "lt{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let ex = dir.path().join("examples/local");
        std::fs::create_dir_all(&ex).unwrap();
        for f in ["fake-master.sh", "fake-viewer.sh"] {
            std::fs::copy(repo().join("examples/local").join(f), ex.join(f)).unwrap();
        }
        let plan = std::fs::read_to_string(repo().join("examples/local/plan.toml")).unwrap();
        // Generous timeouts: tests share the machine with builds; speed is not what they check.
        let plan = edit(plan.replace("\"demo-", &format!("\"{tag}-")))
            .replace("ready_timeout = \"5s\"", "ready_timeout = \"60s\"")
            .replace("max = \"3s\"", "max = \"60s\"");
        std::fs::write(ex.join("plan.toml"), plan).unwrap();
        Example { dir, tag }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn run_dir(&self) -> PathBuf {
        self.root().join("run")
    }

    fn cmd(&self) -> Command {
        let mut c = sortie();
        c.current_dir(self.root())
            .args(["launch", "examples/local/plan.toml", "--run-dir"])
            .arg(self.run_dir());
        c
    }

    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.run_dir().join("report.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Points the plan at SSH `hosts` of the fixture sshd (this machine) instead of the local
    /// transport; workdir, upload destinations and the collected directory become this copy's
    /// absolute path.
    fn on_ssh_hosts(&self, hosts: &[String]) {
        let wd = self.root().join("examples/local");
        let plan = std::fs::read_to_string(wd.join("plan.toml")).unwrap();
        let list: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        let plan = plan
            .replace(
                "hosts = [\"local[1-2]\"]\ntransport = \"local\"",
                &format!("hosts = [{}]", list.join(", ")),
            )
            .replace("\"examples/local", &format!("\"{}", wd.display()));
        std::fs::write(wd.join("plan.toml"), plan).unwrap();
    }

    fn fresh(&self, role: &str, dir: &str) -> PathBuf {
        self.root()
            .join("examples/local/.sortie")
            .join(role)
            .join(dir)
    }

    /// Processes of this test still alive (on this machine, local or behind sshd).
    fn left(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v: Vec<String> = sortie_testkit::processes_matching(&self.tag)
                .into_iter()
                .map(|p| p.cmdline)
                .collect();
            if v.is_empty() || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn processes(report: &Value) -> Vec<Value> {
    report["processes"].as_array().unwrap().clone()
}

fn find<'a>(ps: &'a [Value], id: &str) -> &'a Value {
    ps.iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in report"))
}

#[test]
fn local_example_runs_end_to_end_with_int_first_logs_and_report() {
    let ex = Example::new(|p| p);
    let out = ex
        .cmd()
        .args(["--set", "run.duration=1s"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let t = &ex.tag;
    // the summary names the failure with host, key and line, and the thresholds
    assert!(stdout.contains(&format!("master/{t}-7 on local2: failed: [KVS Master] Signaling client generated an error 0x5d000003")), "{stdout}");
    assert!(stdout.contains("PASS ready_ratio"), "{stdout}");
    assert!(stdout.contains("ttr p50"), "{stdout}");

    let report = ex.report();
    assert_eq!(report["plan"], "local-demo");
    assert_eq!(report["interrupted"], false);
    let ps = processes(&report);
    assert_eq!(ps.len(), 12);
    let m7 = find(&ps, &format!("master/{t}-7"));
    assert_eq!(m7["ending"]["kind"], "failed");
    assert_eq!(m7["host"], "local2");
    assert_eq!(
        m7["first_failure_line"],
        "[KVS Master] Signaling client generated an error 0x5d000003"
    );
    for n in 1..=2 {
        let v = find(&ps, &format!("viewer/{t}-7#{n}"));
        assert_eq!(v["ending"]["kind"], "never_started");
    }
    let stopped: Vec<&Value> = ps
        .iter()
        .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
        .collect();
    assert_eq!(stopped.len(), 9);
    for p in &stopped {
        assert!(p["time_to_ready_ms"].as_u64().is_some());
        assert_eq!(p["exit"]["code"], 0, "{p}");
    }
    // SIGINT reached every process first, in its own fresh directory
    for ch in ["1", "2", "3"] {
        let sig =
            std::fs::read_to_string(ex.fresh("master", &format!("{t}-{ch}")).join("signal.txt"))
                .unwrap();
        assert_eq!(sig.lines().next(), Some("INT"));
        for n in 1..=2 {
            let sig = std::fs::read_to_string(
                ex.fresh("viewer", &format!("{t}-{ch}-{n}"))
                    .join("signal.txt"),
            )
            .unwrap();
            assert_eq!(sig.lines().next(), Some("INT"));
        }
    }
    // the log holds every line the process printed, time-stamped, in order
    let log = std::fs::read_to_string(ex.run_dir().join(format!("logs/master/{t}-1@local1.log")))
        .unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" O ")).collect();
    let said: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once(" O ").unwrap().1)
        .collect();
    assert_eq!(
        said,
        vec![
            "[KVS Master] Using trickleICE by default".to_string(),
            format!("[KVS Master] Created signaling channel {t}-1"),
            format!("[KVS Master] Channel {t}-1 set up done"),
            "Cleaning up....".to_string(),
            "Cleanup done".to_string(),
        ]
    );
    assert!(
        lines[0].starts_with("20") && lines[0].as_bytes()[23] == b'Z',
        "{}",
        lines[0]
    );
    // staging: the stand-ins were already in place (same machine), so both uploads found them
    // identical on both hosts; the fresh directories came back per host after the stop
    let transfers = report["transfers"].as_array().unwrap();
    let uploads: Vec<&Value> = transfers.iter().filter(|t| t["step"] == "upload").collect();
    assert_eq!(uploads.len(), 4, "{transfers:?}");
    for u in &uploads {
        assert_eq!(u["outcome"], "ok", "{u}");
        assert_eq!(
            (u["files"].as_u64(), u["unchanged"].as_u64()),
            (Some(0), Some(1)),
            "{u}"
        );
    }
    for host in ["local1", "local2"] {
        let c = transfers
            .iter()
            .find(|t| t["step"] == "collect" && t["host"] == host)
            .unwrap_or_else(|| panic!("no collect record for {host}: {transfers:?}"));
        assert_eq!(c["outcome"], "ok", "{c}");
        let sig = ex
            .run_dir()
            .join(format!("collected/{host}/.sortie/master/{t}-1/signal.txt"));
        let sig =
            std::fs::read_to_string(&sig).unwrap_or_else(|e| panic!("{}: {e}", sig.display()));
        assert_eq!(
            sig.lines().next(),
            Some("INT"),
            "collected before the stop?"
        );
    }
    assert!(
        stdout.contains("collect #1 examples/local/.sortie -> ")
            && stdout.contains("ok on 2 of 2 hosts"),
        "{stdout}"
    );
    assert!(ex.left().is_empty(), "left: {:?}", ex.left());
}

#[test]
fn an_upload_whose_source_is_missing_stops_the_launch_before_any_host() {
    // The plan's hosts are an SSH address nobody should connect to: a listener that must see
    // no connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ex = Example::new(|p| {
        p.replace(
            "hosts = [\"local[1-2]\"]\ntransport = \"local\"",
            &format!("hosts = [\"127.0.0.1:{port}\"]"),
        )
        .replace(
            "src = \"fake-viewer.sh\"",
            "src = \"fake-viewer.sh.missing\"",
        )
    });
    let out = ex.cmd().output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let plan = std::fs::read_to_string(ex.root().join("examples/local/plan.toml")).unwrap();
    let at = plan.find("\"fake-viewer.sh.missing\"").unwrap();
    let line = plan[..at].matches('\n').count() + 1;
    let col = at - plan[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    assert!(
        stderr.contains(&format!("plan.toml:{line}:{col}")),
        "want plan.toml:{line}:{col} in {stderr}"
    );
    assert!(stderr.contains("fake-viewer.sh.missing"), "{stderr}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a host was contacted"
    );
    assert!(!ex.run_dir().exists());
}

#[test]
fn json_events_show_no_viewer_starting_before_its_masters_ready_line() {
    let ex = Example::new(|p| p);
    let out = ex
        .cmd()
        .args(["--json", "--duration", "500ms"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(events[0]["event"], "launch_started");
    assert_eq!(events.last().unwrap()["event"], "launch_finished");
    let at = |kind: &str, id: &str| -> Option<u64> {
        events
            .iter()
            .find(|e| e["event"] == kind && e["process"]["id"] == id)
            .map(|e| e["at_ms"].as_u64().unwrap())
    };
    let mut checked = 0;
    for ch in ["1", "2", "3"] {
        let ready = at("process_ready", &format!("master/{}-{ch}", ex.tag)).unwrap();
        for n in 1..=2 {
            let start = at("process_starting", &format!("viewer/{}-{ch}#{n}", ex.tag)).unwrap();
            assert!(
                start >= ready,
                "viewer {ch}#{n} started at {start}, master ready at {ready}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    // JSON lines say nothing about terminals: the summary went to stderr
    assert!(stderr.contains("thresholds:"));
    assert!(ex.left().is_empty());
}

#[test]
fn readiness_timeout_is_reported_with_host_and_key_and_fails_the_threshold() {
    // masters never print their ready line in time
    let ex = Example::new(|p| {
        p.replace("set up done'", "never printed'").replace(
            "ready_timeout = \"5s\"\nfail",
            "ready_timeout = \"1s\"\nfail",
        )
    });
    let out = ex.cmd().output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    let t = &ex.tag;
    assert!(
        stdout.contains(&format!(
            "master/{t}-1 on local1: ready-timeout: no ready line within 1.00s"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL ready_ratio"), "{stdout}");
    let ps = processes(&ex.report());
    assert_eq!(
        find(&ps, &format!("master/{t}-2"))["ending"],
        serde_json::json!({"kind": "ready_timeout", "timeout_ms": 1000})
    );
    assert!(ex.left().is_empty());
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let ex = Example::new(|p| p);
    let out = ex.cmd().arg("--dry-run").output().unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("12 processes on 2 hosts"), "{stdout}");
    assert!(!ex.run_dir().exists());
    assert!(!ex.root().join("examples/local/.sortie").exists());
}

#[test]
fn a_bad_override_is_refused_before_anything_runs() {
    let ex = Example::new(|p| p);
    let out = ex
        .cmd()
        .args(["--set", "run.duration=30x"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run.duration=30x"), "{stderr}");
    assert!(!ex.run_dir().exists());
}

/// A fixture sshd and `n` of its loopback hosts with an ssh_config for them; `None` (and a
/// named skip) when OpenSSH's sshd is not installed.
fn ssh_fleet(test: &str, n: usize) -> Option<(sortie_testkit::Sshd, Vec<String>, PathBuf)> {
    if sortie_testkit::require_sshd().is_none() {
        skip(
            test,
            "OpenSSH sshd is not installed (scripts/test.sh installs it as root)",
        );
        return None;
    }
    let sshd = sortie_testkit::Sshd::builder()
        .start()
        .expect("fixture sshd");
    let hosts = sortie_testkit::hosts(n);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    Some((sshd, hosts, cfg))
}

/// Starts sortie with --json and reads events until `until` says so; then sends SIGINT.
fn interrupt_when(
    ex: &Example,
    extra: &[&str],
    until: impl Fn(&Value) -> bool,
) -> (Child, Vec<Value>) {
    signal_when(ex, extra, "INT", until)
}

/// Starts sortie with --json and reads events until `until` says so; then sends `signal`
/// (`INT`, `TERM`, `HUP`).
fn signal_when(
    ex: &Example,
    extra: &[&str],
    signal: &str,
    until: impl Fn(&Value) -> bool,
) -> (Child, Vec<Value>) {
    let mut child = ex
        .cmd()
        .arg("--json")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut events = Vec::new();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("sortie ended before the interrupt point: {events:?}");
        }
        let ev: Value = serde_json::from_str(&line).unwrap();
        let stop = until(&ev);
        events.push(ev);
        if stop {
            break;
        }
    }
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    for l in reader.lines() {
        events.push(serde_json::from_str(&l.unwrap()).unwrap());
    }
    (child, events)
}

#[test]
fn ctrl_c_while_starting_stops_what_runs_and_leaves_nothing() {
    // slow ramp: one start per second, so the interrupt lands while starting
    let ex = Example::new(|p| p.replace("rate = \"10/s\"", "rate = \"1/s\""));
    let (mut child, events) = interrupt_when(&ex, &[], |e| e["event"] == "process_started");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(events.iter().any(|e| e["event"] == "process_never_started"
        && e["reason"].as_str().unwrap().contains("interrupted")));
    let report = ex.report();
    assert_eq!(report["interrupted"], true);
    for p in processes(&report) {
        let kind = p["ending"]["kind"].as_str().unwrap().to_string();
        assert!(
            [
                "never_started",
                "stopped_before_ready",
                "ready_then_stopped"
            ]
            .contains(&kind.as_str()),
            "{p}"
        );
    }
    assert!(ex.left().is_empty(), "left: {:?}", ex.left());
}

#[test]
fn ctrl_c_while_holding_stops_everything_with_int_and_leaves_nothing() {
    let ex = Example::new(|p| p);
    let (mut child, _) = interrupt_when(&ex, &["--duration", "10m"], |e| {
        e["event"] == "phase_changed" && e["phase"] == "holding"
    });
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let t = &ex.tag;
    let sig =
        std::fs::read_to_string(ex.fresh("master", &format!("{t}-1")).join("signal.txt")).unwrap();
    assert_eq!(sig.lines().next(), Some("INT"));
    let ps = processes(&ex.report());
    assert_eq!(
        ps.iter()
            .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
            .count(),
        9
    );
    assert!(ex.left().is_empty(), "left: {:?}", ex.left());
}

/// SIGTERM and SIGHUP while holding stop the fleet as Ctrl-C does: each role's stop sequence
/// (SIGINT first), report.json written and marked interrupted, exit 130, nothing left.
fn term_or_hup_while_holding(ex: &Example, extra: &[&str], signal: &str, master: &str) {
    let mut args = extra.to_vec();
    args.extend(["--duration", "10m"]);
    let (mut child, events) = signal_when(ex, &args, signal, |e| {
        e["event"] == "phase_changed" && e["phase"] == "holding"
    });
    assert_eq!(child.wait().unwrap().code(), Some(130), "{signal}");
    assert!(
        events.iter().any(|e| e["event"] == "stop_confirmed"),
        "{signal}: the stop was confirmed: {events:?}"
    );
    let report = ex.report();
    assert_eq!(report["interrupted"], true, "{signal}");
    let ps = processes(&report);
    assert_eq!(
        ps.iter()
            .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
            .count(),
        9,
        "{signal}: {ps:?}"
    );
    let sig = std::fs::read_to_string(ex.fresh("master", master).join("signal.txt")).unwrap();
    assert_eq!(sig.lines().next(), Some("INT"), "{signal}: first signal");
    let left = sortie_testkit::wait_for_no_remote_processes(&ex.tag, Duration::from_secs(5));
    assert!(left.is_empty(), "{signal}: left on the hosts: {left:?}");
    assert!(ex.left().is_empty(), "{signal}: left: {:?}", ex.left());
}

#[test]
fn sigterm_and_sighup_while_holding_stop_with_int_and_write_the_report() {
    for signal in ["TERM", "HUP"] {
        let ex = Example::new(|p| p);
        let master = format!("{}-1", ex.tag);
        term_or_hup_while_holding(&ex, &[], signal, &master);
    }
}

#[test]
fn over_ssh_sigterm_and_sighup_while_holding_stop_with_int_and_write_the_report() {
    let Some((_sshd, hosts, cfg)) = ssh_fleet(
        "over_ssh_sigterm_and_sighup_while_holding_stop_with_int_and_write_the_report",
        2,
    ) else {
        return;
    };
    let cfg = cfg.display().to_string();
    for signal in ["TERM", "HUP"] {
        let ex = Example::new(|p| p);
        ex.on_ssh_hosts(&hosts[..2]);
        let master = format!("{}-1", ex.tag);
        term_or_hup_while_holding(&ex, &["-F", &cfg], signal, &master);
    }
}

#[test]
fn over_ssh_on_a_fixture_sshd_the_same_plan_runs_and_leaves_nothing() {
    let Some((sshd, hosts, cfg)) = ssh_fleet(
        "over_ssh_on_a_fixture_sshd_the_same_plan_runs_and_leaves_nothing",
        2,
    ) else {
        return;
    };
    let ex = Example::new(|p| p);
    // The same plan on two SSH "hosts"; the work directory is this copy (same machine).
    ex.on_ssh_hosts(&hosts[..2]);
    let out = ex
        .cmd()
        .arg("-F")
        .arg(&cfg)
        .args(["--duration", "1s"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    let t = &ex.tag;
    let log = std::fs::read_to_string(
        ex.run_dir()
            .join(format!("logs/master/{t}-1@{}.log", hosts[0])),
    )
    .unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{stderr}\nmaster log:\n{log}\n{}",
        sshd.log()
    );
    let ps = processes(&ex.report());
    assert_eq!(
        find(&ps, &format!("master/{t}-7"))["ending"]["kind"],
        "failed"
    );
    assert_eq!(
        ps.iter()
            .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
            .count(),
        9,
        "{stdout}"
    );
    let sig = std::fs::read_to_string(ex.fresh("viewer", &format!("{t}-2-1")).join("signal.txt"))
        .unwrap();
    assert_eq!(sig.lines().next(), Some("INT"));
    let left = sortie_testkit::wait_for_no_remote_processes(t, Duration::from_secs(5));
    assert!(left.is_empty(), "left on the hosts: {left:?}");
    assert_eq!(ex.report()["stop_check"]["hosts_checked"], 2);
}

#[test]
fn over_ssh_ctrl_c_while_holding_leaves_nothing_on_the_hosts() {
    let Some((_sshd, hosts, cfg)) = ssh_fleet(
        "over_ssh_ctrl_c_while_holding_leaves_nothing_on_the_hosts",
        3,
    ) else {
        return;
    };
    let ex = Example::new(|p| p);
    ex.on_ssh_hosts(&hosts[..3]);
    let cfg = cfg.display().to_string();
    let (mut child, events) = interrupt_when(&ex, &["-F", &cfg, "--duration", "10m"], |e| {
        e["event"] == "phase_changed" && e["phase"] == "holding"
    });
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let t = &ex.tag;
    assert!(events
        .iter()
        .any(|e| e["event"] == "stop_confirmed" && e["survivors"] == serde_json::json!([])));
    let sig =
        std::fs::read_to_string(ex.fresh("master", &format!("{t}-3")).join("signal.txt")).unwrap();
    assert_eq!(sig.lines().next(), Some("INT"));
    let left = sortie_testkit::wait_for_no_remote_processes(t, Duration::from_secs(5));
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}

/// The worker of the staging test: needs the uploaded settings to start, writes its own log
/// next to the payload, and notes the signal that stopped it.
const WORKER: &str = r#"#!/bin/sh
ch=$1
dir=$(dirname "$0")
conf=$(cat "$dir/conf/settings.txt") || exit 3
out="$dir/../out"
mkdir -p "$out"
trap 'echo "stopped by INT" >> "$out/$ch.log"; exit 0' INT
echo "started with $conf" > "$out/$ch.log"
echo "worker $ch ready ($conf)"
while :; do sleep 1 & wait $!; done
"#;

#[test]
fn over_ssh_plan_uploads_precede_each_hosts_starts_and_collections_follow_the_stop() {
    use std::os::unix::fs::PermissionsExt;
    let Some((sshd, hosts, cfg)) = ssh_fleet(
        "over_ssh_plan_uploads_precede_each_hosts_starts_and_collections_follow_the_stop",
        3,
    ) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let tag = format!(
        "stg{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    // the payload: a script (mode 0755) and its settings in a nested directory
    let payload = root.path().join("plan/payload");
    std::fs::create_dir_all(payload.join("conf")).unwrap();
    std::fs::write(payload.join("work.sh"), WORKER).unwrap();
    std::fs::set_permissions(
        payload.join("work.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(payload.join("conf/settings.txt"), "settings-v1").unwrap();
    // the "hosts" share this machine: each gets its own stage directory; the third's is a
    // plain file, so its upload fails
    let stage = root.path().join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join(&hosts[2]), "in the way").unwrap();
    let st = stage.display();
    let plan = format!(
        r#"name = "staging"

[groups.box]
hosts = ["{h0}", "{h1}", "{h2}"]

[data.channels]
values = ["{tag}-a", "{tag}-b", "{tag}-c", "{tag}-d"]
column = "channel"

[roles.worker]
group = "box"
for_each = "channels"
# the address sshd answered on is the host's label
command = "sh {st}/$(echo $SSH_CONNECTION | cut -d' ' -f3)/payload/work.sh {{channel}}"
ready = 'worker \S+ ready \(settings-v1\)'
ready_timeout = "60s"
stop = [{{ signal = "INT", grace = "5s" }}]

[run]
duration = "1s"

[[upload]]
src = "payload"
dest = "{st}/{{host}}/"

[[collect]]
src = "{st}/{{host}}/out"
dest = "collected"
"#,
        h0 = hosts[0],
        h1 = hosts[1],
        h2 = hosts[2],
    );
    std::fs::write(root.path().join("plan/plan.toml"), plan).unwrap();
    let launch = |run: &str| {
        let mut c = sortie();
        c.arg("launch")
            .arg(root.path().join("plan/plan.toml"))
            .arg("-F")
            .arg(&cfg)
            .arg("--json")
            .arg("--run-dir")
            .arg(root.path().join(run));
        let out = c.output().unwrap();
        let (stdout, stderr) = text(&out);
        let events: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(root.path().join(run).join("report.json")).unwrap(),
        )
        .unwrap();
        (out.status.code(), events, report, stderr)
    };

    let (code, events, report, stderr) = launch("run1");
    // the process placed on the third host never started: the run fails (exit 1)
    assert_eq!(code, Some(1), "{stderr}\n{}", sshd.log());
    let transfers = report["transfers"].as_array().unwrap();
    let rec = |step: &str, host: &str| -> &Value {
        transfers
            .iter()
            .find(|t| t["step"] == step && t["host"] == host)
            .unwrap_or_else(|| panic!("no {step} record for {host}: {transfers:?}"))
    };
    for h in &hosts[..2] {
        let u = rec("upload", h);
        assert_eq!(u["outcome"], "ok", "{u}");
        assert_eq!(u["files"], 2, "{u}");
        // byte for byte, mode kept
        let landed = stage.join(h).join("payload");
        assert_eq!(
            std::fs::read_to_string(landed.join("work.sh")).unwrap(),
            WORKER
        );
        assert_eq!(
            std::fs::read_to_string(landed.join("conf/settings.txt")).unwrap(),
            "settings-v1"
        );
        let mode = std::fs::metadata(landed.join("work.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
    let failed = rec("upload", &hosts[2]);
    assert_eq!(failed["outcome"], "failed", "{failed}");
    let why = failed["errors"][0].as_str().unwrap();
    assert!(
        why.contains(&hosts[2]) && why.contains("not a directory"),
        "{why}"
    );
    let h2 = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == hosts[2].as_str())
        .unwrap();
    assert!(h2["error"].as_str().unwrap().contains("upload #1"), "{h2}");
    let ps = processes(&report);
    let never: Vec<&Value> = ps
        .iter()
        .filter(|p| p["ending"]["kind"] == "never_started")
        .collect();
    assert_eq!(never.len(), 1, "{ps:?}");
    assert!(
        never[0]["ending"]["reason"]
            .as_str()
            .unwrap()
            .contains("upload"),
        "{:?}",
        never[0]
    );
    assert_eq!(
        ps.iter()
            .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
            .count(),
        3,
        "{ps:?}"
    );

    // order: a host's upload ends before its first start; collections after the stop check
    let pos = |f: &dyn Fn(&Value) -> bool| events.iter().position(f);
    for h in &hosts[..2] {
        let up = pos(&|e| {
            e["event"] == "transfer_finished"
                && e["transfer"]["step"] == "upload"
                && e["transfer"]["host"] == h.as_str()
        })
        .unwrap();
        let start =
            pos(&|e| e["event"] == "process_starting" && e["process"]["host"] == h.as_str())
                .unwrap();
        assert!(up < start, "upload of {h} at {up}, first start at {start}");
    }
    let confirmed = pos(&|e| e["event"] == "stop_confirmed").unwrap();
    let first_collect =
        pos(&|e| e["event"] == "transfer_finished" && e["transfer"]["step"] == "collect").unwrap();
    assert!(confirmed < first_collect);

    // every log came back into its host's directory, written before and after the stop
    for p in ps
        .iter()
        .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
    {
        let host = p["host"].as_str().unwrap();
        let key = p["key"].as_str().unwrap();
        let log = root
            .path()
            .join(format!("run1/collected/{host}/out/{key}.log"));
        let text =
            std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert_eq!(
            text,
            "started with settings-v1\nstopped by INT\n",
            "{}",
            log.display()
        );
        assert_eq!(rec("collect", host)["outcome"], "ok");
    }
    let skipped = rec("collect", &hosts[2]);
    assert_eq!(skipped["outcome"], "skipped", "{skipped}");
    assert!(
        skipped["errors"][0]
            .as_str()
            .unwrap()
            .contains("host failed"),
        "{skipped}"
    );
    assert!(
        stderr.contains(&format!("{} failed: ", hosts[2])) || stderr.contains("failed"),
        "{stderr}"
    );

    // a second run sends nothing new: every uploaded file is already identical
    let (_, _, report2, stderr2) = launch("run2");
    for h in &hosts[..2] {
        let u = report2["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["step"] == "upload" && t["host"] == h.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{stderr2}"));
        assert_eq!(
            (
                u["files"].as_u64(),
                u["unchanged"].as_u64(),
                u["bytes"].as_u64()
            ),
            (Some(0), Some(2), Some(0)),
            "{u}"
        );
    }
    let left = sortie_testkit::wait_for_no_remote_processes(&tag, Duration::from_secs(5));
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}

#[test]
fn ctrl_c_while_collecting_cancels_the_collection_and_leaves_no_partial_file() {
    let ex = Example::new(|p| {
        // a collection that takes a while: a 4 GB sparse file, read through the exec fallback
        p.replace(
            "[[collect]]\nsrc = \"examples/local/.sortie\"",
            "[[collect]]\nsrc = \"examples/local/big.bin\"",
        )
    });
    let big = ex.root().join("examples/local/big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let (mut child, events) = interrupt_when(&ex, &["--duration", "200ms"], |e| {
        e["event"] == "phase_changed" && e["phase"] == "collecting"
    });
    assert_eq!(child.wait().unwrap().code(), Some(130), "{events:?}");
    let collects: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "transfer_finished" && e["transfer"]["step"] == "collect")
        .collect();
    assert_eq!(collects.len(), 2, "{events:?}");
    for c in &collects {
        assert_eq!(c["transfer"]["outcome"], "failed", "{c}");
        assert!(
            c["transfer"]["errors"][0]
                .as_str()
                .unwrap()
                .contains("interrupted"),
            "{c}"
        );
    }
    for host in ["local1", "local2"] {
        let dir = ex.run_dir().join("collected").join(host);
        let left: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{host}: left {left:?}");
    }
    assert!(ex.report()["interrupted"].as_bool().unwrap());
    assert!(ex.left().is_empty(), "left: {:?}", ex.left());
}

#[test]
fn over_ssh_dash_p_sets_the_port_of_every_ssh_host_as_exec_does() {
    let Some((_sshd, hosts, cfg)) = ssh_fleet(
        "over_ssh_dash_p_sets_the_port_of_every_ssh_host_as_exec_does",
        2,
    ) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().port();
    drop(listener);
    let ex = Example::new(|p| {
        p.replace(
            "hosts = [\"local[1-2]\"]\ntransport = \"local\"",
            &format!("hosts = [\"{}\", \"{}\"]", hosts[0], hosts[1]),
        )
    });
    // ssh_config names the fixture's port; -p beats it, so the host is refused at `closed`.
    let out = ex
        .cmd()
        .arg("-F")
        .arg(&cfg)
        .args(["-p", &closed.to_string(), "--duration", "1s"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    // The example plan has thresholds, so a failed threshold's code says the run failed.
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains(&format!("{}:{closed}: Connection refused", hosts[0])),
        "the refused port is named: {stdout}\n{stderr}"
    );
}
