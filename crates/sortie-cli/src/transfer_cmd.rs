//! `sortie put` / `sortie get`: selection (keeping inventory tags for `{tag:NAME}`), the local
//! checks that must fail before any host is contacted, the library's fleet transfer, the
//! reporters (per-host lines and the summary, as for `exec`) and a progress bar on a terminal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sortie::transfer::{
    self, GetOptions, HostTarget, LocalTree, Method, Progress, PutOptions, TransferCtx,
    TransferHandle,
};
use sortie_inventory::Resolver;
use sortie_report::{Mode, PrefixStyle, Reporter, ReporterConfig};

use crate::args::{GetArgs, PutArgs, Selection, TransferMethod};
use crate::exit::ExitCode;
use crate::select;

/// `sortie put [selection] LOCAL... REMOTE`.
pub async fn put(args: PutArgs, signals: crate::signals::Interrupts) -> miette::Result<ExitCode> {
    let (remote, locals) = args
        .paths
        .split_last()
        .ok_or_else(|| miette::miette!("expected LOCAL... REMOTE"))?;
    let locals: Vec<PathBuf> = locals.iter().map(PathBuf::from).collect();
    // Local sources are checked before any host is contacted.
    let tree = LocalTree::scan(&locals, args.common.recursive).map_err(miette::Report::new)?;
    let hosts = host_targets(&args.selection)?;
    let opts = PutOptions {
        recursive: args.common.recursive,
        checksum: args.checksum,
        verify: args.verify,
        method: method(args.common.method),
        fanout: args.common.fanout as usize,
    };
    let ctx = TransferCtx::default();
    let labels: Vec<String> = hosts.iter().map(|h| h.target.label.clone()).collect();
    let handle = transfer::put(
        select::transports(args.common.max_handshakes),
        hosts,
        tree,
        remote,
        opts,
        ctx.clone(),
    )
    .map_err(miette::Report::new)?;
    select::on_interrupt(signals, ctx.cancel.clone());
    let mut reporter = reporter(labels, args.common.json)?;
    Ok(drive(handle, &mut reporter, ctx.progress, args.common.json).await)
}

/// `sortie get [selection] REMOTE... LOCAL_DIR`.
pub async fn get(args: GetArgs, signals: crate::signals::Interrupts) -> miette::Result<ExitCode> {
    let (local_dir, remotes) = args
        .paths
        .split_last()
        .ok_or_else(|| miette::miette!("expected REMOTE... LOCAL_DIR"))?;
    let local_dir = PathBuf::from(local_dir);
    if local_dir.exists() && !local_dir.is_dir() {
        return Err(miette::miette!(
            help = "give a directory: sortie writes LOCAL_DIR/<host>/...",
            "{}: not a directory",
            local_dir.display()
        ));
    }
    let hosts = host_targets(&args.selection)?;
    let opts = GetOptions {
        recursive: args.common.recursive,
        method: method(args.common.method),
        fanout: args.common.fanout as usize,
    };
    let ctx = TransferCtx::default();
    let labels: Vec<String> = hosts.iter().map(|h| h.target.label.clone()).collect();
    let handle = transfer::get(
        select::transports(args.common.max_handshakes),
        hosts,
        remotes,
        local_dir,
        opts,
        ctx.clone(),
    )
    .map_err(miette::Report::new)?;
    select::on_interrupt(signals, ctx.cancel.clone());
    let mut reporter = reporter(labels, args.common.json)?;
    Ok(drive(handle, &mut reporter, ctx.progress, args.common.json).await)
}

fn method(m: TransferMethod) -> Method {
    match m {
        TransferMethod::Auto => Method::Auto,
        TransferMethod::Sftp => Method::Sftp,
        TransferMethod::Exec => Method::Exec,
    }
}

/// Like `select::targets`, keeping each host's inventory tags.
pub fn host_targets(sel: &Selection) -> miette::Result<Vec<HostTarget>> {
    let req = select::request(sel);
    let resolver = Resolver::new(&req).map_err(miette::Report::new)?;
    let hosts = resolver.select(&req).map_err(miette::Report::new)?;
    if hosts.is_empty() {
        return Err(miette::miette!(
            help = "check -H/-g/-x and the inventory",
            "no host selected"
        ));
    }
    let targets = hosts
        .iter()
        .map(|h| {
            Ok(HostTarget {
                target: select::target(&resolver, h)?,
                tags: h.tags.clone(),
            })
        })
        .collect::<miette::Result<Vec<_>>>()?;
    select::print_warnings(&resolver.warnings());
    Ok(targets)
}

fn reporter(labels: Vec<String>, json: bool) -> miette::Result<sortie_report::Fanout> {
    ReporterConfig::new(if json { Mode::Json } else { Mode::Line })
        .color(crate::color())
        .labels(labels)
        .prefix(PrefixStyle::Host)
        // The byte progress bar replaces the host status line.
        .status_line(false)
        .build()
        .map_err(miette::Report::new)
}

/// Feeds events to the reporters while a progress bar (terminal only) shows bytes and rate.
async fn drive(
    mut handle: TransferHandle,
    reporter: &mut dyn Reporter,
    progress: Arc<Progress>,
    json: bool,
) -> ExitCode {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed} [{wide_bar}] {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut quiet = false;
    loop {
        tokio::select! {
            ev = handle.events.recv() => {
                let Some(ev) = ev else { break };
                if quiet {
                    continue;
                }
                let r = bar.suspend(|| reporter.report(&ev));
                if let Err(e) = r {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        eprintln!("sortie: cannot write output: {e}");
                    }
                    quiet = true;
                }
            }
            _ = tick.tick() => {
                bar.set_length(progress.total().max(progress.bytes()));
                bar.set_position(progress.bytes());
            }
        }
    }
    bar.finish_and_clear();
    if !quiet {
        let _ = reporter.finish();
    }
    match handle.result.await {
        Ok(result) => ExitCode::for_run(result.run.interrupted, &result.run.buckets),
        Err(e) => {
            eprintln!("sortie: internal error: {e}");
            ExitCode::CommandFailed
        }
    }
}
