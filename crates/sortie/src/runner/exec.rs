//! `exec`: one command on every selected host, at most `fanout` hosts at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sortie_events::{ConnectFailure, Event, Outcome, Stream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{Coordinator, LineSplitter, RunHandle, QUEUE};
use crate::transport::{
    Command, CommandShell, Connection, Exit, ProcessEvent, Stdin, StopSequence, Target, Transport,
};

/// Options of an `exec` run.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Hosts in flight at once (connecting or running), like pdsh `-f`.
    pub fanout: usize,
    /// Per-command time limit; the process group is then stopped with `stop`.
    pub timeout: Option<Duration>,
    /// How running commands are ended (timeout, cancellation).
    pub stop: StopSequence,
    /// Environment for the command (values never logged).
    pub env: Vec<(String, String)>,
    /// The same input for every host's command, then end of file; `None`: `/dev/null`.
    pub stdin: Option<Stdin>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            fanout: 64,
            timeout: None,
            stop: StopSequence::default(),
            env: Vec::new(),
            stdin: None,
        }
    }
}

/// Runs `command` on every target. Cancelling `cancel` (the first Ctrl-C) stops starting new
/// hosts and ends every running command with the stop sequence; the run then finishes with
/// `interrupted`.
pub fn exec(
    transport: Arc<dyn Transport>,
    targets: Vec<Target>,
    command: String,
    options: ExecOptions,
    cancel: CancellationToken,
) -> RunHandle {
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    let result = tokio::spawn(async move {
        let mut coord = Coordinator::new(out_tx, targets.len());
        coord
            .forward(Event::RunStarted {
                hosts: targets.len(),
                jobs: targets.len(),
                command: command.clone(),
            })
            .await;
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        let fanout = Arc::new(Semaphore::new(options.fanout.max(1)));
        // `exec` text means what it means to `ssh host 'TEXT'`: the login shell reads it.
        let cmd = Arc::new(Command {
            command,
            shell: CommandShell::Login,
            env: options.env.clone(),
            cwd: None,
            stdin: options.stdin.clone(),
        });
        for (i, target) in targets.into_iter().enumerate() {
            let job = i as u64 + 1;
            let tx = tx.clone();
            let transport = transport.clone();
            let fanout = fanout.clone();
            let cmd = cmd.clone();
            let options = options.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let permit = tokio::select! {
                    p = fanout.acquire_owned() => p.ok(),
                    _ = cancel.cancelled() => None,
                };
                if permit.is_none() {
                    let _ = tx
                        .send(Event::JobFinished {
                            host: target.label.clone(),
                            job,
                            outcome: Outcome::Interrupted,
                            elapsed: Duration::ZERO,
                        })
                        .await;
                    return;
                }
                host_task(&*transport, &target, job, &cmd, &options, &cancel, &tx).await;
                drop(permit);
            });
        }
        drop(tx);
        while let Some(ev) = rx.recv().await {
            coord.forward(ev).await;
        }
        let interrupted = cancel.is_cancelled();
        if interrupted {
            tracing::debug!("run interrupted after {:?}", coord.elapsed());
        }
        coord.finish(interrupted).await
    });
    RunHandle {
        events: out_rx,
        result,
    }
}

async fn host_task(
    transport: &dyn Transport,
    target: &Target,
    job: u64,
    cmd: &Command,
    options: &ExecOptions,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<Event>,
) {
    let host = target.label.clone();
    let interrupted = "interrupted while connecting";
    let conn = match super::connect_announced(transport, target, cancel, interrupted, tx).await {
        super::Attempt::Up(c) => c,
        failed => {
            let outcome = match failed {
                super::Attempt::Failed(e) => Outcome::ConnectFailed {
                    failure: e.failure,
                    message: e.message,
                },
                _ => Outcome::Interrupted,
            };
            let _ = tx
                .send(Event::JobFinished {
                    host,
                    job,
                    outcome,
                    elapsed: Duration::ZERO,
                })
                .await;
            return;
        }
    };
    let (outcome, elapsed) = run_job(
        &conn,
        &host,
        job,
        cmd,
        options.timeout,
        &options.stop,
        cancel,
        tx,
    )
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
    let _ = tx
        .send(Event::JobFinished {
            host,
            job,
            outcome,
            elapsed,
        })
        .await;
    conn.close().await;
}

/// Starts one job on a connected host and follows it to its end: output lines become
/// [`Event::Output`], the time limit and cancellation end it with `stop`. Returns how it
/// ended and how long it ran. Emits `JobStarted` (when it started) but not `JobFinished`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_job(
    conn: &Arc<dyn Connection>,
    host: &str,
    job: u64,
    cmd: &Command,
    timeout: Option<Duration>,
    stop: &StopSequence,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<Event>,
) -> (Outcome, Duration) {
    let started = Instant::now();
    let mut process = match conn.spawn(cmd).await {
        Ok(p) => p,
        Err(e) => return (spawn_failure(e), Duration::ZERO),
    };
    let _ = tx
        .send(Event::JobStarted {
            host: host.to_string(),
            job,
            command: cmd.command.clone(),
        })
        .await;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut forced: Option<Outcome> = None;
    let mut stopping: Option<tokio::task::JoinHandle<()>> = None;
    let mut stdout = LineSplitter::default();
    let mut stderr = LineSplitter::default();
    let emit = |stream: Stream, line: Vec<u8>, partial: bool| Event::Output {
        host: host.to_string(),
        job,
        stream,
        line,
        partial,
    };
    let exit = loop {
        let sleep = async {
            match deadline {
                Some(d) if forced.is_none() => tokio::time::sleep_until(d).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = process.events.recv() => match ev {
                Some(ProcessEvent::Stdout(data)) => {
                    let mut lines = Vec::new();
                    stdout.push(&data, |l, p| lines.push((l, p)));
                    for (l, p) in lines { let _ = tx.send(emit(Stream::Stdout, l, p)).await; }
                }
                Some(ProcessEvent::Stderr(data)) => {
                    let mut lines = Vec::new();
                    stderr.push(&data, |l, p| lines.push((l, p)));
                    for (l, p) in lines { let _ = tx.send(emit(Stream::Stderr, l, p)).await; }
                }
                Some(ProcessEvent::Exit(exit)) => break exit,
                None => break Exit::NoStatus,
            },
            _ = sleep => {
                forced = Some(Outcome::TimedOut);
                stopping = stop_in_background(conn, process.pgid, stop);
            }
            _ = cancel.cancelled(), if forced.is_none() => {
                forced = Some(Outcome::Interrupted);
                stopping = stop_in_background(conn, process.pgid, stop);
            }
        }
    };
    if let Some(stopping) = stopping {
        // Let the stop finish its sweep (KILL of stragglers) before the connection closes.
        let _ = stopping.await;
    }
    if let Some(l) = stdout.finish() {
        let _ = tx.send(emit(Stream::Stdout, l, true)).await;
    }
    if let Some(l) = stderr.finish() {
        let _ = tx.send(emit(Stream::Stderr, l, true)).await;
    }
    (outcome(forced, exit), started.elapsed())
}

/// The outcome of a job that could not start.
fn spawn_failure(e: crate::transport::SpawnError) -> Outcome {
    match e {
        crate::transport::SpawnError::Lost(m) => Outcome::ConnectFailed {
            failure: ConnectFailure::ConnectionLost,
            message: m,
        },
        other => Outcome::ConnectFailed {
            failure: ConnectFailure::Unreachable,
            message: other.to_string(),
        },
    }
}

/// The outcome of a job that ran: a lost connection first, then what sortie forced (timeout,
/// interrupt), then the exit.
fn outcome(forced: Option<Outcome>, exit: Exit) -> Outcome {
    match (forced, exit) {
        (_, Exit::Lost(message)) => Outcome::ConnectFailed {
            failure: ConnectFailure::ConnectionLost,
            message,
        },
        (Some(f), _) => f,
        (None, Exit::Code(0)) => Outcome::Ok,
        (None, Exit::Code(code)) => Outcome::Exited { code },
        (None, Exit::Signal { name, core_dumped }) => Outcome::Signaled {
            signal: name,
            core_dumped,
        },
        (None, Exit::NoStatus) => Outcome::NoExitStatus,
    }
}

/// Starts the stop sequence on its own task (and channel); the job's loop keeps reading output
/// until the exit arrives.
fn stop_in_background(
    conn: &Arc<dyn Connection>,
    pgid: Option<u32>,
    stop: &StopSequence,
) -> Option<tokio::task::JoinHandle<()>> {
    let pgid = pgid?;
    let conn = conn.clone();
    let stop = stop.clone();
    Some(tokio::spawn(async move {
        if let Err(e) = conn.stop(pgid, &stop).await {
            tracing::debug!("stop of process group {pgid} failed: {e}");
        }
    }))
}
