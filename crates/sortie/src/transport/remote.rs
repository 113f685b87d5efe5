//! What sortie sends to a host over SSH, and the one rule for which shell reads what.
//!
//! **The rule.** Every channel sortie opens asks the server for exactly [`EXEC_REQUEST`]
//! (`exec /bin/sh -s`): words every login shell reads alike (bash, dash, BusyBox ash, zsh,
//! fish, csh/tcsh), because they hold no quote, backslash, `$`, `!`, glob or newline. The
//! script itself then travels on the channel's stdin to `/bin/sh`, which reads it as POSIX sh
//! whatever the account's login shell is, so nothing in it needs quoting for fish or csh.
//! Inside that script, the command text is handed over as one POSIX-quoted word to:
//! - the account's login shell (`$SHELL -c TEXT`) for [`CommandShell::Login`] (`sortie exec`):
//!   the text means what it means to `ssh host 'TEXT'`;
//! - `/bin/sh -c TEXT` for [`CommandShell::Posix`] (`sortie run`, `sortie launch` and sortie's
//!   own scripts): their templates quote values for POSIX sh, and the same job list behaves
//!   the same on every host whatever the accounts' shells are.
//!
//! Why stdin rather than a cleverly encoded command line: csh and tcsh cannot carry a newline
//! inside quotes, treat `!` as history even inside single quotes, and fish reads `\` inside
//! single quotes; no quoting is read back unchanged by all of them, and printf/base64 tricks
//! need quotes or `$(...)` that csh reads differently. A script on stdin is never parsed by the
//! login shell at all. `/bin/sh` parses a whole `{ ...; }` group before running any of it, so
//! the wrapper may then point its own stdin elsewhere.
//!
//! **The process group.** Servers differ: OpenSSH's sshd makes each session's shell a session
//! leader, but Dropbear leaves it in the group of Dropbear's own per-connection process, so
//! the shell's `$$` is not a group and `kill -TERM -$$` would miss (or hit Dropbear). The
//! wrapper therefore makes sure, on the host, that the process which will `exec` the command
//! leads a session of its own (see [`wrapper`] for the three ways), prints that pid as the
//! marker line sortie strips from stdout (it is the session and process group id), forks the
//! watchdog and `exec`s the command. Without `setsid`, on a server that does not give the
//! session its own group, the wrapper refuses with a clear error rather than start a command
//! it could not stop: `set -m` is no way out, dash and BusyBox ash refuse job control without
//! a terminal. Stops signal every group of that session (from `/proc`), so that jobs a login
//! shell's job control moved into groups of their own (tcsh's `&`) end too.
//!
//! **The watchdog** holds the channel's stdin: when the channel closes (the run ended, sortie
//! exited, or the server noticed the connection died) it reads end of file and sends TERM to
//! the whole session, or only to the command's group once the command has exited by itself
//! (see `watchdog_end`); being in the group, it keeps the group id from being reused until then.
//! The command itself reads `/dev/null`, as with `pdsh`, unless it has input
//! ([`Command::stdin`](super::Command::stdin), `sortie exec` with a piped stdin). Then the
//! channel carries the script, and after the marker line the input's bytes, but no EOF: the
//! watchdog relays exactly that many bytes (`head -c N`) into a fifo the command reads, closes
//! it (the command's end of file), and goes on waiting for the channel's EOF as above. So the
//! channel's EOF keeps its one meaning, "the channel closed", with or without input; a length
//! known in advance is why `exec` reads its stdin whole before starting.

use std::fmt::Write as _;

use super::{Command, CommandShell, StopSequence};

/// The exec request of every channel: the login shell starts `/bin/sh`, which reads the
/// script sent on stdin. Only characters every shell reads literally.
pub(crate) const EXEC_REQUEST: &str = "exec /bin/sh -s";

/// First bytes of the marker line the wrapper prints: the command's process group.
pub(crate) const MARKER: &[u8] = b"\x02sortie-pgid ";

/// First bytes of the line the wrapper prints when it cannot start the command.
pub(crate) const REFUSAL: &[u8] = b"\x02sortie-error ";

/// The line a stream script prints once `/bin/sh` has read all of it (see [`stream_script`]).
pub(crate) const READY: &[u8] = b"\x02sortie-ready\n";

/// Quotes a string for a POSIX shell: sortie's one implementation, shared with templates.
pub(crate) fn quote(s: &str) -> String {
    sortie_plan::shell_quote(s).into_owned()
}

/// The wrapper's last steps, once its process leads the command's group: print the group
/// (its own pid), fork the watchdog, and `exec` `shell -c cmd` (both shell words).
///
/// With `stdin` (a byte count), the command reads a fifo instead of `/dev/null`, and the
/// watchdog first relays exactly that many bytes from the channel (fd 3) into the fifo with
/// `head -c`, closes it (the command's end of file), and only then waits for the channel's own
/// end of file as without input: sortie sends the bytes but no EOF, so EOF on the channel still
/// means only that the channel closed.
fn inner(shell: &str, cmd: &str, stdin: Option<usize>) -> String {
    let stop = watchdog_end();
    let Some(n) = stdin else {
        return format!(
            "printf '\\002sortie-pgid %s\\n' \"$$\"; \
             {{ while read -r _ <&3; do :; done; {stop}; }} >/dev/null 2>&1 & \
             exec 3<&-; exec {shell} -c {cmd}"
        );
    };
    format!(
        "head -c 0 </dev/null >/dev/null 2>&1 || {{ printf '\\002sortie-error %s\\n' \
         'this host has no head -c, which sortie needs to pass stdin to the command (use --no-stdin)'; exit 125; }}; \
         sortie_d=$(mktemp -d \"${{TMPDIR:-/tmp}}/sortie-in.XXXXXX\") && mkfifo \"$sortie_d/in\" || \
         {{ printf '\\002sortie-error cannot create a fifo for stdin in %s\\n' \"${{TMPDIR:-/tmp}}\"; exit 125; }}; \
         printf '\\002sortie-pgid %s\\n' \"$$\"; \
         {{ exec 4>\"$sortie_d/in\"; rm -rf \"$sortie_d\"; head -c {n} <&3 >&4; exec 4>&-; \
         cat <&3 >/dev/null; {stop}; }} >/dev/null 2>&1 & \
         exec 3<&-; exec {shell} -c {cmd} <\"$sortie_d/in\""
    )
}

/// What the watchdog does once the channel closed: TERM the command's session.
///
/// While the command still runs (the channel closed under it: Ctrl-C, a timeout, a lost
/// connection), every group of the session gets TERM ([`signal_session`]). Once the command
/// has exited by itself (its pid, `$$`, is gone: the server reaped it), only its own group
/// does: one `kill`, no `/proc` scan. The scan reads every process's `stat` on the host
/// (with `cat` and `awk`, or a byte at a time by `/bin/sh` without `awk`: about 0.3 s of CPU
/// with 1,000 processes), and when every command's end paid it, the end of a command cost as
/// much as its SSH session on a busy host. What a finished command left in other groups of
/// its session (tcsh's `&` jobs) runs on, as it would after `ssh host CMD`.
fn watchdog_end() -> String {
    format!(
        "if kill -0 $$ 2>/dev/null; then {}; else kill -TERM -$$ 2>/dev/null; fi",
        signal_session("TERM", "$$")
    )
}

/// Shell text that sends `sig` to every process group of session `sid` (a shell word; the
/// command's session, whose id is also its group's), then to group `sid` itself, which is
/// all there is where `/proc` is missing. The other groups are those a login shell's job
/// control made: tcsh puts each `&` job of `exec`'s text in a group of its own, still in the
/// session. Only a process that left the session (a daemon calling `setsid`) is out of reach.
///
/// The groups come from every `/proc/PID/stat` (fields after the command name: state, parent,
/// group, session), read by `cat` and picked by `awk`, as the sampler reads them: a few system
/// calls per process, 0.04 s of CPU with 1,065 processes. Without `awk`, `/bin/sh` reads them
/// itself, one byte per `read(2)` (the `read` builtin of dash and ash): 0.31 s of CPU there.
fn signal_session(sig: &str, sid: &str) -> String {
    format!(
        "if command -v awk >/dev/null 2>&1; then \
         for sortie_g in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v s={sid} \
         '{{ sub(/.*\\) /, \"\"); if ($4 == s && $3 != s) print $3 }}' 2>/dev/null); \
         do kill -{sig} -\"$sortie_g\" 2>/dev/null; done; \
         else for sortie_f in /proc/[0-9]*/stat; do read -r sortie_l < \"$sortie_f\" 2>/dev/null || continue; \
         set -- ${{sortie_l##*) }}; [ \"$4\" = {sid} ] && [ \"$3\" != {sid} ] && kill -{sig} -\"$3\" 2>/dev/null; \
         done; fi; kill -{sig} -{sid} 2>/dev/null"
    )
}

/// The script that sends one signal to the command whose group (and session) is `pgid`.
pub(crate) fn signal_script(pgid: u32, signal: &str) -> String {
    format!("{}; exit 0", signal_session(signal, &pgid.to_string()))
}

/// The wrapper script for `command`, sent on stdin to `/bin/sh -s` (see the module docs).
///
/// Three ways to a group of its own, cheapest first, all decided on the host:
/// 1. the wrapper already leads its process group (`/proc/$$/stat` says so: OpenSSH): it runs
///    the command itself, as one process, like a plain `ssh host cmd`;
/// 2. it does not (Dropbear) and `setsid` exists: `exec setsid` makes the wrapper's own
///    process a new session's leader, again with no extra process;
/// 3. `/proc` cannot tell: a subshell (never a group leader, so `setsid` cannot fork) runs
///    `setsid`, and the wrapper waits for it and re-raises the signal that ended it.
pub(crate) fn wrapper(command: &Command) -> String {
    let mut s = String::with_capacity(command.command.len() + 1024);
    // One group: /bin/sh reads all of it before the first line moves stdin to fd 3.
    s.push_str("{\nexec 3<&0 </dev/null\n");
    let _ = writeln!(s, "sortie_cmd={}", quote(&command.command));
    match command.shell {
        CommandShell::Posix => s.push_str("sortie_sh=/bin/sh\n"),
        CommandShell::Login => s.push_str("sortie_sh=${SHELL:-/bin/sh}\n"),
    }
    for (k, v) in &command.env {
        let _ = writeln!(s, "export {k}={}", quote(v));
    }
    if let Some(dir) = &command.cwd {
        let d = quote(dir);
        let _ = writeln!(
            s,
            "mkdir -p -- {d} && cd -- {d} || {{ printf '\\002sortie-error cannot enter %s\\n' {d}; exit 125; }}"
        );
    }
    let input = command.stdin.as_ref().map(|i| i.len());
    let _ = writeln!(s, "sortie_in={}", quote(&inner("\"$0\"", "\"$1\"", input)));
    s.push_str(
        "sortie_pg=; read -r sortie_pg < /proc/$$/stat 2>/dev/null && { set -- ${sortie_pg##*) }; sortie_pg=$3; }\n",
    );
    let _ = writeln!(
        s,
        "if [ \"$sortie_pg\" = \"$$\" ]; then {}; fi",
        inner("\"$sortie_sh\"", "\"$sortie_cmd\"", input)
    );
    s.push_str(
        "if ! command -v setsid >/dev/null 2>&1; then\n\
         printf '\\002sortie-error %s\\n' 'this host has no setsid command and its SSH server does not give the session its own process group (install setsid from util-linux or BusyBox)'\n\
         exit 125\n\
         fi\n\
         if [ -n \"$sortie_pg\" ]; then exec setsid /bin/sh -c \"$sortie_in\" \"$sortie_sh\" \"$sortie_cmd\"; fi\n\
         (exec setsid /bin/sh -c \"$sortie_in\" \"$sortie_sh\" \"$sortie_cmd\")\n\
         sortie_rc=$?\n\
         if [ \"$sortie_rc\" -gt 128 ]; then sortie_sig=$(kill -l \"$sortie_rc\" 2>/dev/null)\n\
         case $sortie_sig in\n\
         HUP|INT|QUIT|ILL|ABRT|FPE|KILL|SEGV|PIPE|ALRM|TERM|USR1|USR2|BUS)\n\
         ulimit -c 0 2>/dev/null; trap - \"$sortie_sig\"; kill -s \"$sortie_sig\" $$ ;;\n\
         esac; fi\n\
         exit \"$sortie_rc\"\n}\n",
    );
    s
}

/// A plain POSIX script for `/bin/sh -s` (the channel's stdin is closed after it).
pub(crate) fn script(body: &str) -> String {
    format!("{body}\n")
}

/// A script for a raw byte stream (the transfer fallback): once `/bin/sh` has read all of it,
/// it prints [`READY`] and runs `command` with the channel's stdin and stdout. The caller sends
/// data only after [`READY`], so `/bin/sh` cannot have read any of it as script.
pub(crate) fn stream_script(command: &str) -> String {
    format!("{{\nprintf '\\002sortie-ready\\n'\n{command}\n}}\n")
}

/// The script that ends the command whose group (and session) is `pgid`: each step signals
/// every group of the session and waits (in 50 ms polls) for the group leader to exit; then
/// they all get KILL, which also ends the watchdog and any stragglers. Prints nothing; exits 0.
pub(crate) fn stop_script(pgid: u32, sequence: &StopSequence) -> String {
    let mut s = String::new();
    let sid = pgid.to_string();
    for (signal, grace) in &sequence.steps {
        let polls = (grace.as_millis() / 50).max(1);
        let _ = write!(
            s,
            "{}; i=0; \
             while kill -0 {pgid} 2>/dev/null && [ $i -lt {polls} ]; do sleep 0.05; i=$((i+1)); done; ",
            signal_session(signal, &sid)
        );
    }
    let _ = write!(s, "{}; exit 0", signal_session("KILL", &sid));
    s
}

/// What the first bytes of a wrapper's stdout said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Head<'a> {
    /// The marker: the command's process group, and the output after the marker line.
    Started(u32, &'a [u8]),
    /// The wrapper refused to start the command, with its reason.
    Refused(String),
    /// Not a wrapper's output (no `/bin/sh`, or a login shell that failed).
    Other(&'a [u8]),
}

/// Reads the marker line from the first bytes of stdout. Returns `None` while more bytes are
/// needed.
pub(crate) fn take_marker(buf: &[u8]) -> Option<Head<'_>> {
    for (prefix, started) in [(MARKER, true), (REFUSAL, false)] {
        let n = prefix.len().min(buf.len());
        if buf[..n] != prefix[..n] {
            continue;
        }
        let nl = buf.iter().position(|&b| b == b'\n')?;
        let text = String::from_utf8_lossy(&buf[prefix.len().min(nl)..nl]);
        if !started {
            return Some(Head::Refused(text.trim().to_string()));
        }
        return Some(match text.trim().parse() {
            Ok(pid) => Head::Started(pid, &buf[nl + 1..]),
            Err(_) => Head::Other(buf),
        });
    }
    Some(Head::Other(buf))
}

#[cfg(test)]
mod tests;
