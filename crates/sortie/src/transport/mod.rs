//! Transports: how sortie reaches a host and runs a process there.
//!
//! One trait pair ([`Transport`], [`Connection`]) with two implementations: [`ssh`] (russh, pure
//! Rust) and [`local`] (tokio::process). This module knows nothing about plans, schedules or
//! events; the runner drives it. russh is confined to [`ssh`] so that its frequent breaking
//! releases touch one module.
//!
//! Every process sortie starts runs in a process group it knows ([`Process::pgid`]), so that
//! [`Connection::stop`] can end the whole remote process tree with a [`StopSequence`]
//! (e.g. TERM, grace, KILL) instead of relying on the SSH `signal` request, which OpenSSH honours
//! only from 7.9 on and never for some sessions.

pub mod local;
mod proxy;
pub(crate) mod remote;
pub mod ssh;

use async_trait::async_trait;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub use sortie_events::ConnectFailure;

/// Everything needed to connect to one host. Built from the inventory/ssh_config resolution;
/// the transport does not read any configuration itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Label used in output (the host as selected).
    pub label: String,
    /// Address or DNS name to connect to.
    pub hostname: String,
    /// The name looked up in, and recorded into, known_hosts instead of `hostname` and `port`
    /// (ssh_config `HostKeyAlias`; used as written, without the port, as OpenSSH does).
    pub host_key_alias: Option<String>,
    /// Record first-seen host keys hashed (`|1|salt|hash`, ssh_config `HashKnownHosts`).
    pub hash_known_hosts: bool,
    /// TCP port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Identity files to try, in order (missing default files are skipped).
    pub identity_files: Vec<PathBuf>,
    /// Only use the identity files (and agent keys matching them).
    pub identities_only: bool,
    /// User certificates (`CertificateFile`): each is offered with the identity whose public
    /// key it certifies, as OpenSSH does; `IDENTITY-cert.pub` beside an identity is offered too.
    pub certificate_files: Vec<PathBuf>,
    /// Forward the local agent (`SSH_AUTH_SOCK`) to the host's commands (`ForwardAgent`, `-A`).
    pub forward_agent: bool,
    /// Jump hosts, in order (each fully resolved).
    pub jumps: Vec<Target>,
    /// ssh_config `ProxyCommand`, tokens expanded: run through the user's shell, its stdin and
    /// stdout carry the SSH connection (instead of TCP or jump hosts).
    pub proxy_command: Option<String>,
    /// known_hosts files to consult (user files first, then global ones).
    pub known_hosts_files: Vec<PathBuf>,
    /// How unknown and changed host keys are treated.
    pub host_key_checking: HostKeyChecking,
    /// Bound on TCP connect + banner + key exchange + authentication together, for each hop of
    /// a jump chain, counted from when the handshake may start (the wait for a handshake slot
    /// of the SSH transport's pacing is not part of it); zero = none.
    pub connect_timeout: Duration,
    /// Keepalive interval; zero turns keepalives off.
    pub keepalive_interval: Duration,
    /// Unanswered keepalives after which the connection is declared lost.
    pub keepalive_max: u32,
    /// Which transport to use.
    pub kind: TransportKind,
}

impl Target {
    /// A target named `label` (also its address) with plain settings: port 22, no user,
    /// identity or known_hosts file, host keys verified, a 10 s connect timeout, no keepalive,
    /// over SSH. For callers that fill in the rest themselves (the local transport, tests with
    /// a fake transport).
    pub fn named(label: &str) -> Target {
        Target {
            label: label.into(),
            hostname: label.into(),
            host_key_alias: None,
            hash_known_hosts: false,
            port: 22,
            user: String::new(),
            identity_files: vec![],
            identities_only: false,
            certificate_files: Vec::new(),
            forward_agent: false,
            jumps: vec![],
            proxy_command: None,
            known_hosts_files: vec![],
            host_key_checking: HostKeyChecking::Yes,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::ZERO,
            keepalive_max: 0,
            kind: TransportKind::Ssh,
        }
    }
}

/// Which transport reaches a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TransportKind {
    /// SSH (russh).
    #[default]
    Ssh,
    /// A local shell, no SSH.
    Local,
}

/// Host key policy, as `--host-key-checking` / `StrictHostKeyChecking`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HostKeyChecking {
    /// Refuse unknown and changed keys (default; OpenSSH `ask` maps here).
    #[default]
    Yes,
    /// Record unknown hosts' keys (trust on first use), refuse changed keys.
    AcceptNew,
    /// Accept any key. Explicit opt-in only.
    No,
}

/// A command to start: a shell command line, run in a new process group by a small POSIX
/// wrapper that reports that group (the `transport::remote` module states which shell reads what).
#[derive(Clone, Debug, Default)]
pub struct Command {
    /// Shell command line.
    pub command: String,
    /// Which shell reads [`Command::command`] on the host.
    pub shell: CommandShell,
    /// Environment exported before the command, independent of the server's `AcceptEnv`.
    /// Values are never logged.
    pub env: Vec<(String, String)>,
    /// Working directory (created when missing), or the login directory.
    pub cwd: Option<String>,
    /// Bytes for the command's standard input, then end of file; `None`: it reads `/dev/null`.
    pub stdin: Option<Stdin>,
}

/// Bytes given to a command's standard input (`sortie exec` with a piped stdin): shared, not
/// copied, between the hosts. Its `Debug` shows the length only, since input may hold secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Stdin(Bytes);

impl Stdin {
    /// The input; `None` for no bytes (an empty stdin behaves like none at all).
    pub fn new(bytes: impl Into<Bytes>) -> Option<Self> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then_some(Stdin(bytes))
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true ([`Stdin::new`] refuses empty input); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stdin({} bytes)", self.0.len())
    }
}

/// Which shell reads a command's text on the host. sortie's own wrapper always runs in
/// `/bin/sh`, whatever the login shell; this only chooses who reads the command text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommandShell {
    /// `/bin/sh -c TEXT`: `run`'s jobs, `launch`'s processes and sortie's own scripts, whose
    /// templated values are quoted for POSIX sh.
    #[default]
    Posix,
    /// The account's login shell (`$SHELL -c TEXT`), as `ssh host 'TEXT'` does: `exec`.
    Login,
}

impl Command {
    /// A plain command with no environment and no working directory.
    pub fn new(command: impl Into<String>) -> Self {
        Command {
            command: command.into(),
            ..Default::default()
        }
    }
}

/// How a stop proceeds: each step sends a signal to the process group and waits up to its
/// grace for the process to end; after the last step, the group gets SIGKILL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopSequence {
    /// Signal names (without `SIG`) and the grace period after each.
    pub steps: Vec<(String, Duration)>,
}

impl Default for StopSequence {
    /// TERM, 5 seconds, then KILL.
    fn default() -> Self {
        StopSequence {
            steps: vec![("TERM".into(), Duration::from_secs(5))],
        }
    }
}

/// How a process ended, as the transport saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exit status.
    Code(u32),
    /// Killed by a signal (name without `SIG`).
    Signal {
        /// Signal name.
        name: String,
        /// Core dumped.
        core_dumped: bool,
    },
    /// The channel closed without an exit status.
    NoStatus,
    /// The connection was lost while the process ran.
    Lost(String),
}

/// Something a running process produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    /// Bytes on standard output.
    Stdout(Bytes),
    /// Bytes on standard error.
    Stderr(Bytes),
    /// The process ended; always the last event.
    Exit(Exit),
}

/// A started process: its process group and its output, in arrival order.
#[derive(Debug)]
pub struct Process {
    /// The process group sortie can end with [`Connection::stop`].
    pub pgid: Option<u32>,
    /// Output and the final exit. Bounded, so a fast printer is slowed down rather than
    /// buffered without limit.
    pub events: mpsc::Receiver<ProcessEvent>,
}

/// Why a host could not be connected.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// The summary bucket.
    pub failure: ConnectFailure,
    /// Details for a person.
    pub message: String,
}

impl ConnectError {
    pub(crate) fn new(failure: ConnectFailure, message: impl Into<String>) -> Self {
        ConnectError {
            failure,
            message: message.into(),
        }
    }
}

/// Why a process could not be started on a connected host.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SpawnError {
    /// The server refused another channel on this connection (e.g. OpenSSH `MaxSessions`):
    /// open another connection and retry.
    #[error("server refused a new session channel: {0}")]
    ChannelRefused(String),
    /// The connection is gone.
    #[error("connection lost: {0}")]
    Lost(String),
    /// Anything else (local spawn failure...).
    #[error("{0}")]
    Other(String),
}

/// A bidirectional byte stream over a connection (a subsystem or a raw command's stdio).
pub type ByteStream = Box<dyn AsyncStream>;

/// What a [`ByteStream`] is: readable and writable, asynchronously.
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> AsyncStream for T {}

/// Opens connections to hosts.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Connects and authenticates within `target.connect_timeout` (see [`Target`]).
    async fn connect(&self, target: &Target) -> Result<Arc<dyn Connection>, ConnectError>;
}

/// One established connection to a host, on which processes are started.
#[async_trait]
pub trait Connection: Send + Sync {
    /// Starts a command; returns once its process group is known.
    async fn spawn(&self, command: &Command) -> Result<Process, SpawnError>;
    /// Ends the process group `pgid` with `sequence`, then SIGKILL; returns when it is gone
    /// (or the connection is).
    async fn stop(&self, pgid: u32, sequence: &StopSequence) -> Result<(), SpawnError>;
    /// Sends one signal to the process group.
    async fn signal(&self, pgid: u32, signal: &str) -> Result<(), SpawnError>;
    /// Opens a byte stream to a server subsystem (e.g. `sftp`). A server without it answers
    /// [`SpawnError::ChannelRefused`].
    async fn subsystem(&self, name: &str) -> Result<ByteStream, SpawnError>;
    /// Runs a raw command (no wrapper) and returns a byte stream joined to its stdin/stdout
    /// (stderr is discarded); for transfer fallbacks such as `cat > file`.
    async fn exec_stream(&self, command: &str) -> Result<ByteStream, SpawnError>;
    /// True once the connection is known to be gone.
    fn is_closed(&self) -> bool;
    /// The most channels this connection should carry at once, when the server is known to
    /// need a limit it does not announce (a Dropbear that closes new channels while others'
    /// commands exit); `None` when only the server's refusals limit it.
    fn channel_limit(&self) -> Option<usize> {
        None
    }
    /// Closes the connection.
    async fn close(&self);
}

/// Both transports behind one entry point: dispatches on [`Target::kind`].
pub struct Transports {
    ssh: ssh::SshTransport,
    local: local::LocalTransport,
}

impl Transports {
    /// Transports with the given SSH settings.
    pub fn new(ssh: ssh::SshTransport) -> Self {
        Transports {
            ssh,
            local: local::LocalTransport,
        }
    }
}

#[async_trait]
impl Transport for Transports {
    async fn connect(&self, target: &Target) -> Result<Arc<dyn Connection>, ConnectError> {
        match target.kind {
            TransportKind::Ssh => self.ssh.connect(target).await,
            TransportKind::Local => self.local.connect(target).await,
        }
    }
}

/// Signal names sortie accepts in stop sequences (without `SIG`).
pub const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "TERM", "CONT", "STOP",
];

/// Checks a signal name (with or without `SIG`), returning the bare upper-case name.
pub fn signal_name(name: &str) -> Option<&'static str> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().copied().find(|s| *s == bare)
}
