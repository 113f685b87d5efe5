//! The host side of a launch: POSIX sh text that makes each process independent of any SSH
//! channel, and the scripts the controller runs to start, follow, renew, stop and clean up.
//!
//! **The remote directory** (`R`, by default `~/.sortie-runs/<run-id>`) holds, per attempt
//! of a process, `p/<role>/<idx>.<attempt>/` with `out` and `err` (its standard output and
//! error), `pgid` (its process group, written by its supervisor before the command starts)
//! and `exit` (`STATUS [SIGNAL]`, written when it ends); per run, `lease` (the host time, in
//! epoch seconds, until which the controller vouched for the run), `end` (for a detached
//! run: when to stop by itself), `stop.sh` (each role's stop sequence, dependents first),
//! `watchdog.pid`, and `expired` or `finished` when the watchdog stopped the fleet.
//!
//! **The supervisor** of each process is a small `/bin/sh` that leads a session and process
//! group of its own (started as `setsid setsid /bin/sh -c ...`: the first `setsid` makes a
//! session leader, so the second must fork, and its parent returns at once; started that way,
//! and not with `&`, the command gets the default action for SIGINT, which a non-interactive
//! shell's `&` would have ignored). It traps HUP, INT, TERM and QUIT so that it outlives a
//! stop's signals until its command has ended, runs the command with its output in the files,
//! and writes the exit status. Only KILL ends it before then (a stop's last step): its process
//! group then has no `exit`, and the follower reports it `dead` (counted as killed).
//!
//! **The follower** is one channel per host (mawk, Debian's awk, gets `-W interactive`: it
//! would otherwise wait for a full buffer of input before reading a line): every 50 ms one `wc -c` over the run's output
//! files; an awk program compares the sizes with the offsets the controller already has and
//! prints the new bytes of every file that grew as frames (`\x02F PATH OFFSET LENGTH`, then
//! exactly LENGTH bytes), the exits it found (`\x02X DIR STATUS [SIGNAL]`, once every byte
//! before the exit was sent) and, every second, supervisors that vanished without an exit
//! (`\x02X DIR dead`). It holds no state the controller does not have: after a reconnect the
//! controller starts it again with its offsets, so no byte is lost or sent twice. It ends by
//! itself when its parent is gone (a local controller killed with SIGKILL) or the remote
//! directory was removed. The parent is looked up in `/proc`, not with `kill -0`: on
//! Dropbear it is the server's process, owned by root, which `kill -0` cannot probe.
//!
//! **The watchdog** (one per run and host, detached like a supervisor) checks every second
//! that the lease has not expired and, for a detached run, that its end has not come; else
//! it runs `stop.sh` (each role's stop sequence on the groups of that role that have not
//! exited), having noted why first (`expired` or `finished`), and exits. It also exits when the controller says the run is `done`.

use std::fmt::Write as _;
use std::time::Duration;

use super::shell::quote;

/// The prefix of every line the host-side scripts print for the controller.
pub(crate) const FRAME: u8 = 0x02;

/// The run's remote directory as a shell word: `~/x` and relative paths are taken from the
/// home directory, and the run id is appended so that two runs never share a directory.
pub(crate) fn dir_word(base: &str, run_id: &str) -> String {
    let base = base.trim_end_matches('/');
    let rel = base
        .strip_prefix("~/")
        .or_else(|| (base == "~").then_some(""));
    let joined = match rel {
        Some("") => run_id.to_string(),
        Some(r) => format!("{r}/{run_id}"),
        None if !base.starts_with('/') => format!("{base}/{run_id}"),
        None => return quote(&format!("{base}/{run_id}")),
    };
    format!("\"$HOME\"/{}", quote(&joined))
}

/// The default base of remote directories.
pub(crate) const DEFAULT_BASE: &str = "~/.sortie-runs";

/// The directory of attempt `attempt` of process `idx` of role `role`, relative to `R/p`.
pub(crate) fn proc_dir(role: usize, idx: usize, attempt: u32) -> String {
    format!("{role}/{idx}.{attempt}")
}

/// Parses a [`proc_dir`] back.
pub(crate) fn parse_proc_dir(dir: &str) -> Option<(usize, usize, u32)> {
    let (role, rest) = dir.split_once('/')?;
    let (idx, attempt) = rest.split_once('.')?;
    Some((role.parse().ok()?, idx.parse().ok()?, attempt.parse().ok()?))
}

/// The supervisor, as the text of `/bin/sh -c` (`$1`: its directory, `$2`: the command).
const SUPERVISOR: &str = "sortie_d=$1; trap 'sortie_t=1' HUP INT TERM QUIT; \
echo $$ > \"$sortie_d/pgid.t\" && mv -f \"$sortie_d/pgid.t\" \"$sortie_d/pgid\"; \
/bin/sh -c \"$2\" > \"$sortie_d/out\" 2> \"$sortie_d/err\" < /dev/null; \
sortie_s=$?; sortie_n=; \
[ \"$sortie_s\" -gt 128 ] && sortie_n=$(kill -l \"$sortie_s\" 2>/dev/null); \
printf '%s %s\\n' \"$sortie_s\" \"$sortie_n\" > \"$sortie_d/exit.t\" && mv -f \"$sortie_d/exit.t\" \"$sortie_d/exit\"";

/// `stop.sh`: with a role index as `$1`, stops that role's live groups; without, every role,
/// dependents first (`order`: role indexes in stop order, each with its steps).
pub(crate) fn stop_sh(order: &[(usize, Vec<(String, Duration)>)]) -> String {
    let mut s = String::from(
        "R=$(cd \"$(dirname \"$0\")\" && pwd)\n\
         groups() { P=; for d in \"$R\"/p/\"$1\"/*; do [ -d \"$d\" ] || continue; [ -e \"$d/exit\" ] && continue; \
         g=; read -r g < \"$d/pgid\" 2>/dev/null && P=\"$P $g\"; done; }\n",
    );
    for (role, steps) in order {
        let _ = writeln!(
            s,
            "role_{role}() {{ groups {role}; [ -n \"$P\" ] || return 0; {}; }}",
            super::shell::stop_sequence(steps)
        );
    }
    s.push_str("if [ -n \"$1\" ]; then role_$1; exit 0; fi\n");
    for (role, _) in order {
        let _ = writeln!(s, "role_{role}");
    }
    s.push_str("exit 0\n");
    s
}

/// The watchdog, as the text of `/bin/sh -c` (`$1`: the remote directory).
const WATCHDOG: &str = "R=$1; echo $$ > \"$R/watchdog.pid\"; \
while :; do \
[ -e \"$R/done\" ] && exit 0; \
now=$(date +%s); exp=0; read -r exp < \"$R/lease\" 2>/dev/null; why=; \
[ \"$now\" -ge \"${exp:-0}\" ] && why=expired; \
if [ -s \"$R/end\" ]; then end=; read -r end < \"$R/end\"; [ \"$now\" -ge \"${end:-0}\" ] && why=finished; fi; \
if [ -n \"$why\" ]; then echo \"$now\" > \"$R/$why\"; /bin/sh \"$R/stop.sh\" >/dev/null 2>&1; \
exit 0; fi; \
sleep 1; done";

/// Shell text that writes the lease: valid for `secs` seconds from now, host time.
fn lease_text(secs: u64) -> String {
    format!(
        "echo $(( $(date +%s) + {secs} )) > \"$R/lease.t\" && mv -f \"$R/lease.t\" \"$R/lease\""
    )
}

/// Creates the remote directory, writes the lease and `stop.sh`, and starts the watchdog.
/// Prints `\x02ok` or `\x02E reason`.
pub(crate) fn setup_script(dir: &str, lease: Duration, stop_sh: &str) -> String {
    format!(
        "R={dir}\n\
         command -v setsid >/dev/null 2>&1 || {{ printf '\\002E %s\\n' 'no setsid command on this host (util-linux or BusyBox has it)'; exit 0; }}\n\
         mkdir -p \"$R/p\" || {{ printf '\\002E cannot create %s\\n' \"$R\"; exit 0; }}\n\
         {}\n\
         cat > \"$R/stop.sh\" <<'SORTIE_EOF'\n{stop_sh}SORTIE_EOF\n\
         if ! {{ [ -s \"$R/watchdog.pid\" ] && read -r w < \"$R/watchdog.pid\" && kill -0 \"$w\" 2>/dev/null; }}; then\n\
         (exec setsid setsid /bin/sh -c {} sortie-watchdog \"$R\") </dev/null >/dev/null 2>&1\n\
         fi\n\
         printf '\\002ok\\n'\n",
        lease_text(lease.as_secs().max(1)),
        quote(WATCHDOG)
    )
}

/// Renews the lease. Prints `\x02ok`.
pub(crate) fn renew_script(dir: &str, lease: Duration) -> String {
    format!(
        "R={dir}; [ -d \"$R\" ] || exit 0; {}; printf '\\002ok\\n'",
        lease_text(lease.as_secs().max(1))
    )
}

/// Sets the time at which the watchdog stops the fleet by itself (`secs` from now) and a
/// lease that lasts `lease` beyond it.
pub(crate) fn detach_script(dir: &str, secs: u64, lease: Duration) -> String {
    format!(
        "R={dir}; echo $(( $(date +%s) + {secs} )) > \"$R/end\"; {}; printf '\\002ok\\n'",
        lease_text(secs + lease.as_secs().max(1))
    )
}

/// One process to start.
pub(crate) struct Start<'a> {
    pub idx: usize,
    pub attempt: u32,
    pub role: usize,
    pub command: &'a str,
    pub env: &'a [(String, String)],
}

/// The most bytes of one start script. A script reaches the host's `/bin/sh -c` as one
/// argument (see `transport::remote`), and Linux refuses an argument over 128 KiB
/// (`MAX_ARG_STRLEN`, "Argument list too long"): one script for a few hundred processes
/// failed every start of the host.
pub(crate) const START_SCRIPT_MAX: usize = 64 * 1024;

/// Splits `starts` into consecutive runs whose [`start_script`]s stay under
/// [`START_SCRIPT_MAX`] (a start too big on its own goes alone, and fails on the host).
pub(crate) fn start_batches(dir: &str, starts: &[Start<'_>]) -> Vec<std::ops::Range<usize>> {
    let head = start_script(dir, &[]).len();
    let mut out = Vec::new();
    let (mut from, mut size) = (0, head);
    for (i, st) in starts.iter().enumerate() {
        let cost = start_script(dir, std::slice::from_ref(st)).len() - head;
        if i > from && size + cost > START_SCRIPT_MAX {
            out.push(from..i);
            (from, size) = (i, head);
        }
        size += cost;
    }
    if from < starts.len() {
        out.push(from..starts.len());
    }
    out
}

/// Starts a batch of processes under their supervisors; prints `\x02S IDX ATTEMPT PGID` for
/// each that runs and `\x02E IDX ATTEMPT REASON` for each that could not start.
pub(crate) fn start_script(dir: &str, starts: &[Start<'_>]) -> String {
    let mut s = format!(
        "R={dir}\nsortie_sup={}\n\
         sortie_w() {{ i=0; while [ ! -s \"$1/pgid\" ] && [ $i -lt 300 ]; do sleep 0.01 2>/dev/null || sleep 1; i=$((i+1)); done; \
         if read -r g < \"$1/pgid\" 2>/dev/null; then printf '\\002S %s %s %s\\n' \"$2\" \"$3\" \"$g\"; \
         else printf '\\002E %s %s %s\\n' \"$2\" \"$3\" 'its supervisor did not start'; fi; }}\n",
        quote(SUPERVISOR)
    );
    for st in starts {
        let d = proc_dir(st.role, st.idx, st.attempt);
        let _ = write!(
            s,
            "mkdir -p \"$R/p/{d}\" && rm -f \"$R/p/{d}/pgid\" \"$R/p/{d}/exit\" && ("
        );
        for (k, v) in st.env {
            let _ = write!(s, "export {k}={}; ", quote(v));
        }
        let _ = writeln!(
            s,
            "exec setsid setsid /bin/sh -c \"$sortie_sup\" sortie-sup \"$R/p/{d}\" {}) </dev/null >/dev/null 2>&1 \
             || printf '\\002E %s %s %s\\n' {} {} 'cannot start its supervisor'",
            quote(st.command),
            st.idx,
            st.attempt
        );
    }
    for st in starts {
        let d = proc_dir(st.role, st.idx, st.attempt);
        let _ = writeln!(s, "sortie_w \"$R/p/{d}\" {} {}", st.idx, st.attempt);
    }
    s
}

/// The follower's awk program (see the module docs). Input: `I PATH OFFSET` lines first
/// (what the controller has), then per round `wc -c` lines, `D DIR` lines (supervisors gone)
/// and `R` (the round's end). `dd` is 1 when GNU dd can copy a byte range in one process.
const FOLLOW_AWK: &str = r#"
function q(s) { return "'" s "'" }
function flush_round(   cmd, f, d, n, k, o) {
  cmd = ""; k = 0
  for (f in sz) {
    o = off[f] + 0
    if (sz[f] > o && k < 300) {
      n = sz[f] - o; if (n > 1048576) n = 1048576
      cmd = cmd "printf '\\002F %s %d %d\\n' " q(f) " " o " " n "; "
      if (dd) cmd = cmd "dd if=" q(f) " iflag=skip_bytes,count_bytes skip=" o " count=" n " status=none; "
      else cmd = cmd "tail -c +" (o + 1) " " q(f) " | head -c " n "; "
      off[f] = o + n; k++
    }
  }
  for (d in pend) {
    if (pend[d] < r && off[d "/out"] + 0 >= sz[d "/out"] + 0 && off[d "/err"] + 0 >= sz[d "/err"] + 0) {
      cmd = cmd "printf '\\002X %s %s\\n' " q(d) " " q(st[d]) "; "
      done[d] = 1; delete pend[d]
    }
  }
  if (cmd != "") { system(cmd) }
  r++
}
function exit_line(d,   f, line) {
  f = d "/exit"; line = ""
  if ((getline line < f) > 0) { close(f); return line }
  close(f); return ""
}
$1 == "I" { if ($2 ~ /\/exit$/) done[substr($2, 1, length($2) - 5)] = 1; else off[$2] = $3 + 0; next }
$1 == "R" { flush_round(); next }
$1 == "D" {
  d = $2; if ((d in done) || (d in pend)) next
  line = exit_line(d)
  if (line == "") line = "dead"
  st[d] = line; pend[d] = r - 1; next
}
$2 == "total" || NF != 2 { next }
{
  f = $2
  if (f ~ /\/exit$/) {
    d = substr(f, 1, length(f) - 5)
    if ($1 + 0 > 0 && !(d in done) && !(d in pend)) { st[d] = exit_line(d); pend[d] = r }
    next
  }
  sz[f] = $1 + 0
}
"#;

/// The follower: streams every new byte of the run's output files and every exit, starting
/// from `known` (`(path under R/p, offset)`; a `DIR/exit` path marks an exit already seen).
pub(crate) fn follow_script(dir: &str, known: &[(String, u64)]) -> String {
    let mut s = format!(
        "R={dir}\ncd \"$R/p\" 2>/dev/null || {{ printf '\\002E %s\\n' 'the remote directory is gone'; exit 0; }}\n\
         dd=0; dd if=/dev/null iflag=skip_bytes,count_bytes status=none 2>/dev/null && dd=1\n\
         aw=awk; case $(awk -W version 2>&1 </dev/null) in *mawk*) aw='awk -W interactive' ;; esac\n\
         {{\ncat <<'SORTIE_EOF'\n"
    );
    for (path, off) in known {
        let _ = writeln!(s, "I {path} {off}");
    }
    s.push_str(
        "SORTIE_EOF\n\
         n=0; sortie_parent=$PPID\n\
         while :; do\n\
         { [ ! -d /proc/self ] || [ -d \"/proc/$sortie_parent\" ]; } && [ -d \"$R/p\" ] || exit 0\n\
         wc -c -- */*/out */*/err */*/exit 2>/dev/null\n\
         n=$((n+1))\n\
         if [ $((n % 20)) = 0 ]; then for d in */*; do [ -e \"$d/exit\" ] && continue; [ -s \"$d/pgid\" ] || continue; \
         read -r g < \"$d/pgid\"; kill -0 \"$g\" 2>/dev/null || echo \"D $d\"; done; fi\n\
         echo R\n\
         sleep 0.05 2>/dev/null || sleep 1\n\
         done\n} | LC_ALL=C $aw -v dd=\"$dd\" ",
    );
    s.push_str(&quote(FOLLOW_AWK));
    s.push('\n');
    s
}

/// Per process directory of the run: `DIR STATE` where STATE is `exit STATUS [SIGNAL]`,
/// `alive PGID` or `dead`.
pub(crate) fn status_script(dir: &str) -> String {
    format!(
        "R={dir}; cd \"$R/p\" 2>/dev/null || {{ printf '\\002E %s\\n' 'no such run on this host'; exit 0; }}\n\
         for d in */*; do [ -d \"$d\" ] || continue; \
         if [ -e \"$d/exit\" ]; then read -r x < \"$d/exit\"; echo \"$d exit $x\"; \
         elif g=; read -r g < \"$d/pgid\" 2>/dev/null && kill -0 \"$g\" 2>/dev/null; then echo \"$d alive $g\"; \
         else echo \"$d dead\"; fi; done\n\
         for w in expired finished; do [ -e \"$R/$w\" ] && echo \"watchdog $w\"; done; exit 0\n"
    )
}

/// Stops one role's live groups on this host with `stop.sh`.
#[cfg(test)]
pub(crate) fn stop_role_script(dir: &str, role: usize) -> String {
    format!("R={dir}; [ -f \"$R/stop.sh\" ] && /bin/sh \"$R/stop.sh\" {role}; exit 0")
}

/// Ends the run on this host: the watchdog exits, and the directory is removed unless `keep`.
pub(crate) fn finish_script(dir: &str, keep: bool) -> String {
    let mut s = format!(
        "R={dir}; [ -d \"$R\" ] || exit 0; : > \"$R/done\"; \
         w=; read -r w < \"$R/watchdog.pid\" 2>/dev/null && kill \"$w\" 2>/dev/null; "
    );
    if !keep {
        s.push_str("cd / && rm -rf -- \"$R\"; ");
    }
    s.push_str("exit 0");
    s
}

/// Parses an exit line (`STATUS [SIGNAL]` or `dead`) into the transport's terms.
pub(crate) fn parse_exit(text: &str) -> crate::transport::Exit {
    use crate::transport::Exit;
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some("dead"), _) => Exit::Signal {
            name: "KILL".into(),
            core_dumped: false,
        },
        (Some(_), Some(sig)) => Exit::Signal {
            name: sig.to_string(),
            core_dumped: false,
        },
        (Some(code), None) => code.parse().map_or(Exit::NoStatus, Exit::Code),
        _ => Exit::NoStatus,
    }
}

#[cfg(test)]
mod tests;
