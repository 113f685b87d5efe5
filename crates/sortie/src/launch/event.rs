//! The typed event stream of a launch.
//!
//! Owns [`LaunchEvent`] and the small types it carries. Every reporter (live view, JSON Lines,
//! tests) consumes these and nothing else; counts travel inside [`LaunchEvent::Progress`], so
//! displays keep no state of their own. No event ever carries an environment value, so secrets
//! from the controller cannot reach a reporter.

use serde::Serialize;

use super::stage::TransferRecord;
use crate::transport::Exit;

/// Where a launch is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Connecting and starting processes (ramp-up).
    Starting,
    /// Every process settled; holding for the duration (or until interrupted).
    Holding,
    /// Ending processes, dependents first.
    Stopping,
    /// Checking that no process is left on any host.
    Confirming,
    /// Running the plan's `[[collect]]` transfers.
    Collecting,
    /// Finished.
    Done,
}

/// How a process ended (or why it never ran). One per process in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    /// It became ready and was stopped by sortie at the end of the run.
    ReadyThenStopped,
    /// It was stopped by sortie (interrupt or end of run) before it became ready.
    StoppedBeforeReady,
    /// A `fail` pattern matched one of its lines.
    Failed {
        /// The pattern that matched.
        pattern: String,
        /// The line that matched.
        line: String,
    },
    /// It did not print its ready line within `ready_timeout`.
    ReadyTimeout {
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
    /// It exited on its own before the run ended.
    ExitedEarly {
        /// Exit code, when it exited normally.
        code: Option<u32>,
        /// Signal name (without `SIG`), when a signal ended it.
        signal: Option<String>,
    },
    /// The connection to its host was lost while it ran.
    Lost {
        /// What the transport said.
        message: String,
    },
    /// It could not be started (host unreachable, spawn refused, dependency failed, run
    /// stopped first).
    NeverStarted {
        /// Why.
        reason: String,
    },
}

impl Ending {
    /// True for endings that count as failures (`failed` threshold, exit code).
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Ending::ReadyThenStopped | Ending::StoppedBeforeReady | Ending::NeverStarted { .. }
        )
    }

    /// A short name: `ready-then-stopped`, `failed`, `ready-timeout`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Ending::ReadyThenStopped => "ready-then-stopped",
            Ending::StoppedBeforeReady => "stopped-before-ready",
            Ending::Failed { .. } => "failed",
            Ending::ReadyTimeout { .. } => "ready-timeout",
            Ending::ExitedEarly { .. } => "exited-early",
            Ending::Lost { .. } => "lost",
            Ending::NeverStarted { .. } => "never-started",
        }
    }
}

/// A process exit as recorded in events and the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExitInfo {
    /// Exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// Signal name without `SIG`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Set when the connection was lost or no status came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<&Exit> for ExitInfo {
    fn from(e: &Exit) -> Self {
        match e {
            Exit::Code(c) => ExitInfo {
                code: Some(*c),
                ..Default::default()
            },
            Exit::Signal { name, core_dumped } => ExitInfo {
                signal: Some(name.clone()),
                note: core_dumped.then(|| "core dumped".into()),
                ..Default::default()
            },
            Exit::NoStatus => ExitInfo {
                note: Some("no exit status".into()),
                ..Default::default()
            },
            Exit::Lost(m) => ExitInfo {
                note: Some(format!("connection lost: {m}")),
                ..Default::default()
            },
        }
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.signal, &self.note) {
            (Some(c), _, _) => write!(f, "exit {c}"),
            (None, Some(s), _) => write!(f, "SIG{s}"),
            (None, None, Some(n)) => f.write_str(n),
            _ => f.write_str("unknown"),
        }
    }
}

/// Counts of one role's processes by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RoleCounts {
    /// Role name.
    pub role: String,
    /// Processes planned.
    pub planned: usize,
    /// Waiting to start (dependency, rate, host).
    pub pending: usize,
    /// Started, not yet ready.
    pub starting: usize,
    /// Ready and running.
    pub ready: usize,
    /// Ended with a failure (terminal).
    pub failed: usize,
    /// Ended on their own without a failure pattern (terminal, counted in `failed` too when
    /// the exit was a failure).
    pub exited: usize,
    /// Being stopped or stopped by sortie.
    pub stopped: usize,
    /// Never started (terminal).
    pub never_started: usize,
    /// Restarts so far.
    pub restarts: u32,
}

/// One process's identity as events carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessRef {
    /// `ROLE/KEY` or `ROLE/KEY#N`.
    pub id: String,
    /// Role name.
    pub role: String,
    /// The key (channel...).
    pub key: String,
    /// Host label.
    pub host: String,
}

/// Everything that happens during a launch, in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LaunchEvent {
    /// The launch began.
    LaunchStarted {
        /// Plan name.
        plan: String,
        /// SHA-256 of the plan file.
        digest: String,
        /// Processes planned.
        processes: usize,
        /// Hosts used.
        hosts: usize,
        /// Roles in dependency order.
        roles: Vec<String>,
        /// Hold time once all are ready, in milliseconds (`None`: until interrupted).
        duration_ms: Option<u64>,
    },
    /// The lifecycle moved to another phase.
    PhaseChanged {
        /// The new phase.
        phase: Phase,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A host connected (first connection).
    HostConnected {
        /// Host label.
        host: String,
        /// Connect time in milliseconds.
        elapsed_ms: u64,
    },
    /// A host could not be connected.
    HostFailed {
        /// Host label.
        host: String,
        /// Why.
        message: String,
    },
    /// Every connection to a host was lost during the run.
    HostLost {
        /// Host label.
        host: String,
        /// Why.
        message: String,
    },
    /// sortie is starting a process (the spawn request was sent).
    ProcessStarting {
        /// Which.
        process: ProcessRef,
        /// 1 for the first start, 2 for the first restart...
        attempt: u32,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The process runs on its host, in process group `pgid`.
    ProcessStarted {
        /// Which.
        process: ProcessRef,
        /// Its process group on the host.
        pgid: Option<u32>,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The process printed its ready line (or has none and started).
    ProcessReady {
        /// Which.
        process: ProcessRef,
        /// Time from start to ready, in milliseconds.
        time_to_ready_ms: u64,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The process failed: a fail pattern, a readiness timeout, an early exit, a spawn error.
    ProcessFailed {
        /// Which.
        process: ProcessRef,
        /// How.
        ending: Ending,
        /// Whether it will be started again (restart policy).
        will_restart: bool,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The process ended after sortie asked it to stop.
    ProcessStopped {
        /// Which.
        process: ProcessRef,
        /// How it exited.
        exit: ExitInfo,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The process exited (any reason); follows `ProcessFailed` when the exit was a failure.
    ProcessExited {
        /// Which.
        process: ProcessRef,
        /// How it exited.
        exit: ExitInfo,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The process's connection was lost.
    ProcessLost {
        /// Which.
        process: ProcessRef,
        /// What the transport said.
        message: String,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The process will not start (dependency failed, host unreachable, run stopped).
    ProcessNeverStarted {
        /// Which.
        process: ProcessRef,
        /// Why.
        reason: String,
    },
    /// The process moves to another host (its host failed or was lost).
    ProcessMoved {
        /// Which (with the new host).
        process: ProcessRef,
        /// The host it left.
        from: String,
    },
    /// One `[[upload]]` or `[[collect]]` of the plan ended on one host (uploads: before the
    /// host's first start; collections: after the stop check).
    TransferFinished {
        /// What was done.
        transfer: TransferRecord,
    },
    /// Counts, sent on every tick.
    Progress {
        /// The phase.
        phase: Phase,
        /// Counts per role, in dependency order.
        roles: Vec<RoleCounts>,
        /// Processes started and not yet ready.
        starting: usize,
        /// Starts per second over the last 5 seconds.
        start_rate: f64,
        /// Milliseconds since the launch began.
        elapsed_ms: u64,
        /// Hold time left, in milliseconds, while holding with a duration.
        remaining_ms: Option<u64>,
    },
    /// The end-of-run check: process groups still alive on hosts after the stop.
    StopConfirmed {
        /// Hosts checked.
        hosts_checked: usize,
        /// Hosts that could not be checked (lost), by label.
        unchecked: Vec<String>,
        /// `(host, pgid)` of groups found alive (then killed).
        survivors: Vec<(String, u32)>,
    },
    /// The launch ended.
    LaunchFinished {
        /// Whether it was interrupted (Ctrl-C).
        interrupted: bool,
        /// Whether every threshold passed.
        thresholds_passed: bool,
        /// Milliseconds since the launch began.
        elapsed_ms: u64,
    },
}
