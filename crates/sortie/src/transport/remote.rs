//! The POSIX shell snippets sortie sends to a host: the wrapper that starts a command in a known
//! process group, and the stop script that ends such a group.
//!
//! Why a wrapper: OpenSSH's sshd puts each session's shell in a new session (`setsid`), so the
//! shell's pid is the process group of everything the command starts. The wrapper prints that
//! pid as its first line of stdout (a marker sortie strips), then `exec`s the command so the
//! exit status and signal are reported by sshd itself. Before that it forks a tiny watchdog
//! that holds the channel's stdin: when the channel closes (the run ended, sortie exited, or
//! sshd noticed the connection died), stdin reaches EOF and the watchdog sends TERM to the
//! whole group, so nothing sortie started outlives its channel. The command itself reads
//! `/dev/null`, as with `pdsh`.

use std::fmt::Write as _;

use super::{Command, StopSequence};

/// First bytes of the marker line the wrapper prints.
pub(crate) const MARKER: &[u8] = b"\x02sortie-pgid ";

/// Quotes a string for a POSIX shell (single quotes), as templates do.
pub(crate) fn quote(s: &str) -> String {
    sortie_plan::shell_quote(s).into_owned()
}

/// The wrapper script for `command`, to be run by the login shell of the remote user.
pub(crate) fn wrapper(command: &Command) -> String {
    let mut s = String::with_capacity(command.command.len() + 256);
    // Keep the channel's stdin on fd 3 for the watchdog; everything else reads /dev/null.
    s.push_str("exec 3<&0 </dev/null; printf '\\002sortie-pgid %s\\n' \"$$\"; ");
    // `read` is a builtin: the watchdog costs the host one fork, not a fork and an exec.
    s.push_str(
        "{ while read -r _ <&3; do :; done; kill -TERM -$$; } >/dev/null 2>&1 & exec 3<&-; ",
    );
    for (k, v) in &command.env {
        let _ = write!(s, "export {k}={}; ", quote(v));
    }
    if let Some(dir) = &command.cwd {
        let d = quote(dir);
        let _ = write!(s, "mkdir -p -- {d} && cd -- {d} || exit 127; ");
    }
    let _ = write!(s, "exec /bin/sh -c {}", quote(&command.command));
    s
}

/// The script that ends process group `pgid`: each step signals the group and waits (in
/// 50 ms polls) for the group leader to exit; then the whole group gets KILL, which also ends
/// the watchdog and any stragglers. Prints nothing; exits 0.
pub(crate) fn stop_script(pgid: u32, sequence: &StopSequence) -> String {
    let mut s = String::new();
    for (signal, grace) in &sequence.steps {
        let polls = (grace.as_millis() / 50).max(1);
        let _ = write!(
            s,
            "kill -{signal} -{pgid} 2>/dev/null; i=0; \
             while kill -0 {pgid} 2>/dev/null && [ $i -lt {polls} ]; do sleep 0.05; i=$((i+1)); done; "
        );
    }
    let _ = write!(s, "kill -KILL -{pgid} 2>/dev/null; exit 0");
    s
}

/// Strips the marker line from the first bytes of stdout. Returns `None` while more bytes are
/// needed, else the pgid (if the marker was there) and the remaining output.
pub(crate) fn take_marker(buf: &[u8]) -> Option<(Option<u32>, &[u8])> {
    let prefix_len = MARKER.len().min(buf.len());
    if buf[..prefix_len] != MARKER[..prefix_len] {
        return Some((None, buf));
    }
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let pid = std::str::from_utf8(&buf[MARKER.len().min(nl)..nl])
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Some((pid, &buf[nl + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quote_round_trips_through_sh() {
        for s in [
            "plain",
            "",
            "a b",
            "it's",
            "$HOME `x` \\ \"q\"",
            "new\nline",
            "ünï",
        ] {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn marker_is_parsed_across_chunks() {
        assert_eq!(take_marker(b"\x02sortie-p"), None);
        assert_eq!(
            take_marker(b"\x02sortie-pgid 4242\nhello"),
            Some((Some(4242), &b"hello"[..]))
        );
        assert_eq!(take_marker(b"other"), Some((None, &b"other"[..])));
    }

    #[test]
    fn wrapper_runs_command_in_its_own_group_with_env_and_status() {
        let cmd = Command {
            command: "echo \"$GREETING from $(pwd)\"; exit 3".into(),
            env: vec![("GREETING".into(), "it's me".into())],
            cwd: Some(
                std::env::temp_dir()
                    .join("sortie-wrapper-test")
                    .display()
                    .to_string(),
            ),
        };
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(wrapper(&cmd))
            .output()
            .unwrap();
        let (pid, rest) = take_marker(&out.stdout).unwrap();
        assert!(pid.is_some());
        assert_eq!(
            String::from_utf8_lossy(rest).trim_end(),
            format!("it's me from {}", cmd.cwd.as_deref().unwrap())
        );
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn stop_script_escalates() {
        let s = stop_script(
            77,
            &StopSequence {
                steps: vec![
                    ("INT".into(), Duration::from_secs(1)),
                    ("TERM".into(), Duration::from_millis(100)),
                ],
            },
        );
        assert!(s.starts_with("kill -INT -77"));
        assert!(s.contains("[ $i -lt 20 ]"));
        assert!(s.contains("kill -TERM -77"));
        assert!(s.ends_with("kill -KILL -77 2>/dev/null; exit 0"));
    }
}
