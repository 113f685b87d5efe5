//! GNU parallel conformance: every case of `tests/data/parallel_conformance.json` (command
//! lines written from parallel's manual, tutorial and examples; expected output recorded from
//! GNU parallel 20221122 by `scripts/parallel_conformance.py`) either gives exactly parallel's
//! output and exit status, or is refused before anything runs with exit 2, an error naming the
//! template column or the option, and a hint. No case may differ silently.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

struct Case {
    name: String,
    args: Vec<String>,
    stdin: Option<String>,
    same: bool,
    stdout: String,
    stderr: String,
    exit: i32,
    place: Option<String>,
    /// Parallel's stderr holds its own diagnostics: compare stdout and exit status only.
    compare_stderr: bool,
    /// A known difference, with its reason (the shell jobs run in).
    known_difference: Option<String>,
}

fn cases() -> (BTreeMap<String, String>, Vec<Case>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parallel_conformance.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    let files = data["files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    let cases = data["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: text(&c["name"]),
            args: c["args"].as_array().unwrap().iter().map(text).collect(),
            stdin: c["stdin"].as_str().map(str::to_owned),
            same: c["expect"] == "same",
            stdout: text(&c["stdout"]),
            stderr: text(&c["stderr"]),
            exit: c["exit"].as_i64().unwrap() as i32,
            place: c.get("where").and_then(Value::as_str).map(str::to_owned),
            compare_stderr: c.get("compare_stderr") != Some(&Value::Bool(false)),
            known_difference: c
                .get("known_difference")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect();
    (files, cases)
}

/// Runs `sortie run PREFIX... --plain ARGS` in a fresh directory holding the case files.
fn run(prefix: &[String], case: &Case, files: &BTreeMap<String, String>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sortie"))
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .arg("run")
        .args(prefix)
        .arg("--plain")
        .args(&case.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = case.stdin.clone().unwrap_or_default();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn ordered(case: &Case) -> bool {
    case.args.iter().any(|a| a == "-k" || a == "--keep-order")
}

fn sorted_lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.split_inclusive('\n').collect();
    v.sort_unstable();
    v
}

/// What is wrong with sortie's result for `case`, if anything.
fn check(case: &Case, out: &Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(-1);
    if case.same {
        let same_out = if ordered(case) {
            stdout == case.stdout
        } else {
            sorted_lines(&stdout) == sorted_lines(&case.stdout)
        };
        let same_err = !case.compare_stderr || stderr == case.stderr;
        if same_out && same_err && code == case.exit {
            return None;
        }
        return Some(format!(
            "{}: differs\n  parallel: exit {} stdout {:?} stderr {:?}\n  sortie:   exit {code} stdout {stdout:?} stderr {stderr:?}",
            case.name, case.exit, case.stdout, case.stderr
        ));
    }
    let place = case.place.as_deref().unwrap_or("");
    if code == 2 && stdout.is_empty() && stderr.contains(place) && stderr.contains("help") {
        return None;
    }
    Some(format!(
        "{}: not refused with {place:?} and a hint: exit {code} stdout {stdout:?} stderr {stderr:?}",
        case.name
    ))
}

/// Runs `cases` with `prefix`; prints and returns the wrong ones. A known difference must
/// still differ (else the list is stale, which is wrong too) and is reported, not counted.
fn conform(prefix: &[String], cases: &[&Case], files: &BTreeMap<String, String>) -> Vec<String> {
    let mut wrong = Vec::new();
    let (mut same, mut refused, mut known) = (0, 0, 0);
    for case in cases {
        let result = check(case, &run(prefix, case, files));
        match (result, &case.known_difference) {
            (Some(why), Some(reason)) => {
                known += 1;
                println!("known difference ({reason}):\n{why}");
            }
            (None, Some(_)) => wrong.push(format!(
                "{}: now matches parallel: drop it from SHELL_DIFFERS and regenerate",
                case.name
            )),
            (Some(why), None) => wrong.push(why),
            (None, None) if case.same => same += 1,
            (None, None) => refused += 1,
        }
    }
    println!(
        "{} cases: {same} identical to GNU parallel, {refused} refused with a hint, {known} known difference(s), {} wrong",
        cases.len(),
        wrong.len()
    );
    wrong
}

#[test]
fn every_case_matches_gnu_parallel_or_is_refused_with_a_hint() {
    let (files, cases) = cases();
    let prefix = ["-H".to_owned(), "local".to_owned()];
    let wrong = conform(&prefix, &cases.iter().collect::<Vec<_>>(), &files);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Cases whose result depends on where a job runs (slots, the working directory, timing).
fn depends_on_placement(case: &Case) -> bool {
    let text = case.args.join(" ");
    let own_slots = case
        .args
        .iter()
        .any(|a| a.starts_with("-j") || a == "--jobs");
    own_slots
        || ["{%}", "JOBSLOT", "tries", "t2.", "--halt"]
            .iter()
            .any(|s| text.contains(s))
}

#[test]
fn identical_cases_give_the_same_result_over_five_hosts_with_four_slots() {
    if sortie_testkit::require_sshd().is_none() {
        sortie_testkit::skip(
            "identical_cases_give_the_same_result_over_five_hosts_with_four_slots",
            "OpenSSH sshd is not installed",
        );
        return;
    }
    let sshd = sortie_testkit::Sshd::builder().start().unwrap();
    let hosts = sortie_testkit::hosts(5);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    let (files, cases) = cases();
    let prefix = vec![
        "-F".to_owned(),
        cfg.display().to_string(),
        "-H".to_owned(),
        hosts.join(","),
        "-j".to_owned(),
        "4".to_owned(),
    ];
    // Cases with their own -j (jobs per host) are placement-dependent and left out.
    let chosen: Vec<&Case> = cases
        .iter()
        .filter(|c| c.same && !depends_on_placement(c))
        .collect();
    let wrong = conform(&prefix, &chosen, &files);
    assert!(chosen.len() > 50, "only {} cases ran", chosen.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn joblog_plus_appends_rows_without_a_header_as_parallel_does() {
    // `parallel --joblog +log echo ::: a` run twice leaves two rows and no header.
    let dir = tempfile::tempdir().unwrap();
    for value in ["a", "b c"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sortie"))
            .current_dir(dir.path())
            .args([
                "run", "-H", "local", "--joblog", "+log", "-k", "echo", ":::", value,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let text = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, command) in rows.iter().zip(["echo a", "echo 'b c'"]) {
        assert_eq!(row.len(), 9, "{text}");
        assert_eq!((row[0], row[6], row[8]), ("1", "0", command), "{text}");
    }
    assert!(!dir.path().join("+log").exists());
}
