//! The process table of "the host" (this machine, read from `/proc`): finding processes that
//! were started through a fixture sshd, and the process trees the fixtures must signal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One live process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Short command name (`/proc/PID/comm`), e.g. `sshd`, `sleep`.
    pub comm: String,
    /// Arguments joined with single spaces.
    pub cmdline: String,
}

/// Snapshot of every process readable in `/proc`. Zombies (empty command line) are left out.
pub(crate) fn snapshot() -> HashMap<u32, Process> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let mut rest = stat[close + 1..].split_whitespace();
        let _state = rest.next();
        let Some(ppid) = rest.next().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        out.insert(
            pid,
            Process {
                pid,
                ppid,
                comm,
                cmdline,
            },
        );
    }
    out
}

/// Every descendant of `root` (not `root` itself) in `table`.
pub(crate) fn descendants(table: &HashMap<u32, Process>, root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in table.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                if k != root && !out.contains(&k) {
                    out.push(k);
                    stack.push(k);
                }
            }
        }
    }
    out
}

/// Processes whose command line contains `marker`, except the calling process. Includes the
/// caller's own children (local processes); see [`remote_processes`] to leave those out.
pub fn processes_matching(marker: &str) -> Vec<Process> {
    let me = std::process::id();
    let mut v: Vec<Process> = snapshot()
        .into_values()
        .filter(|p| p.pid != me && p.cmdline.contains(marker))
        .collect();
    v.sort_by_key(|p| p.pid);
    v
}

/// Processes on "the host" (this machine) whose command line contains `marker` and that run
/// on the *remote* side: `(pid, cmdline)`.
///
/// A matching process counts as remote unless it is the caller or descends from the caller
/// without an SSH server (`sshd`, `dropbear`) in between. So the local `ssh`/`sortie` client whose arguments carry the
/// marker is left out, while commands started by a fixture sshd (which is itself a child of
/// the test) are in, and so are orphans whose sshd is gone (re-parented to init). Tests use it
/// to prove that no remote process survived a run; choose a marker unique to the test.
pub fn remote_processes(marker: &str) -> Vec<(u32, String)> {
    let table = snapshot();
    let me = std::process::id();
    let mut out: Vec<(u32, String)> = table
        .values()
        .filter(|p| p.pid != me && p.cmdline.contains(marker))
        .filter(|p| {
            let mut cur = p.ppid;
            for _ in 0..table.len() + 1 {
                if cur == me {
                    return false;
                }
                match table.get(&cur) {
                    Some(parent) if is_server(&parent.comm) => return true,
                    Some(parent) if parent.pid > 1 => cur = parent.ppid,
                    _ => return true,
                }
            }
            true
        })
        .map(|p| (p.pid, p.cmdline.clone()))
        .collect();
    out.sort();
    out
}

/// An SSH server's process name: OpenSSH's `sshd` (and `sshd-session` since 9.8) or Dropbear.
fn is_server(comm: &str) -> bool {
    matches!(comm, "sshd" | "sshd-session" | "dropbear")
}

/// Polls [`remote_processes`] until none is left or `timeout` passes; returns the survivors
/// (empty on success). Cleanup over SSH is asynchronous, so tests wait a little before
/// declaring a leak.
pub fn wait_for_no_remote_processes(marker: &str, timeout: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = remote_processes(marker);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` to `pid`, ignoring processes that are already gone.
pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Stops (`SIGSTOP`) the tree under `root` (including it) until no new process appears, so
/// that nothing forks while it is being signalled; returns the frozen pids, root first.
pub(crate) fn freeze_tree(root: u32) -> Vec<u32> {
    let mut frozen = vec![root];
    signal(root, libc::SIGSTOP);
    for _ in 0..50 {
        let table = snapshot();
        let new: Vec<u32> = descendants(&table, root)
            .into_iter()
            .filter(|p| !frozen.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for &p in &new {
            signal(p, libc::SIGSTOP);
        }
        frozen.extend(new);
    }
    frozen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_children_are_not_remote_but_are_matching() {
        let marker = format!("testkit-local-{}", std::process::id());
        let mut child = std::process::Command::new("sh")
            .args(["-c", &format!("sleep 30 # {marker}")])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let matching = processes_matching(&marker);
        let remote = remote_processes(&marker);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matching.iter().any(|p| p.pid == child.id()), "{matching:?}");
        assert!(remote.is_empty(), "{remote:?}");
    }

    #[test]
    fn freeze_then_kill_takes_the_whole_tree() {
        let marker = format!("testkit-tree-{}", std::process::id());
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("sh -c 'sleep 30 # {marker}' & sleep 30 # {marker}"),
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let pids = freeze_tree(child.id());
        assert!(pids.len() >= 3, "{pids:?}");
        for &p in &pids {
            signal(p, libc::SIGKILL);
        }
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(processes_matching(&marker).is_empty());
    }
}
