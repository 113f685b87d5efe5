//! The `sortie` binary against real OpenSSH sshd fixtures on loopback: what a user sees
//! (output, summary, exit code) and what is left on the hosts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sortie_testkit::{Agent, KeyKind, Sshd};

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    // exec gives a piped stdin to every host: never the test harness's own.
    c.env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

fn skip(test: &str, reason: &str) {
    sortie_testkit::skip(test, reason);
}

fn sshd(test: &str) -> Option<Sshd> {
    if sortie_testkit::require_sshd().is_none() {
        skip(
            test,
            "OpenSSH sshd is not installed (scripts/test.sh installs it as root)",
        );
        return None;
    }
    Some(Sshd::builder().start().expect("fixture sshd starts"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("sortie runs");
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    (out, o, e)
}

#[test]
fn two_hundred_hosts_with_unreachable_and_refused_keys() {
    let Some(sshd) = sshd("two_hundred_hosts_with_unreachable_and_refused_keys") else {
        return;
    };
    let hosts = sortie_testkit::hosts(200);
    // Hosts 199 and 200 are not in known_hosts: their keys are refused.
    let known: Vec<&str> = hosts[..198].iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&known).unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let list = format!("{},127.0.0.1:{closed}", hosts.join(","));
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&cfg).args([
        "-H",
        &list,
        "--connect-timeout",
        "5s",
        "--",
        "echo ok from $(echo $SSH_CONNECTION | cut -d\" \" -f3)",
    ]));
    for h in &hosts[..198] {
        let width = hosts
            .iter()
            .map(|h| h.len())
            .max()
            .unwrap()
            .max(format!("127.0.0.1:{closed}").len());
        assert!(
            stdout.contains(&format!("{h:<width$} | ok from {h}\n")),
            "missing output of {h}\n{stdout}"
        );
    }
    assert_eq!(stdout.lines().count(), 198, "{stdout}");
    assert!(stderr.contains("ok: 127.0.0.[1-198]"), "{stderr}");
    assert!(stderr.contains("host key refused"), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{closed}")), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
}

#[test]
fn encrypted_key_prompts_once_for_many_hosts() {
    let Some(sshd) = sshd("encrypted_key_prompts_once_for_many_hosts") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key, pass) = sshd.encrypted_key();
    let counter = dir.path().join("asked");
    let askpass = dir.path().join("askpass.sh");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\necho x >> {}\necho '{pass}'\n",
            counter.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&askpass).unwrap().permissions(),
        0o755,
    );
    Command::new("chmod")
        .arg("755")
        .arg(&askpass)
        .status()
        .unwrap();
    let hosts = sortie_testkit::hosts(8);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let kh = sshd.known_hosts_for(&refs).unwrap();
    let cfg = write_config(
        dir.path(),
        &sshd,
        &kh,
        &[
            &format!("IdentityFile {}", key.display()),
            "IdentitiesOnly yes",
        ],
    );
    let (out, stdout, stderr) = run(sortie()
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .args(["exec", "-F"])
        .arg(&cfg)
        .args(["-H", &hosts.join(","), "--", "echo in"]));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.matches("| in").count(), 8);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        1,
        "asked once per key, not per host"
    );
    assert!(
        !stderr.contains(pass) && !stdout.contains(pass),
        "passphrase never printed"
    );
}

#[test]
fn agent_keys_authenticate_without_key_files() {
    let Some(sshd) = sshd("agent_keys_authenticate_without_key_files") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::with_keys(&[&sshd.client_key(KeyKind::Ecdsa)]).unwrap();
    let hosts = sortie_testkit::hosts(6);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let kh = sshd.known_hosts_for(&refs).unwrap();
    let cfg = write_config(
        dir.path(),
        &sshd,
        &kh,
        &[&format!(
            "IdentityFile {}",
            dir.path().join("none").display()
        )],
    );
    let (out, stdout, stderr) = run(sortie()
        .env("SSH_AUTH_SOCK", agent.sock())
        .args(["exec", "-F"])
        .arg(&cfg)
        .args(["-H", &hosts.join(","), "--", "echo agent"]));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.matches("| agent").count(), 6);
    // Without the agent, the same selection fails authentication, per host, with the reason.
    let (out, _, stderr) = run(sortie()
        .args(["exec", "-F"])
        .arg(&cfg)
        .args(["-H", &hosts[0], "--", "true"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr.contains("auth failed"), "{stderr}");
}

#[test]
fn proxyjump_targets_share_one_jump_connection() {
    let Some(target) = sshd("proxyjump_targets_share_one_jump_connection") else {
        return;
    };
    let jump = Sshd::builder().start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hosts = sortie_testkit::hosts(5);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let kh_target = target.known_hosts_for(&refs).unwrap();
    let kh_jump = jump.known_hosts_for(&["127.0.0.1"]).unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(&cfg, format!(
        "Host jump\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n\n\
         Host 127.*\n  ProxyJump jump\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
        jump.port(), jump.user(), jump.client_key(KeyKind::Ed25519).display(), kh_jump.display(),
        target.port(), target.user(), target.client_key(KeyKind::Ed25519).display(), kh_target.display())).unwrap();
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&cfg).args([
        "-H",
        &hosts.join(","),
        "--",
        "echo via $(echo $SSH_CONNECTION | cut -d' ' -f1)",
    ]));
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{}", jump.log());
    assert_eq!(stdout.matches("| via 127.0.0.1").count(), 5, "{stdout}");
    let accepted = jump.log().matches("Accepted publickey").count();
    assert_eq!(
        accepted,
        1,
        "one authenticated jump connection for 5 targets\n{}",
        jump.log()
    );
}

#[test]
fn bad_input_is_refused_before_any_host_is_contacted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(&cfg, "Host *\n  Port notaport\n").unwrap();
    let (out, _, stderr) = run(sortie().args(["exec", "-F"]).arg(&cfg).args([
        "-H",
        &format!("127.0.0.1:{port}"),
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:2:", cfg.display())),
        "names file:line: {stderr}"
    );
    let inv = dir.path().join("inv.toml");
    std::fs::write(
        &inv,
        "[groups.web]\nhosts = [\"127.0.0.1:{port}\"]\nusr = \"x\"\n"
            .replace("{port}", &port.to_string()),
    )
    .unwrap();
    let (out, _, stderr) = run(sortie()
        .args(["exec", "-i"])
        .arg(&inv)
        .args(["-g", "web", "--", "true"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("inv.toml:3:"), "{stderr}");
    for bad in [
        vec!["-H", "web[3-1]"],
        vec!["-H", "[::1"],
        vec!["--timeout", "soon", "-H", "x"],
        vec!["-f", "0", "-H", "x"],
    ] {
        let (out, _, stderr) = run(sortie().arg("exec").args(&bad).args(["--", "true"]));
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
    }
    assert!(listener.accept().is_err(), "no connection was made");
}

#[test]
fn output_modes_group_outdir_json() {
    let Some(sshd) = sshd("output_modes_group_outdir_json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hosts = sortie_testkit::hosts(4);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    let cmd =
        "case $SSH_CONNECTION in *127.0.0.4\\ *) echo different;; *) echo same;; esac; echo e >&2";
    let (out, stdout, _) = run(sortie().args(["exec", "--group", "-F"]).arg(&cfg).args([
        "-H",
        &hosts.join(","),
        "--",
        cmd,
    ]));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("127.0.0.[1-3]\n"), "{stdout}");
    assert_eq!(stdout.matches("same").count(), 1, "{stdout}");
    let od = dir.path().join("out");
    let (out, stdout, _) = run(sortie()
        .args(["exec", "--out-dir"])
        .arg(&od)
        .arg("-F")
        .arg(&cfg)
        .args(["-H", &hosts.join(","), "--", cmd]));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(od.join("127.0.0.4.out")).unwrap(),
        "different\n"
    );
    assert_eq!(
        std::fs::read_to_string(od.join("127.0.0.2.err")).unwrap(),
        "e\n"
    );
    let (out, stdout, _) = run(sortie().args(["exec", "--json", "-F"]).arg(&cfg).args([
        "-H",
        &hosts.join(","),
        "--",
        cmd,
    ]));
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "job_finished" && e["outcome"]["kind"] == "ok")
            .count(),
        4
    );
    assert_eq!(events.last().unwrap()["event"], "run_finished");
}

#[test]
fn ctrl_c_ends_remote_processes_and_exits_130() {
    let Some(sshd) = sshd("ctrl_c_ends_remote_processes_and_exits_130") else {
        return;
    };
    let hosts = sortie_testkit::hosts(3);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    let marker = format!("ctrlc-marker-{}", std::process::id());
    let child = sortie()
        .args(["exec", "-F"])
        .arg(&cfg)
        .args([
            "-H",
            &hosts.join(","),
            "--",
            &format!("echo started; sleep 1000; echo {marker}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the commands run on the hosts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sortie_testkit::remote_processes("sleep 1000").len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(text(&out.stderr).contains("interrupted"));
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn write_config(dir: &Path, sshd: &Sshd, kh: &Path, extra: &[&str]) -> PathBuf {
    let path = dir.join("ssh_config");
    let mut s = String::from("Host 127.*\n");
    for l in extra {
        s.push_str(&format!("  {l}\n"));
    }
    s.push_str(&format!(
        "  User {}\n  Port {}\n  UserKnownHostsFile {}\n",
        sshd.user(),
        sshd.port(),
        kh.display()
    ));
    std::fs::write(&path, s).unwrap();
    path
}

#[test]
fn host_key_alias_is_the_name_looked_up_and_recorded_in_known_hosts() {
    let Some(sshd) = sshd("host_key_alias_is_the_name_looked_up_and_recorded_in_known_hosts")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hosts = sortie_testkit::hosts(2);
    let key = sshd.client_key(KeyKind::Ed25519);
    let identity = format!("IdentityFile {}", key.display());
    // The server's keys recorded only under the alias, as OpenSSH writes them (no port).
    let kh = dir.path().join("known_hosts");
    let lines = sshd
        .known_hosts_lines(&["fleet-alias"])
        .unwrap()
        .replace(&format!("[fleet-alias]:{}", sshd.port()), "fleet-alias");
    std::fs::write(&kh, lines).unwrap();
    let with_alias = write_config(
        dir.path(),
        &sshd,
        &kh,
        &[
            "HostKeyAlias fleet-alias",
            &identity,
            "StrictHostKeyChecking yes",
        ],
    );
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&with_alias).args([
        "-H",
        &hosts.join(","),
        "--",
        "echo up",
    ]));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("| up").count(), 2, "{stdout}");
    // OpenSSH agrees with the same config
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(&with_alias)
        .args(["-o", "BatchMode=yes", &hosts[0], "true"])
        .output()
        .unwrap();
    assert!(ssh.status.success(), "{}", text(&ssh.stderr));

    // Without the alias the same known_hosts has no entry for these hosts: refused.
    let dir2 = tempfile::tempdir().unwrap();
    let plain = write_config(
        dir2.path(),
        &sshd,
        &kh,
        &[&identity, "StrictHostKeyChecking yes"],
    );
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&plain).args([
        "-H",
        &hosts.join(","),
        "--",
        "echo up",
    ]));
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("host key refused"), "{stderr}");

    // accept-new records the key under the alias, once, in OpenSSH's form
    let dir3 = tempfile::tempdir().unwrap();
    let kh_new = dir3.path().join("known_hosts");
    let accept = write_config(
        dir3.path(),
        &sshd,
        &kh_new,
        &[
            "HostKeyAlias other-alias",
            &identity,
            "StrictHostKeyChecking accept-new",
        ],
    );
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&accept).args([
        "-H",
        &hosts.join(","),
        "--",
        "echo up",
    ]));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let recorded = std::fs::read_to_string(&kh_new).unwrap();
    let names: Vec<&str> = recorded
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["other-alias"], "{recorded}");
}

/// `HashKnownHosts yes` with accept-new: the new lines are hashed (no host name in clear),
/// `ssh-keygen -F` finds each host, and both `ssh` and a second strict sortie run (with
/// `ConnectTimeout none`) trust them.
#[test]
fn hash_known_hosts_records_hashed_lines_that_openssh_finds() {
    let Some(sshd) = sshd("hash_known_hosts_records_hashed_lines_that_openssh_finds") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hosts = sortie_testkit::hosts(2);
    let key = sshd.client_key(KeyKind::Ed25519);
    let identity = format!("IdentityFile {}", key.display());
    let kh = dir.path().join("known_hosts");
    let accept = write_config(
        dir.path(),
        &sshd,
        &kh,
        &[
            &identity,
            "HashKnownHosts yes",
            "StrictHostKeyChecking accept-new",
        ],
    );
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&accept).args([
        "-H",
        &hosts.join(","),
        "--",
        "echo up",
    ]));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(recorded.lines().count(), 2, "{recorded}");
    assert!(
        recorded.lines().all(|l| l.starts_with("|1|")) && !recorded.contains("127.0.0"),
        "{recorded}"
    );
    for h in &hosts {
        let found = Command::new("ssh-keygen")
            .arg("-F")
            .arg(format!("[{h}]:{}", sshd.port()))
            .arg("-f")
            .arg(&kh)
            .output()
            .unwrap();
        assert!(
            text(&found.stdout).contains("found: line"),
            "ssh-keygen -F {h}: {}",
            text(&found.stdout)
        );
    }
    let dir2 = tempfile::tempdir().unwrap();
    // ConnectTimeout none: no timeout at all (it used to become 10 s), and still connects.
    let strict = write_config(
        dir2.path(),
        &sshd,
        &kh,
        &[
            &identity,
            "StrictHostKeyChecking yes",
            "ConnectTimeout none",
        ],
    );
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&strict).args([
        "-H",
        &hosts.join(","),
        "--",
        "echo up",
    ]));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(&strict)
        .args(["-o", "BatchMode=yes", &hosts[1], "true"])
        .output()
        .unwrap();
    assert!(ssh.status.success(), "{}", text(&ssh.stderr));
}

/// Ten hosts refused for the same reason print the reason once, under their folded names (as
/// `dshbak -c` folds outputs); a host refused for another reason keeps its own message.
#[test]
fn refusals_for_the_same_reason_are_printed_once() {
    let test = "refusals_for_the_same_reason_are_printed_once";
    let Some(sshd) = sshd(test) else {
        return;
    };
    let hosts = sortie_testkit::hosts(13);
    // 127.0.0.1-2 known; 127.0.0.3-12 unknown; 127.0.0.13 recorded with another key.
    let cfg = sshd.ssh_config_for(&[&hosts[0], &hosts[1]]).unwrap();
    let known = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("UserKnownHostsFile ")
                .map(PathBuf::from)
        })
        .unwrap();
    let other_key =
        std::fs::read_to_string(sshd.client_key(KeyKind::Ed25519).with_extension("pub")).unwrap();
    let mut kh = std::fs::read_to_string(&known).unwrap();
    kh.push_str(&format!("[127.0.0.13]:{} {}", sshd.port(), other_key));
    std::fs::write(&known, kh).unwrap();
    let (out, stdout, stderr) = run(sortie().args(["exec", "-F"]).arg(&cfg).args([
        "-H",
        &hosts.join(","),
        "--",
        "echo up",
    ]));
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("ok: 127.0.0.[1-2]\n"), "{stderr}");
    assert!(
        stderr.contains("host key refused: 127.0.0.[3-12]\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("host key refused: 127.0.0.13\n"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No host key is known for").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "No host key is known for [{{host}}]:{} and",
            sshd.port()
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("REMOTE HOST IDENTIFICATION HAS CHANGED")
            .count(),
        1,
        "{stderr}"
    );
    if let Some(path) = std::env::var_os("SORTIE_RECORD_EVENTS") {
        let (_, json, _) = run(sortie().args(["exec", "--json", "-F"]).arg(&cfg).args([
            "-H",
            &format!("{},127.0.0.1:1,127.0.0.2:1", hosts.join(",")),
            "--",
            "echo up",
        ]));
        std::fs::write(path, json).unwrap();
    }
}

/// Deterministic bytes that are not text: every byte value, in no short period.
fn input_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// `sha256sum`'s line for `bytes` (`HEX  -`), computed on this side.
fn sha256_of(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    text(&out.stdout).trim_end().to_owned()
}

/// Runs `cmd` with `input` on its stdin; returns what it printed and its status.
fn run_with_input(cmd: &mut Command, input: Vec<u8>) -> (Output, String, String) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sortie runs");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join().unwrap();
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    (out, o, e)
}

#[test]
fn piped_stdin_reaches_every_host_whole_and_exit_codes_come_back() {
    let Some(sshd) = sshd("piped_stdin_reaches_every_host_whole_and_exit_codes_come_back") else {
        return;
    };
    let hosts = sortie_testkit::hosts(20);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    let input = input_bytes(10 << 20);
    let want = sha256_of(&input);
    // Each host hashes what it read, then exits with the last octet of its address mod 3.
    let (out, stdout, stderr) = run_with_input(
        sortie().args(["exec", "-F"]).arg(&cfg).args([
            "-H",
            &hosts.join(","),
            "--",
            "sha256sum; exit $(( $(echo $SSH_CONNECTION | cut -d' ' -f3 | cut -d. -f4) % 3 ))",
        ]),
        input,
    );
    let width = hosts.iter().map(|h| h.len()).max().unwrap();
    for h in &hosts {
        assert!(
            stdout.contains(&format!("{h:<width$} | {want}\n")),
            "{h} did not hash the same 10 MB ({want})\n{stdout}\n{stderr}"
        );
    }
    assert_eq!(stdout.lines().count(), 20, "{stdout}");
    assert!(stderr.contains("exited non-zero (1): "), "{stderr}");
    assert!(stderr.contains("exited non-zero (2): "), "{stderr}");
    assert!(stderr.contains("20 hosts: 6 ok, 14 failed"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    // --no-stdin: the command reads /dev/null, as with an empty stdin.
    let (out, stdout, stderr) = run_with_input(
        sortie()
            .args(["exec", "--no-stdin", "-F"])
            .arg(&cfg)
            .args(["-H", &hosts[0], "--", "wc -c"]),
        b"not read".to_vec(),
    );
    assert_eq!(stdout.trim_end(), format!("{} | 0", hosts[0]), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn with_stdin_the_watchdog_ends_a_command_whose_connection_is_cut() {
    let test = "with_stdin_the_watchdog_ends_a_command_whose_connection_is_cut";
    let Some(sshd) = sshd(test) else {
        return;
    };
    use std::io::{BufRead, Write};
    let cfg = sshd.ssh_config_for(&["127.0.0.1"]).unwrap();
    let marker = format!("stdin-cut-marker-{}", std::process::id());
    let mut child = sortie()
        .args(["exec", "-F"])
        .arg(&cfg)
        .args([
            "-H",
            "127.0.0.1",
            "--",
            &format!("wc -c; sh -c 'sleep 1000; echo {marker}'"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input_bytes(100_000)).unwrap();
    drop(stdin);
    // The command counted its input, so it had its end of file; now it sleeps.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "127.0.0.1 | 100000\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    let sleeper = loop {
        let found = sortie_testkit::processes_matching(&marker);
        if let Some(p) = found.into_iter().find(|p| p.cmdline.starts_with("sh -c")) {
            break p;
        }
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Cut the channel: kill the sshd process serving this session (the command's nearest sshd
    // ancestor), so sortie cannot stop the command itself.
    let mut pid = sleeper.ppid;
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap()
        .trim()
        != "sshd"
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        pid = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
    }
    unsafe { libc_kill(pid as i32, 9) };
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("connection lost"), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(10));
    assert!(
        left.is_empty(),
        "the watchdog did not end the command: {left:?}"
    );
}

#[test]
fn piped_stdin_on_the_local_transport_and_its_bound() {
    // The bytes reach the command, then end of file (`wc -c` after `cat` sees nothing left).
    let (out, stdout, stderr) = run_with_input(
        sortie().args(["exec", "-H", "local", "--", "cat; wc -c"]),
        b"one\ntwo\n".to_vec(),
    );
    assert_eq!(stdout, "local | one\nlocal | two\nlocal | 0\n", "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // An empty stdin is no input, as before.
    let (_, stdout, _) = run_with_input(
        sortie().args(["exec", "-H", "local", "--", "wc -c"]),
        Vec::new(),
    );
    assert_eq!(stdout, "local | 0\n");
    // Over 64 MiB: refused as bad input, before anything runs.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ran");
    let (out, stdout, stderr) = run_with_input(
        sortie().args([
            "exec",
            "-H",
            "local",
            "--",
            &format!("touch {}", flag.display()),
        ]),
        vec![b'x'; (64 << 20) + 1],
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stdin holds more than 64 MiB"), "{stderr}");
    assert!(stderr.contains("--no-stdin"), "{stderr}");
    assert!(stdout.is_empty() && !flag.exists(), "{stdout}");
}

#[test]
fn forward_agent_gives_the_command_the_local_agent_only_when_asked() {
    let Some(sshd) = sshd("forward_agent_gives_the_command_the_local_agent_only_when_asked") else {
        return;
    };
    let key = sshd.client_key(KeyKind::Ecdsa);
    let agent = Agent::with_keys(&[&key]).unwrap();
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    let fingerprint = text(&listed.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    let dir = tempfile::tempdir().unwrap();
    let kh = sshd.known_hosts_for(&["127.0.0.1"]).unwrap();
    let plain = write_config(dir.path(), &sshd, &kh, &[]);
    let forwarding = dir.path().join("forwarding");
    std::fs::create_dir(&forwarding).unwrap();
    let forwarding = write_config(&forwarding, &sshd, &kh, &["ForwardAgent yes"]);
    let list = |cfg: &Path, extra: &[&str]| {
        run(sortie()
            .env("SSH_AUTH_SOCK", agent.sock())
            .args(["exec", "-F"])
            .arg(cfg)
            .args(extra)
            .args(["-H", "127.0.0.1", "--", "ssh-add -l"]))
    };
    for (how, cfg, extra) in [
        ("-A", &plain, &["-A"][..]),
        (
            "-o ForwardAgent=yes",
            &plain,
            &["-o", "ForwardAgent=yes"][..],
        ),
        ("ForwardAgent yes", &forwarding, &[][..]),
    ] {
        let (out, stdout, stderr) = list(cfg, extra);
        assert!(stdout.contains(&fingerprint), "{how}: {stdout}\n{stderr}");
        assert_eq!(out.status.code(), Some(0), "{how}: {stderr}");
    }
    // Without it the command has no agent (ssh-add exits 2: cannot connect).
    let (out, stdout, stderr) = list(&plain, &[]);
    assert!(!stdout.contains(&fingerprint), "{stdout}");
    assert!(stderr.contains("exited non-zero (2)"), "{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}
