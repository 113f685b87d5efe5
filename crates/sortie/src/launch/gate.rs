//! Start gating: when the next process may start, given the rates and spacings of a plan.
//!
//! Owns the timing rules that are not about dependencies or hosts: the role's `rate`, the
//! run-wide `rate`, `min_spacing_per_key` (between two starts of the same key in a role) and
//! `max_starting`. Pure and synchronous: the core asks [`Gate::earliest`] and tells
//! [`Gate::record`] when it started something; time is passed in, so the rules are tested
//! without a clock.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// The rate and spacing state of a launch.
#[derive(Debug)]
pub(crate) struct Gate {
    role_interval: Vec<Option<Duration>>,
    key_spacing: Vec<Option<Duration>>,
    run_interval: Option<Duration>,
    max_starting: Option<usize>,
    last_role: Vec<Option<Instant>>,
    last_run: Option<Instant>,
    last_key: HashMap<(usize, String), Instant>,
}

impl Gate {
    /// A gate for roles with these `(rate interval, per-key spacing)`, a run-wide interval and
    /// a cap on processes starting at once.
    pub(crate) fn new(
        roles: Vec<(Option<Duration>, Option<Duration>)>,
        run_interval: Option<Duration>,
        max_starting: Option<usize>,
    ) -> Self {
        let n = roles.len();
        let (role_interval, key_spacing) = roles.into_iter().unzip();
        Gate {
            role_interval,
            key_spacing,
            run_interval,
            max_starting,
            last_role: vec![None; n],
            last_run: None,
            last_key: HashMap::new(),
        }
    }

    /// Whether another process may be starting while `starting` are.
    pub(crate) fn has_room(&self, starting: usize) -> bool {
        self.max_starting.is_none_or(|m| starting < m)
    }

    /// The earliest instant a process of `role` with `key` may start (may be in the past).
    pub(crate) fn earliest(&self, role: usize, key: &str, not_before: Instant) -> Instant {
        let mut t = not_before;
        if let (Some(last), Some(iv)) = (self.last_role[role], self.role_interval[role]) {
            t = t.max(last + iv);
        }
        if let (Some(last), Some(iv)) = (self.last_run, self.run_interval) {
            t = t.max(last + iv);
        }
        if let Some(gap) = self.key_spacing[role] {
            if let Some(last) = self.last_key.get(&(role, key.to_string())) {
                t = t.max(*last + gap);
            }
        }
        t
    }

    /// A process of `role` with `key` started at `now`.
    pub(crate) fn record(&mut self, role: usize, key: &str, now: Instant) {
        self.last_role[role] = Some(now);
        self.last_run = Some(now);
        if self.key_spacing[role].is_some() {
            self.last_key.insert((role, key.to_string()), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn role_rate_spaces_starts_within_a_role_only() {
        let t0 = Instant::now();
        let mut g = Gate::new(vec![(Some(200 * MS), None), (None, None)], None, None);
        assert_eq!(g.earliest(0, "a", t0), t0);
        g.record(0, "a", t0);
        assert_eq!(g.earliest(0, "b", t0), t0 + 200 * MS);
        // another role without a rate is not held back
        assert_eq!(g.earliest(1, "a", t0), t0);
    }

    #[test]
    fn run_rate_applies_across_roles() {
        let t0 = Instant::now();
        let mut g = Gate::new(vec![(None, None), (None, None)], Some(100 * MS), None);
        g.record(0, "a", t0);
        assert_eq!(g.earliest(1, "z", t0), t0 + 100 * MS);
    }

    #[test]
    fn key_spacing_holds_the_same_key_only() {
        let t0 = Instant::now();
        let mut g = Gate::new(vec![(None, Some(350 * MS))], None, None);
        g.record(0, "ch1", t0);
        assert_eq!(g.earliest(0, "ch1", t0 + 10 * MS), t0 + 350 * MS);
        assert_eq!(g.earliest(0, "ch2", t0 + 10 * MS), t0 + 10 * MS);
    }

    #[test]
    fn the_strictest_rule_wins_and_not_before_is_kept() {
        let t0 = Instant::now();
        let mut g = Gate::new(vec![(Some(100 * MS), Some(350 * MS))], Some(50 * MS), None);
        g.record(0, "k", t0);
        assert_eq!(g.earliest(0, "k", t0), t0 + 350 * MS);
        assert_eq!(g.earliest(0, "j", t0), t0 + 100 * MS);
        assert_eq!(g.earliest(0, "j", t0 + 1000 * MS), t0 + 1000 * MS);
    }

    #[test]
    fn max_starting_caps_processes_in_flight() {
        let g = Gate::new(vec![(None, None)], None, Some(2));
        assert!(g.has_room(1));
        assert!(!g.has_room(2));
        assert!(Gate::new(vec![], None, None).has_room(10_000));
    }
}
