//! ssh_config's `ProxyCommand`: the SSH connection runs over a local command's stdin and stdout
//! (AWS Systems Manager's `aws ssm start-session`, `nc -X connect`, corkscrew, cloudflared...).
//!
//! As OpenSSH does, the command (tokens already expanded, see `hosts`) runs as
//! `$SHELL -c "exec COMMAND"` (`/bin/sh` without `$SHELL`). Its stderr is the host's diagnostics:
//! logged with the host's label and its end kept for the connection error. The process belongs
//! to the stream: when the connection ends, is dropped, or sortie stops, it is killed. Owns no
//! SSH logic.

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader, Join, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// How much of the proxy's stderr is kept for an error message.
const STDERR_TAIL: usize = 2048;

/// The proxy's stdout (read) and stdin (write) as one byte stream; owns the process.
pub(crate) struct ProxyStream {
    io: Join<ChildStdout, ChildStdin>,
    _child: Child,
}

/// The end of what a proxy wrote on stderr, shared with its reader task.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<String>>);

impl StderrTail {
    /// What the proxy said last (empty when nothing).
    pub(crate) fn text(&self) -> String {
        self.0
            .lock()
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    fn push(&self, line: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.push_str(line);
            s.push('\n');
            if s.len() > STDERR_TAIL {
                let mut cut = s.len() - STDERR_TAIL;
                while !s.is_char_boundary(cut) {
                    cut += 1;
                }
                s.drain(..cut);
            }
        }
    }
}

/// Starts `command` for host `label`.
pub(crate) fn spawn(label: &str, command: &str) -> io::Result<(ProxyStream, StderrTail)> {
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let mut child = tokio::process::Command::new(shell)
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("proxy command without pipes"));
    };
    let tail = StderrTail::default();
    let (keep, host) = (tail.clone(), label.to_string());
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(host = %host, "ProxyCommand: {line}");
            keep.push(&line);
        }
    });
    Ok((
        ProxyStream {
            io: tokio::io::join(stdout, stdin),
            _child: child,
        },
        tail,
    ))
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
