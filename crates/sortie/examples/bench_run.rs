//! Benchmark of `sortie run` against GNU parallel `-S` on a fixture fleet (one private sshd,
//! many loopback hosts). Not a test: it prints figures and asserts nothing about speed.
//!
//! ```text
//! cargo run --release -p sortie --example bench_run [-- --runs 3 --only sortie --scenario 1]
//! ```
//!
//! Scenarios: 200 jobs `sleep 0.1; echo {}` over 10 hosts x 4 slots, and 2000 jobs `true` over
//! 10 hosts x 8 slots. Then the first scenario by sortie on Dropbear beside OpenSSH, both
//! logging in as the same test account (`--only servers` runs just that; needs root and
//! Debian's dropbear-bin). Tools: sortie (library call), GNU parallel `-S N/host` with an ssh
//! config file from the fixture (`--ssh 'ssh -F cfg'`), without and with `--controlmaster`.
//! Printed per tool and scenario: the median of N runs of wall time, jobs/s and client CPU
//! (user+system from `getrusage`, RUSAGE_SELF for sortie, RUSAGE_CHILDREN for parallel and its
//! ssh processes; the fixture sshd is not counted).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sortie::runner::run::{run, RunOptions};
use sortie::transport::ssh::{SshOptions, SshTransport};
use sortie::transport::{HostKeyChecking, Target, Transport, TransportKind};
use sortie::{CancellationToken, Outcome};
use sortie_plan::{JobSet, JobSource, Template};
use sortie_testkit::{hosts, test_user, Dropbear, KeyKind, Keys, LoginShell, Sshd};

struct Scenario {
    name: &'static str,
    jobs: u64,
    hosts: usize,
    slots: u32,
    command: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "200 x `sleep 0.1; echo {}`, 10 hosts x 4 slots",
        jobs: 200,
        hosts: 10,
        slots: 4,
        command: "sleep 0.1; echo {}",
    },
    Scenario {
        name: "2000 x `true`, 10 hosts x 8 slots",
        jobs: 2000,
        hosts: 10,
        slots: 8,
        command: "true",
    },
];

#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

fn cpu(who: i32) -> Duration {
    // SAFETY: getrusage fills a plain struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn cpu_all() -> Duration {
    cpu(libc::RUSAGE_SELF) + cpu(libc::RUSAGE_CHILDREN)
}

/// Where a fleet's hosts are: port, login user, client key, known_hosts file.
struct Peer {
    port: u16,
    user: String,
    key: std::path::PathBuf,
    known: std::path::PathBuf,
}

fn targets(sshd: &Sshd, addrs: &[String]) -> Vec<Target> {
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let peer = Peer {
        port: sshd.port(),
        user: sshd.user(),
        key: sshd.client_key(KeyKind::Ed25519),
        known: sshd.known_hosts_for(&refs).expect("known_hosts"),
    };
    peer_targets(&peer, addrs)
}

fn peer_targets(peer: &Peer, addrs: &[String]) -> Vec<Target> {
    let (sshd_port, user, key, known) = (peer.port, &peer.user, &peer.key, &peer.known);
    addrs
        .iter()
        .map(|a| Target {
            label: a.clone(),
            hostname: a.clone(),
            host_key_alias: None,
            hash_known_hosts: false,
            port: sshd_port,
            user: user.clone(),
            identity_files: vec![key.clone()],
            identities_only: true,
            certificate_files: Vec::new(),
            forward_agent: false,
            jumps: vec![],
            proxy_command: None,
            known_hosts_files: vec![known.clone()],
            host_key_checking: HostKeyChecking::Yes,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(5),
            keepalive_max: 3,
            kind: TransportKind::Ssh,
        })
        .collect()
}

fn sortie_once(rt: &tokio::runtime::Runtime, sshd: &Sshd, s: &Scenario) -> Sample {
    let addrs = hosts(s.hosts);
    sortie_on(rt, targets(sshd, &addrs), s)
}

fn sortie_on(rt: &tokio::runtime::Runtime, targets: Vec<Target>, s: &Scenario) -> Sample {
    let jobs = JobSet::new(vec![JobSource::range(&format!("1..{}", s.jobs)).unwrap()]).unwrap();
    let template = Template::parse(s.command, jobs.columns()).unwrap();
    let transport: Arc<dyn Transport> = Arc::new(SshTransport::new(SshOptions {
        passphrase_prompt: Arc::new(|_| None),
        agent_socket: None,
        ..SshOptions::default()
    }));
    let options = RunOptions {
        slots: s.slots,
        ..Default::default()
    };
    let cpu0 = cpu(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    let (ok, total) = rt.block_on(async {
        let mut h = run(
            transport,
            targets,
            jobs,
            template,
            options,
            CancellationToken::new(),
        )
        .expect("run");
        let (mut ok, mut total) = (0, 0);
        while let Some(ev) = h.events.recv().await {
            if let sortie::Event::JobFinished { outcome, .. } = ev {
                total += 1;
                ok += usize::from(outcome == Outcome::Ok);
            }
        }
        h.result.await.unwrap();
        (ok, total)
    });
    let wall = t0.elapsed();
    assert_eq!(
        (ok, total),
        (s.jobs as usize, s.jobs as usize),
        "sortie: failed jobs"
    );
    Sample {
        wall,
        cpu: cpu(libc::RUSAGE_SELF) - cpu0,
    }
}

fn parallel_once(sshd: &Sshd, s: &Scenario, controlmaster: bool) -> Result<Sample, String> {
    let addrs = hosts(s.hosts);
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    let logins: Vec<String> = addrs.iter().map(|a| format!("{}/{a}", s.slots)).collect();
    let mut cmd = Command::new("parallel");
    cmd.arg("-S")
        .arg(logins.join(","))
        .arg("--ssh")
        .arg(format!("ssh -F {}", cfg.display()));
    if controlmaster {
        cmd.arg("--controlmaster");
    }
    cmd.arg(s.command)
        .arg(":::")
        .args((1..=s.jobs).map(|i| i.to_string()))
        .stdout(Stdio::null())
        // A file, not a pipe: `--controlmaster` leaves helpers holding it after parallel exits.
        .stderr(std::fs::File::create(sshd.dir().join("parallel.err")).unwrap());
    let cpu0 = cpu(libc::RUSAGE_CHILDREN);
    let t0 = Instant::now();
    let status = cmd.status().expect("running GNU parallel");
    let wall = t0.elapsed();
    if !status.success() {
        let err = std::fs::read_to_string(sshd.dir().join("parallel.err")).unwrap_or_default();
        return Err(format!(
            "exit {}: {}",
            status.code().unwrap_or(-1),
            err.lines().next().unwrap_or("")
        ));
    }
    Ok(Sample {
        wall,
        cpu: cpu(libc::RUSAGE_CHILDREN) - cpu0,
    })
}

/// Scenario 1 on Dropbear beside OpenSSH, both logging in as the same test account (login
/// shell bash), so only the server differs. The target: Dropbear within 1.5x of OpenSSH.
fn servers(rt: &tokio::runtime::Runtime, runs: usize) {
    let s = &SCENARIOS[0];
    println!("\n## servers: {}, sortie, login shell bash", s.name);
    if sortie_testkit::require_dropbear().is_none() {
        println!("SKIP: Dropbear is not installed (Debian package dropbear-bin)");
        return;
    }
    let user = match test_user(LoginShell::Bash, &Keys::shared().expect("keys")) {
        Ok(u) => u,
        Err(e) => {
            println!("SKIP: {e}");
            return;
        }
    };
    let addrs = hosts(s.hosts);
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let sshd = Sshd::builder()
        .login_user(&user)
        .start()
        .expect("fixture sshd");
    let dropbear = Dropbear::start(&user).expect("fixture dropbear");
    let peers = [
        (
            "OpenSSH",
            Peer {
                port: sshd.port(),
                user: user.name.clone(),
                key: sshd.client_key(KeyKind::Ed25519),
                known: sshd.known_hosts_for(&refs).expect("known_hosts"),
            },
        ),
        (
            "Dropbear 2022.83",
            Peer {
                port: dropbear.port(),
                user: user.name.clone(),
                key: dropbear.client_key(KeyKind::Ed25519),
                known: dropbear.known_hosts_for(&refs).expect("known_hosts"),
            },
        ),
    ];
    println!(
        "{:<28} {:>9} {:>9} {:>11}",
        "server", "wall s", "jobs/s", "client CPU s"
    );
    let mut walls = Vec::new();
    for (name, peer) in &peers {
        let samples: Vec<Sample> = (0..runs)
            .map(|_| sortie_on(rt, peer_targets(peer, &addrs), s))
            .collect();
        let wall = median(samples.iter().map(|x| x.wall).collect());
        let cpu = median(samples.iter().map(|x| x.cpu).collect());
        println!(
            "{name:<28} {:>9.2} {:>9.1} {:>11.2}",
            wall.as_secs_f64(),
            s.jobs as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64()
        );
        walls.push(wall.as_secs_f64());
    }
    println!(
        "Dropbear / OpenSSH wall time: {:.2}x (target: at most 1.5x)",
        walls[1] / walls[0]
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut runs = 3;
    let mut only: Option<String> = None;
    let mut scenario: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(3),
            "--only" => only = args.next(),
            "--scenario" => scenario = args.next().and_then(|v| v.parse().ok()),
            _ => {
                eprintln!("usage: bench_run [--runs N] [--only sortie|parallel|parallel-cm|servers] [--scenario 1|2]");
                std::process::exit(2);
            }
        }
    }
    if sortie_testkit::require_sshd().is_none() {
        println!("SKIP: OpenSSH sshd or ssh-keygen not installed");
        return;
    }
    let _ = sortie::limits::raise_nofile();
    let have_parallel = Command::new("parallel")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // Default fixture: OpenSSH's MaxSessions 10, MaxStartups raised for fan-out.
    let sshd = Sshd::start().expect("fixture sshd");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = cpu_all();
    let mut load = [0f64; 3];
    // SAFETY: getloadavg writes at most 3 doubles into the array we own.
    unsafe { libc::getloadavg(load.as_mut_ptr(), 3) };
    println!(
        "runs per figure: {runs} (median); client CPU = user+system; load average {:.1} on {} CPUs",
        load[0],
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (i, s) in SCENARIOS.iter().enumerate() {
        if scenario.is_some_and(|n| n != i + 1) || only.as_deref() == Some("servers") {
            continue;
        }
        println!("\n## {}", s.name);
        println!(
            "{:<28} {:>9} {:>9} {:>11}",
            "tool", "wall s", "jobs/s", "client CPU s"
        );
        let tools: [(&str, bool); 3] = [
            ("sortie", true),
            ("parallel", have_parallel),
            ("parallel-cm", have_parallel),
        ];
        for (tool, available) in tools {
            if only.as_deref().is_some_and(|o| o != tool) {
                continue;
            }
            if !available {
                println!("{tool:<28} SKIP: GNU parallel not installed");
                continue;
            }
            // A peer that fails is reported, not fatal: the other figures still print.
            let samples: Result<Vec<Sample>, String> = (0..runs)
                .map(|_| match tool {
                    "sortie" => Ok(sortie_once(&rt, &sshd, s)),
                    "parallel" => parallel_once(&sshd, s, false),
                    _ => parallel_once(&sshd, s, true),
                })
                .collect();
            let label = match tool {
                "sortie" => "sortie (library)",
                "parallel" => "GNU parallel -S",
                _ => "GNU parallel -S --controlmaster",
            };
            let samples = match samples {
                Ok(v) => v,
                Err(e) => {
                    println!("{label:<28} FAILED ({e})");
                    continue;
                }
            };
            let wall = median(samples.iter().map(|x| x.wall).collect());
            let cpu = median(samples.iter().map(|x| x.cpu).collect());
            println!(
                "{label:<28} {:>9.2} {:>9.1} {:>11.2}",
                wall.as_secs_f64(),
                s.jobs as f64 / wall.as_secs_f64(),
                cpu.as_secs_f64()
            );
        }
    }
    if scenario.is_none_or(|n| n == 1) && only.as_deref().is_none_or(|o| o == "servers") {
        servers(&rt, runs);
    }
}
