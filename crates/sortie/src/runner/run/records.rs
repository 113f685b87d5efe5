//! The records a run leaves, written from its event stream alone (as `report.json` is folded
//! from a launch's events): the job log and the `--results` directory. [`Records::observe`]
//! takes each event the run sends, in order, and needs nothing else.
//!
//! - `JobStarted` opens the job's attempt: its host, command and start time, and (with
//!   `results`) fresh `DIR/<seq>/stdout` and `stderr` files, so a retried job keeps only its
//!   final attempt's output, as GNU parallel does.
//! - `Output` counts the job log's Receive (stdout bytes) and appends to the results files.
//! - `JobFinished` writes the job log row and `DIR/<seq>/exit`. A job whose final attempt never
//!   started (no `JobStarted`, or `elapsed` zero: the host could not be used) has no row, so
//!   `--resume` runs it again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use sortie_events::{Event, Stream};

use super::joblog;

/// The attempt of a job that runs now.
struct Open {
    host: String,
    command: String,
    start: SystemTime,
    receive: u64,
    files: Option<[BufWriter<File>; 2]>,
}

/// The job log and results writers of a run.
pub(crate) struct Records {
    log: Option<joblog::Writer>,
    results: Option<PathBuf>,
    stop_signal: i64,
    open: HashMap<u64, Open>,
}

impl Records {
    /// Writers for an opened job log and a created results directory; `stop_signal` is the
    /// first signal of the stop sequence (the Signal column of a job sortie ended).
    pub(crate) fn new(
        log: Option<joblog::Writer>,
        results: Option<PathBuf>,
        stop_signal: i64,
    ) -> Self {
        Records {
            log,
            results,
            stop_signal,
            open: HashMap::new(),
        }
    }

    /// Takes one event of the run into account.
    pub(crate) fn observe(&mut self, ev: &Event) {
        match ev {
            Event::JobStarted { host, job, command } => {
                let files = self.results.as_ref().and_then(|d| results_files(d, *job));
                self.open.insert(
                    *job,
                    Open {
                        host: host.clone(),
                        command: command.clone(),
                        start: SystemTime::now(),
                        receive: 0,
                        files,
                    },
                );
            }
            Event::Output {
                job,
                stream,
                line,
                partial,
                ..
            } => {
                let Some(open) = self.open.get_mut(job) else {
                    return;
                };
                if *stream == Stream::Stdout {
                    open.receive += line.len() as u64 + u64::from(!partial);
                }
                if let Some(files) = &mut open.files {
                    let f = &mut files[usize::from(*stream == Stream::Stderr)];
                    let r = f.write_all(line).and_then(|_| {
                        if *partial {
                            Ok(())
                        } else {
                            f.write_all(b"\n")
                        }
                    });
                    if let Err(e) = r {
                        tracing::warn!("results for job {job}: {e}");
                    }
                }
            }
            Event::JobFinished {
                host,
                job,
                outcome,
                elapsed,
            } => {
                let Some(mut open) = self.open.remove(job) else {
                    return;
                };
                if open.host == *host && !elapsed.is_zero() {
                    self.row(*job, &open, outcome, *elapsed);
                }
                if let (Some(files), Some(dir)) = (&mut open.files, &self.results) {
                    for f in files.iter_mut() {
                        let _ = f.flush();
                    }
                    let status = joblog::shell_status(outcome, self.stop_signal);
                    let path = dir.join(job.to_string()).join("exit");
                    if let Err(e) = std::fs::write(&path, format!("{status}\n")) {
                        tracing::warn!("results {}: {e}", path.display());
                    }
                }
            }
            _ => {}
        }
    }

    fn row(
        &mut self,
        seq: u64,
        open: &Open,
        outcome: &sortie_events::Outcome,
        elapsed: std::time::Duration,
    ) {
        let Some(log) = &mut self.log else { return };
        let (exitval, signal) = joblog::exit_columns(outcome, self.stop_signal);
        let row = joblog::Row {
            seq,
            host: open.host.clone(),
            start: open.start,
            runtime: elapsed,
            receive: open.receive,
            exitval,
            signal,
            command: open.command.clone(),
        };
        if let Err(e) = log.write(&row) {
            tracing::warn!("job log {}: {e}", log.path().display());
        }
    }
}

/// Fresh `DIR/<seq>/stdout` and `stderr` files (a warning and none when they cannot be made).
fn results_files(dir: &std::path::Path, job: u64) -> Option<[BufWriter<File>; 2]> {
    let dir = dir.join(job.to_string());
    let files = std::fs::create_dir_all(&dir).and_then(|_| {
        Ok([
            BufWriter::new(File::create(dir.join("stdout"))?),
            BufWriter::new(File::create(dir.join("stderr"))?),
        ])
    });
    files
        .map_err(|e| tracing::warn!("results for job {job}: {}: {e}", dir.display()))
        .ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sortie_events::{ConnectFailure, Event, Outcome, Stream};

    use super::{joblog, Records};

    fn started(host: &str, job: u64) -> Event {
        Event::JobStarted {
            host: host.into(),
            job,
            command: format!("echo {job}"),
        }
    }

    fn out(job: u64, line: &str, partial: bool) -> Event {
        Event::Output {
            host: "h".into(),
            job,
            stream: Stream::Stdout,
            line: line.as_bytes().to_vec(),
            partial,
        }
    }

    fn finished(host: &str, job: u64, outcome: Outcome, ms: u64) -> Event {
        Event::JobFinished {
            host: host.into(),
            job,
            outcome,
            elapsed: Duration::from_millis(ms),
        }
    }

    #[test]
    fn rows_and_results_come_from_the_events_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("log");
        let log = joblog::Writer::open(&log_path, false, false).unwrap();
        let results = dir.path().join("res");
        let mut r = Records::new(Some(log), Some(results.clone()), 15);
        // Job 1 runs on h1, is retried on h2 (its first attempt's output is not kept).
        for ev in [
            started("h1", 1),
            out(1, "first try", false),
            started("h2", 1),
            out(1, "second", false),
            out(1, "tail", true),
            finished("h2", 1, Outcome::Exited { code: 3 }, 20),
            // Job 2 never started anywhere: no row, no results.
            finished(
                "-",
                2,
                Outcome::ConnectFailed {
                    failure: ConnectFailure::Unreachable,
                    message: "no host left".into(),
                },
                0,
            ),
        ] {
            r.observe(&ev);
        }
        drop(r);
        let text = std::fs::read_to_string(&log_path).unwrap();
        let rows: Vec<Vec<&str>> = (text.lines().skip(1))
            .map(|l| l.split('\t').collect())
            .collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert_eq!((rows[0][0], rows[0][1]), ("1", "h2"));
        assert_eq!(rows[0][5], "11", "Receive: \"second\\n\" and \"tail\"");
        assert_eq!((rows[0][6], rows[0][8]), ("3", "echo 1"));
        let stdout = std::fs::read_to_string(results.join("1/stdout")).unwrap();
        assert_eq!(stdout, "second\ntail");
        let exit = std::fs::read_to_string(results.join("1/exit")).unwrap();
        assert_eq!(exit, "3\n");
        assert!(!results.join("2").exists());
    }
}
