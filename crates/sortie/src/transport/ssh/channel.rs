//! Starting `/bin/sh -s` on a new session channel and handing it a script (see
//! `transport::remote` for why every channel runs exactly that), and the byte stream of the
//! transfer fallback.
//!
//! Dropbear before 2024.86 (its issue #321, fixed by "Don't close channels when a PID hasn't
//! started") sometimes closes a new session channel before its exec request arrives: when a
//! child of another channel of the same connection exited in the same turn of its loop, its
//! close check runs on the new channel, finds no process yet and sends EOF and CLOSE. The
//! exec request is then still served, but with every pipe closed: the command starts with no
//! stdin and dies of SIGPIPE at its first write, and the channel carries no exit status.
//! That was `sortie run`'s "no exit status" on Dropbear. [`start`] therefore waits for the
//! answer to the exec request before sending the script: a channel that said EOF or CLOSE
//! before that answer never received the script, so nothing ran, and [`start`] opens another.
//! The race needs a child of *another* channel to exit while a channel is being opened, so
//! on such a Dropbear a connection carries one job at a time ([`limit_for`]) and the run
//! pool opens more connections instead; with several jobs per connection, 8 retries in a row
//! were not always enough for 10 slots of short jobs.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use russh::client::{self, Handle};
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::super::remote::{EXEC_REQUEST, READY};
use super::super::SpawnError;
use super::{describe, ClientHandler};

/// The channels a connection to this server should carry at once: two (one job, and the
/// stop script that may end it) on a Dropbear older than 2024.86, else no limit. Takes the
/// identification string (`SSH-2.0-dropbear_2022.83`).
pub(super) fn limit_for(server_id: &str) -> Option<usize> {
    let version = server_id.trim().strip_prefix("SSH-2.0-dropbear_")?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let year: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    ((year, minor) < (2024, 86)).then_some(2)
}

/// How many channels [`start`] opens before giving up on a server that closes them early.
const START_ATTEMPTS: usize = 8;

/// What came back for an exec request.
enum Reply {
    Success,
    Refused,
    /// EOF or CLOSE before the answer (Dropbear's early close): the script was not sent.
    ClosedEarly,
    Lost,
}

/// Opens a session channel, starts [`EXEC_REQUEST`] and sends `script` on its stdin (then EOF
/// when `eof`), retrying on a new channel when the server closed one before the answer. With
/// `agent`, asks for agent forwarding first (`auth-agent-req@openssh.com`, no reply wanted, as
/// `ssh -A` sends it): the server then sets `SSH_AUTH_SOCK` for the command.
pub(super) async fn start(
    handle: &Handle<ClientHandler>,
    script: &str,
    eof: bool,
    agent: bool,
) -> Result<russh::Channel<client::Msg>, SpawnError> {
    for _ in 0..START_ATTEMPTS {
        let mut channel = open(handle).await?;
        if agent {
            channel
                .agent_forward(false)
                .await
                .map_err(|e| SpawnError::Lost(describe(&e)))?;
        }
        channel
            .exec(true, EXEC_REQUEST)
            .await
            .map_err(|e| SpawnError::Lost(describe(&e)))?;
        match reply(&mut channel).await {
            Reply::Success => {}
            Reply::Refused => {
                return Err(SpawnError::ChannelRefused("exec request refused".into()))
            }
            Reply::ClosedEarly => {
                tracing::debug!(
                    "the server closed a new channel before its exec request; retrying"
                );
                let _ = channel.close().await;
                continue;
            }
            Reply::Lost => return Err(SpawnError::Lost("connection lost".into())),
        }
        channel
            .data(script.as_bytes())
            .await
            .map_err(|e| SpawnError::Lost(describe(&e)))?;
        if eof {
            let _ = channel.eof().await;
        }
        return Ok(channel);
    }
    Err(SpawnError::Other(format!(
        "the server closed {START_ATTEMPTS} new session channels in a row before their command \
         started"
    )))
}

/// Opens a session channel; a refusal (e.g. OpenSSH `MaxSessions`) is
/// [`SpawnError::ChannelRefused`].
pub(super) async fn open(
    handle: &Handle<ClientHandler>,
) -> Result<russh::Channel<client::Msg>, SpawnError> {
    match handle.channel_open_session().await {
        Ok(c) => Ok(c),
        Err(russh::Error::ChannelOpenFailure(reason)) => {
            Err(SpawnError::ChannelRefused(format!("{reason:?}")))
        }
        Err(e) => Err(SpawnError::Lost(describe(&e))),
    }
}

async fn reply(channel: &mut russh::Channel<client::Msg>) -> Reply {
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => return Reply::Success,
            Some(ChannelMsg::Failure) => return Reply::Refused,
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) => return Reply::ClosedEarly,
            Some(_) => {}
            None => return Reply::Lost,
        }
    }
}

/// Starts `script` (from `remote::stream_script`) and returns the channel as a byte stream
/// once `/bin/sh` said it read all of it; stderr is discarded.
pub(super) async fn stream(
    handle: &Handle<ClientHandler>,
    script: &str,
) -> Result<Prefixed<russh::ChannelStream<client::Msg>>, SpawnError> {
    let mut channel = start(handle, script, false, false).await?;
    let mut head: Vec<u8> = Vec::new();
    let mut err: Vec<u8> = Vec::new();
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Data { data }) => {
                head.extend_from_slice(&data);
                if head.starts_with(READY) {
                    let rest = Bytes::copy_from_slice(&head[READY.len()..]);
                    return Ok(Prefixed {
                        head: rest,
                        inner: channel.into_stream(),
                    });
                }
                if head.len() >= READY.len() || !READY.starts_with(&head) {
                    return Err(no_sh(&head, &err, None));
                }
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => err.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                return Err(no_sh(&head, &err, Some(exit_status)))
            }
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) => {
                return Err(no_sh(&head, &err, None))
            }
            Some(_) => {}
            None => return Err(SpawnError::Lost("connection lost".into())),
        }
    }
}

/// The error for a host whose login shell could not start `/bin/sh` with sortie's script.
pub(super) fn no_sh(stdout: &[u8], stderr: &[u8], status: Option<u32>) -> SpawnError {
    let said = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr });
    let said: String = said.trim().chars().take(300).collect();
    let status = status.map(|s| format!(" (exit {s})")).unwrap_or_default();
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    SpawnError::Other(format!(
        "/bin/sh did not run sortie's script on this host{status}{said}; sortie needs a POSIX \
         /bin/sh on every host, whatever the login shell"
    ))
}

/// A stream whose first bytes were already read: yields them, then the stream's own.
pub(super) struct Prefixed<S> {
    head: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            let chunk = self.head.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::limit_for;

    #[test]
    fn only_dropbear_before_2024_86_gets_one_job_per_connection() {
        assert_eq!(limit_for("SSH-2.0-dropbear_2022.83"), Some(2));
        assert_eq!(limit_for("SSH-2.0-dropbear_2019.78\r\n"), Some(2));
        assert_eq!(limit_for("SSH-2.0-dropbear_2024.86"), None);
        assert_eq!(limit_for("SSH-2.0-dropbear_2025.88"), None);
        assert_eq!(limit_for("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"), None);
    }
}
