//! `run`: a list of jobs spread over hosts, N slots per host, like GNU parallel `-S`.
//!
//! This module owns the job scheduler of `sortie run`: which job starts where and when
//! (slots per host, jobs in flight overall, start rate and delay, spreading), what happens on
//! failure (retries on another host, lost hosts, `halt`), and the records a run leaves (the
//! GNU-parallel-compatible job log, `--resume`/`--resume-failed`, the `--results` directory).
//! Job sources and templates come from `sortie-plan`; processes are started by
//! `exec::run_job` over a [`Transport`]; events go through the same coordinator as
//! `exec`, so reporters work unchanged. It knows nothing about terminals.
//!
//! Layout:
//! - [`sched`]: the pure, synchronous core ([`Scheduler`]): given "host up", "host lost",
//!   "job finished" and the current time, it says what to start next and when;
//! - `conn`: a job's view of its host's connection pool (`runner::pool`, shared with
//!   `launch`), which opens connections on demand when a server refuses more channels on one
//!   connection (OpenSSH `MaxSessions`);
//! - `joblog`: the job log's format, writing and reading;
//! - `records`: the job log and results writers, consumers of the run's events;
//! - this file: the options, the errors and the executor that drives the core.
//!
//! ## Events of a run
//!
//! `RunStarted` (jobs = jobs to run after `resume`), `HostConnecting`/`HostConnected`/
//! `HostFailed` per connection attempt (a host may need several connections), `JobStarted` /
//! `Output` / `JobFinished` with `job` = the job's seq and `host` = the host's label, then
//! `RunFinished`. `RunCancelling` is sent on the first cancellation and when `halt` triggers.
//!
//! A job has exactly one `JobFinished`, for its final attempt. An attempt that will be retried
//! sends no `JobFinished` (the counts would count it twice); its rerun sends a new
//! `JobStarted` on the other host. A host lost while jobs ran on it sends one `HostFailed`
//! (`connection lost`). Jobs that could run nowhere (every host lost) finish with
//! `ConnectFailed` on host `-`. Jobs never started because the run was cancelled or halted
//! send nothing and have no job log row, so `resume` runs them next time.
//!
//! ## Records
//!
//! - Job log: one row per job finished by an attempt that started, written when it finishes
//!   (only the final attempt, as GNU parallel does); see `joblog` for the columns.
//! - Results (`results = DIR`): written, like the job log, by `records` from the run's
//!   events alone:
//!   `DIR/<seq>/stdout` and `stderr` (the final attempt's output, lines as received) and
//!   `DIR/<seq>/exit`, one line: the status a shell would show (`$?`): the exit code,
//!   128 + signal number for a signal or a job sortie stopped (timeout, interrupt), 255 when
//!   the host failed.
//! - Environment values (`env`) travel only inside the command wrapper; they appear in no
//!   event, row or file.

mod conn;
mod joblog;
mod records;
pub mod sched;

pub use joblog::HEADER as JOBLOG_HEADER;
pub use sched::{Assignment, AttemptResult, Decision, SchedConfig, Scheduler, Verdict};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sortie_events::{ConnectFailure, Event, Outcome};
use sortie_plan::{Context, JobSet, Rate, Template};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::exec::run_job;
use super::pool::{AcquireError, HostPool, Usage};
use super::{Announced, Attempt, Coordinator, RunHandle, RunResult, QUEUE};
use crate::transport::{Command, CommandShell, Connection, StopSequence, Target, Transport};
use conn::JobConn;

/// How jobs are spread over hosts with a free slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spread {
    /// The next host in turn.
    RoundRobin,
    /// The host with the smallest share of its slots in use (default).
    #[default]
    LeastLoaded,
}

/// When a halt takes effect (GNU parallel `--halt now|soon`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltWhen {
    /// Stop running jobs with the stop sequence; start nothing more.
    Now,
    /// Start nothing more; let running jobs finish.
    Soon,
}

/// How many failed jobs make the run halt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FailThreshold {
    /// This many failed jobs (at least 1).
    Count(u64),
    /// This percentage of all the jobs of the run (as GNU parallel: 2 failures out of 10 jobs
    /// reach 20%).
    Percent(f64),
}

impl FailThreshold {
    /// Whether `failed` failures out of `total` jobs reach the threshold.
    pub fn reached(self, failed: u64, total: u64) -> bool {
        match self {
            FailThreshold::Count(n) => failed >= n.max(1),
            FailThreshold::Percent(p) => failed > 0 && failed as f64 * 100.0 >= p * total as f64,
        }
    }
}

/// The halt policy: `now,fail=3`, `soon,fail=10%`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Halt {
    /// When it takes effect.
    pub when: HaltWhen,
    /// What triggers it.
    pub fail: FailThreshold,
}

/// A `--halt` value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("invalid --halt value {input:?}: {reason}")]
#[diagnostic(
    code(sortie::run::halt),
    help("write `now` or `soon`, optionally followed by `,fail=N` or `,fail=N%` (e.g. `soon,fail=10%`); the default is fail=1")
)]
pub struct HaltParseError {
    /// The value given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
    #[source_code]
    src: String,
    #[label("here")]
    span: miette::SourceSpan,
}

impl FromStr for Halt {
    type Err = HaltParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str, start: usize, len: usize| HaltParseError {
            input: s.to_owned(),
            reason: reason.to_owned(),
            src: s.to_owned(),
            span: (start, len.max(1)).into(),
        };
        let (when_text, rest) = match s.split_once(',') {
            Some((w, r)) => (w, Some(r)),
            None => (s, None),
        };
        let when = match when_text.trim() {
            "now" => HaltWhen::Now,
            "soon" => HaltWhen::Soon,
            _ => return Err(err("expected `now` or `soon`", 0, when_text.len())),
        };
        let fail = match rest {
            None => FailThreshold::Count(1),
            Some(r) => {
                let at = when_text.len() + 1;
                let Some(v) = r.trim().strip_prefix("fail=") else {
                    return Err(err("expected `fail=N` or `fail=N%`", at, r.len()));
                };
                let bad = || err("the number of failures is not valid", at, r.len());
                match v.strip_suffix('%') {
                    Some(p) => {
                        let p: f64 = p.parse().map_err(|_| bad())?;
                        if !(p > 0.0 && p <= 100.0) {
                            return Err(err("the percentage must be in (0, 100]", at, r.len()));
                        }
                        FailThreshold::Percent(p)
                    }
                    None => {
                        let n: u64 = v.parse().map_err(|_| bad())?;
                        if n == 0 {
                            return Err(err("fail=0 would halt before anything ran", at, r.len()));
                        }
                        FailThreshold::Count(n)
                    }
                }
            }
        };
        Ok(Halt { when, fail })
    }
}

/// Which jobs of a previous run's job log to skip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resume {
    /// Run every job (the job log is rewritten).
    #[default]
    No,
    /// Skip every job that has a row (`--resume`).
    All,
    /// Skip the jobs whose last row succeeded; rerun failed ones and run missing ones
    /// (`--resume-failed`).
    Failed,
}

/// Options of a `run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Jobs at once per host (default 1).
    pub slots: u32,
    /// Jobs at once overall (default: no limit beyond slots).
    pub jobs: Option<usize>,
    /// Job starts per unit of time, globally.
    pub rate: Option<Rate>,
    /// Minimum time between two job starts, globally.
    pub delay: Duration,
    /// How hosts are chosen.
    pub spread: Spread,
    /// Connection set-ups in flight at once.
    pub fanout: usize,
    /// Reruns of a failed job (on another host when there is one).
    pub retries: u32,
    /// Halt policy.
    pub halt: Option<Halt>,
    /// Per-job time limit; the job is then stopped with `stop`.
    pub timeout: Option<Duration>,
    /// How jobs are ended (timeout, cancellation, `halt now`).
    pub stop: StopSequence,
    /// Environment for every job (values never logged).
    pub env: Vec<(String, String)>,
    /// Job log file.
    pub joblog: Option<PathBuf>,
    /// Append rows to the job log and write no header (GNU parallel's `--joblog +FILE`).
    pub joblog_append: bool,
    /// Resume from the job log.
    pub resume: Resume,
    /// Results directory (`DIR/<seq>/{stdout,stderr,exit}`).
    pub results: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            slots: 1,
            jobs: None,
            rate: None,
            delay: Duration::ZERO,
            spread: Spread::default(),
            fanout: 64,
            retries: 0,
            halt: None,
            timeout: None,
            stop: StopSequence::default(),
            env: Vec::new(),
            joblog: None,
            joblog_append: false,
            resume: Resume::No,
            results: None,
        }
    }
}

/// Why a run could not start. Nothing has been contacted when one of these is returned.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunError {
    /// No host selected.
    #[error("no host to run jobs on")]
    #[diagnostic(code(sortie::run::no_hosts), help("select at least one host"))]
    NoHosts,
    /// `slots` is 0.
    #[error("--slots must be at least 1")]
    #[diagnostic(code(sortie::run::slots))]
    ZeroSlots,
    /// `jobs` is 0.
    #[error("--jobs must be at least 1")]
    #[diagnostic(code(sortie::run::jobs))]
    ZeroJobs,
    /// `resume` without a job log.
    #[error("--resume and --resume-failed need --joblog FILE")]
    #[diagnostic(
        code(sortie::run::resume),
        help("give the job log of the run to resume with --joblog")
    )]
    ResumeWithoutJoblog,
    /// The job log could not be read.
    #[error("cannot read job log {}: {source}", path.display())]
    #[diagnostic(code(sortie::run::joblog_read))]
    ReadJoblog {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The job log could not be parsed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    BadJoblog(Box<JoblogError>),
    /// The job log could not be written.
    #[error("cannot write job log {}: {source}", path.display())]
    #[diagnostic(
        code(sortie::run::joblog_write),
        help("check that the directory exists and is writable")
    )]
    WriteJoblog {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The results directory could not be created.
    #[error("cannot create results directory {}: {source}", path.display())]
    #[diagnostic(code(sortie::run::results))]
    Results {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A malformed job log row, with its place.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{}:{line}:{column}: {message}", path.display())]
#[diagnostic(
    code(sortie::run::joblog_parse),
    help("the job log must be GNU parallel's --joblog format; fix or remove this row, or run without --resume")
)]
pub struct JoblogError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    #[source_code]
    src: miette::NamedSource<String>,
    #[label("here")]
    span: miette::SourceSpan,
}

/// What job tasks, connection tasks and pools tell the executor.
pub(crate) enum Msg {
    /// An event to forward (in order).
    Event(Event),
    /// The host's first connection is up.
    Connected { host: usize },
    /// The host's first connection failed (its `HostFailed` was sent).
    ConnectFailed { host: usize },
    /// The attempt never started; queue the job again.
    Requeue { seq: u64, host: usize, why: Requeue },
    /// The attempt ended.
    Done {
        seq: u64,
        host: usize,
        outcome: Outcome,
        elapsed: Duration,
        started: bool,
    },
}

impl From<Event> for Msg {
    fn from(ev: Event) -> Self {
        Msg::Event(ev)
    }
}

/// Why an attempt never started.
pub(crate) enum Requeue {
    /// The host's connection is gone.
    Lost(String),
    /// No further connection could be opened.
    NoConnection,
}

/// Runs every job of `jobs` (rendered from `template`) on `targets`, following `options`.
///
/// Validates the options and reads the job log (for `resume`) before anything is contacted;
/// then returns the run's ordered event stream and result. Must be called within a Tokio
/// runtime. Cancelling `cancel` (the first Ctrl-C) starts nothing more and ends every running
/// job with the stop sequence; the run then finishes with `interrupted`.
pub fn run(
    transport: Arc<dyn Transport>,
    targets: Vec<Target>,
    jobs: JobSet,
    template: Template,
    options: RunOptions,
    cancel: CancellationToken,
) -> Result<RunHandle, RunError> {
    if targets.is_empty() {
        return Err(RunError::NoHosts);
    }
    if options.slots == 0 {
        return Err(RunError::ZeroSlots);
    }
    if options.jobs == Some(0) {
        return Err(RunError::ZeroJobs);
    }
    let skip = match (&options.joblog, options.resume) {
        (None, Resume::No) => HashSet::new(),
        (None, _) => return Err(RunError::ResumeWithoutJoblog),
        (Some(p), r) => joblog::skip_set(p, r)?,
    };
    let log = match &options.joblog {
        Some(p) => Some(joblog::Writer::open(
            p,
            options.resume != Resume::No,
            options.joblog_append,
        )?),
        None => None,
    };
    let results = options.results.clone();
    if let Some(dir) = &results {
        std::fs::create_dir_all(dir).map_err(|source| RunError::Results {
            path: dir.clone(),
            source,
        })?;
    }
    let interval = options
        .rate
        .map(|r| r.interval())
        .unwrap_or_default()
        .max(options.delay);
    let core = Scheduler::new(
        targets.len(),
        jobs.len(),
        skip,
        SchedConfig {
            slots: options.slots,
            jobs: options.jobs,
            interval,
            spread: options.spread,
            retries: options.retries,
            halt: options.halt,
        },
    );
    let stop_signal = options
        .stop
        .steps
        .first()
        .map_or(libc::SIGKILL.into(), |(s, _)| joblog::signal_number(s));
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    let (tx, rx) = mpsc::channel(QUEUE);
    let shared = Arc::new(Shared {
        transport,
        tx,
        job_cancel: CancellationToken::new(),
        timeout: options.timeout,
        stop: options.stop.clone(),
    });
    let pools = host_pools(targets, &shared, options.fanout);
    let exec = Executor {
        core,
        pools,
        jobs,
        template,
        options,
        shared,
        rx,
        cancel,
        connect_cancel: CancellationToken::new(),
        records: records::Records::new(log, results, stop_signal),
        attempts: HashMap::new(),
        retrying: HashMap::new(),
        interrupted: false,
    };
    let result = tokio::spawn(exec.run(out_tx));
    Ok(RunHandle {
        events: out_rx,
        result,
    })
}

/// One pool per host, opening connections with announcements, at most `fanout` at once over
/// the whole run.
fn host_pools(targets: Vec<Target>, shared: &Arc<Shared>, fanout: usize) -> Vec<Arc<HostPool>> {
    let fanout = Arc::new(Semaphore::new(fanout.max(1)));
    (targets.into_iter().enumerate())
        .map(|(i, t)| {
            let opener = Announced {
                tx: shared.tx.clone(),
                cancelled: "the run stopped while connecting",
            };
            let transport = shared.transport.clone();
            Arc::new(HostPool::new(
                i,
                t,
                transport,
                fanout.clone(),
                Box::new(opener),
            ))
        })
        .collect()
}

/// What every job task needs.
struct Shared {
    transport: Arc<dyn Transport>,
    tx: mpsc::Sender<Msg>,
    /// Cancelled on Ctrl-C and `halt now`: running jobs are stopped.
    job_cancel: CancellationToken,
    timeout: Option<Duration>,
    stop: StopSequence,
}

/// One attempt of a job, as the executor records it.
#[derive(Clone, Debug)]
struct AttemptInfo {
    host: usize,
}

/// A finished attempt that will be retried (kept to report it if the job can run nowhere).
struct Retrying {
    info: AttemptInfo,
    outcome: Outcome,
    elapsed: Duration,
    started: bool,
}

struct Executor {
    core: Scheduler,
    pools: Vec<Arc<HostPool>>,
    jobs: JobSet,
    template: Template,
    options: RunOptions,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
    cancel: CancellationToken,
    connect_cancel: CancellationToken,
    records: records::Records,
    attempts: HashMap<u64, AttemptInfo>,
    retrying: HashMap<u64, Retrying>,
    interrupted: bool,
}

impl Executor {
    async fn run(mut self, out: mpsc::Sender<Event>) -> RunResult {
        let total = self.core.total();
        let mut coord = Coordinator::new(out, total as usize);
        coord
            .forward(Event::RunStarted {
                hosts: self.pools.len(),
                jobs: total as usize,
                command: self.template.text().to_owned(),
            })
            .await;
        if total > 0 {
            self.connect_all();
        }
        'run: loop {
            let mut wake = None;
            loop {
                match self.core.next(Instant::now()) {
                    Decision::Start(a) => self.start(a),
                    Decision::Abandon { seq } => self.abandon(&mut coord, seq).await,
                    Decision::WaitUntil(t) => {
                        wake = Some(t);
                        break;
                    }
                    Decision::Wait => break,
                    Decision::Done => break 'run,
                }
            }
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.cancel.cancelled(), if !self.interrupted => {
                    self.interrupted = true;
                    self.core.cancel();
                    self.shared.job_cancel.cancel();
                    self.connect_cancel.cancel();
                    coord.forward(Event::RunCancelling { reason: "interrupted".into() }).await;
                }
                msg = self.rx.recv() => {
                    if let Some(msg) = msg {
                        self.handle(&mut coord, msg).await;
                    }
                }
                _ = sleep => {}
            }
        }
        self.connect_cancel.cancel();
        for p in &self.pools {
            p.close().await;
        }
        coord.finish(self.interrupted).await
    }

    /// Opens every host's first connection, `fanout` at a time.
    fn connect_all(&self) {
        for pool in &self.pools {
            let pool = pool.clone();
            let sh = self.shared.clone();
            let cancel = self.connect_cancel.clone();
            tokio::spawn(async move {
                let host = pool.index;
                let msg = match pool.connect(&cancel).await {
                    None => return,
                    Some(Attempt::Up(_)) => Msg::Connected { host },
                    Some(Attempt::Failed(_) | Attempt::Cancelled) => Msg::ConnectFailed { host },
                };
                let _ = sh.tx.send(msg).await;
            });
        }
    }

    fn label(&self, host: usize) -> &str {
        &self.pools[host].target.label
    }

    fn start(&mut self, a: Assignment) {
        let Some(job) = self.jobs.get(a.seq - 1) else {
            // Cannot happen: the scheduler only hands out seqs of the job set.
            return;
        };
        let pool = self.pools[a.host].clone();
        let command = self.template.render(
            &job,
            &Context {
                host: &pool.target.label,
                slot: a.slot,
                seq: a.seq,
            },
        );
        self.attempts.insert(a.seq, AttemptInfo { host: a.host });
        // GNU parallel's variables, so scripts ported from it find them.
        let mut env = self.options.env.clone();
        env.extend([
            ("PARALLEL_SEQ".to_owned(), a.seq.to_string()),
            ("PARALLEL_JOBSLOT".to_owned(), a.slot.to_string()),
            ("PARALLEL_SSHLOGIN".to_owned(), pool.target.label.clone()),
        ]);
        let cmd = Command {
            command,
            shell: CommandShell::Posix,
            env,
            cwd: None,
            stdin: None,
        };
        tokio::spawn(attempt(self.shared.clone(), pool, a.seq, cmd));
    }

    async fn handle(&mut self, coord: &mut Coordinator, msg: Msg) {
        match msg {
            Msg::Event(ev) => {
                self.records.observe(&ev);
                coord.forward(ev).await;
            }
            Msg::Connected { host } => self.core.host_up(host),
            Msg::ConnectFailed { host } => {
                self.core.host_lost(host);
            }
            Msg::Requeue { seq, host, why } => {
                self.core.requeue(seq);
                self.attempts.remove(&seq);
                match why {
                    Requeue::Lost(message) => self.lose_host(coord, host, message).await,
                    Requeue::NoConnection => {
                        let running = self.core.running_on(host);
                        if running == 0 {
                            if self.core.host_lost(host) {
                                self.pools[host].close().await;
                            }
                        } else {
                            self.core.limit_host(host, running as u32);
                        }
                    }
                }
            }
            Msg::Done {
                seq,
                host,
                outcome,
                elapsed,
                started,
            } => {
                let info = self.attempts.remove(&seq).unwrap_or(AttemptInfo { host });
                if let Outcome::ConnectFailed {
                    failure: ConnectFailure::ConnectionLost,
                    message,
                } = &outcome
                {
                    self.lose_host(coord, host, message.clone()).await;
                }
                let result = match outcome {
                    Outcome::Ok => AttemptResult::Ok,
                    Outcome::Interrupted => AttemptResult::Interrupted,
                    _ => AttemptResult::Failed,
                };
                match self.core.finished(seq, result) {
                    Verdict::Retry => {
                        self.retrying.insert(
                            seq,
                            Retrying {
                                info,
                                outcome,
                                elapsed,
                                started,
                            },
                        );
                    }
                    Verdict::Final { halt } => {
                        self.retrying.remove(&seq);
                        self.finish_job(coord, seq, &info, outcome, elapsed, started)
                            .await;
                        if let Some(when) = halt {
                            self.halt(coord, when).await;
                        }
                    }
                }
            }
        }
    }

    async fn lose_host(&mut self, coord: &mut Coordinator, host: usize, message: String) {
        if self.core.host_lost(host) {
            coord
                .forward(Event::HostFailed {
                    host: self.label(host).to_owned(),
                    failure: ConnectFailure::ConnectionLost,
                    message,
                })
                .await;
            let pool = self.pools[host].clone();
            tokio::spawn(async move { pool.close().await });
        }
    }

    async fn halt(&mut self, coord: &mut Coordinator, when: HaltWhen) {
        let how = match when {
            HaltWhen::Now => "stopping running jobs",
            HaltWhen::Soon => "waiting for running jobs",
        };
        coord
            .forward(Event::RunCancelling {
                reason: format!("halt: {} job(s) failed; {how}", self.core.failed()),
            })
            .await;
        self.connect_cancel.cancel();
        if when == HaltWhen::Now {
            self.shared.job_cancel.cancel();
        }
    }

    async fn abandon(&mut self, coord: &mut Coordinator, seq: u64) {
        match self.retrying.remove(&seq) {
            Some(r) => {
                self.finish_job(coord, seq, &r.info, r.outcome, r.elapsed, r.started)
                    .await
            }
            None => {
                let ev = Event::JobFinished {
                    host: "-".into(),
                    job: seq,
                    outcome: Outcome::ConnectFailed {
                        failure: ConnectFailure::Unreachable,
                        message: "no host left to run this job".into(),
                    },
                    elapsed: Duration::ZERO,
                };
                self.records.observe(&ev);
                coord.forward(ev).await
            }
        }
        if let Some(when) = self.core.abandoned() {
            self.halt(coord, when).await;
        }
    }

    /// Sends the final attempt's `JobFinished` (the records write its job log row and results
    /// `exit` file from it). `started`: whether the attempt ran (else its elapsed time is zero,
    /// which tells the records it never started).
    async fn finish_job(
        &mut self,
        coord: &mut Coordinator,
        seq: u64,
        info: &AttemptInfo,
        outcome: Outcome,
        elapsed: Duration,
        started: bool,
    ) {
        let ev = Event::JobFinished {
            host: self.label(info.host).to_owned(),
            job: seq,
            outcome,
            elapsed: if started {
                elapsed.max(Duration::from_nanos(1))
            } else {
                Duration::ZERO
            },
        };
        self.records.observe(&ev);
        coord.forward(ev).await;
    }
}

/// One attempt of job `seq` on the host of `pool`: borrows a connection (another one when the
/// server refuses a channel), runs the job with [`run_job`] and reports how it ended.
async fn attempt(sh: Arc<Shared>, pool: Arc<HostPool>, seq: u64, cmd: Command) {
    let host = pool.index;
    let mut refused_everywhere = 0;
    loop {
        let lease = match pool.acquire(Usage::Process, &sh.job_cancel).await {
            Ok(l) => l,
            Err(e) => {
                let _ = sh.tx.send(acquire_failed(seq, host, e)).await;
                return;
            }
        };
        let adapter = Arc::new(JobConn::new(&lease, pool.clone()));
        let conn: Arc<dyn Connection> = adapter.clone();
        // run_job's events go through a per-attempt queue that is drained into the run's queue
        // before `Done` is sent, so a job's events always precede its end.
        let (etx, mut erx) = mpsc::channel::<Event>(64);
        let job = async {
            let etx = etx;
            run_job(
                &conn,
                &pool.target.label,
                seq,
                &cmd,
                sh.timeout,
                &sh.stop,
                &sh.job_cancel,
                &etx,
            )
            .await
        };
        let forward = async {
            while let Some(ev) = erx.recv().await {
                let _ = sh.tx.send(Msg::Event(ev)).await;
            }
        };
        let ((outcome, elapsed), ()) = tokio::join!(job, forward);
        let spawned = adapter.spawned.load(Ordering::Acquire);
        if adapter.refused.load(Ordering::Acquire) {
            let alone = pool.refused(&lease);
            pool.release(lease);
            if alone {
                refused_everywhere += 1;
                if refused_everywhere >= 3 {
                    let _ = sh
                        .tx
                        .send(Msg::Done {
                            seq,
                            host,
                            outcome,
                            elapsed: Duration::ZERO,
                            started: false,
                        })
                        .await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        }
        pool.release(lease);
        let msg = match outcome {
            Outcome::ConnectFailed {
                failure: ConnectFailure::ConnectionLost,
                message,
            } if !spawned => Msg::Requeue {
                seq,
                host,
                why: Requeue::Lost(message),
            },
            outcome => Msg::Done {
                seq,
                host,
                outcome,
                elapsed,
                started: spawned,
            },
        };
        let _ = sh.tx.send(msg).await;
        return;
    }
}

/// What to tell the coordinator when no connection could be had for job `seq`: interrupted,
/// or try it again (elsewhere).
fn acquire_failed(seq: u64, host: usize, e: AcquireError) -> Msg {
    match e {
        AcquireError::Cancelled => Msg::Done {
            seq,
            host,
            outcome: Outcome::Interrupted,
            elapsed: Duration::ZERO,
            started: false,
        },
        AcquireError::Closed => Msg::Requeue {
            seq,
            host,
            why: Requeue::Lost("connection lost".into()),
        },
        AcquireError::Connect(_) | AcquireError::Full => Msg::Requeue {
            seq,
            host,
            why: Requeue::NoConnection,
        },
    }
}

#[cfg(test)]
mod tests;
