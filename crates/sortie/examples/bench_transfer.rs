//! Benchmark (not a test): `sortie put` against OpenSSH `scp` and `sftp` on the fixture fleet
//! (one OpenSSH sshd, every loopback address a host).
//!
//! Scenarios: 200 MB to one host, and 50 MB to each of 20 hosts. For each tool, the median of
//! 3 runs of wall time, throughput (MB/s of file content delivered, all hosts together) and
//! client CPU seconds (getrusage: this process for sortie, reaped children for scp/sftp; the
//! server side is not counted). OpenSSH gets one process per host, all started at once.
//!
//! Run: `cargo run --release -p sortie --example bench_transfer` (needs OpenSSH sshd, scp and
//! sftp installed). `BENCH_RUNS=N` changes the number of runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sortie::transfer::{self, HostTarget, LocalTree, PutOptions, TransferCtx};
use sortie::transport::{
    ssh::SshOptions, ssh::SshTransport, HostKeyChecking, Target, Transport, TransportKind,
    Transports,
};
use sortie_testkit::{KeyKind, Sshd};

const MB: u64 = 1_000_000;

fn cpu(who: i32) -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

fn make_file(path: &Path, size: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size as usize;
    while left > 0 {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

fn target(sshd: &Sshd, host: &str, kh: PathBuf) -> Target {
    Target {
        label: host.to_string(),
        hostname: host.to_string(),
        host_key_alias: None,
        hash_known_hosts: false,
        port: sshd.port(),
        user: sshd.user(),
        identity_files: vec![sshd.client_key(KeyKind::Ed25519)],
        identities_only: true,
        certificate_files: Vec::new(),
        forward_agent: false,
        jumps: vec![],
        proxy_command: None,
        known_hosts_files: vec![kh],
        host_key_checking: HostKeyChecking::Yes,
        connect_timeout: Duration::from_secs(20),
        keepalive_interval: Duration::from_secs(15),
        keepalive_max: 3,
        kind: TransportKind::Ssh,
    }
}

fn run_sortie(
    rt: &tokio::runtime::Runtime,
    hosts: &[HostTarget],
    file: &Path,
    dest: &Path,
) -> Sample {
    let transport: Arc<dyn Transport> = Arc::new(Transports::new(SshTransport::new(SshOptions {
        agent_socket: None,
        ..SshOptions::default()
    })));
    let tree = LocalTree::scan(&[file.to_path_buf()], false).unwrap();
    let remote = format!("{}/{{host}}/", dest.display());
    let (c0, t0) = (cpu(libc::RUSAGE_SELF), Instant::now());
    let r = rt.block_on(async {
        let mut h = transfer::put(
            transport,
            hosts.to_vec(),
            tree,
            &remote,
            PutOptions::default(),
            TransferCtx::default(),
        )
        .unwrap();
        while h.events.recv().await.is_some() {}
        h.result.await.unwrap()
    });
    let s = Sample {
        wall: t0.elapsed(),
        cpu: cpu(libc::RUSAGE_SELF) - c0,
    };
    for (h, hr) in &r.hosts {
        assert!(hr.errors.is_empty(), "{h}: {:?}", hr.errors);
    }
    s
}

fn run_openssh(tool: &str, cfg: &Path, hosts: &[String], file: &Path, dest: &Path) -> Sample {
    let (c0, t0) = (cpu(libc::RUSAGE_CHILDREN), Instant::now());
    let mut children = Vec::new();
    for h in hosts {
        let d = dest.join(h);
        std::fs::create_dir_all(&d).unwrap();
        let mut cmd = Command::new(tool);
        cmd.arg("-q").arg("-F").arg(cfg);
        if tool == "scp" {
            cmd.arg(file).arg(format!("{h}:{}/", d.display()));
        } else {
            cmd.arg("-b").arg("-").arg(h).stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        if tool == "sftp" {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "put {} {}/", file.display(), d.display()).unwrap();
        }
        children.push(child);
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "{tool} failed");
    }
    Sample {
        wall: t0.elapsed(),
        cpu: cpu(libc::RUSAGE_CHILDREN) - c0,
    }
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by_key(|s| s.wall);
    v[v.len() / 2]
}

fn main() {
    if sortie_testkit::require_sshd().is_none() {
        eprintln!("SKIP bench_transfer: OpenSSH sshd is not installed");
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let sshd = Sshd::builder()
        .max_startups(Some("100:30:200"))
        .start()
        .expect("fixture sshd");
    let names = sortie_testkit::hosts(20);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let kh = sshd.known_hosts_for(&refs).unwrap();
    let cfg = sshd.ssh_config_for(&refs).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9}",
        "scenario / tool", "hosts", "wall s", "MB/s", "cpu s"
    );
    for (label, size, n) in [
        ("200 MB to 1 host", 200 * MB, 1usize),
        ("50 MB to each of 20 hosts", 50 * MB, 20),
    ] {
        let file = tmp.path().join(format!("payload-{size}"));
        make_file(&file, size);
        let hosts: Vec<HostTarget> = names[..n]
            .iter()
            .map(|h| target(&sshd, h, kh.clone()).into())
            .collect();
        for tool in ["sortie", "scp", "sftp"] {
            let mut samples = Vec::new();
            for _ in 0..runs {
                let dest = tmp.path().join("dest");
                let _ = std::fs::remove_dir_all(&dest);
                std::fs::create_dir_all(&dest).unwrap();
                let s = if tool == "sortie" {
                    run_sortie(&rt, &hosts, &file, &dest)
                } else {
                    run_openssh(tool, &cfg, &names[..n], &file, &dest)
                };
                for h in &names[..n] {
                    let got = std::fs::metadata(dest.join(h).join(file.file_name().unwrap()))
                        .map(|m| m.len())
                        .unwrap_or(0);
                    assert_eq!(got, size, "{tool} {h}: incomplete copy");
                }
                samples.push(s);
            }
            let m = median(samples);
            let mbps = (size * n as u64) as f64 / MB as f64 / m.wall.as_secs_f64();
            println!(
                "{:<28} {:>6} {:>9.2} {:>9.1} {:>9.2}",
                format!("{label} / {tool}"),
                n,
                m.wall.as_secs_f64(),
                mbps,
                m.cpu.as_secs_f64()
            );
        }
    }
}
