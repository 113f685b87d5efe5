//! The core's lifecycle decisions: starting (dependencies, hosts, rates, restarts, moves),
//! holding, stopping dependents first, the leftover check, collecting, and the counts.

use std::collections::HashMap;
use std::time::Duration;

use sortie_events::launch::{Ending, ExitInfo, LaunchEvent, Phase, RoleCounts, TransferStep};
use sortie_plan::launch::{DependsOn, EnvValue, RestartPolicy};
use tokio::time::Instant;

use super::{by_host, ms, Action, Core, HostState, PState, Running};
use crate::launch::{shell, stage};
use crate::transport::Command;

impl Core {
    // ----- starting -----

    fn starting_count(&self) -> usize {
        (self.procs.iter())
            .filter(|p| matches!(p.state, PState::Starting(_)))
            .count()
    }

    /// Per role: (some process not settled yet, some process ready), for role dependencies.
    /// A pending process of a role at its stage target is settled (it waits for the target).
    fn role_states(&self) -> Vec<(bool, bool)> {
        let full = self.full_roles();
        let mut v = vec![(false, false); self.roles.len()];
        for p in &self.procs {
            match p.state {
                PState::Ready(_) => v[p.role].1 = true,
                PState::Done { .. } => {}
                PState::Pending { .. } if full[p.role] => {}
                _ => v[p.role].0 = true,
            }
        }
        v
    }

    /// Per role: whether it has stages and as many live processes as their target.
    pub(super) fn full_roles(&self) -> Vec<bool> {
        let mut live = vec![0usize; self.roles.len()];
        for p in &self.procs {
            if p.running().is_some_and(|x| !x.closing()) {
                live[p.role] += 1;
            }
        }
        (0..self.roles.len())
            .map(|r| self.targets[r].is_some_and(|t| live[r] >= t as usize))
            .collect()
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
                    match &self.procs[j].state {
                        PState::Ready(r) if r.failure().is_none() => {}
                        PState::Done { ending } => {
                            return Err(format!("it depends on {id}, which {}", ending.label()));
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
                match roles[ri] {
                    (true, _) => Ok(false),
                    (false, true) => Ok(true),
                    (false, false) => Err(format!(
                        "it depends on role {r}, which has no ready process"
                    )),
                }
            }
        }
    }

    /// Starts every process that may start now; returns when to look again.
    pub(super) fn schedule(&mut self, now: Instant) -> Option<Instant> {
        if !matches!(self.phase, Phase::Starting | Phase::Holding) {
            return None;
        }
        let mut wake: Option<Instant> = None;
        let mut starting = self.starting_count();
        let mut roles = self.role_states();
        // Room under each staged role's target.
        let mut room: Vec<Option<usize>> = (0..self.roles.len())
            .map(|r| self.targets[r].map(|t| (t as usize).saturating_sub(self.live(r))))
            .collect();
        for i in 0..self.procs.len() {
            let PState::Pending { not_before } = self.procs[i].state else {
                continue;
            };
            if room[self.procs[i].role] == Some(0) {
                continue; // at the stage target: waits for it to rise
            }
            match &self.hosts[self.procs[i].host] {
                HostState::Up => {}
                HostState::Connecting | HostState::Disconnected => continue,
                HostState::Failed(m) | HostState::Lost(m) => {
                    let m = m.clone();
                    self.move_or_never(i, &m);
                    continue;
                }
            }
            match self.deps(i, &roles) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(reason) => {
                    self.never(i, reason);
                    roles = self.role_states();
                    continue;
                }
            }
            if !self.gate.has_room(starting) {
                break;
            }
            let key = &self.plan.processes[i].key;
            let t = self.gate.earliest(self.procs[i].role, key, not_before);
            if t <= now {
                let role = self.procs[i].role;
                self.start(i, now);
                starting += 1;
                if let Some(n) = &mut room[role] {
                    *n -= 1;
                }
            } else {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        wake
    }

    /// The command of process `i` with its environment; `Err` names a controller variable
    /// that is not set.
    fn command(&self, i: usize) -> Result<(Command, Vec<String>), String> {
        let spec = &self.plan.processes[i];
        let mut env = Vec::with_capacity(spec.env.len());
        let mut secrets = Vec::new();
        for v in &spec.env {
            match &v.value {
                EnvValue::Literal(s) => env.push((v.name.clone(), s.clone())),
                EnvValue::FromController => match (self.settings.controller_env)(&v.name) {
                    Some(s) => {
                        if s.len() >= 4 {
                            secrets.push(s.clone());
                        }
                        env.push((v.name.clone(), s));
                    }
                    None => return Err(format!("controller variable {} is not set", v.name)),
                },
            }
        }
        let command = Command {
            command: shell::process_command(spec),
            shell: crate::transport::CommandShell::Posix,
            env,
            cwd: None,
            stdin: None,
        };
        Ok((command, secrets))
    }

    fn start(&mut self, i: usize, now: Instant) {
        let (command, secrets) = match self.command(i) {
            Ok(c) => c,
            Err(reason) => return self.never(i, reason),
        };
        let p = &mut self.procs[i];
        p.attempt += 1;
        p.state = PState::Starting(Running {
            started: now,
            pgid: None,
            closing: None,
        });
        let (attempt, role, host) = (p.attempt, p.role, p.host);
        self.gate.record(role, &self.plan.processes[i].key, now);
        self.starts.push_back(now);
        let process = self.pref(i);
        let at_ms = self.at(now);
        self.emit(LaunchEvent::ProcessStarting {
            process,
            attempt,
            at_ms,
            started_at: Some(self.wall(now)),
        });
        self.out.push(Action::Start {
            idx: i,
            attempt,
            host,
            command,
            secrets,
            log: self.logs[i].clone(),
        });
    }

    pub(super) fn never(&mut self, i: usize, reason: String) {
        self.procs[i].state = PState::Done {
            ending: Ending::NeverStarted {
                reason: reason.clone(),
            },
        };
        let process = self.pref(i);
        self.emit(LaunchEvent::ProcessNeverStarted { process, reason });
    }

    pub(super) fn may_restart(&self, i: usize) -> bool {
        let p = &self.procs[i];
        match self.roles[p.role].restart {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure { max_restarts } => {
                p.restarts < max_restarts
                    && matches!(self.phase, Phase::Starting | Phase::Holding)
                    && !self.interrupted
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
                let load = (self.procs.iter())
                    .filter(|q| q.role == p.role && q.host == h && !q.is_done())
                    .count();
                (h, load)
            })
            .filter(|(_, load)| role.slots.is_none_or(|s| (*load as u64) < u64::from(s)))
            .min_by_key(|&(h, load)| (load, matches!(self.hosts[h], HostState::Connecting)))
            .map(|(h, _)| h)
    }

    /// The process's host is unusable: move it when the restart policy allows, else it never
    /// starts.
    pub(super) fn move_or_never(&mut self, i: usize, why: &str) {
        let allowed = matches!(
            self.roles[self.procs[i].role].restart,
            RestartPolicy::OnFailure { .. }
        );
        if allowed {
            if let Some(h) = self.other_host(i) {
                let from = self.label(self.procs[i].host);
                self.procs[i].host = h;
                let process = self.pref(i);
                self.emit(LaunchEvent::ProcessMoved { process, from });
                return;
            }
        }
        let host = self.label(self.procs[i].host);
        self.never(i, format!("host {host}: {why}"));
    }

    // ----- stopping -----

    fn stop_steps(&self, role: usize) -> Vec<(String, Duration)> {
        if self.escalated {
            return Vec::new();
        }
        (self.roles[role].stop.iter())
            .map(|s| (s.signal.name().to_string(), s.grace))
            .collect()
    }

    /// Stops one process with its role's stop sequence (KILL once escalated).
    pub(super) fn stop_one(&mut self, i: usize) {
        let host = self.procs[i].host;
        let role = self.procs[i].role;
        let Some(r) = self.procs[i].running_mut() else {
            return;
        };
        r.request_stop();
        let Some(pgid) = r.pgid else {
            return; // stopped as soon as it has started
        };
        let steps = self.stop_steps(role);
        self.out.push(Action::Stop {
            host,
            pgids: vec![pgid],
            steps,
            single: Some(pgid),
        });
    }

    fn begin_stop(&mut self, now: Instant) {
        self.hold_until = None;
        let reason = if self.interrupted {
            "the run was interrupted before it started"
        } else if self.aborted {
            "the run was aborted before it started"
        } else {
            "the run ended before it started"
        };
        for i in 0..self.procs.len() {
            if !self.procs[i].is_pending() {
                continue;
            }
            if self.targets[self.procs[i].role].is_some() && !self.interrupted {
                self.procs[i].state = PState::Done {
                    ending: Ending::Unused,
                };
                let process = self.pref(i);
                self.emit(LaunchEvent::ProcessUnused { process });
            } else {
                self.never(i, reason.to_string());
            }
        }
        self.set_phase(Phase::Stopping, now);
        self.stop.role = Some(self.roles.len());
        self.next_stop_role(now);
    }

    fn alive_in_role(&self, role: usize) -> bool {
        (self.procs.iter()).any(|p| p.role == role && p.is_alive())
    }

    /// Moves the stop to the previous role (dependents before what they depend on) that has
    /// live processes; stops them all, one script per host. Confirms when none is left.
    fn next_stop_role(&mut self, now: Instant) {
        let Some(mut r) = self.stop.role else {
            return;
        };
        while r > 0 {
            r -= 1;
            if !self.alive_in_role(r) {
                continue;
            }
            self.stop.role = Some(r);
            let steps = self.stop_steps(r);
            let grace: Duration = steps.iter().map(|s| s.1).sum();
            self.stop.deadline = Some(now + grace + self.settings.stop_patience);
            let mut per_host: Vec<(usize, Vec<u32>)> = Vec::new();
            for p in self.procs.iter_mut().filter(|p| p.role == r) {
                let host = p.host;
                if let Some(run) = p.running_mut() {
                    run.request_stop();
                    if let Some(g) = run.pgid {
                        match per_host.iter_mut().find(|(h, _)| *h == host) {
                            Some((_, v)) => v.push(g),
                            None => per_host.push((host, vec![g])),
                        }
                    }
                }
            }
            for (host, pgids) in per_host {
                self.out.push(Action::Stop {
                    host,
                    pgids,
                    steps: steps.clone(),
                    single: None,
                });
            }
            return;
        }
        self.stop.role = None;
        self.stop.deadline = None;
        self.begin_confirm(now);
    }

    /// A threshold with `abort = true` failed: stop as at the end of the run.
    pub(super) fn abort_stop(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Starting | Phase::Holding) {
            self.begin_stop(now);
        }
    }

    /// The first interrupt: stop (or, while collecting, stop collecting).
    pub(super) fn interrupt(&mut self, now: Instant) {
        if self.interrupted {
            return;
        }
        self.interrupted = true;
        if matches!(self.phase, Phase::Starting | Phase::Holding) {
            self.begin_stop(now);
        }
        if self.phase == Phase::Collecting {
            // Everything is stopped already: the user wants out, not the logs.
            self.out.push(Action::CancelCollections);
        }
    }

    /// The second interrupt: KILL every process at once.
    pub(super) fn escalate(&mut self, now: Instant) {
        if self.escalated {
            return;
        }
        self.escalated = true;
        self.interrupted = true;
        if matches!(self.phase, Phase::Starting | Phase::Holding) {
            self.begin_stop(now);
        }
        let mut per_host: HashMap<usize, Vec<u32>> = HashMap::new();
        for p in &mut self.procs {
            let host = p.host;
            if let Some(r) = p.running_mut() {
                r.request_stop();
                if let Some(g) = r.pgid {
                    per_host.entry(host).or_default().push(g);
                }
            }
        }
        let mut per_host: Vec<(usize, Vec<u32>)> = per_host.into_iter().collect();
        per_host.sort_unstable();
        for (host, pgids) in per_host {
            self.out.push(Action::Kill {
                host,
                pgids,
                wait: false,
            });
        }
        // Waiting for exits still applies, but not the graces.
        if self.stop.deadline.is_some() {
            self.stop.deadline = Some(now + self.settings.stop_patience);
        }
    }

    /// Processes of role `r` whose exit never came within the stop's patience.
    fn give_up_on_role(&mut self, r: usize, now: Instant) {
        for i in 0..self.procs.len() {
            if self.procs[i].role != r {
                continue;
            }
            let Some(ending) = self.procs[i].stopped_ending() else {
                continue;
            };
            self.procs[i].state = PState::Done { ending };
            let process = self.pref(i);
            let at_ms = self.at(now);
            self.emit(LaunchEvent::ProcessStopped {
                process,
                exit: ExitInfo {
                    note: Some("no exit seen after the stop sequence".into()),
                    ..Default::default()
                },
                at_ms,
            });
        }
    }

    // ----- the leftover check and collections -----

    fn begin_confirm(&mut self, now: Instant) {
        self.set_phase(Phase::Confirming, now);
        for h in 0..self.hosts.len() {
            let pgids = self.host_pgids[h].clone();
            if pgids.is_empty() {
                continue;
            }
            if !matches!(self.hosts[h], HostState::Up) {
                let label = self.label(h);
                self.stop.unchecked.push(label);
                continue;
            }
            self.stop.hosts_checked += 1;
            self.stop.confirm_waiting[h] = true;
            self.out.push(Action::Confirm { host: h, pgids });
        }
        self.stop.confirm_deadline = Some(now + self.settings.stop_patience);
    }

    /// The leftover check is over (answered or out of patience).
    fn end_confirm(&mut self) {
        for h in 0..self.hosts.len() {
            if std::mem::take(&mut self.stop.confirm_waiting[h]) {
                // The check never answered: say so rather than report the host clean.
                self.stop.hosts_checked -= 1;
                let label = self.label(h);
                self.stop.unchecked.push(label);
            }
        }
        self.stop.confirm_deadline = None;
        self.emit(LaunchEvent::StopConfirmed {
            hosts_checked: self.stop.hosts_checked,
            unchecked: self.stop.unchecked.clone(),
            survivors: self.stop.survivors.clone(),
        });
    }

    /// Starts the plan's collections on every host still connected; false when there is
    /// nothing to wait for. Hosts that failed or were lost, a launch without a run directory
    /// and a killed launch (second Ctrl-C) get skipped records, so the report says why.
    fn begin_collect(&mut self, now: Instant) -> bool {
        if self.plan.collects.is_empty() {
            return false;
        }
        self.set_phase(Phase::Collecting, now);
        let mut skipped = Vec::new();
        let per_host = by_host(&self.plan, &self.plan.collects);
        for (h, list) in per_host.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let label = self.label(h);
            let why = match (&self.settings.run_dir, &self.hosts[h]) {
                (None, _) => Some("no run directory".to_string()),
                _ if self.escalated => Some("interrupted (killed)".to_string()),
                (_, HostState::Failed(m)) => Some(format!("host failed: {m}")),
                (_, HostState::Lost(m)) => Some(format!("host lost: {m}")),
                (_, HostState::Connecting) => Some("host never connected".to_string()),
                (_, HostState::Disconnected) => Some("host disconnected".to_string()),
                (_, HostState::Up) => None,
            };
            match (why, &self.settings.run_dir) {
                (None, Some(run_dir)) => {
                    self.collect_waiting[h] = true;
                    let run_dir = run_dir.clone();
                    self.out.push(Action::Collect {
                        host: h,
                        list,
                        run_dir,
                    });
                }
                (why, _) => {
                    let why = why.unwrap_or_default();
                    skipped.extend(list.iter().map(|(i, t)| {
                        stage::skipped(TransferStep::Collect, *i, t, &label, why.clone())
                    }));
                }
            }
        }
        for r in skipped {
            self.emit(LaunchEvent::TransferFinished { transfer: r });
        }
        self.collect_waiting.iter().any(|w| *w)
    }

    /// Phase transitions; true when the launch is over.
    pub(super) fn advance(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Starting => {
                let full = self.full_roles();
                let unsettled = self.procs.iter().any(|p| match p.state {
                    PState::Pending { .. } => !full[p.role],
                    PState::Starting(_) => true,
                    _ => false,
                });
                if !unsettled {
                    self.set_phase(Phase::Holding, now);
                    self.hold_until = if self.staged() {
                        // The run ends after its load shapes, and `duration` holds after them.
                        self.shape_end(now).map(|e| self.t0 + e)
                    } else {
                        self.plan.run.duration.map(|d| now + d)
                    };
                    let ready = (self.procs.iter()).any(|p| matches!(p.state, PState::Ready(_)));
                    if !ready && !self.staged() {
                        self.begin_stop(now);
                    }
                }
            }
            // A run taken over waits for its hosts before it decides anything about them.
            Phase::Holding if self.resumed && self.hosts.contains(&HostState::Connecting) => {}
            Phase::Holding => {
                if self.staged() {
                    self.hold_until = self.shape_end(now).map(|e| self.t0 + e);
                }
                let hold_over = self.hold_until.is_some_and(|t| now >= t);
                let nothing_left = self.procs.iter().all(|p| p.is_done());
                if hold_over || nothing_left {
                    self.begin_stop(now);
                }
            }
            Phase::Stopping => {
                if let Some(r) = self.stop.role {
                    let waiting = self.alive_in_role(r);
                    let late = self.stop.deadline.is_some_and(|d| now >= d);
                    if late && waiting {
                        self.give_up_on_role(r, now);
                    }
                    if !waiting || late {
                        self.next_stop_role(now);
                    }
                }
            }
            Phase::Confirming => {
                let late = self.stop.confirm_deadline.is_some_and(|d| now >= d);
                if !self.stop.confirm_waiting.iter().any(|w| *w) || late {
                    self.end_confirm();
                    if !self.begin_collect(now) {
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

    // ----- counts -----

    pub(super) fn counts(&self) -> Vec<RoleCounts> {
        let mut out: Vec<RoleCounts> = (self.roles.iter())
            .map(|r| RoleCounts {
                role: r.name.clone(),
                ..Default::default()
            })
            .collect();
        for p in &self.procs {
            let c = &mut out[p.role];
            c.planned += 1;
            c.restarts += p.restarts;
            match &p.state {
                PState::Pending { .. } => c.pending += 1,
                PState::Starting(r) | PState::Ready(r) if r.failure().is_some() => c.failed += 1,
                PState::Starting(r) | PState::Ready(r) if r.closing() => c.stopped += 1,
                PState::Starting(_) => c.starting += 1,
                PState::Ready(_) => c.ready += 1,
                PState::Done { ending } => match ending {
                    Ending::ReadyThenStopped | Ending::StoppedBeforeReady => c.stopped += 1,
                    Ending::ExitedEarly { .. } => c.exited += 1,
                    Ending::NeverStarted { .. } => c.never_started += 1,
                    Ending::Unused => {}
                    _ => c.failed += 1,
                },
            }
        }
        for (r, c) in out.iter_mut().enumerate() {
            c.target = self.targets[r];
        }
        out
    }

    pub(super) fn progress(&mut self, now: Instant) {
        while (self.starts.front())
            .is_some_and(|t| now.saturating_duration_since(*t) > Duration::from_secs(5))
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
            elapsed_ms: self.at(now),
            remaining_ms: (self.hold_until)
                .filter(|_| self.phase == Phase::Holding)
                .map(|t| ms(t.saturating_duration_since(now))),
        };
        self.emit(ev);
    }
}
