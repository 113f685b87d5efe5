//! Load shapes through the binary, on the local transport and over a fixture OpenSSH sshd:
//! stages followed in `events.jsonl`, a step load that finds the breaking point of stand-ins
//! which refuse work above a known count (a shared counter), and `abort = true` stopping the
//! run early with nothing left running. What a user checks: the exit code, the summary,
//! `report.json` and `events.jsonl`, and the processes on the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

/// The stand-in: counts itself in a shared counter (under flock); above `LIMIT` it says so and
/// exits 1 at once, else it prints its ready line and runs until stopped.
const WORKER: &str = r#"#!/bin/sh
dir=$1 limit=$2
n=$(flock "$dir/lock" sh -c 'n=$(( $(cat "$1/n" 2>/dev/null || echo 0) + 1 )); echo $n > "$1/n"; echo $n' _ "$dir")
if [ "$n" -gt "$limit" ]; then
  echo "worker $n: refused, over $limit"
  exit 1
fi
echo "worker $n: UP"
trap 'exit 0' INT TERM
while :; do sleep 0.2; done
"#;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A plan in a temp dir with the stand-in; `role` is the body of `[roles.w]` after its command.
struct Shaped {
    dir: tempfile::TempDir,
    tag: String,
}

impl Shaped {
    /// `hosts`: `None` for the local transport, else SSH host names.
    fn new(limit: u32, role: &str, rest: &str, hosts: Option<&[String]>) -> Shaped {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!(
            "shp{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let root = dir.path();
        std::fs::write(root.join("worker.sh"), WORKER).unwrap();
        std::fs::create_dir(root.join("counter")).unwrap();
        let hosts = match hosts {
            None => "hosts = [\"local1\"]\ntransport = \"local\"".to_string(),
            Some(h) => format!("hosts = [\"{}\"]", h[0]),
        };
        let plan = format!(
            r#"name = "shapes"
[groups.box]
{hosts}
[roles.w]
group = "box"
command = "sh {root}/worker.sh {root}/counter {limit} {tag}-{{seq}}"
ready = "UP"
ready_timeout = "30s"
stop = [{{ signal = "INT", grace = "5s" }}]
{role}
{rest}
"#,
            root = root.display()
        );
        std::fs::write(root.join("plan.toml"), plan).unwrap();
        Shaped { dir, tag }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn run_dir(&self) -> PathBuf {
        self.root().join("run")
    }

    fn launch(&self, extra: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
        c.env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1")
            .current_dir(self.root())
            .args(["launch", "plan.toml", "--run-dir"])
            .arg(self.run_dir())
            .args(extra);
        c.output().unwrap()
    }

    fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.run_dir().join("report.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.run_dir().join("events.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Stand-ins of this test still running, after a short grace.
    fn left(&self) -> Vec<(u32, String)> {
        sortie_testkit::wait_for_no_remote_processes(&self.tag, Duration::from_secs(5))
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fixture sshd and an `-F` config for one host, or `None` (skipped, named) without sshd.
fn ssh_host(test: &str) -> Option<(sortie_testkit::Sshd, Vec<String>, PathBuf)> {
    if sortie_testkit::require_sshd().is_none() {
        sortie_testkit::skip(
            test,
            "OpenSSH sshd is not installed (scripts/test.sh installs it as root)",
        );
        return None;
    }
    let sshd = sortie_testkit::Sshd::builder()
        .start()
        .expect("fixture sshd");
    let hosts = sortie_testkit::hosts(1);
    let cfg = sshd.ssh_config_for(&[hosts[0].as_str()]).unwrap();
    Some((sshd, hosts, cfg))
}

/// `(elapsed_ms, target, live)` of role `w` in each recorded progress event.
fn progress(events: &[Value]) -> Vec<(u64, u64, u64)> {
    (events.iter())
        .filter(|e| e["event"] == "progress")
        .filter_map(|e| {
            let r = e["roles"].as_array()?.iter().find(|r| r["role"] == "w")?;
            let live = r["starting"].as_u64()? + r["ready"].as_u64()?;
            Some((e["elapsed_ms"].as_u64()?, r["target"].as_u64()?, live))
        })
        .collect()
}

const THREE_STAGES: &str = r#"count = 6
stages = [{ target = 4, over = "2s" }, { hold = "2s" }, { target = 1, over = "2s" }]"#;

/// At each stage's end (2 s, 4 s, 6 s), the recorded live count is the stage's target, give
/// or take one start (the count is read a progress interval apart).
fn check_three_stages(s: &Shaped, out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    let p = progress(&s.events());
    for (end_ms, target) in [(2000u64, 4u64), (4000, 4), (6000, 1)] {
        let near: Vec<_> = (p.iter())
            .filter(|(at, _, _)| (end_ms..end_ms + 600).contains(at))
            .collect();
        assert!(
            !near.is_empty(),
            "no progress event near {end_ms} ms: {p:?}"
        );
        assert!(
            near.iter().any(|(_, _, live)| live.abs_diff(target) <= 1),
            "at {end_ms} ms the live count is not within one of {target}: {near:?}"
        );
    }
    let stages = (s.events().iter())
        .filter(|e| e["event"] == "stage_changed")
        .count();
    assert_eq!(stages, 3, "one stage_changed per stage");
    let report = s.report();
    assert_eq!(report["load"][0]["role"], "w");
    assert!(report["load"][0]["points"].as_array().unwrap().len() >= 3);
    assert!(s.left().is_empty(), "left: {:?}", s.left());
}

#[test]
fn three_stages_on_the_local_transport_follow_each_target() {
    let s = Shaped::new(100, THREE_STAGES, "", None);
    let out = s.launch(&[]);
    check_three_stages(&s, &out);
}

#[test]
fn over_ssh_three_stages_follow_each_target() {
    let Some((_sshd, hosts, cfg)) = ssh_host("over_ssh_three_stages_follow_each_target") else {
        return;
    };
    let s = Shaped::new(100, THREE_STAGES, "", Some(&hosts));
    let out = s.launch(&["-F", cfg.to_str().unwrap()]);
    check_three_stages(&s, &out);
}

const STEP: &str = r#"count = 12
step = { add = 2, every = "3s", max = 12 }"#;
const STEP_THRESHOLD: &str = r#"[run]
duration = "1s"
[[thresholds]]
metric = "ready_ratio"
role = "w"
min = 0.99
window = "4s"
"#;

/// The stand-ins take 4: the step at 6 breaks, the run backs off to 4 and says so.
fn check_step(s: &Shaped, out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(4),
        "a failed threshold: {}",
        text(out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("step load: held 4 w, broke at 6: w ready_ratio"),
        "{}",
        text(out)
    );
    let report = s.report();
    assert_eq!(report["steps"][0]["held"], 4, "{report:#}");
    assert_eq!(report["steps"][0]["broke_at"], 6);
    assert_eq!(report["thresholds"][0]["passed"], false);
    let p = progress(&s.events());
    assert!(
        p.iter().all(|(_, _, live)| *live <= 6),
        "live above the breaking step: {p:?}"
    );
    let last_target = p.last().map(|x| x.1);
    assert_eq!(last_target, Some(4), "back to the last step that held");
    assert!(s.left().is_empty(), "left: {:?}", s.left());
}

#[test]
fn a_step_load_reports_the_count_at_which_the_stand_ins_broke() {
    let s = Shaped::new(4, STEP, STEP_THRESHOLD, None);
    let out = s.launch(&[]);
    check_step(&s, &out);
}

#[test]
fn over_ssh_a_step_load_reports_the_breaking_point() {
    let Some((_sshd, hosts, cfg)) = ssh_host("over_ssh_a_step_load_reports_the_breaking_point")
    else {
        return;
    };
    let s = Shaped::new(4, STEP, STEP_THRESHOLD, Some(&hosts));
    let out = s.launch(&["-F", cfg.to_str().unwrap()]);
    check_step(&s, &out);
}

const ABORT: &str = r#"[run]
duration = "60s"
[[thresholds]]
metric = "failed"
max = 0
window = "2s"
abort = true
"#;

/// The third and fourth stand-ins fail; the run stops within one window of it, well before its 60 s.
fn check_abort(s: &Shaped, out: &Output) {
    assert_eq!(out.status.code(), Some(4), "{}", text(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("aborted at") && stdout.contains(" > 0 over the last 2s"),
        "{}",
        text(out)
    );
    let events = s.events();
    let failed_at = (events.iter())
        .find(|e| e["event"] == "process_failed")
        .and_then(|e| e["at_ms"].as_u64())
        .expect("a process_failed event");
    let report = s.report();
    let aborted_at = report["aborted"]["at_ms"].as_u64().expect("report.aborted");
    assert!(
        aborted_at >= failed_at && aborted_at <= failed_at + 2000,
        "aborted at {aborted_at} ms, the failure at {failed_at} ms"
    );
    assert!(
        report["elapsed_ms"].as_u64().unwrap() < 30_000,
        "{report:#}"
    );
    let stopped = (report["processes"].as_array().unwrap().iter())
        .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
        .count();
    assert!(
        stopped >= 2,
        "the ready ones are stopped cleanly: {report:#}"
    );
    assert!(s.left().is_empty(), "left: {:?}", s.left());
}

#[test]
fn abort_stops_the_run_within_its_window_and_leaves_nothing() {
    let s = Shaped::new(2, "count = 4\nrate = \"2/s\"", ABORT, None);
    let out = s.launch(&[]);
    check_abort(&s, &out);
}

#[test]
fn over_ssh_abort_stops_the_run_and_leaves_nothing_on_the_host() {
    let Some((_sshd, hosts, cfg)) =
        ssh_host("over_ssh_abort_stops_the_run_and_leaves_nothing_on_the_host")
    else {
        return;
    };
    let s = Shaped::new(2, "count = 4\nrate = \"2/s\"", ABORT, Some(&hosts));
    let out = s.launch(&["-F", cfg.to_str().unwrap()]);
    check_abort(&s, &out);
}

#[test]
fn detach_is_refused_with_a_step_load_before_anything_runs() {
    let s = Shaped::new(4, STEP, STEP_THRESHOLD, None);
    let out = s.launch(&["--detach"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--detach cannot be used here: role w has a step load"),
        "{stderr}"
    );
    assert!(!s.run_dir().exists(), "nothing ran");
    assert!(!s.root().join("counter/n").exists(), "no stand-in started");
}

#[test]
fn dry_run_prints_the_step_schedule() {
    let s = Shaped::new(4, STEP, STEP_THRESHOLD, None);
    let out = s.launch(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "step load (from the launch's start): +2 every 3s up to 12",
        "1. from 0ms: 2",
        "6. from 15s: 12",
        "ready_ratio (w) >= 0.99, over each last 4s during the run",
    ] {
        assert!(stdout.contains(want), "{want:?} missing:\n{stdout}");
    }
}
