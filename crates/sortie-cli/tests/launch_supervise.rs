//! launch outlives its connection: host-side supervision, reconnect, the lease, detach and
//! attach, through the binary, on the local transport and against real sshd (a fixture, and
//! network namespaces for cuts).
//!
//! The stand-in prints `NAME ready`, then `NAME seq N` every 50 ms, and records the signal
//! that stops it in `SIGDIR/NAME.signal`; the tests read the processes' logs for gaps and
//! repeats, and the signal files for how each was stopped.

mod faults_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const STANDIN: &str = r#"name=$1; sigdir=$2
trap 'echo INT >> "$sigdir/$name.signal"; echo "$name stopping"; exit 0' INT
trap 'echo TERM >> "$sigdir/$name.signal"; exit 0' TERM
echo "$name ready"
i=0
while :; do i=$((i+1)); echo "$name seq $i"; sleep 0.05; done
"#;

fn sortie() -> Command {
    faults_support::sortie()
}

/// A plan of `count` stand-ins in a temp dir, tagged so its processes can be found.
struct Fleet {
    dir: tempfile::TempDir,
    tag: String,
}

impl Fleet {
    /// `hosts`: `None` for the local transport, else SSH host names.
    fn new(count: u32, hosts: Option<&[String]>) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("sup{}x{}", std::process::id(), fastrand_tag());
        let root = dir.path();
        std::fs::create_dir_all(root.join("sig")).unwrap();
        std::fs::write(root.join("standin.sh"), STANDIN).unwrap();
        // Readable and writable by a test account (the Dropbear cases log in as one).
        use std::os::unix::fs::PermissionsExt as _;
        for d in [root.to_path_buf(), root.join("sig")] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let group = match hosts {
            None => "hosts = [\"local\"]\ntransport = \"local\"".to_string(),
            Some(h) => {
                let list: Vec<String> = h.iter().map(|h| format!("\"{h}\"")).collect();
                format!("hosts = [{}]", list.join(", "))
            }
        };
        let plan = format!(
            "name = \"{tag}\"\n[groups.g]\n{group}\n[roles.w]\ngroup = \"g\"\ncount = {count}\n\
             command = \"sh {root}/standin.sh {tag}-{{instance}} {root}/sig\"\n\
             ready = 'ready'\nready_timeout = \"60s\"\n\
             stop = [{{ signal = \"INT\", grace = \"5s\" }}]\n[run]\nduration = \"60s\"\n",
            root = root.display()
        );
        std::fs::write(root.join("plan.toml"), plan).unwrap();
        Fleet { dir, tag }
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn launch(&self, extra: &[&str]) -> Command {
        let mut c = sortie();
        c.current_dir(self.dir.path())
            .args(["launch", "plan.toml", "--run-dir"])
            .arg(self.run_dir())
            .args(extra);
        c
    }

    fn on_run(&self, command: &str) -> Output {
        sortie()
            .args([command])
            .arg(self.run_dir())
            .output()
            .unwrap()
    }

    /// Stand-ins of this fleet still running.
    fn running(&self) -> usize {
        sortie_testkit::processes_matching(&format!("standin.sh {}", self.tag))
            .iter()
            .filter(|p| !p.cmdline.contains("sortie-sup"))
            .count()
    }

    fn wait_running(&self, n: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.running() == n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn signals(&self, instance: u32) -> String {
        let p = self
            .dir
            .path()
            .join(format!("sig/{}-{instance}.signal", self.tag));
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.run_dir().join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    fn run_id(&self) -> String {
        let text = std::fs::read_to_string(self.run_dir().join("run.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["run_id"].as_str().unwrap().to_string()
    }

    /// The `seq` numbers in the log of instance `k`, in order.
    fn seqs(&self, k: u32) -> Vec<u64> {
        let dir = self.run_dir().join("logs/w");
        let me = format!("{}-{k} ", self.tag);
        let text = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|t| t.contains(&format!("{me}ready")))
            .unwrap_or_else(|| panic!("no log of instance {k} in {}", dir.display()));
        text.lines()
            .filter_map(|l| l.split(&format!("{me}seq ")).nth(1))
            .map(|n| n.trim().parse().unwrap())
            .collect()
    }
}

fn fastrand_tag() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// No gap and no repeat: 1, 2, 3, ... n.
fn assert_complete(seqs: &[u64], what: &str) {
    assert!(seqs.len() > 10, "{what}: too few lines: {seqs:?}");
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(
            *s,
            i as u64 + 1,
            "{what}: line {} is seq {s}: {seqs:?}",
            i + 1
        );
    }
}

/// Starts `cmd` with --json and reads events until `until`; returns the child, its reader and
/// the events so far (the caller waits for the child, in [`rest`]).
#[allow(clippy::zombie_processes)]
fn start_until(
    cmd: &mut Command,
    until: impl Fn(&Value) -> bool,
) -> (Child, BufReader<std::process::ChildStdout>, Vec<Value>) {
    let mut child = cmd
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            let _ = child.wait();
            panic!("sortie ended early: {events:?}\n{err}");
        }
        let ev: Value = serde_json::from_str(&line).unwrap();
        let stop = until(&ev);
        events.push(ev);
        if stop {
            return (child, reader, events);
        }
    }
}

fn rest(
    mut child: Child,
    reader: BufReader<std::process::ChildStdout>,
    mut events: Vec<Value>,
) -> (Option<i32>, Vec<Value>, String) {
    for l in reader.lines() {
        events.push(serde_json::from_str(&l.unwrap()).unwrap());
    }
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
    let status = child.wait().unwrap();
    (status.code(), events, err)
}

fn holding(e: &Value) -> bool {
    e["event"] == "phase_changed" && e["phase"] == "holding"
}

fn remote_dir(run_id: &str) -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap())
        .join(".sortie-runs")
        .join(run_id)
}

#[test]
fn detach_then_status_and_stop_from_new_processes() {
    let f = Fleet::new(2, None);
    let out = f.launch(&["--detach"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("detached") && stdout.contains("sortie attach"),
        "{stdout}"
    );
    // the controller is gone; the fleet runs on
    assert!(
        f.wait_running(2, Duration::from_secs(5)),
        "stand-ins running: {}",
        f.running()
    );
    std::thread::sleep(Duration::from_secs(1)); // lines that no controller follows
    let st = f.on_run("status");
    let text = String::from_utf8_lossy(&st.stdout);
    assert_eq!(st.status.code(), Some(0), "{text}");
    assert!(text.contains("controller detached"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("w "))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1..], ["2", "2", "0", "0"], "{text}");
    let stop = f.on_run("stop");
    let text = String::from_utf8_lossy(&stop.stdout);
    assert_eq!(
        stop.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert_eq!(f.running(), 0);
    for k in 1..=2 {
        assert_eq!(f.signals(k).lines().next(), Some("INT"), "instance {k}");
        assert_complete(&f.seqs(k), &format!("instance {k}"));
    }
    let report = f.report();
    assert_eq!(report["finished"], true);
    for p in report["processes"].as_array().unwrap() {
        assert_eq!(p["ending"]["kind"], "ready_then_stopped", "{p}");
    }
    assert!(
        !remote_dir(&f.run_id()).exists(),
        "the remote directory is left"
    );
}

#[test]
fn a_detached_run_nobody_attaches_to_stops_itself_at_its_end() {
    let f = Fleet::new(2, None);
    let out = f
        .launch(&["--detach", "--duration", "2s"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(f.wait_running(2, Duration::from_secs(2)) || f.running() == 0);
    assert!(
        f.wait_running(0, Duration::from_secs(15)),
        "still running: {}",
        f.running()
    );
    for k in 1..=2 {
        assert_eq!(f.signals(k).lines().next(), Some("INT"), "instance {k}");
    }
    let st = f.on_run("status");
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("at the end of the detached run"), "{text}");
    // the run can still be reported and cleaned up
    let stop = f.on_run("stop");
    assert_eq!(
        stop.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert_eq!(f.report()["finished"], true);
    assert!(!remote_dir(&f.run_id()).exists());
}

#[test]
fn a_killed_controller_leaves_nothing_beyond_its_lease() {
    let f = Fleet::new(2, None);
    let (mut child, reader, _) = start_until(
        &mut f.launch(&["--lease", "3s", "--reconnect-window", "1s"]),
        holding,
    );
    child.kill().unwrap(); // SIGKILL: no stop, no goodbye
    let killed = Instant::now();
    let _ = rest(child, reader, Vec::new());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        f.running(),
        2,
        "the processes must outlive the controller until the lease"
    );
    assert!(
        f.wait_running(0, Duration::from_secs(15)),
        "still running: {}",
        f.running()
    );
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(3 + 5 + 4),
        "stopped after {took:?}"
    );
    for k in 1..=2 {
        assert_eq!(
            f.signals(k).lines().next(),
            Some("INT"),
            "instance {k}: SIGINT first"
        );
    }
    let st = f.on_run("status");
    assert!(String::from_utf8_lossy(&st.stdout).contains("the lease expired"));
    // `stop` still writes the report and removes the remote directory
    let stop = f.on_run("stop");
    assert_eq!(
        stop.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(
        !remote_dir(&f.run_id()).exists(),
        "the remote directory is left"
    );
    assert_eq!(f.report()["finished"], true);
}

#[test]
fn attach_takes_over_from_a_killed_controller_before_its_lease_expires() {
    let f = Fleet::new(2, None);
    let (mut child, reader, _) = start_until(
        &mut f.launch(&["--lease", "30s", "--duration", "6s"]),
        holding,
    );
    child.kill().unwrap();
    let _ = rest(child, reader, Vec::new());
    let out = f.on_run("attach");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.running(), 0);
    let report = f.report();
    assert_eq!(report["finished"], true, "{report}");
    for p in report["processes"].as_array().unwrap() {
        assert_eq!(p["ending"]["kind"], "ready_then_stopped", "{p}");
    }
    for k in 1..=2 {
        assert_eq!(f.signals(k).lines().next(), Some("INT"));
        // offsets are saved every second: after a SIGKILL a second of lines may come twice,
        // but none is missing
        let s = f.seqs(k);
        let mut seen = s.clone();
        seen.dedup();
        seen.sort();
        seen.dedup();
        assert_complete(&seen, &format!("instance {k}"));
    }
    assert!(!remote_dir(&f.run_id()).exists());
}

/// Launches `f` over the server of `cfg` (pid `server`), kills the server's per-connection
/// processes during the hold, and checks what a user would: the processes outlive their
/// connection, sortie reconnects, no line is lost, the stop is clean and nothing is left.
/// Returns the run's events.
fn drop_sessions_during_hold(
    f: &Fleet,
    cfg: &Path,
    server: u32,
    log: &dyn Fn() -> String,
) -> Vec<Value> {
    let mut cmd = f.launch(&["--duration", "5s", "-F"]);
    cmd.arg(cfg);
    let (child, reader, events) = start_until(&mut cmd, holding);
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("pkill")
        .args(["-KILL", "-P", &server.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "no server session to kill");
    assert_eq!(
        f.running(),
        2,
        "the processes must outlive their connection"
    );
    let (code, events, err) = rest(child, reader, events);
    assert_eq!(code, Some(0), "{err}\n{events:?}\n{}", log());
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        kinds.contains(&"host_disconnected") && kinds.contains(&"host_reconnected"),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"process_lost"), "{kinds:?}");
    for p in f.report()["processes"].as_array().unwrap() {
        assert_eq!(p["ending"]["kind"], "ready_then_stopped", "{p}");
    }
    for k in 1..=2 {
        assert_complete(&f.seqs(k), &format!("instance {k}"));
        assert_eq!(f.signals(k).lines().next(), Some("INT"));
    }
    assert_eq!(f.running(), 0);
    events
}

#[test]
fn over_ssh_a_dropped_connection_is_followed_again_with_no_line_lost_or_repeated() {
    let test = "over_ssh_a_dropped_connection_is_followed_again_with_no_line_lost_or_repeated";
    let Some(sshd) = faults_support::sshd_or_skip(test) else {
        return;
    };
    let hosts = sortie_testkit::hosts(1);
    let cfg = sshd.ssh_config_for(&[hosts[0].as_str()]).unwrap();
    let f = Fleet::new(2, Some(&hosts));
    let pid = sshd.pid().expect("sshd runs");
    drop_sessions_during_hold(&f, &cfg, pid, &|| sshd.log());
    assert_eq!(f.report()["hosts"][0]["reconnects"], 1);
}

/// Cuts host 0 of a one-host namespace fleet for `cut`, during the hold.
fn cut_during_hold(
    test: &str,
    cut: Duration,
    still_running: bool,
    extra: &[&str],
) -> Option<(Fleet, Option<i32>, Vec<Value>, String)> {
    let mut fleet = faults_support::fleet_or_skip(test, 1)?;
    let cfg = fleet
        .ssh_config(&["ServerAliveInterval 1", "ServerAliveCountMax 3"])
        .unwrap();
    let names = fleet.names();
    let f = Fleet::new(2, Some(&names));
    let mut cmd = f.launch(extra);
    cmd.arg("-F").arg(&cfg);
    let (child, reader, events) = start_until(&mut cmd, holding);
    std::thread::sleep(Duration::from_millis(500));
    fleet.blackhole(0).unwrap();
    std::thread::sleep(cut);
    if still_running {
        assert_eq!(
            f.running(),
            2,
            "processes on the cut host keep running during the cut"
        );
    }
    fleet.heal(0).unwrap();
    let (code, events, err) = rest(child, reader, events);
    Some((f, code, events, err))
}

#[test]
fn over_ssh_a_ten_second_network_cut_loses_nothing() {
    let test = "over_ssh_a_ten_second_network_cut_loses_nothing";
    let Some((f, code, events, err)) = cut_during_hold(
        test,
        Duration::from_secs(10),
        true,
        &["--duration", "20s", "--reconnect-window", "40s"],
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{err}");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"host_reconnected"), "{kinds:?}");
    assert!(
        !kinds.contains(&"process_lost") && !kinds.contains(&"host_lost"),
        "{kinds:?}"
    );
    assert_eq!(f.report()["hosts"][0]["reconnects"], 1);
    for k in 1..=2 {
        assert_complete(&f.seqs(k), &format!("instance {k}"));
    }
    assert_eq!(f.running(), 0);
}

#[test]
fn over_ssh_a_cut_longer_than_the_window_loses_the_host_and_the_watchdog_stops_its_processes() {
    let test =
        "over_ssh_a_cut_longer_than_the_window_loses_the_host_and_the_watchdog_stops_its_processes";
    let started = Instant::now();
    let Some((f, _code, events, err)) = cut_during_hold(
        test,
        Duration::from_secs(12),
        false,
        &[
            "--duration",
            "30s",
            "--reconnect-window",
            "2s",
            "--lease",
            "4s",
        ],
    ) else {
        return;
    };
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        kinds.contains(&"host_lost") && kinds.contains(&"process_lost"),
        "{kinds:?}\n{err}"
    );
    // lease 4 s after the last renewal, then the INT grace: well within the 12 s cut
    for k in 1..=2 {
        assert_eq!(f.signals(k).lines().next(), Some("INT"), "instance {k}");
    }
    assert_eq!(f.running(), 0);
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// A Dropbear fixture for a BusyBox-ash test account (as on the SDK's embedded targets), with
/// an ssh_config reaching it as `127.0.0.1`.
fn dropbear_or_skip(
    test: &str,
) -> Option<(
    sortie_testkit::Dropbear,
    sortie_testkit::TestUser,
    tempfile::TempDir,
    PathBuf,
)> {
    use sortie_testkit::{test_user, Dropbear, KeyKind, Keys, LoginShell};
    if sortie_testkit::require_dropbear().is_none() {
        sortie_testkit::skip(
            test,
            "Dropbear is not installed (Debian package dropbear-bin)",
        );
        return None;
    }
    let user = match test_user(LoginShell::BusyboxAsh, &Keys::shared().unwrap()) {
        Ok(u) => u,
        Err(e) => {
            sortie_testkit::skip(test, &e.to_string());
            return None;
        }
    };
    let server = Dropbear::start(&user).expect("dropbear fixture starts");
    let known = server.known_hosts_for(&["127.0.0.1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host *\n    Port {}\n    User {}\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
             UserKnownHostsFile {}\n    GlobalKnownHostsFile /dev/null\n    \
             StrictHostKeyChecking yes\n    BatchMode yes\n",
            server.port(),
            user.name,
            server.client_key(KeyKind::Ed25519).display(),
            known.display()
        ),
    )
    .unwrap();
    Some((server, user, dir, cfg))
}

#[test]
fn over_dropbear_a_dropped_connection_is_followed_again_with_no_line_lost() {
    let test = "over_dropbear_a_dropped_connection_is_followed_again_with_no_line_lost";
    let Some((server, user, _dir, cfg)) = dropbear_or_skip(test) else {
        return;
    };
    let f = Fleet::new(2, Some(&["127.0.0.1".to_string()]));
    let pid = server.pid().expect("dropbear runs");
    drop_sessions_during_hold(&f, &cfg, pid, &|| server.log());
    let left = user.home.join(".sortie-runs").join(f.run_id());
    assert!(!left.exists(), "the remote directory is left");
}

#[test]
fn over_dropbear_a_killed_controller_is_taken_over_by_attach() {
    let test = "over_dropbear_a_killed_controller_is_taken_over_by_attach";
    let Some((server, _user, _dir, cfg)) = dropbear_or_skip(test) else {
        return;
    };
    let f = Fleet::new(2, Some(&["127.0.0.1".to_string()]));
    let mut cmd = f.launch(&["--duration", "5s", "--lease", "30s", "-F"]);
    cmd.arg(&cfg);
    let (mut child, reader, _) = start_until(&mut cmd, holding);
    child.kill().unwrap();
    let _ = rest(child, reader, Vec::new());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.running(), 2);
    let out = f.on_run("attach");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(f.running(), 0);
    assert_eq!(f.report()["finished"], true);
    for k in 1..=2 {
        assert_eq!(f.signals(k).lines().next(), Some("INT"));
    }
}
