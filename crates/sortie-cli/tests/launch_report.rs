//! `sortie report RUN_DIR`: a launch of the local example is recorded live, then rendered again
//! from its `events.jsonl` alone. What a user checks: the same summary as the end of the live
//! run, the same `report.json` and `report.html` (with `--html`), and for a record cut short (a controller that died) a summary
//! that says the run did not finish instead of an error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// examples/local in a temp dir (channel names unique to this test), run as try.sh runs it.
fn example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("examples/local");
    std::fs::create_dir_all(&ex).unwrap();
    for f in ["fake-master.sh", "fake-viewer.sh"] {
        std::fs::copy(repo().join("examples/local").join(f), ex.join(f)).unwrap();
    }
    let plan = std::fs::read_to_string(repo().join("examples/local/plan.toml")).unwrap();
    let tag = format!("rp{}", std::process::id());
    let plan = plan
        .replace("\"demo-", &format!("\"{tag}-"))
        // Generous: tests share the machine with builds; speed is not what they check.
        .replace("ready_timeout = \"5s\"", "ready_timeout = \"60s\"")
        .replace("max = \"3s\"", "max = \"60s\"")
        .replace("duration = \"5s\"", "duration = \"2s\"");
    std::fs::write(ex.join("plan.toml"), plan).unwrap();
    dir
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs the example plan of `root` live, recording into `run`.
fn launch_live(root: &tempfile::TempDir, run: &std::path::Path) -> std::process::Output {
    sortie()
        .current_dir(root.path())
        .args(["launch", "examples/local/plan.toml", "--run-dir"])
        .arg(run)
        .output()
        .unwrap()
}

#[test]
fn a_recorded_launch_replays_to_the_same_summary_and_report() {
    let root = example();
    let run = root.path().join("run");
    let live = launch_live(&root, &run);
    // one channel of the example fails on purpose; its thresholds decide the exit code
    let live_code = live.status.code();
    let live_text = stdout(&live);
    assert!(
        live_text.contains("local-demo: 12 processes"),
        "{live_text}{}",
        stderr(&live)
    );
    let live_report = json(&run.join("report.json"));
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let lines: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let run_id = lines[0]["run_id"].as_str().unwrap().to_string();
    assert!(lines
        .iter()
        .all(|l| l["v"] == 1 && l["run_id"] == run_id.as_str()));
    assert_eq!(lines.last().unwrap()["event"], "launch_finished");
    assert_eq!(live_report["run_id"], run_id.as_str());

    std::fs::remove_file(run.join("report.json")).unwrap();
    let live_page = std::fs::read_to_string(run.join("report.html")).unwrap();
    std::fs::remove_file(run.join("report.html")).unwrap();
    let replay = sortie()
        .args(["report", "--html"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(replay.status.code(), live_code, "{}", stderr(&replay));
    // the same text, durations included: both come from the same events
    assert_eq!(stdout(&replay), live_text);
    assert_eq!(json(&run.join("report.json")), live_report);
    // and the same page, byte for byte
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page == live_page, "report.html differs from the live run's");
}

#[test]
fn a_truncated_record_renders_what_is_known_and_says_the_run_did_not_finish() {
    let root = example();
    let run = root.path().join("run");
    let live = launch_live(&root, &run);
    assert!(run.join("events.jsonl").exists(), "{}", stderr(&live));
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    // Cut in the middle of the hold, in the middle of a line, as a killed controller might.
    let holding = events.find("\"phase\":\"holding\"").expect("the run held");
    let cut = holding + events[holding..].find('\n').unwrap() + 40;
    let dead = root.path().join("dead");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("events.jsonl"), &events[..cut]).unwrap();

    let out = sortie().arg("report").arg(&dead).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("local-demo: 12 processes"), "{text}");
    assert!(text.contains("the run did not finish"), "{text}");
    let report = json(&dead.join("report.json"));
    assert_eq!(report["finished"], false);
    // the masters were ready when the record ends; nothing ended for them yet
    let masters: Vec<&Value> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "master" && p["time_to_ready_ms"].is_u64())
        .collect();
    assert_eq!(masters.len(), 3, "{report:#}");
    assert!(masters.iter().all(|p| p["ending"]["kind"] == "unfinished"));
    assert!(stderr(&out).contains("unreadable"), "{}", stderr(&out));
}
