//! The local side: scanning what `put` sends (before any host is contacted), and writing what
//! `get` receives (temporary name, then rename, mode and mtime kept).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::TransferError;

/// What one entry of a local tree is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file (symbolic links are followed).
    File,
}

/// One file or directory to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalEntry {
    /// Where it is on this machine.
    pub path: PathBuf,
    /// Path components below the destination of its top-level source (empty for the source
    /// itself).
    pub rel: Vec<String>,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Modification time, whole seconds since the epoch.
    pub mtime: u64,
}

/// One source given on the command line, with everything below it (directories first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSource {
    /// The path as given.
    pub path: PathBuf,
    /// Its name at the destination (the last component).
    pub name: String,
    /// The source itself first, then its contents (parents before children).
    pub entries: Vec<LocalEntry>,
}

/// What a `put` sends, scanned once before any host is contacted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalTree {
    /// The sources, in command-line order.
    pub sources: Vec<LocalSource>,
}

impl LocalTree {
    /// Scans `paths`. A missing path, or a directory without `recursive`, is an error naming
    /// the path; nothing is sent then.
    pub fn scan(paths: &[PathBuf], recursive: bool) -> Result<LocalTree, TransferError> {
        let mut sources = Vec::new();
        for path in paths {
            let meta = std::fs::metadata(path).map_err(|e| local_error(path, &e))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .or_else(|| {
                    std::fs::canonicalize(path)
                        .ok()?
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "root".into());
            let mut entries = Vec::new();
            if meta.is_dir() {
                if !recursive {
                    return Err(TransferError::LocalIsDir { path: path.clone() });
                }
                entries.push(entry(path, Vec::new(), &meta));
                walk(path, &mut Vec::new(), &mut entries)?;
            } else if meta.is_file() {
                entries.push(entry(path, Vec::new(), &meta));
            } else {
                return Err(TransferError::Local {
                    path: path.clone(),
                    message: "not a regular file or directory".into(),
                });
            }
            sources.push(LocalSource {
                path: path.clone(),
                name,
                entries,
            });
        }
        Ok(LocalTree { sources })
    }

    /// Bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.entries().map(|e| e.size).sum()
    }

    /// Number of files (not directories).
    pub fn file_count(&self) -> usize {
        self.entries().filter(|e| e.kind == EntryKind::File).count()
    }

    fn entries(&self) -> impl Iterator<Item = &LocalEntry> {
        self.sources.iter().flat_map(|s| s.entries.iter())
    }
}

fn entry(path: &Path, rel: Vec<String>, meta: &std::fs::Metadata) -> LocalEntry {
    LocalEntry {
        path: path.to_path_buf(),
        rel,
        kind: if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        size: if meta.is_dir() { 0 } else { meta.len() },
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime().max(0) as u64,
    }
}

fn walk(dir: &Path, rel: &mut Vec<String>, out: &mut Vec<LocalEntry>) -> Result<(), TransferError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| local_error(dir, &e))?
        .map(|d| d.map(|d| d.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| local_error(dir, &e))?;
    names.sort();
    for path in names {
        let link = std::fs::symlink_metadata(&path).map_err(|e| local_error(&path, &e))?;
        let meta = std::fs::metadata(&path).map_err(|e| local_error(&path, &e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        rel.push(name);
        if meta.is_dir() {
            // Symbolic links to directories are not followed (no loops, no surprises), and the
            // user is told: a silently missing subtree would be worse than the warning.
            if link.file_type().is_symlink() {
                tracing::warn!(
                    "{}: symbolic link to a directory, not followed (not copied)",
                    path.display()
                );
            } else {
                out.push(entry(&path, rel.clone(), &meta));
                walk(&path, rel, out)?;
            }
        } else if meta.is_file() {
            out.push(entry(&path, rel.clone(), &meta));
        }
        rel.pop();
    }
    Ok(())
}

/// A local I/O error as a transfer error naming the path.
pub(crate) fn local_error(path: &Path, e: &std::io::Error) -> TransferError {
    match e.kind() {
        std::io::ErrorKind::NotFound => TransferError::LocalMissing {
            path: path.to_path_buf(),
        },
        _ => TransferError::Local {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    }
}

/// A temporary name beside `name` in the same directory: `.name.sortie-tmp-<random>`.
pub(crate) fn temp_name(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Mixed so that names differ across processes and calls; uniqueness is what matters.
    let mix =
        (nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    format!(".{name}.sortie-tmp-{mix:016x}")
}

/// Applies mode and mtime to a received file.
pub(crate) fn finish_local(
    path: &Path,
    mode: Option<u32>,
    mtime: Option<u64>,
) -> std::io::Result<()> {
    if let Some(mtime) = mtime {
        let f = std::fs::File::options().write(true).open(path)?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))?;
    }
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

/// Size and mtime (seconds) of a local file, if it exists as a regular file.
pub(crate) fn local_stat(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| (m.len(), m.mtime().max(0) as u64))
}
