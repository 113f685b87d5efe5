//! The reporters of `sortie launch`, all consumers of its [`LaunchEvent`] stream:
//!
//! - [`ReportFold`]: the end report ([`LaunchReport`], written as `report.json`), a fold over
//!   the events;
//! - [`render_summary`]: the end-of-run summary a person reads, from the report;
//! - [`LiveView`]: the live table on a terminal, status lines otherwise, or `--json` lines,
//!   built on [`render_status`] and [`render_notable`];
//! - [`PageFold`] and [`render_html`]: `report.html` and the live dashboard's page, one
//!   self-contained file with charts; [`metrics`]: the Prometheus text of `/metrics`;
//! - [`EventLog`] and [`read_record`]: the run record, `events.jsonl`, written as events happen
//!   and read back by `sortie report RUN_DIR`.
//!
//! Nothing here asks the launch anything: a recorded run renders the same as the live one.

mod live;
pub mod metrics;
mod page;
mod record;
mod report;
mod text;

use std::path::{Path, PathBuf};

pub use live::LiveView;
pub use page::{render_html, write_html, CountSeries, HostSeries, PageData, PageFold, HTML_FILE};
pub use record::{read_record, EventLog, RecordError, Recorded, EVENTS_FILE, REPORT_FILE};
pub use report::{
    Aborted, HostReport, HostResources, LaunchReport, Percentiles, ProcessReport, ProcessResources,
    ReportFold, RoleLoad, RoleResources, RoleSummary, StepResult, StopCheck, ThresholdResult,
};
pub use sortie_events::launch::LaunchEvent;
pub use text::{human_bytes, render_notable, render_status, render_summary, short_duration};

impl LaunchReport {
    /// The report as pretty JSON (what `report.json` holds).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports always serialise")
    }

    /// Writes `<dir>/report.json`; returns its path.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(REPORT_FILE);
        std::fs::write(&path, self.to_json_pretty())?;
        Ok(path)
    }
}
