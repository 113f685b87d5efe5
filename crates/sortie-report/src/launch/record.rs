//! The run record on disk: `<run-dir>/events.jsonl`, one [`LaunchRecord`] per line.
//!
//! [`EventLog`] appends and flushes each line as the event happens, so a controller that dies
//! leaves a readable prefix; [`read_record`] reads one back, tolerating a torn last line.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use sortie_events::launch::{LaunchEvent, LaunchRecord, SCHEMA_VERSION};

/// The record's file name inside a run directory.
pub const EVENTS_FILE: &str = "events.jsonl";

/// The report's file name inside a run directory.
pub const REPORT_FILE: &str = "report.json";

/// Appends a run's events to its `events.jsonl`, one flushed line per event.
#[derive(Debug)]
pub struct EventLog {
    run_id: String,
    file: Option<File>,
    path: PathBuf,
}

impl EventLog {
    /// Creates (truncates) `<dir>/events.jsonl` for run `run_id`.
    pub fn create(dir: &Path, run_id: &str) -> std::io::Result<Self> {
        let path = dir.join(EVENTS_FILE);
        Ok(EventLog {
            run_id: run_id.to_string(),
            file: Some(File::create(&path)?),
            path,
        })
    }

    /// Opens `<dir>/events.jsonl` of run `run_id` to add to it (`sortie attach` and `stop`
    /// carry on a detached run's record).
    pub fn append(dir: &Path, run_id: &str) -> std::io::Result<Self> {
        let path = dir.join(EVENTS_FILE);
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(EventLog {
            run_id: run_id.to_string(),
            file: Some(file),
            path,
        })
    }

    /// The record line of `ev` (what `--json` prints too).
    pub fn line(run_id: &str, ev: &LaunchEvent) -> String {
        LaunchRecord {
            v: SCHEMA_VERSION,
            run_id: run_id.to_string(),
            event: ev.clone(),
        }
        .to_json_line()
    }

    /// Writes one event. After a write error the log stops (with one warning) rather than
    /// failing the run.
    pub fn write(&mut self, ev: &LaunchEvent) {
        let Some(f) = &mut self.file else { return };
        let mut line = Self::line(&self.run_id, ev);
        line.push('\n');
        // One write per line: a reader (or a crash) never sees half of a line but the last.
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
            eprintln!("sortie: cannot write {}: {e}", self.path.display());
            self.file = None;
        }
    }
}

/// A run record read back.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// The run id of its lines.
    pub run_id: String,
    /// Its events, in order.
    pub events: Vec<LaunchEvent>,
    /// Lines that could not be read (a torn last line after a crash), with their line
    /// numbers and why.
    pub unreadable: Vec<(usize, String)>,
}

impl Recorded {
    /// Whether the record ends with [`LaunchEvent::LaunchFinished`].
    pub fn finished(&self) -> bool {
        matches!(self.events.last(), Some(LaunchEvent::LaunchFinished { .. }))
    }
}

/// Why a record could not be read at all.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RecordError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(
        code(sortie::report::read),
        help("pass a launch's run directory (it holds events.jsonl)")
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line is from a newer schema than this sortie knows.
    #[error("{}:{line}: schema version {v} is newer than this sortie reads ({SCHEMA_VERSION})", path.display())]
    #[diagnostic(code(sortie::report::schema), help("use a newer sortie"))]
    Schema {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The version found.
        v: u32,
    },
}

/// Reads `events.jsonl` (or the one in directory `path`). Unreadable lines are collected, not
/// fatal: a controller that died may leave a torn last line.
pub fn read_record(path: &Path) -> Result<Recorded, RecordError> {
    let path = if path.is_dir() {
        path.join(EVENTS_FILE)
    } else {
        path.to_path_buf()
    };
    let io = |source| RecordError::Io {
        path: path.clone(),
        source,
    };
    let reader = BufReader::new(File::open(&path).map_err(io)?);
    let mut out = Recorded::default();
    for (n, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(io)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<LaunchRecord>(&line) {
            Ok(r) if r.v > SCHEMA_VERSION => {
                return Err(RecordError::Schema {
                    path,
                    line: n + 1,
                    v: r.v,
                })
            }
            Ok(r) => {
                if out.run_id.is_empty() {
                    out.run_id = r.run_id;
                }
                out.events.push(r.event);
            }
            Err(e) => out.unreadable.push((n + 1, e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sortie_events::launch::Phase;

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join(EVENTS_FILE), text).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let ev = LaunchEvent::PhaseChanged {
            phase: Phase::Holding,
            at_ms: 5,
        };
        let line = EventLog::line("r1", &ev);
        write(dir.path(), &format!("{line}\n{}", &line[..20]));
        let rec = read_record(dir.path()).unwrap();
        assert_eq!(rec.run_id, "r1");
        assert_eq!(rec.events, vec![ev]);
        assert_eq!(rec.unreadable.len(), 1);
        assert_eq!(rec.unreadable[0].0, 2);
        assert!(!rec.finished());
    }

    #[test]
    fn a_record_from_a_newer_schema_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "{\"v\":99,\"run_id\":\"r\",\"event\":\"phase_changed\",\"phase\":\"holding\",\"at_ms\":1}\n",
        );
        let err = read_record(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("events.jsonl:1: schema version 99 is newer than this sortie reads (1)"),
            "{err}"
        );
    }
}
