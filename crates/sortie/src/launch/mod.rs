//! `launch`: runs a placed plan's fleet of long-lived processes through its whole lifecycle.
//!
//! Connect (one connection per host, more only when a server refuses channels; bounded by a
//! fan-out), run the plan's `[[upload]]`s on each host before its first process, start
//! processes at the plan's rates with dependencies honoured (a viewer of channel X only after
//! master X printed its ready line), watch ready and fail patterns line by line and unexpected
//! exits, hold for the plan's duration once every process settled (or until interrupted), stop
//! dependents before what they depend on with each role's stop sequence, check that no process
//! group is left on any host, then run the plan's `[[collect]]`s into the run directory. A lost
//! connection marks its processes lost and, when the role's restart policy allows, places them
//! on another host of the role.
//!
//! The plan comes validated and placed from [`sortie_plan::launch`]; hosts come as transport
//! [`Target`]s (the CLI resolves them with `sortie-inventory`). The launch emits an ordered
//! stream of [`LaunchEvent`]s and, with a run directory, records each one as it happens to
//! `<run-dir>/events.jsonl` (the run record, see [`sortie_report::launch`]), writes each
//! process's output to `<run-dir>/logs/<role>/<key>@<host>.log` and, at the end,
//! `<run-dir>/report.json`, a fold over the events. It knows nothing about terminals: the
//! reporters in [`sortie_report::launch`] turn events into text.
//!
//! Cancellation: cancelling the `cancel` token (first Ctrl-C) goes straight to the stop phase;
//! cancelling [`LaunchHandle::escalate`] (second Ctrl-C) sends KILL to every process at once.
//!
//! Secrets: values of `env_from_controller` variables travel only inside the command sent to
//! the host; no event, log line or report holds them (log lines that echo one are redacted).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sortie::launch::{launch, LaunchOptions};
//! use sortie::transport::{local::LocalTransport, Target};
//!
//! let spec = sortie_plan::launch::load("plan.toml".as_ref(), &[])?;
//! let plan = spec.place(&Default::default())?;
//! let targets: Vec<Target> = Vec::new(); // one per plan host, from the inventory layer
//! let cancel = sortie::CancellationToken::new();
//! let mut handle = launch(Arc::new(LocalTransport), plan, targets, LaunchOptions::default(), cancel)?;
//! while let Some(ev) = handle.events.recv().await {
//!     println!("{}", ev.to_json());
//! }
//! let result = handle.result.await?;
//! assert!(result.thresholds_passed);
//! # Ok(()) }
//! ```

mod core;
mod engine;
pub mod event;
mod follow;
mod gate;
mod hostside;
mod process;
mod sampler;
mod shell;
mod stage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sortie_plan::launch::Plan;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runner::pool::{HostPool, Quiet, MAX_CONNECTIONS};
use crate::transport::{Target, Transport};
use sortie_report::launch::EventLog;

pub use event::{Ending, ExitInfo, LaunchEvent, LaunchRecord, Phase, ProcessRef, RoleCounts};
pub use sortie_report::launch::{
    render_notable, render_status, render_summary, short_duration, HostReport, LaunchReport,
    Percentiles, ProcessReport, RoleSummary, StopCheck, ThresholdResult,
};
pub use stage::{TransferOutcome, TransferRecord, TransferStep};

/// Capacity of the event and message queues.
pub(crate) const QUEUE: usize = 4096;

/// Reads a variable of the controller's environment (for `env_from_controller`).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Options of a launch that are not in the plan.
#[derive(Clone)]
pub struct LaunchOptions {
    /// The run's id, in every record line (default: a new [`new_run_id`]).
    pub run_id: String,
    /// Where `events.jsonl`, logs and `report.json` go; `None` writes no file.
    pub run_dir: Option<PathBuf>,
    /// Connections being opened at once, over all hosts.
    pub fanout: usize,
    /// Interval of [`LaunchEvent::Progress`].
    pub progress_interval: Duration,
    /// Pause before a failed process is started again.
    pub restart_delay: Duration,
    /// How long, beyond a role's stop graces, to wait for exits before giving up on them; also
    /// bounds the leftover-process check.
    pub stop_patience: Duration,
    /// The controller's environment, for `env_from_controller` (default: the process's own).
    pub controller_env: EnvLookup,
    /// Base of the hosts' remote directories (`<base>/<run-id>/`); `None`: the plan's
    /// `[run] remote_dir`, else `~/.sortie-runs`.
    pub remote_dir: Option<String>,
    /// How long a lost host is dialled again before its processes count as lost; `None`: the
    /// plan's `[run] reconnect_window`, else 60 s.
    pub reconnect_window: Option<Duration>,
    /// How long the hosts' watchdogs let the fleet run without a renewal; `None`: the plan's
    /// `[run] lease`, else the reconnect window plus 30 s.
    pub lease: Option<Duration>,
    /// Keep the hosts' remote directories (the processes' raw output) after the run.
    pub keep_remote_dir: bool,
    /// Detach once every process settled: the hosts' watchdogs hold the fleet for the rest of
    /// the plan's duration and stop it; the launch ends without stopping anything.
    pub detach: bool,
    /// Take over a detached (or orphaned) run: its record so far (`events.jsonl`); the run
    /// directory and run id must be the run's own. The launch appends to the record.
    pub attach: Option<Vec<LaunchEvent>>,
    /// With `attach`: end the hold at once and stop the fleet (`sortie stop`).
    pub stop_now: bool,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            run_id: new_run_id(),
            run_dir: None,
            fanout: 64,
            progress_interval: Duration::from_millis(500),
            restart_delay: Duration::from_secs(1),
            stop_patience: Duration::from_secs(15),
            controller_env: Arc::new(|k| std::env::var(k).ok()),
            remote_dir: None,
            reconnect_window: None,
            lease: None,
            keep_remote_dir: false,
            detach: false,
            attach: None,
            stop_now: false,
        }
    }
}

impl std::fmt::Debug for LaunchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchOptions")
            .field("run_id", &self.run_id)
            .field("run_dir", &self.run_dir)
            .field("fanout", &self.fanout)
            .field("progress_interval", &self.progress_interval)
            .field("restart_delay", &self.restart_delay)
            .field("stop_patience", &self.stop_patience)
            .finish_non_exhaustive()
    }
}

/// A launch in progress.
pub struct LaunchHandle {
    /// The run's id (as in [`LaunchOptions::run_id`]).
    pub run_id: String,
    /// Events in order; ends after [`LaunchEvent::LaunchFinished`].
    pub events: mpsc::Receiver<LaunchEvent>,
    /// Resolves once the launch ended.
    pub result: JoinHandle<LaunchResult>,
    /// Cancel it to KILL every process at once (the second Ctrl-C); implies `cancel`.
    pub escalate: CancellationToken,
}

/// The end of a launch.
#[derive(Clone, Debug)]
pub struct LaunchResult {
    /// Whether it was interrupted.
    pub interrupted: bool,
    /// Whether every threshold held (true without thresholds).
    pub thresholds_passed: bool,
    /// Whether the launch detached (the fleet runs on under the hosts' watchdogs).
    pub detached: bool,
    /// The report.
    pub report: LaunchReport,
    /// Where `report.json` was written.
    pub report_path: Option<PathBuf>,
}

/// Why a launch could not begin.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LaunchError {
    /// A host of the plan has no target.
    #[error("host {host} of the plan has no connection target")]
    #[diagnostic(
        code(sortie::launch::no_target),
        help("pass one Target per plan host (Plan::hosts), labelled like the host")
    )]
    MissingTarget {
        /// The host label.
        host: String,
    },
    /// The run directory cannot be created.
    #[error("cannot create the run directory {}: {source}", path.display())]
    #[diagnostic(
        code(sortie::launch::run_dir),
        help("choose another directory with --run-dir, or fix its permissions")
    )]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Starts the launch of `plan` on `targets` (one per [`Plan::hosts`] entry, matched by label).
/// Must be called within a Tokio runtime.
pub fn launch(
    transport: Arc<dyn Transport>,
    plan: Plan,
    targets: Vec<Target>,
    options: LaunchOptions,
    cancel: CancellationToken,
) -> Result<LaunchHandle, LaunchError> {
    let mut by_label: HashMap<String, Target> =
        targets.into_iter().map(|t| (t.label.clone(), t)).collect();
    let fanout = Arc::new(Semaphore::new(options.fanout.max(1)));
    let mut pools = Vec::with_capacity(plan.hosts.len());
    for (i, h) in plan.hosts.iter().enumerate() {
        let target = by_label
            .remove(&h.label)
            .ok_or_else(|| LaunchError::MissingTarget {
                host: h.label.clone(),
            })?;
        // Quiet: a launch reports its hosts with its own events (`HostUp`, `HostFailed`).
        let pool = HostPool::new(
            i,
            target,
            transport.clone(),
            fanout.clone(),
            Box::new(Quiet),
        );
        pools.push(Arc::new(pool.with_max_connections(MAX_CONNECTIONS)));
    }
    if let Some(dir) = &options.run_dir {
        std::fs::create_dir_all(dir.join("logs")).map_err(|source| LaunchError::RunDir {
            path: dir.clone(),
            source,
        })?;
    }
    let log = match &options.run_dir {
        Some(dir) => {
            let log = match options.attach {
                Some(_) => EventLog::append(dir, &options.run_id),
                None => EventLog::create(dir, &options.run_id),
            };
            Some(log.map_err(|source| LaunchError::RunDir {
                path: dir.clone(),
                source,
            })?)
        }
        None => None,
    };
    let (out, events) = mpsc::channel(QUEUE);
    let escalate = CancellationToken::new();
    let run_id = options.run_id.clone();
    let side = host_side(&plan, &options);
    let engine = engine::Engine::new(
        plan,
        pools,
        options,
        (cancel, escalate.clone()),
        out,
        log,
        side,
    );
    let result = tokio::spawn(engine.run());
    Ok(LaunchHandle {
        run_id,
        events,
        result,
        escalate,
    })
}

/// The defaults of reconnecting and of the lease.
pub const DEFAULT_RECONNECT_WINDOW: Duration = Duration::from_secs(60);
/// What the lease adds to the reconnect window by default.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Where the hosts keep the run, and for how long they trust the controller.
fn host_side(plan: &Plan, options: &LaunchOptions) -> engine::HostSide {
    let base = (options.remote_dir.clone())
        .or_else(|| plan.run.remote_dir.clone())
        .unwrap_or_else(|| hostside::DEFAULT_BASE.to_string());
    let reconnect_window = (options.reconnect_window)
        .or(plan.run.reconnect_window)
        .unwrap_or(DEFAULT_RECONNECT_WINDOW);
    let lease = (options.lease.or(plan.run.lease)).unwrap_or(reconnect_window + LEASE_MARGIN);
    engine::HostSide {
        dir: hostside::dir_word(&base, &options.run_id),
        lease: lease.max(Duration::from_secs(2)),
        reconnect_window,
        keep: options.keep_remote_dir,
    }
}

/// A new run id: local time to the millisecond and a random part, `20260501-120000.123-3f9a0c`.
/// It names the run directory (the plan's `{timestamp}`), so two launches of a plan in the
/// same second (or millisecond) get different directories.
pub fn new_run_id() -> String {
    format!(
        "{}-{:06x}",
        chrono::Local::now().format("%Y%m%d-%H%M%S%.3f"),
        fastrand::u32(..1 << 24)
    )
}

/// What a host says of one process of a run (its latest attempt there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteProcess {
    /// The process id (`role/key`, as in the plan).
    pub id: String,
    /// Its role.
    pub role: String,
    /// Its latest attempt on this host.
    pub attempt: u32,
    /// Where it is.
    pub state: RemoteState,
}

/// Where a process is, as its host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteState {
    /// Its supervisor runs, in this process group.
    Running(u32),
    /// It ended with this status (`STATUS [SIGNAL]`).
    Exited(String),
    /// Its supervisor is gone without an exit status (killed).
    Killed,
}

/// What one host says of a run (`sortie status`).
#[derive(Clone, Debug)]
pub struct HostStatus {
    /// The host.
    pub host: String,
    /// Why it could not answer.
    pub error: Option<String>,
    /// Its processes.
    pub processes: Vec<RemoteProcess>,
    /// Whether its watchdog stopped the fleet: `expired` (no renewal within the lease) or
    /// `finished` (a detached run's end came).
    pub watchdog: Option<String>,
}

/// Asks every host of `plan` where the processes of run `run_id` are now, from the run's
/// remote directories (no controller needed).
pub async fn status(
    transport: Arc<dyn Transport>,
    plan: &Plan,
    targets: Vec<Target>,
    run_id: &str,
    remote_dir: Option<&str>,
) -> Vec<HostStatus> {
    let base = (remote_dir.map(str::to_string))
        .or_else(|| plan.run.remote_dir.clone())
        .unwrap_or_else(|| hostside::DEFAULT_BASE.to_string());
    let script = hostside::status_script(&hostside::dir_word(&base, run_id));
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|t| {
            let (transport, script) = (transport.clone(), script.clone());
            tokio::spawn(async move {
                let label = t.label.clone();
                let out = async {
                    let conn = transport.connect(&t).await.map_err(|e| e.message)?;
                    let pool_out = run_script(&conn, script).await;
                    conn.close().await;
                    pool_out
                }
                .await;
                (label, out)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        let Ok((host, result)) = t.await else {
            continue;
        };
        out.push(host_status(plan, host, result));
    }
    // Hosts that share a remote directory (the local transport's "hosts", a shared home)
    // each see every process: count each once, at its latest attempt.
    let mut best: HashMap<String, (usize, u32)> = HashMap::new();
    for (h, st) in out.iter().enumerate() {
        for p in &st.processes {
            if best.get(&p.id).is_none_or(|b| b.1 < p.attempt) {
                best.insert(p.id.clone(), (h, p.attempt));
            }
        }
    }
    for (h, st) in out.iter_mut().enumerate() {
        st.processes
            .retain(|p| best.get(&p.id) == Some(&(h, p.attempt)));
    }
    out
}

async fn run_script(
    conn: &Arc<dyn crate::transport::Connection>,
    script: String,
) -> Result<String, String> {
    let p = conn
        .spawn(&crate::transport::Command::new(script))
        .await
        .map_err(|e| e.to_string())?;
    crate::runner::pool::stdout_of(p)
        .await
        .map_err(|e| match e {
            crate::transport::SpawnError::Lost(m) => m,
            e => e.to_string(),
        })
}

fn host_status(plan: &Plan, host: String, result: Result<String, String>) -> HostStatus {
    let mut st = HostStatus {
        host,
        error: None,
        processes: Vec::new(),
        watchdog: None,
    };
    let text = match result {
        Ok(t) => t,
        Err(e) => {
            st.error = Some(e);
            return st;
        }
    };
    let mut latest: HashMap<usize, RemoteProcess> = HashMap::new();
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("\u{2}E ") {
            st.error = Some(e.to_string());
            continue;
        }
        let mut w = line.splitn(3, ' ');
        let (Some(dir), Some(kind)) = (w.next(), w.next()) else {
            continue;
        };
        if dir == "watchdog" {
            st.watchdog = Some(kind.to_string());
            continue;
        }
        let Some((_, idx, attempt)) = hostside::parse_proc_dir(dir) else {
            continue;
        };
        let Some(spec) = plan.processes.get(idx) else {
            continue;
        };
        let rest = w.next().unwrap_or("").trim();
        let state = match kind {
            "alive" => RemoteState::Running(rest.parse().unwrap_or(0)),
            "exit" => RemoteState::Exited(rest.to_string()),
            _ => RemoteState::Killed,
        };
        let p = RemoteProcess {
            id: spec.id.0.clone(),
            role: spec.role.clone(),
            attempt,
            state,
        };
        if latest.get(&idx).is_none_or(|q| q.attempt < attempt) {
            latest.insert(idx, p);
        }
    }
    let mut procs: Vec<(usize, RemoteProcess)> = latest.into_iter().collect();
    procs.sort_by_key(|(i, _)| *i);
    st.processes = procs.into_iter().map(|(_, p)| p).collect();
    st
}
