//! The `local` transport: runs commands through a local `/bin/sh`, no SSH.
//!
//! Each command gets its own process group (so [`Connection::stop`] ends the whole tree, as on
//! a remote host) and reads `/dev/null`, like a command run by `sortie exec` over SSH, or the
//! bytes of [`Command::stdin`](super::Command::stdin) then end of file.

use async_trait::async_trait;
use bytes::Bytes;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{
    signal_name, ByteStream, Command, CommandShell, ConnectError, Connection, Exit, Process,
    ProcessEvent, SpawnError, StopSequence, Target, Transport,
};

/// Output chunk size read from a local pipe.
const CHUNK: usize = 64 * 1024;

/// The local transport (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalTransport;

#[async_trait]
impl Transport for LocalTransport {
    async fn connect(&self, _target: &Target) -> Result<Arc<dyn Connection>, ConnectError> {
        Ok(Arc::new(LocalConnection))
    }
}

/// A "connection" to the local machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalConnection;

fn signal_number(name: &str) -> Option<i32> {
    Some(match signal_name(name)? {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        _ => return None,
    })
}

/// Name of signal number `n` without `SIG`.
pub(crate) fn signal_label(n: i32) -> String {
    for name in super::SIGNALS {
        if signal_number(name) == Some(n) {
            return (*name).to_string();
        }
    }
    match n {
        libc::SIGABRT => "ABRT".into(),
        libc::SIGSEGV => "SEGV".into(),
        libc::SIGPIPE => "PIPE".into(),
        libc::SIGALRM => "ALRM".into(),
        libc::SIGBUS => "BUS".into(),
        libc::SIGFPE => "FPE".into(),
        libc::SIGILL => "ILL".into(),
        _ => n.to_string(),
    }
}

fn killpg(pgid: u32, sig: i32) -> bool {
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe { libc::killpg(pgid as libc::pid_t, sig) == 0 }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[async_trait]
impl Connection for LocalConnection {
    async fn spawn(&self, command: &Command) -> Result<Process, SpawnError> {
        // The same rule as over SSH: `exec` text goes to the login shell, the rest to /bin/sh.
        let shell = match command.shell {
            CommandShell::Posix => "/bin/sh".to_string(),
            CommandShell::Login => std::env::var("SHELL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into()),
        };
        let mut cmd = tokio::process::Command::new(&shell);
        cmd.arg("-c")
            .arg(&command.command)
            .stdin(if command.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        for (k, v) in &command.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &command.cwd {
            std::fs::create_dir_all(dir)
                .map_err(|e| SpawnError::Other(format!("cannot create {dir}: {e}")))?;
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| SpawnError::Other(format!("cannot start {shell}: {e}")))?;
        let pgid = child.id();
        if let (Some(mut pipe), Some(input)) = (child.stdin.take(), command.stdin.clone()) {
            // Written beside the output readers, then dropped: the command's end of file. A
            // command that exits without reading it all ends the write (EPIPE), not the run.
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = pipe.write_all(input.bytes()).await;
            });
        }
        let (tx, rx) = mpsc::channel(64);
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        tokio::spawn(async move {
            let mut out_open = true;
            let mut err_open = true;
            let mut obuf = vec![0u8; CHUNK];
            let mut ebuf = vec![0u8; CHUNK];
            while out_open || err_open {
                tokio::select! {
                    r = stdout.read(&mut obuf), if out_open => match r {
                        Ok(0) | Err(_) => out_open = false,
                        Ok(n) => { let _ = tx.send(ProcessEvent::Stdout(Bytes::copy_from_slice(&obuf[..n]))).await; }
                    },
                    r = stderr.read(&mut ebuf), if err_open => match r {
                        Ok(0) | Err(_) => err_open = false,
                        Ok(n) => { let _ = tx.send(ProcessEvent::Stderr(Bytes::copy_from_slice(&ebuf[..n]))).await; }
                    },
                }
            }
            let exit = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(code) = status.code() {
                        Exit::Code(code as u32)
                    } else if let Some(sig) = status.signal() {
                        Exit::Signal {
                            name: signal_label(sig),
                            core_dumped: status.core_dumped(),
                        }
                    } else {
                        Exit::NoStatus
                    }
                }
                Err(_) => Exit::NoStatus,
            };
            // Like the remote watchdog: nothing the command started outlives it.
            if let Some(pgid) = pgid {
                killpg(pgid, libc::SIGTERM);
            }
            let _ = tx.send(ProcessEvent::Exit(exit)).await;
        });
        Ok(Process { pgid, events: rx })
    }

    async fn stop(&self, pgid: u32, sequence: &StopSequence) -> Result<(), SpawnError> {
        for (signal, grace) in &sequence.steps {
            let sig = signal_number(signal)
                .ok_or_else(|| SpawnError::Other(format!("unknown signal {signal}")))?;
            if !killpg(pgid, sig) {
                return Ok(());
            }
            let deadline = tokio::time::Instant::now() + *grace;
            while alive(pgid) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        killpg(pgid, libc::SIGKILL);
        Ok(())
    }

    async fn signal(&self, pgid: u32, signal: &str) -> Result<(), SpawnError> {
        let sig = signal_number(signal)
            .ok_or_else(|| SpawnError::Other(format!("unknown signal {signal}")))?;
        killpg(pgid, sig);
        Ok(())
    }

    async fn subsystem(&self, name: &str) -> Result<ByteStream, SpawnError> {
        Err(SpawnError::ChannelRefused(format!(
            "the local transport has no {name} subsystem"
        )))
    }

    async fn exec_stream(&self, command: &str) -> Result<ByteStream, SpawnError> {
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SpawnError::Other(format!("cannot start /bin/sh: {e}")))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(Box::new(PipeStream {
            stdout,
            stdin: Some(stdin),
        }))
    }

    fn is_closed(&self) -> bool {
        false
    }

    async fn close(&self) {}
}

/// A child's stdout and stdin as one stream. Shutting it down closes stdin, so the child sees
/// end of file as it would at the end of an SSH channel (a pipe's own shutdown does nothing:
/// only dropping it closes it).
struct PipeStream {
    stdout: tokio::process::ChildStdout,
    stdin: Option<tokio::process::ChildStdin>,
}

impl tokio::io::AsyncRead for PipeStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for PipeStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            None => std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.stdin.as_mut() {
            Some(w) => std::pin::Pin::new(w).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stdin = None;
        std::task::Poll::Ready(Ok(()))
    }
}
