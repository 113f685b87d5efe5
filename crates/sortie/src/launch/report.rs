//! The end-of-run report of a launch, its statistics and thresholds, and the text a person
//! reads (live status lines and the final summary).
//!
//! Owns [`LaunchReport`] (written as `report.json`), time-to-ready percentiles, threshold
//! verdicts, and two pure renderers: [`render_status`] (a few lines from a
//! [`LaunchEvent::Progress`]) and [`render_summary`]. Nothing here touches a terminal; the
//! CLI decides where the text goes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use sortie_plan::launch::{Bound, Metric, Threshold};

use super::event::{Ending, ExitInfo, LaunchEvent, RoleCounts};
use super::stage::{TransferOutcome, TransferRecord, TransferStep};

/// One process in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessReport {
    /// `ROLE/KEY` or `ROLE/KEY#N`.
    pub id: String,
    /// Role name.
    pub role: String,
    /// Key.
    pub key: String,
    /// Host it ran on last.
    pub host: String,
    /// Host the plan placed it on (differs after a move).
    pub planned_host: String,
    /// Attempts started.
    pub attempts: u32,
    /// Restarts (attempts after a failure).
    pub restarts: u32,
    /// Start of the last attempt (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// When it became ready (last attempt that did).
    pub ready_at: Option<String>,
    /// Time from start to ready, in milliseconds.
    pub time_to_ready_ms: Option<u64>,
    /// How it ended.
    pub ending: Ending,
    /// Its exit.
    pub exit: Option<ExitInfo>,
    /// The first line that marked it failed (fail pattern), over all attempts.
    pub first_failure_line: Option<String>,
    /// Its process group on the host (last attempt).
    pub pgid: Option<u32>,
    /// Its log file, when logs are written.
    pub log: Option<String>,
}

/// Time-to-ready percentiles of a role, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// Per-role summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoleSummary {
    /// Role name.
    pub role: String,
    /// Processes planned.
    pub planned: usize,
    /// Processes that became ready at least once.
    pub ready: usize,
    /// Processes by ending label (`ready-then-stopped`, `failed`, ...).
    pub endings: BTreeMap<String, usize>,
    /// Restarts.
    pub restarts: u32,
    /// Time-to-ready percentiles over processes that became ready.
    pub time_to_ready: Option<Percentiles>,
}

/// A threshold and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// The metric (`ready_ratio`, `p99_time_to_ready`, ...).
    pub metric: String,
    /// The role it applies to (`None`: all processes).
    pub role: Option<String>,
    /// Lower bound (seconds for time metrics).
    pub min: Option<f64>,
    /// Upper bound (seconds for time metrics).
    pub max: Option<f64>,
    /// The measured value (seconds for time metrics); `None` when nothing was measured.
    pub value: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

/// A host in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostReport {
    /// Label.
    pub host: String,
    /// Plan group it came from.
    pub group: String,
    /// Whether it connected.
    pub connected: bool,
    /// Connect failure or loss.
    pub error: Option<String>,
    /// Processes the plan placed on it.
    pub placed: Vec<String>,
}

/// The end-of-run check for leftover processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StopCheck {
    /// Hosts checked.
    pub hosts_checked: usize,
    /// Hosts that could not be checked (lost or never connected but used).
    pub unchecked: Vec<String>,
    /// `(host, pgid)` found alive after the stop (then killed).
    pub survivors: Vec<(String, u32)>,
    /// Stop scripts that could not run (`host: reason`).
    pub errors: Vec<String>,
}

/// The report of a launch (`report.json`). Holds no environment value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LaunchReport {
    /// Plan name.
    pub plan: String,
    /// SHA-256 of the plan file.
    pub digest: String,
    /// Plan file.
    pub plan_path: String,
    /// `--set` overrides applied.
    pub overrides: Vec<String>,
    /// Run directory, when one was written.
    pub run_dir: Option<String>,
    /// Start (RFC 3339, UTC).
    pub started_at: String,
    /// End (RFC 3339, UTC).
    pub finished_at: String,
    /// Length of the run, in milliseconds.
    pub elapsed_ms: u64,
    /// Whether it was interrupted.
    pub interrupted: bool,
    /// Hosts and placement.
    pub hosts: Vec<HostReport>,
    /// Every process.
    pub processes: Vec<ProcessReport>,
    /// Per-role summaries, in dependency order.
    pub roles: Vec<RoleSummary>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// Whether every threshold held.
    pub thresholds_passed: bool,
    /// Leftover-process check.
    pub stop_check: StopCheck,
    /// The plan's `[[upload]]` and `[[collect]]` transfers, one record per transfer and host.
    pub transfers: Vec<TransferRecord>,
}

impl LaunchReport {
    /// Collections that failed or were skipped on a host (missing logs).
    pub fn collections_incomplete(&self) -> usize {
        self.transfers
            .iter()
            .filter(|t| t.step == TransferStep::Collect && t.outcome != TransferOutcome::Ok)
            .count()
    }

    /// Number of processes whose ending is a failure.
    pub fn failed(&self) -> usize {
        self.processes
            .iter()
            .filter(|p| p.ending.is_failure())
            .count()
    }
}

/// Nearest-rank percentile of sorted values (`p` in 1..=100).
pub(crate) fn percentile(sorted: &[u64], p: u8) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((f64::from(p) / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Summaries per role from the processes.
pub(crate) fn summarize(roles: &[String], processes: &[ProcessReport]) -> Vec<RoleSummary> {
    roles
        .iter()
        .map(|r| {
            let mine: Vec<&ProcessReport> = processes.iter().filter(|p| &p.role == r).collect();
            let mut ttr: Vec<u64> = mine.iter().filter_map(|p| p.time_to_ready_ms).collect();
            ttr.sort_unstable();
            let mut endings = BTreeMap::new();
            for p in &mine {
                *endings.entry(p.ending.label().to_string()).or_insert(0) += 1;
            }
            RoleSummary {
                role: r.clone(),
                planned: mine.len(),
                ready: ttr.len(),
                endings,
                restarts: mine.iter().map(|p| p.restarts).sum(),
                time_to_ready: (!ttr.is_empty()).then(|| Percentiles {
                    p50: percentile(&ttr, 50).unwrap_or(0),
                    p90: percentile(&ttr, 90).unwrap_or(0),
                    p99: percentile(&ttr, 99).unwrap_or(0),
                    max: *ttr.last().unwrap_or(&0),
                }),
            }
        })
        .collect()
}

/// Evaluates the plan's thresholds over the processes.
pub(crate) fn evaluate(
    thresholds: &[Threshold],
    processes: &[ProcessReport],
) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let mine: Vec<&ProcessReport> = processes
                .iter()
                .filter(|p| t.role.as_ref().is_none_or(|r| &p.role == r))
                .collect();
            let value = match t.metric {
                Metric::ReadyRatio => {
                    let ready = mine.iter().filter(|p| p.time_to_ready_ms.is_some()).count();
                    Some(if mine.is_empty() {
                        1.0
                    } else {
                        ready as f64 / mine.len() as f64
                    })
                }
                Metric::TimeToReady { percentile: p } => {
                    let mut v: Vec<u64> = mine.iter().filter_map(|p| p.time_to_ready_ms).collect();
                    v.sort_unstable();
                    percentile(&v, p).map(|ms| ms as f64 / 1000.0)
                }
                Metric::Failed => {
                    Some(mine.iter().filter(|p| p.ending.is_failure()).count() as f64)
                }
                Metric::Restarts => Some(mine.iter().map(|p| f64::from(p.restarts)).sum()),
            };
            let (mut min, mut max) = (None, None);
            for b in &t.bounds {
                match b {
                    Bound::Min(v) => min = Some(*v),
                    Bound::Max(v) => max = Some(*v),
                }
            }
            let passed = value.is_some_and(|v| {
                min.is_none_or(|m| v >= m - 1e-9) && max.is_none_or(|m| v <= m + 1e-9)
            });
            ThresholdResult {
                metric: t.metric.to_string(),
                role: t.role.clone(),
                min,
                max,
                value,
                passed,
            }
        })
        .collect()
}

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
        let endings: Vec<String> = s.endings.iter().map(|(k, v)| format!("{k} {v}")).collect();
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
        }
    }
    o
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
            TransferStep::Upload => ("upload", first.dest.clone()),
            TransferStep::Collect => (
                "collect",
                // Every host has its own directory under the same parent.
                std::path::Path::new(&first.dest)
                    .parent()
                    .map_or(first.dest.clone(), |p| format!("{}/<host>", p.display())),
            ),
        };
        let src = if list.iter().all(|t| t.src == first.src) {
            first.src.clone()
        } else {
            "(a path per host)".to_string()
        };
        let mut line = format!(
            "{step} #{} {src} -> {target}: ok on {ok} of {} hosts, {files} files, {}",
            first.index + 1,
            list.len(),
            crate::transfer::human_bytes(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&v, 100), Some(100));
        assert_eq!(percentile(&[7], 1), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[10, 20, 30], 50), Some(20));
    }
}
