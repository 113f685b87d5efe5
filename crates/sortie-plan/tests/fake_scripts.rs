//! The stand-ins in `examples/local/` behave like the KVS sample programs: startup lines, a
//! ready line, a clean stop on SIGINT (recorded in ./signal.txt), and a failure for channels
//! ending in 7.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/local")
        .join(name)
}

/// Starts `sh SCRIPT CHANNEL` in `dir`, returning the child and its stdout lines.
fn start(name: &str, channel: &str, dir: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new("sh")
        .arg(script(name))
        .arg(channel)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines up to and including the first that contains `needle` (fails after 10 s).
fn until(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => {
                let done = line.contains(needle);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {needle:?} ({e}); saw {seen:?}"),
        }
    }
}

fn interrupt(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

#[test]
fn master_is_ready_then_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = start("fake-master.sh", "ch-1", dir.path());
    let before = until(&rx, "set up done");
    assert!(before[0].starts_with("[KVS Master]"), "{before:?}");
    assert_eq!(
        before.last().unwrap(),
        "[KVS Master] Channel ch-1 set up done"
    );
    interrupt(&child);
    let after = until(&rx, "Cleanup done");
    assert_eq!(after, ["Cleaning up....", "Cleanup done"]);
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("signal.txt")).unwrap(),
        "INT\n"
    );
}

#[test]
fn viewer_is_ready_then_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = start("fake-viewer.sh", "ch-2", dir.path());
    until(&rx, "[KVS Viewer] Signaling client connection established");
    interrupt(&child);
    until(&rx, "Cleanup done");
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("signal.txt")).unwrap(),
        "INT\n"
    );
}

#[test]
fn a_channel_ending_in_7_fails_like_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["fake-master.sh", "fake-viewer.sh"] {
        let (mut child, rx) = start(name, "ch-7", dir.path());
        let lines = until(&rx, "Signaling client generated an error 0x5d000003");
        assert!(!lines
            .iter()
            .any(|l| l.contains("set up done") || l.contains("established")));
        assert_eq!(child.wait().unwrap().code(), Some(1), "{name}");
    }
    assert!(!dir.path().join("signal.txt").exists());
}
