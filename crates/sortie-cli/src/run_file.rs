//! `RUN_DIR/run.json`: how a launch was started, so that `sortie attach`, `status` and `stop`
//! need only the run directory. It holds the working directory and the `sortie launch`
//! command line (plan, `--set` overrides, hosts' connection options); never a secret:
//! `env_from_controller` values are read from the environment again when a process must
//! start, and the config file and `SORTIE_*` variables apply as for any command.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches};
use serde::{Deserialize, Serialize};

use crate::args::{self, LaunchArgs};

/// The file's name in the run directory.
pub const RUN_FILE: &str = "run.json";

#[derive(Serialize, Deserialize)]
struct RunFile {
    v: u32,
    run_id: String,
    cwd: PathBuf,
    argv: Vec<String>,
}

/// Writes `run.json` for run `run_id` from this process's command line.
pub fn write(dir: &Path, run_id: &str) -> miette::Result<()> {
    let file = RunFile {
        v: 1,
        run_id: run_id.to_string(),
        cwd: std::env::current_dir().unwrap_or_default(),
        argv: std::env::args().collect(),
    };
    let text = serde_json::to_string_pretty(&file).expect("run file serialises");
    std::fs::write(dir.join(RUN_FILE), text + "\n")
        .map_err(|e| miette::miette!("cannot write {}: {e}", dir.join(RUN_FILE).display()))
}

/// The launch options of the run in `run_dir` (made absolute), read from its `run.json`, with
/// the config file's settings applied; the process moves to the launch's working directory,
/// so the plan's relative paths mean what they meant.
pub fn launch_args(
    run_dir: &Path,
    settings: &crate::config::Settings,
) -> miette::Result<(PathBuf, LaunchArgs)> {
    let path = run_dir.join(RUN_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        miette::miette!(
            code = "sortie::attach::no_run_file",
            help = "RUN_DIR is the directory `sortie launch` printed (it holds run.json and events.jsonl)",
            "cannot read {}: {e}",
            path.display()
        )
    })?;
    let file: RunFile = serde_json::from_str(&text)
        .map_err(|e| miette::miette!("{}: not a run file: {e}", path.display()))?;
    let run_dir = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
    std::env::set_current_dir(&file.cwd).map_err(|e| {
        miette::miette!(
            "cannot enter {}, where the launch ran: {e}",
            file.cwd.display()
        )
    })?;
    let matches = args::Cli::command()
        .try_get_matches_from(&file.argv)
        .map_err(|e| {
            miette::miette!("{}: its command line no longer parses: {e}", path.display())
        })?;
    let mut cli = args::Cli::from_arg_matches(&matches)
        .map_err(|e| miette::miette!("{}: {e}", path.display()))?;
    settings.apply(&mut cli.command, &matches);
    match cli.command {
        args::Command::Launch(mut a) => {
            a.run_dir = Some(run_dir.clone());
            a.dry_run = false;
            Ok((run_dir, a))
        }
        _ => Err(miette::miette!(
            "{}: not the record of a launch",
            path.display()
        )),
    }
}
