//! Benchmark of `report.html` for a big run: a synthetic record of 1000 processes on 10 hosts
//! sampled every 5 s for an hour (720 host samples per host, 720 process samples per process),
//! folded and rendered as `sortie report --html` does. Prints the record's size, the fold and
//! render times and the page's size, and writes the page (and the record) to a directory so
//! `scripts/bench-report-html.sh` can time its load in headless Chromium.
//!
//! `cargo run --release -p sortie-report --example bench_report_html -- OUT_DIR
//!  [--processes 1000] [--hosts 10] [--hour-samples 720]`

use std::io::Write;
use std::time::Instant;

use sortie_events::launch::{
    HostSample, LaunchEvent, Phase, PlannedHost, PlannedProcess, ProcessRef, ProcessSample,
    RoleCounts,
};
use sortie_report::launch::{write_html, EventLog, PageFold};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    (args.iter().position(|a| a == name))
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The record: started, 1000 processes starting and ready over the first minutes, samples
/// every 5 s for an hour, progress every 5 s, stop and finish.
fn record(procs: usize, hosts: usize, samples: usize) -> Vec<LaunchEvent> {
    let roles = ["master", "viewer"];
    let pref = |i: usize| {
        let role = roles[i % 2];
        ProcessRef {
            id: format!("{role}/ch{i}"),
            role: role.into(),
            key: format!("ch{i}"),
            host: format!("host{:02}", i % hosts),
        }
    };
    let mut out = vec![LaunchEvent::LaunchStarted {
        plan: "bench".into(),
        digest: String::new(),
        plan_path: "bench.toml".into(),
        overrides: vec![],
        run_dir: Some("/runs/bench".into()),
        started_at: "2026-12-02T07:00:00Z".into(),
        processes: procs,
        hosts,
        roles: roles.map(String::from).to_vec(),
        duration_ms: Some(3_600_000),
        host_list: (0..hosts)
            .map(|h| PlannedHost {
                host: format!("host{h:02}"),
                group: "g".into(),
            })
            .collect(),
        process_list: (0..procs)
            .map(|i| {
                let p = pref(i);
                PlannedProcess {
                    log: Some(format!(
                        "/runs/bench/logs/{}/{}@{}.log",
                        p.role, p.key, p.host
                    )),
                    id: p.id,
                    role: p.role,
                    key: p.key,
                    host: p.host,
                }
            })
            .collect(),
        thresholds: vec![],
    }];
    for i in 0..procs {
        let at = 100 * i as u64;
        out.push(LaunchEvent::ProcessStarting {
            process: pref(i),
            attempt: 1,
            at_ms: at,
            started_at: None,
        });
        out.push(LaunchEvent::ProcessStarted {
            process: pref(i),
            pgid: Some(1000 + i as u32),
            at_ms: at,
        });
        out.push(LaunchEvent::ProcessReady {
            process: pref(i),
            time_to_ready_ms: 300 + (i as u64 * 7919) % 2000,
            at_ms: at + 300,
            ready_at: None,
        });
    }
    for s in 1..=samples {
        let at = 5000 * s as u64;
        let ready = procs.min((at / 100) as usize);
        out.push(LaunchEvent::Progress {
            phase: Phase::Holding,
            roles: roles
                .iter()
                .map(|r| RoleCounts {
                    role: r.to_string(),
                    planned: procs / 2,
                    ready: ready / 2,
                    starting: (procs - ready) / 2,
                    ..RoleCounts::default()
                })
                .collect(),
            starting: procs - ready,
            start_rate: 0.0,
            elapsed_ms: at,
            remaining_ms: None,
        });
        for h in 0..hosts {
            out.push(LaunchEvent::HostSample(HostSample {
                host: format!("host{h:02}"),
                at_ms: at,
                interval_ms: 5000,
                cpus: 8,
                cpu_user: 0.3 + 0.05 * ((s + h) % 7) as f64,
                cpu_system: 0.1,
                load1: 2.0,
                mem_available_bytes: (20u64 << 30) - (s as u64) * (1 << 20),
                mem_total_bytes: 32 << 30,
                net_rx_bytes: 50_000_000,
                net_tx_bytes: 40_000_000,
                ..HostSample::default()
            }));
        }
        for i in 0..procs {
            out.push(LaunchEvent::ProcessSample(ProcessSample {
                process: pref(i),
                pgid: 1000 + i as u32,
                at_ms: at,
                cpu_seconds: 0.05 * s as f64,
                cpu_cores: Some(0.01),
                rss_bytes: 50 << 20,
                threads: 12,
                procs: 1,
            }));
        }
    }
    for i in 0..procs {
        out.push(LaunchEvent::ProcessStopped {
            process: pref(i),
            exit: Default::default(),
            at_ms: 3_601_000,
        });
    }
    out.push(LaunchEvent::LaunchFinished {
        interrupted: false,
        thresholds_passed: true,
        elapsed_ms: 3_602_000,
        finished_at: "2026-12-02T08:00:02Z".into(),
        roles: vec![],
    });
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(args.first().ok_or("usage: bench_report_html OUT_DIR")?);
    std::fs::create_dir_all(&dir)?;
    let (procs, hosts) = (arg(&args, "--processes", 1000), arg(&args, "--hosts", 10));
    let samples = arg(&args, "--hour-samples", 720);
    let events = record(procs, hosts, samples);
    let mut log = EventLog::create(&dir, "bench")?;
    for ev in &events {
        log.write(ev);
    }
    let size = std::fs::metadata(dir.join("events.jsonl"))?.len();
    let t = Instant::now();
    let mut fold = PageFold::new("bench");
    for ev in &events {
        fold.apply(ev);
    }
    let fold_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let path = write_html(&fold.data(false), &dir)?;
    let render_ms = t.elapsed().as_secs_f64() * 1000.0;
    let html = std::fs::metadata(&path)?.len();
    let mut o = std::io::stdout();
    writeln!(
        o,
        "{procs} processes, {hosts} hosts, {samples} samples each"
    )?;
    writeln!(
        o,
        "events: {} ({:.1} MiB events.jsonl)",
        events.len(),
        size as f64 / 1048576.0
    )?;
    writeln!(
        o,
        "fold: {fold_ms:.0} ms; render + write: {render_ms:.0} ms"
    )?;
    writeln!(
        o,
        "report.html: {:.2} MiB ({})",
        html as f64 / 1048576.0,
        path.display()
    )?;
    Ok(())
}
