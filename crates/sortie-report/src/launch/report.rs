//! The launch report (`report.json`) as a fold over the launch's events.
//!
//! Owns [`LaunchReport`] and its parts, [`ReportFold`] (events in, report out), time-to-ready
//! percentiles and threshold verdicts. No event carries the report: the live run and
//! `sortie report RUN_DIR` fold the same events and get the same report.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sortie_events::launch::{
    Ending, ExitInfo, HostSample, LaunchEvent, PlannedHost, PlannedProcess, ProcessRef,
    ProcessSample, RoleCounts, ThresholdMetric, ThresholdSpec, TransferOutcome, TransferRecord,
    TransferStep, SCHEMA_VERSION,
};

/// One process in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// `ROLE/KEY` or `ROLE/KEY#N`.
    pub id: String,
    /// Role name.
    pub role: String,
    /// Key.
    pub key: String,
    /// Host it ran on last.
    pub host: String,
    /// Host the plan placed it on (differs after a move).
    pub planned_host: String,
    /// Attempts started.
    pub attempts: u32,
    /// Restarts (attempts after a failure).
    pub restarts: u32,
    /// Start of the last attempt (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// When it became ready (last attempt that did).
    pub ready_at: Option<String>,
    /// Time from start to ready, in milliseconds.
    pub time_to_ready_ms: Option<u64>,
    /// How it ended.
    pub ending: Ending,
    /// Its exit.
    pub exit: Option<ExitInfo>,
    /// The first line that marked it failed (fail pattern), over all attempts.
    pub first_failure_line: Option<String>,
    /// Its process group on the host (last attempt).
    pub pgid: Option<u32>,
    /// Its log file, when logs are written.
    pub log: Option<String>,
    /// Its resource use over its samples (`process_sample` events); `None` when it was never
    /// sampled.
    #[serde(default)]
    pub resources: Option<ProcessResources>,
}

/// A process group's resource use over its samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessResources {
    /// Samples taken.
    pub samples: u64,
    /// Mean CPUs used (1.0 = one core busy) over the samples that measured it.
    pub cpu_mean_cores: Option<f64>,
    /// Most CPUs used over one interval.
    pub cpu_max_cores: Option<f64>,
    /// Largest resident memory of the group, in bytes.
    pub rss_max_bytes: u64,
    /// Most threads in the group.
    pub threads_max: u32,
}

/// A host's resource use over its samples (`host_sample` events). CPU values are fractions of
/// the whole host; busy is user + system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostResources {
    /// Samples taken.
    pub samples: u64,
    /// CPUs on the host.
    pub cpus: u32,
    /// Mean busy CPU (user + system), fraction of the host.
    pub cpu_mean: f64,
    /// Highest busy CPU over one interval.
    pub cpu_max: f64,
    /// Highest I/O wait over one interval.
    pub iowait_max: f64,
    /// Highest steal over one interval.
    pub steal_max: f64,
    /// Highest 1-minute load average.
    pub load1_max: f64,
    /// Memory of the host, in bytes.
    pub mem_total_bytes: u64,
    /// Lowest available memory seen, in bytes.
    pub mem_available_min_bytes: u64,
    /// Bytes received over the samples (loopback excluded).
    pub net_rx_bytes: u64,
    /// Bytes sent over the samples (loopback excluded).
    pub net_tx_bytes: u64,
}

/// A role's resource use: its processes' samples, and the network of the hosts it ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleResources {
    /// Process samples taken.
    pub samples: u64,
    /// Mean CPUs used by one of its processes, over every sample that measured it.
    pub cpu_mean_cores: Option<f64>,
    /// Most CPUs one of its processes used over one interval.
    pub cpu_max_cores: Option<f64>,
    /// Largest resident memory of one of its processes, in bytes.
    pub rss_max_bytes: u64,
    /// Bytes received by the hosts its processes ran on (a host shared by roles counts for
    /// each).
    pub net_rx_bytes: u64,
    /// Bytes sent by the hosts its processes ran on.
    pub net_tx_bytes: u64,
}

/// Time-to-ready percentiles of a role, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// Per-role summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleSummary {
    /// Role name.
    pub role: String,
    /// Processes planned.
    pub planned: usize,
    /// Processes that became ready at least once.
    pub ready: usize,
    /// Processes by ending kind (`ready_then_stopped`, `failed`, ...).
    pub endings: BTreeMap<String, usize>,
    /// Restarts.
    pub restarts: u32,
    /// Time-to-ready percentiles over processes that became ready.
    pub time_to_ready: Option<Percentiles>,
    /// Resource use of its processes; `None` when none was sampled.
    #[serde(default)]
    pub resources: Option<RoleResources>,
}

/// A threshold and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The metric (`ready_ratio`, `p99_time_to_ready`, ...).
    pub metric: String,
    /// The role it applies to (`None`: all processes).
    pub role: Option<String>,
    /// Lower bound (seconds for time metrics).
    pub min: Option<f64>,
    /// Upper bound (seconds for time metrics).
    pub max: Option<f64>,
    /// The measured value (seconds for time metrics); `None` when nothing was measured.
    pub value: Option<f64>,
    /// Whether it held.
    pub passed: bool,
    /// The window it was judged over during the run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// When it first failed during the run (milliseconds since the launch began), if it was
    /// judged during the run and failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at_ms: Option<u64>,
    /// That failure, for people: `viewer ready_ratio 0.93 < 0.99 over the last 1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Why a run stopped early: a threshold with `abort = true` failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aborted {
    /// The failure (`viewer ready_ratio 0.93 < 0.99 over the last 1m`).
    pub reason: String,
    /// Milliseconds since the launch began.
    pub at_ms: u64,
}

/// Where a role's step load broke.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Role name.
    pub role: String,
    /// The last step's target at which every threshold held (0: not even the first).
    pub held: u32,
    /// The target of the step at which a threshold failed.
    pub broke_at: u32,
    /// The failure.
    pub reason: String,
    /// Milliseconds since the launch began.
    pub at_ms: u64,
}

/// A role's live processes against its load shape's target over time (roles with stages or
/// a step load): one point whenever either changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleLoad {
    /// Role name.
    pub role: String,
    /// `[at_ms, target, live]`: live counts processes starting or ready.
    pub points: Vec<[u64; 3]>,
}

/// A host in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// Label.
    pub host: String,
    /// Plan group it came from.
    pub group: String,
    /// Whether it connected.
    pub connected: bool,
    /// Connect failure or loss.
    pub error: Option<String>,
    /// Processes the plan placed on it.
    pub placed: Vec<String>,
    /// Times its connection was lost during the run (each followed by a reconnect, or by the
    /// loss of the host when the reconnect window passed).
    #[serde(default)]
    pub disconnects: u32,
    /// Times sortie connected again after a loss.
    #[serde(default)]
    pub reconnects: u32,
    /// Total time disconnected before those reconnects, in milliseconds.
    #[serde(default)]
    pub disconnected_ms: u64,
    /// Its resource use; `None` when it was never sampled.
    #[serde(default)]
    pub resources: Option<HostResources>,
}

/// The end-of-run check for leftover processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StopCheck {
    /// Hosts checked.
    pub hosts_checked: usize,
    /// Hosts that could not be checked (lost or never connected but used).
    pub unchecked: Vec<String>,
    /// `(host, pgid)` found alive after the stop (then killed).
    pub survivors: Vec<(String, u32)>,
    /// Stop scripts that could not run (`host: reason`).
    pub errors: Vec<String>,
}

/// The report of a launch (`report.json`, schema in docs/report-json.md). Holds no environment
/// value. Built by [`ReportFold`] from the events alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchReport {
    /// Schema version of the run record it was folded from.
    pub v: u32,
    /// The run's id.
    pub run_id: String,
    /// False when the record ends before [`LaunchEvent::LaunchFinished`] (the controller
    /// died): what is known is reported, and processes whose end was not seen are
    /// `unfinished`.
    pub finished: bool,
    /// Plan name.
    pub plan: String,
    /// SHA-256 of the plan file.
    pub digest: String,
    /// Plan file.
    pub plan_path: String,
    /// `--set` overrides applied.
    pub overrides: Vec<String>,
    /// Run directory, when one was written.
    pub run_dir: Option<String>,
    /// Start (RFC 3339, UTC).
    pub started_at: String,
    /// End (RFC 3339, UTC); empty when the run did not finish.
    pub finished_at: String,
    /// Length of the run, in milliseconds.
    pub elapsed_ms: u64,
    /// Whether it was interrupted.
    pub interrupted: bool,
    /// Hosts and placement.
    pub hosts: Vec<HostReport>,
    /// Every process.
    pub processes: Vec<ProcessReport>,
    /// Per-role summaries, in dependency order.
    pub roles: Vec<RoleSummary>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// Whether every threshold held.
    pub thresholds_passed: bool,
    /// Leftover-process check.
    pub stop_check: StopCheck,
    /// The plan's `[[upload]]` and `[[collect]]` transfers, one record per transfer and host.
    pub transfers: Vec<TransferRecord>,
    /// Set when a threshold with `abort = true` stopped the run.
    #[serde(default)]
    pub aborted: Option<Aborted>,
    /// Where each role's step load broke (roles whose climb stopped on a failure).
    #[serde(default)]
    pub steps: Vec<StepResult>,
    /// Target against live processes over time, per role with a load shape.
    #[serde(default)]
    pub load: Vec<RoleLoad>,
}

impl LaunchReport {
    /// Collections that failed or were skipped on a host (missing logs).
    pub fn collections_incomplete(&self) -> usize {
        self.transfers
            .iter()
            .filter(|t| t.step == TransferStep::Collect && t.outcome != TransferOutcome::Ok)
            .count()
    }

    /// Number of processes whose ending is a failure.
    pub fn failed(&self) -> usize {
        self.processes
            .iter()
            .filter(|p| p.ending.is_failure())
            .count()
    }
}

/// Nearest-rank percentile of sorted values (`p` in 1..=100).
fn percentile(sorted: &[u64], p: u8) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((f64::from(p) / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Summaries per role from the processes.
fn summarize(roles: &[String], processes: &[ProcessReport]) -> Vec<RoleSummary> {
    roles
        .iter()
        .map(|r| {
            let mine: Vec<&ProcessReport> = processes.iter().filter(|p| &p.role == r).collect();
            let mut ttr: Vec<u64> = mine.iter().filter_map(|p| p.time_to_ready_ms).collect();
            ttr.sort_unstable();
            let mut endings = BTreeMap::new();
            for p in &mine {
                *endings.entry(p.ending.kind().to_string()).or_insert(0) += 1;
            }
            RoleSummary {
                role: r.clone(),
                planned: mine.len(),
                ready: ttr.len(),
                endings,
                restarts: mine.iter().map(|p| p.restarts).sum(),
                time_to_ready: (!ttr.is_empty()).then(|| Percentiles {
                    p50: percentile(&ttr, 50).unwrap_or(0),
                    p90: percentile(&ttr, 90).unwrap_or(0),
                    p99: percentile(&ttr, 99).unwrap_or(0),
                    max: *ttr.last().unwrap_or(&0),
                }),
                resources: None,
            }
        })
        .collect()
}

/// Evaluates the plan's thresholds over the processes.
fn evaluate(thresholds: &[ThresholdSpec], processes: &[ProcessReport]) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let mine: Vec<&ProcessReport> = processes
                .iter()
                .filter(|p| t.role.as_ref().is_none_or(|r| &p.role == r))
                .collect();
            let value = match t.metric {
                ThresholdMetric::ReadyRatio => {
                    // A process of the pool that the load shape never needed is not one
                    // that failed to become ready.
                    let used = (mine.iter()).filter(|p| p.ending != Ending::Unused).count();
                    let ready = mine.iter().filter(|p| p.time_to_ready_ms.is_some()).count();
                    Some(if used == 0 {
                        1.0
                    } else {
                        ready as f64 / used as f64
                    })
                }
                ThresholdMetric::TimeToReady { percentile: p } => {
                    let mut v: Vec<u64> = mine.iter().filter_map(|p| p.time_to_ready_ms).collect();
                    v.sort_unstable();
                    percentile(&v, p).map(|ms| ms as f64 / 1000.0)
                }
                ThresholdMetric::Failed => {
                    Some(mine.iter().filter(|p| p.ending.is_failure()).count() as f64)
                }
                ThresholdMetric::Restarts => Some(mine.iter().map(|p| f64::from(p.restarts)).sum()),
            };
            let (min, max) = (t.min, t.max);
            let passed = value.is_some_and(|v| {
                min.is_none_or(|m| v >= m - 1e-9) && max.is_none_or(|m| v <= m + 1e-9)
            });
            ThresholdResult {
                metric: t.metric.to_string(),
                role: t.role.clone(),
                min,
                max,
                value,
                passed,
                window_ms: t.window_ms,
                failed_at_ms: None,
                failure: None,
            }
        })
        .collect()
}

/// What the fold knows about one process.
#[derive(Clone, Debug, Default)]
struct ProcFold {
    host: Option<String>,
    attempts: u32,
    restarts: u32,
    started_at: Option<String>,
    ready_at: Option<String>,
    time_to_ready_ms: Option<u64>,
    ready_this_attempt: bool,
    exited_this_attempt: bool,
    failure: Option<Ending>,
    ending: Option<Ending>,
    exit: Option<ExitInfo>,
    first_failure_line: Option<String>,
    pgid: Option<u32>,
    usage: Usage,
}

/// A process's samples, accumulated.
#[derive(Clone, Debug, Default)]
struct Usage {
    samples: u64,
    cores_sum: f64,
    cores_n: u64,
    cores_max: Option<f64>,
    rss_max: u64,
    threads_max: u32,
}

impl Usage {
    fn add(&mut self, s: &ProcessSample) {
        self.samples += 1;
        if let Some(c) = s.cpu_cores {
            self.cores_sum += c;
            self.cores_n += 1;
            self.cores_max = Some(self.cores_max.map_or(c, |m| m.max(c)));
        }
        self.rss_max = self.rss_max.max(s.rss_bytes);
        self.threads_max = self.threads_max.max(s.threads);
    }

    fn merge(&mut self, o: &Usage) {
        self.samples += o.samples;
        self.cores_sum += o.cores_sum;
        self.cores_n += o.cores_n;
        self.cores_max = match (self.cores_max, o.cores_max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.rss_max = self.rss_max.max(o.rss_max);
        self.threads_max = self.threads_max.max(o.threads_max);
    }

    fn mean(&self) -> Option<f64> {
        (self.cores_n > 0).then(|| self.cores_sum / self.cores_n as f64)
    }

    fn process(&self) -> Option<ProcessResources> {
        (self.samples > 0).then(|| ProcessResources {
            samples: self.samples,
            cpu_mean_cores: self.mean(),
            cpu_max_cores: self.cores_max,
            rss_max_bytes: self.rss_max,
            threads_max: self.threads_max,
        })
    }
}

/// Folds one host sample into a host's resources.
fn add_host_sample(r: &mut HostResources, s: &HostSample) {
    let busy = s.cpu_busy();
    let n = r.samples as f64;
    r.cpu_mean = (r.cpu_mean * n + busy) / (n + 1.0);
    r.cpu_max = if r.samples == 0 {
        busy
    } else {
        r.cpu_max.max(busy)
    };
    r.iowait_max = r.iowait_max.max(s.cpu_iowait);
    r.steal_max = r.steal_max.max(s.cpu_steal);
    r.load1_max = r.load1_max.max(s.load1);
    r.cpus = s.cpus;
    r.mem_total_bytes = s.mem_total_bytes;
    r.mem_available_min_bytes = if r.samples == 0 {
        s.mem_available_bytes
    } else {
        r.mem_available_min_bytes.min(s.mem_available_bytes)
    };
    r.net_rx_bytes += s.net_rx_bytes;
    r.net_tx_bytes += s.net_tx_bytes;
    r.samples += 1;
}

/// What the fold knows about one host.
#[derive(Clone, Debug, Default)]
struct HostFold {
    connected: bool,
    error: Option<String>,
    disconnects: u32,
    reconnects: u32,
    disconnected_ms: u64,
    resources: Option<HostResources>,
}

/// Builds the [`LaunchReport`] from a launch's events, one at a time: the report is a fold
/// over the stream, so the live run and `sortie report RUN_DIR` give the same report.
///
/// ```
/// use sortie_report::launch::ReportFold;
/// let mut fold = ReportFold::new("20260501-120000.000-abc123");
/// // for ev in events { fold.apply(&ev); }
/// let report = fold.report();
/// assert!(!report.finished);
/// ```
#[derive(Clone, Debug)]
pub struct ReportFold {
    run_id: String,
    started: Option<Started>,
    procs: Vec<ProcFold>,
    by_id: HashMap<String, usize>,
    hosts: Vec<HostFold>,
    host_idx: HashMap<String, usize>,
    stop_check: StopCheck,
    transfers: Vec<TransferRecord>,
    last_ms: u64,
    finished: Option<Finished>,
    /// Per threshold: its first failure during the run `(value, at_ms, reason)`.
    live_failures: Vec<Option<(f64, u64, String)>>,
    aborted: Option<Aborted>,
    steps: Vec<StepResult>,
    load: Vec<RoleLoad>,
}

#[derive(Clone, Debug)]
struct Started {
    plan: String,
    digest: String,
    plan_path: String,
    overrides: Vec<String>,
    run_dir: Option<String>,
    started_at: String,
    roles: Vec<String>,
    hosts: Vec<PlannedHost>,
    processes: Vec<PlannedProcess>,
    thresholds: Vec<ThresholdSpec>,
}

#[derive(Clone, Debug)]
struct Finished {
    interrupted: bool,
    elapsed_ms: u64,
    finished_at: String,
}

impl ReportFold {
    /// An empty fold for run `run_id`.
    pub fn new(run_id: &str) -> Self {
        ReportFold {
            run_id: run_id.to_string(),
            started: None,
            procs: Vec::new(),
            by_id: HashMap::new(),
            hosts: Vec::new(),
            host_idx: HashMap::new(),
            stop_check: StopCheck::default(),
            transfers: Vec::new(),
            last_ms: 0,
            finished: None,
            live_failures: Vec::new(),
            aborted: None,
            steps: Vec::new(),
            load: Vec::new(),
        }
    }

    /// Whether [`LaunchEvent::LaunchFinished`] was seen.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    fn proc(&mut self, p: &ProcessRef) -> Option<&mut ProcFold> {
        let i = *self.by_id.get(&p.id)?;
        let f = &mut self.procs[i];
        f.host = Some(p.host.clone());
        Some(f)
    }

    fn host(&mut self, label: &str) -> Option<&mut HostFold> {
        let i = *self.host_idx.get(label)?;
        Some(&mut self.hosts[i])
    }

    /// Takes one event into account.
    pub fn apply(&mut self, ev: &LaunchEvent) {
        if let Some(ms) = ev.at_ms() {
            self.last_ms = self.last_ms.max(ms);
        }
        match ev {
            LaunchEvent::LaunchStarted { .. } => self.started(ev),
            LaunchEvent::HostConnected { host, .. } => {
                if let Some(h) = self.host(host) {
                    h.connected = true;
                }
            }
            LaunchEvent::HostDisconnected { host, .. } => {
                if let Some(h) = self.host(host) {
                    h.disconnects += 1;
                }
            }
            LaunchEvent::HostReconnected { host, after_ms, .. } => {
                if let Some(h) = self.host(host) {
                    h.reconnects += 1;
                    h.disconnected_ms += after_ms;
                }
            }
            LaunchEvent::HostFailed { host, message } | LaunchEvent::HostLost { host, message } => {
                if let Some(h) = self.host(host) {
                    h.error = Some(message.clone());
                }
            }
            LaunchEvent::TransferFinished { transfer } => self.transfers.push(transfer.clone()),
            LaunchEvent::HostSample(sample) => {
                if let Some(h) = self.host(&sample.host) {
                    add_host_sample(h.resources.get_or_insert_with(Default::default), sample);
                }
            }
            LaunchEvent::ProcessSample(sample) => {
                if let Some(i) = self.by_id.get(&sample.process.id) {
                    self.procs[*i].usage.add(sample);
                }
            }
            LaunchEvent::StopFailed { host, message } => {
                self.stop_check.errors.push(format!("{host}: {message}"));
            }
            LaunchEvent::StopConfirmed {
                hosts_checked,
                unchecked,
                survivors,
            } => {
                self.stop_check.hosts_checked = *hosts_checked;
                self.stop_check.unchecked = unchecked.clone();
                self.stop_check.survivors = survivors.clone();
            }
            LaunchEvent::ThresholdFailed {
                index,
                reason,
                value,
                at_ms,
            } => {
                if let Some(slot @ None) = self.live_failures.get_mut(*index) {
                    *slot = Some((*value, *at_ms, reason.clone()));
                }
            }
            LaunchEvent::LaunchAborted { reason, at_ms } => {
                self.aborted = Some(Aborted {
                    reason: reason.clone(),
                    at_ms: *at_ms,
                });
            }
            LaunchEvent::StepBroke {
                role,
                held,
                broke_at,
                reason,
                at_ms,
            } => self.steps.push(StepResult {
                role: role.clone(),
                held: *held,
                broke_at: *broke_at,
                reason: reason.clone(),
                at_ms: *at_ms,
            }),
            LaunchEvent::Progress {
                roles, elapsed_ms, ..
            } => self.load_at(*elapsed_ms, roles),
            LaunchEvent::LaunchFinished {
                interrupted,
                elapsed_ms,
                finished_at,
                ..
            } => {
                self.finished = Some(Finished {
                    interrupted: *interrupted,
                    elapsed_ms: *elapsed_ms,
                    finished_at: finished_at.clone(),
                });
            }
            _ => self.process_event(ev),
        }
    }

    fn started(&mut self, ev: &LaunchEvent) {
        let LaunchEvent::LaunchStarted {
            plan,
            digest,
            plan_path,
            overrides,
            run_dir,
            started_at,
            roles,
            host_list,
            process_list,
            thresholds,
            ..
        } = ev
        else {
            return;
        };
        self.by_id = (process_list.iter().enumerate())
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        self.procs = vec![ProcFold::default(); process_list.len()];
        self.host_idx = (host_list.iter().enumerate())
            .map(|(i, h)| (h.host.clone(), i))
            .collect();
        self.hosts = vec![HostFold::default(); host_list.len()];
        self.live_failures = vec![None; thresholds.len()];
        self.started = Some(Started {
            plan: plan.clone(),
            digest: digest.clone(),
            plan_path: plan_path.clone(),
            overrides: overrides.clone(),
            run_dir: run_dir.clone(),
            started_at: started_at.clone(),
            roles: roles.clone(),
            hosts: host_list.clone(),
            processes: process_list.clone(),
            thresholds: thresholds.clone(),
        });
    }

    /// Adds a load point to each role with a target whose target or live count changed.
    fn load_at(&mut self, at_ms: u64, roles: &[RoleCounts]) {
        for rc in roles {
            let Some(target) = rc.target else { continue };
            let live = (rc.starting + rc.ready) as u64;
            let point = [at_ms, u64::from(target), live];
            match self.load.iter_mut().find(|l| l.role == rc.role) {
                Some(l) => {
                    if l.points.last().is_none_or(|p| p[1..] != point[1..]) {
                        l.points.push(point);
                    }
                }
                None => self.load.push(RoleLoad {
                    role: rc.role.clone(),
                    points: vec![point],
                }),
            }
        }
    }

    /// The per-process events. The rules mirror the engine's: an ending is a failure once the
    /// attempt both failed and exited (in either order), a stop's ending depends on whether
    /// the attempt became ready, and a restart keeps the failure as the ending until the next
    /// attempt ends.
    fn process_event(&mut self, ev: &LaunchEvent) {
        match ev {
            LaunchEvent::ProcessStarting {
                process,
                attempt,
                started_at,
                ..
            } => {
                if let Some(p) = self.proc(process) {
                    p.attempts = *attempt;
                    p.started_at = started_at.clone();
                    p.pgid = None;
                    p.failure = None;
                    p.ready_this_attempt = false;
                    p.exited_this_attempt = false;
                }
            }
            LaunchEvent::ProcessStarted { process, pgid, .. } => {
                if let Some(p) = self.proc(process) {
                    p.pgid = *pgid;
                }
            }
            LaunchEvent::ProcessReady {
                process,
                time_to_ready_ms,
                ready_at,
                ..
            } => {
                if let Some(p) = self.proc(process) {
                    p.ready_this_attempt = true;
                    p.time_to_ready_ms = Some(*time_to_ready_ms);
                    p.ready_at = ready_at.clone();
                }
            }
            LaunchEvent::ProcessFailed {
                process, ending, ..
            } => {
                if let Some(p) = self.proc(process) {
                    if let Ending::Failed { line, .. } = ending {
                        p.first_failure_line.get_or_insert_with(|| line.clone());
                    }
                    p.failure = Some(ending.clone());
                    if p.exited_this_attempt {
                        p.ending = p.failure.clone();
                    }
                }
            }
            LaunchEvent::ProcessExited { process, exit, .. } => {
                if let Some(p) = self.proc(process) {
                    p.exit = Some(exit.clone());
                    p.exited_this_attempt = true;
                    if p.failure.is_some() {
                        p.ending = p.failure.clone();
                    }
                }
            }
            LaunchEvent::ProcessStopped { process, exit, .. } => {
                if let Some(p) = self.proc(process) {
                    p.exit = Some(exit.clone());
                    p.ending = Some(p.failure.clone().unwrap_or(if p.ready_this_attempt {
                        Ending::ReadyThenStopped
                    } else {
                        Ending::StoppedBeforeReady
                    }));
                }
            }
            LaunchEvent::ProcessRestarting {
                process, restarts, ..
            } => {
                if let Some(p) = self.proc(process) {
                    p.restarts = *restarts;
                    if p.failure.is_some() {
                        p.ending = p.failure.take();
                    }
                }
            }
            LaunchEvent::ProcessUnused { process } => {
                if let Some(p) = self.proc(process) {
                    p.ending = Some(Ending::Unused);
                }
            }
            LaunchEvent::ProcessNeverStarted { process, reason } => {
                if let Some(p) = self.proc(process) {
                    p.ending = Some(Ending::NeverStarted {
                        reason: reason.clone(),
                    });
                }
            }
            LaunchEvent::ProcessMoved { process, .. }
            | LaunchEvent::ProcessLost { process, .. }
            | LaunchEvent::ProcessStartFailed { process, .. } => {
                self.proc(process);
            }
            _ => {}
        }
    }

    /// The report as far as the events go. Before [`LaunchEvent::LaunchFinished`], processes
    /// whose end was not seen are `unfinished` and the report says it did not finish.
    pub fn report(&self) -> LaunchReport {
        let finished = self.finished.as_ref();
        let Some(st) = &self.started else {
            return self.empty_report();
        };
        let processes: Vec<ProcessReport> = (st.processes.iter().zip(&self.procs))
            .map(|(s, p)| ProcessReport {
                id: s.id.clone(),
                role: s.role.clone(),
                key: s.key.clone(),
                host: p.host.clone().unwrap_or_else(|| s.host.clone()),
                planned_host: s.host.clone(),
                attempts: p.attempts,
                restarts: p.restarts,
                started_at: p.started_at.clone(),
                ready_at: p.ready_at.clone(),
                time_to_ready_ms: p.time_to_ready_ms,
                ending: p.ending.clone().unwrap_or_else(|| match finished {
                    Some(_) => Ending::NeverStarted {
                        reason: "unknown".into(),
                    },
                    None => Ending::Unfinished,
                }),
                exit: p.exit.clone(),
                first_failure_line: p.first_failure_line.clone(),
                pgid: p.pgid,
                log: s.log.clone().filter(|_| p.attempts > 0),
                resources: p.usage.process(),
            })
            .collect();
        let mut roles = summarize(&st.roles, &processes);
        let mut thresholds = evaluate(&st.thresholds, &processes);
        for (t, live) in thresholds.iter_mut().zip(&self.live_failures) {
            // A failure during the run stands, whatever the whole run's value.
            if let Some((value, at_ms, reason)) = live {
                t.passed = false;
                if t.window_ms.is_some() {
                    t.value = Some(*value);
                }
                t.failed_at_ms = Some(*at_ms);
                t.failure = Some(reason.clone());
            }
        }
        let thresholds_passed = thresholds.iter().all(|t| t.passed);
        let hosts = (st.hosts.iter().zip(&self.hosts))
            .map(|(ph, h)| HostReport {
                host: ph.host.clone(),
                group: ph.group.clone(),
                connected: h.connected,
                error: h.error.clone(),
                placed: (st.processes.iter())
                    .filter(|s| s.host == ph.host)
                    .map(|s| s.id.clone())
                    .collect(),
                disconnects: h.disconnects,
                reconnects: h.reconnects,
                disconnected_ms: h.disconnected_ms,
                resources: h.resources.clone(),
            })
            .collect::<Vec<HostReport>>();
        for r in &mut roles {
            r.resources = self.role_resources(&r.role, &processes, &hosts);
        }
        LaunchReport {
            v: SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            finished: finished.is_some(),
            plan: st.plan.clone(),
            digest: st.digest.clone(),
            plan_path: st.plan_path.clone(),
            overrides: st.overrides.clone(),
            run_dir: st.run_dir.clone(),
            started_at: st.started_at.clone(),
            finished_at: finished.map(|f| f.finished_at.clone()).unwrap_or_default(),
            elapsed_ms: finished.map_or(self.last_ms, |f| f.elapsed_ms),
            interrupted: finished.is_some_and(|f| f.interrupted),
            hosts,
            processes,
            roles,
            thresholds,
            thresholds_passed,
            stop_check: self.stop_check.clone(),
            transfers: self.transfers.clone(),
            aborted: self.aborted.clone(),
            steps: self.steps.clone(),
            load: self.load.clone(),
        }
    }

    /// A role's resources: its processes' usage merged, and the network of the hosts its
    /// processes ran on.
    fn role_resources(
        &self,
        role: &str,
        processes: &[ProcessReport],
        hosts: &[HostReport],
    ) -> Option<RoleResources> {
        let mut usage = Usage::default();
        let mut on: Vec<&str> = Vec::new();
        for (p, f) in processes.iter().zip(&self.procs) {
            if p.role == role && f.usage.samples > 0 {
                usage.merge(&f.usage);
                if !on.contains(&p.host.as_str()) {
                    on.push(&p.host);
                }
            }
        }
        if usage.samples == 0 {
            return None;
        }
        let net = |f: fn(&HostResources) -> u64| -> u64 {
            (hosts.iter())
                .filter(|h| on.contains(&h.host.as_str()))
                .filter_map(|h| h.resources.as_ref().map(f))
                .sum()
        };
        Some(RoleResources {
            samples: usage.samples,
            cpu_mean_cores: usage.mean(),
            cpu_max_cores: usage.cores_max,
            rss_max_bytes: usage.rss_max,
            net_rx_bytes: net(|h| h.net_rx_bytes),
            net_tx_bytes: net(|h| h.net_tx_bytes),
        })
    }

    fn empty_report(&self) -> LaunchReport {
        LaunchReport {
            v: SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            finished: false,
            plan: String::new(),
            digest: String::new(),
            plan_path: String::new(),
            overrides: Vec::new(),
            run_dir: None,
            started_at: String::new(),
            finished_at: String::new(),
            elapsed_ms: self.last_ms,
            interrupted: false,
            hosts: Vec::new(),
            processes: Vec::new(),
            roles: Vec::new(),
            thresholds: Vec::new(),
            thresholds_passed: true,
            stop_check: self.stop_check.clone(),
            transfers: self.transfers.clone(),
            aborted: None,
            steps: Vec::new(),
            load: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&v, 100), Some(100));
        assert_eq!(percentile(&[7], 1), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[10, 20, 30], 50), Some(20));
    }

    fn pref(id: &str, host: &str) -> ProcessRef {
        let (role, key) = id.split_once('/').unwrap();
        ProcessRef {
            id: id.into(),
            role: role.into(),
            key: key.into(),
            host: host.into(),
        }
    }

    fn started() -> LaunchEvent {
        let planned = |id: &str, host: &str| PlannedProcess {
            id: id.into(),
            role: id.split('/').next().unwrap().into(),
            key: id.split('/').nth(1).unwrap().into(),
            host: host.into(),
            log: None,
        };
        LaunchEvent::LaunchStarted {
            plan: "p".into(),
            digest: String::new(),
            plan_path: String::new(),
            overrides: vec![],
            run_dir: None,
            started_at: String::new(),
            processes: 3,
            hosts: 2,
            roles: vec!["master".into(), "viewer".into()],
            duration_ms: None,
            host_list: vec![
                PlannedHost {
                    host: "h1".into(),
                    group: "g".into(),
                },
                PlannedHost {
                    host: "h2".into(),
                    group: "g".into(),
                },
            ],
            process_list: vec![
                planned("master/a", "h1"),
                planned("master/b", "h2"),
                planned("viewer/a", "h2"),
            ],
            thresholds: vec![],
        }
    }

    fn psample(id: &str, host: &str, cores: Option<f64>, rss: u64) -> LaunchEvent {
        LaunchEvent::ProcessSample(ProcessSample {
            process: pref(id, host),
            pgid: 1,
            at_ms: 1000,
            cpu_seconds: 1.0,
            cpu_cores: cores,
            rss_bytes: rss,
            threads: 2,
            procs: 1,
        })
    }

    fn hsample(host: &str, user: f64, avail: u64, rx: u64) -> LaunchEvent {
        LaunchEvent::HostSample(HostSample {
            host: host.into(),
            at_ms: 1000,
            interval_ms: 1000,
            cpus: 2,
            cpu_user: user,
            cpu_system: 0.1,
            mem_available_bytes: avail,
            mem_total_bytes: 1000,
            net_rx_bytes: rx,
            net_tx_bytes: 1,
            ..HostSample::default()
        })
    }

    #[test]
    fn samples_are_summarised_per_process_per_role_and_per_host() {
        let mut fold = ReportFold::new("r");
        for ev in [
            started(),
            psample("master/a", "h1", None, 100),
            psample("master/a", "h1", Some(1.0), 300),
            psample("master/b", "h2", Some(0.5), 200),
            psample("master/a", "h1", Some(0.0), 250),
            hsample("h1", 0.5, 800, 10),
            hsample("h1", 0.3, 600, 20),
            hsample("h2", 0.1, 900, 5),
            hsample("nowhere", 0.9, 1, 1),
        ] {
            fold.apply(&ev);
        }
        let r = fold.report();
        let a = r.processes[0].resources.as_ref().unwrap();
        assert_eq!(a.samples, 3);
        assert_eq!(a.cpu_mean_cores, Some(0.5));
        assert_eq!(a.cpu_max_cores, Some(1.0));
        assert_eq!(a.rss_max_bytes, 300);
        assert!(r.processes[2].resources.is_none(), "viewer/a never sampled");

        let m = r.roles[0].resources.as_ref().unwrap();
        assert_eq!(m.samples, 4);
        assert_eq!(m.cpu_mean_cores, Some(0.5), "(1.0 + 0.0 + 0.5) / 3");
        assert_eq!(m.cpu_max_cores, Some(1.0));
        assert_eq!(m.rss_max_bytes, 300);
        assert_eq!((m.net_rx_bytes, m.net_tx_bytes), (35, 3), "h1 and h2");
        assert!(r.roles[1].resources.is_none());

        let h1 = r.hosts[0].resources.as_ref().unwrap();
        assert_eq!(h1.samples, 2);
        assert!((h1.cpu_mean - 0.5).abs() < 1e-9, "{}", h1.cpu_mean);
        assert!((h1.cpu_max - 0.6).abs() < 1e-9);
        assert_eq!(h1.mem_available_min_bytes, 600);
        assert_eq!((h1.net_rx_bytes, h1.net_tx_bytes), (30, 2));
        let back: LaunchReport = serde_json::from_str(&r.to_json_pretty()).unwrap();
        assert_eq!(back, r);
    }
}
