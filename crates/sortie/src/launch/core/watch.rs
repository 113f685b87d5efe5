//! Thresholds judged during the run. The [`Watch`] is fed every event the core emits (and,
//! on `sortie attach`, every recorded one), keeps one small record per attempt, and is asked
//! once a second which thresholds stopped holding.
//!
//! Over a window `W` (or the whole run so far, without `window`), at `now`:
//! - `ready_ratio`: among the attempts started in the window whose outcome is known (ready,
//!   ended, or past their role's ready timeout), the share that became ready; attempts that
//!   sortie stopped before they were ready (a stage scaling down, the run's end) are left out.
//! - `pNN_time_to_ready`: the percentile of time to ready of the attempts ready in the window.
//! - `failed`, `restarts`: how many failures and restarts happened in the window.
//!
//! Nothing to judge yet (no attempt decided, no ready) is not a failure.

use std::collections::HashMap;
use std::time::Duration;

use sortie_events::launch::LaunchEvent;
use sortie_plan::launch::{Bound, Metric, Threshold};
use sortie_report::launch::short_duration;

/// One attempt, on the launch's clock (milliseconds since it began).
struct Attempt {
    role: String,
    started: u64,
    ready: Option<(u64, u64)>,
    ended: Option<u64>,
    stopped: bool,
}

impl Attempt {
    /// Its outcome as `ready_ratio` judges it at `now_ms`: `Some(true)` ready, `Some(false)`
    /// not ready (ended without being stopped by sortie, or past its ready timeout), `None`
    /// not known yet or stopped by sortie before it was ready.
    fn judged(&self, now_ms: u64, timeout_ms: &dyn Fn(&str) -> u64) -> Option<bool> {
        if self.ready.is_some() {
            return Some(true);
        }
        let timed_out = self.started + timeout_ms(&self.role) <= now_ms;
        ((self.ended.is_some() && !self.stopped) || (self.ended.is_none() && timed_out))
            .then_some(false)
    }
}

/// When the window of `t` begins at `now_ms` (0: the whole run so far).
fn window_start(t: &Threshold, now_ms: u64) -> u64 {
    t.window
        .map_or(0, |w| now_ms.saturating_sub(w.as_millis() as u64))
}

/// What the run did, as thresholds judged during it need it.
#[derive(Default)]
pub(super) struct Watch {
    attempts: Vec<Attempt>,
    current: HashMap<String, usize>,
    /// `(at_ms, role, start of the failed attempt)`.
    failures: Vec<(u64, String, u64)>,
    restarts: Vec<(u64, String, u64)>,
    /// Per threshold: failing now (said once per failure).
    failing: Vec<bool>,
    /// A failure or restart arrived since the last [`Watch::take_news`].
    news: bool,
}

/// A threshold that stopped holding: its index, the value, the failure for people, and when
/// the earliest attempt it holds against started (what a step load's break is charged to).
pub(super) struct Failure {
    pub index: usize,
    pub value: f64,
    pub reason: String,
    pub since_ms: u64,
}

impl Watch {
    /// A watch over `n` thresholds.
    pub(super) fn new(n: usize) -> Self {
        Watch {
            failing: vec![false; n],
            ..Watch::default()
        }
    }

    /// Takes one event into account.
    pub(super) fn apply(&mut self, ev: &LaunchEvent) {
        match ev {
            LaunchEvent::ProcessStarted { process, at_ms, .. } => {
                self.current.insert(process.id.clone(), self.attempts.len());
                self.attempts.push(Attempt {
                    role: process.role.clone(),
                    started: *at_ms,
                    ready: None,
                    ended: None,
                    stopped: false,
                });
            }
            LaunchEvent::ProcessReady {
                process,
                time_to_ready_ms,
                at_ms,
                ..
            } => {
                if let Some(a) = self.attempt(&process.id) {
                    a.ready.get_or_insert((*at_ms, *time_to_ready_ms));
                }
            }
            LaunchEvent::ProcessFailed { process, at_ms, .. } => {
                self.news = true;
                let started = self.attempt(&process.id).map_or(*at_ms, |a| {
                    a.ended.get_or_insert(*at_ms);
                    a.started
                });
                self.failures.push((*at_ms, process.role.clone(), started));
            }
            LaunchEvent::ProcessExited { process, at_ms, .. } => {
                if let Some(a) = self.attempt(&process.id) {
                    a.ended.get_or_insert(*at_ms);
                }
            }
            LaunchEvent::ProcessStopped { process, at_ms, .. } => {
                if let Some(a) = self.attempt(&process.id) {
                    a.stopped = a.ended.is_none() && a.ready.is_none();
                    a.ended.get_or_insert(*at_ms);
                }
            }
            LaunchEvent::ProcessRestarting { process, at_ms, .. } => {
                let started = self.attempt(&process.id).map_or(*at_ms, |a| a.started);
                self.restarts.push((*at_ms, process.role.clone(), started));
            }
            LaunchEvent::ThresholdFailed { index, .. } => {
                if let Some(f) = self.failing.get_mut(*index) {
                    *f = true;
                }
            }
            _ => {}
        }
    }

    /// Whether a failure arrived since the last call.
    pub(super) fn take_news(&mut self) -> bool {
        std::mem::take(&mut self.news)
    }

    fn attempt(&mut self, id: &str) -> Option<&mut Attempt> {
        let i = *self.current.get(id)?;
        self.attempts.get_mut(i)
    }

    /// The value of `t` at `now_ms` over its window (or the whole run so far); `None`: nothing
    /// to judge yet. `timeout_ms` gives a role's ready timeout.
    pub(super) fn value(
        &self,
        t: &Threshold,
        now_ms: u64,
        timeout_ms: &dyn Fn(&str) -> u64,
    ) -> Option<f64> {
        let from = window_start(t, now_ms);
        let mine = |role: &str| t.role.as_deref().is_none_or(|r| r == role);
        let in_window = |at: u64| at >= from && at <= now_ms;
        match t.metric {
            Metric::ReadyRatio => {
                let (mut judged, mut ready) = (0usize, 0usize);
                for a in (self.attempts.iter()).filter(|a| mine(&a.role) && in_window(a.started)) {
                    if let Some(r) = a.judged(now_ms, timeout_ms) {
                        judged += 1;
                        ready += usize::from(r);
                    }
                }
                (judged > 0).then(|| ready as f64 / judged as f64)
            }
            Metric::TimeToReady { percentile } => {
                let mut v: Vec<u64> = (self.attempts.iter())
                    .filter(|a| mine(&a.role))
                    .filter_map(|a| a.ready.filter(|(at, _)| in_window(*at)).map(|r| r.1))
                    .collect();
                v.sort_unstable();
                let rank = ((f64::from(percentile) / 100.0) * v.len() as f64).ceil() as usize;
                (!v.is_empty()).then(|| v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0)
            }
            Metric::Failed | Metric::Restarts => {
                let list = match t.metric {
                    Metric::Failed => &self.failures,
                    _ => &self.restarts,
                };
                let n = (list.iter())
                    .filter(|(at, role, _)| in_window(*at) && mine(role))
                    .count();
                Some(n as f64)
            }
        }
    }

    /// Judges `thresholds` at `now_ms` (those with a window or `abort`, or all of them when
    /// `all`); returns the ones that stopped holding since the last time.
    pub(super) fn judge(
        &mut self,
        thresholds: &[Threshold],
        all: bool,
        now_ms: u64,
        timeout_ms: &dyn Fn(&str) -> u64,
    ) -> Vec<Failure> {
        let mut out = Vec::new();
        for (index, t) in thresholds.iter().enumerate() {
            if !(all || t.window.is_some() || t.abort) {
                continue;
            }
            let Some(value) = self.value(t, now_ms, timeout_ms) else {
                continue;
            };
            let broken = t.bounds.iter().find(|b| match b {
                Bound::Min(m) => value < m - 1e-9,
                Bound::Max(m) => value > m + 1e-9,
            });
            let was = std::mem::replace(&mut self.failing[index], broken.is_some());
            if let (Some(b), false) = (broken, was) {
                out.push(Failure {
                    index,
                    value,
                    reason: reason(t, *b, value),
                    since_ms: self.culprit(t, *b, now_ms, timeout_ms),
                });
            }
        }
        out
    }
}

impl Watch {
    /// When the earliest attempt that `t` (failing on bound `b`) holds against started: the
    /// first attempt of the window judged not ready, the first that failed or restarted, or
    /// the first ready too slowly; `now_ms` when none can be named.
    fn culprit(
        &self,
        t: &Threshold,
        b: Bound,
        now_ms: u64,
        timeout_ms: &dyn Fn(&str) -> u64,
    ) -> u64 {
        let from = window_start(t, now_ms);
        let mine = |role: &str| t.role.as_deref().is_none_or(|r| r == role);
        let first = match (t.metric, b) {
            (Metric::ReadyRatio, _) => (self.attempts.iter())
                .filter(|a| mine(&a.role) && a.started >= from)
                .filter(|a| a.judged(now_ms, timeout_ms) == Some(false))
                .map(|a| a.started)
                .min(),
            (Metric::Failed, _) | (Metric::Restarts, _) => {
                let list = if t.metric == Metric::Failed {
                    &self.failures
                } else {
                    &self.restarts
                };
                (list.iter())
                    .filter(|(at, role, _)| *at >= from && mine(role))
                    .map(|x| x.2)
                    .min()
            }
            (Metric::TimeToReady { .. }, Bound::Max(max)) => (self.attempts.iter())
                .filter(|a| mine(&a.role))
                .filter(|a| {
                    a.ready
                        .is_some_and(|(at, ttr)| at >= from && ttr as f64 / 1000.0 > max)
                })
                .map(|a| a.started)
                .min(),
            (Metric::TimeToReady { .. }, Bound::Min(_)) => None,
        };
        first.unwrap_or(now_ms)
    }
}

/// `viewer ready_ratio 0.93 < 0.99 over the last 1m`.
fn reason(t: &Threshold, b: Bound, value: f64) -> String {
    let show = |v: f64| match t.metric {
        Metric::ReadyRatio => format!("{:.2}", (v * 100.0).floor() / 100.0),
        Metric::TimeToReady { .. } => short_duration(Duration::from_secs_f64(v.max(0.0))),
        _ => format!("{v}"),
    };
    let (op, bound) = match b {
        Bound::Min(m) => ("<", m),
        Bound::Max(m) => (">", m),
    };
    let scope = t.role.as_deref().map_or(String::new(), |r| format!("{r} "));
    let over = match t.window {
        Some(w) => format!(" over the last {}", window_text(w)),
        None => " so far".to_string(),
    };
    let bound = match t.metric {
        Metric::ReadyRatio => format!("{bound}"),
        _ => show(bound),
    };
    format!("{scope}{} {} {op} {bound}{over}", t.metric, show(value))
}

/// A window as a plan writes it: `1m`, `30s`, `1.5s`.
fn window_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
