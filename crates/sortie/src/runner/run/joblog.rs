//! The job log: GNU parallel's `--joblog` format, written as jobs finish and read back for
//! `--resume` / `--resume-failed`.
//!
//! One tab-separated row per finished job under the header
//! `Seq Host Starttime JobRuntime Send Receive Exitval Signal Command`, exactly as GNU parallel
//! writes it, so existing tools that read parallel's job logs read sortie's. The Command column
//! is the rendered command only: environment values never appear.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sortie_events::Outcome;

use super::{JoblogError, Resume, RunError};

/// The header line (without newline).
pub const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// One finished job, as a joblog row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub seq: u64,
    pub host: String,
    pub start: SystemTime,
    pub runtime: Duration,
    pub receive: u64,
    pub exitval: i64,
    pub signal: i64,
    pub command: String,
}

impl Row {
    pub(crate) fn format(&self) -> String {
        let start = self
            .start
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        format!(
            "{}\t{}\t{:.3}\t{:>10.3}\t0\t{}\t{}\t{}\t{}\n",
            self.seq,
            escape(&self.host),
            start,
            self.runtime.as_secs_f64(),
            self.receive,
            self.exitval,
            self.signal,
            escape(&self.command)
        )
    }
}

/// Tabs and newlines in a field would break the row: written as `\t` and `\n`.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\t', '\n', '\r', '\\']) {
        s.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .into()
    } else {
        s.into()
    }
}

/// Exitval and Signal columns for an outcome, as GNU parallel fills them: a process killed by
/// a signal has Exitval 0 and the signal number; a job sortie ended (timeout, interrupt) has
/// Exitval -1 and the first signal of the stop sequence; a job whose host could not be used
/// or was lost has Exitval 255 (as `ssh` reports it).
pub(crate) fn exit_columns(outcome: &Outcome, stop_signal: i64) -> (i64, i64) {
    match outcome {
        Outcome::Ok => (0, 0),
        Outcome::Exited { code } => (i64::from(*code), 0),
        // Not produced by `run`; a failed transfer reads as exit status 1.
        Outcome::TransferFailed { .. } => (1, 0),
        Outcome::Signaled { signal, .. } => (0, signal_number(signal)),
        Outcome::TimedOut | Outcome::Interrupted => (-1, stop_signal),
        Outcome::NoExitStatus => (-1, 0),
        Outcome::ConnectFailed { .. } => (255, 0),
    }
}

/// The status a shell would show for the outcome (`$?`): the code, 128 + signal number for
/// signals and for jobs sortie stopped, 255 when the host failed (like `ssh`). Written to the
/// `exit` file of `--results`.
pub(crate) fn shell_status(outcome: &Outcome, stop_signal: i64) -> i64 {
    match exit_columns(outcome, stop_signal) {
        (_, sig) if sig != 0 => 128 + sig,
        (-1, _) => 255,
        (code, _) => code,
    }
}

/// Linux signal number for a name without `SIG` (0 when unknown).
pub(crate) fn signal_number(name: &str) -> i64 {
    let n = match name.trim_start_matches("SIG") {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "SYS" => libc::SIGSYS,
        _ => 0,
    };
    i64::from(n)
}

/// Appends rows to the job log, flushing each one so `--resume` after a crash sees every
/// finished job.
pub(crate) struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Writer {
    /// Opens `path`: appended to when resuming from an existing log, else created anew with
    /// the header. With `plus` (GNU parallel's `--joblog +FILE`) rows are appended, the file
    /// created if missing, and no header is written, as parallel does.
    pub(crate) fn open(path: &Path, append: bool, plus: bool) -> Result<Self, RunError> {
        let err = |source| RunError::WriteJoblog {
            path: path.to_path_buf(),
            source,
        };
        if plus {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(err)?;
            return Ok(Writer {
                path: path.to_path_buf(),
                out: BufWriter::new(file),
            });
        }
        let exists = path.metadata().map(|m| m.len() > 0).unwrap_or(false);
        let file = if append && exists {
            OpenOptions::new().append(true).open(path).map_err(err)?
        } else {
            File::create(path).map_err(err)?
        };
        let mut w = Writer {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        };
        if !(append && exists) {
            writeln!(w.out, "{HEADER}")
                .and_then(|_| w.out.flush())
                .map_err(err)?;
        }
        Ok(w)
    }

    pub(crate) fn write(&mut self, row: &Row) -> io::Result<()> {
        self.out.write_all(row.format().as_bytes())?;
        self.out.flush()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The jobs to skip when resuming from the log at `path` (a missing log skips nothing):
/// with [`Resume::All`] every job that has a row; with [`Resume::Failed`] the jobs whose last
/// row succeeded (Exitval 0 and Signal 0), so failed and never-run jobs run again.
pub(crate) fn skip_set(path: &Path, resume: Resume) -> Result<HashSet<u64>, RunError> {
    if resume == Resume::No {
        return Ok(HashSet::new());
    }
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(source) => {
            return Err(RunError::ReadJoblog {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let last = parse(path, &text)?;
    Ok(last
        .into_iter()
        .filter(|(_, ok)| resume == Resume::All || *ok)
        .map(|(seq, _)| seq)
        .collect())
}

/// Parses a job log into `seq -> last row succeeded`.
pub(crate) fn parse(path: &Path, text: &str) -> Result<HashMap<u64, bool>, RunError> {
    let mut out = HashMap::new();
    let mut offset = 0;
    let ends_with_newline = text.ends_with('\n');
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, raw) in lines.iter().enumerate() {
        let line_start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        if i == 0 && line.starts_with("Seq\t") {
            continue;
        }
        if line.is_empty() {
            continue;
        }
        // A last line without newline was cut by a crash: that job simply runs again.
        if i + 1 == lines.len() && !ends_with_newline {
            break;
        }
        let bad = |col: usize, len: usize, message: String| {
            RunError::BadJoblog(Box::new(JoblogError {
                path: path.to_path_buf(),
                line: i + 1,
                column: line[..col].chars().count() + 1,
                message,
                src: miette::NamedSource::new(path.display().to_string(), text.to_owned()),
                span: (line_start + col, len.max(1)).into(),
            }))
        };
        let mut fields = Vec::with_capacity(9);
        let mut start = 0;
        for (j, f) in line.splitn(9, '\t').enumerate() {
            fields.push((start, f));
            start += f.len() + 1;
            if j == 8 {
                break;
            }
        }
        if fields.len() < 8 {
            return Err(bad(
                0,
                line.len(),
                format!(
                    "expected at least 8 tab-separated columns ({HEADER}), found {}",
                    fields.len()
                ),
            ));
        }
        let num = |k: usize, what: &str| -> Result<i64, RunError> {
            let (col, f) = fields[k];
            f.trim().parse::<i64>().map_err(|_| {
                bad(
                    col,
                    f.len(),
                    format!("{what} must be an integer, found {f:?}"),
                )
            })
        };
        let seq = num(0, "Seq")?;
        if seq < 1 {
            return Err(bad(0, fields[0].1.len(), "Seq must be 1 or more".into()));
        }
        let exitval = num(6, "Exitval")?;
        let signal = num(7, "Signal")?;
        out.insert(seq as u64, exitval == 0 && signal == 0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sortie_events::ConnectFailure;

    #[test]
    fn row_matches_gnu_parallel_layout() {
        let row = Row {
            seq: 12,
            host: "web01".into(),
            start: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            runtime: Duration::from_millis(207),
            receive: 8,
            exitval: 0,
            signal: 15,
            command: "echo\t\"a\"\nb".into(),
        };
        assert_eq!(
            row.format(),
            "12\tweb01\t1700000000.123\t     0.207\t0\t8\t0\t15\techo\\t\"a\"\\nb\n"
        );
    }

    #[test]
    fn exit_columns_follow_gnu_parallel() {
        assert_eq!(exit_columns(&Outcome::Exited { code: 3 }, 15), (3, 0));
        assert_eq!(exit_columns(&Outcome::TimedOut, 15), (-1, 15));
        let sig = Outcome::Signaled {
            signal: "KILL".into(),
            core_dumped: false,
        };
        assert_eq!(exit_columns(&sig, 15), (0, 9));
        assert_eq!(shell_status(&sig, 15), 137);
        assert_eq!(shell_status(&Outcome::Exited { code: 4 }, 15), 4);
        let lost = Outcome::ConnectFailed {
            failure: ConnectFailure::ConnectionLost,
            message: "gone".into(),
        };
        assert_eq!(shell_status(&lost, 15), 255);
    }

    #[test]
    fn last_row_of_each_job_decides_and_cut_last_line_is_ignored() {
        let text = format!(
            "{HEADER}\n1\th\t1.000\t 0.1\t0\t0\t1\t0\tx\n2\th\t1.0\t0.1\t0\t0\t0\t0\ty\n\
             1\th\t2.0\t0.1\t0\t0\t0\t0\tx\n3\th\t1.0\t0.1\t0\t0\t0\t15\tz\n4\th\t1."
        );
        let m = parse(Path::new("j"), &text).unwrap();
        assert_eq!(m, HashMap::from([(1, true), (2, true), (3, false)]));
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let text = format!("{HEADER}\n1\th\t1.0\t0.1\t0\t0\toops\t0\tx\n");
        let err = parse(Path::new("jobs.log"), &text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "jobs.log:2:17: Exitval must be an integer, found \"oops\""
        );
        let err = parse(Path::new("jobs.log"), "1\t2\n").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("jobs.log:1:1: expected at least 8"));
    }

    #[test]
    fn skip_sets_for_resume_and_resume_failed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        assert!(skip_set(&p, Resume::All).unwrap().is_empty(), "missing log");
        std::fs::write(
            &p,
            format!("{HEADER}\n1\th\t1\t1\t0\t0\t0\t0\ta\n2\th\t1\t1\t0\t0\t2\t0\tb\n"),
        )
        .unwrap();
        assert_eq!(skip_set(&p, Resume::All).unwrap(), HashSet::from([1, 2]));
        assert_eq!(skip_set(&p, Resume::Failed).unwrap(), HashSet::from([1]));
        assert!(skip_set(&p, Resume::No).unwrap().is_empty());
    }
}
