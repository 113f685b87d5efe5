//! A plan's file transfers: `[[upload]]` on each host before its first process starts, and
//! `[[collect]]` from each host after the stop, into the run directory.
//!
//! Both go through [`crate::transfer`] over a channel of the host's launch connections, with
//! the semantics of `sortie put -r` / `sortie get -r` (temporary name and rename, modes kept,
//! identical files skipped, one local directory per host). Each step on each host gives one
//! [`TransferRecord`], which travels as [`LaunchEvent::TransferFinished`](super::LaunchEvent)
//! and lands in `report.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use sortie_plan::launch::{Plan, Transfer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hosts::HostPool;
use crate::transfer::{
    expand_remote, get_files, put_files, GetOptions, Progress, PutOptions, TransferCtx,
    TransferError, TransferReport,
};
use crate::transport::Connection;

/// Which list of the plan a transfer comes from (ordered as they run: uploads first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStep {
    /// `[[upload]]`: local to the host, before the host's first start.
    Upload,
    /// `[[collect]]`: from the host into the run directory, after the stop.
    Collect,
}

/// How one transfer went on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// Every file arrived (or was already identical).
    Ok,
    /// At least one file failed, or the host's transfer could not go on.
    Failed,
    /// Not attempted (host unreachable or lost, an earlier upload failed, interrupted).
    Skipped,
}

/// One transfer of the plan on one host, as recorded in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransferRecord {
    /// Upload or collect.
    pub step: TransferStep,
    /// Position in the plan's `[[upload]]` or `[[collect]]` list (0-based).
    pub index: usize,
    /// Host label.
    pub host: String,
    /// Source, with `{host}` expanded (a local path for uploads).
    pub src: String,
    /// Destination, with `{host}` expanded (a local directory for collections).
    pub dest: String,
    /// How it went.
    pub outcome: TransferOutcome,
    /// Files written.
    pub files: u64,
    /// Files left alone because they were already identical.
    pub unchanged: u64,
    /// Bytes of file content moved.
    pub bytes: u64,
    /// Per-file failures, or why it was skipped.
    pub errors: Vec<String>,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
}

impl TransferRecord {
    fn new(step: TransferStep, index: usize, host: &str, src: String, dest: String) -> Self {
        TransferRecord {
            step,
            index,
            host: host.to_string(),
            src,
            dest,
            outcome: TransferOutcome::Skipped,
            files: 0,
            unchanged: 0,
            bytes: 0,
            errors: Vec::new(),
            elapsed_ms: 0,
        }
    }

    /// A record for a transfer that was not attempted on `host`.
    pub(crate) fn skipped(
        step: TransferStep,
        index: usize,
        t: &Transfer,
        host: &str,
        why: String,
    ) -> Self {
        let mut r = TransferRecord::new(step, index, host, t.src.clone(), t.dest.clone());
        r.errors.push(why);
        r
    }

    fn finish(&mut self, result: Result<TransferReport, TransferError>, t0: Instant) {
        self.elapsed_ms = t0.elapsed().as_millis() as u64;
        match result {
            Ok(rep) => {
                self.files = rep.stats.files;
                self.unchanged = rep.stats.skipped;
                self.bytes = rep.stats.bytes;
                self.errors = rep.errors.iter().map(ToString::to_string).collect();
                self.outcome = if rep.errors.is_empty() {
                    TransferOutcome::Ok
                } else {
                    TransferOutcome::Failed
                };
            }
            Err(e) => {
                self.errors.push(e.to_string());
                self.outcome = TransferOutcome::Failed;
            }
        }
    }

    /// `upload #1 bin -> /opt/kvs/ failed: <first error>` when it failed, else `None`.
    pub fn failure(&self) -> Option<String> {
        (self.outcome == TransferOutcome::Failed).then(|| {
            format!(
                "{} failed: {}",
                self.name(),
                self.errors.first().map_or("", String::as_str)
            )
        })
    }

    /// `upload#1 ./bin -> /opt/kvs/` style name for messages (1-based, as a person counts).
    pub fn name(&self) -> String {
        let step = match self.step {
            TransferStep::Upload => "upload",
            TransferStep::Collect => "collect",
        };
        format!("{step} #{} {} -> {}", self.index + 1, self.src, self.dest)
    }
}

/// Host labels as directory names: `/` (impossible in names, possible in odd labels) is `_`.
pub(crate) fn host_dir(label: &str) -> String {
    label.replace('/', "_")
}

fn transfer_ctx(cancel: &CancellationToken) -> TransferCtx {
    TransferCtx {
        progress: Arc::new(Progress::default()),
        cancel: cancel.clone(),
    }
}

/// Runs one transfer on a channel of the host's launch connections.
async fn on_channel<F, Fut>(pool: &HostPool, work: F) -> Result<TransferReport, TransferError>
where
    F: FnOnce(Arc<dyn Connection>) -> Fut,
    Fut: std::future::Future<Output = Result<TransferReport, TransferError>>,
{
    let lease = pool
        .channel()
        .await
        .map_err(|e| TransferError::ConnectionLost(e.to_string()))?;
    let result = work(lease.conn().clone()).await;
    pool.release(lease).await;
    result
}

fn no_tags() -> &'static BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    &EMPTY
}

/// Runs `uploads` (plan index, transfer) on one host, in plan order, stopping at
/// the first that fails: its processes must not start on half-staged files. Returns a record
/// per upload (the ones after a failure are skipped).
pub(crate) async fn upload(
    pool: &HostPool,
    plan: &Plan,
    uploads: &[(usize, Transfer)],
    cancel: &CancellationToken,
) -> Vec<TransferRecord> {
    let label = pool.target.label.clone();
    let ctx = transfer_ctx(cancel);
    let opts = PutOptions {
        recursive: true,
        ..PutOptions::default()
    };
    let (opts, ctx) = (&opts, &ctx);
    let mut out = Vec::with_capacity(uploads.len());
    let mut failed: Option<String> = None;
    for (index, t) in uploads {
        if let Some(why) = &failed {
            out.push(TransferRecord::skipped(
                TransferStep::Upload,
                *index,
                t,
                &label,
                format!("not attempted: {why}"),
            ));
            continue;
        }
        let source = &plan.upload_source(t);
        let t0 = Instant::now();
        let dest = expand_remote(&t.dest, &label, no_tags());
        let mut rec = TransferRecord::new(
            TransferStep::Upload,
            *index,
            &label,
            source.display().to_string(),
            dest.clone().unwrap_or_else(|_| t.dest.clone()),
        );
        let result = match dest {
            Ok(dest) => {
                on_channel(pool, |conn| async move {
                    put_files(&conn, std::slice::from_ref(source), &dest, opts, ctx).await
                })
                .await
            }
            Err(e) => Err(e.into()),
        };
        rec.finish(result, t0);
        failed = rec.failure();
        out.push(rec);
    }
    out
}

/// Runs `collects` (plan index, transfer) from one host into `run_dir/<dest>/<host>/`. A
/// failed collection does not stop the next one: every log that can come back, comes back.
pub(crate) async fn collect(
    pool: &HostPool,
    collects: &[(usize, Transfer)],
    run_dir: &Path,
    cancel: &CancellationToken,
) -> Vec<TransferRecord> {
    let label = pool.target.label.clone();
    let ctx = transfer_ctx(cancel);
    let opts = GetOptions {
        recursive: true,
        ..GetOptions::default()
    };
    let (opts, ctx) = (&opts, &ctx);
    let mut out = Vec::with_capacity(collects.len());
    for (index, t) in collects {
        let t0 = Instant::now();
        let local = run_dir.join(&t.dest).join(host_dir(&label));
        let src = expand_remote(&t.src, &label, no_tags());
        let mut rec = TransferRecord::new(
            TransferStep::Collect,
            *index,
            &label,
            src.clone().unwrap_or_else(|_| t.src.clone()),
            local.display().to_string(),
        );
        let result = match src {
            Ok(src) => {
                on_channel(pool, |conn| async move {
                    get_files(&conn, &[src], &local, opts, ctx).await
                })
                .await
            }
            Err(e) => Err(e.into()),
        };
        rec.finish(result, t0);
        out.push(rec);
    }
    out
}
