//! Load shapes: a role with `stages` or a step load keeps as many live processes as its
//! current target says, starting more at the role's rate and spacing when the target rises and
//! stopping the newest first (with the role's stop sequence) when it falls, dependents before
//! what they depend on. Thresholds judged during the run (see `watch`) stop a step load's
//! climb and, with `abort = true`, the run.

use std::time::Duration;

use sortie_events::launch::{LaunchEvent, Phase};
use sortie_plan::launch::{stage_index, stage_target, DependsOn, Stage};
use tokio::time::Instant;

use super::{Core, PState};

/// How often thresholds are judged during the run.
const JUDGE_EVERY: Duration = Duration::from_secs(1);
/// After a failure, thresholds are judged again this soon (not later than [`JUDGE_EVERY`]),
/// so that `abort` acts at once; a storm of failures costs at most one judgement per 100 ms.
const JUDGE_SOON: Duration = Duration::from_millis(100);

impl Core {
    /// Whether any role has stages or a step load.
    pub(super) fn staged(&self) -> bool {
        (self.roles.iter()).any(|r| !r.stages.is_empty() || r.step.is_some())
    }

    /// When the run ends, from the launch's start, for a run with load shapes: after the last
    /// stage (then `duration`), after a step load's top step (then `duration`), or once a step
    /// load broke, after `duration` (default: one step) at the level that held. `None` while
    /// a step load is still climbing.
    pub(super) fn shape_end(&self, now: Instant) -> Option<Duration> {
        let after = self.plan.run.duration;
        let mut end = Duration::ZERO;
        for (r, role) in self.roles.iter().enumerate() {
            let e = if let Some(step) = &role.step {
                match self.step_broke[r] {
                    Some((_, at)) => at + after.unwrap_or(step.every),
                    None if self.aborted => Duration::ZERO,
                    None => {
                        let top = step.every * step.steps();
                        if now.saturating_duration_since(self.t0) < top {
                            return None;
                        }
                        top + after.unwrap_or_default()
                    }
                }
            } else if !role.stages.is_empty() {
                role.stages.iter().map(Stage::length).sum::<Duration>() + after.unwrap_or_default()
            } else {
                continue;
            };
            end = end.max(e);
        }
        Some(end)
    }

    /// Live processes of role `r`: starting or ready, not on their way out.
    pub(super) fn live(&self, r: usize) -> usize {
        (self.procs.iter())
            .filter(|p| p.role == r && p.running().is_some_and(|x| !x.closing()))
            .count()
    }

    /// Role `r`'s target `t` after the launch's start, the stage (or step) it is in and that
    /// stage's final target, and when the target may change next.
    fn shape_at(
        &self,
        r: usize,
        t: Duration,
    ) -> (Option<u32>, Option<(usize, u32)>, Option<Duration>) {
        let role = &self.roles[r];
        if let Some(step) = &role.step {
            if let Some((held, _)) = self.step_broke[r] {
                return (Some(held), None, None);
            }
            let k = step.index(t);
            if k >= step.steps() {
                return (Some(step.max), None, None);
            }
            let target = step.target(k);
            let next = step.every * (k + 1);
            return (Some(target), Some((k as usize, target)), Some(next));
        }
        let stages = &role.stages;
        let idx = stage_index(stages, t).map(|i| {
            let end: Duration = stages[..=i].iter().map(Stage::length).sum();
            (i, stage_target(stages, end).unwrap_or(0))
        });
        let next = idx.map(|_| t + Duration::from_millis(100));
        (stage_target(stages, t), idx, next)
    }

    /// Recomputes every role's target at `now`, says when a role enters a stage or step, and
    /// returns when the targets change next (every 100 ms during a ramp).
    pub(super) fn update_targets(&mut self, now: Instant) -> Option<Instant> {
        let t = now.saturating_duration_since(self.t0);
        let mut wake: Option<Instant> = None;
        for r in 0..self.roles.len() {
            let (target, idx, next) = self.shape_at(r, t);
            self.targets[r] = target;
            if let Some(n) = next {
                let n = self.t0 + n;
                wake = Some(wake.map_or(n, |w| w.min(n)));
            }
            let idx_only = idx.map(|(i, _)| i);
            if idx_only != self.stage_of[r] {
                self.stage_of[r] = idx_only;
                if let Some((i, target)) = idx {
                    let role = self.roles[r].name.clone();
                    let at_ms = self.at(now);
                    self.emit(LaunchEvent::StageChanged {
                        role,
                        stage: i + 1,
                        target,
                        at_ms,
                    });
                }
            }
        }
        wake
    }

    /// Whether some threshold is judged during the run.
    fn judging(&self) -> bool {
        (self.roles.iter()).any(|r| r.step.is_some())
            || (self.plan.thresholds.iter()).any(|t| t.window.is_some() || t.abort)
    }

    /// Judges the thresholds that are judged during the run, once a second while starting or
    /// holding, and within 100 ms of a failure: a failure is recorded, stops every climbing step load, and with `abort = true`
    /// stops the run.
    pub(super) fn judge(&mut self, now: Instant) {
        if !self.judging() || !matches!(self.phase, Phase::Starting | Phase::Holding) {
            self.judge_at = None;
            return;
        }
        if self.watch.take_news() {
            let soon = self.judged_at.map_or(now, |t| t + JUDGE_SOON);
            self.judge_at = Some(self.judge_at.map_or(soon, |t| t.min(soon)));
        }
        if self.judge_at.is_some_and(|t| now < t) {
            return;
        }
        self.judged_at = Some(now);
        self.judge_at = Some(now + JUDGE_EVERY);
        let plan = self.plan.clone();
        let timeouts: Vec<(String, u64)> = (self.roles.iter())
            .map(|r| (r.name.clone(), r.ready_timeout.as_millis() as u64))
            .collect();
        let timeout = |role: &str| {
            (timeouts.iter())
                .find(|(n, _)| n == role)
                .map_or(u64::MAX / 2, |t| t.1)
        };
        let all = self.roles.iter().any(|r| r.step.is_some());
        let at_ms = self.at(now);
        let failures = self.watch.judge(&plan.thresholds, all, at_ms, &timeout);
        for f in failures {
            self.emit(LaunchEvent::ThresholdFailed {
                index: f.index,
                reason: f.reason.clone(),
                value: f.value,
                at_ms,
            });
            self.break_steps(&f.reason, f.since_ms, now);
            if plan.thresholds[f.index].abort && !self.aborted {
                self.aborted = true;
                self.emit(LaunchEvent::LaunchAborted {
                    reason: f.reason.clone(),
                    at_ms,
                });
                self.abort_stop(now);
            }
        }
    }

    /// Stops the climb of every step load still climbing (its top step included). The break
    /// is charged to the step in which the earliest attempt the failure holds against started
    /// (`since_ms`): a process that takes its whole ready timeout to fail broke the step that
    /// started it, not the one in which the timeout ran out. The target goes back to the step
    /// before it, the last at which every threshold held.
    fn break_steps(&mut self, reason: &str, since_ms: u64, now: Instant) {
        let t = now.saturating_duration_since(self.t0);
        let since = Duration::from_millis(since_ms).min(t);
        for r in 0..self.roles.len() {
            let Some(step) = self.roles[r].step else {
                continue;
            };
            if self.step_broke[r].is_some() || step.index(t) >= step.steps() {
                continue;
            }
            let k = step.index(since);
            let held = if k == 0 { 0 } else { step.target(k - 1) };
            self.step_broke[r] = Some((held, t));
            let (role, at_ms) = (self.roles[r].name.clone(), self.at(now));
            self.emit(LaunchEvent::StepBroke {
                role,
                held,
                broke_at: step.target(k),
                reason: reason.to_string(),
                at_ms,
            });
        }
    }

    /// Live processes that depend on process `i` (same key, or on its whole role).
    fn dependents(&self, i: usize) -> Vec<usize> {
        let id = &self.plan.processes[i].id;
        let role = &self.roles[self.procs[i].role].name;
        (0..self.procs.len())
            .filter(|&j| {
                self.procs[j].running().is_some_and(|x| !x.closing())
                    && match &self.plan.processes[j].depends_on {
                        DependsOn::Processes(ids) => ids.contains(id),
                        DependsOn::Role(r) => r == role,
                        DependsOn::Nothing => false,
                    }
            })
            .collect()
    }

    /// Stops the newest live processes of every role above its target; a process with live
    /// dependents has them stopped first and goes at a later turn.
    pub(super) fn scale_down(&mut self) {
        if !matches!(
            self.phase,
            sortie_events::launch::Phase::Starting | sortie_events::launch::Phase::Holding
        ) {
            return;
        }
        for r in 0..self.roles.len() {
            let Some(target) = self.targets[r] else {
                continue;
            };
            let mut excess = self.live(r).saturating_sub(target as usize);
            if excess == 0 {
                continue;
            }
            let mut live: Vec<(Instant, usize)> = (0..self.procs.len())
                .filter(|&i| self.procs[i].role == r)
                .filter_map(|i| match &self.procs[i].state {
                    PState::Starting(x) | PState::Ready(x) if !x.closing() => Some((x.started, i)),
                    _ => None,
                })
                .collect();
            live.sort_by(|a, b| b.cmp(a)); // newest first
            for (_, i) in live {
                if excess == 0 {
                    break;
                }
                let deps = self.dependents(i);
                if deps.is_empty() {
                    self.stop_one(i);
                    excess -= 1;
                } else {
                    for j in deps {
                        self.stop_one(j);
                    }
                }
            }
        }
    }
}
