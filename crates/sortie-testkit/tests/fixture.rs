//! Tests of the fixture itself, using the real OpenSSH client (`/usr/bin/ssh`) as the peer.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sortie_testkit::{hosts, remote_processes, Agent, HostKeys, KeyKind, Sshd};

/// Skips (with a visible reason) when sshd is not installed.
macro_rules! require_sshd {
    () => {
        if sortie_testkit::require_sshd().is_none() {
            eprintln!("SKIP: OpenSSH sshd or ssh-keygen not installed");
            return;
        }
    };
}

fn ssh(args: &[&str]) -> Output {
    Command::new("ssh")
        .args(["-o", "ConnectTimeout=10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running ssh")
}

fn ssh_f(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-F", config.to_str().unwrap()];
    all.extend_from_slice(args);
    ssh(&all)
}

fn explain(out: &Output, sshd: &Sshd) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}\nsshd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    )
}

#[test]
fn ssh_with_client_key_and_known_hosts_reaches_any_loopback_address() {
    require_sshd!();
    let sshd = Sshd::start().unwrap();
    let kh = sshd.known_hosts_for(&["127.0.0.5", "127.0.1.9"]).unwrap();
    for (host, kind) in [("127.0.0.5", KeyKind::Ed25519), ("127.0.1.9", KeyKind::Rsa)] {
        let key = sshd.client_key(kind);
        let out = ssh(&[
            "-F",
            "/dev/null",
            "-i",
            key.to_str().unwrap(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            &format!("UserKnownHostsFile={}", kh.display()),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-p",
            &sshd.port().to_string(),
            &format!("{}@{host}", sshd.user()),
            "echo $SSH_CONNECTION",
        ]);
        assert!(out.status.success(), "{}", explain(&out, &sshd));
        // The server sees the connection arrive on the address the client dialled.
        let conn = String::from_utf8_lossy(&out.stdout);
        assert!(conn.contains(&format!("{host} {}", sshd.port())), "{conn}");
    }
    // An address missing from known_hosts is refused under strict checking.
    let out = ssh(&[
        "-F",
        "/dev/null",
        "-i",
        sshd.client_key(KeyKind::Ecdsa).to_str().unwrap(),
        "-o",
        &format!("UserKnownHostsFile={}", kh.display()),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-p",
        &sshd.port().to_string(),
        "127.0.0.6",
        "true",
    ]);
    assert!(!out.status.success(), "{}", explain(&out, &sshd));
}

#[test]
fn generated_ssh_config_works_with_plain_ssh() {
    require_sshd!();
    let sshd = Sshd::start().unwrap();
    let cfg = sshd.ssh_config_for(&["127.0.0.9"]).unwrap();
    let user_at = format!("{}@127.0.0.9", sshd.user());
    let out = ssh_f(&cfg, &["-p", &sshd.port().to_string(), &user_at, "true"]);
    assert!(out.status.success(), "{}", explain(&out, &sshd));
    let out = ssh_f(&cfg, &["127.0.0.9", "echo", "ok"]);
    assert!(out.status.success(), "{}", explain(&out, &sshd));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn second_fixture_works_as_proxyjump_host() {
    require_sshd!();
    let target = Sshd::start().unwrap();
    let jump = Sshd::start().unwrap();
    let mut known = target.known_hosts_lines(&["127.0.0.9"]).unwrap();
    known.push_str(&jump.known_hosts_lines(&["127.0.0.1"]).unwrap());
    let kh = target.dir().join("known_hosts-jump");
    std::fs::write(&kh, known).unwrap();
    let cfg = target
        .ssh_config_with(&[], &[&format!("UserKnownHostsFile {}", kh.display())])
        .unwrap();
    let via = format!("{}@127.0.0.1:{}", jump.user(), jump.port());
    let out = ssh_f(
        &cfg,
        &[
            "-J",
            &via,
            "-p",
            &target.port().to_string(),
            &format!("{}@127.0.0.9", target.user()),
            "echo $SSH_CONNECTION",
        ],
    );
    assert!(
        out.status.success(),
        "{}\njump log:\n{}",
        explain(&out, &target),
        jump.log()
    );
    // The target saw the connection come from the jump host, and the jump host forwarded it.
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("127.0.0.1 "),
        "{}",
        explain(&out, &target)
    );
    assert!(jump.log().contains("Accepted publickey"), "{}", jump.log());
}

#[test]
fn max_sessions_defaults_to_openssh_ten() {
    require_sshd!();
    let sshd = Sshd::start().unwrap();
    let config = std::fs::read_to_string(sshd.config_path()).unwrap();
    assert!(!config.contains("MaxSessions"), "{config}");

    // Behaviour, as a user sees it: one multiplexed connection carries at most 10 sessions.
    let cfg = sshd.ssh_config_for(&["127.0.0.2"]).unwrap();
    let ctl = sshd.dir().join("ctl.sock");
    let ctl_opt = format!("ControlPath={}", ctl.display());
    let out = ssh_f(
        &cfg,
        &[
            "-o",
            "ControlMaster=yes",
            "-o",
            &ctl_opt,
            "-fN",
            "127.0.0.2",
        ],
    );
    assert!(out.status.success(), "{}", explain(&out, &sshd));
    let mut sessions: Vec<_> = (0..10)
        .map(|_| {
            Command::new("ssh")
                .args(["-F", cfg.to_str().unwrap(), "-o", &ctl_opt, "127.0.0.2"])
                .args(["sleep", "4"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!sshd.log().contains("no more sessions"), "{}", sshd.log());
    // The 11th session on the same connection is refused by the server (the OpenSSH client
    // then quietly falls back to a connection of its own).
    let _eleventh = ssh_f(&cfg, &["-o", &ctl_opt, "127.0.0.2", "true"]);
    let statuses: Vec<_> = sessions.iter_mut().map(|c| c.wait().unwrap()).collect();
    let _ = ssh_f(&cfg, &["-o", &ctl_opt, "-O", "exit", "127.0.0.2"]);
    assert!(
        statuses.iter().all(|s| s.success()),
        "{statuses:?}\n{}",
        sshd.log()
    );
    assert!(sshd.log().contains("no more sessions"), "{}", sshd.log());
}

#[test]
fn restart_keeps_the_port_and_stop_refuses_connections() {
    require_sshd!();
    let mut sshd = Sshd::start().unwrap();
    let port = sshd.port();
    let cfg = sshd.ssh_config_for(&["127.0.0.3"]).unwrap();
    sshd.stop();
    assert!(!sshd.is_running());
    let out = ssh_f(&cfg, &["127.0.0.3", "true"]);
    assert!(!out.status.success(), "{}", explain(&out, &sshd));
    sshd.restart().unwrap();
    assert_eq!(sshd.port(), port);
    let out = ssh_f(&cfg, &["127.0.0.3", "true"]);
    assert!(out.status.success(), "{}", explain(&out, &sshd));
}

#[test]
fn changed_host_key_is_refused_with_the_new_fingerprint() {
    require_sshd!();
    let mut sshd = Sshd::start().unwrap();
    let cfg = sshd.ssh_config_for(&["127.0.0.4"]).unwrap();
    let before = sshd.host_key_fingerprints().unwrap();
    sshd.change_host_keys().unwrap();
    let after = sshd.host_key_fingerprints().unwrap();
    assert_ne!(before, after);
    let out = ssh_f(&cfg, &["127.0.0.4", "true"]);
    assert!(!out.status.success(), "{}", explain(&out, &sshd));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        after.iter().any(|f| err.contains(&f.sha256)),
        "{after:?}\n{err}"
    );

    // A second fixture with fresh keys differs from the shared set too.
    let other = Sshd::builder().host_keys(HostKeys::Fresh).start().unwrap();
    assert_ne!(other.host_key_fingerprints().unwrap(), before);
    // ...and one built from another fixture's keys presents the same keys.
    let same = Sshd::builder()
        .host_keys(HostKeys::From(other.keys().clone()))
        .start()
        .unwrap();
    assert_eq!(
        same.host_key_fingerprints().unwrap(),
        other.host_key_fingerprints().unwrap()
    );
}

#[test]
fn agent_holds_the_encrypted_key_and_ssh_uses_it() {
    require_sshd!();
    let sshd = Sshd::start().unwrap();
    let kh = sshd.known_hosts_for(&["127.0.0.8"]).unwrap();
    let agent = Agent::start().unwrap();
    let ident = format!("IdentityAgent={}", agent.sock().display());
    let khopt = format!("UserKnownHostsFile={}", kh.display());
    let port = sshd.port().to_string();
    let dest = format!("{}@127.0.0.8", sshd.user());
    let args = [
        "-F",
        "/dev/null",
        "-o",
        &ident,
        "-o",
        &khopt,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentityFile=/nonexistent",
        "-p",
        &port,
        &dest,
        "true",
    ];
    // Empty agent: no way in.
    assert!(agent.list().unwrap().is_empty());
    let out = ssh(&args);
    assert!(!out.status.success(), "{}", explain(&out, &sshd));
    // With the encrypted key unlocked in the agent: in.
    let (key, pass) = sshd.encrypted_key();
    agent.add(&key, Some(pass)).unwrap();
    assert_eq!(agent.list().unwrap().len(), 1);
    let out = ssh(&args);
    assert!(out.status.success(), "{}", explain(&out, &sshd));
    // A wrong passphrase is an error, not a hang.
    assert!(agent.add(&key, Some("wrong")).is_err());
}

#[test]
fn remote_processes_finds_a_sleep_started_over_ssh_and_kill_ends_it() {
    require_sshd!();
    let mut sshd = Sshd::start().unwrap();
    let cfg = sshd.ssh_config_for(&["127.0.0.6"]).unwrap();
    // The fractional duration makes the command line unique to this test run.
    let marker = format!("sleep 300.{}", std::process::id());
    let mut client = Command::new("ssh")
        .args(["-F", cfg.to_str().unwrap(), "127.0.0.6", &marker])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut found = Vec::new();
    for _ in 0..100 {
        found = remote_processes(&marker);
        // The login shell runs `bash -c ...` first, then execs sleep.
        if found.iter().any(|(_, cmd)| cmd.starts_with("sleep ")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(found.len(), 1, "{found:?}\n{}", sshd.log());
    assert!(found[0].1.starts_with("sleep "), "{found:?}");
    // The local client carries the marker in its arguments but is not remote.
    assert!(found.iter().all(|(pid, _)| *pid != client.id()));

    // The host dies: the connection drops and no remote process is left.
    sshd.kill();
    let status = client.wait().unwrap();
    assert!(!status.success());
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn sftp_subsystem_can_be_switched_off() {
    require_sshd!();
    for (on, host) in [(true, "127.0.0.10"), (false, "127.0.0.11")] {
        let sshd = Sshd::builder().sftp(on).start().unwrap();
        let cfg = sshd.ssh_config_for(&[host]).unwrap();
        let out = Command::new("sftp")
            .args(["-F", cfg.to_str().unwrap(), "-b", "-", host])
            .stdin(std::fs::File::open("/dev/null").unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.success(), on, "{}", explain(&out, &sshd));
    }
}

#[test]
fn bad_config_fails_fast_with_the_sshd_log() {
    require_sshd!();
    let err = Sshd::builder()
        .config_line("NoSuchKeyword yes")
        .start()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("NoSuchKeyword"), "{msg}");
}

#[test]
fn max_sessions_and_extra_lines_are_written() {
    require_sshd!();
    let sshd = Sshd::builder()
        .max_sessions(Some(3))
        .client_alive(5, 2)
        .config_line("Match Address 127.0.0.99")
        .config_line("    PermitTTY no")
        .start()
        .unwrap();
    let config = std::fs::read_to_string(sshd.config_path()).unwrap();
    assert!(config.contains("MaxSessions 3"));
    assert!(config.contains("ClientAliveInterval 5"));
    // The Match block is last, so it does not swallow the global settings.
    assert!(config.trim_end().ends_with("PermitTTY no"), "{config}");
    let many = hosts(300);
    let cfg = sshd
        .ssh_config_for(&many.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    let out = ssh_f(&cfg, &[&many[299], "true"]);
    assert!(out.status.success(), "{}", explain(&out, &sshd));
}
