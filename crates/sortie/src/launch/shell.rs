//! The POSIX shell text a launch sends to hosts: the process command (fresh directory, links,
//! then the plan's command), and the scripts that stop, kill and look for process groups.
//!
//! Owns quoting of plan paths (`~/` is the remote home, relative paths start from the login
//! directory) and the bulk scripts that handle every process group of a host in one channel,
//! so that stopping 100 processes on a host with OpenSSH's `MaxSessions = 10` needs one
//! channel, not 100. Pure text; nothing here runs anything.

use std::fmt::Write as _;
use std::time::Duration;

use sortie_plan::launch::ProcessSpec;

pub(crate) use crate::transport::remote::quote;

/// A plan path as a shell word: `~` and `~/x` become `"$HOME"/x`; a relative path is taken
/// from `base` (a shell variable holding the login directory) when `base` is given.
pub(crate) fn path_word(p: &str, base: Option<&str>) -> String {
    if p == "~" {
        return "\"$HOME\"".into();
    }
    if let Some(rest) = p.strip_prefix("~/") {
        return format!("\"$HOME\"/{}", quote(rest));
    }
    match base {
        Some(var) if !p.starts_with('/') => format!("\"${var}\"/{}", quote(p)),
        _ => quote(p),
    }
}

/// The command line that runs `spec` on its host: create and enter its fresh directory (with
/// its links) or enter its working directory, then `exec` the plan's command, so that the
/// process group's leader lives exactly as long as the command.
pub(crate) fn process_command(spec: &ProcessSpec) -> String {
    let mut s = String::new();
    if let Some(fresh) = &spec.fresh_dir {
        let dir = path_word(&fresh.path, None);
        s.push_str("sortie_base=$(pwd) && ");
        let _ = write!(s, "rm -rf -- {dir} && mkdir -p -- {dir} && cd -- {dir}");
        for (name, target) in &fresh.links {
            let _ = write!(
                s,
                " && ln -sfn -- {} {}",
                path_word(target, Some("sortie_base")),
                quote(name)
            );
        }
        s.push_str(" || exit 126; ");
    } else if let Some(dir) = &spec.cwd {
        let d = path_word(dir, None);
        let _ = write!(s, "cd -- {d} || exit 126; ");
    }
    if is_simple(&spec.command) {
        // The program itself becomes the group leader, so a stop waits for it, not for a
        // shell that a signal may end before its child finished cleaning up.
        let _ = write!(s, "exec {}", spec.command.trim());
    } else {
        let _ = write!(s, "exec /bin/sh -c {}", quote(&spec.command));
    }
    s
}

/// A command `exec` can take as written: one simple command, no assignment prefix, no
/// operators, redirections, substitutions or reserved words.
fn is_simple(cmd: &str) -> bool {
    let first = cmd.split_whitespace().next().unwrap_or("");
    !first.is_empty()
        && !first.contains('=')
        && !matches!(
            first,
            "if" | "for" | "while" | "until" | "case" | "{" | "!" | "exec" | "[[" | "function"
        )
        && !cmd.contains(|c: char| ";&|<>()$`\\\n#*?~".contains(c))
}

fn pgid_list(pgids: &[u32]) -> String {
    pgids
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Stops every process group of `pgids` together: each step sends its signal to every group,
/// then waits (50 ms polls) until every group leader is gone (or a zombie, read from
/// `/proc` where there is one) or the grace ends; finally every
/// group gets KILL (which also ends watchdogs and stragglers). Exits 0, prints nothing.
pub(crate) fn stop_script(pgids: &[u32], steps: &[(String, Duration)]) -> String {
    format!("P='{}'; {}; exit 0", pgid_list(pgids), stop_sequence(steps))
}

/// The stop sequence over the process groups in `$P`: each signal to every group, then up to
/// its grace for them to end (polled every 50 ms; zombies count as ended), then KILL. Shared
/// by the controller's stop scripts and the host-side `stop.sh`.
pub(crate) fn stop_sequence(steps: &[(String, Duration)]) -> String {
    let mut s = String::from(
        "alive() { for p in $P; do kill -0 \"$p\" 2>/dev/null || continue; s=; \
         read -r s 2>/dev/null < /proc/\"$p\"/stat; case $s in *') Z '*) continue ;; esac; return 0; done; return 1; }; ",
    );
    for (signal, grace) in steps {
        let polls = (grace.as_millis() / 50).max(1);
        let _ = write!(
            s,
            "for p in $P; do kill -{signal} -\"$p\" 2>/dev/null; done; i=0; \
             while alive && [ $i -lt {polls} ]; do sleep 0.05; i=$((i+1)); done; "
        );
    }
    s.push_str("for p in $P; do kill -KILL -\"$p\" 2>/dev/null; done");
    s
}

/// Sends KILL to every group of `pgids`.
pub(crate) fn kill_script(pgids: &[u32]) -> String {
    format!(
        "for p in {}; do kill -KILL -\"$p\" 2>/dev/null; done; exit 0",
        pgid_list(pgids)
    )
}

/// Prints, one per line, the groups of `pgids` that still have a live (non-zombie) process.
/// Uses `ps` when it can list process groups, else `kill -0` (which also counts zombies).
pub(crate) fn survivors_script(pgids: &[u32]) -> String {
    let list = pgid_list(pgids);
    format!(
        "if ps -eo pgid=,stat= >/dev/null 2>&1; then \
         ps -eo pgid=,stat= | awk -v want=' {list} ' '$2 !~ /^Z/ && index(want, \" \" $1 \" \") {{ print $1 }}' | sort -u; \
         else for p in {list}; do kill -0 -\"$p\" 2>/dev/null && echo \"$p\"; done; fi; exit 0"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str) -> (String, i32) {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    #[test]
    fn paths_expand_home_and_base_but_quote_the_rest() {
        assert_eq!(path_word("~/a b/c", None), "\"$HOME\"/'a b/c'");
        assert_eq!(path_word("rel/x", Some("b")), "\"$b\"/rel/x");
        assert_eq!(path_word("/abs/x", Some("b")), "/abs/x");
        let (out, _) = sh(&format!("printf %s {}", path_word("~/it's", None)));
        assert_eq!(out, format!("{}/it's", std::env::var("HOME").unwrap()));
    }

    #[test]
    fn process_command_creates_fresh_dir_with_links_and_execs() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("frames"), "data").unwrap();
        let wd = tmp.path().display().to_string();
        let spec = ProcessSpec {
            id: sortie_plan::launch::ProcessId("m/ch 1".into()),
            role: "m".into(),
            key: "ch 1".into(),
            instance: 1,
            seq: 1,
            values: vec![],
            host: "local".into(),
            slot: 1,
            command: "cat frames; pwd".into(),
            env: vec![],
            cwd: Some(format!("{wd}/.sortie/m/ch_1")),
            fresh_dir: Some(sortie_plan::launch::FreshDir {
                path: format!("{wd}/.sortie/m/ch_1"),
                links: vec![("frames".into(), format!("{wd}/frames"))],
            }),
            depends_on: sortie_plan::launch::DependsOn::Nothing,
            start_offset: Duration::ZERO,
        };
        // a stale file from a previous run disappears
        std::fs::create_dir_all(tmp.path().join(".sortie/m/ch_1")).unwrap();
        std::fs::write(tmp.path().join(".sortie/m/ch_1/stale"), "x").unwrap();
        let (out, code) = sh(&process_command(&spec));
        assert_eq!(code, 0);
        assert_eq!(out, format!("data{wd}/.sortie/m/ch_1\n"));
        assert!(!tmp.path().join(".sortie/m/ch_1/stale").exists());
    }

    #[test]
    fn stop_script_signals_in_order_then_kills() {
        let s = stop_script(
            &[11, 12],
            &[
                ("INT".into(), Duration::from_secs(2)),
                ("TERM".into(), Duration::from_millis(100)),
            ],
        );
        let int = s.find("kill -INT").unwrap();
        let term = s.find("kill -TERM").unwrap();
        let kill = s.find("kill -KILL").unwrap();
        assert!(int < term && term < kill);
        assert!(s.contains("P='11 12'"));
        assert!(s.contains("[ $i -lt 40 ]"));
    }

    #[test]
    fn survivors_script_lists_live_groups_only() {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("sleep 30")
            .process_group(0)
            .spawn()
            .unwrap();
        use std::os::unix::process::CommandExt as _;
        let live = child.id();
        let (out, _) = sh(&survivors_script(&[live, 999_999]));
        assert_eq!(out.trim(), live.to_string());
        let (_, code) = sh(&kill_script(&[live]));
        assert_eq!(code, 0);
        child.wait().unwrap();
        let (out, _) = sh(&survivors_script(&[live]));
        assert_eq!(out.trim(), "");
    }
}
