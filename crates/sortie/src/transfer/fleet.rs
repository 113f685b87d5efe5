//! Fleet transfers: connect to every host (at most `fanout` at once), run a put or get on
//! each, and emit the same events as `exec` (one job per host), so the existing reporters show
//! per-file errors (stderr lines), a per-host summary line (stdout) and the run summary.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sortie_events::{ConnectFailure, Event, Outcome, Stream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::{
    expand_remote, get_with, put_tree, GetOptions, LocalTree, PutOptions, TemplateError,
    TransferCtx, TransferError, TransferReport, TransferStats,
};
use crate::runner::{connect_announced, Attempt, Coordinator, RunResult, QUEUE};
use crate::transport::{Connection, Target, Transport};

/// A host to transfer to or from, with its inventory tags (for `{tag:NAME}`).
#[derive(Clone, Debug)]
pub struct HostTarget {
    /// How to reach it.
    pub target: Target,
    /// Its inventory tags.
    pub tags: BTreeMap<String, String>,
}

impl From<Target> for HostTarget {
    fn from(target: Target) -> Self {
        HostTarget {
            target,
            tags: BTreeMap::new(),
        }
    }
}

/// What happened on one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostTransfer {
    /// How the host's job ended (as in the event stream).
    pub outcome: Outcome,
    /// Counters (zero when the host could not be reached).
    pub stats: TransferStats,
    /// Each failure, as printed.
    pub errors: Vec<String>,
}

/// The end of a fleet transfer.
#[derive(Clone, Debug)]
pub struct TransferRunResult {
    /// Counts and summary buckets, as for `exec`.
    pub run: RunResult,
    /// Per host label.
    pub hosts: BTreeMap<String, HostTransfer>,
}

impl TransferRunResult {
    /// Bytes sent or received over all hosts.
    pub fn bytes(&self) -> u64 {
        self.hosts.values().map(|h| h.stats.bytes).sum()
    }
}

/// A fleet transfer in progress: its ordered events and, at the end, its result.
pub struct TransferHandle {
    /// Events in order; ends after [`Event::RunFinished`].
    pub events: mpsc::Receiver<Event>,
    /// Resolves once the run ended.
    pub result: JoinHandle<TransferRunResult>,
}

/// Puts `tree` (scanned with [`LocalTree::scan`] before any host is contacted) to `remote` on
/// every host. `remote` may use `{host}` and `{tag:NAME}`; it is expanded for every host
/// first, so a missing tag is an error before any connection.
pub fn put(
    transport: Arc<dyn Transport>,
    hosts: Vec<HostTarget>,
    tree: LocalTree,
    remote: &str,
    opts: PutOptions,
    ctx: TransferCtx,
) -> Result<TransferHandle, TemplateError> {
    let jobs = expand_all(&hosts, std::slice::from_ref(&remote.to_string()))?;
    let names: Vec<String> = tree
        .sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let command = format!("put {} {remote}", names.join(" "));
    ctx.progress.expect(tree.total_bytes() * hosts.len() as u64);
    let tree = Arc::new(tree);
    let fanout = opts.fanout;
    let opts = Arc::new(opts);
    Ok(fleet(
        transport,
        hosts,
        jobs,
        command,
        fanout,
        ctx,
        move |conn, _label, remotes, ctx| {
            let tree = tree.clone();
            let opts = opts.clone();
            async move { put_tree(&conn, &tree, &remotes[0], &opts, &ctx).await }
        },
    ))
}

/// Gets `remotes` (paths or globs, `{host}`/`{tag:NAME}` expanded per host) from every host
/// into `local_dir/<host label>/`.
pub fn get(
    transport: Arc<dyn Transport>,
    hosts: Vec<HostTarget>,
    remotes: &[String],
    local_dir: PathBuf,
    opts: GetOptions,
    ctx: TransferCtx,
) -> Result<TransferHandle, TemplateError> {
    let jobs = expand_all(&hosts, remotes)?;
    let command = format!("get {} {}", remotes.join(" "), local_dir.display());
    let fanout = opts.fanout;
    let opts = Arc::new(opts);
    Ok(fleet(
        transport,
        hosts,
        jobs,
        command,
        fanout,
        ctx,
        move |conn, label, remotes, ctx| {
            let opts = opts.clone();
            let dir = local_dir.join(label);
            async move {
                let fs = super::open_remote(&conn, opts.method)
                    .await
                    .map_err(|e| super::session_error(e, opts.method))?;
                get_with(fs.as_ref(), &remotes, &dir, &opts, &ctx).await
            }
        },
    ))
}

fn expand_all(
    hosts: &[HostTarget],
    templates: &[String],
) -> Result<Vec<Vec<String>>, TemplateError> {
    hosts
        .iter()
        .map(|h| {
            templates
                .iter()
                .map(|t| expand_remote(t, &h.target.label, &h.tags))
                .collect()
        })
        .collect()
}

fn fleet<F, Fut>(
    transport: Arc<dyn Transport>,
    hosts: Vec<HostTarget>,
    jobs: Vec<Vec<String>>,
    command: String,
    fanout: usize,
    ctx: TransferCtx,
    work: F,
) -> TransferHandle
where
    F: Fn(Arc<dyn Connection>, String, Vec<String>, TransferCtx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TransferReport, TransferError>> + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    let verb = command.split(' ').next().unwrap_or("transfer").to_string();
    let result = tokio::spawn(async move {
        let mut coord = Coordinator::new(out_tx, hosts.len());
        coord
            .forward(Event::RunStarted {
                hosts: hosts.len(),
                jobs: hosts.len(),
                command: command.clone(),
            })
            .await;
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        let sem = Arc::new(Semaphore::new(fanout.max(1)));
        let results: Arc<Mutex<BTreeMap<String, HostTransfer>>> = Default::default();
        let work = Arc::new(work);
        for (i, (host, remotes)) in hosts.into_iter().zip(jobs).enumerate() {
            let job = i as u64 + 1;
            let (tx, transport, sem, ctx, work, results, command, verb) = (
                tx.clone(),
                transport.clone(),
                sem.clone(),
                ctx.clone(),
                work.clone(),
                results.clone(),
                command.clone(),
                verb.clone(),
            );
            tokio::spawn(async move {
                let label = host.target.label.clone();
                let permit = tokio::select! {
                    p = sem.acquire_owned() => p.ok(),
                    _ = ctx.cancel.cancelled() => None,
                };
                let ht = match permit {
                    None => finished(Outcome::Interrupted, TransferStats::default(), vec![]),
                    Some(_permit) => {
                        host_task(
                            &*transport,
                            &host.target,
                            job,
                            &command,
                            &verb,
                            remotes,
                            &ctx,
                            &tx,
                            &*work,
                        )
                        .await
                    }
                };
                let _ = tx
                    .send(Event::JobFinished {
                        host: label.clone(),
                        job,
                        outcome: ht.0.outcome.clone(),
                        elapsed: ht.1,
                    })
                    .await;
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(label, ht.0);
            });
        }
        drop(tx);
        while let Some(ev) = rx.recv().await {
            coord.forward(ev).await;
        }
        let run = coord.finish(ctx.cancel.is_cancelled()).await;
        let hosts = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
        TransferRunResult { run, hosts }
    });
    TransferHandle {
        events: out_rx,
        result,
    }
}

fn finished(
    outcome: Outcome,
    stats: TransferStats,
    errors: Vec<String>,
) -> (HostTransfer, Duration) {
    (
        HostTransfer {
            outcome,
            stats,
            errors,
        },
        Duration::ZERO,
    )
}

/// Connects, runs the transfer, reports per-file errors and a summary line. Does not send
/// `JobFinished` (the caller does, once).
#[allow(clippy::too_many_arguments)]
async fn host_task<F, Fut>(
    transport: &dyn Transport,
    target: &Target,
    job: u64,
    command: &str,
    verb: &str,
    remotes: Vec<String>,
    ctx: &TransferCtx,
    tx: &mpsc::Sender<Event>,
    work: &F,
) -> (HostTransfer, Duration)
where
    F: Fn(Arc<dyn Connection>, String, Vec<String>, TransferCtx) -> Fut,
    Fut: Future<Output = Result<TransferReport, TransferError>>,
{
    let host = target.label.clone();
    let interrupted = "interrupted while connecting";
    let conn = match connect_announced(transport, target, &ctx.cancel, interrupted, tx).await {
        Attempt::Up(c) => c,
        Attempt::Failed(e) => {
            let outcome = Outcome::ConnectFailed {
                failure: e.failure,
                message: e.message.clone(),
            };
            return finished(outcome, TransferStats::default(), vec![e.message]);
        }
        Attempt::Cancelled => {
            return finished(Outcome::Interrupted, TransferStats::default(), vec![]);
        }
    };
    let _ = tx
        .send(Event::JobStarted {
            host: host.clone(),
            job,
            command: command.to_string(),
        })
        .await;
    let began = Instant::now();
    let result = work(conn.clone(), host.clone(), remotes, ctx.clone()).await;
    let line = |stream: Stream, text: String| Event::Output {
        host: host.clone(),
        job,
        stream,
        line: text.into_bytes(),
        partial: false,
    };
    let (outcome, stats, errors) = transfer_outcome(result);
    for e in &errors {
        let _ = tx.send(line(Stream::Stderr, format!("{verb}: {e}"))).await;
    }
    let _ = tx
        .send(line(
            Stream::Stdout,
            summary_line(verb, &stats, errors.len()),
        ))
        .await;
    if let Outcome::ConnectFailed { failure, message } = &outcome {
        let _ = tx
            .send(Event::HostFailed {
                host: host.clone(),
                failure: *failure,
                message: message.clone(),
            })
            .await;
    }
    conn.close().await;
    (
        HostTransfer {
            outcome,
            stats,
            errors,
        },
        began.elapsed(),
    )
}

/// A host's transfer result as its outcome, figures and per-file errors.
fn transfer_outcome(
    result: Result<TransferReport, TransferError>,
) -> (Outcome, TransferStats, Vec<String>) {
    match result {
        Ok(report) => {
            let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
            let outcome = if errors.is_empty() {
                Outcome::Ok
            } else {
                Outcome::TransferFailed {
                    files: errors.len() as u64,
                }
            };
            (outcome, report.stats, errors)
        }
        Err(e) => {
            let outcome = match &e {
                TransferError::Interrupted => Outcome::Interrupted,
                TransferError::ConnectionLost(m) => Outcome::ConnectFailed {
                    failure: ConnectFailure::ConnectionLost,
                    message: m.clone(),
                },
                _ => Outcome::TransferFailed { files: 0 },
            };
            (outcome, TransferStats::default(), vec![e.to_string()])
        }
    }
}

/// `put: 3 files, 1.5 MiB sent, 2 unchanged, 1 failed (sftp)`.
fn summary_line(verb: &str, s: &TransferStats, failed: usize) -> String {
    let moved = if verb == "get" { "received" } else { "sent" };
    let mut line = format!(
        "{verb}: {} file{}, {} {moved}",
        s.files,
        if s.files == 1 { "" } else { "s" },
        human_bytes(s.bytes)
    );
    if s.skipped > 0 {
        line.push_str(&format!(", {} unchanged", s.skipped));
    }
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    if let Some(m) = s.method {
        line.push_str(&format!(" ({m})"));
    }
    line
}

/// Bytes for a person: `512 B`, `1.5 KiB`, `100.0 MiB` (the reporters' one formatter).
pub use sortie_report::launch::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_read_well() {
        let s = TransferStats {
            files: 3,
            skipped: 2,
            bytes: 1536,
            dirs: 0,
            method: Some(super::super::Method::Sftp),
        };
        assert_eq!(
            summary_line("put", &s, 1),
            "put: 3 files, 1.5 KiB sent, 2 unchanged, 1 failed (sftp)"
        );
        assert_eq!(human_bytes(100 * 1024 * 1024), "100.0 MiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
