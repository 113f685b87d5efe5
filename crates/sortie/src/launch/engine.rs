//! The coordinator of a launch: the one owner of its state.
//!
//! Host tasks (connect) and process tasks (one per attempt, see [`super::process`]) send
//! [`Msg`]s here; the coordinator `select!`s over them, the interrupt tokens, the start timer,
//! the hold timer and the progress tick. It decides everything: which process starts when
//! (dependencies, hosts, [`Gate`]), when the run holds and stops, which process is restarted
//! or moved, and how each one ended. It emits [`LaunchEvent`]s; each one is recorded to the
//! run's `events.jsonl` and folded into the report ([`ReportFold`]) as it is emitted, so the
//! report never comes from the engine's own state.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sortie_plan::launch::{DependsOn, EnvValue, Plan, RestartPolicy, Role, Transfer};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use sortie_report::launch::{EventLog, ReportFold};

use super::event::{
    Ending, ExitInfo, LaunchEvent, Phase, PlannedHost, PlannedProcess, ProcessRef, RoleCounts,
    ThresholdMetric, ThresholdSpec,
};
use super::gate::Gate;
use super::hosts::HostPool;
use super::process::{self, Attempt, Msg};
use super::shell;
use super::stage::{self, TransferRecord, TransferStep};
use super::{LaunchOptions, LaunchResult};
use crate::transport::{Command, Exit, SpawnError};

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostState {
    Connecting,
    Up,
    Failed(String),
    Lost(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Pending,
    Starting,
    Ready,
    Done,
}

struct P {
    role: usize,
    host: usize,
    state: St,
    attempt: u32,
    restarts: u32,
    not_before: Instant,
    pgid: Option<u32>,
    started: Option<Instant>,
    ready_this_attempt: bool,
    failure: Option<Ending>,
    stop_requested: bool,
    ending: Option<Ending>,
    log: Option<PathBuf>,
}

fn now_wall() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The coordinator.
pub(crate) struct Engine {
    plan: Arc<Plan>,
    roles: Vec<Arc<Role>>,
    role_hosts: Vec<Vec<usize>>,
    pools: Vec<Arc<HostPool>>,
    hosts: Vec<HostState>,
    host_pgids: Vec<Vec<u32>>,
    procs: Vec<P>,
    by_id: HashMap<String, usize>,
    gate: Gate,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    out: mpsc::Sender<LaunchEvent>,
    options: LaunchOptions,
    cancel: CancellationToken,
    escalate: CancellationToken,
    t0: Instant,
    wall0: String,
    phase: Phase,
    interrupted: bool,
    escalated: bool,
    hold_until: Option<Instant>,
    starts: VecDeque<Instant>,
    stopping_role: Option<usize>,
    stop_deadline: Option<Instant>,
    confirm_waiting: Vec<bool>,
    confirm_deadline: Option<Instant>,
    /// Hosts the leftover check asked (those that answered, once it is over).
    hosts_checked: usize,
    /// Hosts the leftover check could not ask, or that did not answer.
    unchecked: Vec<String>,
    /// Process groups found alive after the stop.
    survivors: Vec<(String, u32)>,
    collect_waiting: Vec<bool>,
    /// Cancels the collections: a Ctrl-C while collecting, or the escalation.
    collect_cancel: CancellationToken,
    /// The run record (`events.jsonl`), when the run has a directory.
    log: Option<EventLog>,
    /// The report, folded from the events as they are emitted.
    fold: ReportFold,
}

impl Engine {
    pub(crate) fn new(
        plan: Plan,
        pools: Vec<Arc<HostPool>>,
        options: LaunchOptions,
        cancel: CancellationToken,
        escalate: CancellationToken,
        out: mpsc::Sender<LaunchEvent>,
        log: Option<EventLog>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(super::QUEUE);
        let roles: Vec<Arc<Role>> = plan.roles.iter().cloned().map(Arc::new).collect();
        let host_idx: HashMap<&str, usize> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.label.as_str(), i))
            .collect();
        let role_idx: HashMap<&str, usize> = roles
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let mut role_hosts: Vec<Vec<usize>> = roles.iter().map(|r| plan.role_hosts(r)).collect();
        let t0 = Instant::now();
        let mut procs = Vec::with_capacity(plan.processes.len());
        let mut by_id = HashMap::new();
        for (i, s) in plan.processes.iter().enumerate() {
            let role = role_idx[s.role.as_str()];
            let host = host_idx[s.host.as_str()];
            if !role_hosts[role].contains(&host) {
                role_hosts[role].push(host);
            }
            by_id.insert(s.id.0.clone(), i);
            let log = options.run_dir.as_ref().map(|d| {
                let key =
                    s.id.0
                        .split_once('/')
                        .map_or(s.key.as_str(), |(_, k)| k)
                        .replace('/', "_");
                d.join("logs")
                    .join(&s.role)
                    .join(format!("{key}@{}.log", s.host.replace('/', "_")))
            });
            procs.push(P {
                role,
                host,
                state: St::Pending,
                attempt: 0,
                restarts: 0,
                not_before: t0,
                pgid: None,
                started: None,
                ready_this_attempt: false,
                failure: None,
                stop_requested: false,
                ending: None,
                log,
            });
        }
        let gate = Gate::new(
            roles
                .iter()
                .map(|r| (r.rate.map(|x| x.interval()), r.min_spacing_per_key))
                .collect(),
            plan.run.rate.map(|x| x.interval()),
            plan.run.max_starting.map(|m| m as usize),
        );
        let n_hosts = plan.hosts.len();
        let collect_cancel = escalate.child_token();
        let fold = ReportFold::new(&options.run_id);
        Engine {
            plan: Arc::new(plan),
            roles,
            role_hosts,
            pools,
            hosts: vec![HostState::Connecting; n_hosts],
            host_pgids: vec![Vec::new(); n_hosts],
            procs,
            by_id,
            gate,
            tx,
            rx,
            out,
            options,
            cancel,
            escalate,
            t0,
            wall0: now_wall(),
            phase: Phase::Starting,
            interrupted: false,
            escalated: false,
            hold_until: None,
            starts: VecDeque::new(),
            stopping_role: None,
            stop_deadline: None,
            confirm_waiting: vec![false; n_hosts],
            confirm_deadline: None,
            hosts_checked: 0,
            unchecked: Vec::new(),
            survivors: Vec::new(),
            collect_waiting: vec![false; n_hosts],
            collect_cancel,
            log,
            fold,
        }
    }

    fn at(&self) -> u64 {
        ms(self.t0.elapsed())
    }

    /// Records `ev` (run record, report fold), then sends it to the reporters.
    async fn emit(&mut self, ev: LaunchEvent) {
        if let Some(log) = &mut self.log {
            log.write(&ev);
        }
        self.fold.apply(&ev);
        let _ = self.out.send(ev).await;
    }

    /// The first event: the placed plan as reporters need it.
    fn started_event(&self) -> LaunchEvent {
        let plan = &self.plan;
        LaunchEvent::LaunchStarted {
            plan: plan.name.clone(),
            digest: plan.digest.clone(),
            plan_path: plan.path.display().to_string(),
            overrides: plan.overrides.clone(),
            run_dir: (self.options.run_dir.as_ref()).map(|d| d.display().to_string()),
            started_at: self.wall0.clone(),
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
            process_list: (plan.processes.iter().zip(&self.procs))
                .map(|(s, p)| PlannedProcess {
                    id: s.id.0.clone(),
                    role: s.role.clone(),
                    key: s.key.clone(),
                    host: s.host.clone(),
                    log: p.log.as_ref().map(|l| l.display().to_string()),
                })
                .collect(),
            thresholds: plan.thresholds.iter().map(threshold_spec).collect(),
        }
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

    async fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        let at_ms = self.at();
        self.emit(LaunchEvent::PhaseChanged { phase, at_ms }).await;
        self.progress().await;
    }

    /// Runs the launch to its end.
    pub(crate) async fn run(mut self) -> LaunchResult {
        let started = self.started_event();
        self.emit(started).await;
        self.set_phase(Phase::Starting).await;
        let mut uploads = by_host(&self.plan, &self.plan.uploads);
        for (i, pool) in self.pools.iter().enumerate() {
            let pool = pool.clone();
            let tx = self.tx.clone();
            let uploads = std::mem::take(&mut uploads[i]);
            let plan = self.plan.clone();
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let msg = match pool.connect().await {
                    Ok(()) => {
                        let elapsed = t.elapsed();
                        // The host's uploads come before its first process.
                        let records = stage::upload(&pool, &plan, &uploads, &cancel).await;
                        let failed = records.iter().find_map(TransferRecord::failure);
                        if !records.is_empty() {
                            let _ = tx.send(Msg::Transfers { host: i, records }).await;
                        }
                        match failed {
                            None => Msg::HostUp { host: i, elapsed },
                            Some(message) => {
                                pool.set_down();
                                Msg::HostFailed { host: i, message }
                            }
                        }
                    }
                    Err(e) => Msg::HostFailed {
                        host: i,
                        message: e.message,
                    },
                };
                let _ = tx.send(msg).await;
            });
        }
        let mut tick = tokio::time::interval(self.options.progress_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let wake = self.schedule().await;
            if self.advance().await {
                break;
            }
            let deadline = [
                wake,
                self.hold_until,
                self.stop_deadline,
                self.confirm_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let cancel = self.cancel.clone();
            let escalate = self.escalate.clone();
            tokio::select! {
                biased;
                _ = escalate.cancelled(), if !self.escalated => self.escalate_now().await,
                _ = cancel.cancelled(), if !self.interrupted => {
                    self.interrupted = true;
                    if matches!(self.phase, Phase::Starting | Phase::Holding) {
                        self.begin_stop().await;
                    }
                    if self.phase == Phase::Collecting {
                        // Everything is stopped already: the user wants out, not the logs.
                        self.collect_cancel.cancel();
                    }
                }
                m = self.rx.recv() => {
                    if let Some(m) = m {
                        self.handle(m).await;
                    }
                }
                _ = sleep => {}
                _ = tick.tick() => self.progress().await,
            }
        }
        self.finish().await
    }

    // ----- scheduling -----

    fn starting_count(&self) -> usize {
        self.procs
            .iter()
            .filter(|p| p.state == St::Starting)
            .count()
    }

    /// Per role: (some process not settled yet, some process ready), for role dependencies.
    fn role_states(&self) -> Vec<(bool, bool)> {
        let mut v = vec![(false, false); self.roles.len()];
        for p in &self.procs {
            match p.state {
                St::Ready => v[p.role].1 = true,
                St::Done => {}
                _ => v[p.role].0 = true,
            }
        }
        v
    }

    /// Dependency state of process `i`: Ok(true) ready, Ok(false) wait, Err(reason) never.
    /// `roles` comes from [`Self::role_states`].
    fn deps(&self, i: usize, roles: &[(bool, bool)]) -> Result<bool, String> {
        match &self.plan.processes[i].depends_on {
            DependsOn::Nothing => Ok(true),
            DependsOn::Processes(ids) => {
                for id in ids {
                    let Some(&j) = self.by_id.get(&id.0) else {
                        continue;
                    };
                    match self.procs[j].state {
                        St::Ready if self.procs[j].failure.is_none() => {}
                        St::Done => {
                            let label =
                                self.procs[j].ending.as_ref().map_or("ended", |e| e.label());
                            return Err(format!("it depends on {id}, which {label}"));
                        }
                        _ => return Ok(false),
                    }
                }
                Ok(true)
            }
            DependsOn::Role(r) => {
                let Some(ri) = self.roles.iter().position(|x| x.name == *r) else {
                    return Ok(true);
                };
                let (unsettled, any_ready) = roles[ri];
                if unsettled {
                    return Ok(false);
                }
                if any_ready {
                    Ok(true)
                } else {
                    Err(format!(
                        "it depends on role {r}, which has no ready process"
                    ))
                }
            }
        }
    }

    /// Starts every process that may start now; returns when to look again.
    async fn schedule(&mut self) -> Option<Instant> {
        if !matches!(self.phase, Phase::Starting | Phase::Holding) {
            return None;
        }
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        let mut starting = self.starting_count();
        let mut roles = self.role_states();
        for i in 0..self.procs.len() {
            if self.procs[i].state != St::Pending {
                continue;
            }
            match &self.hosts[self.procs[i].host] {
                HostState::Up => {}
                HostState::Connecting => continue,
                HostState::Failed(m) | HostState::Lost(m) => {
                    let m = m.clone();
                    self.move_or_never(i, &m).await;
                    continue;
                }
            }
            match self.deps(i, &roles) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(reason) => {
                    self.never(i, reason).await;
                    roles = self.role_states();
                    continue;
                }
            }
            if !self.gate.has_room(starting) {
                break;
            }
            let p = &self.procs[i];
            let key = &self.plan.processes[i].key;
            let t = self.gate.earliest(p.role, key, p.not_before);
            if t <= now {
                self.start(i, now).await;
                starting += 1;
            } else {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        wake
    }

    async fn start(&mut self, i: usize, now: Instant) {
        let spec = &self.plan.processes[i];
        let mut env = Vec::with_capacity(spec.env.len());
        let mut secrets = Vec::new();
        for v in &spec.env {
            match &v.value {
                EnvValue::Literal(s) => env.push((v.name.clone(), s.clone())),
                EnvValue::FromController => match (self.options.controller_env)(&v.name) {
                    Some(s) => {
                        if s.len() >= 4 {
                            secrets.push(s.clone());
                        }
                        env.push((v.name.clone(), s));
                    }
                    None => {
                        let reason = format!("controller variable {} is not set", v.name);
                        self.never(i, reason).await;
                        return;
                    }
                },
            }
        }
        let command = Command {
            command: shell::process_command(spec),
            env,
            cwd: None,
        };
        let key = spec.key.clone();
        let p = &mut self.procs[i];
        p.attempt += 1;
        p.state = St::Starting;
        p.started = Some(now);
        p.pgid = None;
        p.failure = None;
        p.stop_requested = false;
        p.ready_this_attempt = false;
        let attempt = p.attempt;
        let role = p.role;
        let host = p.host;
        let log = p.log.clone();
        self.gate.record(role, &key, now);
        self.starts.push_back(now);
        let process = self.pref(i);
        let at_ms = self.at();
        self.emit(LaunchEvent::ProcessStarting {
            process,
            attempt,
            at_ms,
            started_at: Some(now_wall()),
        })
        .await;
        tokio::spawn(process::run(Attempt {
            idx: i,
            attempt,
            pool: self.pools[host].clone(),
            command,
            role: self.roles[role].clone(),
            log,
            secrets,
            tx: self.tx.clone(),
        }));
    }

    async fn never(&mut self, i: usize, reason: String) {
        let p = &mut self.procs[i];
        p.state = St::Done;
        p.ending = Some(Ending::NeverStarted {
            reason: reason.clone(),
        });
        let process = self.pref(i);
        self.emit(LaunchEvent::ProcessNeverStarted { process, reason })
            .await;
    }

    fn may_restart(&self, i: usize) -> bool {
        let p = &self.procs[i];
        match self.roles[p.role].restart {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure { max_restarts } => {
                p.restarts < max_restarts
                    && matches!(self.phase, Phase::Starting | Phase::Holding)
                    && !self.cancel.is_cancelled()
            }
        }
    }

    /// Another usable host of the process's role with room, fewest processes of the role first.
    fn other_host(&self, i: usize) -> Option<usize> {
        let p = &self.procs[i];
        let role = &self.roles[p.role];
        self.role_hosts[p.role]
            .iter()
            .copied()
            .filter(|&h| {
                h != p.host && matches!(self.hosts[h], HostState::Up | HostState::Connecting)
            })
            .map(|h| {
                let load = self
                    .procs
                    .iter()
                    .filter(|q| q.role == p.role && q.host == h && q.state != St::Done)
                    .count();
                (h, load)
            })
            .filter(|(_, load)| role.slots.is_none_or(|s| (*load as u64) < u64::from(s)))
            .min_by_key(|&(h, load)| (load, matches!(self.hosts[h], HostState::Connecting)))
            .map(|(h, _)| h)
    }

    /// The process's host is unusable: move it when the restart policy allows, else it never
    /// starts.
    async fn move_or_never(&mut self, i: usize, why: &str) {
        let allowed = matches!(
            self.roles[self.procs[i].role].restart,
            RestartPolicy::OnFailure { .. }
        );
        if allowed {
            if let Some(h) = self.other_host(i) {
                let from = self.plan.hosts[self.procs[i].host].label.clone();
                self.procs[i].host = h;
                let process = self.pref(i);
                self.emit(LaunchEvent::ProcessMoved { process, from }).await;
                return;
            }
        }
        let host = self.plan.hosts[self.procs[i].host].label.clone();
        self.never(i, format!("host {host}: {why}")).await;
    }

    // ----- messages -----

    fn current(&self, i: usize, attempt: u32) -> bool {
        self.procs[i].attempt == attempt && self.procs[i].state != St::Done
    }

    async fn handle(&mut self, m: Msg) {
        match m {
            Msg::HostUp { host, elapsed } => {
                self.hosts[host] = HostState::Up;
                self.emit(LaunchEvent::HostConnected {
                    host: self.plan.hosts[host].label.clone(),
                    elapsed_ms: ms(elapsed),
                })
                .await;
                if !matches!(self.phase, Phase::Starting | Phase::Holding) {
                    self.pools[host].close().await;
                }
            }
            Msg::HostFailed { host, message } => {
                self.hosts[host] = HostState::Failed(message.clone());
                self.emit(LaunchEvent::HostFailed {
                    host: self.plan.hosts[host].label.clone(),
                    message,
                })
                .await;
            }
            Msg::Transfers { host, records } => {
                for r in records {
                    if r.step == TransferStep::Collect {
                        self.collect_waiting[host] = false;
                    }
                    self.emit(LaunchEvent::TransferFinished { transfer: r })
                        .await;
                }
            }
            Msg::Spawned { idx, attempt, pgid } => {
                if !self.current(idx, attempt) {
                    return;
                }
                self.procs[idx].pgid = pgid;
                let host = self.procs[idx].host;
                if let Some(g) = pgid {
                    self.host_pgids[host].push(g);
                }
                let process = self.pref(idx);
                let at_ms = self.at();
                self.emit(LaunchEvent::ProcessStarted {
                    process,
                    pgid,
                    at_ms,
                })
                .await;
                if self.roles[self.procs[idx].role].ready.is_none() {
                    self.mark_ready(idx).await;
                }
                let stopping = !matches!(self.phase, Phase::Starting | Phase::Holding);
                if self.procs[idx].stop_requested || stopping {
                    self.procs[idx].stop_requested = true;
                    self.stop_one(idx);
                }
            }
            Msg::SpawnFailed {
                idx,
                attempt,
                error,
            } => {
                if !self.current(idx, attempt) {
                    return;
                }
                let host = self.procs[idx].host;
                if let SpawnError::Lost(m) = &error {
                    if !self.pools[host].is_up().await {
                        self.host_lost(host, m.clone()).await;
                    }
                }
                let reason = format!("could not start: {error}");
                self.procs[idx].state = St::Pending;
                let will_restart = self.may_restart(idx);
                let process = self.pref(idx);
                let at_ms = self.at();
                self.emit(LaunchEvent::ProcessStartFailed {
                    process,
                    error: error.to_string(),
                    will_restart,
                    at_ms,
                })
                .await;
                if will_restart {
                    self.restarting(idx).await;
                    self.procs[idx].not_before = Instant::now() + self.options.restart_delay;
                    if !matches!(self.hosts[host], HostState::Up) {
                        self.move_or_never(idx, &reason).await;
                    }
                } else {
                    self.never(idx, reason).await;
                }
            }
            Msg::Ready { idx, attempt } => {
                if !self.current(idx, attempt) {
                    return;
                }
                let p = &self.procs[idx];
                if p.state == St::Starting && p.failure.is_none() && !p.stop_requested {
                    self.mark_ready(idx).await;
                }
            }
            Msg::FailLine {
                idx,
                attempt,
                pattern,
                line,
            } => {
                if !self.current(idx, attempt) {
                    return;
                }
                let p = &mut self.procs[idx];
                if p.failure.is_some() || p.stop_requested {
                    return;
                }
                self.fail(idx, Ending::Failed { pattern, line }).await;
                self.stop_one(idx);
            }
            Msg::ReadyTimeout { idx, attempt } => {
                if !self.current(idx, attempt) {
                    return;
                }
                let p = &self.procs[idx];
                if p.failure.is_some() || p.stop_requested || p.ready_this_attempt {
                    return;
                }
                let timeout_ms = ms(self.roles[p.role].ready_timeout);
                self.fail(idx, Ending::ReadyTimeout { timeout_ms }).await;
                self.stop_one(idx);
            }
            Msg::Exited { idx, attempt, exit } => {
                if !self.current(idx, attempt) {
                    return;
                }
                self.exited(idx, exit).await;
            }
            Msg::StopFailed { host, message } => {
                let label = self.plan.hosts[host].label.clone();
                tracing::warn!("{label}: {message}");
                self.emit(LaunchEvent::StopFailed {
                    host: label,
                    message,
                })
                .await;
            }
            Msg::Survivors { host, result } => {
                self.confirm_waiting[host] = false;
                let label = self.plan.hosts[host].label.clone();
                match result {
                    Ok(list) if !list.is_empty() => {
                        for g in &list {
                            self.survivors.push((label.clone(), *g));
                        }
                        let pool = self.pools[host].clone();
                        let _ = pool.script(shell::kill_script(&list)).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("survivor check on {label} failed: {e}");
                        self.unchecked.push(label);
                        self.hosts_checked -= 1;
                    }
                }
            }
        }
    }

    async fn mark_ready(&mut self, i: usize) {
        let now = Instant::now();
        let p = &mut self.procs[i];
        p.state = St::Ready;
        p.ready_this_attempt = true;
        let ttr = p.started.map_or(Duration::ZERO, |s| now - s);
        let process = self.pref(i);
        let at_ms = self.at();
        self.emit(LaunchEvent::ProcessReady {
            process,
            time_to_ready_ms: ms(ttr),
            at_ms,
            ready_at: Some(now_wall()),
        })
        .await;
    }

    async fn fail(&mut self, i: usize, ending: Ending) {
        let will_restart = self.may_restart(i);
        self.procs[i].failure = Some(ending.clone());
        let process = self.pref(i);
        let at_ms = self.at();
        self.emit(LaunchEvent::ProcessFailed {
            process,
            ending,
            will_restart,
            at_ms,
        })
        .await;
    }

    async fn host_lost(&mut self, host: usize, message: String) {
        if matches!(self.hosts[host], HostState::Lost(_)) {
            return;
        }
        self.pools[host].set_down();
        self.hosts[host] = HostState::Lost(message.clone());
        self.emit(LaunchEvent::HostLost {
            host: self.plan.hosts[host].label.clone(),
            message,
        })
        .await;
    }

    async fn exited(&mut self, i: usize, exit: Exit) {
        let info = ExitInfo::from(&exit);
        let host = self.procs[i].host;
        if let Exit::Lost(m) = &exit {
            let process = self.pref(i);
            let at_ms = self.at();
            self.emit(LaunchEvent::ProcessLost {
                process,
                message: m.clone(),
                at_ms,
            })
            .await;
            if !self.pools[host].is_up().await {
                self.host_lost(host, m.clone()).await;
            }
            if self.procs[i].failure.is_none() && !self.procs[i].stop_requested {
                self.fail(i, Ending::Lost { message: m.clone() }).await;
            }
        }
        let process = self.pref(i);
        let at_ms = self.at();
        self.emit(LaunchEvent::ProcessExited {
            process: process.clone(),
            exit: info.clone(),
            at_ms,
        })
        .await;
        if self.procs[i].failure.is_none() {
            if self.procs[i].stop_requested {
                let ending = if self.procs[i].ready_this_attempt {
                    Ending::ReadyThenStopped
                } else {
                    Ending::StoppedBeforeReady
                };
                let p = &mut self.procs[i];
                p.state = St::Done;
                p.ending = Some(ending);
                self.emit(LaunchEvent::ProcessStopped {
                    process,
                    exit: info,
                    at_ms,
                })
                .await;
                return;
            }
            let (code, signal) = match &exit {
                Exit::Code(c) => (Some(*c), None),
                Exit::Signal { name, .. } => (None, Some(name.clone())),
                _ => (None, None),
            };
            self.fail(i, Ending::ExitedEarly { code, signal }).await;
        }
        // A failure: restart when allowed, else record it.
        if self.may_restart(i) {
            self.restarting(i).await;
            let p = &mut self.procs[i];
            p.state = St::Pending;
            p.not_before = Instant::now() + self.options.restart_delay;
            p.ending = p.failure.take();
            if !matches!(self.hosts[p.host], HostState::Up) {
                let why = "host unavailable".to_string();
                self.move_or_never(i, &why).await;
            }
        } else {
            let p = &mut self.procs[i];
            p.state = St::Done;
            p.ending = p.failure.clone();
        }
    }

    /// Counts a restart of process `i` and says so.
    async fn restarting(&mut self, i: usize) {
        self.procs[i].restarts += 1;
        let restarts = self.procs[i].restarts;
        let process = self.pref(i);
        let at_ms = self.at();
        self.emit(LaunchEvent::ProcessRestarting {
            process,
            restarts,
            at_ms,
        })
        .await;
    }

    // ----- stopping -----

    fn stop_steps(&self, role: usize) -> Vec<(String, Duration)> {
        if self.escalated {
            return Vec::new();
        }
        self.roles[role]
            .stop
            .iter()
            .map(|s| (s.signal.name().to_string(), s.grace))
            .collect()
    }

    /// Stops one process with its role's stop sequence (KILL once escalated).
    fn stop_one(&mut self, i: usize) {
        self.procs[i].stop_requested = true;
        let Some(pgid) = self.procs[i].pgid else {
            return; // stopped as soon as it has started
        };
        let pool = self.pools[self.procs[i].host].clone();
        let script = shell::stop_script(&[pgid], &self.stop_steps(self.procs[i].role));
        let (tx, host) = (self.tx.clone(), self.procs[i].host);
        tokio::spawn(async move {
            if let Err(e) = run_stop(&pool, script).await {
                let message = format!("stop of process group {pgid} failed: {e}");
                let _ = tx.send(Msg::StopFailed { host, message }).await;
            }
        });
    }

    async fn begin_stop(&mut self) {
        self.hold_until = None;
        let reason = if self.interrupted {
            "the run was interrupted before it started"
        } else {
            "the run ended before it started"
        };
        for i in 0..self.procs.len() {
            if self.procs[i].state == St::Pending {
                self.never(i, reason.to_string()).await;
            }
        }
        self.set_phase(Phase::Stopping).await;
        self.stopping_role = Some(self.roles.len());
        self.next_stop_role().await;
    }

    fn alive_in_role(&self, role: usize) -> bool {
        self.procs
            .iter()
            .any(|p| p.role == role && matches!(p.state, St::Starting | St::Ready))
    }

    /// Moves the stop to the previous role (dependents before what they depend on) that has
    /// live processes; stops them all, one script per host. Confirms when none is left.
    async fn next_stop_role(&mut self) {
        let Some(mut r) = self.stopping_role else {
            return;
        };
        while r > 0 {
            r -= 1;
            if !self.alive_in_role(r) {
                continue;
            }
            self.stopping_role = Some(r);
            let steps = self.stop_steps(r);
            let grace: Duration = steps.iter().map(|s| s.1).sum();
            self.stop_deadline = Some(Instant::now() + grace + self.options.stop_patience);
            let mut per_host: HashMap<usize, Vec<u32>> = HashMap::new();
            for p in self.procs.iter_mut() {
                if p.role == r && matches!(p.state, St::Starting | St::Ready) {
                    p.stop_requested = true;
                    if let Some(g) = p.pgid {
                        per_host.entry(p.host).or_default().push(g);
                    }
                }
            }
            for (h, pgids) in per_host {
                let pool = self.pools[h].clone();
                let script = shell::stop_script(&pgids, &steps);
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = run_stop(&pool, script).await {
                        let message = format!("stop script failed: {e}");
                        let _ = tx.send(Msg::StopFailed { host: h, message }).await;
                    }
                });
            }
            return;
        }
        self.stopping_role = None;
        self.stop_deadline = None;
        self.begin_confirm().await;
    }

    async fn escalate_now(&mut self) {
        self.escalated = true;
        self.interrupted = true;
        if matches!(self.phase, Phase::Starting | Phase::Holding) {
            self.begin_stop().await;
        }
        let mut per_host: HashMap<usize, Vec<u32>> = HashMap::new();
        for p in &mut self.procs {
            if matches!(p.state, St::Starting | St::Ready) {
                p.stop_requested = true;
                if let Some(g) = p.pgid {
                    per_host.entry(p.host).or_default().push(g);
                }
            }
        }
        for (h, pgids) in per_host {
            let pool = self.pools[h].clone();
            tokio::spawn(async move {
                let _ = pool.script(shell::kill_script(&pgids)).await;
            });
        }
        // Waiting for exits still applies, but not the graces.
        if self.stop_deadline.is_some() {
            self.stop_deadline = Some(Instant::now() + self.options.stop_patience);
        }
    }

    async fn begin_confirm(&mut self) {
        self.set_phase(Phase::Confirming).await;
        for h in 0..self.hosts.len() {
            let pgids = self.host_pgids[h].clone();
            if pgids.is_empty() {
                continue;
            }
            if !matches!(self.hosts[h], HostState::Up) || !self.pools[h].is_up().await {
                self.unchecked.push(self.plan.hosts[h].label.clone());
                continue;
            }
            self.hosts_checked += 1;
            self.confirm_waiting[h] = true;
            let pool = self.pools[h].clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                // Zombies of just-killed groups need a moment to be reaped.
                let mut result = Ok(Vec::new());
                for _ in 0..20 {
                    result = pool
                        .script(shell::survivors_script(&pgids))
                        .await
                        .map(|out| {
                            out.split_whitespace()
                                .filter_map(|w| w.parse().ok())
                                .collect::<Vec<u32>>()
                        })
                        .map_err(|e| e.to_string());
                    match &result {
                        Ok(v) if v.is_empty() => break,
                        Err(_) => break,
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                let _ = tx.send(Msg::Survivors { host: h, result }).await;
            });
        }
        self.confirm_deadline = Some(Instant::now() + self.options.stop_patience);
    }

    /// Phase transitions; true when the launch is over.
    async fn advance(&mut self) -> bool {
        let now = Instant::now();
        match self.phase {
            Phase::Starting => {
                let unsettled = self
                    .procs
                    .iter()
                    .any(|p| matches!(p.state, St::Pending | St::Starting));
                if !unsettled {
                    self.set_phase(Phase::Holding).await;
                    self.hold_until = self.plan.run.duration.map(|d| now + d);
                    if !self.procs.iter().any(|p| p.state == St::Ready) {
                        self.begin_stop().await;
                    }
                }
            }
            Phase::Holding => {
                let hold_over = self.hold_until.is_some_and(|t| now >= t);
                let nothing_left = self.procs.iter().all(|p| p.state == St::Done);
                if hold_over || nothing_left {
                    self.begin_stop().await;
                }
            }
            Phase::Stopping => {
                if let Some(r) = self.stopping_role {
                    let waiting = self
                        .procs
                        .iter()
                        .any(|p| p.role == r && matches!(p.state, St::Starting | St::Ready));
                    let late = self.stop_deadline.is_some_and(|d| now >= d);
                    if late && waiting {
                        self.give_up_on_role(r).await;
                    }
                    if !waiting || late {
                        self.next_stop_role().await;
                    }
                }
            }
            Phase::Confirming => {
                let late = self.confirm_deadline.is_some_and(|d| now >= d);
                if !self.confirm_waiting.iter().any(|w| *w) || late {
                    self.end_confirm().await;
                    if !self.begin_collect().await {
                        return true;
                    }
                }
            }
            Phase::Collecting => {
                if !self.collect_waiting.iter().any(|w| *w) {
                    return true;
                }
            }
            Phase::Done => return true,
        }
        false
    }

    /// Processes of role `r` whose exit never came within the stop's patience.
    async fn give_up_on_role(&mut self, r: usize) {
        for i in 0..self.procs.len() {
            let p = &mut self.procs[i];
            if p.role == r && matches!(p.state, St::Starting | St::Ready) {
                p.state = St::Done;
                p.ending = Some(p.failure.clone().unwrap_or(if p.ready_this_attempt {
                    Ending::ReadyThenStopped
                } else {
                    Ending::StoppedBeforeReady
                }));
                let process = self.pref(i);
                let exit = ExitInfo {
                    note: Some("no exit seen after the stop sequence".into()),
                    ..Default::default()
                };
                let at_ms = self.at();
                self.emit(LaunchEvent::ProcessStopped {
                    process,
                    exit,
                    at_ms,
                })
                .await;
            }
        }
    }

    fn counts(&self) -> Vec<RoleCounts> {
        let mut out: Vec<RoleCounts> = self
            .roles
            .iter()
            .map(|r| RoleCounts {
                role: r.name.clone(),
                ..Default::default()
            })
            .collect();
        for p in &self.procs {
            let c = &mut out[p.role];
            c.planned += 1;
            c.restarts += p.restarts;
            match p.state {
                St::Pending => c.pending += 1,
                St::Starting | St::Ready if p.failure.is_some() => c.failed += 1,
                St::Starting | St::Ready if p.stop_requested => c.stopped += 1,
                St::Starting => c.starting += 1,
                St::Ready => c.ready += 1,
                St::Done => match &p.ending {
                    Some(Ending::ReadyThenStopped | Ending::StoppedBeforeReady) => c.stopped += 1,
                    Some(Ending::ExitedEarly { .. }) => c.exited += 1,
                    Some(Ending::NeverStarted { .. }) => c.never_started += 1,
                    _ => c.failed += 1,
                },
            }
        }
        out
    }

    async fn progress(&mut self) {
        let now = Instant::now();
        while self
            .starts
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(5))
        {
            self.starts.pop_front();
        }
        let roles = self.counts();
        let starting = roles.iter().map(|r| r.starting).sum();
        let ev = LaunchEvent::Progress {
            phase: self.phase,
            roles,
            starting,
            start_rate: self.starts.len() as f64 / 5.0,
            elapsed_ms: self.at(),
            remaining_ms: self
                .hold_until
                .filter(|_| self.phase == Phase::Holding)
                .map(|t| ms(t.saturating_duration_since(now))),
        };
        self.emit(ev).await;
    }

    /// The leftover check is over (answered or out of patience).
    async fn end_confirm(&mut self) {
        for h in 0..self.pools.len() {
            if std::mem::take(&mut self.confirm_waiting[h]) {
                // The check never answered: say so rather than report the host clean.
                self.hosts_checked -= 1;
                self.unchecked.push(self.plan.hosts[h].label.clone());
            }
        }
        self.emit(LaunchEvent::StopConfirmed {
            hosts_checked: self.hosts_checked,
            unchecked: self.unchecked.clone(),
            survivors: self.survivors.clone(),
        })
        .await;
    }

    /// Starts the plan's collections on every host still connected; false when there is
    /// nothing to wait for. Hosts that failed or were lost, a launch without a run directory
    /// and a killed launch (second Ctrl-C) get skipped records, so the report says why.
    async fn begin_collect(&mut self) -> bool {
        if self.plan.collects.is_empty() {
            return false;
        }
        self.set_phase(Phase::Collecting).await;
        let mut skipped = Vec::new();
        for (h, list) in by_host(&self.plan, &self.plan.collects)
            .into_iter()
            .enumerate()
        {
            if list.is_empty() {
                continue;
            }
            let label = self.plan.hosts[h].label.clone();
            let why = match (&self.options.run_dir, &self.hosts[h]) {
                (None, _) => Some("no run directory".to_string()),
                _ if self.escalated => Some("interrupted (killed)".to_string()),
                (_, HostState::Failed(m)) => Some(format!("host failed: {m}")),
                (_, HostState::Lost(m)) => Some(format!("host lost: {m}")),
                (_, HostState::Connecting) => Some("host never connected".to_string()),
                (_, HostState::Up) if !self.pools[h].is_up().await => {
                    Some("connection closed".to_string())
                }
                _ => None,
            };
            if let Some(why) = why {
                skipped.extend(list.iter().map(|(i, t)| {
                    stage::skipped(TransferStep::Collect, *i, t, &label, why.clone())
                }));
                continue;
            }
            let run_dir = self.options.run_dir.clone().expect("checked above");
            self.collect_waiting[h] = true;
            let pool = self.pools[h].clone();
            let tx = self.tx.clone();
            let cancel = self.collect_cancel.clone();
            tokio::spawn(async move {
                let records = stage::collect(&pool, &list, &run_dir, &cancel).await;
                let _ = tx.send(Msg::Transfers { host: h, records }).await;
            });
        }
        for r in skipped {
            self.emit(LaunchEvent::TransferFinished { transfer: r })
                .await;
        }
        self.collect_waiting.iter().any(|w| *w)
    }

    async fn finish(mut self) -> LaunchResult {
        self.phase = Phase::Done;
        for pool in &self.pools {
            pool.close().await;
        }
        // The verdicts come from the events so far: every process has ended.
        let thresholds_passed = self.fold.report().thresholds_passed;
        let elapsed_ms = self.at();
        let roles = self.counts();
        self.emit(LaunchEvent::LaunchFinished {
            interrupted: self.interrupted,
            thresholds_passed,
            elapsed_ms,
            finished_at: now_wall(),
            roles,
        })
        .await;
        let report = self.fold.report();
        let report_path = self.options.run_dir.as_ref().and_then(|dir| {
            report
                .write_to(dir)
                .map_err(|e| tracing::warn!("cannot write the report in {}: {e}", dir.display()))
                .ok()
        });
        LaunchResult {
            interrupted: self.interrupted,
            thresholds_passed,
            report,
            report_path,
        }
    }
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
    }
}

/// The transfers of `list` (an `[[upload]]` or `[[collect]]` list of `plan`) each host runs,
/// by host index, each with its position in the list, in plan order.
fn by_host(plan: &Plan, list: &[Transfer]) -> Vec<Vec<(usize, Transfer)>> {
    let mut out = vec![Vec::new(); plan.hosts.len()];
    for (index, t) in list.iter().enumerate() {
        for h in plan.transfer_hosts(t) {
            out[h].push((index, t.clone()));
        }
    }
    out
}

/// Runs a stop script, trying again a few times when no channel could be had (a busy server
/// may refuse new sessions or connections for a moment).
async fn run_stop(pool: &HostPool, script: String) -> Result<(), SpawnError> {
    let mut last = None;
    for attempt in 0..5u32 {
        match pool.script(script.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::debug!(
                    "{}: stop attempt {} failed: {e}",
                    pool.target.label,
                    attempt + 1
                );
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| SpawnError::Other("stop failed".into())))
}
