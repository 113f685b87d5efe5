//! The events of `sortie launch`: the run record.
//!
//! A launch emits [`LaunchEvent`]s in order; each is written as one [`LaunchRecord`] line (the
//! event inside an envelope with the schema version and the run id) to
//! `<run-dir>/events.jsonl` as it happens, and printed the same way by `sortie launch --json`.
//! Every reporter of a launch (live table, status lines, summary, `report.json`) is a fold over
//! these, so a recorded run can be rendered again later (`sortie report RUN_DIR`).
//!
//! Nothing secret is ever in an event: no environment value, no process output (output stays in
//! the per-process log files that [`PlannedProcess::log`] names).
//!
//! Units follow the crate's convention: durations and instants are integer milliseconds in
//! fields whose name ends in `_ms` (instants count from the launch's start); wall-clock times are
//! RFC 3339 strings in UTC.

use serde::{Deserialize, Serialize};

/// Version of the launch record's schema; bumped when a field changes meaning or goes away
/// (new fields and event kinds do not bump it: readers ignore what they do not know).
pub const SCHEMA_VERSION: u32 = 1;

/// Where a launch is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The run record ends before the process did (the controller died): only a report
    /// rebuilt from a truncated `events.jsonl` has it.
    Unfinished,
    /// Its role's stages never needed it (a pool process above every target): not a failure.
    Unused,
}

impl Ending {
    /// True for endings that count as failures (`failed` threshold, exit code).
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Ending::ReadyThenStopped
                | Ending::StoppedBeforeReady
                | Ending::NeverStarted { .. }
                | Ending::Unfinished
                | Ending::Unused
        )
    }

    /// The ending's kind as JSON spells it (`report.json`, events): `ready_then_stopped`,
    /// `failed`, `ready_timeout`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Ending::ReadyThenStopped => "ready_then_stopped",
            Ending::StoppedBeforeReady => "stopped_before_ready",
            Ending::Failed { .. } => "failed",
            Ending::ReadyTimeout { .. } => "ready_timeout",
            Ending::ExitedEarly { .. } => "exited_early",
            Ending::Lost { .. } => "lost",
            Ending::NeverStarted { .. } => "never_started",
            Ending::Unfinished => "unfinished",
            Ending::Unused => "unused",
        }
    }

    /// A short name for people (the summary's text): `ready-then-stopped`, `failed`,
    /// `ready-timeout`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Ending::ReadyThenStopped => "ready-then-stopped",
            Ending::StoppedBeforeReady => "stopped-before-ready",
            Ending::Failed { .. } => "failed",
            Ending::ReadyTimeout { .. } => "ready-timeout",
            Ending::ExitedEarly { .. } => "exited-early",
            Ending::Lost { .. } => "lost",
            Ending::NeverStarted { .. } => "never-started",
            Ending::Unfinished => "unfinished",
            Ending::Unused => "unused",
        }
    }
}

/// A process exit as recorded in events and the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The live-process target of the role's stages now (`stages = [...]`), if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
}

/// One process's identity as events carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Which list of the plan a transfer comes from (ordered as they run: uploads first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStep {
    /// `[[upload]]`: local to the host, before the host's first start.
    Upload,
    /// `[[collect]]`: from the host into the run directory, after the stop.
    Collect,
}

/// How one transfer went on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// Every file arrived (or was already identical).
    Ok,
    /// At least one file failed, or the host's transfer could not go on.
    Failed,
    /// Not attempted (host unreachable or lost, an earlier upload failed, interrupted).
    Skipped,
}

/// One transfer of the plan on one host, as recorded in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// Upload or collect.
    pub step: TransferStep,
    /// Position in the plan's `[[upload]]` or `[[collect]]` list (0-based).
    pub index: usize,
    /// Host label.
    pub host: String,
    /// Source, with `{host}` expanded (a local path for uploads).
    pub src: String,
    /// Destination, with `{host}` expanded (a local directory for collections).
    pub dest: String,
    /// How it went.
    pub outcome: TransferOutcome,
    /// Files written.
    pub files: u64,
    /// Files left alone because they were already identical.
    pub unchanged: u64,
    /// Bytes of file content moved.
    pub bytes: u64,
    /// Per-file failures, or why it was skipped.
    pub errors: Vec<String>,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
}

impl TransferRecord {
    /// A record of a transfer not attempted (yet): outcome `skipped`, nothing moved.
    pub fn new(step: TransferStep, index: usize, host: &str, src: String, dest: String) -> Self {
        TransferRecord {
            step,
            index,
            host: host.to_string(),
            src,
            dest,
            outcome: TransferOutcome::Skipped,
            files: 0,
            unchanged: 0,
            bytes: 0,
            errors: Vec::new(),
            elapsed_ms: 0,
        }
    }

    /// `upload #1 bin -> /opt/kvs/ failed: <first error>` when it failed, else `None`.
    pub fn failure(&self) -> Option<String> {
        (self.outcome == TransferOutcome::Failed).then(|| {
            format!(
                "{} failed: {}",
                self.name(),
                self.errors.first().map_or("", String::as_str)
            )
        })
    }

    /// `upload #1 ./bin -> /opt/kvs/` style name for messages (1-based, as a person counts).
    pub fn name(&self) -> String {
        let step = match self.step {
            TransferStep::Upload => "upload",
            TransferStep::Collect => "collect",
        };
        format!("{step} #{} {} -> {}", self.index + 1, self.src, self.dest)
    }
}

/// A host of the placed plan, as [`LaunchEvent::LaunchStarted`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedHost {
    /// Host label.
    pub host: String,
    /// The plan group it came from.
    pub group: String,
}

/// A process of the placed plan, as [`LaunchEvent::LaunchStarted`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedProcess {
    /// `ROLE/KEY` or `ROLE/KEY#N`.
    pub id: String,
    /// Role name.
    pub role: String,
    /// The key (channel...).
    pub key: String,
    /// The host the plan placed it on.
    pub host: String,
    /// Its log file (output of every attempt), when the run writes logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// What a threshold measures. In JSON, its name: `ready_ratio`, `p99_time_to_ready`,
/// `max_time_to_ready`, `failed`, `restarts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMetric {
    /// Ready processes / planned processes, 0..=1.
    ReadyRatio,
    /// Percentile (1..=100, 100 being the maximum) of the time to ready, in seconds.
    TimeToReady {
        /// The percentile.
        percentile: u8,
    },
    /// Number of failed processes.
    Failed,
    /// Number of restarts.
    Restarts,
}

impl std::fmt::Display for ThresholdMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThresholdMetric::ReadyRatio => f.write_str("ready_ratio"),
            ThresholdMetric::TimeToReady { percentile: 100 } => f.write_str("max_time_to_ready"),
            ThresholdMetric::TimeToReady { percentile } => {
                write!(f, "p{percentile}_time_to_ready")
            }
            ThresholdMetric::Failed => f.write_str("failed"),
            ThresholdMetric::Restarts => f.write_str("restarts"),
        }
    }
}

impl std::str::FromStr for ThresholdMetric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ready_ratio" => ThresholdMetric::ReadyRatio,
            "max_time_to_ready" => ThresholdMetric::TimeToReady { percentile: 100 },
            "failed" => ThresholdMetric::Failed,
            "restarts" => ThresholdMetric::Restarts,
            other => {
                let p = other
                    .strip_prefix('p')
                    .and_then(|r| r.strip_suffix("_time_to_ready"))
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|p| (1..=100).contains(p))
                    .ok_or_else(|| format!("unknown threshold metric {other:?}"))?;
                ThresholdMetric::TimeToReady { percentile: p }
            }
        })
    }
}

impl Serialize for ThresholdMetric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ThresholdMetric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A threshold of the plan, as [`LaunchEvent::LaunchStarted`] lists it. Time metrics are in
/// seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSpec {
    /// What is measured.
    pub metric: ThresholdMetric,
    /// The role it applies to; `None`: all processes.
    pub role: Option<String>,
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
    /// Judged during the run over the last this many milliseconds (`window`); absent: over
    /// the whole run, at its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// A failure during the run stops it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort: bool,
}

/// A host's resource use over one sampling interval (`host_sample`), from its `/proc`. CPU
/// values are fractions of the whole host (all CPUs together, 0..=1) over the interval since
/// the previous sample; memory is the value at the sample; network bytes are those moved
/// during the interval over every interface but loopback.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// Host label.
    pub host: String,
    /// Milliseconds since the launch began (when the controller received the sample).
    pub at_ms: u64,
    /// Length of the interval on the host's clock (`/proc/uptime`), in milliseconds.
    pub interval_ms: u64,
    /// CPUs on the host.
    pub cpus: u32,
    /// User time (`user` + `nice`), fraction of the host.
    pub cpu_user: f64,
    /// System time (`system` + `irq` + `softirq`), fraction of the host.
    pub cpu_system: f64,
    /// Time idle while waiting for I/O, fraction of the host.
    pub cpu_iowait: f64,
    /// Time stolen by the hypervisor, fraction of the host.
    pub cpu_steal: f64,
    /// Load average over 1 minute.
    pub load1: f64,
    /// Load average over 5 minutes.
    pub load5: f64,
    /// Load average over 15 minutes.
    pub load15: f64,
    /// `MemAvailable`, in bytes.
    pub mem_available_bytes: u64,
    /// `MemTotal`, in bytes.
    pub mem_total_bytes: u64,
    /// Bytes received during the interval (loopback excluded).
    pub net_rx_bytes: u64,
    /// Bytes sent during the interval (loopback excluded).
    pub net_tx_bytes: u64,
}

impl HostSample {
    /// CPU in use by work (user + system), fraction of the host.
    pub fn cpu_busy(&self) -> f64 {
        self.cpu_user + self.cpu_system
    }
}

/// One launched process group's resource use at a sample (`process_sample`), summed over the
/// group's live processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessSample {
    /// Which process (role, key, host).
    pub process: ProcessRef,
    /// Its process group on the host.
    pub pgid: u32,
    /// Milliseconds since the launch began (when the controller received the sample).
    pub at_ms: u64,
    /// CPU time (user + system) of the group's live processes, in seconds.
    pub cpu_seconds: f64,
    /// CPUs used on average since the previous sample of the group (1.0 = one core busy);
    /// `None` on a group's first sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
    /// Resident memory of the group, in bytes.
    pub rss_bytes: u64,
    /// Threads in the group.
    pub threads: u32,
    /// Processes in the group.
    pub procs: u32,
}

/// One line of `events.jsonl` (and of `sortie launch --json`): an event in its envelope.
///
/// ```json
/// {"v":1,"run_id":"20260501-120000.123-3f9a","event":"host_connected","host":"web01","elapsed_ms":120}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchRecord {
    /// The schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// The run's id (also the last part of its run directory's name).
    pub run_id: String,
    /// The event; its fields sit beside `v` and `run_id`.
    #[serde(flatten)]
    pub event: LaunchEvent,
}

impl LaunchRecord {
    /// The record as one line of JSON, without its newline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("launch records always serialise")
    }

    /// Parses one line of `events.jsonl`.
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Everything that happens during a launch, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LaunchEvent {
    /// The launch began. Always the first event; it carries what every reporter needs to
    /// know about the placed plan.
    LaunchStarted {
        /// Plan name.
        plan: String,
        /// SHA-256 of the plan file.
        digest: String,
        /// The plan file.
        #[serde(default)]
        plan_path: String,
        /// `--set` overrides applied.
        #[serde(default)]
        overrides: Vec<String>,
        /// The run directory, when the run writes one.
        #[serde(default)]
        run_dir: Option<String>,
        /// Wall-clock start (RFC 3339, UTC).
        #[serde(default)]
        started_at: String,
        /// Processes planned.
        processes: usize,
        /// Hosts used.
        hosts: usize,
        /// Roles in dependency order.
        roles: Vec<String>,
        /// Hold time once all are ready, in milliseconds (`None`: until interrupted).
        duration_ms: Option<u64>,
        /// Every host of the placed plan, in plan order.
        #[serde(default)]
        host_list: Vec<PlannedHost>,
        /// Every process of the placed plan, in plan order.
        #[serde(default)]
        process_list: Vec<PlannedProcess>,
        /// The plan's thresholds.
        #[serde(default)]
        thresholds: Vec<ThresholdSpec>,
    },
    /// The lifecycle moved to another phase.
    PhaseChanged {
        /// The new phase.
        phase: Phase,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The controller detached (`sortie launch --detach`): every process had settled; the
    /// hosts' watchdogs hold the fleet and stop it by themselves after `hold_ms`, unless
    /// `sortie attach` or `sortie stop` takes over.
    LaunchDetached {
        /// Hold time left, in milliseconds.
        hold_ms: u64,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A role's load shape entered stage `stage` (1-based), whose live-process target at its
    /// end is `target`.
    StageChanged {
        /// Role name.
        role: String,
        /// Stage number, from 1.
        stage: usize,
        /// Live processes the role has at the end of the stage.
        target: u32,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A threshold judged during the run (it has a `window` or `abort`, or a role has a step
    /// load) stopped holding. Said once per failure: again only after it held again.
    ThresholdFailed {
        /// Its position in `launch_started`'s `thresholds`.
        index: usize,
        /// What failed, for people: `viewer ready_ratio 0.93 < 0.99 over the last 1m`.
        reason: String,
        /// The measured value (seconds for time metrics).
        value: f64,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A threshold with `abort = true` failed: the run stops early, through its normal stop
    /// sequence.
    LaunchAborted {
        /// The failure, as [`LaunchEvent::ThresholdFailed`] says it.
        reason: String,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A role's step load stopped climbing because a threshold failed: it held `held` live
    /// processes (the last step at which every threshold held; 0: not even the first) and
    /// broke at `broke_at`; its target goes back to `held`.
    StepBroke {
        /// Role name.
        role: String,
        /// The last step's target at which every threshold held.
        held: u32,
        /// The step's target at which one failed.
        broke_at: u32,
        /// The failure, as [`LaunchEvent::ThresholdFailed`] says it.
        reason: String,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A controller took over the run again (`sortie attach`, `sortie stop`).
    LaunchAttached {
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
    /// The connection to a host was lost; its processes keep running there while sortie dials
    /// again for the reconnect window.
    HostDisconnected {
        /// Host label.
        host: String,
        /// Why.
        message: String,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A host is connected again after [`LaunchEvent::HostDisconnected`]; following resumes
    /// where it stopped.
    HostReconnected {
        /// Host label.
        host: String,
        /// How long it was disconnected, in milliseconds.
        after_ms: u64,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// A host was unreachable for longer than the reconnect window (or its connections were
    /// lost with nothing to reconnect): its processes count as lost.
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
        /// Wall-clock time (RFC 3339, UTC).
        #[serde(default)]
        started_at: Option<String>,
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
        /// Wall-clock time (RFC 3339, UTC).
        #[serde(default)]
        ready_at: Option<String>,
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
    /// The attempt could not be started (spawn refused, connection lost).
    ProcessStartFailed {
        /// Which.
        process: ProcessRef,
        /// What went wrong.
        error: String,
        /// Whether it will be started again (restart policy).
        will_restart: bool,
        /// Milliseconds since the launch began.
        at_ms: u64,
    },
    /// The failed process will be started again (after the restart delay, maybe on another
    /// host: a [`LaunchEvent::ProcessMoved`] says so).
    ProcessRestarting {
        /// Which.
        process: ProcessRef,
        /// Restarts of this process so far, this one included.
        restarts: u32,
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
    /// The run ended without its role's stages ever needing the process.
    ProcessUnused {
        /// Which.
        process: ProcessRef,
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
    /// A stop script could not run on a host (its processes may not have been stopped).
    StopFailed {
        /// Host label.
        host: String,
        /// What went wrong.
        message: String,
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
    /// A host's resource use over the last sampling interval (`sample_interval`).
    HostSample(HostSample),
    /// A launched process group's resource use, sampled with its host.
    ProcessSample(ProcessSample),
    /// The launch ended. Always the last event: a record without it is a run that did not
    /// finish (the controller died).
    LaunchFinished {
        /// Whether it was interrupted (Ctrl-C).
        interrupted: bool,
        /// Whether every threshold passed.
        thresholds_passed: bool,
        /// Milliseconds since the launch began.
        elapsed_ms: u64,
        /// Wall-clock end (RFC 3339, UTC).
        #[serde(default)]
        finished_at: String,
        /// Final counts per role, in dependency order.
        #[serde(default)]
        roles: Vec<RoleCounts>,
    },
}

impl LaunchEvent {
    /// Milliseconds since the launch began, for events that say.
    pub fn at_ms(&self) -> Option<u64> {
        match self {
            LaunchEvent::PhaseChanged { at_ms, .. }
            | LaunchEvent::ProcessStarting { at_ms, .. }
            | LaunchEvent::ProcessStarted { at_ms, .. }
            | LaunchEvent::ProcessReady { at_ms, .. }
            | LaunchEvent::ProcessFailed { at_ms, .. }
            | LaunchEvent::ProcessStopped { at_ms, .. }
            | LaunchEvent::ProcessExited { at_ms, .. }
            | LaunchEvent::ProcessLost { at_ms, .. }
            | LaunchEvent::ProcessStartFailed { at_ms, .. }
            | LaunchEvent::ProcessRestarting { at_ms, .. }
            | LaunchEvent::HostDisconnected { at_ms, .. }
            | LaunchEvent::LaunchDetached { at_ms, .. }
            | LaunchEvent::LaunchAttached { at_ms, .. }
            | LaunchEvent::StageChanged { at_ms, .. }
            | LaunchEvent::ThresholdFailed { at_ms, .. }
            | LaunchEvent::LaunchAborted { at_ms, .. }
            | LaunchEvent::StepBroke { at_ms, .. }
            | LaunchEvent::HostReconnected { at_ms, .. } => Some(*at_ms),
            LaunchEvent::HostSample(HostSample { at_ms, .. })
            | LaunchEvent::ProcessSample(ProcessSample { at_ms, .. }) => Some(*at_ms),
            LaunchEvent::Progress { elapsed_ms, .. }
            | LaunchEvent::LaunchFinished { elapsed_ms, .. } => Some(*elapsed_ms),
            _ => None,
        }
    }

    /// The process an event is about, for the events about one process.
    pub fn process(&self) -> Option<&ProcessRef> {
        match self {
            LaunchEvent::ProcessStarting { process, .. }
            | LaunchEvent::ProcessStarted { process, .. }
            | LaunchEvent::ProcessReady { process, .. }
            | LaunchEvent::ProcessFailed { process, .. }
            | LaunchEvent::ProcessStopped { process, .. }
            | LaunchEvent::ProcessExited { process, .. }
            | LaunchEvent::ProcessLost { process, .. }
            | LaunchEvent::ProcessStartFailed { process, .. }
            | LaunchEvent::ProcessRestarting { process, .. }
            | LaunchEvent::ProcessUnused { process, .. }
            | LaunchEvent::ProcessNeverStarted { process, .. }
            | LaunchEvent::ProcessMoved { process, .. } => Some(process),
            _ => None,
        }
    }

    /// The event as one line of JSON without its envelope (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("launch events always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_through_a_record_line_with_their_fields_beside_the_envelope() {
        let host = LaunchEvent::HostSample(HostSample {
            host: "h1".into(),
            at_ms: 5000,
            interval_ms: 5010,
            cpus: 2,
            cpu_user: 0.5,
            cpu_system: 0.125,
            load1: 1.5,
            mem_available_bytes: 1 << 30,
            mem_total_bytes: 2 << 30,
            net_rx_bytes: 1234,
            ..HostSample::default()
        });
        let proc = LaunchEvent::ProcessSample(ProcessSample {
            process: ProcessRef {
                id: "master/c1".into(),
                role: "master".into(),
                key: "c1".into(),
                host: "h1".into(),
            },
            pgid: 4242,
            at_ms: 5000,
            cpu_seconds: 12.5,
            cpu_cores: Some(0.98),
            rss_bytes: 200 << 20,
            threads: 3,
            procs: 1,
        });
        for ev in [host, proc] {
            let rec = LaunchRecord {
                v: SCHEMA_VERSION,
                run_id: "r".into(),
                event: ev.clone(),
            };
            let line = rec.to_json_line();
            let back = LaunchRecord::from_json_line(&line).unwrap();
            assert_eq!(back.event, ev, "{line}");
            assert_eq!(ev.at_ms(), Some(5000));
        }
        let line = LaunchRecord {
            v: 1,
            run_id: "r".into(),
            event: LaunchEvent::HostSample(HostSample {
                host: "h1".into(),
                ..HostSample::default()
            }),
        }
        .to_json_line();
        assert!(
            line.starts_with(r#"{"v":1,"run_id":"r","event":"host_sample","host":"h1","#),
            "{line}"
        );
    }
}
