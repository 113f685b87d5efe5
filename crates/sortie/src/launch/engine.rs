//! The driver of a launch: performs what the [`Core`] decides, and tells it what happened.
//!
//! Host tasks (connect, the host's uploads, the host-side set-up, then one [`HostFollow`] per
//! host that follows every process of the host over one channel and reconnects) send [`Msg`]s
//! here; the driver `select!`s over them, the interrupt tokens, the core's timer, the progress
//! tick and the lease tick, turns each into an [`Input`] for [`Core::on`], and performs the
//! [`Action`]s it returns: it starts attempts in one batch per host (under host-side
//! supervisors, see [`super::hostside`]), runs stop, kill and leftover-check scripts and
//! collections, renews each host's lease, and records each event (the run's `events.jsonl`)
//! before sending it to the reporters. It decides nothing itself.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sortie_plan::launch::Transfer;
use sortie_report::launch::EventLog;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::core::{by_host, Action, Core, Input, Settings};
use super::event::LaunchEvent;
use super::follow::{HostFollow, Offsets, Track};
use super::hostside;
use super::process::Msg;
use super::shell;
use super::stage::{self, TransferRecord, TransferStep};
use super::{LaunchOptions, LaunchResult};
use crate::runner::pool::HostPool;
use crate::transport::{Command, Exit, SpawnError};

/// An attempt waiting for its host's next start batch.
struct PendingStart {
    idx: usize,
    attempt: u32,
    role: usize,
    command: Command,
}

/// What the driver knows of the host side: the remote directory and the lease.
pub(crate) struct HostSide {
    /// The run's remote directory, as a shell word.
    pub dir: String,
    /// The lease each renewal grants.
    pub lease: Duration,
    /// How long a lost host is dialled again.
    pub reconnect_window: Duration,
    /// Keep the remote directories at the end.
    pub keep: bool,
}

/// The driver.
pub(crate) struct Engine {
    core: Core,
    pools: Vec<Arc<HostPool>>,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    out: mpsc::Sender<LaunchEvent>,
    options: LaunchOptions,
    cancel: CancellationToken,
    escalate: CancellationToken,
    /// Cancels the collections: a Ctrl-C while collecting, or the escalation.
    collect_cancel: CancellationToken,
    /// The run record (`events.jsonl`), when the run has a directory.
    log: Option<EventLog>,
    side: Arc<HostSide>,
    /// Per host: new attempts for its follower, and (until the host is up) its receiver.
    tracks: Vec<mpsc::UnboundedSender<Track>>,
    track_rx: Vec<Option<mpsc::UnboundedReceiver<Track>>>,
    /// Per host: its follower's offsets (kept in the run directory for `sortie attach`).
    offsets: Vec<Offsets>,
    /// Cancelled at the end of the run: followers stop.
    follow_done: CancellationToken,
    /// Per host: attempts for the next start batch.
    pending: Vec<Vec<PendingStart>>,
    /// Per host: a lease renewal is under way.
    renewing: Vec<Arc<AtomicBool>>,
    /// Per host: the process groups its sampler reads (`[run] sample_interval`).
    groups: Vec<tokio::sync::watch::Sender<Vec<(u32, sortie_events::launch::ProcessRef)>>>,
    /// Per process: the group its sampler knows it by.
    sampled: Vec<Option<u32>>,
    samples_tx: mpsc::Sender<LaunchEvent>,
    samples_rx: mpsc::Receiver<LaunchEvent>,
}

impl Engine {
    /// `interrupts`: the cancel token (first Ctrl-C) and the escalation (second).
    pub(crate) fn new(
        plan: sortie_plan::launch::Plan,
        pools: Vec<Arc<HostPool>>,
        options: LaunchOptions,
        (cancel, escalate): (CancellationToken, CancellationToken),
        out: mpsc::Sender<LaunchEvent>,
        log: Option<EventLog>,
        side: HostSide,
    ) -> Self {
        let (tx, rx) = mpsc::channel(super::QUEUE);
        let n = pools.len();
        let (tracks, track_rx) = (0..n)
            .map(|_| {
                let (t, r) = mpsc::unbounded_channel();
                (t, Some(r))
            })
            .unzip();
        let saved = (options.run_dir.as_deref())
            .map(load_offsets)
            .unwrap_or_default();
        let offsets = (pools.iter())
            .map(|p| {
                Arc::new(std::sync::Mutex::new(
                    saved.get(&p.target.label).cloned().unwrap_or_default(),
                ))
            })
            .collect();
        let settings = Settings {
            run_id: options.run_id.clone(),
            run_dir: options.run_dir.clone(),
            restart_delay: options.restart_delay,
            stop_patience: options.stop_patience,
            controller_env: options.controller_env.clone(),
        };
        let n_procs = plan.processes.len();
        let (samples_tx, samples_rx) = mpsc::channel(super::QUEUE);
        let core = match &options.attach {
            Some(events) => {
                let now = Instant::now();
                let mut core = Core::resume(plan, settings, events, now, chrono::Utc::now());
                if options.stop_now {
                    core.end_hold(now);
                }
                core
            }
            None => Core::new(plan, settings, Instant::now(), chrono::Utc::now()),
        };
        let collect_cancel = escalate.child_token();
        Engine {
            core,
            pools,
            tx,
            rx,
            out,
            options,
            cancel,
            escalate,
            collect_cancel,
            log,
            side: Arc::new(side),
            tracks,
            track_rx,
            offsets,
            follow_done: CancellationToken::new(),
            pending: (0..n).map(|_| Vec::new()).collect(),
            renewing: (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect(),
            groups: (0..n)
                .map(|_| tokio::sync::watch::channel(Vec::new()).0)
                .collect(),
            sampled: vec![None; n_procs],
            samples_tx,
            samples_rx,
        }
    }

    /// Runs the launch to its end.
    pub(crate) async fn run(mut self) -> LaunchResult {
        self.input(Input::Begin).await;
        self.follow_again();
        self.connect_all();
        let mut saved = Instant::now();
        let mut tick = tokio::time::interval(self.options.progress_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let renew_every = (self.side.lease / 4).max(Duration::from_millis(500));
        let mut lease_tick = tokio::time::interval(renew_every);
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !self.core.is_done() {
            let deadline = self.core.wake();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let cancel = self.cancel.clone();
            let escalate = self.escalate.clone();
            let input = tokio::select! {
                biased;
                _ = escalate.cancelled(), if !self.core.escalated() => Input::Escalate,
                _ = cancel.cancelled(), if !self.core.interrupted() => Input::Interrupt,
                m = self.rx.recv() => match m {
                    Some(m) => {
                        self.observe(&m).await;
                        self.input_of(m).await
                    }
                    None => continue,
                },
                Some(ev) = self.samples_rx.recv() => Input::Sample(Box::new(ev)),
                _ = sleep => Input::Timer,
                _ = tick.tick() => Input::Tick,
                _ = lease_tick.tick() => {
                    self.renew_leases();
                    continue;
                }
            };
            self.input(input).await;
            if self.options.detach && self.core.phase() == sortie_events::launch::Phase::Holding {
                return self.detach().await;
            }
            if saved.elapsed() >= Duration::from_secs(1) {
                self.save_offsets();
                saved = Instant::now();
            }
        }
        self.finish().await
    }

    /// Taking a run over: its running attempts are followed again from where the last
    /// controller stopped.
    fn follow_again(&self) {
        for (idx, attempt, ready, started) in self.core.running_attempts() {
            let host = self.core.host_of(idx);
            let _ = self.tracks[host].send(Track {
                dir: hostside::proc_dir(self.core.role_index_of(idx), idx, attempt),
                idx,
                attempt,
                role: self.core.role_of(idx),
                log: self.core.log_of(idx),
                secrets: Vec::new(),
                started,
                ready,
            });
        }
    }

    /// Keeps the followers' offsets in the run directory (`follow.json`), so that `sortie
    /// attach` resumes each file where this controller was.
    fn save_offsets(&self) {
        let Some(dir) = &self.options.run_dir else {
            return;
        };
        let all: std::collections::BTreeMap<&str, std::collections::BTreeMap<String, u64>> =
            (self.pools.iter().zip(&self.offsets))
                .map(|(p, o)| {
                    let o = o.lock().expect("offsets");
                    (
                        p.target.label.as_str(),
                        o.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    )
                })
                .collect();
        let tmp = dir.join("follow.json.tmp");
        let text = serde_json::to_string(&all).expect("offsets serialise");
        if std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, dir.join(FOLLOW_FILE)))
            .is_err()
        {
            tracing::debug!("cannot write {}", dir.join(FOLLOW_FILE).display());
        }
    }

    /// `--detach`: every process settled; the hosts' watchdogs hold the fleet for the rest of
    /// the duration and stop it; this controller ends without stopping anything.
    async fn detach(mut self) -> LaunchResult {
        let now = Instant::now();
        let left = self.core.hold_left(now).unwrap_or_default();
        let actions = self.core.detach(now);
        self.perform(actions).await;
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let mut ends = Vec::new();
        for pool in &self.pools {
            let pool = pool.clone();
            let script = hostside::detach_script(&self.side.dir, secs, self.side.lease);
            ends.push(tokio::spawn(async move {
                if pool.is_up() {
                    if let Err(e) = pool.script(script).await {
                        tracing::warn!("{}: cannot hand the run over: {e}", pool.target.label);
                    }
                }
            }));
        }
        for e in ends {
            let _ = e.await;
        }
        // Let the followers deliver what they have read, then stop them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(m) = self.rx.try_recv() {
            let input = self.input_of(m).await;
            self.input(input).await;
        }
        self.follow_done.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.save_offsets();
        for pool in &self.pools {
            pool.disconnect().await;
        }
        let report = self.core.report();
        LaunchResult {
            interrupted: false,
            thresholds_passed: report.thresholds_passed,
            detached: true,
            report,
            report_path: None,
        }
    }

    /// Connects every host, runs its uploads (before its first process), sets up its remote
    /// directory and watchdog, and starts following it.
    fn connect_all(&mut self) {
        let plan = self.core.plan().clone();
        let mut uploads = by_host(&plan, &plan.uploads);
        let stop_sh = self.stop_sh();
        for (i, pool) in self.pools.iter().enumerate() {
            let pool = pool.clone();
            let tx = self.tx.clone();
            let uploads = std::mem::take(&mut uploads[i]);
            let plan = plan.clone();
            let cancel = self.cancel.clone();
            let side = self.side.clone();
            let stop_sh = stop_sh.clone();
            let track_rx = self.track_rx[i].take().expect("connected once");
            let done = self.follow_done.clone();
            let offsets = self.offsets[i].clone();
            let resumed = self.options.attach.is_some();
            tokio::spawn(async move {
                let t = Instant::now();
                if let Err(e) = pool.dial().await {
                    let message = e.message;
                    let _ = tx.send(Msg::HostFailed { host: i, message }).await;
                    return;
                }
                let elapsed = t.elapsed();
                let records = if resumed {
                    Vec::new() // taken over: the uploads were done
                } else {
                    stage::upload(&pool, &plan, &uploads, &cancel).await
                };
                let failed = records.iter().find_map(TransferRecord::failure);
                if !records.is_empty() {
                    let _ = tx.send(Msg::Transfers { host: i, records }).await;
                }
                let failed = match failed {
                    Some(m) => Some(m),
                    None => set_up(&pool, &side, &stop_sh).await.err(),
                };
                if let Some(message) = failed {
                    pool.set_down();
                    let _ = tx.send(Msg::HostFailed { host: i, message }).await;
                    return;
                }
                let follow = HostFollow::new(i, pool, &side, tx.clone(), track_rx, done, offsets);
                tokio::spawn(follow.run());
                let _ = tx.send(Msg::HostUp { host: i, elapsed }).await;
            });
        }
    }

    /// The hosts' `stop.sh`: every role's stop sequence, dependents first.
    fn stop_sh(&self) -> String {
        let plan = self.core.plan();
        let order: Vec<(usize, Vec<(String, Duration)>)> = (plan.roles.iter().enumerate())
            .rev()
            .map(|(i, r)| {
                let steps = r
                    .stop
                    .iter()
                    .map(|s| (s.signal.name().to_string(), s.grace));
                (i, steps.collect())
            })
            .collect();
        hostside::stop_sh(&order)
    }

    /// Renews the lease on every connected host (one renewal at a time per host).
    fn renew_leases(&self) {
        for (h, pool) in self.pools.iter().enumerate() {
            if self.renewing[h].swap(true, Ordering::AcqRel) {
                continue;
            }
            let (pool, flag) = (pool.clone(), self.renewing[h].clone());
            let script = hostside::renew_script(&self.side.dir, self.side.lease);
            tokio::spawn(async move {
                if pool.is_up() {
                    if let Err(e) = pool.script(script).await {
                        tracing::debug!("{}: lease renewal: {e}", pool.target.label);
                    }
                }
                flag.store(false, Ordering::Release);
            });
        }
    }

    /// Starts the attempts waiting per host, one batch (one channel) per host.
    fn flush_starts(&mut self) {
        for (host, batch) in self.pending.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let batch = std::mem::take(batch);
            let pool = self.pools[host].clone();
            let tx = self.tx.clone();
            let dir = self.side.dir.clone();
            tokio::spawn(start_batch(pool, dir, batch, tx));
        }
    }

    /// Keeps the samplers current: one per connected host, reading the groups that run there.
    async fn observe(&mut self, m: &Msg) {
        match m {
            Msg::HostUp { host, .. } | Msg::HostReconnected { host, .. } => {
                self.start_sampler(*host).await
            }
            Msg::Spawned {
                idx, pgid: Some(g), ..
            } => {
                let host = self.core.host_of(*idx);
                let process = self.core.process_ref(*idx);
                self.sampled[*idx] = Some(*g);
                self.groups[host].send_modify(|v| v.push((*g, process)));
            }
            Msg::Exited { idx, .. } => {
                if let Some(g) = self.sampled[*idx].take() {
                    let host = self.core.host_of(*idx);
                    self.groups[host].send_modify(|v| v.retain(|(x, _)| *x != g));
                }
            }
            _ => {}
        }
    }

    /// Starts sampling host `host` over its connection, when the plan samples.
    async fn start_sampler(&self, host: usize) {
        let interval = self.core.plan().run.sample_interval;
        if interval.is_zero() {
            return;
        }
        let Some(conn) = self.pools[host].connection() else {
            return;
        };
        let s = super::sampler::Sampler {
            host: self.pools[host].target.label.clone(),
            interval,
            started: self.core.started(),
            groups: self.groups[host].subscribe(),
            tx: self.samples_tx.clone(),
        };
        tokio::spawn(super::sampler::run_sampler(
            conn,
            s,
            self.follow_done.clone(),
        ));
    }

    /// A task's message as an input of the core; a lost connection comes with whether the
    /// host still has one.
    async fn input_of(&self, m: Msg) -> Input {
        match m {
            Msg::HostUp { host, elapsed } => Input::HostUp { host, elapsed },
            Msg::HostFailed { host, message } => Input::HostFailed { host, message },
            Msg::HostDisconnected { host, message } => Input::HostDisconnected { host, message },
            Msg::HostReconnected { host, elapsed } => Input::HostReconnected { host, elapsed },
            Msg::HostGone { host, message } => Input::HostGone { host, message },
            Msg::Transfers { host, records } => Input::Transfers { host, records },
            Msg::Spawned { idx, attempt, pgid } => Input::Spawned { idx, attempt, pgid },
            Msg::SpawnFailed {
                idx,
                attempt,
                error,
            } => {
                let lost = match &error {
                    SpawnError::Lost(m) => Some(m.clone()),
                    _ => None,
                };
                let host_up = lost.is_none() || self.host_up(idx).await;
                Input::SpawnFailed {
                    idx,
                    attempt,
                    error: error.to_string(),
                    lost,
                    host_up,
                }
            }
            Msg::Ready { idx, attempt } => Input::Ready { idx, attempt },
            Msg::FailLine {
                idx,
                attempt,
                pattern,
                line,
            } => Input::FailLine {
                idx,
                attempt,
                pattern,
                line,
            },
            Msg::ReadyTimeout { idx, attempt } => Input::ReadyTimeout { idx, attempt },
            Msg::Exited { idx, attempt, exit } => {
                let host_up = !matches!(exit, Exit::Lost(_)) || self.host_up(idx).await;
                Input::Exited {
                    idx,
                    attempt,
                    exit,
                    host_up,
                }
            }
            Msg::StopFailed { host, message } => Input::StopFailed { host, message },
            Msg::Survivors { host, result } => Input::Survivors { host, result },
        }
    }

    /// Whether the host process `idx` is on still has a connection.
    async fn host_up(&self, idx: usize) -> bool {
        let host = self.core.host_of(idx);
        self.pools[host].is_up()
    }

    /// Gives `input` to the core and performs what it returns (and what answers at once).
    async fn input(&mut self, input: Input) {
        let actions = self.core.on(input, Instant::now());
        self.perform(actions).await;
    }

    async fn perform(&mut self, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        while let Some(a) = queue.pop_front() {
            if let Some(answer) = self.perform_one(a).await {
                let more = self.core.on(answer, Instant::now());
                for (k, m) in more.into_iter().enumerate() {
                    queue.insert(k, m);
                }
            }
        }
        self.flush_starts();
    }

    /// Performs one action; returns an input when the answer is known at once (a host that
    /// lost its connection cannot be checked or collected from).
    async fn perform_one(&mut self, a: Action) -> Option<Input> {
        match a {
            Action::Emit(ev) => {
                if let Some(log) = &mut self.log {
                    log.write(&ev);
                }
                let _ = self.out.send(ev).await;
            }
            Action::Start {
                idx,
                attempt,
                host,
                command,
                secrets,
                log,
            } => {
                let role = self.core.role_of(idx);
                let role_idx = self.core.role_index_of(idx);
                let track = Track {
                    dir: hostside::proc_dir(role_idx, idx, attempt),
                    idx,
                    attempt,
                    role,
                    log,
                    secrets,
                    started: Instant::now(),
                    ready: false,
                };
                let _ = self.tracks[host].send(track);
                self.pending[host].push(PendingStart {
                    idx,
                    attempt,
                    role: role_idx,
                    command,
                });
            }
            Action::Stop {
                host,
                pgids,
                steps,
                single,
            } => self.stop(host, &pgids, &steps, single),
            Action::Kill { host, pgids, wait } => {
                let pool = self.pools[host].clone();
                let kill = async move {
                    let _ = pool.script(shell::kill_script(&pgids)).await;
                };
                if wait {
                    kill.await;
                } else {
                    tokio::spawn(kill);
                }
            }
            Action::Confirm { host, pgids } => {
                if !self.pools[host].is_up() {
                    return Some(Input::Survivors {
                        host,
                        result: Err("not connected".into()),
                    });
                }
                self.confirm(host, pgids);
            }
            Action::Collect {
                host,
                list,
                run_dir,
            } => return self.collect(host, list, run_dir),
            Action::Close { host } => self.pools[host].disconnect().await,
            Action::SetDown { host } => self.pools[host].set_down(),
            Action::CancelCollections => self.collect_cancel.cancel(),
        }
        None
    }

    /// Runs the stop sequence `steps` on `pgids` of `host` in the background; a failure
    /// comes back as `StopFailed`.
    fn stop(&self, host: usize, pgids: &[u32], steps: &[(String, Duration)], single: Option<u32>) {
        let pool = self.pools[host].clone();
        let script = shell::stop_script(pgids, steps);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Err(e) = run_stop(&pool, script).await {
                let message = match single {
                    Some(pgid) => format!("stop of process group {pgid} failed: {e}"),
                    None => format!("stop script failed: {e}"),
                };
                let _ = tx.send(Msg::StopFailed { host, message }).await;
            }
        });
    }

    /// Collects `list` from `host` into `run_dir` in the background; when the host has no
    /// connection, every transfer is skipped at once (the returned input).
    fn collect(
        &self,
        host: usize,
        list: Vec<(usize, Transfer)>,
        run_dir: PathBuf,
    ) -> Option<Input> {
        let pool = self.pools[host].clone();
        if !pool.is_up() {
            let label = pool.target.label.clone();
            let records = (list.iter())
                .map(|(i, t)| {
                    let why = "connection closed".to_string();
                    stage::skipped(TransferStep::Collect, *i, t, &label, why)
                })
                .collect();
            return Some(Input::Transfers { host, records });
        }
        let tx = self.tx.clone();
        let cancel = self.collect_cancel.clone();
        tokio::spawn(async move {
            let records = stage::collect(&pool, &list, &run_dir, &cancel).await;
            let _ = tx.send(Msg::Transfers { host, records }).await;
        });
        None
    }

    /// Asks a host which of `pgids` are still alive, a few times while zombies are reaped.
    fn confirm(&self, host: usize, pgids: Vec<u32>) {
        let pool = self.pools[host].clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
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
            let _ = tx.send(Msg::Survivors { host, result }).await;
        });
    }

    async fn finish(mut self) -> LaunchResult {
        self.follow_done.cancel();
        let mut ends = Vec::new();
        for pool in &self.pools {
            let pool = pool.clone();
            let script = hostside::finish_script(&self.side.dir, self.side.keep);
            ends.push(tokio::spawn(async move {
                if pool.is_up() {
                    if let Err(e) = pool.script(script).await {
                        tracing::debug!("{}: end of run: {e}", pool.target.label);
                    }
                }
                pool.disconnect().await;
            }));
        }
        for e in ends {
            let _ = e.await;
        }
        self.save_offsets();
        let actions = self.core.finish(Instant::now());
        self.perform(actions).await;
        let report = self.core.report();
        let report_path = self.options.run_dir.as_ref().and_then(|dir| {
            report
                .write_to(dir)
                .map_err(|e| tracing::warn!("cannot write the report in {}: {e}", dir.display()))
                .ok()
        });
        LaunchResult {
            interrupted: report.interrupted,
            thresholds_passed: report.thresholds_passed,
            detached: false,
            report,
            report_path,
        }
    }
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

/// Creates the host's remote directory, its `stop.sh` and lease, and starts its watchdog.
async fn set_up(pool: &HostPool, side: &HostSide, stop_sh: &str) -> Result<(), String> {
    let script = hostside::setup_script(&side.dir, side.lease, stop_sh);
    let out = pool.script(script).await.map_err(|e| e.to_string())?;
    if out.lines().any(|l| l == "\u{2}ok") {
        return Ok(());
    }
    let why = (out.lines())
        .find_map(|l| l.strip_prefix("\u{2}E "))
        .unwrap_or("the host-side set-up printed nothing");
    Err(format!("cannot set up the run on the host: {why}"))
}

/// Starts one batch of attempts on a host and reports each one's process group or failure:
/// one start script after the other, each under [`hostside::START_SCRIPT_MAX`].
async fn start_batch(
    pool: Arc<HostPool>,
    dir: String,
    batch: Vec<PendingStart>,
    tx: mpsc::Sender<Msg>,
) {
    let starts: Vec<hostside::Start<'_>> = (batch.iter())
        .map(|p| hostside::Start {
            idx: p.idx,
            attempt: p.attempt,
            role: p.role,
            command: &p.command.command,
            env: &p.command.env,
        })
        .collect();
    for r in hostside::start_batches(&dir, &starts) {
        let script = hostside::start_script(&dir, &starts[r.clone()]);
        start_chunk(&pool, script, &batch[r], &tx).await;
    }
}

/// Runs one start script for `batch` and reports each attempt's process group or failure.
async fn start_chunk(
    pool: &HostPool,
    script: String,
    batch: &[PendingStart],
    tx: &mpsc::Sender<Msg>,
) {
    let mut answered = std::collections::HashSet::new();
    let result = if pool.is_up() {
        pool.script(script).await
    } else {
        Err(SpawnError::Lost("host is disconnected".into()))
    };
    let error = match result {
        Ok(out) => {
            for l in out.lines() {
                let Some(rest) = l.strip_prefix('\u{2}') else {
                    continue;
                };
                let mut w = rest.splitn(4, ' ');
                let (kind, idx, attempt) = (w.next(), w.next(), w.next());
                let (Some(idx), Some(attempt)) = (
                    idx.and_then(|x| x.parse::<usize>().ok()),
                    attempt.and_then(|x| x.parse::<u32>().ok()),
                ) else {
                    continue;
                };
                answered.insert((idx, attempt));
                let msg = match kind {
                    Some("S") => Msg::Spawned {
                        idx,
                        attempt,
                        pgid: w.next().and_then(|g| g.trim().parse().ok()),
                    },
                    _ => Msg::SpawnFailed {
                        idx,
                        attempt,
                        error: SpawnError::Other(w.next().unwrap_or("").to_string()),
                    },
                };
                let _ = tx.send(msg).await;
            }
            SpawnError::Other("the start script did not answer for it".into())
        }
        Err(e) => e,
    };
    for p in batch {
        if !answered.contains(&(p.idx, p.attempt)) {
            let (idx, attempt) = (p.idx, p.attempt);
            let error = clone_error(&error);
            let _ = tx
                .send(Msg::SpawnFailed {
                    idx,
                    attempt,
                    error,
                })
                .await;
        }
    }
}

fn clone_error(e: &SpawnError) -> SpawnError {
    match e {
        SpawnError::Lost(m) => SpawnError::Lost(m.clone()),
        SpawnError::ChannelRefused(m) => SpawnError::ChannelRefused(m.clone()),
        other => SpawnError::Other(other.to_string()),
    }
}

/// The run directory's file of follower offsets.
pub(crate) const FOLLOW_FILE: &str = "follow.json";

/// Offsets saved by an earlier controller of the run, per host label.
fn load_offsets(
    dir: &std::path::Path,
) -> std::collections::HashMap<String, std::collections::HashMap<String, u64>> {
    std::fs::read_to_string(dir.join(FOLLOW_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}
