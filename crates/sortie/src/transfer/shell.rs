//! The fallback for servers without an SFTP subsystem: plain commands over exec channels
//! (`cat > tmp`, `stat`, `find`, `mv`), as scp's legacy mode does. Needs a POSIX shell and GNU
//! coreutils/findutils on the host. Every upload is size-checked on the host before it counts.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::remote::{capture, sh_quote, spawn_error, RError, RKind, RResult, RStat, RemoteFs};
use super::{LocalEntry, Method, Progress};
use crate::transport::Connection;

const OK: &str = "sortie-transfer-ok";

/// File operations through helper commands on one connection.
pub(crate) struct ShellFs {
    conn: Arc<dyn Connection>,
}

impl ShellFs {
    pub(crate) fn new(conn: Arc<dyn Connection>) -> Self {
        ShellFs { conn }
    }

    /// Runs `script` with stderr folded into stdout; success when it printed the OK marker.
    async fn run(&self, script: &str) -> RResult<String> {
        let wrapped = format!("{{ {script} ; }} 2>&1 && echo {OK}");
        let (_, out, _) = capture(self.conn.as_ref(), &wrapped).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        match text.strip_suffix(&format!("{OK}\n")) {
            Some(rest) => Ok(rest.to_string()),
            None => Err(classify(&text)),
        }
    }
}

/// Turns a command's error output into an error kind.
fn classify(text: &str) -> RError {
    let t = text.trim();
    if t.contains("Permission denied") {
        RError::PermissionDenied
    } else if t.contains("No such file") {
        RError::NotFound
    } else if t.is_empty() {
        RError::Other("remote command failed".into())
    } else {
        RError::Other(t.lines().last().unwrap_or(t).to_string())
    }
}

fn kind_of(letter: &str) -> RKind {
    match letter {
        "d" | "directory" => RKind::Dir,
        "f" | "regular file" | "regular empty file" => RKind::File,
        _ => RKind::Other,
    }
}

#[async_trait]
impl RemoteFs for ShellFs {
    fn method(&self) -> Method {
        Method::Exec
    }

    async fn home(&self) -> RResult<String> {
        let out = self.run(r#"printf '%s\n' "$HOME""#).await?;
        match out.trim_end_matches('\n') {
            "" => Err(RError::Other("$HOME is not set on the host".into())),
            home => Ok(home.to_string()),
        }
    }

    async fn stat(&self, path: &str) -> RResult<Option<RStat>> {
        let q = sh_quote(path);
        let out = self
            .run(&format!(
                "if [ -e {q} ]; then stat -L -c '%F|%s|%a|%Y' -- {q}; else echo missing; fi"
            ))
            .await?;
        let line = out.trim();
        if line == "missing" {
            return Ok(None);
        }
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 4 {
            return Err(RError::Other(format!("unexpected stat output: {line}")));
        }
        Ok(Some(RStat {
            kind: kind_of(f[0]),
            size: f[1].parse().unwrap_or(0),
            mode: u32::from_str_radix(f[2], 8).unwrap_or(0o644),
            mtime: f[3].parse().unwrap_or(0),
        }))
    }

    async fn mkdir(&self, path: &str, mode: u32) -> RResult<()> {
        self.run(&format!(
            "mkdir -m {:o} -- {}",
            mode & 0o7777,
            sh_quote(path)
        ))
        .await
        .map(|_| ())
    }

    async fn chmod(&self, path: &str, mode: u32) -> RResult<()> {
        self.run(&format!("chmod {:o} -- {}", mode & 0o7777, sh_quote(path)))
            .await
            .map(|_| ())
    }

    async fn upload(
        &self,
        src: &LocalEntry,
        remote: &str,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> RResult<u64> {
        let (local, size, mode, mtime) = (src.path.as_path(), src.size, src.mode, src.mtime);
        let q = sh_quote(remote);
        // `set -C` refuses to write through an existing name (the temporary name is fresh).
        let script = format!(
            "{{ umask 077; set -C; cat > {q} && [ \"$(wc -c < {q})\" -eq {size} ] && chmod {mode:o} {q} \
             && touch -m -d @{mtime} {q} && echo {OK}; }} 2>&1 || {{ rm -f {q}; echo size-or-write-failed; }}",
            mode = mode & 0o7777
        );
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| RError::Other(format!("local file {}: {e}", local.display())))?;
        let mut stream = self.conn.exec_stream(&script).await.map_err(spawn_error)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| RError::Other(format!("local file {}: {e}", local.display())))?;
            if n == 0 {
                break;
            }
            tokio::select! {
                r = stream.write_all(&buf[..n]) => r.map_err(|e| RError::Lost(e.to_string()))?,
                _ = cancel.cancelled() => return Err(RError::Interrupted),
            }
            sent += n as u64;
            progress.add(n as u64);
        }
        stream
            .shutdown()
            .await
            .map_err(|e| RError::Lost(e.to_string()))?;
        let mut out = Vec::new();
        tokio::select! {
            r = stream.read_to_end(&mut out) => { r.map_err(|e| RError::Lost(e.to_string()))?; }
            _ = cancel.cancelled() => return Err(RError::Interrupted),
        }
        let text = String::from_utf8_lossy(&out);
        if text.contains(OK) {
            Ok(sent)
        } else {
            Err(classify(text.trim_end_matches("size-or-write-failed\n")))
        }
    }

    async fn rename(&self, from: &str, to: &str) -> RResult<()> {
        self.run(&format!("mv -f -- {} {}", sh_quote(from), sh_quote(to)))
            .await
            .map(|_| ())
    }

    async fn remove(&self, path: &str) -> RResult<()> {
        self.run(&format!("rm -f -- {}", sh_quote(path)))
            .await
            .map(|_| ())
    }

    async fn read_dir(&self, path: &str) -> RResult<Vec<(String, RStat)>> {
        let out = self
            .run(&format!(
                "cd -- {} && find -L . -mindepth 1 -maxdepth 1 -printf '%f/%y/%s/%m/%T@\\n'",
                sh_quote(path)
            ))
            .await?;
        let mut entries = Vec::new();
        for line in out.lines() {
            // The name cannot contain `/`; it may contain anything else but a newline.
            let f: Vec<&str> = line.rsplitn(5, '/').collect();
            if f.len() != 5 {
                continue;
            }
            let (mtime, mode, size, kind, name) = (f[0], f[1], f[2], f[3], f[4]);
            entries.push((
                name.to_string(),
                RStat {
                    kind: kind_of(kind),
                    size: size.parse().unwrap_or(0),
                    mode: u32::from_str_radix(mode, 8).unwrap_or(0o644),
                    mtime: mtime
                        .split('.')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                },
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    async fn download(
        &self,
        remote: &str,
        local: &Path,
        size: u64,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> RResult<u64> {
        let mut stream = self
            .conn
            .exec_stream(&format!("cat -- {}", sh_quote(remote)))
            .await
            .map_err(spawn_error)?;
        let _ = stream.shutdown().await;
        let mut file = tokio::fs::File::create(local)
            .await
            .map_err(|e| RError::Other(format!("local file {}: {e}", local.display())))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        loop {
            let n = tokio::select! {
                r = stream.read(&mut buf) => r.map_err(|e| RError::Lost(e.to_string()))?,
                _ = cancel.cancelled() => return Err(RError::Interrupted),
            };
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .await
                .map_err(|e| RError::Other(format!("local file {}: {e}", local.display())))?;
            got += n as u64;
            progress.add(n as u64);
        }
        file.flush()
            .await
            .map_err(|e| RError::Other(format!("local file {}: {e}", local.display())))?;
        if got != size {
            // Find out why: unreadable, or changed while copying.
            if let Ok(out) = self.run(&format!("[ -r {} ]", sh_quote(remote))).await {
                let _ = out;
                return Err(RError::Other(format!(
                    "size check failed: expected {size} bytes, received {got} (the file changed during the transfer?)"
                )));
            }
            return Err(RError::PermissionDenied);
        }
        Ok(got)
    }
}
