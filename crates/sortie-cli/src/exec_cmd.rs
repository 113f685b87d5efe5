//! `sortie exec`: wires the selection, the exec runner and the reporters.

use std::sync::Arc;

use sortie::runner::{exec, ExecOptions};
use sortie::transport::{Stdin, StopSequence, Transport};
use sortie_report::{Mode, PrefixStyle, Reporter, ReporterConfig};

use crate::args::ExecArgs;
use crate::exit::ExitCode;
use crate::select;

/// The most stdin `exec` reads: it is held in memory once and shared by every host.
pub const STDIN_LIMIT: usize = 64 << 20;

pub async fn run(args: ExecArgs, signals: crate::signals::Interrupts) -> miette::Result<ExitCode> {
    let mut targets = select::targets(&args.selection)?;
    if args.forward_agent {
        targets.iter_mut().for_each(|t| t.forward_agent = true);
    }
    let stdin = if args.no_stdin {
        None
    } else {
        read_stdin().await?
    };
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
        stdin,
    };
    let transport: Arc<dyn Transport> = select::transports(args.max_handshakes);
    let cancel = sortie::CancellationToken::new();
    select::on_interrupt(signals, cancel.clone());
    let handle = exec(transport, targets, command, options, cancel);
    Ok(drive(handle, &mut reporter).await)
}

/// Reads stdin for every host's command when it is not a terminal: all of it, up to
/// [`STDIN_LIMIT`], before any host is contacted. An empty or closed stdin gives `None`, so
/// cron and CI runs behave as without input. Says on stderr when stdin takes long to end (a
/// pipe nobody closes), since the run waits for it.
async fn read_stdin() -> miette::Result<Option<Stdin>> {
    use std::io::{IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let mut reader = tokio::task::spawn_blocking(|| {
        let mut buf = Vec::new();
        let read = std::io::stdin()
            .lock()
            .take(STDIN_LIMIT as u64 + 1)
            .read_to_end(&mut buf);
        read.map(|_| buf)
    });
    let read = tokio::select! {
        r = &mut reader => r,
        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
            eprintln!(
                "sortie: waiting for stdin to end: it goes to every host's command \
                 (--no-stdin or </dev/null to run without it)"
            );
            reader.await
        }
    };
    let buf = match read.map_err(|e| miette::miette!("cannot read stdin: {e}"))? {
        Ok(buf) => buf,
        // A closed descriptor 0 (some daemons start jobs so) is no input, as before.
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Ok(None),
        Err(e) => return Err(miette::miette!("cannot read stdin: {e}")),
    };
    if buf.len() > STDIN_LIMIT {
        return Err(miette::miette!(
            help = "copy large input with `sortie put` and let the command read the file, or \
                    pass --no-stdin",
            "stdin holds more than {} MiB: `sortie exec` reads it into memory once for every \
             host's command, up to that bound",
            STDIN_LIMIT >> 20
        ));
    }
    Ok(Stdin::new(buf))
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
