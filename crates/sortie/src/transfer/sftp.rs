//! SFTP over the host's existing SSH connection (russh-sftp's raw client), with many requests
//! in flight so a transfer is not limited by the round-trip time: about [`BYTES_IN_FLIGHT`]
//! per file, in requests as large as the server allows (its `limits@openssh.com` answer, up
//! to [`MAX_CHUNK`]; [`CHUNK`] for servers that do not say). Fewer, larger requests save the
//! server a system call and a reply per request, which is what bounds many hosts at once.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::rawsession::Limits;
use russh_sftp::client::{Config, RawSftpSession};
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::remote::{spawn_error, RError, RKind, RResult, RStat, RemoteFs, SftpOpenError};
use super::{LocalEntry, Method, Progress};
use crate::transport::{Connection, SpawnError};

/// Bytes per read or write request when the server does not state its limits.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Largest request used even when the server allows more (OpenSSH's sftp-server allows
/// 256 KiB messages, so 255 KiB of data).
pub(crate) const MAX_CHUNK: usize = 255 * 1024;
/// Bytes outstanding per file (the SSH channel window of OpenSSH is 2 MiB).
pub(crate) const BYTES_IN_FLIGHT: usize = 2 * 1024 * 1024;
/// Most requests outstanding per file.
const MAX_IN_FLIGHT: usize = 32;

/// Requests outstanding per file for requests of `len` bytes.
fn in_flight(len: usize) -> usize {
    (BYTES_IN_FLIGHT / len.max(1)).clamp(4, MAX_IN_FLIGHT)
}

/// An SFTP session on one connection.
pub(crate) struct SftpFs {
    raw: Arc<RawSftpSession>,
    posix_rename: bool,
    read_len: usize,
    write_len: usize,
}

impl SftpFs {
    /// Opens the `sftp` subsystem and negotiates the protocol and its extensions.
    pub(crate) async fn open(conn: &dyn Connection) -> Result<SftpFs, SftpOpenError> {
        let stream = conn.subsystem("sftp").await.map_err(|e| match e {
            SpawnError::ChannelRefused(m) => SftpOpenError::Refused(m),
            other => SftpOpenError::Failed(spawn_error(other)),
        })?;
        let cfg = Config {
            max_packet_len: 512 * 1024,
            max_concurrent_reads: MAX_IN_FLIGHT,
            max_concurrent_writes: MAX_IN_FLIGHT,
            max_write_packet_len: MAX_CHUNK as u32,
            // Requests queue behind a full pipeline on a busy link: be patient.
            request_timeout_secs: 300,
        };
        let mut raw = RawSftpSession::new_with_config(stream, cfg);
        let version = raw.init().await.map_err(|e| match e {
            // A server that closes the channel at once has no usable SFTP either.
            SftpError::UnexpectedBehavior(m) => SftpOpenError::Refused(m),
            e => SftpOpenError::Failed(sftp_error(e)),
        })?;
        let has = |name: &str| version.extensions.contains_key(name);
        let posix_rename = has("posix-rename@openssh.com");
        let (mut read_len, mut write_len) = (CHUNK, CHUNK);
        if version
            .extensions
            .get("limits@openssh.com")
            .map(String::as_str)
            == Some("1")
        {
            if let Ok(l) = raw.limits().await {
                let limits = Limits::from(l);
                if let Some(r) = limits.read_len.filter(|r| *r > 0) {
                    read_len = (r as usize).min(MAX_CHUNK);
                }
                if let Some(w) = limits.write_len.filter(|w| *w > 0) {
                    write_len = (w as usize).min(MAX_CHUNK);
                }
                raw.set_limits(limits);
            }
        }
        Ok(SftpFs {
            raw: Arc::new(raw),
            posix_rename,
            read_len,
            write_len,
        })
    }
}

impl Drop for SftpFs {
    fn drop(&mut self) {
        let _ = self.raw.close_session();
    }
}

fn sftp_error(e: SftpError) -> RError {
    match e {
        SftpError::Status(s) => match s.status_code {
            StatusCode::NoSuchFile => RError::NotFound,
            StatusCode::PermissionDenied => RError::PermissionDenied,
            StatusCode::NoConnection | StatusCode::ConnectionLost => RError::Lost(s.error_message),
            code if s.error_message.is_empty() => RError::Other(code.to_string()),
            _ => RError::Other(s.error_message),
        },
        SftpError::UnexpectedBehavior(m) if m.contains("closed") || m.contains("dropped") => {
            RError::Lost(format!("SFTP session ended: {m}"))
        }
        SftpError::Timeout => RError::Other("SFTP request timed out".into()),
        other => RError::Other(other.to_string()),
    }
}

fn stat_of(a: &FileAttributes) -> RStat {
    let perm = a.permissions.unwrap_or(0);
    RStat {
        kind: match perm & 0o170000 {
            0o040000 => RKind::Dir,
            0o100000 => RKind::File,
            _ => RKind::Other,
        },
        size: a.size.unwrap_or(0),
        mode: perm & 0o7777,
        mtime: u64::from(a.mtime.unwrap_or(0)),
    }
}

fn local_err(path: &Path, e: std::io::Error) -> RError {
    RError::Other(format!("local file {}: {e}", path.display()))
}

fn ssh_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[async_trait]
impl RemoteFs for SftpFs {
    fn method(&self) -> Method {
        Method::Sftp
    }

    async fn home(&self) -> RResult<String> {
        // OpenSSH's sftp-server starts in the login directory.
        let name = self.raw.realpath(".").await.map_err(sftp_error)?;
        name.files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .ok_or_else(|| RError::Other("the server did not resolve `.`".into()))
    }

    async fn stat(&self, path: &str) -> RResult<Option<RStat>> {
        match self.raw.stat(path).await {
            Ok(a) => Ok(Some(stat_of(&a.attrs))),
            Err(e) => match sftp_error(e) {
                RError::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn mkdir(&self, path: &str, mode: u32) -> RResult<()> {
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..FileAttributes::empty()
        };
        self.raw.mkdir(path, attrs).await.map_err(sftp_error)?;
        Ok(())
    }

    async fn chmod(&self, path: &str, mode: u32) -> RResult<()> {
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..FileAttributes::empty()
        };
        self.raw.setstat(path, attrs).await.map_err(sftp_error)?;
        Ok(())
    }

    async fn upload(
        &self,
        src: &LocalEntry,
        remote: &str,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> RResult<u64> {
        let (local, mode, mtime) = (src.path.as_path(), src.mode, src.mtime);
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| local_err(local, e))?;
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::EXCLUDE;
        let create = FileAttributes {
            permissions: Some(0o600),
            ..FileAttributes::empty()
        };
        let handle = self
            .raw
            .open(remote, flags, create)
            .await
            .map_err(sftp_error)?
            .handle;
        let result = async {
            let mut inflight = FuturesUnordered::new();
            let mut offset = 0u64;
            let mut eof = false;
            while !eof || !inflight.is_empty() {
                if cancel.is_cancelled() {
                    return Err(RError::Interrupted);
                }
                if !eof && inflight.len() < in_flight(self.write_len) {
                    let mut buf = vec![0u8; self.write_len];
                    let mut n = 0;
                    while n < buf.len() {
                        let got = file
                            .read(&mut buf[n..])
                            .await
                            .map_err(|e| local_err(local, e))?;
                        if got == 0 {
                            eof = true;
                            break;
                        }
                        n += got;
                    }
                    if n > 0 {
                        buf.truncate(n);
                        let raw = self.raw.clone();
                        let h = handle.clone();
                        let at = offset;
                        inflight.push(async move { raw.write(h, at, buf).await.map(|_| n) });
                        offset += n as u64;
                    }
                    continue;
                }
                tokio::select! {
                    r = inflight.next() => match r {
                        Some(Ok(n)) => progress.add(n as u64),
                        Some(Err(e)) => return Err(sftp_error(e)),
                        None => {}
                    },
                    _ = cancel.cancelled() => return Err(RError::Interrupted),
                }
            }
            let t = u32::try_from(mtime).unwrap_or(u32::MAX);
            let attrs = FileAttributes {
                permissions: Some(mode & 0o7777),
                atime: Some(t),
                mtime: Some(t),
                ..FileAttributes::empty()
            };
            self.raw
                .fsetstat(handle.as_str(), attrs)
                .await
                .map_err(sftp_error)?;
            Ok(offset)
        }
        .await;
        let closed = self.raw.close(handle).await.map_err(sftp_error);
        let sent = result?;
        closed?;
        Ok(sent)
    }

    async fn rename(&self, from: &str, to: &str) -> RResult<()> {
        if self.posix_rename {
            let mut data = Vec::with_capacity(from.len() + to.len() + 8);
            ssh_string(&mut data, from);
            ssh_string(&mut data, to);
            return match self
                .raw
                .extended("posix-rename@openssh.com", data)
                .await
                .map_err(sftp_error)?
            {
                Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
                Packet::Status(s) => Err(sftp_error(SftpError::Status(s))),
                _ => Err(RError::Other("unexpected reply to posix-rename".into())),
            };
        }
        // SFTPv3 rename refuses an existing target: replace it (not atomic, but a reader
        // still never sees a partial file).
        if self.raw.rename(from, to).await.is_err() {
            let _ = self.raw.remove(to).await;
            self.raw.rename(from, to).await.map_err(sftp_error)?;
        }
        Ok(())
    }

    async fn remove(&self, path: &str) -> RResult<()> {
        self.raw.remove(path).await.map_err(sftp_error)?;
        Ok(())
    }

    async fn read_dir(&self, path: &str) -> RResult<Vec<(String, RStat)>> {
        let handle = self.raw.opendir(path).await.map_err(sftp_error)?.handle;
        let mut out = Vec::new();
        let result = loop {
            match self.raw.readdir(handle.as_str()).await {
                Ok(name) => {
                    for f in name.files {
                        if f.filename == "." || f.filename == ".." {
                            continue;
                        }
                        out.push((f.filename, stat_of(&f.attrs)));
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(sftp_error(e)),
            }
        };
        let _ = self.raw.close(handle).await;
        result?;
        // readdir reports symbolic links themselves: follow them.
        for (name, st) in out.iter_mut() {
            if st.kind == RKind::Other {
                if let Ok(Some(s)) = self.stat(&super::remote::join(path, name)).await {
                    *st = s;
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn download(
        &self,
        remote: &str,
        local: &Path,
        size: u64,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> RResult<u64> {
        let handle = self
            .raw
            .open(remote, OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(sftp_error)?
            .handle;
        let result = async {
            let mut file = tokio::fs::File::create(local)
                .await
                .map_err(|e| local_err(local, e))?;
            let chunk = self.read_len as u64;
            let mut next = 0u64;
            let mut written = 0u64;
            let mut pending = FuturesOrdered::new();
            loop {
                while pending.len() < in_flight(self.read_len) && next < size {
                    let len = chunk.min(size - next) as u32;
                    let raw = self.raw.clone();
                    let h = handle.clone();
                    let at = next;
                    pending.push_back(async move { (at, len, raw.read(h, at, len).await) });
                    next += u64::from(len);
                }
                let item = tokio::select! {
                    r = pending.next() => r,
                    _ = cancel.cancelled() => return Err(RError::Interrupted),
                };
                let Some((at, len, res)) = item else { break };
                match res {
                    Ok(data) => {
                        file.write_all(&data.data)
                            .await
                            .map_err(|e| local_err(local, e))?;
                        written = at + data.data.len() as u64;
                        progress.add(data.data.len() as u64);
                        if data.data.len() < len as usize {
                            // Short read: drop the rest of the pipeline, go on from here.
                            pending = FuturesOrdered::new();
                            next = written;
                            if data.data.is_empty() {
                                break;
                            }
                        }
                    }
                    Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break,
                    Err(e) => return Err(sftp_error(e)),
                }
            }
            file.flush().await.map_err(|e| local_err(local, e))?;
            if written != size {
                return Err(RError::Other(format!(
                    "size check failed: expected {size} bytes, received {written} (the file changed during the transfer?)"
                )));
            }
            Ok(written)
        }
        .await;
        let _ = self.raw.close(handle).await;
        result
    }
}
