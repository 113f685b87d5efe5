//! The sampler: a host's and its launched process groups' resource use, read from `/proc` by a
//! POSIX sh + awk script over the host's existing connection (nothing installed on the host).
//!
//! Owns the script ([`script`]), the parser of its output ([`parse`]), the arithmetic that turns
//! two readings into [`HostSample`] and [`ProcessSample`] events ([`Deltas`]: CPU fractions and
//! network bytes are differences between readings, on the host's own clock, `/proc/uptime`), and
//! [`run_sampler`], the task that runs the script every `interval` and sends the events into a
//! channel. It decides nothing about the launch and never writes the run record: whoever owns
//! the event stream (the engine) records and forwards what it sends.
//!
//! A process group's numbers are sums over its live processes (`/proc/PID/stat`: `utime` +
//! `stime`, `rss`, `num_threads`); memory shared between processes of a group counts once per
//! process, as `ps` and `top` count it. Processes that ended take their CPU time with them, so
//! a group's `cpu_seconds` can go down; its `cpu_cores` is then taken as zero for that interval.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::event::{LaunchEvent, ProcessRef};
use crate::transport::{Command, Connection, Exit, ProcessEvent, SpawnError};
use sortie_events::launch::{HostSample, ProcessSample};

/// The first line of the script's output, naming its format's version.
const HEADER: &str = "sortie-sample 1";

/// The sampling script for the process groups `pgids`: prints one `key values...` line per
/// reading (`up`, `hz`, `page`, `cpu`, `ncpu`, `load`, `mem`, `net`), one `g PGID TICKS
/// RSS_PAGES THREADS PROCS` line per group with live processes, then `end`. POSIX sh and awk
/// only (checked with dash, BusyBox ash and mawk).
pub(crate) fn script(pgids: &[u32]) -> String {
    let mut want = String::from(" ");
    for p in pgids {
        let _ = write!(want, "{p} ");
    }
    format!(
        r#"LC_ALL=C; export LC_ALL
echo '{HEADER}'
read -r up _ < /proc/uptime; echo "up $up"
echo "hz $(getconf CLK_TCK 2>/dev/null || echo 100)"
echo "page $(getconf PAGESIZE 2>/dev/null || echo 4096)"
awk '/^cpu / {{ print "cpu", $2, $3, $4, $5, $6, $7, $8, $9 }} /^cpu[0-9]/ {{ n++ }} END {{ print "ncpu", n }}' /proc/stat
read -r l1 l5 l15 _ < /proc/loadavg; echo "load $l1 $l5 $l15"
awk '/^MemTotal:/ {{ t = $2 }} /^MemAvailable:/ {{ a = $2 }} END {{ print "mem", t, a }}' /proc/meminfo
awk 'NR > 2 {{ sub(/:/, " "); if ($1 != "lo") {{ rx += $2; tx += $10 }} }} END {{ printf "net %.0f %.0f\n", rx, tx }}' /proc/net/dev
want='{want}'
if [ "$want" != ' ' ]; then
cat /proc/[0-9]*/stat 2>/dev/null | awk -v want="$want" '{{
  s = $0; sub(/^.*\) /, "", s); split(s, f, " "); g = f[3]
  if (index(want, " " g " ") == 0) next
  t[g] += f[12] + f[13]; r[g] += f[22]; th[g] += f[18]; c[g]++
}} END {{ for (g in c) printf "g %s %.0f %.0f %.0f %d\n", g, t[g], r[g], th[g], c[g] }}'
fi
echo end
"#
    )
}

/// One reading of the script, as counters (not yet differences).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Reading {
    /// Seconds since the host booted (`/proc/uptime`): the host's clock.
    pub uptime: f64,
    /// Clock ticks per second (`CLK_TCK`).
    pub hz: f64,
    /// Page size in bytes.
    pub page: u64,
    /// `/proc/stat`'s `cpu` line: user nice system idle iowait irq softirq steal, in ticks.
    pub cpu: [u64; 8],
    /// CPUs.
    pub ncpu: u32,
    /// Load averages.
    pub load: [f64; 3],
    /// `MemTotal` and `MemAvailable`, in bytes.
    pub mem_total: u64,
    /// `MemAvailable`, in bytes.
    pub mem_available: u64,
    /// Bytes received and sent since boot over every interface but `lo`.
    pub net: (u64, u64),
    /// Per process group: (CPU ticks, RSS bytes, threads, processes).
    pub groups: HashMap<u32, (u64, u64, u32, u32)>,
}

/// Parses the script's output. Fails (with what was wrong) on output that is not the script's
/// or that was cut short (no `end` line).
pub(crate) fn parse(text: &str) -> Result<Reading, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(HEADER) {
        return Err(format!("not the sampler's output: {:.80}", text.trim()));
    }
    let mut r = Reading::default();
    let mut pages: Vec<(u32, (u64, u64, u32, u32))> = Vec::new();
    let mut ended = false;
    for line in lines {
        let mut w = line.split_whitespace();
        let key = w.next().unwrap_or("");
        let v: Vec<&str> = w.collect();
        let bad = || format!("bad sampler line {line:?}");
        let num = |i: usize| -> Result<f64, String> {
            v.get(i).and_then(|s| s.parse::<f64>().ok()).ok_or_else(bad)
        };
        let int = |i: usize| -> Result<u64, String> { num(i).map(|f| f.max(0.0) as u64) };
        match key {
            "up" => r.uptime = num(0)?,
            "hz" => r.hz = num(0)?,
            "page" => r.page = int(0)?,
            "cpu" => {
                for (i, c) in r.cpu.iter_mut().enumerate() {
                    *c = int(i)?;
                }
            }
            "ncpu" => r.ncpu = int(0)? as u32,
            "load" => r.load = [num(0)?, num(1)?, num(2)?],
            "mem" => (r.mem_total, r.mem_available) = (int(0)? * 1024, int(1)? * 1024),
            "net" => r.net = (int(0)?, int(1)?),
            "g" => pages.push((
                int(0)? as u32,
                (int(1)?, int(2)?, int(3)? as u32, int(4)? as u32),
            )),
            "end" => ended = true,
            _ => return Err(bad()),
        }
    }
    if !ended {
        return Err("the sampler's output was cut short".into());
    }
    if r.hz <= 0.0 {
        return Err("the sampler read no clock-tick rate".into());
    }
    r.groups = (pages.into_iter())
        .map(|(g, (t, rss, th, n))| (g, (t, rss * r.page, th, n)))
        .collect();
    Ok(r)
}

/// Turns successive readings of one host into events: keeps the previous reading, and each
/// group's previous CPU ticks with the uptime they were read at.
#[derive(Debug, Default)]
pub(crate) struct Deltas {
    prev: Option<Reading>,
    groups: HashMap<u32, (u64, f64)>,
}

impl Deltas {
    /// The events of reading `r` of `host`, taken `at_ms` after the launch began, for the
    /// process groups `groups` (pgid and the process it belongs to). The host's first reading
    /// is a baseline: it gives process samples (without `cpu_cores`) but no host sample.
    pub(crate) fn next(
        &mut self,
        host: &str,
        r: Reading,
        at_ms: u64,
        groups: &[(u32, ProcessRef)],
    ) -> Vec<LaunchEvent> {
        let mut out = Vec::new();
        if let Some(p) = &self.prev {
            if r.uptime > p.uptime {
                out.push(LaunchEvent::HostSample(host_sample(host, p, &r, at_ms)));
            }
        }
        let mut seen = HashMap::new();
        for (pgid, process) in groups {
            let Some(&(ticks, rss, threads, procs)) = r.groups.get(pgid) else {
                continue;
            };
            let cpu_cores = self.groups.get(pgid).and_then(|&(t0, up0)| {
                let dt = r.uptime - up0;
                (dt > 0.0).then(|| ticks.saturating_sub(t0) as f64 / r.hz / dt)
            });
            seen.insert(*pgid, (ticks, r.uptime));
            out.push(LaunchEvent::ProcessSample(ProcessSample {
                process: process.clone(),
                pgid: *pgid,
                at_ms,
                cpu_seconds: ticks as f64 / r.hz,
                cpu_cores,
                rss_bytes: rss,
                threads,
                procs,
            }));
        }
        self.groups = seen;
        self.prev = Some(r);
        out
    }
}

/// The host sample between readings `p` and `r`.
fn host_sample(host: &str, p: &Reading, r: &Reading, at_ms: u64) -> HostSample {
    let d: Vec<u64> = (r.cpu.iter().zip(&p.cpu))
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let total = d.iter().sum::<u64>().max(1) as f64;
    let frac = |v: u64| v as f64 / total;
    HostSample {
        host: host.to_string(),
        at_ms,
        interval_ms: ((r.uptime - p.uptime) * 1000.0).round() as u64,
        cpus: r.ncpu,
        cpu_user: frac(d[0] + d[1]),
        cpu_system: frac(d[2] + d[5] + d[6]),
        cpu_iowait: frac(d[4]),
        cpu_steal: frac(d[7]),
        load1: r.load[0],
        load5: r.load[1],
        load15: r.load[2],
        mem_available_bytes: r.mem_available,
        mem_total_bytes: r.mem_total,
        net_rx_bytes: r.net.0.saturating_sub(p.net.0),
        net_tx_bytes: r.net.1.saturating_sub(p.net.1),
    }
}

/// Runs the sampling script once on `conn` and returns its standard output.
pub(crate) async fn read_once(conn: &dyn Connection, pgids: &[u32]) -> Result<String, SpawnError> {
    let mut p = conn.spawn(&Command::new(script(pgids))).await?;
    let mut out = Vec::new();
    while let Some(ev) = p.events.recv().await {
        match ev {
            ProcessEvent::Stdout(b) => out.extend_from_slice(&b),
            ProcessEvent::Stderr(_) => {}
            ProcessEvent::Exit(Exit::Lost(m)) => return Err(SpawnError::Lost(m)),
            ProcessEvent::Exit(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// What [`run_sampler`] samples and where its events go.
pub(crate) struct Sampler {
    /// Host label, as in the events.
    pub host: String,
    /// Time between readings (not zero).
    pub interval: Duration,
    /// The launch's start, for the events' `at_ms`.
    pub started: Instant,
    /// The launched process groups alive on the host (pgid and process), kept current by the
    /// engine (add on `ProcessStarted`, remove when the attempt ended).
    pub groups: watch::Receiver<Vec<(u32, ProcessRef)>>,
    /// Where the events go (the engine records and forwards them).
    pub tx: mpsc::Sender<LaunchEvent>,
}

/// Samples one host every `interval` over `conn` until `cancel` is cancelled, the connection
/// is lost or the receiver is gone. A reading that fails (a refused channel, odd output) is
/// skipped with a debug message; the next one tries again.
pub(crate) async fn run_sampler(conn: Arc<dyn Connection>, s: Sampler, cancel: CancellationToken) {
    let mut deltas = Deltas::default();
    let mut tick = tokio::time::interval(s.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if conn.is_closed() {
            return;
        }
        let groups = s.groups.borrow().clone();
        let pgids: Vec<u32> = groups.iter().map(|(g, _)| *g).collect();
        let text = tokio::select! {
            _ = cancel.cancelled() => return,
            r = read_once(conn.as_ref(), &pgids) => r,
        };
        let reading = match text {
            Ok(t) => parse(&t),
            Err(SpawnError::Lost(_)) => return,
            Err(e) => Err(e.to_string()),
        };
        match reading {
            Ok(r) => {
                let at_ms = s.started.elapsed().as_millis() as u64;
                for ev in deltas.next(&s.host, r, at_ms, &groups) {
                    if s.tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!("{}: sample skipped: {e}", s.host),
        }
    }
}

#[cfg(test)]
mod tests;
