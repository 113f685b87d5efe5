//! The fixture error type: why a fixture could not be built, started or queried.

use std::path::PathBuf;

/// Why a fixture operation failed.
///
/// Converts into [`std::io::Error`], so `?` works in tests returning `io::Result`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path or program.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An OpenSSH helper (`ssh-keygen`, `ssh-add`, ...) exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        /// The command line that failed.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on standard error.
        stderr: String,
    },
    /// `sshd` did not come up.
    #[error("sshd did not start: {reason}\n--- sshd log ({log_path}) ---\n{log}")]
    SshdStart {
        /// What went wrong.
        reason: String,
        /// The sshd log file.
        log_path: PathBuf,
        /// Its content.
        log: String,
    },
    /// The fixture cannot run in this environment (missing binary, privileges, ...).
    #[error("fixture unavailable: {0}")]
    Unavailable(String),
    /// `ssh-agent` did not come up.
    #[error("ssh-agent did not start: {0}")]
    AgentStart(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { what, source } => {
                std::io::Error::new(source.kind(), format!("{what}: {source}"))
            }
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Result type of the fixture operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `cmd`, returning its stdout, or [`Error::Tool`] when it fails.
pub(crate) fn run(cmd: &mut std::process::Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {shown}"), e))?;
    if !out.status.success() {
        return Err(Error::Tool {
            command: shown,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
