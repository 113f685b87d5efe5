//! The `sortie` command: parses arguments, wires reporters to the library's event stream and
//! maps outcomes to exit codes. Everything else lives in the library crates.

mod args;
mod config;
mod exec_cmd;
mod exit;
mod hosts_cmd;
mod launch_cmd;
mod report_cmd;
mod run_cmd;
mod run_file;
mod select;
mod signals;
mod transfer_cmd;
mod web;

use clap::{CommandFactory, FromArgMatches};
use exit::ExitCode;

/// The `--color` choice, set once from the command line before any output.
static COLOR: std::sync::OnceLock<sortie_report::ColorChoice> = std::sync::OnceLock::new();

/// When to colour, for every reporter and error of this run (`--color`, default auto).
pub fn color() -> sortie_report::ColorChoice {
    COLOR.get().copied().unwrap_or_default()
}

fn main() {
    let matches = args::Cli::command().get_matches();
    let mut cli = args::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    set_color(cli.color);
    // Bad config or SORTIE_* values stop here, before any host is contacted.
    let settings = match config::Settings::load(&|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(report) => {
            eprintln!("{report:?}");
            std::process::exit(ExitCode::Usage as i32);
        }
    };
    settings.apply(&mut cli.command, &matches);
    match &cli.command {
        args::Command::Completions(a) => {
            let mut text = Vec::new();
            clap_complete::generate(a.shell, &mut args::Cli::command(), "sortie", &mut text);
            print_generated(&text);
        }
        args::Command::Config => print_generated(settings.render().as_bytes()),
        args::Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(args::Cli::command())
                .render(&mut text)
                .expect("render into memory");
            print_generated(&text);
        }
        _ => {}
    }
    init_tracing(cli.verbose);
    if let Err(e) = sortie::limits::raise_nofile() {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(dispatch(cli, &matches, &settings));
    // Do not wait for lingering connection tasks: the run has ended.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code as i32);
}

async fn dispatch(
    cli: args::Cli,
    matches: &clap::ArgMatches,
    settings: &config::Settings,
) -> ExitCode {
    let cli = match cli.command {
        args::Command::Hosts(a) => return finish(hosts_cmd::run(a).await),
        args::Command::Report(a) => return finish(report_cmd::run(a)),
        args::Command::Status(rd) => {
            let result = match run_file::launch_args(&rd.run_dir, settings) {
                Ok((dir, a)) => {
                    let rd = args::RunDirArgs { run_dir: dir, ..rd };
                    launch_cmd::status(rd, a).await
                }
                Err(e) => Err(e),
            };
            return finish(result);
        }
        command => args::Cli { command, ..cli },
    };
    // Every command that contacts hosts listens for SIGINT, SIGTERM and SIGHUP before it does.
    let sig = match signals::Interrupts::install() {
        Ok(sig) => sig,
        Err(e) => {
            eprintln!("sortie: cannot listen for signals: {e}");
            return ExitCode::Usage;
        }
    };
    let result = match cli.command {
        args::Command::Exec(a) => exec_cmd::run(a, sig).await,
        args::Command::Run(a) => run_cmd::run(*a, matches.subcommand_matches("run"), sig).await,
        args::Command::Launch(a) => launch_cmd::run(a, sig).await,
        args::Command::Attach(rd) | args::Command::Stop(rd) => {
            let stop_now = matches.subcommand_name() == Some("stop");
            match run_file::launch_args(&rd.run_dir, settings) {
                Ok((dir, a)) => {
                    let rd = args::RunDirArgs { run_dir: dir, ..rd };
                    launch_cmd::attach(rd, a, stop_now, sig).await
                }
                Err(e) => Err(e),
            }
        }
        args::Command::Put(a) => transfer_cmd::put(a, sig).await,
        args::Command::Get(a) => transfer_cmd::get(a, sig).await,
        args::Command::Hosts(_)
        | args::Command::Completions(_)
        | args::Command::Man
        | args::Command::Config
        | args::Command::Report(_)
        | args::Command::Status(_) => unreachable!("handled above"),
    };
    finish(result)
}

/// The exit code of a command's result; an error is printed and is a usage error.
fn finish(result: miette::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::Usage
        }
    }
}

/// Writes a generated script or page to stdout and exits; a reader that stops early (`| head`)
/// is not an error.
fn print_generated(text: &[u8]) -> ! {
    use std::io::Write;
    match std::io::stdout().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("sortie: cannot write to stdout: {e}");
            std::process::exit(ExitCode::Usage as i32);
        }
        _ => std::process::exit(0),
    }
}

/// Records `--color` for the reporters and makes miette's error reports follow it.
fn set_color(choice: args::Color) {
    use sortie_report::ColorChoice;
    let choice = match choice {
        args::Color::Auto => ColorChoice::Auto,
        args::Color::Always => ColorChoice::Always,
        args::Color::Never => ColorChoice::Never,
    };
    let _ = COLOR.set(choice);
    if choice != ColorChoice::Auto {
        let on = choice == ColorChoice::Always;
        let _ = miette::set_hook(Box::new(move |_| {
            Box::new(miette::MietteHandlerOpts::new().color(on).build())
        }));
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,russh=warn",
        2 => "debug,russh=warn",
        // russh stays at info: its debug output would show exec requests, which carry
        // --env values.
        _ => "trace,russh=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SORTIE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
