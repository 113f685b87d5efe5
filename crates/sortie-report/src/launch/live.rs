//! The live view of a launch: what a person watches while it runs.
//!
//! Three forms, one consumer ([`LiveView::event`]) of the events:
//! - a table redrawn in place on a terminal ([`LiveView::table`]): the status lines of the last
//!   [`LaunchEvent::Progress`] and, when hosts are sampled, one line per host (CPU, load,
//!   memory from its last [`LaunchEvent::HostSample`]), with notable events printed above it. Drawing is indicatif's,
//!   which counts the rows a long line takes once wrapped, so a narrow terminal is redrawn
//!   cleanly instead of filling with stale frames;
//! - status lines when the output is not a terminal ([`LiveView::lines`]): notable events and
//!   phase changes as they happen, the status every few seconds;
//! - the run record's lines, one per event ([`LiveView::json`], `--json`).
//!
//! The view keeps no count of its own: everything it shows is in the events.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sortie_events::launch::LaunchEvent;

use super::record::EventLog;
use super::text::{render_notable, render_status};

/// Interval of status lines when the output is not a terminal.
const STATUS_EVERY: Duration = Duration::from_secs(5);

enum Form {
    Table(ProgressBar),
    Lines {
        out: Box<dyn Write + Send>,
        last_status: Option<Instant>,
    },
    Json {
        out: Box<dyn Write + Send>,
        run_id: String,
    },
}

/// The live view; feed it every event, then call [`LiveView::finish`].
pub struct LiveView {
    form: Form,
    /// Per host, its last sample as one line (the table shows them under the roles).
    hosts: std::collections::BTreeMap<String, String>,
}

/// Hosts the table lists at most (the rest are counted).
const HOST_LINES: usize = 10;

/// One host's line: `  web1  cpu 43% load 1.20 mem 2.1 GiB free of 7.8 GiB`.
fn host_line(s: &sortie_events::launch::HostSample) -> String {
    format!(
        "  {}  cpu {:.0}% load {:.2} mem {} free of {}",
        s.host,
        s.cpu_busy() * 100.0,
        s.load1,
        super::text::human_bytes(s.mem_available_bytes),
        super::text::human_bytes(s.mem_total_bytes)
    )
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView").finish_non_exhaustive()
    }
}

impl LiveView {
    /// The table, drawn on `target` (e.g. `ProgressDrawTarget::stderr()`; a `term_like` target
    /// in tests).
    pub fn table(target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
        LiveView {
            form: Form::Table(bar),
            hosts: Default::default(),
        }
    }

    /// Status lines on `out` (stderr when it is not a terminal), each prefixed `sortie: `.
    pub fn lines(out: Box<dyn Write + Send>) -> Self {
        LiveView {
            form: Form::Lines {
                out,
                last_status: None,
            },
            hosts: Default::default(),
        }
    }

    /// The run record's lines on `out`, flushed one by one (`--json`).
    pub fn json(out: Box<dyn Write + Send>, run_id: &str) -> Self {
        LiveView {
            form: Form::Json {
                out,
                run_id: run_id.to_string(),
            },
            hosts: Default::default(),
        }
    }

    /// Shows one event.
    pub fn event(&mut self, ev: &LaunchEvent) {
        match &mut self.form {
            Form::Json { out, run_id } => {
                let _ = writeln!(out, "{}", EventLog::line(run_id, ev));
                let _ = out.flush();
            }
            Form::Table(bar) => {
                if let Some(line) = render_notable(ev) {
                    bar.println(format!("sortie: {line}"));
                }
                if let LaunchEvent::HostSample(s) = ev {
                    self.hosts.insert(s.host.clone(), host_line(s));
                }
                if matches!(ev, LaunchEvent::Progress { .. }) {
                    let mut lines = render_status(ev);
                    lines.extend(self.hosts.values().take(HOST_LINES).cloned());
                    if self.hosts.len() > HOST_LINES {
                        lines.push(format!(
                            "  ... and {} more hosts",
                            self.hosts.len() - HOST_LINES
                        ));
                    }
                    bar.set_message(lines.join("\n"));
                }
            }
            Form::Lines { out, last_status } => {
                if let Some(line) = render_notable(ev) {
                    let _ = writeln!(out, "sortie: {line}");
                }
                match ev {
                    LaunchEvent::Progress { .. }
                        if last_status.is_none_or(|t| t.elapsed() >= STATUS_EVERY) =>
                    {
                        *last_status = Some(Instant::now());
                        let lines = render_status(ev);
                        let _ = writeln!(out, "sortie: {}", lines.join(" |").replace("  ", " "));
                    }
                    LaunchEvent::PhaseChanged { phase, .. } => {
                        let _ = writeln!(out, "sortie: {}", format!("{phase:?}").to_lowercase());
                    }
                    _ => {}
                }
                let _ = out.flush();
            }
        }
    }

    /// Leaves the last table on screen and flushes. True when a table is left on screen (the
    /// caller may want a blank line after it).
    pub fn finish(&mut self) -> bool {
        match &mut self.form {
            Form::Table(bar) => {
                bar.finish();
                !bar.message().is_empty()
            }
            Form::Lines { out, .. } | Form::Json { out, .. } => {
                let _ = out.flush();
                false
            }
        }
    }
}
