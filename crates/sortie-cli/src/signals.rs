//! The signals that end a run: SIGINT (Ctrl-C), SIGTERM (`timeout`, `systemctl stop`, a cancelled
//! CI job, `kill`) and SIGHUP (a closed terminal) all mean "stop". The first one stops the run as
//! Ctrl-C does (stop new work, end remote work with its stop sequence, write logs, summary and
//! report, exit 130); each further one escalates as a further Ctrl-C does.
//!
//! Listening starts before any host is contacted, so a signal can never catch sortie with its
//! default action (die at once, leaving processes behind). Owns no run state: it only cancels
//! the tokens a command hands it.

use std::io;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};

/// A closed terminal delivers SIGHUP twice (the kernel signals the foreground group, then the
/// shell forwards its own SIGHUP to its jobs): a repeat within this window is the same event,
/// not a request to escalate.
const HUP_REPEAT: Duration = Duration::from_secs(1);

/// Listeners for SIGINT, SIGTERM and SIGHUP, installed together.
pub struct Interrupts {
    int: Signal,
    term: Signal,
    hup: Signal,
    last_hup: Option<Instant>,
}

impl Interrupts {
    /// Starts listening: from now on the three signals no longer kill the process.
    pub fn install() -> io::Result<Self> {
        Ok(Interrupts {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            last_hup: None,
        })
    }

    /// Waits for the next stop request and returns the signal's name (`SIGINT`...). A SIGHUP
    /// whose terminal is gone moves stdout and stderr to `/dev/null` first, so the stop, the
    /// report and the exit code are not lost to a write error on a dead terminal.
    pub async fn next(&mut self) -> &'static str {
        loop {
            let name = tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
                _ = self.hup.recv() => "SIGHUP",
            };
            if name != "SIGHUP" {
                return name;
            }
            let now = Instant::now();
            let repeat = self
                .last_hup
                .is_some_and(|t| now.duration_since(t) < HUP_REPEAT);
            self.last_hup = Some(now);
            detach_from_dead_terminal();
            if !repeat {
                return name;
            }
        }
    }
}

/// Spawns the task that turns signals into cancellation: the first cancels `stop`, the second
/// cancels `escalate` (when the command has a harder stop, as launch has), the next one exits
/// at once with 130. `what` says what the first signal does, `harder` what the second does.
pub fn on_interrupt(
    mut signals: Interrupts,
    stop: sortie::CancellationToken,
    escalate: Option<(sortie::CancellationToken, &'static str)>,
    what: &'static str,
) {
    tokio::spawn(async move {
        let name = signals.next().await;
        let again = if escalate.is_some() {
            "again to kill at once"
        } else {
            "again to exit at once"
        };
        eprintln!("sortie: interrupted ({name}); {what} ({again})");
        stop.cancel();
        if let Some((escalate, harder)) = escalate {
            let name = signals.next().await;
            eprintln!("sortie: {name} again; {harder} (again to exit at once)");
            escalate.cancel();
        }
        let name = signals.next().await;
        eprintln!("sortie: {name} again; exiting at once; processes may be left on hosts");
        std::process::exit(130);
    });
}

/// After a hang-up, writes to the terminal fail with EIO and Rust's printing macros panic: point
/// stdout and stderr that were that terminal at `/dev/null`. A SIGHUP sent by `kill` to a sortie
/// whose terminal is still there changes nothing.
fn detach_from_dead_terminal() {
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        if terminal_hung_up(fd) {
            redirect_to_null(fd);
        }
    }
}

/// A hung-up terminal answers every ioctl with EIO; a live one, a pipe or a file does not.
fn terminal_hung_up(fd: i32) -> bool {
    // SAFETY: tcgetattr writes into the termios we own; an invalid fd only returns an error.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::tcgetattr(fd, &mut t) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EIO)
}

fn redirect_to_null(fd: i32) {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto a standard descriptor we own; `null` stays open until after the call.
    unsafe { libc::dup2(null.as_raw_fd(), fd) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hang-up check against a real pseudo-terminal: live, then with its other side closed.
    #[test]
    fn a_closed_pty_reads_as_hung_up_and_a_live_one_does_not() {
        // SAFETY: plain libc calls on descriptors this test owns.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(master >= 0);
            assert_eq!(libc::grantpt(master), 0);
            assert_eq!(libc::unlockpt(master), 0);
            let name = std::ffi::CStr::from_ptr(libc::ptsname(master)).to_owned();
            let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            assert!(slave >= 0);
            assert!(!terminal_hung_up(slave), "a live pty is not hung up");
            let (r, w) = {
                let mut p = [0; 2];
                assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
                (p[0], p[1])
            };
            assert!(!terminal_hung_up(w), "a pipe is not a hung-up terminal");
            libc::close(master);
            // The pty's other side is gone: what a closed terminal window leaves.
            assert!(
                terminal_hung_up(slave),
                "a pty whose master closed must read as hung up"
            );
            libc::close(slave);
            libc::close(r);
            libc::close(w);
        }
    }
}
