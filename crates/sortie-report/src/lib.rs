//! sortie's reporters: consumers of the runner's [`Event`] stream that never ask the runner
//! anything (cargo-nextest's reporters are the model).
//!
//! - [`LineReporter`]: live lines `web03 | text` / `web03 ! text` ([`Mode::Line`]), or the same
//!   lines held until each job ends ([`Mode::PerJob`], the default of `sortie run`).
//! - [`GroupReporter`]: `dshbak -c`-style blocks of identical output ([`Mode::Group`]).
//! - [`OutDirReporter`]: raw output in per-host files ([`Mode::OutDir`]).
//! - [`JsonReporter`]: JSON Lines, one event per line ([`Mode::Json`]).
//! - [`SummaryReporter`]: the final per-outcome summary, on stderr.
//! - [`StatusReporter`]: the live aggregate status line, on stderr, terminals only.
//! - [`launch`]: the reporters of `sortie launch` (live table, status lines, summary,
//!   `report.json`, the run record `events.jsonl`), consumers of its `LaunchEvent` stream.
//!
//! The CLI builds one [`Fanout`] with [`ReporterConfig`] and feeds it every event:
//!
//! ```
//! use sortie_report::{CaptureBuffer, Mode, Reporter, ReporterConfig};
//! use sortie_events::{Event, Stream};
//!
//! let out = CaptureBuffer::new();
//! let mut reporter = ReporterConfig::new(Mode::Line)
//!     .labels(["web01", "db1"])
//!     .terminals(false, false)
//!     .summary(false)
//!     .stdout(Box::new(out.clone()))
//!     .build()
//!     .unwrap();
//! reporter.report(&Event::Output {
//!     host: "db1".into(), job: 2, stream: Stream::Stdout, line: b"up".to_vec(), partial: false,
//! }).unwrap();
//! reporter.finish().unwrap();
//! assert_eq!(out.contents(), "db1   | up\n");
//! ```
//!
//! This crate owns presentation only: wording, layout, colour, files. It must not schedule,
//! retry or decide outcomes; what it shows comes from the events alone.

#![warn(missing_docs)]

mod fold;
mod group;
mod json;
pub mod launch;
mod line;
mod outdir;
mod plain;
mod sink;
mod status;
mod style;
mod summary;

pub use group::GroupReporter;
pub use json::JsonReporter;
pub use line::LineReporter;
pub use outdir::OutDirReporter;
pub use plain::{PlainReporter, TagFn};
pub use sink::CaptureBuffer;
pub use status::{status_message, StatusReporter};
pub use style::ColorChoice;
pub use summary::{SummaryReporter, MESSAGE_LINES};

use sink::Sink;
use sortie_events::Event;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use style::Paint;

/// A consumer of the event stream.
pub trait Reporter {
    /// Handles one event, in the order the runner emitted them.
    fn report(&mut self, event: &Event) -> io::Result<()>;

    /// Called once after the last event: flush buffers, print what is still held.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends each event to several reporters, in the order they were added.
///
/// Every reporter sees every event even if an earlier one failed; the first error is returned.
#[derive(Default)]
pub struct Fanout {
    reporters: Vec<Box<dyn Reporter + Send>>,
}

impl Fanout {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reporter after the existing ones.
    pub fn push(&mut self, reporter: Box<dyn Reporter + Send>) {
        self.reporters.push(reporter);
    }

    /// Adds a reporter after the existing ones (builder form).
    pub fn with(mut self, reporter: Box<dyn Reporter + Send>) -> Self {
        self.push(reporter);
        self
    }

    /// Number of reporters.
    pub fn len(&self) -> usize {
        self.reporters.len()
    }

    /// True when there are no reporters.
    pub fn is_empty(&self) -> bool {
        self.reporters.is_empty()
    }

    fn each(
        &mut self,
        mut f: impl FnMut(&mut (dyn Reporter + Send)) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut first = Ok(());
        for r in &mut self.reporters {
            if let Err(e) = f(r.as_mut()) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

impl Reporter for Fanout {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        self.each(|r| r.report(event))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.each(|r| r.finish())
    }
}

/// What the command output looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Live prefixed lines (default of `sortie exec`).
    Line,
    /// Prefixed lines, each job's printed at once when it ends (default of `sortie run`).
    PerJob,
    /// Identical outputs printed once under a folded host range, at the end (`--group`).
    Group,
    /// Raw output to `DIR/<host>.out` / `.err` files, nothing on stdout (`--out-dir DIR`).
    OutDir(PathBuf),
    /// One JSON object per event on stdout (`--json`).
    Json,
}

/// How output lines and summary entries name their origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrefixStyle {
    /// `web03 | text` (`sortie exec`).
    #[default]
    Host,
    /// `web03/7 | text` (`sortie run`: host and 1-based job number).
    HostJob,
}

/// Errors building reporters (before any host is contacted).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReportError {
    /// The `--out-dir` directory could not be created.
    #[error("cannot create output directory {path}: {source}")]
    #[diagnostic(
        code(sortie::report::out_dir),
        help("choose a directory you can write to with --out-dir, or create it first")
    )]
    OutDir {
        /// The directory given.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// Everything the CLI decides about reporting, turned into a [`Fanout`] by [`build`].
///
/// Defaults from [`ReporterConfig::new`]: prefix [`PrefixStyle::Host`], no labels, terminals
/// detected on the process's stdout/stderr, [`ColorChoice::Auto`] with `NO_COLOR` read from the
/// environment, summary on, status line when stderr is a terminal, writers the process's
/// stdout and stderr.
///
/// [`build`]: ReporterConfig::build
pub struct ReporterConfig {
    mode: Mode,
    prefix: PrefixStyle,
    labels: Vec<String>,
    stdout_is_terminal: bool,
    stderr_is_terminal: bool,
    color: ColorChoice,
    no_color: Option<OsString>,
    summary: bool,
    status_line: Option<bool>,
    stdout: Box<dyn Write + Send>,
    stderr: Box<dyn Write + Send>,
}

impl ReporterConfig {
    /// A configuration for `mode` with the defaults above.
    pub fn new(mode: Mode) -> Self {
        ReporterConfig {
            mode,
            prefix: PrefixStyle::Host,
            labels: Vec::new(),
            stdout_is_terminal: io::stdout().is_terminal(),
            stderr_is_terminal: io::stderr().is_terminal(),
            color: ColorChoice::Auto,
            no_color: std::env::var_os("NO_COLOR"),
            summary: true,
            status_line: None,
            stdout: Box::new(io::stdout()),
            stderr: Box::new(io::stderr()),
        }
    }

    /// Host labels of the run; line prefixes are padded to the longest.
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// `host` (exec) or `host/job` (run) prefixes, and the matching out-dir layout.
    pub fn prefix(mut self, prefix: PrefixStyle) -> Self {
        self.prefix = prefix;
        self
    }

    /// Overrides terminal detection for stdout and stderr.
    pub fn terminals(mut self, stdout: bool, stderr: bool) -> Self {
        self.stdout_is_terminal = stdout;
        self.stderr_is_terminal = stderr;
        self
    }

    /// When to colour (`--color`).
    pub fn color(mut self, color: ColorChoice) -> Self {
        self.color = color;
        self
    }

    /// Overrides the `NO_COLOR` value read from the environment (for tests).
    pub fn no_color_env(mut self, value: Option<OsString>) -> Self {
        self.no_color = value;
        self
    }

    /// Whether to print the final summary on stderr (default on).
    pub fn summary(mut self, on: bool) -> Self {
        self.summary = on;
        self
    }

    /// Forces the status line on or off (default: on when stderr is a terminal).
    pub fn status_line(mut self, on: bool) -> Self {
        self.status_line = Some(on);
        self
    }

    /// Where command output (and JSON) goes; default the process's stdout.
    pub fn stdout(mut self, w: Box<dyn Write + Send>) -> Self {
        self.stdout = w;
        self
    }

    /// Where remote stderr lines (line modes) and the summary go; default the process's stderr.
    pub fn stderr(mut self, w: Box<dyn Write + Send>) -> Self {
        self.stderr = w;
        self
    }

    /// Builds the reporters: status line (if any), the mode's reporter, then the summary.
    ///
    /// Fails only when the out-dir cannot be created.
    pub fn build(self) -> Result<Fanout, ReportError> {
        let no_color = self.no_color.as_deref();
        let paint_out = Paint(self.color.resolve(self.stdout_is_terminal, no_color));
        let paint_err = Paint(self.color.resolve(self.stderr_is_terminal, no_color));
        let mut fanout = Fanout::new();
        let bar = if self.status_line.unwrap_or(self.stderr_is_terminal) {
            let status = StatusReporter::stderr();
            let bar = status.bar();
            // First, so the line is cleared before anything prints the summary.
            fanout.push(Box::new(status));
            Some(bar)
        } else {
            None
        };
        // Only a sink that shares the terminal with the status line needs to step around it;
        // skipping the others saves a redraw per line when stdout is a pipe.
        let out_bar = bar.clone().filter(|_| self.stdout_is_terminal);
        let out = Sink::new(self.stdout, out_bar);
        let err = Sink::new(self.stderr, bar.clone());
        let blank_first = matches!(self.mode, Mode::Line | Mode::PerJob | Mode::Group);
        match self.mode {
            Mode::Line | Mode::PerJob => fanout.push(Box::new(LineReporter::new(
                out,
                err.clone(),
                paint_err,
                self.prefix,
                &self.labels,
                self.mode == Mode::PerJob,
            ))),
            Mode::Group => fanout.push(Box::new(GroupReporter::new(out, paint_out))),
            Mode::OutDir(dir) => {
                let r = OutDirReporter::new(dir.clone(), self.prefix)
                    .map_err(|source| ReportError::OutDir { path: dir, source })?;
                fanout.push(Box::new(r));
            }
            Mode::Json => fanout.push(Box::new(JsonReporter::new(out))),
        }
        if self.summary {
            fanout.push(Box::new(SummaryReporter::new(
                err,
                paint_err,
                self.prefix,
                blank_first,
            )));
        }
        Ok(fanout)
    }
}
