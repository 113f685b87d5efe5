//! Load shapes: a role with `stages` keeps as many live processes as its current target says,
//! starting more at the role's rate and spacing when the target rises and stopping the newest
//! first (with the role's stop sequence) when it falls, dependents before what they depend on.

use std::time::Duration;

use sortie_events::launch::LaunchEvent;
use sortie_plan::launch::{stage_index, stage_target, DependsOn, Stage};
use tokio::time::Instant;

use super::{Core, PState};

impl Core {
    /// Whether any role has stages.
    pub(super) fn staged(&self) -> bool {
        self.roles.iter().any(|r| !r.stages.is_empty())
    }

    /// When the last stage of any role ends, from the launch's start.
    pub(super) fn stages_end(&self) -> Duration {
        (self.roles.iter())
            .map(|r| r.stages.iter().map(Stage::length).sum())
            .max()
            .unwrap_or_default()
    }

    /// Live processes of role `r`: starting or ready, not on their way out.
    pub(super) fn live(&self, r: usize) -> usize {
        (self.procs.iter())
            .filter(|p| p.role == r && p.running().is_some_and(|x| !x.closing()))
            .count()
    }

    /// Recomputes every role's target at `now`, says when a role enters a stage, and returns
    /// when the targets change next (every 100 ms during a ramp).
    pub(super) fn update_targets(&mut self, now: Instant) -> Option<Instant> {
        let t = now.saturating_duration_since(self.t0);
        let mut wake = None;
        for r in 0..self.roles.len() {
            let stages = &self.roles[r].stages;
            self.targets[r] = stage_target(stages, t);
            let idx = stage_index(stages, t);
            if idx.is_some() {
                wake = Some(now + Duration::from_millis(100));
            }
            if idx != self.stage_of[r] {
                self.stage_of[r] = idx;
                if let Some(i) = idx {
                    let end: Duration = stages[..=i].iter().map(Stage::length).sum();
                    let target = stage_target(stages, end).unwrap_or(0);
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
