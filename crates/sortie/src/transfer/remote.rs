//! The remote side behind one trait: [`RemoteFs`], implemented by SFTP ([`super::sftp`]) and by
//! the exec-channel fallback ([`super::shell`]). The put/get logic is written once against it.
//! This module knows neither implementation (they depend on it, not the other way round);
//! [`super::open_remote`] picks one.

use std::path::Path;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{LocalEntry, Method, Progress};
use crate::transport::{Command, Connection, Exit, ProcessEvent, SpawnError};

/// What a remote path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RKind {
    Dir,
    File,
    Other,
}

/// A remote file's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RStat {
    pub kind: RKind,
    pub size: u64,
    pub mode: u32,
    pub mtime: u64,
}

/// Why a remote operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RError {
    NotFound,
    PermissionDenied,
    /// The connection or session is gone: stop this host.
    Lost(String),
    Interrupted,
    Other(String),
}

pub(crate) type RResult<T> = Result<T, RError>;

/// The operations put and get need on a host.
#[async_trait]
pub(crate) trait RemoteFs: Send + Sync {
    /// Which method this is.
    fn method(&self) -> Method;
    /// The login directory (what `~` means on the host).
    async fn home(&self) -> RResult<String>;
    /// Metadata (symbolic links followed), `None` when the path does not exist.
    async fn stat(&self, path: &str) -> RResult<Option<RStat>>;
    /// Creates one directory.
    async fn mkdir(&self, path: &str, mode: u32) -> RResult<()>;
    /// Sets permission bits.
    async fn chmod(&self, path: &str, mode: u32) -> RResult<()>;
    /// Writes the local file `src` to `remote` (a fresh temporary name), with its mode and
    /// mtime; returns the bytes sent.
    async fn upload(
        &self,
        src: &LocalEntry,
        remote: &str,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> RResult<u64>;
    /// Renames, replacing `to` atomically when it exists.
    async fn rename(&self, from: &str, to: &str) -> RResult<()>;
    /// Removes a file.
    async fn remove(&self, path: &str) -> RResult<()>;
    /// Lists a directory (without `.` and `..`).
    async fn read_dir(&self, path: &str) -> RResult<Vec<(String, RStat)>>;
    /// Copies `remote` (of `size` bytes) into the local file `local` (created); returns the
    /// bytes received.
    async fn download(
        &self,
        remote: &str,
        local: &Path,
        size: u64,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> RResult<u64>;
}

/// Why SFTP could not be opened.
pub(crate) enum SftpOpenError {
    /// The server has no SFTP subsystem: fall back.
    Refused(String),
    /// Anything else.
    Failed(RError),
}

pub(crate) fn spawn_error(e: SpawnError) -> RError {
    match e {
        SpawnError::Lost(m) => RError::Lost(m),
        other => RError::Other(other.to_string()),
    }
}

/// Runs a small helper command and collects its exit status, stdout and stderr.
pub(crate) async fn capture(
    conn: &dyn Connection,
    script: &str,
) -> RResult<(Option<u32>, Vec<u8>, Vec<u8>)> {
    let mut p = conn
        .spawn(&Command::new(script))
        .await
        .map_err(spawn_error)?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(ev) = p.events.recv().await {
        match ev {
            ProcessEvent::Stdout(b) => out.extend_from_slice(&b),
            ProcessEvent::Stderr(b) => err.extend_from_slice(&b),
            ProcessEvent::Exit(Exit::Code(c)) => return Ok((Some(c), out, err)),
            ProcessEvent::Exit(Exit::Lost(m)) => return Err(RError::Lost(m)),
            ProcessEvent::Exit(_) => return Ok((None, out, err)),
        }
    }
    Ok((None, out, err))
}

/// Quotes a string for a POSIX shell (sortie's one quoting, see `transport::remote`).
pub(crate) use crate::transport::remote::quote as sh_quote;

/// SHA-256 of a remote file with `sha256sum`, as lower-case hex.
pub(crate) async fn remote_sha256(conn: &dyn Connection, path: &str) -> RResult<String> {
    let (code, out, err) = capture(conn, &format!("sha256sum -- {}", sh_quote(path))).await?;
    let text = String::from_utf8_lossy(&out);
    match (code, text.split_whitespace().next()) {
        (Some(0), Some(hex)) if hex.len() == 64 => Ok(hex.to_ascii_lowercase()),
        _ => Err(RError::Other(format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&err).trim()
        ))),
    }
}

/// Joins a remote directory and a name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir == "." {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits a remote path into parent directory and last component.
pub(crate) fn split(path: &str) -> (&str, &str) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => ("/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (".", trimmed),
    }
}

/// `~` and `~/...` at the start of a remote path stand for the login directory, as in `scp`
/// and `sftp`; other paths are returned unchanged without asking the host.
pub(crate) async fn expand_tilde(fs: &dyn RemoteFs, path: &str) -> RResult<String> {
    let rest = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return Ok(path.to_string()),
    };
    let home = fs.home().await?;
    Ok(format!("{}{rest}", home.trim_end_matches('/')))
}
