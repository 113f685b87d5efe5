//! The host-side scripts, run with the local `/bin/sh` in a temporary remote directory.

use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use crate::launch::follow::{Frame, FrameParser};

fn sh(script: &str) -> String {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(path: &std::path::Path, secs: u64) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn dir_words_take_home_and_append_the_run_id() {
    assert_eq!(
        dir_word("~/.sortie-runs", "r1"),
        "\"$HOME\"/.sortie-runs/r1"
    );
    assert_eq!(dir_word("/var/tmp/x/", "r1"), "/var/tmp/x/r1");
    assert_eq!(dir_word("rel dir", "r1"), "\"$HOME\"/'rel dir/r1'");
    assert_eq!(parse_proc_dir(&proc_dir(2, 17, 3)), Some((2, 17, 3)));
}

#[test]
fn supervised_process_outlives_its_starter_and_reports_its_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quote(&tmp.path().display().to_string());
    let steps = vec![("INT".to_string(), Duration::from_secs(2))];
    let out = sh(&setup_script(
        &dir,
        Duration::from_secs(30),
        &stop_sh(&[(0, steps)]),
    ));
    assert!(out.contains("\u{2}ok"), "{out:?}");
    let env = vec![("GREETING".to_string(), "hello there".to_string())];
    let cmd = "trap 'echo got INT; exit 3' INT; echo \"$GREETING\"; echo oops >&2; \
               while :; do sleep 0.05; done";
    let starts = [Start {
        idx: 4,
        attempt: 1,
        role: 0,
        command: cmd,
        env: &env,
    }];
    let out = sh(&start_script(&dir, &starts));
    let pgid: u32 = out
        .strip_prefix("\u{2}S 4 1 ")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    let p = tmp.path().join("p/0/4.1");
    assert_eq!(
        std::fs::read_to_string(p.join("pgid")).unwrap().trim(),
        pgid.to_string()
    );
    // The starter is gone; the process runs on, in a session of its own.
    std::thread::sleep(Duration::from_millis(200));
    let stat = std::fs::read_to_string(format!("/proc/{pgid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[2], pgid.to_string(), "process group");
    assert_eq!(fields[3], pgid.to_string(), "session");
    // The follower streams both files from offset 0; the stop sequence's INT reaches the
    // command (not ignored as for `&`), and the exit is reported after the last bytes.
    let mut follower = Command::new("/bin/sh")
        .arg("-c")
        .arg(follow_script(&dir, &[]))
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sh(&stop_role_script(&dir, 0));
    assert!(wait_for(&p.join("exit"), 5));
    std::thread::sleep(Duration::from_millis(400));
    unsafe { libc::killpg(follower.id() as i32, libc::SIGTERM) };
    let mut bytes = Vec::new();
    use std::io::Read;
    follower
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let _ = follower.wait();
    let frames = FrameParser::default().push(&bytes);
    let mut out_text = Vec::new();
    let mut exit = None;
    for f in frames {
        match f {
            Frame::Data { path, bytes, .. } if path == "0/4.1/out" => out_text.extend(bytes),
            Frame::Data { path, bytes, .. } => {
                assert_eq!((path.as_str(), &bytes[..]), ("0/4.1/err", &b"oops\n"[..]))
            }
            Frame::Exit { dir, status } => {
                assert!(
                    String::from_utf8_lossy(&out_text).contains("got INT"),
                    "exit before data"
                );
                exit = Some((dir, status))
            }
            Frame::Error(e) => panic!("{e}"),
        }
    }
    assert_eq!(String::from_utf8_lossy(&out_text), "hello there\ngot INT\n");
    assert_eq!(exit, Some(("0/4.1".to_string(), "3".to_string())));
    sh(&finish_script(&dir, false));
    assert!(!tmp.path().exists());
}

#[test]
fn follower_resumes_at_given_offsets_and_skips_known_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p/1/2.1");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("out"), "0123456789").unwrap();
    std::fs::write(p.join("err"), "").unwrap();
    std::fs::write(p.join("exit"), "0 \n").unwrap();
    let q = tmp.path().join("p/1/3.1");
    std::fs::create_dir_all(&q).unwrap();
    std::fs::write(q.join("out"), "abc").unwrap();
    std::fs::write(q.join("err"), "").unwrap();
    std::fs::write(q.join("exit"), "143 TERM\n").unwrap();
    let dir = quote(&tmp.path().display().to_string());
    let known = [
        ("1/2.1/out".to_string(), 4),
        ("1/3.1/out".to_string(), 3),
        ("1/3.1/exit".to_string(), 1),
    ];
    let script = format!(
        "( {} ) & sleep 0.5; kill -TERM 0",
        follow_script(&dir, &known)
    );
    let mut frames = Vec::new();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .process_group(0)
        .output()
        .unwrap();
    frames.extend(FrameParser::default().push(&out.stdout));
    assert_eq!(
        frames,
        vec![
            Frame::Data {
                path: "1/2.1/out".into(),
                offset: 4,
                bytes: b"456789".to_vec()
            },
            Frame::Exit {
                dir: "1/2.1".into(),
                status: "0".into()
            }
        ]
    );
    assert!(
        matches!(parse_exit("143 TERM"), crate::transport::Exit::Signal { name, .. } if name == "TERM")
    );
    assert_eq!(parse_exit("0"), crate::transport::Exit::Code(0));
}

#[test]
fn watchdog_stops_the_fleet_when_the_lease_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quote(&tmp.path().display().to_string());
    let steps = vec![("INT".to_string(), Duration::from_secs(2))];
    sh(&setup_script(
        &dir,
        Duration::from_secs(2),
        &stop_sh(&[(0, steps)]),
    ));
    let cmd = "trap 'echo got INT; exit 0' INT; while :; do sleep 0.05; done";
    let starts = [Start {
        idx: 0,
        attempt: 1,
        role: 0,
        command: cmd,
        env: &[],
    }];
    sh(&start_script(&dir, &starts));
    let p = tmp.path().join("p/0/0.1");
    assert!(
        !wait_for(&p.join("exit"), 1),
        "ended before the lease expired"
    );
    assert!(wait_for(&p.join("exit"), 5), "the watchdog did not stop it");
    assert_eq!(std::fs::read_to_string(p.join("out")).unwrap(), "got INT\n");
    assert!(wait_for(&tmp.path().join("expired"), 2));
}

use std::os::unix::process::CommandExt as _;

#[test]
fn start_batches_keep_each_script_under_the_kernel_argument_limit() {
    // Linux refuses one exec argument over 128 KiB, and the script is one (`/bin/sh -c`).
    const ARG_MAX_STRLEN: usize = 128 * 1024;
    let dir = dir_word("~/.sortie-runs", "20261202-000000.000-abcdef");
    let cmd = format!(
        "echo ready $(date +%s%N) 'it''s'; exec sleep 100000 # {}",
        "x".repeat(120)
    );
    let starts: Vec<Start<'_>> = (0..1000)
        .map(|idx| Start {
            idx,
            attempt: 1,
            role: 0,
            command: &cmd,
            env: &[],
        })
        .collect();
    assert!(start_script(&dir, &starts).len() > ARG_MAX_STRLEN);
    let batches = start_batches(&dir, &starts);
    assert!(batches.len() > 1, "{batches:?}");
    let mut next = 0;
    for r in &batches {
        assert_eq!(r.start, next, "{batches:?}");
        next = r.end;
        assert!(start_script(&dir, &starts[r.clone()]).len() <= START_SCRIPT_MAX);
    }
    assert_eq!(next, starts.len());
    assert!(start_batches(&dir, &[]).is_empty());
}
