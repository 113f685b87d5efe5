//! The dry-run rendering of a placed plan (`sortie launch --dry-run`).
//!
//! Owns the text a person reads to check a plan before running it: the roles, the placement
//! (per host: processes by role), the start schedule (the first lines per role and a summary)
//! and the thresholds. It is plain text, with no colour or terminal width logic; secrets from
//! the controller's environment are shown by name only.

use std::fmt::Write as _;
use std::time::Duration;

use sortie_inventory::hostexpr::fold;

use super::model::*;
use super::Plan;

/// What the dry run shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DryRunOptions {
    /// Schedule lines shown per role (the rest is summarised).
    pub schedule_lines: usize,
    /// Keys listed per host and role in the placement (the rest is counted).
    pub keys_per_host: usize,
}

impl Default for DryRunOptions {
    fn default() -> Self {
        Self {
            schedule_lines: 8,
            keys_per_host: 6,
        }
    }
}

/// `300ms`, `20s`, `1.25s`, `2m`, `1h30m`.
fn dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 && d.subsec_nanos() % 1_000_000 == 0 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 {
        return match (secs / 3600, secs % 3600 / 60, secs % 60) {
            (0, 0, s) => format!("{s}s"),
            (0, m, 0) => format!("{m}m"),
            (0, m, s) => format!("{m}m{s}s"),
            (h, 0, 0) => format!("{h}h"),
            (h, m, 0) => format!("{h}h{m}m"),
            (h, m, s) => format!("{h}h{m}m{s}s"),
        };
    }
    let s = format!("{:.3}", d.as_secs_f64());
    format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
}

fn rate(r: &crate::units::Rate) -> String {
    let per_s = r.per_second();
    if (per_s - per_s.round()).abs() < 1e-9 {
        format!("{}/s", per_s.round())
    } else {
        format!("1 every {}", dur(r.interval()))
    }
}

fn offset(d: Duration) -> String {
    format!("+{:.3}s", d.as_secs_f64())
}

/// Renders the dry run with [`DryRunOptions::default`].
pub fn render_dry_run(plan: &Plan) -> String {
    render_dry_run_with(plan, &DryRunOptions::default())
}

/// Renders the dry run: roles, placement, start schedule, thresholds.
pub fn render_dry_run_with(plan: &Plan, opts: &DryRunOptions) -> String {
    let mut o = String::new();
    dry_run_header(&mut o, plan);
    let _ = writeln!(o, "\nroles (in start order):");
    for role in &plan.roles {
        let procs: Vec<&ProcessSpec> = plan.processes_of(&role.name).collect();
        role_facts(&mut o, role, &procs);
        role_stop_and_env(&mut o, role, &procs);
    }
    let width = plan.hosts.iter().map(|h| h.label.len()).max().unwrap_or(0);
    dry_run_placement(&mut o, plan, opts, width);
    dry_run_schedule(&mut o, plan, opts, width);
    dry_run_thresholds(&mut o, plan);
    dry_run_transfers(&mut o, plan);
    o
}

/// The plan line and the run settings.
fn dry_run_header(o: &mut String, plan: &Plan) {
    let short = plan.digest.get(..12).unwrap_or(&plan.digest);
    let _ = writeln!(
        o,
        "plan {} ({}, sha256 {short}), {} processes on {} hosts",
        plan.name,
        plan.path.display(),
        plan.processes.len(),
        plan.hosts.len()
    );
    for s in &plan.overrides {
        let _ = writeln!(o, "  --set {s}");
    }
    let hold = plan
        .run
        .duration
        .map_or_else(|| "until Ctrl-C".to_owned(), |d| format!("for {}", dur(d)));
    let _ = write!(o, "run: hold {hold} once all are ready");
    if let Some(r) = &plan.run.rate {
        let _ = write!(o, "; overall start rate {}", rate(r));
    }
    if let Some(m) = plan.run.max_starting {
        let _ = write!(o, "; at most {m} starting at once");
    }
    let _ = writeln!(o, "; run dir {}", plan.run_dir("<timestamp>").display());
}

/// A role's hosts, data, key, pace, dependency and readiness.
fn role_facts(o: &mut String, role: &Role, procs: &[&ProcessSpec]) {
    let mut labels: Vec<String> = procs.iter().map(|p| p.host.clone()).collect();
    labels.sort();
    labels.dedup();
    let from = match &role.hosts {
        RoleHosts::Group(g) => format!(" (group {g})"),
        RoleHosts::Inline(_) => String::new(),
    };
    let _ = writeln!(
        o,
        "  {}: {} process(es) on {}{from}",
        role.name,
        procs.len(),
        fold(&labels)
    );
    let mut facts = Vec::new();
    if let Some(d) = &role.for_each {
        facts.push(format!("for each row of {d} x{}", role.count));
    }
    facts.push(format!("key {}", role.key));
    if let Some(s) = role.slots {
        facts.push(format!("{s} slot(s) per host"));
    }
    if let Some(r) = &role.rate {
        facts.push(format!("rate {}", rate(r)));
    }
    if let Some(s) = role.min_spacing_per_key {
        facts.push(format!("{} between starts of one key", dur(s)));
    }
    let _ = writeln!(o, "    {}", facts.join(", "));
    let mut facts = Vec::new();
    if let Some(d) = &role.after {
        facts.push(match d.mode {
            DependencyMode::SameKey => format!("after {} (same key)", d.role),
            DependencyMode::RoleReady => format!("after all of {} ready", d.role),
        });
    }
    match &role.ready {
        Some(r) => facts.push(format!(
            "ready on /{}/ within {}",
            r.as_str(),
            dur(role.ready_timeout)
        )),
        None => facts.push("ready when started".into()),
    }
    if !role.fail.is_empty() {
        facts.push(format!("{} fail pattern(s)", role.fail.len()));
    }
    let _ = writeln!(o, "    {}", facts.join(", "));
}

/// A role's stop sequence, restart policy, and its first process's environment and directory.
/// The stage schedule: from when to when, and the live-process target at the end of each.
fn role_stages(o: &mut String, role: &Role) {
    if let Some(step) = &role.step {
        role_steps(o, step);
    }
    if role.stages.is_empty() {
        return;
    }
    let _ = writeln!(o, "    stages (from the launch's start):");
    let mut at = Duration::ZERO;
    let mut target = 0;
    for (i, st) in role.stages.iter().enumerate() {
        let end = at + st.length();
        let what = match st {
            Stage::Ramp { target: t, over } if over.is_zero() => {
                format!("set to {t} at once")
            }
            Stage::Ramp { target: t, .. } => format!("ramp {target} -> {t}"),
            Stage::Hold(_) => format!("hold {target}"),
        };
        if let Stage::Ramp { target: t, .. } = st {
            target = *t;
        }
        let _ = writeln!(o, "      {}. {} - {}: {what}", i + 1, dur(at), dur(end));
        at = end;
    }
    let _ = writeln!(o, "      then {target} live until the run's duration ends");
}

/// The step schedule: each step's target and when it begins, until `max`.
fn role_steps(o: &mut String, step: &Step) {
    let _ = writeln!(
        o,
        "    step load (from the launch's start): +{} every {} up to {}",
        step.add,
        dur(step.every),
        step.max
    );
    let n = step.steps();
    for k in 0..n {
        if n > 8 && (3..n - 3).contains(&k) {
            if k == 3 {
                let _ = writeln!(o, "      ...");
            }
            continue;
        }
        let at = step.every * k;
        let _ = writeln!(o, "      {}. from {}: {}", k + 1, dur(at), step.target(k));
    }
    let _ = writeln!(
        o,
        "      climbing stops when a threshold fails (then back to the last step that held) \
         or at {}; the run's duration then holds (default: one step)",
        step.max
    );
}

fn role_stop_and_env(o: &mut String, role: &Role, procs: &[&ProcessSpec]) {
    let mut stop: Vec<String> = role
        .stop
        .iter()
        .map(|s| format!("{} {}", s.signal.name(), dur(s.grace)))
        .collect();
    stop.push("KILL".into());
    let restart = match role.restart {
        RestartPolicy::Never => "never".to_owned(),
        RestartPolicy::OnFailure { max_restarts } => {
            format!("on failure, at most {max_restarts}")
        }
    };
    let _ = writeln!(o, "    stop: {}; restart: {restart}", stop.join(" -> "));
    role_stages(o, role);
    if let Some(p) = procs.first() {
        let mut env: Vec<String> = p
            .env
            .iter()
            .map(|e| match &e.value {
                EnvValue::Literal(v) => format!("{}={v}", e.name),
                EnvValue::FromController => format!("{}=<from sortie's environment>", e.name),
            })
            .collect();
        if env.is_empty() {
            env.push("(none)".into());
        }
        let _ = writeln!(o, "    env: {}", env.join(" "));
        if let Some(f) = &p.fresh_dir {
            let links: Vec<&str> = f.links.iter().map(|(l, _)| l.as_str()).collect();
            let _ = writeln!(
                o,
                "    cwd: fresh directory per process, e.g. {}{}",
                f.path,
                if links.is_empty() {
                    String::new()
                } else {
                    format!(" (links {})", links.join(", "))
                }
            );
        } else if let Some(c) = &p.cwd {
            let _ = writeln!(o, "    cwd: {c}");
        }
    }
}

/// Per host, the processes of each role.
fn dry_run_placement(o: &mut String, plan: &Plan, opts: &DryRunOptions, width: usize) {
    let _ = writeln!(o, "\nplacement:");
    for host in &plan.hosts {
        let mut first = true;
        for role in &plan.roles {
            let keys: Vec<&str> = plan
                .processes_of(&role.name)
                .filter(|p| p.host == host.label)
                .map(|p| p.id.0.split_once('/').map_or(p.id.0.as_str(), |(_, k)| k))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let shown = keys.len().min(opts.keys_per_host);
            let more = if keys.len() > shown {
                format!(" (+{} more)", keys.len() - shown)
            } else {
                String::new()
            };
            let label = if first { host.label.as_str() } else { "" };
            first = false;
            let _ = writeln!(
                o,
                "  {label:width$}  {} x{}: {}{more}",
                role.name,
                keys.len(),
                keys[..shown].join(" ")
            );
        }
    }
}

/// Per role, when its processes start.
fn dry_run_schedule(o: &mut String, plan: &Plan, opts: &DryRunOptions, width: usize) {
    let _ = writeln!(o, "\nstart schedule (offsets from each role's start):");
    for role in &plan.roles {
        let procs: Vec<&ProcessSpec> = plan.processes_of(&role.name).collect();
        let idw = procs.iter().map(|p| p.id.0.len()).max().unwrap_or(0);
        let wait = match &role.after {
            None => "at the run start".to_owned(),
            Some(d) if d.mode == DependencyMode::SameKey => {
                format!("once {}/<same key> is ready", d.role)
            }
            Some(d) => format!("once all of {} is ready", d.role),
        };
        let _ = writeln!(o, "  {} (starts {wait}):", role.name);
        for p in procs.iter().take(opts.schedule_lines) {
            let _ = writeln!(
                o,
                "    {:>9}  {:idw$}  {:width$}  {}",
                offset(p.start_offset),
                p.id.0,
                p.host,
                p.command
            );
        }
        if procs.len() > opts.schedule_lines {
            let _ = writeln!(o, "    ... {} more", procs.len() - opts.schedule_lines);
        }
        if let Some(last) = procs.last() {
            let _ = writeln!(
                o,
                "    {} start(s) over {}",
                procs.len(),
                offset(last.start_offset)
            );
        }
    }
}

/// The plan's thresholds.
fn dry_run_thresholds(o: &mut String, plan: &Plan) {
    if !plan.thresholds.is_empty() {
        let _ = writeln!(o, "\nthresholds:");
        for t in &plan.thresholds {
            let scope = t.role.as_deref().unwrap_or("all roles");
            let bounds: Vec<String> = t
                .bounds
                .iter()
                .map(|b| {
                    let (op, v) = match b {
                        Bound::Min(v) => (">=", *v),
                        Bound::Max(v) => ("<=", *v),
                    };
                    match t.metric {
                        Metric::TimeToReady { .. } => {
                            format!("{op} {}", dur(Duration::from_secs_f64(v)))
                        }
                        _ => format!("{op} {v}"),
                    }
                })
                .collect();
            let mut when = match t.window {
                Some(w) => format!(", over each last {} during the run", dur(w)),
                None => String::new(),
            };
            if t.abort {
                when.push_str(", aborts the run when it fails");
            }
            let _ = writeln!(o, "  {} ({scope}) {}{when}", t.metric, bounds.join(" and "));
        }
    }
}

/// The plan's uploads and collections.
fn dry_run_transfers(o: &mut String, plan: &Plan) {
    for (what, list) in [("upload", &plan.uploads), ("collect", &plan.collects)] {
        for t in list {
            let scope = t
                .role
                .as_deref()
                .map_or_else(|| "all hosts".to_owned(), |r| format!("hosts of {r}"));
            let _ = writeln!(
                o,
                "{what} {} -> {} ({scope}; {when})",
                t.src,
                t.dest,
                when = if what == "upload" {
                    "before each host's first start"
                } else {
                    "after the stop, into <run-dir>/<dest>/<host>/"
                }
            );
        }
    }
}
