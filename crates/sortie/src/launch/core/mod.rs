//! The pure core of a launch: every decision, no I/O.
//!
//! [`Core::on`] takes one [`Input`] (a host connected or was lost, a process started, printed
//! its ready or a fail line, exited, a stop script failed, the leftover check answered, a
//! timer fired, an interrupt) and the current instant, and returns the [`Action`]s to perform:
//! start, stop or kill processes, check for leftovers, collect, emit an event. It owns the
//! launch's state (one [`PState`] per process, the hosts, the phase, the timers) and reads no
//! clock and spawns nothing, so the lifecycle is tested as plain logic with a fake clock
//! (`core/tests.rs`). The async driver in [`super::engine`] performs the actions and turns
//! what its tasks report into inputs, as `runner/run/sched.rs` is driven by `runner/run`.
//!
//! Every event the core emits is also folded into the report ([`ReportFold`]) here, so the
//! final verdicts in `launch_finished` come from the same fold as `report.json`.

mod lifecycle;
mod proc;
mod resume;
mod stages;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sortie_events::launch::{
    Ending, ExitInfo, LaunchEvent, Phase, PlannedHost, PlannedProcess, ProcessRef, ThresholdMetric,
    ThresholdSpec, TransferRecord, TransferStep,
};
use sortie_plan::launch::{Plan, Role, Transfer};
use sortie_report::launch::ReportFold;
use tokio::time::Instant;

use super::gate::Gate;
use super::EnvLookup;
use crate::transport::{Command, Exit};
pub(crate) use proc::{Closing, PState, Proc, Running};

/// What happened, as the driver tells the core.
#[derive(Debug)]
pub(crate) enum Input {
    /// The launch begins (the first input).
    Begin,
    /// Host `host` connected (and its uploads went well).
    HostUp { host: usize, elapsed: Duration },
    /// Host `host` could not be connected, or its uploads failed.
    HostFailed { host: usize, message: String },
    /// Host `host`'s connection was lost; its processes keep running there.
    HostDisconnected { host: usize, message: String },
    /// Host `host` is connected again, `elapsed` after the loss.
    HostReconnected { host: usize, elapsed: Duration },
    /// Host `host` stayed unreachable for the whole reconnect window: its processes are lost.
    HostGone { host: usize, message: String },
    /// Plan transfers ended on host `host`.
    Transfers {
        host: usize,
        records: Vec<TransferRecord>,
    },
    /// Attempt `attempt` of process `idx` runs, in process group `pgid`.
    Spawned {
        idx: usize,
        attempt: u32,
        pgid: Option<u32>,
    },
    /// The attempt could not start; `lost` when the connection was lost, `host_up` whether the
    /// host still has a connection.
    SpawnFailed {
        idx: usize,
        attempt: u32,
        error: String,
        lost: Option<String>,
        host_up: bool,
    },
    /// The ready pattern matched.
    Ready { idx: usize, attempt: u32 },
    /// A fail pattern matched `line`.
    FailLine {
        idx: usize,
        attempt: u32,
        pattern: String,
        line: String,
    },
    /// No ready line within the role's timeout.
    ReadyTimeout { idx: usize, attempt: u32 },
    /// The attempt ended; `host_up` whether the host still has a connection.
    Exited {
        idx: usize,
        attempt: u32,
        exit: Exit,
        host_up: bool,
    },
    /// A stop script could not run on a host.
    StopFailed { host: usize, message: String },
    /// A host's leftover check answered (process groups still alive, or why it could not).
    Survivors {
        host: usize,
        result: Result<Vec<u32>, String>,
    },
    /// A resource sample of a host or process group (recorded and folded like any event).
    Sample(Box<LaunchEvent>),
    /// First interrupt: stop.
    Interrupt,
    /// Second interrupt: kill everything at once.
    Escalate,
    /// The progress tick.
    Tick,
    /// The instant of [`Core::wake`] came.
    Timer,
}

/// What the driver must do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Record and send an event.
    Emit(LaunchEvent),
    /// Start attempt `attempt` of process `idx` on host `host`.
    Start {
        idx: usize,
        attempt: u32,
        host: usize,
        command: Command,
        /// Controller values to redact from its log.
        secrets: Vec<String>,
        log: Option<PathBuf>,
    },
    /// Run a stop sequence (`(signal, grace)` steps) on process groups of a host, in the
    /// background; `single` names the one group of a one-process stop.
    Stop {
        host: usize,
        pgids: Vec<u32>,
        steps: Vec<(String, Duration)>,
        single: Option<u32>,
    },
    /// KILL process groups of a host; `wait`: before anything else happens.
    Kill {
        host: usize,
        pgids: Vec<u32>,
        wait: bool,
    },
    /// Check which of these process groups are still alive on a host (answer: `Survivors`;
    /// a host without a connection answers at once with an error).
    Confirm { host: usize, pgids: Vec<u32> },
    /// Run these `[[collect]]`s from a host into `run_dir` (answer: `Transfers`; a host
    /// without a connection answers at once with skipped records).
    Collect {
        host: usize,
        list: Vec<(usize, Transfer)>,
        run_dir: PathBuf,
    },
    /// Close the host's connections (it came up after the run stopped starting).
    Close { host: usize },
    /// Mark the host's connections unusable.
    SetDown { host: usize },
    /// Cancel the running collections.
    CancelCollections,
}

/// What the core knows of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostState {
    Connecting,
    Up,
    /// Connection lost, being dialled again; its processes run on.
    Disconnected,
    Failed(String),
    Lost(String),
}

/// Settings of the launch that are not in the plan.
#[derive(Clone)]
pub(crate) struct Settings {
    pub run_id: String,
    pub run_dir: Option<PathBuf>,
    pub restart_delay: Duration,
    pub stop_patience: Duration,
    pub controller_env: EnvLookup,
}

/// The state of a launch and every decision about it.
pub(crate) struct Core {
    plan: Arc<Plan>,
    roles: Vec<Arc<Role>>,
    role_hosts: Vec<Vec<usize>>,
    hosts: Vec<HostState>,
    host_pgids: Vec<Vec<u32>>,
    procs: Vec<Proc>,
    logs: Vec<Option<PathBuf>>,
    by_id: HashMap<String, usize>,
    gate: Gate,
    settings: Settings,
    t0: Instant,
    wall0: DateTime<Utc>,
    phase: Phase,
    interrupted: bool,
    escalated: bool,
    hold_until: Option<Instant>,
    /// When the scheduler wants to look again (rates, restart delays).
    start_wake: Option<Instant>,
    /// Start instants of the last 5 seconds (for the start rate).
    starts: VecDeque<Instant>,
    stop: StopState,
    collect_waiting: Vec<bool>,
    done: bool,
    /// Rebuilt from a record ([`Core::resume`]): the launch began before.
    resumed: bool,
    /// Per role: the live-process target of its stages now (`None`: no stages).
    targets: Vec<Option<u32>>,
    /// Per role: the stage (or step) it is in.
    stage_of: Vec<Option<usize>>,
    /// Per role with a step load that broke: the target it went back to, and when it broke.
    step_broke: Vec<Option<(u32, Duration)>>,
    /// Thresholds judged during the run, and when to judge them next.
    watch: watch::Watch,
    judge_at: Option<Instant>,
    judged_at: Option<Instant>,
    /// A threshold with `abort = true` failed.
    aborted: bool,
    fold: ReportFold,
    out: Vec<Action>,
}

/// The stop, the leftover check and their timers.
#[derive(Default)]
struct StopState {
    /// The role being stopped (dependents first), counting down.
    role: Option<usize>,
    deadline: Option<Instant>,
    confirm_waiting: Vec<bool>,
    confirm_deadline: Option<Instant>,
    hosts_checked: usize,
    unchecked: Vec<String>,
    survivors: Vec<(String, u32)>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Core {
    /// The core of a launch of `plan`, beginning at `now` (wall clock `wall0`).
    pub(crate) fn new(plan: Plan, settings: Settings, now: Instant, wall0: DateTime<Utc>) -> Self {
        let roles: Vec<Arc<Role>> = plan.roles.iter().cloned().map(Arc::new).collect();
        let host_idx: HashMap<&str, usize> = (plan.hosts.iter().enumerate())
            .map(|(i, h)| (h.label.as_str(), i))
            .collect();
        let role_idx: HashMap<&str, usize> = (roles.iter().enumerate())
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let mut role_hosts: Vec<Vec<usize>> = roles.iter().map(|r| plan.role_hosts(r)).collect();
        let mut procs = Vec::with_capacity(plan.processes.len());
        let mut logs = Vec::with_capacity(plan.processes.len());
        let mut by_id = HashMap::new();
        for (i, s) in plan.processes.iter().enumerate() {
            let role = role_idx[s.role.as_str()];
            let host = host_idx[s.host.as_str()];
            if !role_hosts[role].contains(&host) {
                role_hosts[role].push(host);
            }
            by_id.insert(s.id.0.clone(), i);
            logs.push(settings.run_dir.as_ref().map(|d| log_path(d, s)));
            procs.push(Proc {
                role,
                host,
                attempt: 0,
                restarts: 0,
                state: PState::Pending { not_before: now },
            });
        }
        let gate = Gate::new(
            (roles.iter())
                .map(|r| (r.rate.map(|x| x.interval()), r.min_spacing_per_key))
                .collect(),
            plan.run.rate.map(|x| x.interval()),
            plan.run.max_starting.map(|m| m as usize),
        );
        let n_hosts = plan.hosts.len();
        let n_roles = roles.len();
        let fold = ReportFold::new(&settings.run_id);
        let n_thresholds = plan.thresholds.len();
        Core {
            plan: Arc::new(plan),
            roles,
            role_hosts,
            hosts: vec![HostState::Connecting; n_hosts],
            host_pgids: vec![Vec::new(); n_hosts],
            procs,
            logs,
            by_id,
            gate,
            settings,
            t0: now,
            wall0,
            phase: Phase::Starting,
            interrupted: false,
            escalated: false,
            hold_until: None,
            start_wake: None,
            starts: VecDeque::new(),
            stop: StopState {
                confirm_waiting: vec![false; n_hosts],
                ..StopState::default()
            },
            collect_waiting: vec![false; n_hosts],
            done: false,
            resumed: false,
            targets: vec![None; n_roles],
            stage_of: vec![None; n_roles],
            step_broke: vec![None; n_roles],
            watch: watch::Watch::new(n_thresholds),
            judge_at: None,
            judged_at: None,
            aborted: false,
            fold,
            out: Vec::new(),
        }
    }

    /// The plan.
    pub(crate) fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The current phase.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Time left until the hold ends, once holding with a duration.
    pub(crate) fn hold_left(&self, now: Instant) -> Option<Duration> {
        self.hold_until.map(|t| t.saturating_duration_since(now))
    }

    /// Records that the controller detaches now.
    pub(crate) fn detach(&mut self, now: Instant) -> Vec<Action> {
        let hold_ms = self.hold_left(now).map_or(0, ms);
        let at_ms = self.at(now);
        self.emit(LaunchEvent::LaunchDetached { hold_ms, at_ms });
        std::mem::take(&mut self.out)
    }

    /// Whether the launch is over (the driver then closes connections and calls
    /// [`Core::finish`]).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The role of process `idx`.
    pub(crate) fn role_of(&self, idx: usize) -> Arc<Role> {
        self.roles[self.procs[idx].role].clone()
    }

    /// Process `idx` as events name it.
    pub(crate) fn process_ref(&self, idx: usize) -> ProcessRef {
        self.pref(idx)
    }

    /// The instant the launch began (`at_ms` zero).
    pub(crate) fn started(&self) -> Instant {
        self.t0
    }

    /// The index of process `idx`'s role.
    pub(crate) fn role_index_of(&self, idx: usize) -> usize {
        self.procs[idx].role
    }

    /// The host process `idx` is on now.
    pub(crate) fn host_of(&self, idx: usize) -> usize {
        self.procs[idx].host
    }

    /// Whether the first interrupt was taken into account.
    pub(crate) fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// Whether the second interrupt was taken into account.
    pub(crate) fn escalated(&self) -> bool {
        self.escalated
    }

    /// The next instant at which the core wants a [`Input::Timer`].
    pub(crate) fn wake(&self) -> Option<Instant> {
        [
            self.start_wake,
            self.hold_until,
            self.stop.deadline,
            self.stop.confirm_deadline,
            self.judge_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The report folded from every event so far.
    pub(crate) fn report(&self) -> sortie_report::launch::LaunchReport {
        self.fold.report()
    }

    /// Takes `input` into account at `now`; returns what to do, in order.
    pub(crate) fn on(&mut self, input: Input, now: Instant) -> Vec<Action> {
        if !self.done {
            self.handle(input, now);
            self.settle(now);
        }
        std::mem::take(&mut self.out)
    }

    /// The last event, once [`Core::is_done`] (and the driver closed the connections).
    pub(crate) fn finish(&mut self, now: Instant) -> Vec<Action> {
        self.phase = Phase::Done;
        let thresholds_passed = self.fold.report().thresholds_passed;
        let roles = self.counts();
        self.emit(LaunchEvent::LaunchFinished {
            interrupted: self.interrupted,
            thresholds_passed,
            elapsed_ms: self.at(now),
            finished_at: self.wall(now),
            roles,
        });
        std::mem::take(&mut self.out)
    }

    /// Starts what may start and moves the lifecycle on until nothing changes.
    fn settle(&mut self, now: Instant) {
        self.judge(now);
        loop {
            let stage_wake = self.update_targets(now);
            self.scale_down();
            self.start_wake = match (self.schedule(now), stage_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let phase = self.phase;
            if self.advance(now) {
                self.done = true;
                return;
            }
            if self.phase == phase {
                return;
            }
        }
    }

    fn at(&self, now: Instant) -> u64 {
        ms(now.saturating_duration_since(self.t0))
    }

    fn wall(&self, now: Instant) -> String {
        let since =
            chrono::Duration::from_std(now.saturating_duration_since(self.t0)).unwrap_or_default();
        (self.wall0 + since)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }

    fn emit(&mut self, ev: LaunchEvent) {
        self.fold.apply(&ev);
        self.watch.apply(&ev);
        self.out.push(Action::Emit(ev));
    }

    fn pref(&self, i: usize) -> ProcessRef {
        let s = &self.plan.processes[i];
        ProcessRef {
            id: s.id.0.clone(),
            role: s.role.clone(),
            key: s.key.clone(),
            host: self.plan.hosts[self.procs[i].host].label.clone(),
        }
    }

    fn label(&self, host: usize) -> String {
        self.plan.hosts[host].label.clone()
    }

    fn set_phase(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        let at_ms = self.at(now);
        self.emit(LaunchEvent::PhaseChanged { phase, at_ms });
        self.progress(now);
    }

    /// The first event: the placed plan as reporters need it.
    fn started_event(&self) -> LaunchEvent {
        let plan = &self.plan;
        LaunchEvent::LaunchStarted {
            plan: plan.name.clone(),
            digest: plan.digest.clone(),
            plan_path: plan.path.display().to_string(),
            overrides: plan.overrides.clone(),
            run_dir: (self.settings.run_dir.as_ref()).map(|d| d.display().to_string()),
            started_at: self.wall(self.t0),
            processes: plan.processes.len(),
            hosts: plan.hosts.len(),
            roles: self.roles.iter().map(|r| r.name.clone()).collect(),
            duration_ms: plan.run.duration.map(ms),
            host_list: (plan.hosts.iter())
                .map(|h| PlannedHost {
                    host: h.label.clone(),
                    group: h.group.clone(),
                })
                .collect(),
            process_list: (plan.processes.iter().zip(&self.logs))
                .map(|(s, log)| PlannedProcess {
                    id: s.id.0.clone(),
                    role: s.role.clone(),
                    key: s.key.clone(),
                    host: s.host.clone(),
                    log: log.as_ref().map(|l| l.display().to_string()),
                })
                .collect(),
            thresholds: plan.thresholds.iter().map(threshold_spec).collect(),
        }
    }

    /// Whether `attempt` is the current attempt of `i`, which has not ended.
    fn current(&self, i: usize, attempt: u32) -> bool {
        self.procs[i].attempt == attempt && !self.procs[i].is_done()
    }

    /// Whether attempt `attempt` of `i` runs and is not on its way out.
    fn running(&self, i: usize, attempt: u32) -> bool {
        self.current(i, attempt) && self.procs[i].running().is_some_and(|r| !r.closing())
    }

    /// Whether attempt `attempt` of `i` is starting (not ready) and not on its way out.
    fn starting(&self, i: usize, attempt: u32) -> bool {
        self.current(i, attempt)
            && matches!(&self.procs[i].state, PState::Starting(r) if !r.closing())
    }

    fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Begin if self.resumed => {
                let at_ms = self.at(now);
                self.emit(LaunchEvent::LaunchAttached { at_ms });
            }
            Input::Begin => {
                let started = self.started_event();
                self.emit(started);
                self.set_phase(Phase::Starting, now);
            }
            Input::HostUp { host, elapsed } => {
                self.hosts[host] = HostState::Up;
                let label = self.label(host);
                self.emit(LaunchEvent::HostConnected {
                    host: label,
                    elapsed_ms: ms(elapsed),
                });
                if !matches!(self.phase, Phase::Starting | Phase::Holding) {
                    self.out.push(Action::Close { host });
                }
            }
            Input::HostFailed { host, message } => {
                self.hosts[host] = HostState::Failed(message.clone());
                let label = self.label(host);
                self.emit(LaunchEvent::HostFailed {
                    host: label,
                    message,
                });
            }
            Input::HostDisconnected { host, message } => {
                if self.hosts[host] == HostState::Up {
                    self.hosts[host] = HostState::Disconnected;
                }
                let (label, at_ms) = (self.label(host), self.at(now));
                self.emit(LaunchEvent::HostDisconnected {
                    host: label,
                    message,
                    at_ms,
                });
            }
            Input::HostReconnected { host, elapsed } => {
                if self.hosts[host] == HostState::Disconnected {
                    self.hosts[host] = HostState::Up;
                }
                let (label, at_ms) = (self.label(host), self.at(now));
                self.emit(LaunchEvent::HostReconnected {
                    host: label,
                    after_ms: ms(elapsed),
                    at_ms,
                });
            }
            Input::HostGone { host, message } => self.host_gone(host, message, now),
            Input::Transfers { host, records } => {
                for r in records {
                    if r.step == TransferStep::Collect {
                        self.collect_waiting[host] = false;
                    }
                    self.emit(LaunchEvent::TransferFinished { transfer: r });
                }
            }
            Input::StopFailed { host, message } => {
                let label = self.label(host);
                tracing::warn!("{label}: {message}");
                self.emit(LaunchEvent::StopFailed {
                    host: label,
                    message,
                });
            }
            Input::Survivors { host, result } => self.survivors(host, result),
            Input::Sample(ev) => self.emit(*ev),
            Input::Interrupt => self.interrupt(now),
            Input::Escalate => self.escalate(now),
            Input::Tick => self.progress(now),
            Input::Timer => {}
            other => self.process_input(other, now),
        }
    }

    /// Inputs about one attempt of one process; those about an earlier attempt are stale.
    fn process_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Spawned { idx, attempt, pgid } if self.current(idx, attempt) => {
                self.spawned(idx, pgid, now)
            }
            Input::SpawnFailed {
                idx,
                attempt,
                error,
                lost,
                host_up,
            } if self.current(idx, attempt) => self.spawn_failed(idx, error, lost, host_up, now),
            Input::Ready { idx, attempt } if self.starting(idx, attempt) => {
                self.mark_ready(idx, now)
            }
            Input::FailLine {
                idx,
                attempt,
                pattern,
                line,
            } if self.running(idx, attempt) => {
                self.fail(idx, Ending::Failed { pattern, line }, now);
                self.stop_one(idx);
            }
            Input::ReadyTimeout { idx, attempt } if self.starting(idx, attempt) => {
                let role = self.procs[idx].role;
                let timeout_ms = ms(self.roles[role].ready_timeout);
                self.fail(idx, Ending::ReadyTimeout { timeout_ms }, now);
                self.stop_one(idx);
            }
            Input::Exited {
                idx,
                attempt,
                exit,
                host_up,
            } if self.current(idx, attempt) => self.exited(idx, exit, host_up, now),
            _ => {}
        }
    }

    fn spawned(&mut self, idx: usize, pgid: Option<u32>, now: Instant) {
        let host = self.procs[idx].host;
        if let Some(r) = self.procs[idx].running_mut() {
            r.pgid = pgid;
        }
        if let Some(g) = pgid {
            self.host_pgids[host].push(g);
        }
        let process = self.pref(idx);
        let at_ms = self.at(now);
        self.emit(LaunchEvent::ProcessStarted {
            process,
            pgid,
            at_ms,
        });
        if self.roles[self.procs[idx].role].ready.is_none() {
            self.mark_ready(idx, now);
        }
        let stopping = !matches!(self.phase, Phase::Starting | Phase::Holding);
        let requested = self.procs[idx]
            .running()
            .is_some_and(|r| matches!(r.closing, Some(Closing::Stopping)));
        if requested || stopping {
            self.stop_one(idx);
        }
    }

    fn spawn_failed(
        &mut self,
        idx: usize,
        error: String,
        lost: Option<String>,
        host_up: bool,
        now: Instant,
    ) {
        let host = self.procs[idx].host;
        if let Some(m) = lost {
            if !host_up {
                self.host_lost(host, m);
            }
        }
        let reason = format!("could not start: {error}");
        self.procs[idx].state = PState::Pending { not_before: now };
        let will_restart = self.may_restart(idx);
        let process = self.pref(idx);
        let at_ms = self.at(now);
        self.emit(LaunchEvent::ProcessStartFailed {
            process,
            error,
            will_restart,
            at_ms,
        });
        if will_restart {
            self.restarting(idx, now);
            self.procs[idx].state = PState::Pending {
                not_before: now + self.settings.restart_delay,
            };
            if !matches!(self.hosts[host], HostState::Up) {
                self.move_or_never(idx, &reason);
            }
        } else {
            self.never(idx, reason);
        }
    }

    fn mark_ready(&mut self, i: usize, now: Instant) {
        let PState::Starting(r) = &self.procs[i].state else {
            return;
        };
        let r = r.clone();
        let ttr = now.saturating_duration_since(r.started);
        self.procs[i].state = PState::Ready(r);
        let process = self.pref(i);
        let at_ms = self.at(now);
        self.emit(LaunchEvent::ProcessReady {
            process,
            time_to_ready_ms: ms(ttr),
            at_ms,
            ready_at: Some(self.wall(now)),
        });
    }

    fn fail(&mut self, i: usize, ending: Ending, now: Instant) {
        let will_restart = self.may_restart(i);
        if let Some(r) = self.procs[i].running_mut() {
            r.closing = Some(Closing::Failed(ending.clone()));
        }
        let process = self.pref(i);
        let at_ms = self.at(now);
        self.emit(LaunchEvent::ProcessFailed {
            process,
            ending,
            will_restart,
            at_ms,
        });
    }

    fn host_lost(&mut self, host: usize, message: String) {
        if matches!(self.hosts[host], HostState::Lost(_)) {
            return;
        }
        self.out.push(Action::SetDown { host });
        self.hosts[host] = HostState::Lost(message.clone());
        let label = self.label(host);
        self.emit(LaunchEvent::HostLost {
            host: label,
            message,
        });
    }

    /// The reconnect window passed: the host is lost, and so is every process that ran there.
    fn host_gone(&mut self, host: usize, message: String, now: Instant) {
        self.host_lost(host, message.clone());
        for i in 0..self.procs.len() {
            if self.procs[i].host == host && self.procs[i].is_alive() {
                self.exited(i, Exit::Lost(message.clone()), false, now);
            }
        }
    }

    fn exited(&mut self, i: usize, exit: Exit, host_up: bool, now: Instant) {
        let info = ExitInfo::from(&exit);
        let host = self.procs[i].host;
        let at_ms = self.at(now);
        if let Exit::Lost(m) = &exit {
            let process = self.pref(i);
            self.emit(LaunchEvent::ProcessLost {
                process,
                message: m.clone(),
                at_ms,
            });
            if !host_up {
                self.host_lost(host, m.clone());
            }
            if self.procs[i].running().is_some_and(|r| !r.closing()) {
                self.fail(i, Ending::Lost { message: m.clone() }, now);
            }
        }
        let process = self.pref(i);
        self.emit(LaunchEvent::ProcessExited {
            process: process.clone(),
            exit: info.clone(),
            at_ms,
        });
        let closing = self.procs[i].running().and_then(|r| r.closing.clone());
        let failure = match closing {
            Some(Closing::Failed(e)) => e,
            Some(Closing::Stopping) => {
                let ending = self.procs[i].stopped_ending().expect("running");
                self.procs[i].state = PState::Done { ending };
                self.emit(LaunchEvent::ProcessStopped {
                    process,
                    exit: info,
                    at_ms,
                });
                return;
            }
            None => {
                let (code, signal) = match &exit {
                    Exit::Code(c) => (Some(*c), None),
                    Exit::Signal { name, .. } => (None, Some(name.clone())),
                    _ => (None, None),
                };
                let ending = Ending::ExitedEarly { code, signal };
                self.fail(i, ending.clone(), now);
                ending
            }
        };
        // A failure: restart when allowed, else it is how the process ended.
        if self.may_restart(i) {
            self.restarting(i, now);
            self.procs[i].state = PState::Pending {
                not_before: now + self.settings.restart_delay,
            };
            if !matches!(self.hosts[self.procs[i].host], HostState::Up) {
                self.move_or_never(i, "host unavailable");
            }
        } else {
            self.procs[i].state = PState::Done { ending: failure };
        }
    }

    /// Counts a restart of process `i` and says so.
    fn restarting(&mut self, i: usize, now: Instant) {
        self.procs[i].restarts += 1;
        let restarts = self.procs[i].restarts;
        let process = self.pref(i);
        let at_ms = self.at(now);
        self.emit(LaunchEvent::ProcessRestarting {
            process,
            restarts,
            at_ms,
        });
    }

    fn survivors(&mut self, host: usize, result: Result<Vec<u32>, String>) {
        self.stop.confirm_waiting[host] = false;
        let label = self.label(host);
        match result {
            Ok(list) if !list.is_empty() => {
                for g in &list {
                    self.stop.survivors.push((label.clone(), *g));
                }
                self.out.push(Action::Kill {
                    host,
                    pgids: list,
                    wait: true,
                });
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("survivor check on {label} failed: {e}");
                self.stop.unchecked.push(label);
                self.stop.hosts_checked -= 1;
            }
        }
    }
}

/// The transfers of `list` (an `[[upload]]` or `[[collect]]` list of `plan`) each host runs,
/// by host index, each with its position in the list, in plan order.
pub(crate) fn by_host(plan: &Plan, list: &[Transfer]) -> Vec<Vec<(usize, Transfer)>> {
    let mut out = vec![Vec::new(); plan.hosts.len()];
    for (index, t) in list.iter().enumerate() {
        for h in plan.transfer_hosts(t) {
            out[h].push((index, t.clone()));
        }
    }
    out
}

/// `<run-dir>/logs/<role>/<key>@<host>.log` (`/` in names as `_`).
fn log_path(dir: &std::path::Path, s: &sortie_plan::launch::ProcessSpec) -> PathBuf {
    let key =
        s.id.0
            .split_once('/')
            .map_or(s.key.as_str(), |(_, k)| k)
            .replace('/', "_");
    dir.join("logs")
        .join(&s.role)
        .join(format!("{key}@{}.log", s.host.replace('/', "_")))
}

/// A plan threshold as the run record carries it.
fn threshold_spec(t: &sortie_plan::launch::Threshold) -> ThresholdSpec {
    use sortie_plan::launch::{Bound, Metric};
    let (mut min, mut max) = (None, None);
    for b in &t.bounds {
        match b {
            Bound::Min(v) => min = Some(*v),
            Bound::Max(v) => max = Some(*v),
        }
    }
    ThresholdSpec {
        metric: match t.metric {
            Metric::ReadyRatio => ThresholdMetric::ReadyRatio,
            Metric::TimeToReady { percentile } => ThresholdMetric::TimeToReady { percentile },
            Metric::Failed => ThresholdMetric::Failed,
            Metric::Restarts => ThresholdMetric::Restarts,
        },
        role: t.role.clone(),
        min,
        max,
        window_ms: t.window.map(ms),
        abort: t.abort,
    }
}
