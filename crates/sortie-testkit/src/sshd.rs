//! The sshd fixture: a private OpenSSH server with its own config, keys, log and port.
//!
//! Owns the server's lifecycle (start, wait for the banner, stop, kill, restart) and the
//! client-side files that point at it (known_hosts, ssh_config). It must never read or write
//! `/etc/ssh`, `~/.ssh` or the system sshd; everything lives in the fixture's temp directory,
//! which is removed when the [`Sshd`] is dropped.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::keys::{Fingerprint, KeyKind, Keys};
use crate::procs;

/// OpenSSH's privilege-separation directory; sshd refuses to start as root without it.
const PRIVSEP_DIR: &str = "/run/sshd";

/// Where the fixture's host keys come from.
#[derive(Debug, Clone, Default)]
pub enum HostKeys {
    /// The per-user shared set ([`Keys::shared`]): every fixture looks like the same host key
    /// set, which is what most tests want.
    #[default]
    Shared,
    /// A freshly generated set, different from every other fixture's: start a second sshd on
    /// the same port with these to simulate a host whose key changed.
    Fresh,
    /// The host keys of this key set (for example another fixture's [`Sshd::keys`]).
    From(Keys),
}

/// Configures and starts an [`Sshd`].
///
/// Defaults: `ListenAddress 0.0.0.0`, a free port, `AllowUsers <user>@127.0.0.0/8`, OpenSSH's
/// default `MaxSessions` (10, no line written), `MaxStartups 1000:30:2000`, sftp on,
/// `AllowTcpForwarding yes` (usable as a ProxyJump host), shared host keys, `LogLevel VERBOSE`.
#[derive(Debug, Clone)]
pub struct SshdBuilder {
    sshd: Option<PathBuf>,
    listen: IpAddr,
    port: Option<u16>,
    allow_from: String,
    max_sessions: Option<u32>,
    max_startups: Option<String>,
    sftp: bool,
    tcp_forwarding: bool,
    host_keys: HostKeys,
    client_alive: Option<(u32, u32)>,
    log_level: String,
    extra: Vec<String>,
    start_timeout: Duration,
    login: Option<crate::TestUser>,
}

impl Default for SshdBuilder {
    fn default() -> Self {
        SshdBuilder {
            sshd: None,
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: None,
            allow_from: "127.0.0.0/8".to_owned(),
            max_sessions: None,
            max_startups: Some("1000:30:2000".to_owned()),
            sftp: true,
            tcp_forwarding: true,
            host_keys: HostKeys::Shared,
            client_alive: None,
            log_level: "VERBOSE".to_owned(),
            extra: Vec::new(),
            start_timeout: Duration::from_secs(10),
            login: None,
        }
    }
}

impl SshdBuilder {
    /// A builder with the defaults listed on [`SshdBuilder`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The sshd binary (default: [`crate::require_sshd`]'s answer, else `/usr/sbin/sshd`).
    pub fn sshd_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.sshd = Some(path.into());
        self
    }

    /// `ListenAddress` (default `0.0.0.0`, so every `127.x.y.z` reaches this server).
    pub fn listen(mut self, addr: IpAddr) -> Self {
        self.listen = addr;
        self
    }

    /// A fixed port instead of a free one picked automatically.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Source network allowed to log in, written as `AllowUsers <user>@<cidr>`
    /// (default `127.0.0.0/8`).
    pub fn allow_from(mut self, cidr: impl Into<String>) -> Self {
        self.allow_from = cidr.into();
        self
    }

    /// `MaxSessions` (channels per connection). `None` (default) writes no line, so OpenSSH's
    /// default of 10 applies, as on real servers.
    pub fn max_sessions(mut self, n: Option<u32>) -> Self {
        self.max_sessions = n;
        self
    }

    /// `MaxStartups` (default `1000:30:2000`, raised for fan-out); `None` keeps OpenSSH's
    /// default `10:30:100`.
    pub fn max_startups(mut self, value: Option<&str>) -> Self {
        self.max_startups = value.map(str::to_owned);
        self
    }

    /// Whether to offer the sftp subsystem (`Subsystem sftp internal-sftp`); default true.
    pub fn sftp(mut self, on: bool) -> Self {
        self.sftp = on;
        self
    }

    /// `AllowTcpForwarding yes|no` (default yes, needed for ProxyJump).
    pub fn tcp_forwarding(mut self, on: bool) -> Self {
        self.tcp_forwarding = on;
        self
    }

    /// Where the host keys come from (default [`HostKeys::Shared`]).
    pub fn host_keys(mut self, keys: HostKeys) -> Self {
        self.host_keys = keys;
        self
    }

    /// `ClientAliveInterval <secs>` and `ClientAliveCountMax <count>`.
    pub fn client_alive(mut self, interval_secs: u32, count_max: u32) -> Self {
        self.client_alive = Some((interval_secs, count_max));
        self
    }

    /// `LogLevel` (default `VERBOSE`).
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// An extra `sshd_config` line, written before the defaults so it wins (sshd keeps the
    /// first value of most keywords). `Match` blocks go last automatically.
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    /// Logs in as this test account (see [`crate::test_user`]) instead of the user running
    /// the tests; its keys are read from its own `~/.ssh/authorized_keys`.
    pub fn login_user(mut self, user: &crate::TestUser) -> Self {
        self.login = Some(user.clone());
        self
    }

    /// How long to wait for the banner before failing (default 10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Writes the config and keys into a new temp directory, starts sshd and waits until it
    /// answers with an `SSH-2.0-` banner. Fails with the sshd log when it does not.
    pub fn start(self) -> Result<Sshd> {
        let sshd_bin = match &self.sshd {
            Some(p) => p.clone(),
            None => crate::require_sshd().ok_or_else(|| {
                Error::Unavailable(format!(
                    "no sshd at {} (or ssh-keygen missing from PATH); install openssh-server \
                     or set {}",
                    crate::DEFAULT_SSHD,
                    crate::SSHD_ENV
                ))
            })?,
        };
        let root = crate::is_root();
        if root {
            ensure_privsep_dir()?;
        }
        if !root && matches!(self.port, Some(p) if p < 1024) {
            return Err(Error::Unavailable(format!(
                "port {} needs root; sshd runs as an unprivileged user here",
                self.port.unwrap_or_default()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("sortie-sshd-")
            .tempdir()
            .map_err(|e| Error::io("creating the fixture temp dir", e))?;
        let base = dir
            .path()
            .canonicalize()
            .map_err(|e| Error::io("resolving the fixture temp dir", e))?;
        let keys_dir = base.join("keys");
        let keys = Keys::shared()?.copy_to(&keys_dir)?;
        match &self.host_keys {
            HostKeys::Shared => {}
            HostKeys::Fresh => {
                Keys::generate_host_keys(&keys_dir)?;
            }
            HostKeys::From(other) => {
                for kind in KeyKind::ALL {
                    for (from, to) in [
                        (other.host_key(kind), keys.host_key(kind)),
                        (
                            crate::keys::pub_path(&other.host_key(kind)),
                            crate::keys::pub_path(&keys.host_key(kind)),
                        ),
                    ] {
                        fs::copy(&from, &to).map_err(|e| {
                            Error::io(format!("copying host key {}", from.display()), e)
                        })?;
                    }
                    fs::set_permissions(keys.host_key(kind), fs::Permissions::from_mode(0o600))
                        .map_err(|e| Error::io("chmod 600 host key", e))?;
                }
            }
        }
        let authorized = base.join("authorized_keys");
        write_file(&authorized, &keys.authorized_keys()?, 0o600)?;

        let user = match &self.login {
            Some(u) => u.name.clone(),
            None => crate::current_user(),
        };
        let mut sshd = Sshd {
            child: None,
            dir: Some(dir),
            base: base.clone(),
            keys,
            config: base.join("sshd_config"),
            log_path: base.join("sshd.log"),
            sshd_bin,
            listen: self.listen,
            port: 0,
            user,
            counter: AtomicUsize::new(0),
            start_timeout: self.start_timeout,
        };
        let fixed = self.port;
        let attempts = if fixed.is_some() { 1 } else { 5 };
        let mut last = None;
        for _ in 0..attempts {
            let port = match fixed {
                Some(p) => p,
                None => free_port(self.listen)?,
            };
            sshd.port = port;
            write_file(&sshd.config, &self.render_config(&sshd), 0o600)?;
            match sshd.spawn() {
                Ok(()) => return Ok(sshd),
                Err(e @ Error::SshdStart { .. }) if fixed.is_none() && is_bind_error(&e) => {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unavailable("no free port found".to_owned())))
    }

    fn render_config(&self, s: &Sshd) -> String {
        let mut c = String::new();
        let (extra_plain, extra_match): (Vec<_>, Vec<_>) = {
            // Everything after the first `Match` line belongs to that block.
            let split = self
                .extra
                .iter()
                .position(|l| l.trim_start().to_ascii_lowercase().starts_with("match "))
                .unwrap_or(self.extra.len());
            (self.extra[..split].to_vec(), self.extra[split..].to_vec())
        };
        let _ = writeln!(c, "# sortie-testkit fixture; generated, do not edit");
        for l in &extra_plain {
            let _ = writeln!(c, "{l}");
        }
        let _ = writeln!(c, "ListenAddress {}", SocketAddr::new(self.listen, s.port));
        let _ = writeln!(c, "Port {}", s.port);
        for kind in KeyKind::ALL {
            let _ = writeln!(c, "HostKey {}", s.keys.host_key(kind).display());
        }
        let _ = writeln!(c, "PidFile {}", s.base.join("sshd.pid").display());
        match &self.login {
            // sshd reads a test account's keys as that account: from its own home.
            Some(_) => c.push_str("AuthorizedKeysFile .ssh/authorized_keys\n"),
            None => {
                let _ = writeln!(
                    c,
                    "AuthorizedKeysFile {}",
                    s.base.join("authorized_keys").display()
                );
            }
        }
        let _ = writeln!(c, "AllowUsers {}@{}", s.user, self.allow_from);
        c.push_str(
            "StrictModes no\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             HostbasedAuthentication no\n\
             GSSAPIAuthentication no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             UseDNS no\n\
             PermitUserEnvironment no\n\
             X11Forwarding no\n",
        );
        // The test user's ~/.bashrc runs in every session (bash sources it when started by
        // sshd). On this CI image it runs `pyenv rehash`, which waits up to 60 s on a lock
        // that a killed session can leave behind. Bound the wait to 15 s: long enough that
        // many concurrent logins queue silently (a shorter bound makes pyenv print a lock
        // error into the command's stderr), short enough that a stale lock cannot stall the
        // suite for a minute per login.
        c.push_str("SetEnv PYENV_REHASH_TIMEOUT=15");
        // ... and it should not run at all: bash reads ~/.bashrc for an sshd session only as a
        // top-level shell (SHLVL below 2), so SHLVL=1 skips it. Sessions then cost what sshd
        // and a plain shell cost, on every machine alike, instead of this image's `pyenv init`
        // (about 0.2 s of CPU per session, which drowned every timing in the benchmarks).
        c.push_str(" SHLVL=1\n");
        let _ = writeln!(c, "LogLevel {}", self.log_level);
        let _ = writeln!(
            c,
            "AllowTcpForwarding {}",
            if self.tcp_forwarding { "yes" } else { "no" }
        );
        if let Some(n) = self.max_sessions {
            let _ = writeln!(c, "MaxSessions {n}");
        }
        if let Some(m) = &self.max_startups {
            let _ = writeln!(c, "MaxStartups {m}");
        }
        if let Some((interval, count)) = self.client_alive {
            let _ = writeln!(c, "ClientAliveInterval {interval}");
            let _ = writeln!(c, "ClientAliveCountMax {count}");
        }
        if self.sftp {
            c.push_str("Subsystem sftp internal-sftp\n");
        }
        for l in &extra_match {
            let _ = writeln!(c, "{l}");
        }
        c
    }
}

/// A running fixture sshd. Dropping it kills the server and every process it started, then
/// removes its temp directory.
#[derive(Debug)]
pub struct Sshd {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    base: PathBuf,
    keys: Keys,
    config: PathBuf,
    log_path: PathBuf,
    sshd_bin: PathBuf,
    listen: IpAddr,
    port: u16,
    user: String,
    counter: AtomicUsize,
    start_timeout: Duration,
}

impl Sshd {
    /// Starts a fixture with every default ([`SshdBuilder`]).
    pub fn start() -> Result<Sshd> {
        SshdBuilder::new().start()
    }

    /// A builder, to change the defaults.
    pub fn builder() -> SshdBuilder {
        SshdBuilder::new()
    }

    /// The TCP port sshd listens on (kept across [`Sshd::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user (the user running the tests; `root` in CI).
    pub fn user(&self) -> String {
        self.user.clone()
    }

    /// The fixture's directory (config, keys, log, generated client files).
    pub fn dir(&self) -> &Path {
        &self.base
    }

    /// The `sshd_config` file in use.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The key set (host keys of this server, client keys it accepts).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// An unencrypted client key this server accepts.
    pub fn client_key(&self, kind: KeyKind) -> PathBuf {
        self.keys.client_key(kind)
    }

    /// The passphrase-protected ed25519 client key this server accepts, and its passphrase.
    pub fn encrypted_key(&self) -> (PathBuf, &'static str) {
        self.keys.encrypted_key()
    }

    /// The process id of the listening sshd, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the listening sshd is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// known_hosts lines for these hosts at this port (`[127.0.0.5]:PORT ssh-ed25519 AAAA...`,
    /// one per host key; no brackets when the port is 22).
    pub fn known_hosts_lines(&self, hosts: &[&str]) -> Result<String> {
        let keys: Vec<String> = KeyKind::ALL
            .iter()
            .map(|k| self.keys.host_public_key(*k))
            .collect::<Result<_>>()?;
        let mut out = String::new();
        for h in hosts {
            let name = if self.port == 22 {
                (*h).to_owned()
            } else {
                format!("[{h}]:{}", self.port)
            };
            for k in &keys {
                let _ = writeln!(out, "{name} {k}");
            }
        }
        Ok(out)
    }

    /// Writes a new known_hosts file (in [`Sshd::dir`]) listing this server's host keys for
    /// these hosts at this port, and returns its path.
    pub fn known_hosts_for(&self, hosts: &[&str]) -> Result<PathBuf> {
        let path = self.next_file("known_hosts");
        write_file(&path, &self.known_hosts_lines(hosts)?, 0o600)?;
        Ok(path)
    }

    /// SHA-256 fingerprints of this server's host keys (what `ssh` prints on a changed key).
    pub fn host_key_fingerprints(&self) -> Result<Vec<Fingerprint>> {
        self.keys.host_key_fingerprints()
    }

    /// Writes a client `ssh_config` (in [`Sshd::dir`]) so that plain `ssh -F FILE 127.0.0.7 true`
    /// works for these hosts: `Host 127.*` with `User`, `Port`, the ed25519 `IdentityFile`, a
    /// known_hosts file listing `hosts`, strict host key checking and batch mode.
    pub fn ssh_config_for(&self, hosts: &[&str]) -> Result<PathBuf> {
        self.ssh_config_with(hosts, &[])
    }

    /// Like [`Sshd::ssh_config_for`], with extra lines inside the `Host 127.*` block (e.g.
    /// `"ProxyJump ..."`, `"IdentityAgent ..."`). Extra lines come first, so they win.
    pub fn ssh_config_with(&self, hosts: &[&str], extra: &[&str]) -> Result<PathBuf> {
        let known = self.known_hosts_for(hosts)?;
        let mut c = String::from("# sortie-testkit client config; generated\nHost 127.*\n");
        for l in extra {
            let _ = writeln!(c, "    {l}");
        }
        let _ = writeln!(c, "    User {}", self.user);
        let _ = writeln!(c, "    Port {}", self.port);
        let _ = writeln!(
            c,
            "    IdentityFile {}",
            self.keys.client_key(KeyKind::Ed25519).display()
        );
        let _ = writeln!(c, "    IdentitiesOnly yes");
        let _ = writeln!(c, "    UserKnownHostsFile {}", known.display());
        c.push_str(
            "    GlobalKnownHostsFile /dev/null\n\
             \x20   StrictHostKeyChecking yes\n\
             \x20   UpdateHostKeys no\n\
             \x20   BatchMode yes\n\
             \x20   ControlMaster no\n\
             \x20   ControlPath none\n\
             \x20   LogLevel ERROR\n",
        );
        let path = self.next_file("ssh_config");
        write_file(&path, &c, 0o600)?;
        Ok(path)
    }

    /// The sshd log (`sshd -E`), for test failure messages. Empty when unreadable.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Path of the sshd log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Stops the server gracefully: `SIGTERM` to the listener and every process it started
    /// (per-connection sshd processes and the commands they run), `SIGKILL` to whatever is
    /// left after 2 s. Existing connections end. Idempotent.
    pub fn stop(&mut self) {
        self.terminate(false);
    }

    /// Kills the server and everything it started with `SIGKILL`, as when a host dies (the
    /// kernel still closes the sockets). Idempotent.
    pub fn kill(&mut self) {
        self.terminate(true);
    }

    /// Stops the server if running, then starts it again on the same port with the same
    /// config and keys.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    /// Replaces the host keys with freshly generated ones and restarts on the same port: the
    /// same "host" now presents a changed key.
    pub fn change_host_keys(&mut self) -> Result<()> {
        self.stop();
        self.keys = Keys::generate_host_keys(self.keys.dir())?;
        self.spawn()
    }

    fn next_file(&self, stem: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.base.join(format!("{stem}-{n}"))
    }

    fn probe_addr(&self) -> SocketAddr {
        let ip = match self.listen {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            other => other,
        };
        SocketAddr::new(ip, self.port)
    }

    fn spawn(&mut self) -> Result<()> {
        let log_start = fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
        let child = Command::new(&self.sshd_bin)
            .arg("-D")
            .arg("-f")
            .arg(&self.config)
            .arg("-E")
            .arg(&self.log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C in the test terminal must not reach it first.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io(format!("spawning {}", self.sshd_bin.display()), e))?;
        self.child = Some(child);
        let deadline = Instant::now() + self.start_timeout;
        let listening = format!("port {}.", self.port);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(self.start_error(format!("sshd exited with {status}"), log_start));
            }
            let log = self.log_since(log_start);
            let bound = log
                .lines()
                .any(|l| l.contains("Server listening on") && l.contains(&listening));
            if bound && banner_ok(self.probe_addr()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(self.start_error(
                    format!(
                        "no SSH banner on {} within {:?}",
                        self.probe_addr(),
                        self.start_timeout
                    ),
                    log_start,
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_since(&self, start: u64) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_path) {
            use std::io::Seek;
            if f.seek(std::io::SeekFrom::Start(start)).is_ok() {
                let _ = f.read_to_string(&mut s);
            }
        }
        s
    }

    fn start_error(&self, reason: String, log_start: u64) -> Error {
        let mut log = self.log_since(log_start);
        if !crate::is_root() && log.is_empty() {
            log.push_str("(empty; note that sshd runs unprivileged here)");
        }
        Error::SshdStart {
            reason,
            log_path: self.log_path.clone(),
            log,
        }
    }

    fn terminate(&mut self, hard: bool) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Freeze the whole tree first so no process forks or re-parents while we signal it.
        let pids = procs::freeze_tree(child.id());
        let sig = if hard { libc::SIGKILL } else { libc::SIGTERM };
        for &p in &pids {
            procs::signal(p, sig);
            procs::signal(p, libc::SIGCONT);
        }
        if !hard {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let table = procs::snapshot();
                if !pids.iter().any(|p| table.contains_key(p)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let table = procs::snapshot();
            for p in pids.iter().filter(|p| table.contains_key(p)) {
                procs::signal(*p, libc::SIGKILL);
            }
        }
        let _ = child.wait();
        // The pid file would otherwise name a dead process.
        let _ = fs::remove_file(self.base.join("sshd.pid"));
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
        // `dir` (TempDir) is removed after this, when the fields drop.
        let _ = self.dir.as_ref();
    }
}

fn ensure_privsep_dir() -> Result<()> {
    let p = Path::new(PRIVSEP_DIR);
    if p.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(p).map_err(|e| Error::io(format!("creating {PRIVSEP_DIR}"), e))?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod 755 {PRIVSEP_DIR}"), e))
}

fn free_port(listen: IpAddr) -> Result<u16> {
    let l = TcpListener::bind(SocketAddr::new(listen, 0))
        .map_err(|e| Error::io(format!("binding {listen}:0 to find a free port"), e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("reading the picked port", e))
}

fn is_bind_error(e: &Error) -> bool {
    matches!(e, Error::SshdStart { log, .. }
        if log.contains("Address already in use") || log.contains("Cannot bind any address"))
}

/// Connects, reads the server identification line and says whether it is SSH 2.
pub(crate) fn banner_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while buf.len() < 256 {
        match s.read(&mut byte) {
            Ok(1) => {
                buf.push(byte[0]);
                if byte[0] == b'\n' {
                    break;
                }
            }
            _ => break,
        }
    }
    // Say goodbye politely so the log shows a clean close rather than a protocol error.
    let _ = s.write_all(b"SSH-2.0-sortie-testkit-probe\r\n");
    buf.starts_with(b"SSH-2.0-")
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    fs::write(path, content).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {mode:o} {}", path.display()), e))
}
