//! Shared helpers for the library's integration tests against real OpenSSH sshd fixtures.
#![allow(dead_code)]

use sortie::transport::{HostKeyChecking, Target, TransportKind};
use sortie_testkit::{KeyKind, Sshd};
use std::path::PathBuf;
use std::time::Duration;

/// Starts a fixture sshd, or records a visible SKIP with the reason and returns None.
pub fn sshd_or_skip(test: &str) -> Option<Sshd> {
    if sortie_testkit::require_sshd().is_none() {
        skip(
            test,
            "OpenSSH sshd is not installed (run scripts/test.sh as root to install it)",
        );
        return None;
    }
    match Sshd::builder().start() {
        Ok(s) => Some(s),
        Err(e) => {
            skip(test, &format!("cannot start a fixture sshd: {e}"));
            None
        }
    }
}

/// A target for loopback address `host` of fixture `sshd`, with its client key and known_hosts.
pub fn target(sshd: &Sshd, host: &str, known_hosts: PathBuf) -> Target {
    Target {
        label: host.to_string(),
        hostname: host.to_string(),
        host_key_alias: None,
        hash_known_hosts: false,
        port: sshd.port(),
        user: sshd.user(),
        identity_files: vec![sshd.client_key(KeyKind::Ed25519)],
        identities_only: true,
        certificate_files: Vec::new(),
        forward_agent: false,
        jumps: vec![],
        proxy_command: None,
        known_hosts_files: vec![known_hosts],
        host_key_checking: HostKeyChecking::Yes,
        connect_timeout: Duration::from_secs(10),
        keepalive_interval: Duration::from_secs(5),
        keepalive_max: 3,
        kind: TransportKind::Ssh,
    }
}

/// Records a skipped test visibly (see `sortie_testkit::skip`).
pub fn skip(test: &str, reason: &str) {
    sortie_testkit::skip(test, reason);
}
