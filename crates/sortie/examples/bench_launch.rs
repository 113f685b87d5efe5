//! Benchmark of `sortie launch` under host-side supervision: by default 10,000 long-lived
//! processes over 20 loopback hosts of one fixture sshd (500 per host, OpenSSH's default
//! `MaxSessions` 10, no rate limit). Not a test: it prints figures and asserts nothing.
//!
//! ```text
//! cargo run --release -p sortie --example bench_launch [-- --hosts 20 --per-host 500 --hold 10]
//!     [--max-sessions N] [--reconnect-host K] [--local] [--trace]
//! ```
//!
//! Each stand-in prints `ready <epoch-ns>` (`date +%s%N`) first. The processes of host K
//! (`--reconnect-host`, default 1, the first; 0: no reconnect) then print `tick N` every second;
//! the others `exec sleep`. Printed:
//!
//! - time from the launch to every process ready;
//! - the follower's latency: each `process_ready` event's arrival in this program against the
//!   `ready` line's timestamp (median, p90, max);
//! - while holding: established TCP connections to the sshd port (server side of
//!   `/proc/net/tcp`, by the local address, which is the host's 127.0.0.N) and session
//!   processes (children of the per-connection sshd processes that are not sshd themselves:
//!   one per open session channel running a command), per host;
//! - the controller's CPU (user+system, `getrusage(RUSAGE_SELF)`) over the hold, as a share
//!   of one core; its peak RSS (`VmHWM`);
//! - the reconnect: after the hold, every sshd process holding a connection to host K is
//!   KILLed (found through `/proc/net/tcp` and `/proc/PID/fd`); from the kill to
//!   `host_disconnected`, to `host_reconnected`, and to the first line of that host's
//!   processes logged again (the run directory's logs, time-stamped on arrival), and whether
//!   every process's `tick` lines came without gap or repeat;
//! - cancel (the first Ctrl-C) to all stopped and to the end of the leftover check, and any
//!   process left behind.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sortie::launch::{launch, LaunchEvent, LaunchOptions, Phase};
use sortie::transport::ssh::{SshOptions, SshTransport};
use sortie::transport::{HostKeyChecking, Target, TransportKind, Transports};
use sortie::CancellationToken;
use sortie_testkit::{hosts, KeyKind, Sshd};

/// Command-line options.
struct Args {
    hosts: usize,
    per_host: usize,
    hold: Duration,
    max_sessions: u32,
    /// 1-based index of the host whose connections are killed; 0: none.
    reconnect_host: usize,
    local: bool,
    trace: bool,
}

impl Args {
    fn parse() -> Args {
        let args: Vec<String> = std::env::args().collect();
        let num = |name: &str, default: u64| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .map(|v| {
                    v.parse().unwrap_or_else(|_| {
                        eprintln!("bench_launch: {name}: not a number: {v}");
                        std::process::exit(2)
                    })
                })
                .unwrap_or(default)
        };
        let local = args.iter().any(|a| a == "--local");
        let hosts = num("--hosts", 20).max(1) as usize;
        Args {
            hosts,
            per_host: num("--per-host", 500).max(1) as usize,
            hold: Duration::from_secs(num("--hold", 10)),
            max_sessions: num("--max-sessions", 0) as u32,
            reconnect_host: if local {
                0
            } else {
                (num("--reconnect-host", 1) as usize).min(hosts)
            },
            local,
            trace: args.iter().any(|a| a == "--trace"),
        }
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn cpu() -> Duration {
    // SAFETY: getrusage fills a plain struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Processes of the benchmark still alive: behind sshd, or (local transport) anywhere.
fn leftovers(local: bool) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for marker in ["sleep 100000", "echo tick"] {
        if local {
            out.extend(
                sortie_testkit::processes_matching(marker)
                    .into_iter()
                    .map(|p| (p.pid, p.cmdline)),
            );
        } else {
            out.extend(sortie_testkit::remote_processes(marker));
        }
    }
    out
}

/// The plan: role `w` (quiet stand-ins) on every host but the reconnect host, role `t`
/// (stand-ins printing a line a second) on it.
fn plan_text(a: &Args, addrs: &[String]) -> String {
    let quoted = |hs: &[&String]| {
        hs.iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let values = |n: usize| {
        (1..=n)
            .map(|i| format!("\"p{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let transport = if a.local { "local" } else { "ssh" };
    let loud: Vec<&String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| i + 1 == a.reconnect_host)
        .map(|(_, h)| h)
        .collect();
    let quiet: Vec<&String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| i + 1 != a.reconnect_host)
        .map(|(_, h)| h)
        .collect();
    let role = |name: &str, hs: &[&String], command: &str| {
        if hs.is_empty() {
            return String::new();
        }
        format!(
            r#"
[groups.{name}]
hosts = [{hosts}]
transport = "{transport}"
[data.{name}]
values = [{values}]
column = "p"
[roles.{name}]
group = "{name}"
for_each = "{name}"
slots = {per_host}
command = '{command}'
ready = '^ready '
ready_timeout = "600s"
stop = [{{ signal = "INT", grace = "10s" }}]
"#,
            hosts = quoted(hs),
            values = values(hs.len() * a.per_host),
            per_host = a.per_host,
        )
    };
    format!(
        "name = \"bench-launch\"\n{}{}",
        role(
            "w",
            &quiet,
            "echo ready $(date +%s%N) {p}; exec sleep 100000"
        ),
        role(
            "t",
            &loud,
            "echo ready $(date +%s%N) {p}; i=0; while :; do i=$((i+1)); echo tick $i $(date +%s%N); sleep 1; done"
        ),
    )
}

fn targets(labels: &[String], sshd: Option<&Sshd>, known: &Path) -> Vec<Target> {
    labels
        .iter()
        .map(|label| Target {
            label: label.clone(),
            hostname: label.clone(),
            host_key_alias: None,
            hash_known_hosts: false,
            port: sshd.map_or(22, |s| s.port()),
            user: sshd.map_or_else(String::new, |s| s.user()),
            identity_files: sshd
                .map(|s| vec![s.client_key(KeyKind::Ed25519)])
                .unwrap_or_default(),
            identities_only: true,
            certificate_files: Vec::new(),
            forward_agent: false,
            jumps: vec![],
            proxy_command: None,
            known_hosts_files: vec![known.to_path_buf()],
            host_key_checking: HostKeyChecking::Yes,
            connect_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
            kind: if sshd.is_none() {
                TransportKind::Local
            } else {
                TransportKind::Ssh
            },
        })
        .collect()
}

/// The fixture sshd seen from `/proc`: its connections, per host (the server-side local
/// address, 127.0.0.N), with the sshd processes serving them and their session processes.
mod server {
    use super::*;

    /// `(pid, ppid, comm)` of every process.
    fn table() -> Vec<(u32, u32, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let (Some(o), Some(c)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let ppid = stat[c + 1..]
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok());
            out.push((pid, ppid.unwrap_or(0), stat[o + 1..c].to_string()));
        }
        out
    }

    /// Socket inode -> local address, for established TCP sockets on local port `port`.
    fn sockets(port: u16) -> HashMap<u64, String> {
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let mut out = HashMap::new();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != "01" {
                continue;
            }
            let Some((addr, p)) = f[1].split_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            let a = u32::from_str_radix(addr, 16).unwrap_or(0).to_le_bytes();
            if let Ok(inode) = f[9].parse() {
                out.insert(inode, format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]));
            }
        }
        out
    }

    /// What the server holds for one host.
    #[derive(Default, Debug)]
    pub struct Held {
        /// Established TCP connections.
        pub connections: usize,
        /// sshd processes serving them (monitor and session process per connection).
        pub sshd_pids: Vec<u32>,
        /// Children of those that are not sshd: one per session channel running a command.
        pub sessions: usize,
    }

    /// Per host address, what the sshd `listener` holds now.
    pub fn held(listener: u32, port: u16) -> BTreeMap<String, Held> {
        let socks = sockets(port);
        let mut out: BTreeMap<String, Held> = BTreeMap::new();
        for addr in socks.values() {
            out.entry(addr.clone()).or_default().connections += 1;
        }
        let procs = table();
        let mut kids: HashMap<u32, Vec<(u32, &str)>> = HashMap::new();
        for (pid, ppid, comm) in &procs {
            kids.entry(*ppid).or_default().push((*pid, comm.as_str()));
        }
        // One tree per connection: a child of the listener, its sshd descendants, and the
        // session processes under those.
        for &(root, _) in kids.get(&listener).map_or(&[][..], |v| &v[..]) {
            let mut sshds = vec![root];
            let mut i = 0;
            let mut sessions = 0;
            while i < sshds.len() {
                for &(k, comm) in kids.get(&sshds[i]).map_or(&[][..], |v| &v[..]) {
                    if comm == "sshd" {
                        sshds.push(k);
                    } else {
                        sessions += 1;
                    }
                }
                i += 1;
            }
            let addr = sshds.iter().find_map(|p| socket_of(*p, &socks));
            let h = out.entry(addr.unwrap_or_else(|| "?".into())).or_default();
            h.sshd_pids.extend(&sshds);
            h.sessions += sessions;
        }
        out
    }

    fn socket_of(pid: u32, socks: &HashMap<u64, String>) -> Option<String> {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
            let link = std::fs::read_link(fd.path()).ok()?;
            let link = link.to_string_lossy();
            let inode = link
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(a) = inode.and_then(|i| socks.get(&i)) {
                return Some(a.clone());
            }
        }
        None
    }

    /// KILLs every sshd process serving host `addr`; returns how many.
    pub fn kill_host(listener: u32, port: u16, addr: &str) -> usize {
        let held = held(listener, port);
        let pids = held
            .get(addr)
            .map(|h| h.sshd_pids.clone())
            .unwrap_or_default();
        for p in &pids {
            // SAFETY: kill(2) with a pid we just read and a constant signal.
            unsafe { libc::kill(*p as i32, libc::SIGKILL) };
        }
        pids.len()
    }

    /// One line: totals and the spread over hosts.
    pub fn summary(held: &BTreeMap<String, Held>) -> String {
        let conns: Vec<usize> = held.values().map(|h| h.connections).collect();
        let sess: Vec<usize> = held.values().map(|h| h.sessions).collect();
        let sshds: usize = held.values().map(|h| h.sshd_pids.len()).sum();
        let range = |v: &[usize]| {
            format!(
                "{}-{}",
                v.iter().min().unwrap_or(&0),
                v.iter().max().unwrap_or(&0)
            )
        };
        format!(
            "{} connections ({} per host), {} session processes ({} per host), {} sshd processes, {} hosts",
            conns.iter().sum::<usize>(),
            range(&conns),
            sess.iter().sum::<usize>(),
            range(&sess),
            sshds,
            held.len()
        )
    }
}

/// What the event loop saw.
#[derive(Default)]
struct Seen {
    ready: usize,
    failed: usize,
    stopped: usize,
    survivors: usize,
    all_ready: Option<Duration>,
    /// Per ready process: its log and when its `process_ready` arrived (epoch ns).
    arrivals: Vec<(PathBuf, i128)>,
    /// CPU and wall time over the hold.
    hold: Option<(Duration, Duration)>,
    held: Option<BTreeMap<String, server::Held>>,
    held_after: Option<BTreeMap<String, server::Held>>,
    /// The kill (epoch ns, and sshd processes killed).
    killed: Option<(i128, usize)>,
    disconnected_ns: Option<i128>,
    reconnected_ns: Option<i128>,
    /// Reconnects reported (any host).
    reconnects: usize,
    stop_after: Option<Duration>,
    finished_after: Option<Duration>,
}

/// Where the benchmark is in its script.
enum Step {
    Starting,
    Holding { at: Instant, cpu0: Duration },
    Reconnecting { since: Instant },
    Settling { until: Instant },
    Cancelled { at: Instant },
}

/// The fixture sshd's pid and port, the reconnect host's address.
struct Fixture {
    pid: u32,
    port: u16,
    victim: Option<String>,
}

fn log_of(run_dir: &Path, p: &sortie::launch::ProcessRef) -> PathBuf {
    let key = p.id.split_once('/').map_or(p.key.as_str(), |(_, k)| k);
    run_dir.join("logs").join(&p.role).join(format!(
        "{}@{}.log",
        key.replace('/', "_"),
        p.host.replace('/', "_")
    ))
}

impl Seen {
    fn event(&mut self, ev: &LaunchEvent, run_dir: &Path, total: usize, t0: Instant) -> bool {
        match ev {
            LaunchEvent::ProcessReady { process, .. } => {
                self.arrivals.push((log_of(run_dir, process), now_ns()));
                self.ready += 1;
                if self.ready == total {
                    self.all_ready = Some(t0.elapsed());
                }
            }
            LaunchEvent::ProcessFailed { .. } => self.failed += 1,
            LaunchEvent::ProcessStopped { .. } => self.stopped += 1,
            LaunchEvent::HostDisconnected { .. } => {
                self.disconnected_ns.get_or_insert_with(now_ns);
            }
            LaunchEvent::HostReconnected { .. } => {
                self.reconnects += 1;
                self.reconnected_ns.get_or_insert_with(now_ns);
                return true;
            }
            LaunchEvent::StopConfirmed { survivors, .. } => self.survivors = survivors.len(),
            _ => {}
        }
        false
    }

    /// The timer's part: ends the hold, kills the victim's connections, cancels.
    fn tick(
        &mut self,
        step: Step,
        a: &Args,
        fx: &Option<Fixture>,
        cancel: &CancellationToken,
    ) -> Step {
        match step {
            Step::Holding { at, cpu0 } if at.elapsed() >= a.hold => {
                self.hold = Some((at.elapsed(), cpu() - cpu0));
                let Some(fx) = fx else {
                    cancel.cancel();
                    return Step::Cancelled { at: Instant::now() };
                };
                self.held = Some(server::held(fx.pid, fx.port));
                match &fx.victim {
                    Some(v) => {
                        let n = server::kill_host(fx.pid, fx.port, v);
                        self.killed = Some((now_ns(), n));
                        Step::Reconnecting {
                            since: Instant::now(),
                        }
                    }
                    None => {
                        cancel.cancel();
                        Step::Cancelled { at: Instant::now() }
                    }
                }
            }
            Step::Reconnecting { since } if since.elapsed() > Duration::from_secs(120) => {
                cancel.cancel();
                Step::Cancelled { at: Instant::now() }
            }
            Step::Settling { until } if Instant::now() >= until => {
                if let Some(fx) = fx {
                    self.held_after = Some(server::held(fx.pid, fx.port));
                }
                cancel.cancel();
                Step::Cancelled { at: Instant::now() }
            }
            s => s,
        }
    }
}

/// Runs the launch to its end, following the benchmark's script.
async fn drive(
    a: &Args,
    plan: sortie_plan::launch::Plan,
    targets: Vec<Target>,
    run_dir: &Path,
    fx: Option<Fixture>,
) -> (Seen, sortie::launch::LaunchResult) {
    let transport = Arc::new(Transports::new(SshTransport::new(SshOptions {
        passphrase_prompt: Arc::new(|_| None),
        agent_socket: None,
        ..SshOptions::default()
    })));
    let total = a.hosts * a.per_host;
    let cancel = CancellationToken::new();
    let options = LaunchOptions {
        run_dir: Some(run_dir.to_path_buf()),
        progress_interval: Duration::from_millis(500),
        ..LaunchOptions::default()
    };
    let t0 = Instant::now();
    let mut handle = launch(transport, plan, targets, options, cancel.clone()).expect("launch");
    let mut seen = Seen::default();
    let mut step = Step::Starting;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            ev = handle.events.recv() => {
                let Some(ev) = ev else { break };
                if a.trace && !matches!(ev, LaunchEvent::Progress { .. } | LaunchEvent::ProcessReady { .. }) {
                    eprintln!("{:>8.3} {}", t0.elapsed().as_secs_f64(), ev.to_json());
                }
                if seen.event(&ev, run_dir, total, t0) && matches!(step, Step::Reconnecting { .. }) {
                    // Leave time for a few lines to stream again before sampling.
                    step = Step::Settling { until: Instant::now() + Duration::from_secs(3) };
                }
                match ev {
                    LaunchEvent::PhaseChanged { phase: Phase::Holding, .. } => {
                        step = Step::Holding { at: Instant::now(), cpu0: cpu() };
                    }
                    LaunchEvent::PhaseChanged { phase: Phase::Confirming, .. } => {
                        if let Step::Cancelled { at } = step {
                            seen.stop_after = Some(at.elapsed());
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => step = seen.tick(step, a, &fx, &cancel),
        }
    }
    if let Step::Cancelled { at } = step {
        seen.finished_after = Some(at.elapsed());
    }
    let result = handle.result.await.expect("launch result");
    (seen, result)
}

/// The `O` (stdout) lines of a process log, with their arrival times (epoch ns).
fn out_lines(log: &Path) -> Vec<(i128, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (ts, rest) = l.split_once(' ')?;
            let text = rest.strip_prefix("O ")?;
            let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
            Some((t.timestamp_nanos_opt()? as i128, text.to_string()))
        })
        .collect()
}

/// Value at quantile `q` of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The follower's latency: `process_ready` arrival minus the `ready` line's own timestamp, ms.
fn ready_latencies(arrivals: &[(PathBuf, i128)]) -> Vec<f64> {
    let mut out: Vec<f64> = arrivals
        .iter()
        .filter_map(|(log, at)| {
            let (_, line) = out_lines(log)
                .into_iter()
                .find(|(_, l)| l.starts_with("ready "))?;
            let printed: i128 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some((at - printed) as f64 / 1e6)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// What the reconnect host's logs show.
#[derive(Default)]
struct Resumed {
    /// The first line logged after the disconnection (epoch ns).
    first: Option<i128>,
    /// Processes whose `tick` lines have a gap or a repeat.
    bad: usize,
    checked: usize,
    /// Follower latency of the `tick` lines printed before the kill (ms, sorted).
    steady: Vec<f64>,
}

/// Reads the reconnect host's logs (role `t`); `since`: the disconnection, `kill`: the kill.
fn resumed(run_dir: &Path, since: i128, kill: i128) -> Resumed {
    let dir = run_dir.join("logs").join("t");
    let mut r = Resumed::default();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let lines = out_lines(&e.path());
        r.checked += 1;
        // Times are logged to the millisecond.
        if let Some((t, _)) = lines
            .iter()
            .find(|(t, _)| *t >= since / 1_000_000 * 1_000_000)
        {
            r.first = Some(r.first.map_or(*t, |f| f.min(*t)));
        }
        let ticks: Vec<(u64, i128, i128)> = lines
            .iter()
            .filter_map(|(at, l)| {
                let mut w = l.strip_prefix("tick ")?.split_whitespace();
                Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?, *at))
            })
            .collect();
        if ticks.iter().enumerate().any(|(i, t)| t.0 != i as u64 + 1) {
            r.bad += 1;
        }
        (r.steady).extend(
            (ticks.iter())
                .filter(|t| t.1 < kill)
                .map(|t| (t.2 - t.1) as f64 / 1e6),
        );
    }
    r.steady.sort_by(f64::total_cmp);
    r
}

fn ms(ns: i128) -> String {
    format!("{:.0} ms", ns as f64 / 1e6)
}

/// Prints the figures (the launch's part).
fn print(a: &Args, seen: &Seen, result: &sortie::launch::LaunchResult, run_dir: &Path) {
    let total = a.hosts * a.per_host;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let server = if a.local {
        "local transport".to_string()
    } else if a.max_sessions > 0 {
        format!("sshd MaxSessions {}", a.max_sessions)
    } else {
        "sshd MaxSessions default (10)".into()
    };
    println!(
        "bench_launch: {total} processes on {} hosts ({} per host), {server}, {cores} cores, load {}",
        a.hosts,
        a.per_host,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "  all ready after       {:.2} s ({}/{total} ready, {} failed)",
        seen.all_ready.unwrap_or_default().as_secs_f64(),
        seen.ready,
        seen.failed
    );
    let lat = ready_latencies(&seen.arrivals);
    println!(
        "  ready line -> event   median {:.1} ms, p90 {:.1} ms, max {:.1} ms ({} measured)",
        quantile(&lat, 0.5),
        quantile(&lat, 0.9),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len()
    );
    if let Some(h) = &seen.held {
        println!("  held while holding    {}", server::summary(h));
        println!(
            "    old design (a channel per process, {} per connection): {} connections, {} session processes",
            a.max_sessions.max(10) - 1,
            a.hosts * a.per_host.div_ceil(a.max_sessions.max(10) as usize - 1),
            total
        );
    }
    if let Some((wall, c)) = seen.hold {
        println!(
            "  CPU while holding     {:.2}% of one core ({:.0} ms over {:.1} s)",
            100.0 * c.as_secs_f64() / wall.as_secs_f64(),
            c.as_secs_f64() * 1000.0,
            wall.as_secs_f64()
        );
    }
    println!(
        "  peak RSS              {:.1} MiB",
        status_kib("VmHWM:") as f64 / 1024.0
    );
    if let Some((killed, n)) = seen.killed {
        let r = resumed(run_dir, seen.disconnected_ns.unwrap_or(killed), killed);
        let (first, bad, checked) = (r.first, r.bad, r.checked);
        let since = |t: Option<i128>| t.map_or("never".into(), |t| ms(t - killed));
        println!(
            "  reconnect ({} procs)  killed {n} sshd processes; -> disconnected {}, -> reconnected {}, -> first line again {}",
            a.per_host,
            since(seen.disconnected_ns),
            since(seen.reconnected_ns),
            since(first)
        );
        println!(
            "    tick lines with a gap or repeat: {bad} of {checked} processes; reconnects reported {}",
            seen.reconnects
        );
        println!(
            "    tick line -> logged (before the kill): median {:.1} ms, p90 {:.1} ms ({} lines)",
            quantile(&r.steady, 0.5),
            quantile(&r.steady, 0.9),
            r.steady.len()
        );
    }
    if let Some(h) = &seen.held_after {
        println!("  held after reconnect  {}", server::summary(h));
    }
    println!(
        "  cancel -> all stopped {:.2} s, -> finished (leftover check) {:.2} s ({} stopped)",
        seen.stop_after.unwrap_or_default().as_secs_f64(),
        seen.finished_after.unwrap_or_default().as_secs_f64(),
        seen.stopped
    );
    println!(
        "  leftover groups       {} (hosts checked {}, unchecked {})",
        seen.survivors,
        result.report.stop_check.hosts_checked,
        result.report.stop_check.unchecked.len()
    );
    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    for p in &result.report.processes {
        *endings.entry(p.ending.label().to_string()).or_default() += 1;
    }
    println!("  endings               {endings:?}");
    for p in (result.report.processes.iter())
        .filter(|p| p.ending.is_failure() || p.attempts == 0)
        .take(5)
    {
        println!("    e.g. {} on {}: {:?}", p.id, p.host, p.ending);
    }
    for e in result.report.stop_check.errors.iter().take(5) {
        println!("  stop error: {e}");
    }
}

fn main() {
    let a = Args::parse();
    if !a.local && sortie_testkit::require_sshd().is_none() {
        eprintln!("SKIP bench_launch: OpenSSH sshd is not installed");
        return;
    }
    if let Err(e) = sortie::limits::raise_nofile() {
        eprintln!("cannot raise the open-file limit: {e}");
    }
    let mut b = Sshd::builder();
    if a.max_sessions > 0 {
        b = b.max_sessions(Some(a.max_sessions));
    }
    let addrs: Vec<String> = if a.local {
        (1..=a.hosts).map(|i| format!("local{i}")).collect()
    } else {
        hosts(a.hosts)
    };
    // Loopback hosts share one file system: give each its own home (so its own remote
    // directory), as separate machines have, or every host's follower would scan the files
    // of all 20 hosts.
    let homes = tempfile::tempdir().expect("homes");
    for addr in addrs.iter().filter(|_| !a.local) {
        let home = homes.path().join(addr);
        std::fs::create_dir_all(&home).expect("home");
        b = b
            .config_line(format!("Match LocalAddress {addr}"))
            .config_line(format!("SetEnv HOME={}", home.display()));
    }
    let sshd = (!a.local).then(|| b.start().expect("fixture sshd"));
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let known = (sshd.as_ref())
        .map(|s| s.known_hosts_for(&refs).expect("known_hosts"))
        .unwrap_or_default();
    let plan =
        sortie_plan::launch::load_str("bench.toml", &plan_text(&a, &addrs), ".".as_ref(), &[])
            .expect("plan")
            .place(&Default::default())
            .expect("placement");
    let labels: Vec<String> = plan.hosts.iter().map(|h| h.label.clone()).collect();
    let targets = targets(&labels, sshd.as_ref(), &known);
    let fx = sshd.as_ref().map(|s| Fixture {
        pid: s.pid().expect("fixture sshd pid"),
        port: s.port(),
        victim: a.reconnect_host.checked_sub(1).map(|i| addrs[i].clone()),
    });
    let run_dir = std::env::temp_dir().join(format!("bench-launch-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (seen, result) = runtime.block_on(drive(&a, plan, targets, &run_dir, fx));
    print(&a, &seen, &result, &run_dir);
    let left = leftovers(a.local);
    println!("  processes left (ps)   {}", left.len());
    for (pid, cmd) in left.iter().take(5) {
        println!("    e.g. {pid} {cmd}");
    }
    let _ = std::fs::remove_dir_all(&run_dir);
}
