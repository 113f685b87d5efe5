//! Transfers: `put` (local files and trees to hosts) and `get` (remote files, globs and trees
//! into one local directory per host), over each host's existing connection.
//!
//! This module owns the transfer semantics: destination rules, atomic replacement (every file
//! is written to `.name.sortie-tmp-<random>` in its directory and renamed, so readers never see
//! half a file and an interrupted transfer leaves nothing under the real name), skipping files
//! that are already identical, verification, `{host}`/`{tag:NAME}` path templates, and the
//! fleet fan-out with the same [`Event`](crate::Event) stream as `exec`. It does not print
//! anything and does not parse options. The wire is SFTP (pipelined, `sftp`) or, when the
//! server has no SFTP subsystem, plain commands over exec channels (`shell`).
//!
//! Entry points:
//! - one connection: [`put_files`], [`get_files`] (what a launch plan's `[[upload]]` and
//!   `[[collect]]` steps call);
//! - a fleet: [`put`], [`get`], which connect, fan out, and emit events.

mod fleet;
mod local;
mod remote;
mod sftp;
mod shell;
mod template;

pub use fleet::{
    get, human_bytes, put, HostTarget, HostTransfer, TransferHandle, TransferRunResult,
};
pub use local::{EntryKind, LocalEntry, LocalSource, LocalTree};
pub use template::{expand_remote, TemplateError};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::transport::Connection;
use remote::{join, remote_sha256, split, RError, RKind, RemoteFs};

/// How files travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Method {
    /// SFTP when the server offers it, else the exec-channel fallback.
    #[default]
    Auto,
    /// SFTP only.
    Sftp,
    /// Plain commands over exec channels (`cat`, `stat`, `mv`).
    Exec,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Auto => "auto",
            Method::Sftp => "sftp",
            Method::Exec => "exec",
        })
    }
}

/// Options of a put.
#[derive(Clone, Debug)]
pub struct PutOptions {
    /// Copy directories and their contents.
    pub recursive: bool,
    /// Decide "already identical" by SHA-256 (computed on the host with `sha256sum`) instead
    /// of size and modification time.
    pub checksum: bool,
    /// After writing each file, compare its SHA-256 on the host with the local one before it
    /// replaces the real name.
    pub verify: bool,
    /// SFTP, exec fallback, or automatic.
    pub method: Method,
    /// Hosts in flight at once (fleet functions only).
    pub fanout: usize,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            recursive: false,
            checksum: false,
            verify: false,
            method: Method::Auto,
            fanout: 64,
        }
    }
}

/// Options of a get.
#[derive(Clone, Debug)]
pub struct GetOptions {
    /// Copy directories and their contents.
    pub recursive: bool,
    /// SFTP, exec fallback, or automatic.
    pub method: Method,
    /// Hosts in flight at once (fleet functions only).
    pub fanout: usize,
}

impl Default for GetOptions {
    fn default() -> Self {
        GetOptions {
            recursive: false,
            method: Method::Auto,
            fanout: 64,
        }
    }
}

/// Byte counters shared with a progress display; updated as data is acknowledged.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    /// Bytes transferred so far (all hosts).
    pub fn bytes(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Bytes expected in all (grows as remote trees are listed; shrinks as identical files
    /// are skipped).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn expect(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn unexpect(&self, n: u64) {
        let _ = self
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(n))
            });
    }
}

/// Progress counters and cancellation for a transfer.
#[derive(Clone, Debug, Default)]
pub struct TransferCtx {
    /// Counters for a display.
    pub progress: Arc<Progress>,
    /// Cancelling stops the transfer; the file being written is removed (best effort) and
    /// never appears under its real name.
    pub cancel: CancellationToken,
}

/// What a transfer did on one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Files written.
    pub files: u64,
    /// Files left alone because they were already identical.
    pub skipped: u64,
    /// Bytes of file content sent (put) or received (get).
    pub bytes: u64,
    /// Directories created.
    pub dirs: u64,
    /// The method used ([`Method::Sftp`] or [`Method::Exec`]).
    pub method: Option<Method>,
}

/// The result of a transfer on one host: what was done and every file that failed.
#[derive(Debug, Default)]
pub struct TransferReport {
    /// Counters.
    pub stats: TransferStats,
    /// Per-file failures (the other files were still transferred).
    pub errors: Vec<TransferError>,
}

impl TransferReport {
    /// True when no file failed.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Why a transfer (or one file of it) failed. Remote paths are as on the host.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TransferError {
    /// A local source does not exist.
    #[error("{}: no such file or directory", path.display())]
    #[diagnostic(
        code(sortie::transfer::local_missing),
        help("check the path; nothing was sent")
    )]
    LocalMissing {
        /// The local path.
        path: PathBuf,
    },
    /// A local source is a directory and `-r` was not given.
    #[error("{}: is a directory", path.display())]
    #[diagnostic(
        code(sortie::transfer::local_is_dir),
        help("use -r to copy directories")
    )]
    LocalIsDir {
        /// The local path.
        path: PathBuf,
    },
    /// Any other local problem.
    #[error("{}: {message}", path.display())]
    #[diagnostic(code(sortie::transfer::local))]
    Local {
        /// The local path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A remote path that must be a directory is a file (or something else).
    #[error("{path}: not a directory on the host")]
    RemoteNotDir {
        /// The remote path.
        path: String,
    },
    /// A remote directory where a file was expected, or a directory to get without `-r`.
    #[error("{path}: is a directory{}", if *.recursive_hint { " (use -r to copy directories)" } else { "" })]
    RemoteIsDir {
        /// The remote path.
        path: String,
        /// Whether `-r` would help.
        recursive_hint: bool,
    },
    /// A remote path (or a glob) matched nothing.
    #[error("{path}: no such file or directory on the host")]
    RemoteMissing {
        /// The remote path or pattern.
        path: String,
    },
    /// The host refused access.
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The remote path.
        path: String,
    },
    /// The written file's checksum differs from the local one; the real name was not touched.
    #[error("{path}: checksum mismatch after writing (local {local}, host {remote})")]
    VerifyFailed {
        /// The remote path.
        path: String,
        /// Local SHA-256.
        local: String,
        /// Remote SHA-256.
        remote: String,
    },
    /// Any other remote problem.
    #[error("{path}: {message}")]
    Remote {
        /// The remote path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The connection or session was lost; the host's transfer stopped.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// SFTP or the fallback could not be started.
    #[error("cannot start a transfer session: {0}")]
    Session(String),
    /// The transfer was cancelled.
    #[error("interrupted")]
    Interrupted,
    /// A remote path template could not be expanded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Template(#[from] TemplateError),
}

impl TransferError {
    fn remote(path: &str, e: RError) -> TransferError {
        let path = path.to_string();
        match e {
            RError::NotFound => TransferError::RemoteMissing { path },
            RError::PermissionDenied => TransferError::PermissionDenied { path },
            RError::Lost(m) => TransferError::ConnectionLost(m),
            RError::Interrupted => TransferError::Interrupted,
            RError::Other(message) => TransferError::Remote { path, message },
        }
    }

    /// True when the host's transfer cannot go on (lost, interrupted).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            TransferError::ConnectionLost(_)
                | TransferError::Interrupted
                | TransferError::Session(_)
        )
    }
}

/// Copies local files (and with `opts.recursive`, directory trees) to `remote` on one
/// connected host.
///
/// `remote` is a directory when several sources are given, when it ends with `/`, or when it
/// exists as a directory: each source lands as `remote/<name>`. Otherwise the single source is
/// written as `remote` itself. Missing parent directories are created. Modes and modification
/// times are kept; files already identical are skipped. Per-file failures are collected in the
/// report; `Err` means the host's transfer could not go on (lost, interrupted, no session) or a
/// local source is missing.
pub async fn put_files(
    conn: &Arc<dyn Connection>,
    locals: &[PathBuf],
    remote: &str,
    opts: &PutOptions,
    ctx: &TransferCtx,
) -> Result<TransferReport, TransferError> {
    let tree = LocalTree::scan(locals, opts.recursive)?;
    ctx.progress.expect(tree.total_bytes());
    put_tree(conn, &tree, remote, opts, ctx).await
}

/// Copies `remotes` (paths or globs; directories with `opts.recursive`) from one connected
/// host into `local_dir` (created when missing): `local_dir/<name>` for each match.
/// Modes and modification times are kept.
pub async fn get_files(
    conn: &Arc<dyn Connection>,
    remotes: &[String],
    local_dir: &Path,
    opts: &GetOptions,
    ctx: &TransferCtx,
) -> Result<TransferReport, TransferError> {
    let fs = open_remote(conn, opts.method)
        .await
        .map_err(|e| session_error(e, opts.method))?;
    get_with(fs.as_ref(), remotes, local_dir, opts, ctx).await
}

fn session_error(e: RError, method: Method) -> TransferError {
    match e {
        RError::Lost(m) => TransferError::ConnectionLost(m),
        RError::Interrupted => TransferError::Interrupted,
        RError::NotFound | RError::PermissionDenied => {
            TransferError::Session(format!("{method}: refused"))
        }
        RError::Other(m) => TransferError::Session(m),
    }
}

/// A put of an already scanned tree (the fleet scans once for all hosts).
pub(crate) async fn put_tree(
    conn: &Arc<dyn Connection>,
    tree: &LocalTree,
    remote: &str,
    opts: &PutOptions,
    ctx: &TransferCtx,
) -> Result<TransferReport, TransferError> {
    let fs = open_remote(conn, opts.method)
        .await
        .map_err(|e| session_error(e, opts.method))?;
    let mut put = Put {
        conn: conn.as_ref(),
        fs: fs.as_ref(),
        opts,
        ctx,
        report: TransferReport::default(),
        known_dirs: Default::default(),
        dir_modes: Vec::new(),
    };
    put.report.stats.method = Some(fs.method());
    let remote = remote::expand_tilde(fs.as_ref(), remote)
        .await
        .map_err(|e| TransferError::remote(remote, e))?;
    put.run(tree, &remote).await?;
    Ok(put.report)
}

struct Put<'a> {
    conn: &'a dyn Connection,
    fs: &'a dyn RemoteFs,
    opts: &'a PutOptions,
    ctx: &'a TransferCtx,
    report: TransferReport,
    known_dirs: std::collections::HashSet<String>,
    /// Directory modes applied at the end, so a read-only directory can still be filled.
    dir_modes: Vec<(String, u32)>,
}

impl Put<'_> {
    /// Records a per-file error, or returns it when it ends the host's transfer.
    fn fail(&mut self, e: TransferError) -> Result<(), TransferError> {
        if e.is_fatal() {
            return Err(e);
        }
        self.report.errors.push(e);
        Ok(())
    }

    fn skip_bytes(&self, tree_part: u64) {
        self.ctx.progress.unexpect(tree_part);
    }

    async fn run(&mut self, tree: &LocalTree, remote: &str) -> Result<(), TransferError> {
        let remote = if remote.is_empty() { "." } else { remote };
        let dest = self
            .fs
            .stat(remote)
            .await
            .map_err(|e| TransferError::remote(remote, e));
        let dest = match dest {
            Ok(d) => d,
            Err(e) => {
                self.skip_bytes(tree.total_bytes());
                return self.fail(e);
            }
        };
        let into_dir = tree.sources.len() > 1
            || remote.ends_with('/')
            || dest.is_some_and(|d| d.kind == RKind::Dir);
        let base_ready = if into_dir {
            match dest {
                Some(d) if d.kind != RKind::Dir => Err(TransferError::RemoteNotDir {
                    path: remote.to_string(),
                }),
                Some(_) => Ok(()),
                None => self.mkdir_all(remote.trim_end_matches('/')).await,
            }
        } else {
            let (parent, _) = split(remote);
            self.mkdir_all(parent).await
        };
        if let Err(e) = base_ready {
            self.skip_bytes(tree.total_bytes());
            return self.fail(e);
        }
        for src in &tree.sources {
            let base = if into_dir {
                join(remote, &src.name)
            } else {
                remote.trim_end_matches('/').to_string()
            };
            // Directories that failed: their contents are not attempted (one error each).
            let mut failed: Vec<&[String]> = Vec::new();
            for e in &src.entries {
                if self.ctx.cancel.is_cancelled() {
                    return Err(TransferError::Interrupted);
                }
                if failed.iter().any(|f| e.rel.starts_with(f)) {
                    self.skip_bytes(e.size);
                    continue;
                }
                let dest = e.rel.iter().fold(base.clone(), |acc, c| join(&acc, c));
                let r = match e.kind {
                    EntryKind::Dir => self.put_dir(&dest, e.mode).await,
                    EntryKind::File => self.put_file(e, &dest).await,
                };
                if let Err(err) = r {
                    if e.kind == EntryKind::Dir {
                        failed.push(&e.rel);
                    }
                    self.fail(err)?;
                }
            }
        }
        for (path, mode) in std::mem::take(&mut self.dir_modes).into_iter().rev() {
            if let Err(e) = self.fs.chmod(&path, mode).await {
                self.fail(TransferError::remote(&path, e))?;
            }
        }
        Ok(())
    }

    /// Creates `path` and its missing parents; a component that is a file is an error.
    async fn mkdir_all(&mut self, path: &str) -> Result<(), TransferError> {
        if path.is_empty() || path == "." || path == "/" || self.known_dirs.contains(path) {
            return Ok(());
        }
        match self.fs.stat(path).await {
            Ok(Some(s)) if s.kind == RKind::Dir => {
                self.known_dirs.insert(path.to_string());
                return Ok(());
            }
            Ok(Some(_)) => {
                return Err(TransferError::RemoteNotDir {
                    path: path.to_string(),
                })
            }
            Ok(None) => {}
            Err(e) => return Err(TransferError::remote(path, e)),
        }
        let (parent, _) = split(path);
        Box::pin(self.mkdir_all(parent)).await?;
        match self.fs.mkdir(path, 0o755).await {
            Ok(()) => self.report.stats.dirs += 1,
            // Created meanwhile (another source): fine if it is a directory now.
            Err(e) => match self.fs.stat(path).await {
                Ok(Some(s)) if s.kind == RKind::Dir => {}
                _ => return Err(TransferError::remote(path, e)),
            },
        }
        self.known_dirs.insert(path.to_string());
        Ok(())
    }

    async fn put_dir(&mut self, path: &str, mode: u32) -> Result<(), TransferError> {
        match self.fs.stat(path).await {
            Ok(Some(s)) if s.kind == RKind::Dir => {
                if s.mode != mode {
                    self.dir_modes.push((path.to_string(), mode));
                }
            }
            Ok(Some(_)) => {
                return Err(TransferError::RemoteNotDir {
                    path: path.to_string(),
                })
            }
            Ok(None) => {
                // Owner keeps write access while the tree is filled, whatever the mode.
                self.fs
                    .mkdir(path, mode | 0o700)
                    .await
                    .map_err(|e| TransferError::remote(path, e))?;
                self.report.stats.dirs += 1;
                if mode | 0o700 != mode {
                    self.dir_modes.push((path.to_string(), mode));
                }
            }
            Err(e) => return Err(TransferError::remote(path, e)),
        }
        self.known_dirs.insert(path.to_string());
        Ok(())
    }

    async fn put_file(&mut self, e: &LocalEntry, dest: &str) -> Result<(), TransferError> {
        let existing = self
            .fs
            .stat(dest)
            .await
            .map_err(|err| TransferError::remote(dest, err));
        let existing = match existing {
            Ok(x) => x,
            Err(err) => {
                self.skip_bytes(e.size);
                return Err(err);
            }
        };
        if let Some(s) = existing {
            if s.kind == RKind::Dir {
                self.skip_bytes(e.size);
                return Err(TransferError::RemoteIsDir {
                    path: dest.to_string(),
                    recursive_hint: false,
                });
            }
            if s.kind == RKind::File && s.size == e.size && self.identical(e, dest, s.mtime).await?
            {
                if s.mode != e.mode {
                    self.fs
                        .chmod(dest, e.mode)
                        .await
                        .map_err(|err| TransferError::remote(dest, err))?;
                }
                self.report.stats.skipped += 1;
                self.skip_bytes(e.size);
                return Ok(());
            }
        }
        let (dir, name) = split(dest);
        let tmp = join(dir, &local::temp_name(name));
        let result = async {
            let sent = self
                .fs
                .upload(e, &tmp, &self.ctx.progress, &self.ctx.cancel)
                .await
                .map_err(|err| TransferError::remote(dest, err))?;
            if self.opts.verify {
                let local = local_sha256(&e.path).await?;
                let remote = remote_sha256(self.conn, &tmp)
                    .await
                    .map_err(|err| TransferError::remote(dest, err))?;
                if local != remote {
                    return Err(TransferError::VerifyFailed {
                        path: dest.to_string(),
                        local,
                        remote,
                    });
                }
            }
            self.fs
                .rename(&tmp, dest)
                .await
                .map_err(|err| TransferError::remote(dest, err))?;
            Ok(sent)
        }
        .await;
        match result {
            Ok(sent) => {
                self.report.stats.files += 1;
                self.report.stats.bytes += sent;
                Ok(())
            }
            Err(err) => {
                // Best effort: the session may be gone with the connection.
                let _ = tokio::time::timeout(Duration::from_secs(5), self.fs.remove(&tmp)).await;
                Err(err)
            }
        }
    }

    /// Whether the existing remote file (same size) is identical to the local one.
    async fn identical(
        &self,
        e: &LocalEntry,
        dest: &str,
        remote_mtime: u64,
    ) -> Result<bool, TransferError> {
        if !self.opts.checksum {
            return Ok(remote_mtime == e.mtime);
        }
        let local = local_sha256(&e.path).await?;
        let remote = remote_sha256(self.conn, dest)
            .await
            .map_err(|err| TransferError::remote(dest, err))?;
        Ok(local == remote)
    }
}

/// SHA-256 of a local file, as lower-case hex.
pub(crate) async fn local_sha256(path: &Path) -> Result<String, TransferError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let mut f = std::fs::File::open(&p)?;
        let mut h = Sha256::new();
        // sha2 0.11 has no io::Write impl: feed it in 64 KiB reads.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match f.read(&mut buf)? {
                0 => break,
                n => h.update(&buf[..n]),
            }
        }
        Ok::<_, std::io::Error>(
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        )
    })
    .await
    .map_err(|e| TransferError::Local {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?
    .map_err(|e| local::local_error(path, &e))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands a remote glob component by component with directory listings.
async fn expand_glob(fs: &dyn RemoteFs, pattern: &str) -> Result<Vec<String>, TransferError> {
    if !has_glob(pattern) {
        return Ok(vec![pattern.to_string()]);
    }
    let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let mut current = vec![if pattern.starts_with('/') {
        "/".to_string()
    } else {
        String::new()
    }];
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for base in &current {
            if !has_glob(comp) {
                next.push(join(base, comp));
                continue;
            }
            let pat = glob::Pattern::new(comp).map_err(|e| TransferError::Remote {
                path: pattern.to_string(),
                message: format!("bad pattern: {e}"),
            })?;
            let dir = if base.is_empty() { "." } else { base.as_str() };
            match fs.read_dir(dir).await {
                Ok(entries) => {
                    for (name, st) in entries {
                        if pat.matches_with(&name, options) && (last || st.kind == RKind::Dir) {
                            next.push(join(base, &name));
                        }
                    }
                }
                Err(RError::NotFound) => {}
                Err(e) => return Err(TransferError::remote(dir, e)),
            }
        }
        current = next;
    }
    Ok(current)
}

async fn get_with(
    fs: &dyn RemoteFs,
    remotes: &[String],
    local_dir: &Path,
    opts: &GetOptions,
    ctx: &TransferCtx,
) -> Result<TransferReport, TransferError> {
    let mut report = TransferReport::default();
    report.stats.method = Some(fs.method());
    let fail = |report: &mut TransferReport, e: TransferError| -> Result<(), TransferError> {
        if e.is_fatal() {
            return Err(e);
        }
        report.errors.push(e);
        Ok(())
    };
    if let Err(e) = tokio::fs::create_dir_all(local_dir).await {
        fail(&mut report, local::local_error(local_dir, &e))?;
        return Ok(report);
    }
    for pattern in remotes {
        let pattern = &match remote::expand_tilde(fs, pattern).await {
            Ok(p) => p,
            Err(e) => {
                fail(&mut report, TransferError::remote(pattern, e))?;
                continue;
            }
        };
        let matches = match expand_glob(fs, pattern).await {
            Ok(m) => m,
            Err(e) => {
                fail(&mut report, e)?;
                continue;
            }
        };
        if matches.is_empty() {
            fail(
                &mut report,
                TransferError::RemoteMissing {
                    path: pattern.clone(),
                },
            )?;
        }
        for m in matches {
            if ctx.cancel.is_cancelled() {
                return Err(TransferError::Interrupted);
            }
            let st = match fs.stat(&m).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    fail(&mut report, TransferError::RemoteMissing { path: m })?;
                    continue;
                }
                Err(e) => {
                    fail(&mut report, TransferError::remote(&m, e))?;
                    continue;
                }
            };
            let (_, name) = split(&m);
            let name = if name.is_empty() || name == "." || name == ".." {
                "root"
            } else {
                name
            };
            let target = local_dir.join(name);
            match st.kind {
                RKind::Dir if !opts.recursive => fail(
                    &mut report,
                    TransferError::RemoteIsDir {
                        path: m.clone(),
                        recursive_hint: true,
                    },
                )?,
                RKind::Dir => {
                    get_tree(fs, &m, st.mode, &target, ctx, &mut report).await?;
                }
                _ => {
                    if let Err(e) = get_file(fs, &m, st, &target, ctx, &mut report.stats).await {
                        fail(&mut report, e)?;
                    }
                }
            }
        }
    }
    Ok(report)
}

async fn get_tree(
    fs: &dyn RemoteFs,
    root: &str,
    root_mode: u32,
    local_root: &Path,
    ctx: &TransferCtx,
    report: &mut TransferReport,
) -> Result<(), TransferError> {
    let mut stack = vec![(root.to_string(), local_root.to_path_buf(), root_mode)];
    let mut modes = Vec::new();
    while let Some((rdir, ldir, mode)) = stack.pop() {
        if let Err(e) = std::fs::create_dir_all(&ldir) {
            report.errors.push(local::local_error(&ldir, &e));
            continue;
        }
        modes.push((ldir.clone(), mode));
        let entries = match fs.read_dir(&rdir).await {
            Ok(x) => x,
            Err(e) => {
                let e = TransferError::remote(&rdir, e);
                if e.is_fatal() {
                    return Err(e);
                }
                report.errors.push(e);
                continue;
            }
        };
        for (name, st) in entries {
            if ctx.cancel.is_cancelled() {
                return Err(TransferError::Interrupted);
            }
            let r = join(&rdir, &name);
            let l = ldir.join(&name);
            match st.kind {
                RKind::Dir => stack.push((r, l, st.mode)),
                RKind::File => {
                    if let Err(e) = get_file(fs, &r, st, &l, ctx, &mut report.stats).await {
                        if e.is_fatal() {
                            return Err(e);
                        }
                        report.errors.push(e);
                    }
                }
                RKind::Other => {}
            }
        }
    }
    // Directory modes last, so a read-only directory could still be filled.
    for (dir, mode) in modes.into_iter().rev() {
        let _ = local::finish_local(&dir, Some(mode), None);
    }
    Ok(())
}

async fn get_file(
    fs: &dyn RemoteFs,
    remote: &str,
    st: remote::RStat,
    local_path: &Path,
    ctx: &TransferCtx,
    stats: &mut TransferStats,
) -> Result<(), TransferError> {
    if local::local_stat(local_path) == Some((st.size, st.mtime)) {
        stats.skipped += 1;
        return Ok(());
    }
    ctx.progress.expect(st.size);
    let dir = local_path.parent().unwrap_or(Path::new("."));
    let name = local_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(local::temp_name(&name));
    let result = async {
        let got = fs
            .download(remote, &tmp, st.size, &ctx.progress, &ctx.cancel)
            .await
            .map_err(|e| TransferError::remote(remote, e))?;
        local::finish_local(&tmp, Some(st.mode), Some(st.mtime))
            .and_then(|_| std::fs::rename(&tmp, local_path))
            .map_err(|e| local::local_error(local_path, &e))?;
        Ok(got)
    }
    .await;
    match result {
        Ok(got) => {
            stats.files += 1;
            stats.bytes += got;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Opens the remote side: SFTP when allowed and offered, else the exec-channel fallback.
pub(crate) async fn open_remote(
    conn: &Arc<dyn Connection>,
    method: Method,
) -> Result<Box<dyn RemoteFs>, RError> {
    if method != Method::Exec {
        match sftp::SftpFs::open(conn.as_ref()).await {
            Ok(fs) => return Ok(Box::new(fs)),
            Err(remote::SftpOpenError::Refused(why)) if method == Method::Auto => {
                tracing::debug!("no SFTP ({why}); using the exec-channel fallback");
            }
            Err(remote::SftpOpenError::Refused(why)) => {
                return Err(RError::Other(format!("SFTP unavailable: {why}")))
            }
            Err(remote::SftpOpenError::Failed(e)) => return Err(e),
        }
    }
    Ok(Box::new(shell::ShellFs::new(conn.clone())))
}
