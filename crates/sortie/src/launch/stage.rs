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

pub use sortie_events::launch::{TransferOutcome, TransferRecord, TransferStep};
use sortie_plan::launch::{Plan, Transfer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::runner::pool::HostPool;
use crate::transfer::{
    expand_remote, get_files, put_files, GetOptions, Progress, PutOptions, TransferCtx,
    TransferError, TransferReport,
};
use crate::transport::Connection;

/// A record for a transfer that was not attempted on `host`.
pub(crate) fn skipped(
    step: TransferStep,
    index: usize,
    t: &Transfer,
    host: &str,
    why: String,
) -> TransferRecord {
    let mut r = TransferRecord::new(step, index, host, t.src.clone(), t.dest.clone());
    r.errors.push(why);
    r
}

/// Fills a record in from the transfer's result.
fn finish(rec: &mut TransferRecord, result: Result<TransferReport, TransferError>, t0: Instant) {
    rec.elapsed_ms = t0.elapsed().as_millis() as u64;
    match result {
        Ok(rep) => {
            rec.files = rep.stats.files;
            rec.unchanged = rep.stats.skipped;
            rec.bytes = rep.stats.bytes;
            rec.errors = rep.errors.iter().map(ToString::to_string).collect();
            rec.outcome = if rep.errors.is_empty() {
                TransferOutcome::Ok
            } else {
                TransferOutcome::Failed
            };
        }
        Err(e) => {
            rec.errors.push(e.to_string());
            rec.outcome = TransferOutcome::Failed;
        }
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
    pool.release(lease);
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
            out.push(skipped(
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
        finish(&mut rec, result, t0);
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
        finish(&mut rec, result, t0);
        out.push(rec);
    }
    out
}
