//! The text a person reads about a launch: the live status lines, one line per notable event,
//! and the end-of-run summary. Pure functions of events or of the folded report; where the text
//! goes (terminal, stderr, a file) is the caller's business.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use sortie_events::launch::{
    Ending, LaunchEvent, RoleCounts, TransferOutcome, TransferRecord, TransferStep,
};

use super::report::{LaunchReport, ProcessReport};

/// `850ms`, `1.24s`, `2m05s`.
pub fn short_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, s % 3600 / 60)
        }
    }
}

fn ms(v: u64) -> String {
    short_duration(Duration::from_millis(v))
}

/// The live status lines for a [`LaunchEvent::Progress`] (other events give no lines): one
/// header line, then one line per role.
pub fn render_status(ev: &LaunchEvent) -> Vec<String> {
    let LaunchEvent::Progress {
        phase,
        roles,
        starting,
        start_rate,
        elapsed_ms,
        remaining_ms,
    } = ev
    else {
        return Vec::new();
    };
    let mut head = format!(
        "{:?} {} elapsed",
        phase,
        short_duration(Duration::from_millis(*elapsed_ms))
    )
    .to_lowercase();
    if let Some(r) = remaining_ms {
        let _ = write!(head, ", {} left", ms(*r));
    }
    let _ = write!(head, " | starting {starting} | {start_rate:.1} starts/s");
    let width = roles.iter().map(|r| r.role.len()).max().unwrap_or(4).max(4);
    let mut out = vec![head];
    for r in roles {
        out.push(role_line(r, width));
    }
    out
}

fn role_line(r: &RoleCounts, width: usize) -> String {
    let mut s = format!(
        "  {:<width$} {:>4}/{:<4} ready | pending {} starting {} failed {} exited {} stopped {}",
        r.role, r.ready, r.planned, r.pending, r.starting, r.failed, r.exited, r.stopped
    );
    if r.never_started > 0 {
        let _ = write!(s, " never-started {}", r.never_started);
    }
    if let Some(t) = r.target {
        let _ = write!(s, " | target {t}");
    }
    if r.restarts > 0 {
        let _ = write!(s, " restarts {}", r.restarts);
    }
    s
}

/// One line for a notable event (failures, losses, host problems), or `None`.
pub fn render_notable(ev: &LaunchEvent) -> Option<String> {
    Some(match ev {
        LaunchEvent::HostFailed { host, message } => format!("host {host} failed: {message}"),
        LaunchEvent::HostLost { host, message } => format!("host {host} lost: {message}"),
        LaunchEvent::LaunchDetached { hold_ms, .. } => format!(
            "detached: the hosts hold the fleet for {} and then stop it by themselves",
            ms(*hold_ms)
        ),
        LaunchEvent::StageChanged {
            role,
            stage,
            target,
            ..
        } => format!("{role}: stage {stage}, toward {target} live"),
        LaunchEvent::LaunchAttached { .. } => "attached: this controller carries the run on".into(),
        LaunchEvent::ThresholdFailed { reason, .. } => format!("threshold failed: {reason}"),
        LaunchEvent::LaunchAborted { reason, .. } => {
            format!("aborting: {reason} (abort = true); stopping the fleet")
        }
        LaunchEvent::StepBroke {
            role,
            held,
            broke_at,
            reason,
            ..
        } => format!(
            "{role}: step load broke at {broke_at} ({reason}); back to {held}, the last step that held"
        ),
        LaunchEvent::HostDisconnected { host, message, .. } => {
            format!("host {host} disconnected: {message}; its processes keep running, reconnecting")
        }
        LaunchEvent::HostReconnected { host, after_ms, .. } => {
            format!("host {host} reconnected after {}", ms(*after_ms))
        }
        LaunchEvent::ProcessFailed {
            process,
            ending,
            will_restart,
            ..
        } => {
            let what = match ending {
                Ending::Failed { line, .. } => format!("failed: {line}"),
                Ending::ReadyTimeout { timeout_ms } => {
                    format!("not ready within {}", ms(*timeout_ms))
                }
                Ending::ExitedEarly { code, signal } => match (code, signal) {
                    (Some(c), _) => format!("exited early with code {c}"),
                    (_, Some(s)) => format!("exited early on SIG{s}"),
                    _ => "exited early".into(),
                },
                Ending::Lost { message } => format!("lost: {message}"),
                other => other.label().to_string(),
            };
            let again = if *will_restart { " (restarting)" } else { "" };
            format!("{} on {}: {what}{again}", process.id, process.host)
        }
        LaunchEvent::ProcessMoved { process, from } => {
            format!("{} moved from {from} to {}", process.id, process.host)
        }
        LaunchEvent::TransferFinished { transfer: t } if t.outcome != TransferOutcome::Ok => {
            format!(
                "{} on {} {}: {}",
                t.name(),
                t.host,
                if t.outcome == TransferOutcome::Skipped {
                    "skipped"
                } else {
                    "failed"
                },
                t.errors.first().map_or("", String::as_str)
            )
        }
        LaunchEvent::StopConfirmed { survivors, .. } if !survivors.is_empty() => format!(
            "{} process group(s) were still alive after the stop and were killed",
            survivors.len()
        ),
        _ => return None,
    })
}

/// The end-of-run summary: counts per role and ending, time-to-ready percentiles, failures,
/// threshold verdicts.
pub fn render_summary(r: &LaunchReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {} processes on {} hosts in {}{}",
        r.plan,
        r.processes.len(),
        r.hosts.len(),
        ms(r.elapsed_ms),
        if r.interrupted { " (interrupted)" } else { "" }
    );
    if !r.finished {
        let _ = writeln!(
            o,
            "warning: the run did not finish: its record ends {} after the start (the \
             controller stopped); processes whose end was not seen are counted as unfinished",
            ms(r.elapsed_ms)
        );
    }
    render_roles(&mut o, r);
    render_problems(&mut o, r);
    for h in r.hosts.iter().filter(|h| h.disconnects > 0) {
        let _ = writeln!(
            o,
            "host {}: connection lost {} time(s), reconnected {} time(s) after {} in all; {}",
            h.host,
            h.disconnects,
            h.reconnects,
            ms(h.disconnected_ms),
            if h.reconnects >= h.disconnects {
                "its processes ran on"
            } else {
                "then lost for good"
            }
        );
    }
    render_transfers(&mut o, &r.transfers);
    if !r.stop_check.survivors.is_empty() {
        let _ = writeln!(
            o,
            "warning: {} process group(s) were still alive after the stop and were killed",
            r.stop_check.survivors.len()
        );
    }
    for e in &r.stop_check.errors {
        let _ = writeln!(o, "warning: {e}");
    }
    if !r.stop_check.unchecked.is_empty() {
        let _ = writeln!(
            o,
            "warning: could not check for leftover processes on {}",
            r.stop_check.unchecked.join(", ")
        );
    }
    render_verdicts(&mut o, r);
    o
}

/// The per-role table: planned, ready, time to ready and endings.
fn render_roles(o: &mut String, r: &LaunchReport) {
    let width = r
        .roles
        .iter()
        .map(|x| x.role.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        o,
        "  {:<width$} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}  endings",
        "role", "planned", "ready", "ttr p50", "p90", "p99", "max"
    );
    for s in &r.roles {
        let (p50, p90, p99, max) = match &s.time_to_ready {
            Some(p) => (ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        // report.json spells endings in snake_case; people read them with hyphens.
        let endings: Vec<String> = (s.endings.iter())
            .map(|(k, v)| format!("{} {v}", k.replace('_', "-")))
            .collect();
        let mut line = format!(
            "  {:<width$} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}  {}",
            s.role,
            s.planned,
            s.ready,
            p50,
            p90,
            p99,
            max,
            endings.join(", ")
        );
        if s.restarts > 0 {
            let _ = write!(line, ", restarts {}", s.restarts);
        }
        let _ = writeln!(o, "{line}");
    }
}

/// Processes that failed or never started, 20 at most.
fn render_problems(o: &mut String, r: &LaunchReport) {
    let failures: Vec<&ProcessReport> = r
        .processes
        .iter()
        .filter(|p| p.ending.is_failure() || matches!(p.ending, Ending::NeverStarted { .. }))
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(o, "problems:");
        for p in failures.iter().take(20) {
            let what = match &p.ending {
                Ending::Failed { pattern, line } => format!("failed: {line}  (matched {pattern})"),
                Ending::ReadyTimeout { timeout_ms } => {
                    format!("ready-timeout: no ready line within {}", ms(*timeout_ms))
                }
                Ending::ExitedEarly { .. } => format!(
                    "exited early ({})",
                    p.exit.as_ref().map(|e| e.to_string()).unwrap_or_default()
                ),
                Ending::Lost { message } => format!("lost: {message}"),
                Ending::NeverStarted { reason } => format!("never started: {reason}"),
                e => e.label().to_string(),
            };
            let _ = writeln!(o, "  {} on {}: {what}", p.id, p.host);
        }
        if failures.len() > 20 {
            let _ = writeln!(
                o,
                "  ... and {} more (see report.json)",
                failures.len() - 20
            );
        }
    }
}

/// The summary's verdicts: an abort, where step loads broke, and the thresholds.
fn render_verdicts(o: &mut String, r: &LaunchReport) {
    if let Some(a) = &r.aborted {
        let _ = writeln!(o, "aborted at {}: {}", ms(a.at_ms), a.reason);
    }
    for st in &r.steps {
        let _ = writeln!(
            o,
            "step load: held {} {}, broke at {}: {}",
            st.held, st.role, st.broke_at, st.reason
        );
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(o, "thresholds:");
        for t in &r.thresholds {
            let time = t.metric.contains("time_to_ready");
            let fmt = |v: f64| {
                if time {
                    short_duration(Duration::from_secs_f64(v.max(0.0)))
                } else if t.metric == "ready_ratio" {
                    format!("{v:.3}")
                } else {
                    format!("{v}")
                }
            };
            let mut bounds = Vec::new();
            if let Some(m) = t.min {
                bounds.push(format!(">= {}", fmt(m)));
            }
            if let Some(m) = t.max {
                bounds.push(format!("<= {}", fmt(m)));
            }
            let scope = t
                .role
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {} {}{scope} {}: {}",
                if t.passed { "PASS" } else { "FAIL" },
                t.metric,
                bounds.join(" and "),
                t.value.map(fmt).unwrap_or_else(|| "no value".into())
            );
            if let (Some(at), Some(why)) = (t.failed_at_ms, &t.failure) {
                let _ = writeln!(o, "       failed during the run at {}: {why}", ms(at));
            }
        }
    }
}

/// A path as the plan wrote it: the same on every host, or with each host's own name put back
/// as `{host}` (`/opt/{host}/conf`), else `(a path per host)`.
fn per_host(list: &[&TransferRecord], path: impl Fn(&TransferRecord) -> &String) -> String {
    let first = path(list[0]);
    if list.iter().all(|t| path(t) == first) {
        return first.clone();
    }
    let templated = first.replace(&list[0].host, "{host}");
    if templated.contains("{host}")
        && list
            .iter()
            .all(|t| path(t).replace(&t.host, "{host}") == templated)
    {
        templated
    } else {
        "(a path per host)".to_string()
    }
}

/// One line per plan transfer (`upload #1 bin -> /opt/x: ok on 3 hosts, 4 files, 1.2 MiB`),
/// then each host where it did not go well.
fn render_transfers(o: &mut String, transfers: &[TransferRecord]) {
    let mut steps: BTreeMap<(TransferStep, usize), Vec<&TransferRecord>> = BTreeMap::new();
    for t in transfers {
        steps.entry((t.step, t.index)).or_default().push(t);
    }
    for list in steps.values() {
        let first = list[0];
        let ok = list
            .iter()
            .filter(|t| t.outcome == TransferOutcome::Ok)
            .count();
        let files: u64 = list.iter().map(|t| t.files).sum();
        let unchanged: u64 = list.iter().map(|t| t.unchanged).sum();
        let bytes: u64 = list.iter().map(|t| t.bytes).sum();
        let (step, target) = match first.step {
            TransferStep::Upload => ("upload", per_host(list, |t| &t.dest)),
            TransferStep::Collect => (
                "collect",
                // Every host has its own directory under the same parent.
                std::path::Path::new(&first.dest)
                    .parent()
                    .map_or(first.dest.clone(), |p| format!("{}/<host>", p.display())),
            ),
        };
        let src = per_host(list, |t| &t.src);
        let mut line = format!(
            "{step} #{} {src} -> {target}: ok on {ok} of {} hosts, {files} file{}, {}",
            first.index + 1,
            list.len(),
            if files == 1 { "" } else { "s" },
            human_bytes(bytes)
        );
        if unchanged > 0 {
            let _ = write!(line, ", {unchanged} unchanged");
        }
        let _ = writeln!(o, "{line}");
        let bad: Vec<&&TransferRecord> = list
            .iter()
            .filter(|t| t.outcome != TransferOutcome::Ok)
            .collect();
        for t in bad.iter().take(10) {
            let what = if t.outcome == TransferOutcome::Skipped {
                "skipped"
            } else {
                "failed"
            };
            let _ = writeln!(
                o,
                "  {} {what}: {}",
                t.host,
                t.errors.first().map_or("", String::as_str)
            );
        }
        if bad.len() > 10 {
            let _ = writeln!(
                o,
                "  ... and {} more hosts (see report.json)",
                bad.len() - 10
            );
        }
    }
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
