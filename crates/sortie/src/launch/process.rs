//! One attempt of one process: start it, follow its output to its exit.
//!
//! Owns what happens per line, off the core: writing the process's log file (each line
//! time-stamped on arrival and flushed per chunk, so an interrupted run loses nothing),
//! matching the role's ready and fail patterns, and the readiness deadline. It reports to the
//! driver ([`super::engine`]) with [`Msg`]s and decides nothing itself: stopping and restarting
//! are the core's ([`super::core`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sortie_plan::launch::Role;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::hosts::HostPool;
use crate::runner::LineSplitter;
use crate::transport::{Command, Exit, ProcessEvent, SpawnError};

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
    /// A stop script could not run on a host.
    StopFailed { host: usize, message: String },
    /// A host's survivor check answered.
    Survivors {
        host: usize,
        result: Result<Vec<u32>, String>,
    },
}

/// Everything one attempt needs.
pub(crate) struct Attempt {
    pub idx: usize,
    pub attempt: u32,
    pub pool: Arc<HostPool>,
    pub command: Command,
    pub role: Arc<Role>,
    pub log: Option<PathBuf>,
    pub secrets: Vec<String>,
    pub tx: mpsc::Sender<Msg>,
}

/// A process log: `2026-11-26T19:42:01.123Z O text` (`E` for stderr, `S` for sortie's notes).
struct Log {
    out: Option<BufWriter<File>>,
    secrets: Vec<String>,
}

impl Log {
    fn open(path: Option<&PathBuf>, secrets: Vec<String>) -> Log {
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
    fn redact(&self, line: String) -> String {
        let mut line = line;
        for s in &self.secrets {
            if line.contains(s.as_str()) {
                line = line.replace(s.as_str(), "[secret]");
            }
        }
        line
    }

    fn write(&mut self, stream: char, text: &str) {
        if let Some(w) = &mut self.out {
            let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let _ = writeln!(w, "{ts} {stream} {text}");
        }
    }

    fn flush(&mut self) {
        if let Some(w) = &mut self.out {
            let _ = w.flush();
        }
    }
}

/// Runs one attempt to its end.
pub(crate) async fn run(a: Attempt) {
    let Attempt {
        idx,
        attempt,
        pool,
        command,
        role,
        log,
        secrets,
        tx,
    } = a;
    let started = Instant::now();
    let mut log = Log::open(log.as_ref(), secrets);
    log.write(
        'S',
        &format!(
            "sortie: starting attempt {attempt} on {}",
            pool.target.label
        ),
    );
    log.flush();
    let (mut process, lease) = match pool.spawn(&command).await {
        Ok(x) => x,
        Err(error) => {
            log.write('S', &format!("sortie: could not start: {error}"));
            log.flush();
            let _ = tx
                .send(Msg::SpawnFailed {
                    idx,
                    attempt,
                    error,
                })
                .await;
            return;
        }
    };
    let pgid = process.pgid;
    let _ = tx.send(Msg::Spawned { idx, attempt, pgid }).await;
    let deadline = role.ready.as_ref().map(|_| started + role.ready_timeout);
    let mut watch = Watch {
        idx,
        attempt,
        ready: role.ready.is_none(),
        role,
        failed: false,
        timed_out: false,
        tx,
    };
    let exit = follow(&mut process, &mut log, &mut watch, deadline).await;
    log.write(
        'S',
        &format!("sortie: ended ({})", super::event::ExitInfo::from(&exit)),
    );
    log.flush();
    pool.release(lease).await;
    let tx = watch.tx;
    let _ = tx.send(Msg::Exited { idx, attempt, exit }).await;
}

/// What one attempt watches its lines for, and what it already said.
struct Watch {
    idx: usize,
    attempt: u32,
    role: Arc<Role>,
    ready: bool,
    failed: bool,
    timed_out: bool,
    tx: mpsc::Sender<Msg>,
}

impl Watch {
    /// Logs one line and matches it against the role's fail and ready patterns.
    async fn line(&mut self, log: &mut Log, tag: char, line: &[u8]) {
        let text = log.redact(String::from_utf8_lossy(line).into_owned());
        log.write(tag, &text);
        check_line(
            &self.role,
            &text,
            &mut self.ready,
            &mut self.failed,
            self.timed_out,
            self.idx,
            self.attempt,
            &self.tx,
        )
        .await;
    }
}

/// Follows the process's output to its exit, line by line, and its readiness deadline.
async fn follow(
    process: &mut crate::transport::Process,
    log: &mut Log,
    w: &mut Watch,
    deadline: Option<Instant>,
) -> Exit {
    let mut splitters = [LineSplitter::default(), LineSplitter::default()];
    let exit = loop {
        let sleep = async {
            match deadline {
                Some(d) if !w.ready && !w.timed_out => tokio::time::sleep_until(d).await,
                _ => std::future::pending().await,
            }
        };
        let ev = tokio::select! {
            ev = process.events.recv() => ev,
            _ = sleep => {
                w.timed_out = true;
                let (idx, attempt) = (w.idx, w.attempt);
                let _ = w.tx.send(Msg::ReadyTimeout { idx, attempt }).await;
                continue;
            }
        };
        let (which, data, tag) = match ev {
            Some(ProcessEvent::Stdout(d)) => (0, d, 'O'),
            Some(ProcessEvent::Stderr(d)) => (1, d, 'E'),
            Some(ProcessEvent::Exit(e)) => break e,
            None => break Exit::NoStatus,
        };
        let mut lines = Vec::new();
        splitters[which].push(&data, |l, _| lines.push(l));
        for l in lines {
            w.line(log, tag, &l).await;
        }
        log.flush();
    };
    for (which, tag) in [(0, 'O'), (1, 'E')] {
        if let Some(l) = splitters[which].finish() {
            w.line(log, tag, &l).await;
        }
    }
    exit
}

#[allow(clippy::too_many_arguments)]
async fn check_line(
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
