//! The Dropbear fixture: a private Dropbear server (Debian `dropbear-bin`), the SSH server of
//! cameras, routers and small images, with its own host key, log and loopback port.
//!
//! Dropbear reads authorized keys only from the account's `~/.ssh/authorized_keys` and accepts
//! only shells listed in `/etc/shells`, so its login user is a [`TestUser`] (never the account
//! running the tests). Its host key is the shared ed25519 host key converted with
//! `dropbearconvert`, so known_hosts lines are the same as for an [`crate::Sshd`]. Like the
//! sshd fixture it listens on `0.0.0.0`, so every `127.x.y.z` is a distinct host. Dropping it
//! kills the server and every process it started, then removes its temp directory.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::keys::{KeyKind, Keys};
use crate::users::TestUser;
use crate::{find_in_path, procs};

/// Where Debian installs the Dropbear server.
pub const DEFAULT_DROPBEAR: &str = "/usr/sbin/dropbear";

/// The Dropbear server binary, or `None` (with `dropbearconvert`) when not installed.
pub fn require_dropbear() -> Option<PathBuf> {
    let bin = PathBuf::from(DEFAULT_DROPBEAR);
    (bin.exists() && find_in_path("dropbearconvert").is_some()).then_some(bin)
}

/// A running Dropbear fixture.
#[derive(Debug)]
pub struct Dropbear {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    base: PathBuf,
    keys: Keys,
    port: u16,
    user: TestUser,
    log_path: PathBuf,
}

impl Dropbear {
    /// Starts Dropbear for `user` (whose `authorized_keys` must hold the shared client keys,
    /// as [`crate::test_user`] writes them) and waits for its banner.
    pub fn start(user: &TestUser) -> Result<Dropbear> {
        let bin = require_dropbear().ok_or_else(|| {
            Error::Unavailable(format!(
                "no Dropbear at {DEFAULT_DROPBEAR} (Debian package dropbear-bin)"
            ))
        })?;
        let dir = tempfile::Builder::new()
            .prefix("sortie-dropbear-")
            .tempdir()
            .map_err(|e| Error::io("creating the fixture temp dir", e))?;
        let base = dir.path().to_path_buf();
        let keys = Keys::shared()?;
        let host_key = base.join("dropbear_ed25519_host_key");
        let out = Command::new("dropbearconvert")
            .args(["openssh", "dropbear"])
            .arg(keys.host_key(KeyKind::Ed25519))
            .arg(&host_key)
            .output()
            .map_err(|e| Error::io("running dropbearconvert", e))?;
        if !out.status.success() {
            return Err(Error::Tool {
                command: "dropbearconvert openssh dropbear".into(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let log_path = base.join("dropbear.log");
        for _ in 0..5 {
            let port = free_port()?;
            let mut child = spawn(&bin, port, &host_key, &base, &log_path)?;
            match wait_ready(&mut child, port, &log_path) {
                Ok(()) => {
                    return Ok(Dropbear {
                        child: Some(child),
                        _dir: dir,
                        base,
                        keys,
                        port,
                        user: user.clone(),
                        log_path,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    if !log.contains("Address already in use") {
                        return Err(e);
                    }
                }
            }
        }
        Err(Error::Unavailable("no free port for dropbear".into()))
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user (a [`TestUser`]).
    pub fn user(&self) -> String {
        self.user.name.clone()
    }

    /// The fixture's directory.
    pub fn dir(&self) -> &Path {
        &self.base
    }

    /// An unencrypted client key this server accepts.
    pub fn client_key(&self, kind: KeyKind) -> PathBuf {
        self.keys.client_key(kind)
    }

    /// Writes a known_hosts file listing this server's host key for these hosts at its port.
    pub fn known_hosts_for(&self, hosts: &[&str]) -> Result<PathBuf> {
        let key = self.keys.host_public_key(KeyKind::Ed25519)?;
        let mut out = String::new();
        for h in hosts {
            let _ = writeln!(out, "[{h}]:{} {key}", self.port);
        }
        let path = self.base.join(format!("known_hosts-{}", hosts.len()));
        fs::write(&path, out).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    }

    /// The pid of the listening Dropbear.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the listening Dropbear still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Dropbear's log (`-E`), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the server and everything it started. Idempotent.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        for p in procs::freeze_tree(child.id()) {
            procs::signal(p, libc::SIGKILL);
            procs::signal(p, libc::SIGCONT);
        }
        let _ = child.wait();
    }
}

impl Drop for Dropbear {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(bin: &Path, port: u16, host_key: &Path, base: &Path, log_path: &Path) -> Result<Child> {
    let log = fs::File::create(log_path)
        .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
    Command::new(bin)
        // Foreground, log to stderr, no password logins, no motd.
        .args(["-F", "-E", "-s", "-m"])
        .arg("-p")
        .arg(format!("0.0.0.0:{port}"))
        .arg("-r")
        .arg(host_key)
        .arg("-P")
        .arg(base.join("dropbear.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Own process group: a Ctrl-C in the test terminal must not reach it first.
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(format!("spawning {}", bin.display()), e))
}

fn wait_ready(child: &mut Child, port: u16, log_path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let log = || fs::read_to_string(log_path).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Unavailable(format!(
                "dropbear exited with {status}: {}",
                log()
            )));
        }
        if crate::sshd::banner_ok(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Unavailable(format!(
                "no SSH banner from dropbear on {addr}: {}",
                log()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|e| Error::io("binding 0.0.0.0:0 to find a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("reading the picked port", e))
}
