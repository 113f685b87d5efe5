//! The driver of a launch: performs what the [`Core`] decides, and tells it what happened.
//!
//! Host tasks (connect, then the host's uploads) and process tasks (one per attempt, see
//! [`super::process`]) send [`Msg`]s here; the driver `select!`s over them, the interrupt
//! tokens, the core's timer and the progress tick, turns each into an [`Input`] for
//! [`Core::on`], and performs the [`Action`]s it returns: it spawns attempts, stop, kill and
//! leftover-check scripts and collections, and records each event (the run's `events.jsonl`)
//! before sending it to the reporters. It decides nothing itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use sortie_report::launch::EventLog;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::core::{by_host, Action, Core, Input, Settings};
use super::event::LaunchEvent;
use super::hosts::HostPool;
use super::process::{self, Attempt, Msg};
use super::shell;
use super::stage::{self, TransferRecord, TransferStep};
use super::{LaunchOptions, LaunchResult};
use crate::transport::{Exit, SpawnError};

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
}

impl Engine {
    pub(crate) fn new(
        plan: sortie_plan::launch::Plan,
        pools: Vec<Arc<HostPool>>,
        options: LaunchOptions,
        cancel: CancellationToken,
        escalate: CancellationToken,
        out: mpsc::Sender<LaunchEvent>,
        log: Option<EventLog>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(super::QUEUE);
        let settings = Settings {
            run_id: options.run_id.clone(),
            run_dir: options.run_dir.clone(),
            restart_delay: options.restart_delay,
            stop_patience: options.stop_patience,
            controller_env: options.controller_env.clone(),
        };
        let core = Core::new(plan, settings, Instant::now(), chrono::Utc::now());
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
        }
    }

    /// Runs the launch to its end.
    pub(crate) async fn run(mut self) -> LaunchResult {
        self.input(Input::Begin).await;
        self.connect_all();
        let mut tick = tokio::time::interval(self.options.progress_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
                    Some(m) => self.input_of(m).await,
                    None => continue,
                },
                _ = sleep => Input::Timer,
                _ = tick.tick() => Input::Tick,
            };
            self.input(input).await;
        }
        self.finish().await
    }

    /// Connects every host, then runs its uploads (before its first process).
    fn connect_all(&self) {
        let plan = self.core.plan().clone();
        let mut uploads = by_host(&plan, &plan.uploads);
        for (i, pool) in self.pools.iter().enumerate() {
            let pool = pool.clone();
            let tx = self.tx.clone();
            let uploads = std::mem::take(&mut uploads[i]);
            let plan = plan.clone();
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let msg = match pool.connect().await {
                    Ok(()) => {
                        let elapsed = t.elapsed();
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
    }

    /// A task's message as an input of the core; a lost connection comes with whether the
    /// host still has one.
    async fn input_of(&self, m: Msg) -> Input {
        match m {
            Msg::HostUp { host, elapsed } => Input::HostUp { host, elapsed },
            Msg::HostFailed { host, message } => Input::HostFailed { host, message },
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
        self.pools[host].is_up().await
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
                tokio::spawn(process::run(Attempt {
                    idx,
                    attempt,
                    pool: self.pools[host].clone(),
                    command,
                    role,
                    log,
                    secrets,
                    tx: self.tx.clone(),
                }));
            }
            Action::Stop {
                host,
                pgids,
                steps,
                single,
            } => {
                let pool = self.pools[host].clone();
                let script = shell::stop_script(&pgids, &steps);
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
                if !self.pools[host].is_up().await {
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
            } => {
                let pool = self.pools[host].clone();
                if !pool.is_up().await {
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
            }
            Action::Close { host } => self.pools[host].close().await,
            Action::SetDown { host } => self.pools[host].set_down(),
            Action::CancelCollections => self.collect_cancel.cancel(),
        }
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
        for pool in &self.pools {
            pool.close().await;
        }
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
