//! The runner: the only place that schedules work, and the only owner of run state.
//!
//! Per-host tasks connect, start processes and turn their output into [`Event`]s; they send
//! them to one coordinator, which keeps the counts, adds [`Event::Progress`] after every state
//! change, and hands the ordered stream to the caller. The runner knows nothing about
//! terminals or files: reporters consume the stream.

mod announce;
pub mod exec;
mod lines;
pub(crate) mod pool;
pub mod run;

pub(crate) use announce::{connect_announced, Announced, Attempt};
pub use exec::{exec, ExecOptions};
pub use lines::LineSplitter;

use sortie_events::{Counts, Event};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Capacity of event queues: when reporters fall behind, hosts are slowed down (backpressure
/// down to the SSH channel windows) instead of buffering without bound.
pub(crate) const QUEUE: usize = 1024;

/// A run in progress: its ordered event stream and, when the stream ends, its result.
pub struct RunHandle {
    /// Events in order; ends after [`Event::RunFinished`].
    pub events: mpsc::Receiver<Event>,
    /// Resolves to the final counts once the run ended.
    pub result: JoinHandle<RunResult>,
}

/// The end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// Final counts.
    pub counts: Counts,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Jobs that ended in each summary bucket.
    pub buckets: std::collections::BTreeMap<sortie_events::Bucket, usize>,
}

/// State shared by the coordinator: derives counts from the events it forwards.
pub(crate) struct Coordinator {
    counts: Counts,
    out: mpsc::Sender<Event>,
    started: Instant,
    buckets: std::collections::BTreeMap<sortie_events::Bucket, usize>,
    connecting: std::collections::HashSet<String>,
    running: std::collections::HashSet<u64>,
}

impl Coordinator {
    pub(crate) fn new(out: mpsc::Sender<Event>, pending: usize) -> Self {
        Coordinator {
            counts: Counts {
                pending,
                ..Counts::default()
            },
            out,
            started: Instant::now(),
            buckets: Default::default(),
            connecting: Default::default(),
            running: Default::default(),
        }
    }

    /// Forwards one event, updating counts; emits a progress event when they changed.
    ///
    /// Hosts count as `connecting` from `HostConnecting` to `HostConnected`/`HostFailed`;
    /// jobs count as `pending` until `JobStarted`, `running` until `JobFinished`, then
    /// `done` (success) or `failed`. A job that finishes without starting leaves `pending`.
    pub(crate) async fn forward(&mut self, ev: Event) {
        let before = self.counts;
        match &ev {
            Event::HostConnecting { host } if self.connecting.insert(host.clone()) => {
                self.counts.connecting += 1;
            }
            Event::HostConnected { host, .. } | Event::HostFailed { host, .. }
                if self.connecting.remove(host) =>
            {
                self.counts.connecting -= 1;
            }
            Event::JobStarted { job, .. } if self.running.insert(*job) => {
                self.counts.pending = self.counts.pending.saturating_sub(1);
                self.counts.running += 1;
            }
            Event::JobFinished { job, outcome, .. } => {
                if self.running.remove(job) {
                    self.counts.running -= 1;
                } else {
                    self.counts.pending = self.counts.pending.saturating_sub(1);
                }
                *self.buckets.entry(outcome.bucket()).or_default() += 1;
                if outcome.is_success() {
                    self.counts.done += 1;
                } else {
                    self.counts.failed += 1;
                }
            }
            _ => {}
        }
        let _ = self.out.send(ev).await;
        if self.counts != before {
            let _ = self
                .out
                .send(Event::Progress {
                    counts: self.counts,
                })
                .await;
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) async fn finish(mut self, interrupted: bool) -> RunResult {
        self.counts.pending = 0;
        self.counts.connecting = 0;
        self.counts.running = 0;
        let _ = self
            .out
            .send(Event::RunFinished {
                counts: self.counts,
                elapsed: self.started.elapsed(),
                interrupted,
            })
            .await;
        RunResult {
            counts: self.counts,
            interrupted,
            buckets: self.buckets,
        }
    }
}
