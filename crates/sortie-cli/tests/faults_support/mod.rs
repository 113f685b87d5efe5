//! Shared helpers of the `faults_*` tests: run the real `sortie` binary, watch it (elapsed
//! time, peak memory, JSON events as they arrive), interrupt it, and read its summary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest a whole run may take before the tests call it a hang. Generous because every
/// remote command starts the login shell, and on the shared CI machine root's ~/.bashrc can
/// wait up to 60 s on pyenv's rehash lock; fault *detection* times are asserted separately,
/// with tight bounds, from the JSON events.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// `sortie` with no agent and no colour.
pub fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("SSH_AUTH_SOCK")
        .env_remove("SORTIE_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// The fixture sshd, or `None` after a visible skip when OpenSSH is not installed.
pub fn sshd_or_skip(test: &str) -> Option<sortie_testkit::Sshd> {
    if sortie_testkit::require_sshd().is_none() {
        sortie_testkit::skip(
            test,
            "OpenSSH sshd is not installed (scripts/test.sh installs it as root)",
        );
        return None;
    }
    Some(sortie_testkit::Sshd::start().expect("fixture sshd starts"))
}

/// A fleet of `n` hosts in network namespaces, or `None` after a visible skip saying why.
/// Every host's sshd probes its client every second (`ClientAliveInterval 1`, 3 misses), so
/// server-side sessions of a cut client also end quickly.
pub fn fleet_or_skip(test: &str, n: usize) -> Option<sortie_testkit::NetnsFleet> {
    if let Some(why) = sortie_testkit::netns_unavailable() {
        sortie_testkit::skip(test, &why);
        return None;
    }
    Some(
        sortie_testkit::NetnsFleet::start_with(n, |b| b.client_alive(1, 3))
            .expect("network namespace fleet starts"),
    )
}

/// What a finished `sortie` did.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit.
    pub elapsed: Duration,
    /// Peak resident memory (VmHWM) of the sortie process, in KiB, as last seen in /proc.
    pub peak_rss_kib: u64,
    /// stdout lines with the time (since spawn) each one arrived.
    pub lines: Vec<(Duration, String)>,
}

impl Finished {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Parsed JSON events (for `--json` runs), in order.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// When (since spawn) the first stdout line containing `needle` arrived.
    pub fn first_line_at(&self, needle: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    /// When (since spawn) the `host_failed` JSON event of `host` arrived, and its `failure`.
    pub fn host_failed_at(&self, host: &str) -> Option<(Duration, String)> {
        self.lines.iter().find_map(|(t, l)| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["event"] == "host_failed" && v["host"] == host)
                .then(|| (*t, v["failure"].as_str().unwrap_or_default().to_owned()))
        })
    }

    /// Everything the user saw, for assertion messages.
    pub fn shown(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status.code(),
            self.elapsed,
            tail(&self.stdout, 4000),
            tail(&self.stderr, 4000)
        )
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A running `sortie`, watched from threads: stdout lines (timestamped), stderr, peak memory.
pub struct Running {
    pub child: Child,
    pub started: Instant,
    lines: mpsc::Receiver<(Duration, String)>,
    collected: Vec<(Duration, String)>,
    stderr: std::thread::JoinHandle<String>,
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop_poll: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Spawns `cmd` with piped output and starts watching it.
pub fn spawn(cmd: &mut Command) -> Running {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sortie starts");
    let out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send((started.elapsed(), line)).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let peak = Arc::new(AtomicU64::new(0));
    let stop_poll = Arc::new(AtomicBool::new(false));
    {
        let (peak, stop, pid) = (Arc::clone(&peak), Arc::clone(&stop_poll), child.id());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = vm_hwm_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    }
    Running {
        child,
        started,
        lines: rx,
        collected: Vec::new(),
        stderr,
        peak,
        stop_poll,
    }
}

/// `VmHWM` (peak resident set) of `pid` in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Running {
    /// Waits (up to `within`) for a stdout line containing `needle`; returns when it came.
    pub fn wait_line(&mut self, needle: &str, within: Duration) -> Option<Duration> {
        self.wait_for(|l| l.contains(needle), within)
    }

    /// Waits (up to `within`) for the `host_failed` JSON event of `host`; returns when it came
    /// (since spawn).
    pub fn wait_host_failed(&mut self, host: &str, within: Duration) -> Option<Duration> {
        let host = format!("\"host\":\"{host}\"");
        self.wait_for(
            |l| l.contains("\"host_failed\"") && l.contains(&host),
            within,
        )
    }

    /// Waits (up to `within`) for a stdout line that satisfies `pred`; returns when it came.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, within: Duration) -> Option<Duration> {
        if let Some((t, _)) = self.collected.iter().find(|(_, l)| pred(l)) {
            return Some(*t);
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => {
                    let hit = pred(&l);
                    self.collected.push((t, l));
                    if hit {
                        return Some(t);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Sends `SIGINT`, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        self.signal(2);
    }

    /// Sends signal number `sig` to sortie (15: `timeout`, `systemctl stop`; 1: a closed
    /// terminal).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { kill(self.child.id() as i32, sig) };
    }

    /// Waits for the exit, at most `limit` (then kills sortie and fails the test).
    pub fn finish(mut self, limit: Duration) -> Finished {
        use std::sync::atomic::Ordering;
        let deadline = self.started + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for sortie") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.stop_poll.store(true, Ordering::Relaxed);
                let err = self.stderr.join().unwrap_or_default();
                panic!(
                    "sortie still running after {limit:?} (hang); killed\n--- stderr ---\n{}",
                    tail(&err, 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        self.stop_poll.store(true, Ordering::Relaxed);
        let stderr = self.stderr.join().unwrap_or_default();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.collected.push(l);
        }
        let stdout = self
            .collected
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        Finished {
            status,
            stdout,
            stderr,
            elapsed,
            peak_rss_kib: self.peak.load(Ordering::Relaxed),
            lines: self.collected,
        }
    }
}

/// Runs `cmd` to completion (at most `limit`).
pub fn run(cmd: &mut Command, limit: Duration) -> Finished {
    spawn(cmd).finish(limit)
}

/// The summary lines of stderr that start with `label:` (e.g. `unreachable:`; one line per
/// distinct reason), joined with newlines, or `None` when there is none.
pub fn summary_line(stderr: &str, label: &str) -> Option<String> {
    let prefix = format!("{label}:");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with(&prefix))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Records a measured bound in `target/fault-timings.log` (when `$SORTIE_FAULT_LOG` is set)
/// and on stderr, so docs/reliability.md can quote real numbers.
pub fn record(scenario: &str, measured: Duration, bound: Duration) {
    let line = format!(
        "{scenario}: {:.2} s (bound {:.1} s)",
        measured.as_secs_f64(),
        bound.as_secs_f64()
    );
    eprintln!("TIMING {line}");
    sortie_testkit::append_to_log("SORTIE_FAULT_LOG", &line);
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
