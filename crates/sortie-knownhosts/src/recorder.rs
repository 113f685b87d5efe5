//! Appending first-seen host keys to a known_hosts file (`accept-new`).
//!
//! Owns the single writer: one [`Recorder`] per file, shared by every connection of a run.
//! Writes are serialised by a mutex inside the process and an advisory `flock` across
//! processes; under both, the file is re-read so a host is added once and a host already
//! recorded with another key is never given a second one. Each entry is one `write` of one whole
//! line on a file opened with `O_APPEND`, so lines never interleave.
//!
//! Entries are written plain (`host algo base64`, `[host]:port algo base64`), or hashed as
//! OpenSSH writes them under `HashKnownHosts yes` (`|1|salt|hash algo base64`, a fresh 20-byte
//! salt per line, HMAC-SHA1 of the name), which `ssh-keygen -F` and `ssh` find.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;

use crate::{blob_key_type, key_type_of_algorithm, lookup_name, KnownHosts, Location, Verdict};

/// Serialises additions to one known_hosts file. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    lock: Mutex<()>,
}

/// What [`Recorder::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The key was appended at this location.
    Added {
        /// The new line.
        location: Location,
    },
    /// The file already trusts this key for this host; nothing was written.
    AlreadyPresent {
        /// The existing line.
        location: Location,
    },
    /// The file knows this host with another key (or revokes this key), so nothing was written:
    /// someone else recorded a different key between the caller's check and this call.
    Refused {
        /// What the file says about the key now.
        verdict: Verdict,
    },
}

/// Why a key could not be recorded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RecordError {
    /// The host name would not survive a round trip through a known_hosts line.
    #[error("cannot record a host key for {host:?}: {reason}")]
    #[diagnostic(
        code(sortie::known_hosts::bad_host),
        help("use a plain host name or address without spaces, commas or wildcards")
    )]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key blob is not an SSH public key of the stated type.
    #[error("cannot record host key for {host}: {reason}")]
    #[diagnostic(code(sortie::known_hosts::bad_key))]
    InvalidKey {
        /// The host as given.
        host: String,
        /// What is wrong with the key.
        reason: String,
    },
    /// Creating, locking, reading or writing the file failed.
    #[error("cannot update known_hosts file {}: {source}", path.display())]
    #[diagnostic(
        code(sortie::known_hosts::io),
        help("check that the file and its directory are writable by you")
    )]
    Io {
        /// The file (or its directory).
        path: PathBuf,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
}

fn validate_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("the name is empty");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '*' | '?' | '[' | ']'))
    {
        return Err("it contains whitespace, a control character, ',', '*', '?', '[' or ']'");
    }
    if host.starts_with(['|', '!', '@', '#']) {
        return Err("it starts with '|', '!', '@' or '#'");
    }
    Ok(())
}

struct FileLock<'f>(&'f File);

impl<'f> FileLock<'f> {
    fn exclusive(file: &'f File) -> std::io::Result<FileLock<'f>> {
        // SAFETY: flock only reads the descriptor number, which `file` keeps open for the
        // lifetime of the guard.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking cannot fail in a way we could act on.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

impl Recorder {
    /// A recorder appending to `path` (usually `~/.ssh/known_hosts`, the first user file).
    /// Nothing is touched until the first [`Recorder::record`].
    pub fn new(path: impl Into<PathBuf>) -> Recorder {
        Recorder {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// The file this recorder appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `blob` as the host key of `host` on `port`, unless the file already says
    /// something about that host and key.
    ///
    /// Creates the parent directory (mode 0700) and the file (mode 0600) when missing. Blocks
    /// briefly; callers on an async runtime may call it directly (writes are one short line) or
    /// via `spawn_blocking`.
    pub fn record(
        &self,
        host: &str,
        port: u16,
        algorithm: &str,
        blob: &[u8],
    ) -> Result<Recorded, RecordError> {
        self.record_as(host, port, algorithm, blob, false)
    }

    /// As [`Recorder::record`]; with `hashed` (ssh_config `HashKnownHosts yes`) the host field
    /// is written hashed, as OpenSSH does.
    pub fn record_as(
        &self,
        host: &str,
        port: u16,
        algorithm: &str,
        blob: &[u8],
        hashed: bool,
    ) -> Result<Recorded, RecordError> {
        validate_host(host).map_err(|reason| RecordError::InvalidHost {
            host: host.to_owned(),
            reason,
        })?;
        let key_type = blob_key_type(blob).ok_or_else(|| RecordError::InvalidKey {
            host: host.to_owned(),
            reason: "the key data does not start with a key type name".to_owned(),
        })?;
        if key_type_of_algorithm(algorithm) != key_type {
            return Err(RecordError::InvalidKey {
                host: host.to_owned(),
                reason: format!("algorithm {algorithm} does not match key data of type {key_type}"),
            });
        }

        // The mutex guards nothing but ordering, so a poisoned one is still usable.
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let io_err = |source| RecordError::Io {
            path: self.path.clone(),
            source,
        };

        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| RecordError::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io_err)?;
        let _flock = FileLock::exclusive(&file).map_err(io_err)?;

        let mut handle = &file;
        let mut existing = Vec::new();
        handle.seek(SeekFrom::Start(0)).map_err(io_err)?;
        handle.read_to_end(&mut existing).map_err(io_err)?;
        let text = String::from_utf8_lossy(&existing);
        let known = KnownHosts::parse_str(&text, &self.path);
        match known.check(host, port, key_type, blob) {
            Verdict::Trusted { location } => return Ok(Recorded::AlreadyPresent { location }),
            Verdict::Unknown { .. } => {}
            verdict => return Ok(Recorded::Refused { verdict }),
        }

        let mut line = String::new();
        let mut line_no = text.split('\n').count();
        if !existing.is_empty() && !existing.ends_with(b"\n") {
            // Never glue our entry onto a last line someone left without a newline.
            line.push('\n');
            line_no += 1;
        }
        let mut lookup = lookup_name(host, port);
        if hashed {
            lookup = crate::pattern::hash_host(&lookup, &salt().map_err(io_err)?);
        }
        line.push_str(&format!(
            "{lookup} {key_type} {}\n",
            crate::BASE64.encode(blob)
        ));
        // One write of the whole line: with O_APPEND the kernel places it atomically at the end.
        handle.write_all(line.as_bytes()).map_err(io_err)?;
        handle.flush().map_err(io_err)?;
        Ok(Recorded::Added {
            location: Location {
                file: self.path.clone(),
                line: line_no,
                algorithm: key_type.to_owned(),
                fingerprint: crate::fingerprint_sha256(blob),
            },
        })
    }
}

/// A fresh salt for a hashed host field (OpenSSH uses the HMAC-SHA1 block of 20 bytes).
fn salt() -> std::io::Result<[u8; 20]> {
    let mut buf = [0u8; 20];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_validation() {
        assert!(validate_host("web1.example.com").is_ok());
        assert!(validate_host("::1").is_ok());
        assert!(validate_host("").is_err());
        assert!(validate_host("a b").is_err());
        assert!(validate_host("a,b").is_err());
        assert!(validate_host("*.x").is_err());
        assert!(validate_host("|1|x").is_err());
        assert!(validate_host("!x").is_err());
        assert!(validate_host("[x]:22").is_err());
    }
}
