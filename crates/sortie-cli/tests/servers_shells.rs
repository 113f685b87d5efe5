//! Every SSH server and login shell sortie supports, against real servers started here:
//! Dropbear (the server of cameras and routers) with BusyBox ash and with bash as login shell,
//! and OpenSSH with BusyBox ash, dash, zsh, fish and tcsh, each through a dedicated test
//! account. For each: `exec` text reads as `ssh host TEXT` reads it (the OpenSSH client is the
//! oracle), `run` text as `/bin/sh -c TEXT`, both with `\`, `'`, a newline and `!`; `exec`
//! gives piped stdin to the command as `ssh host TEXT < input` does (checksums agree);
//! `--timeout` and Ctrl-C end the remote tree and leave nothing; the server keeps serving.
//! Then, on Dropbear: 1000 short jobs over 20 slots all report an exit code, and put/get work
//! (with the server's SFTP when it has one, through the shell fallback otherwise), as they do
//! on OpenSSH without SFTP. docs/reliability.md has the resulting matrix.

mod faults_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faults_support::{sortie, spawn, RUN_LIMIT};
use sortie_testkit::{test_user, Dropbear, KeyKind, Keys, LoginShell, Sshd, TestUser};

/// A command text holding what shells read differently: `\`, `'`, a newline and `!`.
const TRICKY: &str = "printf '%s|' 'back\\slash' \"it's\" 'bang!' 'two\nlines'; echo";

enum Server {
    OpenSsh(Sshd),
    Dropbear(Dropbear),
}

/// One server for one test account, with the client files that reach it.
struct Fixture {
    server: Server,
    user: TestUser,
    known_hosts: PathBuf,
    ssh_config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start(test: &str, dropbear: bool, shell: LoginShell, sftp: bool) -> Option<Fixture> {
        let skip = |why: String| {
            sortie_testkit::skip(test, &why);
            None
        };
        if dropbear && sortie_testkit::require_dropbear().is_none() {
            return skip("Dropbear is not installed (Debian package dropbear-bin)".into());
        }
        if !dropbear && sortie_testkit::require_sshd().is_none() {
            return skip("OpenSSH sshd is not installed (Debian package openssh-server)".into());
        }
        let user = match test_user(shell, &Keys::shared().unwrap()) {
            Ok(u) => u,
            Err(e) => return skip(e.to_string()),
        };
        let server = if dropbear {
            Server::Dropbear(Dropbear::start(&user).expect("dropbear fixture starts"))
        } else {
            let b = Sshd::builder().login_user(&user).sftp(sftp);
            Server::OpenSsh(b.start().expect("sshd fixture starts"))
        };
        let hosts = ["127.0.0.1", "127.0.0.2"];
        let known_hosts = match &server {
            Server::OpenSsh(s) => s.known_hosts_for(&hosts).unwrap(),
            Server::Dropbear(d) => d.known_hosts_for(&hosts).unwrap(),
        };
        let dir = tempfile::tempdir().unwrap();
        let ssh_config = dir.path().join("ssh_config");
        let mut f = Fixture {
            server,
            user,
            known_hosts,
            ssh_config,
            _dir: dir,
        };
        let cfg = format!(
            "Host *\n    Port {}\n    User {}\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
             UserKnownHostsFile {}\n    GlobalKnownHostsFile /dev/null\n    \
             StrictHostKeyChecking yes\n    BatchMode yes\n    LogLevel ERROR\n",
            f.port(),
            f.user.name,
            f.key().display(),
            f.known_hosts.display()
        );
        std::fs::write(&f.ssh_config, cfg).unwrap();
        f.ssh_config = f.ssh_config.canonicalize().unwrap();
        Some(f)
    }

    fn port(&self) -> u16 {
        match &self.server {
            Server::OpenSsh(s) => s.port(),
            Server::Dropbear(d) => d.port(),
        }
    }

    fn key(&self) -> PathBuf {
        match &self.server {
            Server::OpenSsh(s) => s.client_key(KeyKind::Ed25519),
            Server::Dropbear(d) => d.client_key(KeyKind::Ed25519),
        }
    }

    fn log(&self) -> String {
        match &self.server {
            Server::OpenSsh(s) => s.log(),
            Server::Dropbear(d) => d.log(),
        }
    }

    /// `sortie SUB -F CONFIG -H HOSTS ARGS...`
    fn sortie(&self, sub: &str, hosts: &str, args: &[&str]) -> Command {
        let mut c = sortie();
        c.arg(sub)
            .arg("-F")
            .arg(&self.ssh_config)
            .args(["-H", hosts]);
        c.args(args);
        c
    }

    fn output(&self, mut c: Command) -> (Option<i32>, String, String) {
        let out = c.output().expect("sortie runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// What `ssh host TEXT` prints (OpenSSH's client: the oracle for `exec`).
    fn ssh(&self, host: &str, text: &str) -> String {
        let out = Command::new("ssh")
            .arg("-F")
            .arg(&self.ssh_config)
            .arg(host)
            .arg(text)
            .output()
            .expect("ssh runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Lines of `sortie exec`/`run` output without the `host | ` prefixes.
fn bodies(stdout: &str) -> String {
    stdout
        .lines()
        .map(|l| l.split_once(" | ").map_or(l, |(_, b)| b))
        .collect::<Vec<_>>()
        .join("\n")
}

fn local_sh(text: &str) -> String {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(text)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The whole check for one server and login shell.
/// What `cmd` prints with `input` on its stdin.
fn with_input(cmd: &mut Command, input: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("runs");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn server_and_shell(test: &str, dropbear: bool, shell: LoginShell) {
    let Some(f) = Fixture::start(test, dropbear, shell, true) else {
        return;
    };
    let ctx = format!("{test} ({} as {})", f.user.name, f.user.shell.display());

    // exec: the login shell reads the text, exactly as for `ssh host TEXT`.
    let oracle = f.ssh("127.0.0.1", TRICKY);
    let (code, out, err) = f.output(f.sortie("exec", "127.0.0.1", &["--", TRICKY]));
    assert_eq!(
        bodies(&out).trim_end(),
        oracle.trim_end(),
        "{ctx}: exec vs ssh\n{err}"
    );
    if !oracle.is_empty() {
        assert_eq!(code, Some(0), "{ctx}\n{out}\n{err}");
    }

    // stdin: the command gets every byte, as `ssh host TEXT < input` gives it.
    let input: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let oracle = with_input(
        Command::new("ssh")
            .arg("-F")
            .arg(&f.ssh_config)
            .args(["127.0.0.1", "cksum"]),
        &input,
    );
    assert!(!oracle.trim().is_empty(), "{ctx}: ssh gave no checksum");
    let out = with_input(&mut f.sortie("exec", "127.0.0.1", &["--", "cksum"]), &input);
    assert_eq!(
        bodies(&out).trim_end(),
        oracle.trim_end(),
        "{ctx}: exec stdin vs ssh"
    );

    // run: /bin/sh reads the text, whatever the login shell.
    let (code, out, err) =
        f.output(f.sortie("run", "127.0.0.1", &["--range", "1..1", "--", TRICKY]));
    assert_eq!(code, Some(0), "{ctx}: run\n{out}\n{err}");
    // Like GNU parallel, a template without a placeholder gets the job value appended.
    let want = local_sh(&format!("{TRICKY} 1"));
    assert_eq!(bodies(&out).trim_end(), want.trim_end(), "{ctx}: run vs sh");

    // --timeout ends the remote tree, and the server keeps serving afterwards.
    let marker = format!("shells-timeout-{test}-{}", std::process::id());
    let t0 = Instant::now();
    let (code, out, err) = f.output(f.sortie(
        "exec",
        "127.0.0.1,127.0.0.2",
        &[
            "--timeout",
            "2s",
            "--kill-grace",
            "1s",
            "--",
            &format!("sh -c 'sleep 1000; : {marker}' & sleep 1000; : {marker}"),
        ],
    ));
    assert_ne!(code, Some(0), "{ctx}: timeout\n{out}\n{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "{ctx}: timeout took {:?}\n{err}",
        t0.elapsed()
    );
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "{ctx}: left behind after --timeout: {left:?}\n{err}"
    );

    // Ctrl-C ends them too.
    let marker = format!("shells-ctrlc-{test}-{}", std::process::id());
    let mut running = spawn(&mut f.sortie(
        "exec",
        "127.0.0.1,127.0.0.2",
        &[
            "--kill-grace",
            "1s",
            "--",
            &format!("echo up; sleep 1000; : {marker}"),
        ],
    ));
    // Both hosts' commands run (a marked process seen before that may be a host's wrapper on
    // its way to the command, gone a moment later).
    for host in ["127.0.0.1", "127.0.0.2"] {
        let up = running.wait_for(
            |l| l.contains(host) && l.trim_end().ends_with("up"),
            Duration::from_secs(30),
        );
        assert!(
            up.is_some(),
            "{ctx}: {host}'s command never started\n{}",
            f.log()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sortie_testkit::remote_processes(&marker).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The check below means something only if the commands are visible by their marker.
    let seen = sortie_testkit::remote_processes(&marker);
    assert!(seen.len() >= 2, "{ctx}: marked processes: {seen:?}");
    running.interrupt();
    let done = running.finish(RUN_LIMIT);
    assert_eq!(done.code(), Some(130), "{ctx}: {}", done.shown());
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "{ctx}: left behind after Ctrl-C: {left:?}");

    let (code, out, err) = f.output(f.sortie("exec", "127.0.0.1,127.0.0.2", &["--", "echo alive"]));
    assert_eq!(
        code,
        Some(0),
        "{ctx}: the server stopped serving\n{out}\n{err}\n{}",
        f.log()
    );
    assert_eq!(out.matches("alive").count(), 2, "{ctx}\n{out}");
}

#[test]
fn dropbear_with_busybox_ash() {
    server_and_shell("dropbear_with_busybox_ash", true, LoginShell::BusyboxAsh);
}

#[test]
fn dropbear_with_bash() {
    server_and_shell("dropbear_with_bash", true, LoginShell::Bash);
}

#[test]
fn openssh_with_busybox_ash() {
    server_and_shell("openssh_with_busybox_ash", false, LoginShell::BusyboxAsh);
}

#[test]
fn openssh_with_dash() {
    server_and_shell("openssh_with_dash", false, LoginShell::Dash);
}

#[test]
fn openssh_with_zsh() {
    server_and_shell("openssh_with_zsh", false, LoginShell::Zsh);
}

#[test]
fn openssh_with_fish() {
    server_and_shell("openssh_with_fish", false, LoginShell::Fish);
}

#[test]
fn openssh_with_tcsh() {
    server_and_shell("openssh_with_tcsh", false, LoginShell::Tcsh);
}

#[test]
fn dropbear_runs_1000_short_jobs_over_20_slots_with_every_exit_code() {
    let test = "dropbear_runs_1000_short_jobs_over_20_slots_with_every_exit_code";
    let Some(f) = Fixture::start(test, true, LoginShell::BusyboxAsh, true) else {
        return;
    };
    let (code, out, err) = f.output(f.sortie(
        "run",
        "127.0.0.1,127.0.0.2",
        &[
            "--slots",
            "10",
            "--range",
            "1..1000",
            "--json",
            "--",
            "exit $(({} % 3))",
        ],
    ));
    let mut codes = [0usize; 3];
    let mut finished = 0;
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["event"] == "job_finished" {
            finished += 1;
            let c = match v["outcome"]["kind"].as_str() {
                Some("ok") => 0,
                Some("exited") => v["outcome"]["code"].as_u64().unwrap_or(99) as usize,
                _ => panic!("no exit code: {line}"),
            };
            assert!(c < 3, "{line}");
            codes[c] += 1;
        }
    }
    assert_eq!(
        finished,
        1000,
        "{}\n{err}",
        &out[out.len().saturating_sub(3000)..]
    );
    // Jobs 1..1000 exit with job % 3: 333 zeros, 334 ones, 333 twos.
    assert_eq!(codes, [333, 334, 333]);
    assert_eq!(code, Some(1), "some jobs failed on purpose\n{err}");
}

fn put_get(f: &Fixture, ctx: &str) {
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("data.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let remote = format!("sortie-put-{}", std::process::id());
    let (code, out, err) = f.output(f.sortie(
        "put",
        "127.0.0.1",
        &[src.to_str().unwrap(), &format!("~/{remote}")],
    ));
    assert_eq!(code, Some(0), "{ctx}: put\n{out}\n{err}");
    let back = local.path().join("back");
    let (code, out, err) = f.output(f.sortie(
        "get",
        "127.0.0.1",
        &[&format!("~/{remote}"), back.to_str().unwrap()],
    ));
    assert_eq!(code, Some(0), "{ctx}: get\n{out}\n{err}");
    let got =
        find_file(&back, &remote).unwrap_or_else(|| panic!("{ctx}: nothing fetched\n{out}\n{err}"));
    assert_eq!(std::fs::read(got).unwrap(), data, "{ctx}: round trip");
    let _ = std::fs::remove_file(f.user.home.join(&remote));
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    sortie_testkit::paths_below(dir)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
}

#[test]
fn put_and_get_on_dropbear_and_on_openssh_without_sftp() {
    let test = "put_and_get_on_dropbear_and_on_openssh_without_sftp";
    if let Some(f) = Fixture::start(test, true, LoginShell::BusyboxAsh, true) {
        put_get(&f, "dropbear, ash");
    }
    if let Some(f) = Fixture::start(test, false, LoginShell::Fish, false) {
        put_get(&f, "openssh without sftp, fish");
    }
    if let Some(f) = Fixture::start(test, false, LoginShell::Tcsh, true) {
        put_get(&f, "openssh with sftp, tcsh");
    }
}

/// `sortie launch` on Dropbear (BusyBox ash) and on OpenSSH with a tcsh account: every
/// process becomes ready, the stop sequence (INT, which the processes answer by exiting)
/// ends them at the end of the hold, and nothing is left on the hosts.
#[test]
fn launch_stop_on_dropbear_and_on_a_tcsh_account_leaves_nothing() {
    let test = "launch_stop_on_dropbear_and_on_a_tcsh_account_leaves_nothing";
    for (dropbear, shell) in [(true, LoginShell::BusyboxAsh), (false, LoginShell::Tcsh)] {
        let Some(f) = Fixture::start(test, dropbear, shell, true) else {
            continue;
        };
        let ctx = format!("{} as {}", f.user.name, f.user.shell.display());
        let marker = format!("shells-launch-{}-{}", shell.name(), std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let plan = format!(
            "name = \"servers-shells\"\n\n[groups.cam]\nhosts = [\"127.0.0.1\", \"127.0.0.2\"]\n\n\
             [roles.worker]\ngroup = \"cam\"\ncount = 2\n\
             command = \"trap 'echo stopping; exit 0' INT; echo up; while :; do sleep 1; done; : {marker}\"\n\
             ready = 'up'\nready_timeout = \"20s\"\n\
             stop = [{{ signal = \"INT\", grace = \"5s\" }}]\n\n[run]\nduration = \"1s\"\n"
        );
        std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
        let run_dir = dir.path().join("run");
        let mut c = sortie();
        c.current_dir(dir.path())
            .args(["launch", "plan.toml", "-F"])
            .arg(&f.ssh_config)
            .arg("--run-dir")
            .arg(&run_dir);
        let (code, out, err) = f.output(c);
        assert_eq!(code, Some(0), "{ctx}: launch\n{out}\n{err}\n{}", f.log());
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
                .unwrap();
        let stopped = report["processes"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["ending"]["kind"] == "ready_then_stopped")
                    .count()
            })
            .unwrap_or(0);
        // `count = 2`: two processes in all, placed one per host.
        assert_eq!(stopped, 2, "{ctx}: {report}");
        assert_eq!(
            report["stop_check"]["survivors"],
            serde_json::json!([]),
            "{ctx}"
        );
        let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
        assert!(
            left.is_empty(),
            "{ctx}: left behind after launch's stop: {left:?}"
        );
    }
}
