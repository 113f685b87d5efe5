//! The validated plan model the lifecycle engine consumes.
//!
//! Owns the public, checked types: [`Role`], [`ProcessSpec`], [`PlanHost`], run settings,
//! thresholds and transfers. Values here are already parsed (durations, rates, regexes,
//! signals); nothing in this module reads files or validates text.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use sortie_inventory::hostexpr::HostSpec;

use crate::units::Rate;

/// How sortie reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Over SSH (the default).
    Ssh,
    /// On the controller itself, with `sh -c`; the host name is only a label.
    Local,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Ssh => "ssh",
            Transport::Local => "local",
        })
    }
}

/// Connection settings written in the plan (`[defaults]`, a group). Unset fields fall back to
/// `~/.ssh/config` and OpenSSH defaults, resolved by the engine with `sortie-inventory`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Login user.
    pub user: Option<String>,
    /// SSH port.
    pub port: Option<u16>,
    /// Private key file, as written (`~` not expanded).
    pub identity_file: Option<String>,
    /// `ProxyJump` value, as written.
    pub proxy_jump: Option<String>,
    /// Transport; `None` means SSH.
    pub transport: Option<Transport>,
}

impl Connection {
    /// `self` with unset fields taken from `base`.
    pub fn or(&self, base: &Connection) -> Connection {
        Connection {
            user: self.user.clone().or_else(|| base.user.clone()),
            port: self.port.or(base.port),
            identity_file: self
                .identity_file
                .clone()
                .or_else(|| base.identity_file.clone()),
            proxy_jump: self.proxy_jump.clone().or_else(|| base.proxy_jump.clone()),
            transport: self.transport.or(base.transport),
        }
    }
}

/// Where a group's hosts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSource {
    /// Host expressions written in the plan, already expanded.
    Hosts(Vec<HostSpec>),
    /// A command printing host expressions, run by the engine (with `sh -c`) when the plan is
    /// placed for a run; never run during validation.
    Command(String),
    /// A group of the inventory file the plan refers to (`inventory = "..."`), resolved by the
    /// engine with `sortie-inventory`.
    Inventory(PathBuf),
}

/// A named group of hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    /// Group name.
    pub name: String,
    /// Where the hosts come from.
    pub source: GroupSource,
    /// Connection settings of the group, defaults already applied.
    pub connection: Connection,
}

/// A group whose hosts the engine must resolve before [`PlanSpec::place`](super::PlanSpec::place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNeed {
    /// Group name (the key of the [`HostResolution`](super::HostResolution) map).
    pub group: String,
    /// How to resolve it ([`GroupSource::Command`] or [`GroupSource::Inventory`]).
    pub source: GroupSource,
}

/// One host of the placed plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanHost {
    /// Label used in output and in [`ProcessSpec::host`] (`HostSpec::label`).
    pub label: String,
    /// The host as written or resolved (user and port when written in the expression).
    pub spec: HostSpec,
    /// The group it came from, or `role:NAME` for a role's inline `hosts`.
    pub group: String,
    /// Connection settings: expression `user@`/`:port` over group over `[defaults]`.
    pub connection: Connection,
}

/// A Unix signal of a stop sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGINT: the clean stop of the KVS samples.
    Int,
    /// SIGTERM.
    Term,
    /// SIGHUP.
    Hup,
    /// SIGQUIT.
    Quit,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// SIGKILL (always sent last).
    Kill,
}

impl Signal {
    /// Parses `INT`, `SIGINT`, `int` ...
    pub fn parse(text: &str) -> Option<Signal> {
        let upper = text.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        Some(match name {
            "INT" => Signal::Int,
            "TERM" => Signal::Term,
            "HUP" => Signal::Hup,
            "QUIT" => Signal::Quit,
            "USR1" => Signal::Usr1,
            "USR2" => Signal::Usr2,
            "KILL" => Signal::Kill,
            _ => return None,
        })
    }

    /// The name without `SIG` (`INT`), as `kill -s` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "INT",
            Signal::Term => "TERM",
            Signal::Hup => "HUP",
            Signal::Quit => "QUIT",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
            Signal::Kill => "KILL",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

/// One step of a stop sequence: send `signal`, wait up to `grace` for the process to exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopStep {
    /// Signal to send to the process group.
    pub signal: Signal,
    /// How long to wait before the next step.
    pub grace: Duration,
}

/// What to do when a process exits before the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Record the exit; do not restart (the default).
    Never,
    /// Restart after a failure (non-zero exit, a `fail` line, readiness timeout), at most
    /// `max_restarts` times per process.
    OnFailure {
        /// Restarts allowed per process.
        max_restarts: u32,
    },
}

/// How a role waits for the role it runs `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyMode {
    /// Each process waits for the processes of the other role with the same key to be ready
    /// (the viewer for channel X starts when master X is ready).
    SameKey,
    /// Every process waits for the whole other role to be ready.
    RoleReady,
}

/// A role's dependency on another role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The role depended on.
    pub role: String,
    /// How.
    pub mode: DependencyMode,
}

/// Where a role's hosts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleHosts {
    /// A named group (`group = "..."`).
    Group(String),
    /// An inline host expression (`hosts = "..."`), expanded.
    Inline(Vec<HostSpec>),
}

/// A role, validated.
#[derive(Debug, Clone)]
pub struct Role {
    /// Role name (`[roles.NAME]`).
    pub name: String,
    /// Where it runs.
    pub hosts: RoleHosts,
    /// Data set it iterates over, if any.
    pub for_each: Option<String>,
    /// Processes per data row (or in total without `for_each`).
    pub count: u32,
    /// Key template as written.
    pub key: String,
    /// Command template as written.
    pub command: String,
    /// Literal environment (values may use placeholders; rendered per process).
    pub env: Vec<(String, String)>,
    /// Variables copied from sortie's own environment at run time (secret: never logged).
    pub env_from_controller: Vec<String>,
    /// Working directory on the host, as written (`None`: the login directory).
    pub workdir: Option<String>,
    /// Whether each process gets its own fresh directory.
    pub fresh_dir: bool,
    /// Files of `workdir` symlinked into each fresh directory.
    pub links: Vec<String>,
    /// Processes of this role per host at most (`None`: unlimited).
    pub slots: Option<u32>,
    /// Start rate within the role.
    pub rate: Option<Rate>,
    /// Least time between two starts with the same key.
    pub min_spacing_per_key: Option<Duration>,
    /// Line (stdout or stderr) that marks a process ready; `None`: ready once started.
    pub ready: Option<Regex>,
    /// How long a process may take to print its ready line.
    pub ready_timeout: Duration,
    /// Lines that mark a process failed.
    pub fail: Vec<Regex>,
    /// Stop sequence; SIGKILL follows the last step.
    pub stop: Vec<StopStep>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Dependency on another role.
    pub after: Option<Dependency>,
    /// At most one process per key in this role, across all hosts.
    pub unique_key: bool,
    /// At most this many processes per key in this role.
    pub max_per_key: Option<u32>,
    /// The role's load shape (`stages = [...]`); empty: every process starts once.
    pub stages: Vec<Stage>,
    /// Step load (`[roles.NAME.step]`); `None`: no stairs.
    pub step: Option<Step>,
}

/// Step load to the breaking point: the role's target starts at `start` and rises by `add`
/// every `every` up to `max`, until a threshold fails; then it backs off to the last step at
/// which every threshold held and stays there (see `docs/plan.md`, "Step load").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Live processes in the first step.
    pub start: u32,
    /// Processes added at each step.
    pub add: u32,
    /// Length of one step.
    pub every: Duration,
    /// The highest target.
    pub max: u32,
}

impl Step {
    /// The target of step `k` (0 is the first).
    pub fn target(&self, k: u32) -> u32 {
        (u64::from(self.start) + u64::from(self.add) * u64::from(k)).min(u64::from(self.max)) as u32
    }

    /// How many steps there are up to and including the first at `max`.
    pub fn steps(&self) -> u32 {
        1 + (self.max - self.start.min(self.max)).div_ceil(self.add.max(1))
    }

    /// The step (0-based) `t` after the launch's start is in, counting on past the last.
    pub fn index(&self, t: Duration) -> u32 {
        (t.as_nanos() / self.every.as_nanos().max(1)).min(u128::from(u32::MAX)) as u32
    }
}

/// One stage of a role's load shape: the number of live processes follows the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Move linearly from the previous target (0 at the start) to `target` over `over`.
    Ramp {
        /// Live processes at the end of the stage.
        target: u32,
        /// Length of the ramp (zero: at once).
        over: Duration,
    },
    /// Keep the previous target for this long.
    Hold(Duration),
}

impl Stage {
    /// How long the stage lasts.
    pub fn length(&self) -> Duration {
        match self {
            Stage::Ramp { over, .. } => *over,
            Stage::Hold(d) => *d,
        }
    }
}

/// The target of `stages` at `t` after their start: linear within a ramp (rounded to the
/// nearest process), the last target after the last stage; `None` without stages.
pub fn stage_target(stages: &[Stage], t: Duration) -> Option<u32> {
    if stages.is_empty() {
        return None;
    }
    let mut prev = 0u32;
    let mut start = Duration::ZERO;
    for s in stages {
        let end = start + s.length();
        if let Stage::Ramp { target, over } = *s {
            if t < end && !over.is_zero() {
                let frac = (t.saturating_sub(start)).as_secs_f64() / over.as_secs_f64();
                let v = f64::from(prev) + (f64::from(target) - f64::from(prev)) * frac;
                return Some(v.round() as u32);
            }
            prev = target;
        } else if t < end {
            return Some(prev);
        }
        start = end;
    }
    Some(prev)
}

/// Which stage `t` is in (index), or `None` after the last (or without stages).
pub fn stage_index(stages: &[Stage], t: Duration) -> Option<usize> {
    let mut start = Duration::ZERO;
    for (i, s) in stages.iter().enumerate() {
        start += s.length();
        if t < start {
            return Some(i);
        }
    }
    None
}

/// Identity of a process: `ROLE/KEY` or `ROLE/KEY#N` when the role has several per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId(pub String);

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Written in the plan (placeholders already rendered).
    Literal(String),
    /// Copied from sortie's environment at run time; a secret: never log or report it.
    FromController,
}

/// One environment variable of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value source.
    pub value: EnvValue,
}

impl EnvVar {
    /// Whether the value must never be logged (it comes from the controller's environment).
    pub fn is_secret(&self) -> bool {
        matches!(self.value, EnvValue::FromController)
    }
}

/// A fresh working directory the engine creates (empty) before starting the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshDir {
    /// The directory (also [`ProcessSpec::cwd`]).
    pub path: String,
    /// Symlinks to create in it: `(link name, target)`; targets are in the role's `workdir`.
    pub links: Vec<(String, String)>,
}

/// What a process waits for before it starts (besides its planned offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependsOn {
    /// Nothing.
    Nothing,
    /// These processes being ready (same-key dependency).
    Processes(Vec<ProcessId>),
    /// Every process of this role being ready.
    Role(String),
}

/// One process to run, fully rendered and placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Unique identity in the plan.
    pub id: ProcessId,
    /// Role name.
    pub role: String,
    /// The key (without `#N`), e.g. the channel.
    pub key: String,
    /// 1-based number among the role's processes with this key.
    pub instance: u32,
    /// 1-based number within the role (`{seq}`), in start order.
    pub seq: u64,
    /// The data row's values, `(column, value)`, in column order.
    pub values: Vec<(String, String)>,
    /// Label of the host it runs on ([`PlanHost::label`]).
    pub host: String,
    /// 1-based slot on that host within the role (`{slot}`).
    pub slot: u32,
    /// The shell command line, rendered (values shell-quoted).
    pub command: String,
    /// Environment to set.
    pub env: Vec<EnvVar>,
    /// Directory to run in (`None`: the login directory).
    pub cwd: Option<String>,
    /// The fresh directory to create first, when the role asks for one.
    pub fresh_dir: Option<FreshDir>,
    /// What it waits for.
    pub depends_on: DependsOn,
    /// Earliest start, from the start of its role (rate and per-key spacing applied).
    pub start_offset: Duration,
}

/// The comparison of a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The measured value must be at least this.
    Min(f64),
    /// The measured value must be at most this.
    Max(f64),
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Ready processes / planned processes, 0..=1.
    ReadyRatio,
    /// Percentile (1..=100) of the time from start to ready, in seconds.
    TimeToReady {
        /// The percentile; 100 is the maximum.
        percentile: u8,
    },
    /// Number of failed processes.
    Failed,
    /// Number of restarts.
    Restarts,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::ReadyRatio => f.write_str("ready_ratio"),
            Metric::TimeToReady { percentile: 100 } => f.write_str("max_time_to_ready"),
            Metric::TimeToReady { percentile } => write!(f, "p{percentile}_time_to_ready"),
            Metric::Failed => f.write_str("failed"),
            Metric::Restarts => f.write_str("restarts"),
        }
    }
}

/// A pass/fail threshold. Time metrics are compared in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub metric: Metric,
    /// The role it applies to; `None`: all processes.
    pub role: Option<String>,
    /// The bounds (one or two).
    pub bounds: Vec<Bound>,
    /// Judged during the run over the last `window` (`None`: over the whole run).
    pub window: Option<Duration>,
    /// A failure during the run stops it (through the normal stop sequence).
    pub abort: bool,
}

/// Run-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// How long to hold once every process is ready; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// Run directory template (`{name}` and `{timestamp}` are replaced), relative to the plan
    /// file's directory; see [`Plan::run_dir`](super::Plan::run_dir).
    pub run_dir: String,
    /// Start rate across all roles.
    pub rate: Option<Rate>,
    /// Most processes starting (started, not yet ready) at once.
    pub max_starting: Option<u32>,
    /// Where each host keeps the run's host-side files (`<remote_dir>/<run-id>/`); `None`:
    /// `~/.sortie-runs`.
    pub remote_dir: Option<String>,
    /// How long a lost host is dialled again before its processes count as lost; `None`: 60 s.
    pub reconnect_window: Option<Duration>,
    /// How long the host-side watchdog lets the fleet run without hearing from the controller;
    /// `None`: the reconnect window plus 30 s.
    pub lease: Option<Duration>,
    /// Time between two resource samples of each host (`sample_interval`, default 5 s);
    /// zero turns sampling off.
    pub sample_interval: Duration,
}

/// The default of `[run] sample_interval`.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// A file transfer before (`[[upload]]`) or after (`[[collect]]`) the run. The launch runs
/// uploads on each host before its first process starts (recursively, like `sortie put -r`)
/// and collections after the stop (like `sortie get -r`, into `<run-dir>/<dest>/<host>/`).
/// Remote paths may hold `{host}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Source (local for uploads, remote for collections).
    pub src: String,
    /// Destination (remote for uploads, local for collections).
    pub dest: String,
    /// Restrict to the hosts of this role; `None`: every host of the plan.
    pub role: Option<String>,
}
