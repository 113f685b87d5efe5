//! Real-parts test fixtures for sortie.
//!
//! This crate owns everything integration tests and benchmarks need to talk to a *real* OpenSSH
//! server on this machine, and nothing else:
//!
//! - [`Keys`]: host and client key sets generated with `ssh-keygen`;
//! - [`SshdBuilder`] / [`Sshd`]: a private `sshd` with its own config, keys, log and loopback
//!   port, reachable at every `127.x.y.z` address so that each address is a distinct "host";
//! - [`Dropbear`]: a private Dropbear server (the SSH server of cameras and routers), and
//!   [`test_user`]: dedicated accounts with another login shell (BusyBox ash, fish, tcsh...);
//! - [`Agent`]: a private `ssh-agent`;
//! - [`hosts`]: distinct loopback addresses for a fleet;
//! - [`remote_processes`]: which processes started through the fixture are still alive;
//! - [`NetnsFleet`]: hosts in network namespaces, for blackholes and network cuts;
//! - [`Proxy`]: a slow or stalling TCP proxy in front of a fixture sshd.
//!
//! It never touches the system sshd, `/etc/ssh` or `~/.ssh`; the only shared path it may create
//! is `/run/sshd` (the privilege-separation directory OpenSSH requires when run as root).
//! All traffic is to loopback, or to the network namespaces a [`NetnsFleet`] created.
//!
//! ```no_run
//! let Some(_) = sortie_testkit::require_sshd() else {
//!     eprintln!("SKIP: no sshd installed");
//!     return;
//! };
//! let sshd = sortie_testkit::Sshd::start().unwrap();
//! let config = sshd.ssh_config_for(&["127.0.0.7"]).unwrap();
//! let ok = std::process::Command::new("ssh")
//!     .arg("-F").arg(&config).args(["127.0.0.7", "true"])
//!     .status().unwrap().success();
//! assert!(ok, "{}", sshd.log());
//! ```

#![warn(missing_docs)]

mod agent;
mod dropbear;
mod error;
mod keys;
pub mod netns;
mod procs;
pub mod proxy;
mod sshd;
mod users;

pub use agent::Agent;
pub use dropbear::{require_dropbear, Dropbear, DEFAULT_DROPBEAR};
pub use error::Error;
pub use keys::{Fingerprint, KeyKind, Keys, PASSPHRASE};
pub use netns::{netns_unavailable, NetHost, NetnsFleet};
pub use procs::{processes_matching, remote_processes, wait_for_no_remote_processes, Process};
pub use proxy::{Behavior, Proxy, Slowness};
pub use sshd::{HostKeys, Sshd, SshdBuilder};
pub use users::{test_user, LoginShell, TestUser};

use std::path::PathBuf;

/// Default location of the OpenSSH server binary.
pub const DEFAULT_SSHD: &str = "/usr/sbin/sshd";

/// Environment variable that overrides the sshd binary used by the fixtures.
pub const SSHD_ENV: &str = "SORTIE_TESTKIT_SSHD";

/// Path of the `sshd` binary the fixtures will run, or `None` when it (or `ssh-keygen`) is not
/// installed. Callers print a visible `SKIP` reason when this returns `None`.
///
/// The path is `$SORTIE_TESTKIT_SSHD` when set, else `/usr/sbin/sshd`.
pub fn require_sshd() -> Option<PathBuf> {
    let sshd = std::env::var_os(SSHD_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SSHD));
    if !is_executable(&sshd) {
        return None;
    }
    find_in_path("ssh-keygen")?;
    Some(sshd)
}

/// `n` distinct loopback addresses: `127.0.0.1`, `127.0.0.2`, ..., `127.0.0.254`, `127.0.1.1`, ...
///
/// The last octet skips `.0` and `.255`, so every address is an ordinary host address. With
/// the fixture's default `ListenAddress 0.0.0.0`, each one reaches the same sshd while looking
/// like a different host to a client (its own known_hosts entry, its own connection).
pub fn hosts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let last = i % 254 + 1;
            let third = (i / 254) % 256;
            let second = i / (254 * 256);
            format!("127.{second}.{third}.{last}")
        })
        .collect()
}

/// Name of the user running the tests (the login user of every fixture).
pub fn current_user() -> String {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".to_owned())
    })
    .clone()
}

/// Whether the current process runs as root (uid 0).
pub fn is_root() -> bool {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// First executable named `name` in `$PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Records a skipped test visibly: prints `SKIP <test>: <reason>` on stderr and appends it to
/// the file named by `$SORTIE_SKIP_LOG` (scripts/test.sh sets it and prints the file at the
/// end, because libtest hides a passing test's output).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}");
    eprintln!("{line}");
    append_to_log("SORTIE_SKIP_LOG", &line);
}

/// Appends `line` to the file named by the environment variable `var`, when it is set (the
/// logs scripts/test.sh prints at the end). Best effort: a test never fails on its log.
pub fn append_to_log(var: &str, line: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os(var) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Every file and directory below `dir` (not `dir` itself), depth first; nothing when `dir`
/// cannot be read.
pub fn paths_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_can_be_shared_across_threads() {
        // Tokio tests hold fixtures across awaits and in Arcs.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Sshd>();
        send_sync::<Agent>();
        send_sync::<Keys>();
    }

    #[test]
    fn hosts_are_distinct_and_skip_network_and_broadcast_octets() {
        let h = hosts(1000);
        assert_eq!(h.len(), 1000);
        assert_eq!(h[0], "127.0.0.1");
        assert_eq!(h[253], "127.0.0.254");
        assert_eq!(h[254], "127.0.1.1");
        let unique: std::collections::HashSet<_> = h.iter().collect();
        assert_eq!(unique.len(), 1000);
        for a in &h {
            let last = a.rsplit('.').next().unwrap();
            assert!(last != "0" && last != "255", "{a}");
            assert!(a.parse::<std::net::Ipv4Addr>().unwrap().is_loopback());
        }
    }
}
