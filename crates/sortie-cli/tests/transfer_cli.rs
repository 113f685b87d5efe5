//! `sortie put` / `sortie get` as a user runs them, against real OpenSSH sshd fixtures on
//! loopback: what is printed, the exit code, and what ends up on the "hosts" (all on this
//! machine, so each host gets its own directory through `{host}`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sortie_testkit::Sshd;

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1");
    c
}

fn skip(test: &str, reason: &str) {
    sortie_testkit::skip(test, reason);
}

fn sshd(test: &str, sftp: bool) -> Option<Sshd> {
    if sortie_testkit::require_sshd().is_none() {
        skip(
            test,
            "OpenSSH sshd is not installed (scripts/test.sh installs it as root)",
        );
        return None;
    }
    Some(
        Sshd::builder()
            .sftp(sftp)
            .start()
            .expect("fixture sshd starts"),
    )
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("sortie runs");
    let o = String::from_utf8_lossy(&out.stdout).into_owned();
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, o, e)
}

fn write(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn big_file(path: &Path, mb: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for _ in 0..mb {
        f.write_all(&chunk).unwrap();
    }
}

fn names_below(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = sortie_testkit::paths_below(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

struct Setup {
    sshd: Sshd,
    cfg: PathBuf,
    hosts: Vec<String>,
    tmp: tempfile::TempDir,
}

fn setup(test: &str, n: usize, sftp: bool) -> Option<Setup> {
    let sshd = sshd(test, sftp)?;
    let hosts = sortie_testkit::hosts(n);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    Some(Setup {
        sshd,
        cfg,
        hosts,
        tmp: tempfile::tempdir().unwrap(),
    })
}

impl Setup {
    fn cmd(&self, verb: &str) -> Command {
        let mut c = sortie();
        c.arg(verb)
            .arg("-F")
            .arg(&self.cfg)
            .arg("-H")
            .arg(self.hosts.join(","));
        c
    }
}

#[test]
fn put_tree_to_hosts_keeps_modes_and_a_rerun_sends_nothing() {
    let Some(s) = setup("put_tree_to_hosts", 3, true) else {
        return;
    };
    let src = s.tmp.path().join("app");
    write(&src.join("bin/start.sh"), b"#!/bin/sh\necho start\n", 0o755);
    write(&src.join("conf/app.toml"), b"port = 1\n", 0o640);
    write(&src.join("README"), b"hello\n", 0o644);
    let root = s.tmp.path().join("remote");
    let dest = format!("{}/{{host}}/opt/", root.display());
    let (out, stdout, stderr) = run(s.cmd("put").arg("-r").arg(&src).arg(&dest));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for h in &s.hosts {
        let d = root.join(h).join("opt/app");
        assert_eq!(
            std::fs::read(d.join("bin/start.sh")).unwrap(),
            b"#!/bin/sh\necho start\n"
        );
        let m = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (m("bin/start.sh"), m("conf/app.toml"), m("README")),
            (0o755, 0o640, 0o644)
        );
        assert!(
            stdout.contains(&format!("{h} | put: 3 files, 36 B sent (sftp)")),
            "{stdout}"
        );
        assert!(!names_below(&d).iter().any(|n| n.contains("sortie-tmp")));
    }
    let (out, stdout, stderr) = run(s.cmd("put").arg("-r").arg(&src).arg(&dest));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for h in &s.hosts {
        assert!(
            stdout.contains(&format!("{h} | put: 0 files, 0 B sent, 3 unchanged (sftp)")),
            "{stdout}"
        );
    }
    drop(s.sshd);
}

#[test]
fn missing_local_file_or_directory_without_r_is_refused_before_any_host() {
    // The host is a closed port: had sortie contacted it, the error would be different.
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.txt");
    let (out, _, stderr) = run(sortie()
        .args(["put", "-H", "127.0.0.1:1"])
        .arg(&missing)
        .arg("/tmp/x"));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: no such file or directory", missing.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("unreachable"), "{stderr}");
    let (out, _, stderr) = run(sortie()
        .args(["put", "-H", "127.0.0.1:1"])
        .arg(tmp.path())
        .arg("/tmp/x"));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is a directory"), "{stderr}");
    assert!(stderr.contains("use -r"), "{stderr}");
    let (out, _, stderr) = run(sortie()
        .args(["put", "-H", "127.0.0.1:1"])
        .arg(tmp.path().join("..").join(tmp.path().file_name().unwrap()))
        .arg("/x/{tag:zone}/")
        .arg("-r"));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no tag `zone`"), "{stderr}");
}

#[test]
fn get_globs_into_one_directory_per_host_and_names_missing_files() {
    let Some(s) = setup("get_globs_into_one_directory_per_host", 3, true) else {
        return;
    };
    let root = s.tmp.path().join("remote");
    for h in &s.hosts {
        write(
            &root.join(h).join("log/a.log"),
            format!("a from {h}\n").as_bytes(),
            0o640,
        );
        write(
            &root.join(h).join("log/b.log"),
            format!("b from {h}\n").as_bytes(),
            0o600,
        );
        write(&root.join(h).join("log/skip.txt"), b"x", 0o644);
    }
    let out_dir = s.tmp.path().join("collected");
    let (out, stdout, stderr) = run(s
        .cmd("get")
        .arg(format!("{}/{{host}}/log/*.log", root.display()))
        .arg(format!("{}/{{host}}/missing.txt", root.display()))
        .arg(&out_dir));
    // The missing file fails each host (exit 1) but the logs still arrive.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for h in &s.hosts {
        let d = out_dir.join(h);
        assert_eq!(
            std::fs::read_to_string(d.join("a.log")).unwrap(),
            format!("a from {h}\n")
        );
        assert_eq!(
            std::fs::read_to_string(d.join("b.log")).unwrap(),
            format!("b from {h}\n")
        );
        assert!(!d.join("skip.txt").exists());
        let mode = std::fs::metadata(d.join("b.log"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let missing = format!(
            "{h} ! get: {}/{h}/missing.txt: no such file or directory on the host",
            root.display()
        );
        assert!(
            stderr.contains(&missing) || stdout.contains(&missing),
            "{stdout}\n{stderr}"
        );
        assert!(stdout.contains(&format!("{h} | get: 2 files,")), "{stdout}");
    }
}

#[test]
fn a_server_without_sftp_still_works_through_the_exec_fallback() {
    let Some(s) = setup("a_server_without_sftp_still_works", 2, false) else {
        return;
    };
    let src = s.tmp.path().join("data.bin");
    big_file(&src, 3);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o604)).unwrap();
    let root = s.tmp.path().join("remote");
    let (out, stdout, stderr) = run(s
        .cmd("put")
        .arg("--verify")
        .arg(&src)
        .arg(format!("{}/{{host}}/data.bin", root.display())));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("(exec)"), "{stdout}");
    let original = std::fs::read(&src).unwrap();
    for h in &s.hosts {
        let p = root.join(h).join("data.bin");
        assert!(
            std::fs::read(&p).unwrap() == original,
            "{h}: content differs"
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o604
        );
    }
    let back = s.tmp.path().join("back");
    let (out, stdout, stderr) = run(s
        .cmd("get")
        .arg(format!("{}/{{host}}/data.bin", root.display()))
        .arg(&back));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for h in &s.hosts {
        assert!(std::fs::read(back.join(h).join("data.bin")).unwrap() == original);
    }
}

/// Starts a large put, waits until its temporary file is being written, then sends `signal`.
fn interrupt_put(s: &Setup, signal: &str) -> (Option<i32>, PathBuf, PathBuf) {
    interrupt_transfer(s, "put", signal)
}

/// Starts a large put or get, waits until its temporary file is being written (on the host for
/// put, here for get), then sends `signal`. Returns the exit code, the destination directory
/// and the source file.
fn interrupt_transfer(s: &Setup, verb: &str, signal: &str) -> (Option<i32>, PathBuf, PathBuf) {
    let src = s.tmp.path().join(format!("huge-{verb}-{signal}.bin"));
    big_file(&src, 400);
    let dir = s.tmp.path().join(format!("{verb}-{signal}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = s
        .cmd(verb)
        .arg(&src)
        .arg(format!("{}/", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let writing = names_below(&dir).iter().any(|n| n.contains("sortie-tmp"));
        if writing || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    (code, dir, src)
}

#[test]
fn an_interrupted_put_leaves_no_partial_file_under_the_real_name() {
    let Some(s) = setup("an_interrupted_put_leaves_no_partial_file", 1, true) else {
        return;
    };
    // Ctrl-C: sortie stops, removes its temporary file, exits 130.
    let (code, dir, src) = interrupt_put(&s, "INT");
    assert_eq!(code, Some(130));
    let real = dir.join(src.file_name().unwrap());
    assert!(!real.exists(), "no file under the real name");
    let started = Instant::now();
    while !names_below(&dir).is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        names_below(&dir),
        Vec::<String>::new(),
        "temporary file removed"
    );
    // SIGKILL: nothing can be cleaned up, but the real name is still never a partial file.
    let (code, dir, src) = interrupt_put(&s, "KILL");
    assert_eq!(code, None);
    assert!(!dir.join(src.file_name().unwrap()).exists());
}

/// SIGTERM and SIGHUP stop put and get as Ctrl-C does: exit 130, no partial file under the
/// real name, the temporary file removed.
#[test]
fn sigterm_and_sighup_stop_put_and_get_without_a_partial_file() {
    let Some(s) = setup(
        "sigterm_and_sighup_stop_put_and_get_without_a_partial_file",
        1,
        true,
    ) else {
        return;
    };
    for verb in ["put", "get"] {
        for signal in ["TERM", "HUP"] {
            let (code, dir, src) = interrupt_transfer(&s, verb, signal);
            assert_eq!(code, Some(130), "{verb} {signal}");
            let name = src.file_name().unwrap().to_string_lossy().into_owned();
            let started = Instant::now();
            while !names_below(&dir).is_empty() && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let left = names_below(&dir);
            assert!(
                !left
                    .iter()
                    .any(|n| n.ends_with(&name) && !n.contains("sortie-tmp")),
                "{verb} {signal}: a file under the real name: {left:?}"
            );
            assert!(
                !left.iter().any(|n| n.contains("sortie-tmp")),
                "{verb} {signal}: temporary file left: {left:?}"
            );
        }
    }
}

#[test]
fn the_local_transport_puts_and_gets_through_the_exec_fallback() {
    // No sshd involved: `-H local` moves files on this machine, with the same semantics.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&src.join("conf/a.txt"), &[7u8; 100_000], 0o640);
    let dest = tmp.path().join("dest");
    let (out, stdout, stderr) = run(sortie()
        .args(["put", "-H", "local", "-r"])
        .arg(&src)
        .arg(format!("{}/", dest.display())));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("put: 2 files"), "{stdout}");
    assert_eq!(
        std::fs::read(dest.join("src/conf/a.txt")).unwrap(),
        vec![7u8; 100_000]
    );
    let mode = std::fs::metadata(dest.join("src/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let back = tmp.path().join("back");
    let (out, stdout, stderr) = run(sortie()
        .args(["get", "-H", "local", "-r"])
        .arg(format!("{}/src/conf", dest.display()))
        .arg(&back));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read(back.join("local/conf/a.txt")).unwrap(),
        vec![7u8; 100_000]
    );
}
