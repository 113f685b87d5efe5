//! What the launch's tasks tell the driver, and what happens per line of a process, off the
//! core: writing the process's log file (each line time-stamped on arrival and flushed per
//! chunk, so an interrupted run loses nothing) and matching the role's ready and fail
//! patterns. The host tasks of [`super::follow`] use it; they decide nothing: stopping and
//! restarting are the core's ([`super::core`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use sortie_plan::launch::Role;
use tokio::sync::mpsc;

use crate::transport::{Exit, SpawnError};

/// What tasks tell the driver (which turns them into inputs of the core).
#[derive(Debug)]
pub(crate) enum Msg {
    /// Host `host` connected.
    HostUp { host: usize, elapsed: Duration },
    /// Host `host` could not be connected.
    HostFailed { host: usize, message: String },
    /// Plan transfers ended on host `host` (all of its uploads, or all of its collections).
    Transfers {
        host: usize,
        records: Vec<super::stage::TransferRecord>,
    },
    /// The attempt runs, in process group `pgid`.
    Spawned {
        idx: usize,
        attempt: u32,
        pgid: Option<u32>,
    },
    /// The attempt could not start.
    SpawnFailed {
        idx: usize,
        attempt: u32,
        error: SpawnError,
    },
    /// The ready pattern matched.
    Ready { idx: usize, attempt: u32 },
    /// A fail pattern matched `line`.
    FailLine {
        idx: usize,
        attempt: u32,
        pattern: String,
        line: String,
    },
    /// No ready line within the timeout.
    ReadyTimeout { idx: usize, attempt: u32 },
    /// The attempt ended.
    Exited {
        idx: usize,
        attempt: u32,
        exit: Exit,
    },
    /// Host `host`'s connection was lost; its processes keep running on it.
    HostDisconnected { host: usize, message: String },
    /// Host `host` is connected again, `elapsed` after the loss.
    HostReconnected { host: usize, elapsed: Duration },
    /// Host `host` stayed unreachable for the whole reconnect window.
    HostGone { host: usize, message: String },
    /// A stop script could not run on a host.
    StopFailed { host: usize, message: String },
    /// A host's survivor check answered.
    Survivors {
        host: usize,
        result: Result<Vec<u32>, String>,
    },
}

/// A process log: `2026-11-26T19:42:01.123Z O text` (`E` for stderr, `S` for sortie's notes).
pub(crate) struct Log {
    out: Option<BufWriter<File>>,
    secrets: Vec<String>,
}

impl Log {
    pub(crate) fn open(path: Option<&PathBuf>, secrets: Vec<String>) -> Log {
        let out = path.and_then(|p| {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                Ok(f) => Some(BufWriter::new(f)),
                Err(e) => {
                    tracing::warn!("cannot open log {}: {e}", p.display());
                    None
                }
            }
        });
        Log { out, secrets }
    }

    /// Replaces every controller secret in `line` (values of 4+ characters).
    pub(crate) fn redact(&self, line: String) -> String {
        let mut line = line;
        for s in &self.secrets {
            if line.contains(s.as_str()) {
                line = line.replace(s.as_str(), "[secret]");
            }
        }
        line
    }

    pub(crate) fn write(&mut self, stream: char, text: &str) {
        if let Some(w) = &mut self.out {
            let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let _ = writeln!(w, "{ts} {stream} {text}");
        }
    }

    pub(crate) fn flush(&mut self) {
        if let Some(w) = &mut self.out {
            let _ = w.flush();
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn check_line(
    role: &Role,
    text: &str,
    ready: &mut bool,
    failed: &mut bool,
    timed_out: bool,
    idx: usize,
    attempt: u32,
    tx: &mpsc::Sender<Msg>,
) {
    if !*failed {
        if let Some(p) = role.fail.iter().find(|p| p.is_match(text)) {
            *failed = true;
            let _ = tx
                .send(Msg::FailLine {
                    idx,
                    attempt,
                    pattern: p.as_str().to_string(),
                    line: text.to_string(),
                })
                .await;
            return;
        }
    }
    if !*ready && !*failed && !timed_out {
        if let Some(r) = &role.ready {
            if r.is_match(text) {
                *ready = true;
                let _ = tx.send(Msg::Ready { idx, attempt }).await;
            }
        }
    }
}
