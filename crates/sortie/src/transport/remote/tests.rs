//! The wrapper run by real shells on this machine, the way an SSH server runs it: the login
//! shell gets [`EXEC_REQUEST`] with `-c`, and the script arrives on its stdin.

use super::*;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, ExitStatus, Stdio};
use std::time::Duration;

/// A command text holding what shells read differently: `\`, `'`, a newline and `!`.
const TRICKY: &str = "printf '%s|' 'back\\slash' \"it's\" 'bang!' 'two\nlines'; echo";

#[test]
fn quote_round_trips_through_sh() {
    for s in [
        "plain",
        "",
        "a b",
        "it's",
        "$HOME `x` \\ \"q\"",
        "new\nline",
        "ünï",
    ] {
        let out = Proc::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(s)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
    }
}

#[test]
fn marker_is_parsed_across_chunks() {
    assert_eq!(take_marker(b"\x02sortie-p"), None);
    assert_eq!(
        take_marker(b"\x02sortie-pgid 4242\nhello"),
        Some(Head::Started(4242, &b"hello"[..]))
    );
    assert_eq!(take_marker(b"other"), Some(Head::Other(&b"other"[..])));
    assert_eq!(
        take_marker(b"\x02sortie-error no setsid\n"),
        Some(Head::Refused("no setsid".into()))
    );
}

/// Runs `script` as a server would for an account whose login shell is `login`: `login -c
/// EXEC_REQUEST` with the script on stdin, which stays open (the channel) until the wrapper
/// and the command are done. Returns stdout and the status.
fn serve(login: &Path, script: &str) -> (Vec<u8>, ExitStatus) {
    serve_as(login, script, false)
}

/// Makes `proc` lead a session of its own, and so its process group, as sshd makes a
/// session's shell.
fn as_session_leader(proc: &mut Proc) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        proc.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// [`serve`], with the login shell leading its own session and process group (as under
/// OpenSSH) when `leader`, else in the test's group (as under Dropbear).
fn serve_as(login: &Path, script: &str, leader: bool) -> (Vec<u8>, ExitStatus) {
    let mut proc = Proc::new(login);
    if leader {
        as_session_leader(&mut proc);
    }
    let mut child = proc
        .arg("-c")
        .arg(EXEC_REQUEST)
        .env("SHELL", login)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        out
    });
    let out = reader.join().unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    (out, status)
}

fn started(out: &[u8]) -> (u32, String) {
    match take_marker(out) {
        Some(Head::Started(pgid, rest)) => (pgid, String::from_utf8_lossy(rest).into_owned()),
        other => panic!("no marker: {other:?} in {:?}", String::from_utf8_lossy(out)),
    }
}

/// Login shells installed here: (name, path); BusyBox ash through a symlink named `ash`.
fn login_shells() -> Vec<(&'static str, PathBuf)> {
    let mut shells = Vec::new();
    for (name, path) in [
        ("bash", "/bin/bash"),
        ("dash", "/bin/dash"),
        ("zsh", "/usr/bin/zsh"),
        ("fish", "/usr/bin/fish"),
        ("tcsh", "/usr/bin/tcsh"),
    ] {
        if Path::new(path).exists() {
            shells.push((name, PathBuf::from(path)));
        } else {
            sortie_testkit::skip(
                &format!("remote::tests login shell {name}"),
                &format!("{path} is not installed (Debian package {name})"),
            );
        }
    }
    if Path::new("/bin/busybox").exists() {
        let dir = std::env::temp_dir().join(format!("sortie-ash-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let ash = dir.join("ash");
        let _ = std::os::unix::fs::symlink("/bin/busybox", &ash);
        shells.push(("busybox ash", ash));
    } else {
        sortie_testkit::skip(
            "remote::tests login shell busybox ash",
            "/bin/busybox is not installed (Debian package busybox)",
        );
    }
    shells
}

#[test]
fn wrapper_runs_command_in_a_new_session_with_env_cwd_and_status() {
    let dir = std::env::temp_dir().join(format!("sortie-wrapper-test-{}", std::process::id()));
    let cmd = Command {
        command: "read -r l < /proc/$$/stat; set -- ${l##*) }; \
                  echo \"$GREETING from $(pwd) pid=$$ pgid=$3 sid=$4\"; exit 3"
            .into(),
        shell: CommandShell::Posix,
        env: vec![("GREETING".into(), "it's me".into())],
        cwd: Some(dir.display().to_string()),
        stdin: None,
    };
    for leader in [true, false] {
        let (out, status) = serve_as(Path::new("/bin/sh"), &wrapper(&cmd), leader);
        let (pgid, rest) = started(&out);
        // A group leader keeps its session (sshd made it); otherwise setsid made a new one.
        let sid = if leader {
            rest.rsplit("sid=").next().unwrap().trim().to_string()
        } else {
            pgid.to_string()
        };
        assert_eq!(
            rest.trim_end(),
            format!(
                "it's me from {} pid={pgid} pgid={pgid} sid={sid}",
                dir.display()
            ),
            "leader: {leader}"
        );
        assert_eq!(status.code(), Some(3));
        assert_ne!(pgid, std::process::id());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_codes_pass_unchanged_and_signals_are_re_raised() {
    for (text, code, signal) in [
        ("exit 1", Some(1), None),
        ("exit 0", Some(0), None),
        ("exit 127", Some(127), None),
        ("kill -TERM $$", None, Some(libc::SIGTERM)),
        ("kill -INT $$", None, Some(libc::SIGINT)),
    ] {
        for leader in [true, false] {
            let (out, status) =
                serve_as(Path::new("/bin/sh"), &wrapper(&Command::new(text)), leader);
            started(&out);
            assert_eq!((status.code(), status.signal()), (code, signal), "{text}");
        }
    }
}

/// `exec` text is read by the login shell exactly as `LOGIN -c TEXT` (what `ssh host TEXT`
/// runs) reads it; `run` and `launch` text by `/bin/sh` exactly as `/bin/sh -c TEXT`; and the
/// wrapper reaches `/bin/sh` intact through every login shell.
#[test]
fn every_login_shell_hands_the_wrapper_over_intact() {
    let posix = Proc::new("/bin/sh").arg("-c").arg(TRICKY).output().unwrap();
    assert!(posix.status.success());
    for (name, login) in login_shells() {
        let oracle = Proc::new(&login).arg("-c").arg(TRICKY).output().unwrap();
        for (shell, want) in [
            (CommandShell::Login, &oracle.stdout),
            (CommandShell::Posix, &posix.stdout),
        ] {
            let cmd = Command {
                command: TRICKY.into(),
                shell,
                ..Default::default()
            };
            let (out, _) = serve(&login, &wrapper(&cmd));
            let (_, rest) = started(&out);
            assert_eq!(
                rest,
                String::from_utf8_lossy(want),
                "{name}, {shell:?} command"
            );
        }
    }
}

#[test]
fn stream_script_says_ready_before_reading_data() {
    let mut child = Proc::new("/bin/sh")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(stream_script("tr a-z A-Z").as_bytes())
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = vec![0u8; READY.len()];
    stdout.read_exact(&mut ready).unwrap();
    assert_eq!(ready, READY);
    stdin.write_all(b"data after the script\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "DATA AFTER THE SCRIPT\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn stop_script_escalates() {
    let s = stop_script(
        77,
        &StopSequence {
            steps: vec![
                ("INT".into(), Duration::from_secs(1)),
                ("TERM".into(), Duration::from_millis(100)),
            ],
        },
    );
    let int = s.find("kill -INT -77 ").unwrap();
    let term = s.find("kill -TERM -77 ").unwrap();
    let kill = s.find("kill -KILL -77 ").unwrap();
    assert!(int < term && term < kill, "{s}");
    assert!(s.contains("[ $i -lt 20 ]"));
    assert!(s.ends_with("kill -KILL -77 2>/dev/null; exit 0"));
}

/// A job that a shell's job control put in a group of its own (as tcsh does with `&`) is
/// still in the command's session, and the stop script ends it too.
#[test]
fn stop_script_ends_every_group_of_the_session() {
    // The scan of `/proc` by `awk` where there is one, and by `/bin/sh` alone where not (a
    // PATH with `sleep` and `cat` but no `awk`).
    let bare = std::env::temp_dir().join(format!("sortie-no-awk-{}", std::process::id()));
    std::fs::create_dir_all(&bare).unwrap();
    for tool in ["sleep", "cat"] {
        let _ = std::os::unix::fs::symlink(format!("/bin/{tool}"), bare.join(tool));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for (how, path) in [("awk", path.as_str()), ("sh", bare.to_str().unwrap())] {
        let marker = format!("sortie-session-test-{how}-{}", std::process::id());
        // `setsid` runs in place (the test's child leads no group), so the pid is the session
        // id, as sshd or the wrapper make it. Perl stands in for job control: a new group.
        let mut leader = Proc::new("setsid")
            .arg("/bin/sh")
            .arg("-c")
            .arg(format!(
                "perl -e 'setpgrp(0,0); exec @ARGV' sh -c 'sleep 1000; : {marker}' & sleep 1000"
            ))
            .spawn()
            .unwrap();
        let sid = leader.id();
        wait_for_marked(&marker);
        let out = Proc::new("/bin/sh")
            .arg("-c")
            // (The leader stays a zombie until this test reaps it, so keep the grace short.)
            .arg(stop_script(
                sid,
                &StopSequence {
                    steps: vec![("TERM".into(), Duration::from_millis(200))],
                },
            ))
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{how}");
        assert!(leader.wait().unwrap().signal().is_some(), "{how}");
        assert_none_left(&marker, &format!("scan by {how}"));
    }
    let _ = std::fs::remove_dir_all(&bare);
}

/// Starts `script` like [`serve_as`], reads the marker line, then writes `input` (as sortie
/// does: only after the marker, and no EOF). Returns the child, its stdin (still open) and
/// its stdout after the marker line, reading on in a thread.
fn serve_input(
    login: &Path,
    script: &str,
    input: Vec<u8>,
    leader: bool,
) -> (
    std::process::Child,
    std::thread::JoinHandle<std::process::ChildStdin>,
    std::process::ChildStdout,
) {
    let mut proc = Proc::new(login);
    if leader {
        as_session_leader(&mut proc);
    }
    let mut child = proc
        .arg("-c")
        .arg(EXEC_REQUEST)
        .env("SHELL", login)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while byte[0] != b'\n' {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "no marker line");
        line.push(byte[0]);
    }
    assert!(
        line.starts_with(MARKER),
        "{:?}",
        String::from_utf8_lossy(&line)
    );
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
        stdin
    });
    (child, writer, stdout)
}

/// Waits up to `limit` for `child`; kills it and fails when it is still running.
fn wait_within(child: &mut std::process::Child, limit: Duration) -> ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes no shell would read back unchanged by accident: every byte value, NULs, lines.
fn sample_input(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn input_reaches_the_command_whole_then_end_of_file() {
    let input = sample_input(300_000);
    for (name, login) in login_shells() {
        for leader in [true, false] {
            let cmd = Command {
                command: "cat; echo; echo done; exit 7".into(),
                shell: CommandShell::Login,
                stdin: crate::transport::Stdin::new(input.clone()),
                ..Default::default()
            };
            let (mut child, writer, mut stdout) =
                serve_input(&login, &wrapper(&cmd), input.clone(), leader);
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).unwrap();
            let status = wait_within(&mut child, Duration::from_secs(10));
            drop(writer.join().unwrap());
            assert_eq!(status.code(), Some(7), "{name} leader={leader}");
            let (body, tail) = out.split_at(input.len().min(out.len()));
            assert!(
                body == input.as_slice(),
                "{name} leader={leader}: input changed"
            );
            assert_eq!(tail, b"\ndone\n", "{name} leader={leader}");
        }
    }
}

#[test]
fn with_input_the_watchdog_still_ends_the_command_when_the_channel_closes() {
    let input = sample_input(100_000);
    for leader in [true, false] {
        let cmd = Command {
            command: "cat >/dev/null; echo relayed; exec sleep 30".into(),
            stdin: crate::transport::Stdin::new(input.clone()),
            ..Default::default()
        };
        let (mut child, writer, mut stdout) =
            serve_input(Path::new("/bin/sh"), &wrapper(&cmd), input.clone(), leader);
        let mut line = [0u8; 8];
        stdout.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"relayed\n", "leader={leader}");
        // The command has had its end of file and now sleeps; the channel closes.
        drop(writer.join().unwrap());
        let status = wait_within(&mut child, Duration::from_secs(10));
        assert_eq!(status.signal(), Some(libc::SIGTERM), "leader={leader}");
    }
}

#[test]
fn a_command_that_ignores_its_input_still_ends_with_its_status() {
    let input = sample_input(4 << 20);
    let cmd = Command {
        command: "echo ignored; exit 3".into(),
        stdin: crate::transport::Stdin::new(input.clone()),
        ..Default::default()
    };
    let (mut child, writer, mut stdout) =
        serve_input(Path::new("/bin/sh"), &wrapper(&cmd), input, true);
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"ignored\n");
    assert_eq!(
        wait_within(&mut child, Duration::from_secs(10)).code(),
        Some(3)
    );
    drop(writer.join().unwrap());
}

/// Waits up to 5 s for the marked job to run in its own group: a process carrying `marker` in
/// its command line that is `sh` already, not the `perl` that calls `setpgrp` and then
/// becomes it (whose command line carries the marker too, before it left the group).
fn wait_for_marked(marker: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !sortie_testkit::processes_matching(marker)
        .iter()
        .any(|p| p.comm == "sh")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to 5 s for no process to carry `marker` in its command line.
fn assert_none_left(marker: &str, ctx: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = sortie_testkit::processes_matching(marker);
        if left.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            for p in &left {
                // SAFETY: kill has no memory effects; these are this test's own processes.
                unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
            }
            panic!("{ctx}: left: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn after_the_command_exits_the_watchdog_ends_what_it_left_in_its_group() {
    for leader in [true, false] {
        let marker = format!("sortie-leftover-test-{}-{leader}", std::process::id());
        let cmd = Command::new(format!(
            "sh -c 'sleep 1000; : {marker}' >/dev/null 2>&1 & exit 3"
        ));
        // serve_as waits for the command's status, then closes the channel.
        let (out, status) = serve_as(Path::new("/bin/sh"), &wrapper(&cmd), leader);
        started(&out);
        assert_eq!(status.code(), Some(3), "leader={leader}");
        assert_none_left(&marker, &format!("leader={leader}"));
    }
}

#[test]
fn a_channel_closed_under_a_running_command_ends_every_group_of_its_session() {
    let marker = format!("sortie-watchdog-groups-test-{}", std::process::id());
    // Perl stands in for job control: the background job leads a group of its own.
    let cmd = Command::new(format!(
        "perl -e 'setpgrp(0,0); exec @ARGV' sh -c 'sleep 1000; : {marker}' & exec sleep 1000"
    ));
    let (mut child, writer, _stdout) =
        serve_input(Path::new("/bin/sh"), &wrapper(&cmd), Vec::new(), true);
    wait_for_marked(&marker);
    drop(writer.join().unwrap());
    let status = wait_within(&mut child, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_none_left(&marker, "other group of the session");
}
