//! Benchmark of `sortie launch`: 1000 long-lived processes over 10 loopback hosts of one fixture
//! sshd (100 per host, no rate limit). Not a test: it prints figures and asserts nothing.
//!
//! ```text
//! cargo run --release -p sortie --example bench_launch [-- --hosts 10 --per-host 100 --hold 10 --max-sessions 10]
//! ```
//!
//! Printed: time from the launch to every process ready; the controller's CPU (user+system,
//! `getrusage(RUSAGE_SELF)`) while holding, as a share of one core; its peak RSS (`VmHWM`);
//! the time from cancellation (Ctrl-C) to every process stopped and the launch finished; the
//! connections opened (a server with `MaxSessions` below 100 needs several per host); and
//! whether any process group was left on the hosts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sortie::launch::{launch, LaunchEvent, LaunchOptions, Phase};
use sortie::transport::ssh::{SshOptions, SshTransport};
use sortie::transport::{HostKeyChecking, Target, TransportKind, Transports};
use sortie::CancellationToken;
use sortie_testkit::{hosts, KeyKind, Sshd};

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
    if local {
        sortie_testkit::processes_matching("sleep 100000")
            .into_iter()
            .map(|p| (p.pid, p.cmdline))
            .collect()
    } else {
        sortie_testkit::remote_processes("sleep 100000")
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n_hosts = arg("--hosts", 10) as usize;
    let per_host = arg("--per-host", 100) as usize;
    let hold = Duration::from_secs(arg("--hold", 10));
    let max_sessions = arg("--max-sessions", 0) as u32;
    let trace = std::env::args().any(|a| a == "--trace");
    // --local: the same fleet on the local transport (no sshd), to separate the controller's
    // costs from the server's.
    let local = std::env::args().any(|a| a == "--local");
    if !local && sortie_testkit::require_sshd().is_none() {
        eprintln!("SKIP bench_launch: OpenSSH sshd is not installed");
        return;
    }
    if let Err(e) = sortie::limits::raise_nofile() {
        eprintln!("cannot raise the open-file limit: {e}");
    }
    let mut b = Sshd::builder();
    if max_sessions > 0 {
        b = b.max_sessions(Some(max_sessions));
    }
    let sshd = if local {
        None
    } else {
        Some(b.start().expect("fixture sshd"))
    };
    let addrs: Vec<String> = if local {
        (1..=n_hosts).map(|i| format!("local{i}")).collect()
    } else {
        hosts(n_hosts)
    };
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let known = sshd
        .as_ref()
        .map(|s| s.known_hosts_for(&refs).expect("known_hosts"))
        .unwrap_or_default();
    let total = n_hosts * per_host;
    let values: Vec<String> = (1..=total).map(|i| format!("\"p{i}\"")).collect();
    let plan_text = format!(
        r#"
name = "bench-launch"
[groups.fleet]
hosts = [{hosts}]
transport = "{transport}"
[data.procs]
values = [{values}]
column = "p"
[roles.w]
group = "fleet"
for_each = "procs"
slots = {per_host}
command = "echo ready {{p}}; exec sleep 100000"
ready = '^ready '
ready_timeout = "300s"
stop = [{{ signal = "INT", grace = "10s" }}]
"#,
        hosts = addrs
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", "),
        values = values.join(", "),
        transport = if local { "local" } else { "ssh" },
    );
    let plan = sortie_plan::launch::load_str("bench.toml", &plan_text, ".".as_ref(), &[])
        .expect("plan")
        .place(&Default::default())
        .expect("placement");
    let targets: Vec<Target> = plan
        .hosts
        .iter()
        .map(|h| Target {
            label: h.label.clone(),
            hostname: h.label.clone(),
            host_key_alias: None,
            hash_known_hosts: false,
            port: sshd.as_ref().map_or(22, |s| s.port()),
            user: sshd.as_ref().map_or_else(String::new, |s| s.user()),
            identity_files: sshd
                .as_ref()
                .map(|s| vec![s.client_key(KeyKind::Ed25519)])
                .unwrap_or_default(),
            identities_only: true,
            certificate_files: Vec::new(),
            forward_agent: false,
            jumps: vec![],
            proxy_command: None,
            known_hosts_files: vec![known.clone()],
            host_key_checking: HostKeyChecking::Yes,
            connect_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
            kind: if local {
                TransportKind::Local
            } else {
                TransportKind::Ssh
            },
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let transport = Arc::new(Transports::new(SshTransport::new(SshOptions {
            passphrase_prompt: Arc::new(|_| None),
            agent_socket: None,
        })));
        let cancel = CancellationToken::new();
        let options = LaunchOptions {
            run_dir: None,
            progress_interval: Duration::from_millis(500),
            ..LaunchOptions::default()
        };
        let t0 = Instant::now();
        let mut handle =
            launch(transport, plan, targets, options, cancel.clone()).expect("launch");
        let mut ready = 0usize;
        let mut all_ready: Option<Duration> = None;
        let mut hold_cpu: Option<(Instant, Duration)> = None;
        let mut hold_result: Option<(Duration, Duration)> = None;
        let mut cancelled_at: Option<Instant> = None;
        let mut stopped_after: Option<Duration> = None;
        let mut survivors = 0usize;
        let mut failed = 0usize;
        let mut stopped = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                ev = handle.events.recv() => {
                    let Some(ev) = ev else { break };
                    if trace && !matches!(ev, LaunchEvent::Progress { .. }) {
                        eprintln!("{:>8.3} {}", t0.elapsed().as_secs_f64(), ev.to_json());
                    }
                    match ev {
                        LaunchEvent::ProcessReady { .. } => {
                            ready += 1;
                            if ready == total {
                                all_ready = Some(t0.elapsed());
                            }
                        }
                        LaunchEvent::ProcessFailed { .. } => failed += 1,
                        LaunchEvent::ProcessStopped { .. } => stopped += 1,
                        LaunchEvent::PhaseChanged { phase: Phase::Holding, .. } => {
                            hold_cpu = Some((Instant::now(), cpu()));
                        }
                        LaunchEvent::PhaseChanged { phase: Phase::Confirming, .. } => {
                            stopped_after = cancelled_at.map(|c| c.elapsed());
                        }
                        LaunchEvent::StopConfirmed { survivors: s, .. } => survivors = s.len(),
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    if let Some((at, c0)) = hold_cpu {
                        if cancelled_at.is_none() && at.elapsed() >= hold {
                            hold_result = Some((at.elapsed(), cpu() - c0));
                            cancelled_at = Some(Instant::now());
                            cancel.cancel();
                        }
                    }
                }
            }
        }
        let finished = cancelled_at.map(|c| c.elapsed());
        let result = handle.result.await.expect("launch result");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "bench_launch: {total} processes on {n_hosts} hosts ({per_host} per host), {}, {cores} cores",
            if local {
                "local transport".to_string()
            } else if max_sessions > 0 {
                format!("sshd MaxSessions {max_sessions}")
            } else {
                "sshd MaxSessions default (10)".into()
            }
        );
        println!(
            "  all ready after      {:.2} s ({ready}/{total} ready, {failed} failed)",
            all_ready.unwrap_or_default().as_secs_f64()
        );
        if let Some((wall, c)) = hold_result {
            println!(
                "  CPU while holding    {:.2}% of one core ({:.0} ms over {:.1} s)",
                100.0 * c.as_secs_f64() / wall.as_secs_f64(),
                c.as_secs_f64() * 1000.0,
                wall.as_secs_f64()
            );
        }
        println!("  peak RSS             {:.1} MiB", status_kib("VmHWM:") as f64 / 1024.0);
        println!(
            "  cancel -> all stopped {:.2} s, -> finished (leftover check) {:.2} s ({stopped} stopped)",
            stopped_after.unwrap_or_default().as_secs_f64(),
            finished.unwrap_or_default().as_secs_f64()
        );
        println!(
            "  leftover groups      {survivors} (hosts checked {}, unchecked {})",
            result.report.stop_check.hosts_checked,
            result.report.stop_check.unchecked.len()
        );
        let mut endings: std::collections::BTreeMap<String, usize> = Default::default();
        for p in &result.report.processes {
            *endings.entry(p.ending.label().to_string()).or_default() += 1;
        }
        println!("  endings              {endings:?}");
        for p in result
            .report
            .processes
            .iter()
            .filter(|p| p.ending.is_failure() || p.attempts == 0)
            .take(5)
        {
            println!("    e.g. {} on {}: {:?}", p.id, p.host, p.ending);
        }
        for e in result.report.stop_check.errors.iter().take(5) {
            println!("  stop error: {e}");
        }
        let known: std::collections::HashMap<u32, String> = result
            .report
            .processes
            .iter()
            .filter_map(|p| p.pgid.map(|g| (g, p.id.clone())))
            .collect();
        let left = leftovers(local);
        for (pid, _) in left.iter().take(5) {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let pgid: u32 = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(2))
                .and_then(|g| g.parse().ok())
                .unwrap_or(0);
            println!("    leftover pid {pid} pgid {pgid}: known as {:?}", known.get(&pgid));
        }
    });
    let left = leftovers(local);
    println!("  processes left (ps)  {}", left.len());
    for (pid, cmd) in left.iter().take(5) {
        println!("    e.g. {pid} {cmd}");
    }
}
