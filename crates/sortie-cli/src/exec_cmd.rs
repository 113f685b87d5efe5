//! `sortie exec`: wires the selection, the exec runner and the reporters.

use std::sync::Arc;

use sortie::runner::{exec, ExecOptions};
use sortie::transport::{StopSequence, Transport};
use sortie_report::{Mode, PrefixStyle, Reporter, ReporterConfig};

use crate::args::ExecArgs;
use crate::exit::ExitCode;
use crate::select;

pub async fn run(args: ExecArgs, signals: crate::signals::Interrupts) -> miette::Result<ExitCode> {
    let targets = select::targets(&args.selection)?;
    let mode = if args.json {
        Mode::Json
    } else if let Some(dir) = &args.out_dir {
        Mode::OutDir(dir.clone())
    } else if args.group {
        Mode::Group
    } else {
        Mode::Line
    };
    let mut reporter = ReporterConfig::new(mode)
        .color(crate::color())
        .labels(targets.iter().map(|t| t.label.clone()))
        .prefix(PrefixStyle::Host)
        .build()
        .map_err(miette::Report::new)?;
    let command = args.command.join(" ");
    let options = ExecOptions {
        fanout: args.fanout as usize,
        timeout: args.timeout,
        stop: StopSequence {
            steps: vec![("TERM".into(), args.kill_grace)],
        },
        env: args.env,
    };
    let transport: Arc<dyn Transport> = select::transports();
    let cancel = sortie::CancellationToken::new();
    select::on_interrupt(signals, cancel.clone());
    let handle = exec(transport, targets, command, options, cancel);
    Ok(drive(handle, &mut reporter).await)
}

/// Feeds every event to the reporters and returns the exit code of the run.
pub async fn drive(mut handle: sortie::runner::RunHandle, reporter: &mut dyn Reporter) -> ExitCode {
    let mut quiet = false;
    while let Some(ev) = handle.events.recv().await {
        if quiet {
            continue;
        }
        if let Err(e) = reporter.report(&ev) {
            // A closed pipe (`| head`) ends output quietly; the run itself goes on.
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("sortie: cannot write output: {e}");
            }
            quiet = true;
        }
    }
    if !quiet {
        let _ = reporter.finish();
    }
    match handle.result.await {
        Ok(result) => ExitCode::for_run(result.interrupted, &result.buckets),
        Err(e) => {
            eprintln!("sortie: internal error: {e}");
            ExitCode::CommandFailed
        }
    }
}
