//! `exec` against a real OpenSSH sshd fixture: output, exit codes, host keys, timeouts and
//! cleanup of remote process trees.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sortie::runner::{exec, ExecOptions, RunHandle};
use sortie::transport::{
    ssh::SshOptions, ssh::SshTransport, HostKeyChecking, Transport, Transports,
};
use sortie::{CancellationToken, Event, Outcome};

fn transport() -> Arc<dyn Transport> {
    Arc::new(Transports::new(SshTransport::new(SshOptions {
        agent_socket: None,
        ..SshOptions::default()
    })))
}

/// Collects a run: per host, stdout lines and the outcome.
async fn collect(mut h: RunHandle) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Outcome>) {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    while let Some(ev) = h.events.recv().await {
        match ev {
            Event::Output { host, line, .. } => out
                .entry(host)
                .or_default()
                .push(String::from_utf8_lossy(&line).into_owned()),
            Event::JobFinished { host, outcome, .. } => {
                outcomes.insert(host, outcome);
            }
            _ => {}
        }
    }
    h.result.await.unwrap();
    (out, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_many_loopback_hosts_with_labels_and_codes() {
    let Some(sshd) = common::sshd_or_skip("runs_on_many_loopback_hosts_with_labels_and_codes")
    else {
        return;
    };
    let hosts = sortie_testkit::hosts(20);
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let kh = sshd.known_hosts_for(&refs).unwrap();
    let targets: Vec<_> = hosts
        .iter()
        .map(|h| common::target(&sshd, h, kh.clone()))
        .collect();
    let cmd = r#"echo "on $SSH_CONNECTION"; echo err >&2; printf 'no newline'; case "$SSH_CONNECTION" in *127.0.0.3\ *) exit 7;; esac"#;
    let h = exec(
        transport(),
        targets,
        cmd.into(),
        ExecOptions::default(),
        CancellationToken::new(),
    );
    let (out, outcomes) = collect(h).await;
    assert_eq!(outcomes.len(), 20);
    for host in &hosts {
        let lines = &out[host];
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("on ") && l.contains(&format!(" {host} "))),
            "{host}: {lines:?}"
        );
        assert!(lines.contains(&"err".to_string()));
        assert!(lines.contains(&"no newline".to_string()));
        let expected = if host == "127.0.0.3" {
            Outcome::Exited { code: 7 }
        } else {
            Outcome::Ok
        };
        assert_eq!(outcomes[host], expected, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_changed_host_keys_are_refused_and_nothing_runs() {
    let Some(sshd) =
        common::sshd_or_skip("unknown_and_changed_host_keys_are_refused_and_nothing_runs")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 127.0.0.2 is recorded with another server's key: a changed key.
    let other = sortie_testkit::Sshd::builder()
        .host_keys(sortie_testkit::HostKeys::Fresh)
        .start()
        .unwrap();
    let good = sshd.known_hosts_lines(&["127.0.0.1"]).unwrap();
    let bad = other.known_hosts_lines(&["127.0.0.2"]).unwrap().replace(
        &format!("]:{} ", other.port()),
        &format!("]:{} ", sshd.port()),
    );
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, format!("{good}{bad}")).unwrap();
    let marker = dir.path().join("ran");
    let targets: Vec<_> = ["127.0.0.1", "127.0.0.2", "127.0.0.4"]
        .iter()
        .map(|h| common::target(&sshd, h, kh.clone()))
        .collect();
    let cmd = format!(
        "touch {}-$(echo $SSH_CONNECTION | cut -d' ' -f3)",
        marker.display()
    );
    let (_, outcomes) = collect(exec(
        transport(),
        targets,
        cmd,
        ExecOptions::default(),
        CancellationToken::new(),
    ))
    .await;
    assert_eq!(outcomes["127.0.0.1"], Outcome::Ok);
    for host in ["127.0.0.2", "127.0.0.4"] {
        match &outcomes[host] {
            Outcome::ConnectFailed {
                failure: sortie::ConnectFailure::HostKeyRefused,
                message,
            } => {
                assert!(message.contains("SHA256:"), "{message}");
                if host == "127.0.0.2" {
                    let text = std::fs::read_to_string(&kh).unwrap();
                    let line = 1 + text
                        .lines()
                        .position(|l| l.contains("127.0.0.2") && l.contains("ssh-ed25519"))
                        .unwrap();
                    assert!(
                        message.contains(&format!("{}:{line}", kh.display())),
                        "names file:line: {message}"
                    );
                }
            }
            other => panic!("{host}: {other:?}"),
        }
        assert!(
            !std::path::Path::new(&format!("{}-{host}", marker.display())).exists(),
            "ran on {host}"
        );
    }
    drop(other);

    // accept-new records the unknown host once, then trusts it; the changed key stays refused.
    let mut t4 = common::target(&sshd, "127.0.0.4", kh.clone());
    t4.host_key_checking = HostKeyChecking::AcceptNew;
    let mut t2 = common::target(&sshd, "127.0.0.2", kh.clone());
    t2.host_key_checking = HostKeyChecking::AcceptNew;
    let (_, outcomes) = collect(exec(
        transport(),
        vec![t4, t2],
        "true".into(),
        ExecOptions::default(),
        CancellationToken::new(),
    ))
    .await;
    assert_eq!(outcomes["127.0.0.4"], Outcome::Ok);
    assert!(matches!(
        outcomes["127.0.0.2"],
        Outcome::ConnectFailed {
            failure: sortie::ConnectFailure::HostKeyRefused,
            ..
        }
    ));
    let text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(
        text.matches(&format!("[127.0.0.4]:{}", sshd.port()))
            .count(),
        1,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_fails_fast_as_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = sortie::transport::Target {
        label: "closed".into(),
        hostname: "127.0.0.1".into(),
        host_key_alias: None,
        hash_known_hosts: false,
        port,
        user: "nobody".into(),
        identity_files: vec![],
        identities_only: true,
        certificate_files: Vec::new(),
        forward_agent: false,
        jumps: vec![],
        proxy_command: None,
        known_hosts_files: vec![dir.path().join("kh")],
        host_key_checking: HostKeyChecking::Yes,
        connect_timeout: Duration::from_secs(2),
        keepalive_interval: Duration::ZERO,
        keepalive_max: 3,
        kind: sortie::transport::TransportKind::Ssh,
    };
    let started = Instant::now();
    let (_, outcomes) = collect(exec(
        transport(),
        vec![t],
        "true".into(),
        ExecOptions::default(),
        CancellationToken::new(),
    ))
    .await;
    assert!(
        matches!(
            outcomes["closed"],
            Outcome::ConnectFailed {
                failure: sortie::ConnectFailure::Unreachable,
                ..
            }
        ),
        "{outcomes:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the connect timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_cancel_leave_no_remote_process() {
    let Some(sshd) = common::sshd_or_skip("timeout_and_cancel_leave_no_remote_process") else {
        return;
    };
    let kh = sshd.known_hosts_for(&["127.0.0.1", "127.0.0.2"]).unwrap();
    // A tree: a shell with a background child and a foreground child, both ignoring nothing.
    let marker = format!("sortie-marker-{}", std::process::id());
    let cmd = format!("sleep 1000 & sh -c 'sleep 999; echo {marker}' ; wait");
    let options = ExecOptions {
        timeout: Some(Duration::from_millis(500)),
        stop: sortie::transport::StopSequence {
            steps: vec![("TERM".into(), Duration::from_secs(2))],
        },
        ..Default::default()
    };
    let targets = vec![common::target(&sshd, "127.0.0.1", kh.clone())];
    let (_, outcomes) = collect(exec(
        transport(),
        targets,
        cmd.clone(),
        options,
        CancellationToken::new(),
    ))
    .await;
    assert_eq!(outcomes["127.0.0.1"], Outcome::TimedOut);
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "left behind after timeout: {left:?}");

    // Cancellation (first Ctrl-C) ends the tree too; a process ignoring TERM gets KILL.
    let cancel = CancellationToken::new();
    let cmd = format!(
        "trap '' TERM; sleep 1000 & sh -c 'trap \"\" TERM; sleep 998; echo {marker}'; wait"
    );
    let options = ExecOptions {
        stop: sortie::transport::StopSequence {
            steps: vec![("TERM".into(), Duration::from_millis(300))],
        },
        ..Default::default()
    };
    let targets = vec![common::target(&sshd, "127.0.0.2", kh)];
    let h = exec(transport(), targets, cmd, options, cancel.clone());
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        c2.cancel();
    });
    let (_, outcomes) = collect(h).await;
    assert_eq!(outcomes["127.0.0.2"], Outcome::Interrupted);
    let left = sortie_testkit::wait_for_no_remote_processes(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "left behind after cancel: {left:?}");
}
