//! The launch's page: `report.html` and the live dashboard, one self-contained HTML file.
//!
//! Owns [`PageFold`] (events in, [`PageData`] out: the report, per-role counts over time and
//! per-host resource series) and [`render_html`], which embeds that data, the page's script
//! and style and the vendored charting library (uPlot, MIT, from the npm registry: see
//! `assets/uplot/`) into one file that opens from disk with no network. The live dashboard
//! serves the same page with `live` set; it then fetches fresh [`PageData`] from the server's
//! event stream and draws it with the same code.
//!
//! Nothing secret reaches the page: it is built from the events and the report, which hold no
//! environment value and no process output beyond a failure's matching line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sortie_events::launch::{HostSample, LaunchEvent, RoleCounts};

use super::report::{LaunchReport, ReportFold};

/// The page's file name inside a run directory.
pub const HTML_FILE: &str = "report.html";

const UPLOT_JS: &str = include_str!("../../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../../assets/uplot/LICENSE");
const PAGE_JS: &str = include_str!("../../assets/page.js");
const PAGE_CSS: &str = include_str!("../../assets/page.css");

/// Per-role process counts over time: a point whenever a count changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CountSeries {
    /// Milliseconds since the launch began.
    pub t: Vec<u64>,
    /// Processes starting (started, not yet ready), per point.
    pub starting: Vec<usize>,
    /// Processes ready.
    pub ready: Vec<usize>,
    /// Processes failed.
    pub failed: Vec<usize>,
    /// Processes being stopped or stopped.
    pub stopped: Vec<usize>,
    /// The load shape's target of live processes (roles with stages or a step load).
    pub target: Vec<Option<u32>>,
}

/// One host's samples over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HostSeries {
    /// Host label.
    pub host: String,
    /// Milliseconds since the launch began, per sample.
    pub t: Vec<u64>,
    /// Busy CPU (user + system), fraction of the host.
    pub cpu: Vec<f64>,
    /// Memory in use (total - available), in bytes.
    pub mem_used: Vec<u64>,
    /// Memory of the host, in bytes.
    pub mem_total: u64,
    /// Bytes received per second over the interval.
    pub rx_rate: Vec<f64>,
    /// Bytes sent per second over the interval.
    pub tx_rate: Vec<f64>,
}

/// Everything the page draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PageData {
    /// The report as far as the events go.
    pub report: LaunchReport,
    /// Counts over time per role, in the report's role order.
    pub counts: Vec<(String, CountSeries)>,
    /// Samples per host, in plan order (hosts never sampled are left out).
    pub hosts: Vec<HostSeries>,
    /// Log paths relative to the run directory (for links), per process id.
    pub log_links: BTreeMap<String, String>,
    /// Whether this is the live dashboard (the page then follows the server's stream).
    pub live: bool,
}

/// Builds the page's data from a launch's events, one at a time (the live dashboard and
/// `sortie report --html` fold the same way).
#[derive(Clone, Debug)]
pub struct PageFold {
    report: ReportFold,
    counts: Vec<(String, CountSeries)>,
    hosts: Vec<HostSeries>,
    host_idx: HashMap<String, usize>,
    run_dir: Option<PathBuf>,
    last_roles: Vec<RoleCounts>,
    last_samples: Vec<Option<HostSample>>,
}

impl PageFold {
    /// An empty fold for run `run_id`.
    pub fn new(run_id: &str) -> Self {
        PageFold {
            report: ReportFold::new(run_id),
            counts: Vec::new(),
            hosts: Vec::new(),
            host_idx: HashMap::new(),
            run_dir: None,
            last_roles: Vec::new(),
            last_samples: Vec::new(),
        }
    }

    /// The report fold inside (for `report.json` and the summary).
    pub fn report_fold(&self) -> &ReportFold {
        &self.report
    }

    /// The latest counts per role (from the last `progress` or `launch_finished`).
    pub fn latest_counts(&self) -> &[RoleCounts] {
        &self.last_roles
    }

    /// The latest sample of each host that has one, in plan order.
    pub fn latest_samples(&self) -> impl Iterator<Item = &HostSample> {
        self.last_samples.iter().flatten()
    }

    /// Takes one event into account.
    pub fn apply(&mut self, ev: &LaunchEvent) {
        self.report.apply(ev);
        match ev {
            LaunchEvent::LaunchStarted {
                roles,
                host_list,
                run_dir,
                ..
            } => {
                self.counts = (roles.iter())
                    .map(|r| (r.clone(), CountSeries::default()))
                    .collect();
                self.hosts = (host_list.iter())
                    .map(|h| HostSeries {
                        host: h.host.clone(),
                        ..HostSeries::default()
                    })
                    .collect();
                self.host_idx = (host_list.iter().enumerate())
                    .map(|(i, h)| (h.host.clone(), i))
                    .collect();
                self.run_dir = run_dir.as_ref().map(PathBuf::from);
                self.last_samples = vec![None; host_list.len()];
            }
            LaunchEvent::Progress {
                roles, elapsed_ms, ..
            }
            | LaunchEvent::LaunchFinished {
                roles, elapsed_ms, ..
            } => {
                self.counts_at(*elapsed_ms, roles);
                self.last_roles = roles.clone();
            }
            LaunchEvent::HostSample(s) => {
                let Some(&i) = self.host_idx.get(&s.host) else {
                    return;
                };
                self.last_samples[i] = Some(s.clone());
                let h = &mut self.hosts[i];
                let secs = (s.interval_ms.max(1)) as f64 / 1000.0;
                h.t.push(s.at_ms);
                h.cpu.push(s.cpu_busy());
                h.mem_used
                    .push(s.mem_total_bytes.saturating_sub(s.mem_available_bytes));
                h.mem_total = s.mem_total_bytes;
                h.rx_rate.push(s.net_rx_bytes as f64 / secs);
                h.tx_rate.push(s.net_tx_bytes as f64 / secs);
            }
            _ => {}
        }
    }

    /// Adds a point to each role whose counts changed since its last point.
    fn counts_at(&mut self, at_ms: u64, roles: &[RoleCounts]) {
        for rc in roles {
            let Some((_, s)) = self.counts.iter_mut().find(|(r, _)| r == &rc.role) else {
                continue;
            };
            let now = [rc.starting, rc.ready, rc.failed, rc.stopped];
            let last = (s.t.len().checked_sub(1)).map(|i| {
                (
                    [s.starting[i], s.ready[i], s.failed[i], s.stopped[i]],
                    s.target[i],
                )
            });
            if last == Some((now, rc.target)) {
                continue;
            }
            s.target.push(rc.target);
            s.t.push(at_ms);
            s.starting.push(rc.starting);
            s.ready.push(rc.ready);
            s.failed.push(rc.failed);
            s.stopped.push(rc.stopped);
        }
    }

    /// The page's data as far as the events go.
    pub fn data(&self, live: bool) -> PageData {
        let report = self.report.report();
        let log_links = (report.processes.iter())
            .filter_map(|p| {
                let log = Path::new(p.log.as_ref()?);
                let rel = match &self.run_dir {
                    Some(dir) => log.strip_prefix(dir).unwrap_or(log),
                    None => log,
                };
                Some((p.id.clone(), rel.display().to_string()))
            })
            .collect();
        PageData {
            report,
            counts: self.counts.clone(),
            hosts: (self.hosts.iter())
                .filter(|h| !h.t.is_empty())
                .cloned()
                .collect(),
            log_links,
            live,
        }
    }
}

impl PageData {
    /// The data as JSON safe to embed in a `<script>` element (no `<`, so no `</script>`).
    pub fn to_embedded_json(&self) -> String {
        serde_json::to_string(self)
            .expect("page data always serialises")
            .replace('<', "\\u003c")
    }
}

/// The page: one self-contained HTML document (style, charting library, script and data
/// inline; nothing fetched from the network). With `data.live`, the page also follows the
/// server's `/events` stream.
pub fn render_html(data: &PageData) -> String {
    let title = html_escape(&format!(
        "sortie launch {} {}",
        data.report.plan, data.report.run_id
    ));
    let mut s = String::with_capacity(UPLOT_JS.len() + 64 * 1024);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // No icon to fetch (a browser asks the live server for /favicon.ico otherwise).
    s.push_str("<link rel=\"icon\" href=\"data:,\">\n");
    s.push_str(&format!("<title>{title}</title>\n<style>\n"));
    s.push_str(UPLOT_CSS);
    s.push('\n');
    s.push_str(PAGE_CSS);
    s.push_str("\n</style>\n</head>\n<body>\n<div id=\"app\">loading...</div>\n");
    s.push_str("<script id=\"sortie-data\" type=\"application/json\">");
    s.push_str(&data.to_embedded_json());
    s.push_str("</script>\n<script>\n/*! uPlot, MIT licence:\n");
    s.push_str(&UPLOT_LICENSE.replace("*/", "* /"));
    s.push_str("*/\n");
    s.push_str(UPLOT_JS);
    s.push_str("\n</script>\n<script>\n");
    s.push_str(PAGE_JS);
    s.push_str("\n</script>\n</body>\n</html>\n");
    s
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `<dir>/report.html` for `data`; returns its path.
pub fn write_html(data: &PageData, dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(HTML_FILE);
    std::fs::write(&path, render_html(data))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_its_script_element() {
        let mut fold = PageFold::new("r</script><script>alert(1)</script>");
        fold.apply(&LaunchEvent::PhaseChanged {
            phase: sortie_events::launch::Phase::Holding,
            at_ms: 1,
        });
        let html = render_html(&fold.data(false));
        assert_eq!(html.matches("</script>").count(), 3, "only the page's own");
        assert!(html.contains("r\\u003c/script>"));
        assert!(!html.contains("http://") || !html.contains("src=\"http"));
    }
}
