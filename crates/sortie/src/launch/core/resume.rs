//! A core rebuilt from a run's record, for `sortie attach` and `sortie stop`: the events of
//! `events.jsonl` are replayed into the state they describe (and into the report's fold), so
//! the lifecycle carries on where the detached controller left it.

use chrono::{DateTime, Utc};
use sortie_events::launch::{Ending, LaunchEvent, Phase};
use sortie_plan::launch::Plan;
use tokio::time::Instant;

use super::{Closing, Core, HostState, PState, Running, Settings};

impl Core {
    /// The core of a run whose record is `events`, at `now` (wall clock `wall_now`).
    pub(crate) fn resume(
        plan: Plan,
        settings: Settings,
        events: &[LaunchEvent],
        now: Instant,
        wall_now: DateTime<Utc>,
    ) -> Core {
        let wall0 = events
            .iter()
            .find_map(|e| match e {
                LaunchEvent::LaunchStarted { started_at, .. } => {
                    DateTime::parse_from_rfc3339(started_at).ok()
                }
                _ => None,
            })
            .map_or(wall_now, |d| d.with_timezone(&Utc));
        let elapsed = (wall_now - wall0).to_std().unwrap_or_default();
        let t0 = now.checked_sub(elapsed).unwrap_or(now);
        let mut core = Core::new(plan, settings, t0, wall0);
        core.resumed = true;
        for ev in events {
            core.fold.apply(ev);
            core.watch.apply(ev);
            core.replay(ev, t0);
        }
        core
    }

    fn idx(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    fn host_idx(&self, label: &str) -> Option<usize> {
        self.plan.hosts.iter().position(|h| h.label == label)
    }

    /// Applies one recorded event to the state.
    fn replay(&mut self, ev: &LaunchEvent, t0: Instant) {
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        match ev {
            LaunchEvent::StepBroke {
                role, held, at_ms, ..
            } => {
                if let Some(r) = self.roles.iter().position(|x| &x.name == role) {
                    self.step_broke[r] = Some((*held, std::time::Duration::from_millis(*at_ms)));
                }
            }
            LaunchEvent::LaunchAborted { .. } => self.aborted = true,
            LaunchEvent::PhaseChanged { phase, at_ms } => {
                self.phase = *phase;
                if *phase == Phase::Holding {
                    self.hold_until = self.plan.run.duration.map(|d| at(*at_ms) + d);
                }
            }
            LaunchEvent::HostFailed { host, message } => {
                if let Some(h) = self.host_idx(host) {
                    self.hosts[h] = HostState::Failed(message.clone());
                }
            }
            LaunchEvent::HostLost { host, message } => {
                if let Some(h) = self.host_idx(host) {
                    self.hosts[h] = HostState::Lost(message.clone());
                }
            }
            _ => self.replay_process(ev, t0),
        }
    }

    fn replay_process(&mut self, ev: &LaunchEvent, t0: Instant) {
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let Some(process) = ev.process() else {
            return;
        };
        let Some(i) = self.idx(&process.id) else {
            return;
        };
        match ev {
            LaunchEvent::ProcessStarting { attempt, at_ms, .. } => {
                self.procs[i].attempt = *attempt;
                self.procs[i].state = PState::Starting(Running {
                    started: at(*at_ms),
                    pgid: None,
                    closing: None,
                });
            }
            LaunchEvent::ProcessStarted { pgid, .. } => {
                let host = self.procs[i].host;
                if let Some(r) = self.procs[i].running_mut() {
                    r.pgid = *pgid;
                }
                if let Some(g) = pgid {
                    self.host_pgids[host].push(*g);
                }
            }
            LaunchEvent::ProcessReady { .. } => {
                if let PState::Starting(r) = &self.procs[i].state {
                    self.procs[i].state = PState::Ready(r.clone());
                }
            }
            LaunchEvent::ProcessFailed { ending, .. } => {
                let p = &mut self.procs[i];
                if let Some(r) = p.running_mut() {
                    r.closing = Some(Closing::Failed(ending.clone()));
                } else if p.is_pending() {
                    // failed before it ran (a process never started, a host failure)
                    p.state = PState::Done {
                        ending: ending.clone(),
                    };
                }
            }
            LaunchEvent::ProcessExited { exit, .. } => {
                let ending = match self.procs[i].running().and_then(|r| r.closing.clone()) {
                    Some(Closing::Failed(e)) => Some(e),
                    Some(Closing::Stopping) => self.procs[i].stopped_ending(),
                    None => Some(Ending::ExitedEarly {
                        code: exit.code,
                        signal: exit.signal.clone(),
                    }),
                };
                if let Some(ending) = ending {
                    self.procs[i].state = PState::Done { ending };
                }
            }
            LaunchEvent::ProcessStopped { .. } => {
                if let Some(ending) = self.procs[i].stopped_ending() {
                    self.procs[i].state = PState::Done { ending };
                }
            }
            LaunchEvent::ProcessRestarting {
                restarts, at_ms, ..
            } => {
                self.procs[i].restarts = *restarts;
                self.procs[i].state = PState::Pending {
                    not_before: at(*at_ms) + self.settings.restart_delay,
                };
            }
            LaunchEvent::ProcessStartFailed { .. } => {
                self.procs[i].state = PState::Pending { not_before: t0 };
            }
            LaunchEvent::ProcessNeverStarted { reason, .. } => {
                self.procs[i].state = PState::Done {
                    ending: Ending::NeverStarted {
                        reason: reason.clone(),
                    },
                };
            }
            LaunchEvent::ProcessMoved { process, .. } => {
                if let Some(h) = self.host_idx(&process.host) {
                    self.procs[i].host = h;
                }
            }
            _ => {}
        }
    }

    /// The attempts that run on their hosts (for the followers): index, attempt, whether ready,
    /// when started.
    pub(crate) fn running_attempts(&self) -> Vec<(usize, u32, bool, Instant)> {
        (self.procs.iter().enumerate())
            .filter_map(|(i, p)| {
                let r = p.running()?;
                let ready = matches!(p.state, PState::Ready(_));
                Some((i, p.attempt, ready, r.started))
            })
            .collect()
    }

    /// Ends the hold now (`sortie stop`): the fleet stops as at the end of its duration.
    pub(crate) fn end_hold(&mut self, now: Instant) {
        self.hold_until = Some(now);
    }

    /// Where process `idx` logs.
    pub(crate) fn log_of(&self, idx: usize) -> Option<std::path::PathBuf> {
        self.logs[idx].clone()
    }
}
