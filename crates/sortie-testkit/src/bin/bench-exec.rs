//! `bench-exec`: benchmark of `sortie exec -- true` against `ssh` per host (`xargs -P`) and
//! `pssh` (Debian's `parallel-ssh`) on the same fixture fleet in the same run.
//!
//! It starts one fixture sshd reachable at N loopback addresses (each a distinct host), then
//! for each fleet size runs every contender several times as a child process and reports the
//! medians of wall time, client CPU (user+sys of the whole client process tree, from `wait4`)
//! per host, peak RSS (largest single process of the tree, also from `wait4`), and how many
//! times a listen queue overflowed during the run (`TcpExtListenOverflows` of
//! `/proc/net/netstat`, read before and after each run: SYNs the fixture sshd's backlog could
//! not take, which the client retries only after a second or more). It owns measuring and
//! printing; it never asserts on speed.
//!
//! Run: `cargo run --release -p sortie-testkit --bin bench-exec -- --hosts 100,500,1000 --runs 3`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use sortie_testkit::{hosts, Sshd};

/// Benchmark `sortie exec -- true` against ssh per host (xargs -P) and pssh on a loopback fleet.
#[derive(Debug, Parser)]
#[command(name = "bench-exec")]
struct Args {
    /// Fleet sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    hosts: Vec<usize>,
    /// Measured runs per contender and fleet size (the table shows medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Unmeasured warm-up runs per contender and fleet size.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// The sortie binary (default: next to this binary, then `<workspace>/target/release/sortie`,
    /// then $PATH).
    #[arg(long)]
    sortie: Option<PathBuf>,
    /// Upper bound of the fan-out (parallel connections) given to every contender; the
    /// fan-out is min(hosts, this).
    #[arg(long, default_value_t = 1000)]
    max_fanout: usize,
    /// sortie's `--max-handshakes`, comma-separated: one sortie contender per value (default:
    /// one contender with sortie's own default).
    #[arg(long, value_delimiter = ',')]
    max_handshakes: Vec<usize>,
    /// Contenders to run, comma-separated, among: sortie, ssh, pssh.
    #[arg(long, value_delimiter = ',', default_value = "sortie,ssh,pssh")]
    only: Vec<String>,
    /// Also sample the summed RSS of the client tree every 100 ms (costs some CPU itself).
    #[arg(long)]
    tree_rss: bool,
}

/// One contender's command for a fleet.
struct Contender {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ok: bool,
    /// Exit code, or minus the signal number.
    code: i32,
    wall: Duration,
    user: Duration,
    sys: Duration,
    max_rss_kib: u64,
    tree_rss_kib: Option<u64>,
    /// `TcpExtListenOverflows` after the run minus before it (`None`: unreadable).
    overflows: Option<u64>,
    /// CPU the whole machine spent from the start of the run until it was idle again (client,
    /// server and whatever the server's sessions left running), from `/proc/stat`.
    machine_cpu: Option<Duration>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = real_main(&args) {
        eprintln!("bench-exec: {e}");
        std::process::exit(1);
    }
}

fn real_main(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let nofile = raise_nofile();
    if sortie_testkit::require_sshd().is_none() {
        return Err("OpenSSH sshd (or ssh-keygen) is not installed; nothing to benchmark".into());
    }
    let sshd = Sshd::builder()
        .max_startups(Some(MAX_STARTUPS))
        .log_level("INFO")
        .start()?;
    let sortie = resolve_sortie(args.sortie.as_deref());
    println!("# bench-exec: `exec -- true` on a loopback fleet");
    println!(
        "# machine: {} CPUs; {}; {}; open-file limit {nofile}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        first_line(Command::new("ssh").arg("-V")),
        sshd_version(),
    );
    println!(
        "# fixture sshd on port {} (MaxSessions default, MaxStartups {MAX_STARTUPS}, listen \
         backlog 128 as OpenSSH sets it, net.core.somaxconn {}); OpenSSH contenders forced to \
         KexAlgorithms=curve25519-sha256",
        sshd.port(),
        fs::read_to_string("/proc/sys/net/core/somaxconn")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned()),
    );
    println!(
        "# listen ovf = TcpExtListenOverflows (/proc/net/netstat) after minus before the run: \
         SYNs dropped by a full listen queue"
    );
    println!(
        "# machine CPU = busy CPU seconds of the whole machine (/proc/stat) from the start of a \
         run until the server's sessions are gone and the machine is idle again (client, \
         server, and what the sessions left running); wall/floor = wall time over machine CPU \
         per core, 1.00 being the least this machine could take for that work"
    );
    println!(
        "# CPU = user+sys of the client process tree (wait4); peak RSS = largest single process \
         of the tree (wait4 ru_maxrss){}",
        if args.tree_rss {
            "; tree RSS = sampled sum over the tree"
        } else {
            ""
        }
    );
    let mut notes = Vec::new();
    for &n in &args.hosts {
        if n == 0 {
            continue;
        }
        let fleet = hosts(n);
        let refs: Vec<&str> = fleet.iter().map(String::as_str).collect();
        let config = sshd.ssh_config_for(&refs)?;
        let hostfile = sshd.dir().join(format!("hosts-{n}"));
        fs::write(&hostfile, fleet.join("\n") + "\n")?;
        let fanout = n.min(args.max_fanout.max(1));
        let work = sshd.dir().join(format!("runs-{n}"));
        fs::create_dir_all(&work)?;

        let contenders = contenders(args, &sortie, &hostfile, &config, fanout, &mut notes)?;

        let load = load_average();
        // Warm-up doubles as a check: a contender that fails it is reported, not measured.
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
        let mut broken: Vec<Option<String>> = vec![None; contenders.len()];
        for (i, c) in contenders.iter().enumerate() {
            for w in 0..args.warmup {
                let s = measure(c, &work, &format!("warmup{w}"), false, &sshd)?;
                if !s.ok {
                    broken[i] = Some(failure_reason(&s, c, &work, &format!("warmup{w}")));
                    break;
                }
            }
        }
        // Interleave contenders run by run so drift hits all of them alike.
        for r in 0..args.runs {
            for (i, c) in contenders.iter().enumerate() {
                if broken[i].is_some() {
                    continue;
                }
                let tag = format!("run{r}");
                let s = measure(c, &work, &tag, args.tree_rss, &sshd)?;
                if !s.ok && samples[i].iter().all(|s| s.ok) {
                    notes.push(format!(
                        "{} ({n} hosts) run {r} failed: {}",
                        c.name,
                        failure_reason(&s, c, &work, &tag)
                    ));
                }
                samples[i].push(s);
            }
        }
        print_table(n, fanout, args, &load, &contenders, &samples, &broken);
    }
    for note in &notes {
        println!("{note}");
    }
    Ok(())
}

/// The contenders for one fleet size, in `--only` order (sortie once per `--max-handshakes`
/// value); a missing sortie binary becomes a note instead.
fn contenders(
    args: &Args,
    sortie: &Result<PathBuf, String>,
    hostfile: &Path,
    config: &Path,
    fanout: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<Contender>, Box<dyn std::error::Error>> {
    let mut contenders = Vec::new();
    for name in &args.only {
        match name.as_str() {
            "sortie" => match &sortie {
                Ok(path) => {
                    let base = vec![
                        "exec".to_owned(),
                        "-H".into(),
                        format!("^{}", hostfile.display()),
                        "-F".into(),
                        config.display().to_string(),
                        "--host-key-checking".into(),
                        "yes".into(),
                        "-f".into(),
                        fanout.to_string(),
                    ];
                    let caps: Vec<Option<usize>> = if args.max_handshakes.is_empty() {
                        vec![None]
                    } else {
                        args.max_handshakes.iter().copied().map(Some).collect()
                    };
                    for cap in caps {
                        let mut a = base.clone();
                        let mut name = "sortie".to_owned();
                        if let Some(cap) = cap {
                            a.extend(["--max-handshakes".into(), cap.to_string()]);
                            name = format!("sortie (handshakes {cap})");
                        }
                        a.extend(["--".into(), "true".into()]);
                        contenders.push(Contender {
                            name,
                            program: path.clone(),
                            args: a,
                        });
                    }
                }
                Err(reason) => {
                    let note = format!("sortie: not available ({reason})");
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            },
            "ssh" => contenders.push(Contender {
                name: format!("ssh (xargs -P {fanout})"),
                program: "xargs".into(),
                args: [
                    "-a",
                    &hostfile.display().to_string(),
                    "-P",
                    &fanout.to_string(),
                    "-I{}",
                    "ssh",
                    "-F",
                    &config.display().to_string(),
                    "-o",
                    "KexAlgorithms=curve25519-sha256",
                    "-n",
                    "{}",
                    "true",
                ]
                .map(str::to_owned)
                .to_vec(),
            }),
            "pssh" => contenders.push(Contender {
                name: format!("pssh (-p {fanout})"),
                program: "parallel-ssh".into(),
                args: vec![
                    "-h".into(),
                    hostfile.display().to_string(),
                    "-p".into(),
                    fanout.to_string(),
                    "-t".into(),
                    "0".into(),
                    "-x".into(),
                    format!("-F {} -o KexAlgorithms=curve25519-sha256", config.display()),
                    "true".into(),
                ],
            }),
            other => return Err(format!("unknown contender {other:?} in --only").into()),
        }
    }
    Ok(contenders)
}

/// Runs one contender as a child, waits for it with `wait4`, lets the machine settle, and
/// returns what it used.
fn measure(
    c: &Contender,
    work: &Path,
    tag: &str,
    tree_rss: bool,
    sshd: &Sshd,
) -> std::io::Result<Sample> {
    let busy_before = busy_jiffies();
    let stem = work.join(format!("{}-{tag}", slug(&c.name)));
    let out = fs::File::create(stem.with_extension("out"))?;
    let err = fs::File::create(stem.with_extension("err"))?;
    let start = Instant::now();
    let child = Command::new(&c.program)
        .args(&c.args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?;
    let pid = child.id();
    let overflows_before = listen_overflows();
    let sampler = tree_rss.then(|| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(tree_rss_kib(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        (stop, handle)
    });
    let (status, usage) = wait4(pid)?;
    let wall = start.elapsed();
    let overflows = listen_overflows()
        .zip(overflows_before)
        .map(|(after, before)| after.saturating_sub(before));
    settle(sshd);
    let machine_cpu = busy_jiffies()
        .zip(busy_before)
        .map(|(after, before)| jiffies(after.saturating_sub(before)));
    // `child` was reaped by wait4; dropping it does not wait again.
    drop(child);
    let tree_rss_kib = sampler.map(|(stop, h)| {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().unwrap_or(0)
    });
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Sample {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -libc::WTERMSIG(status)
        },
        wall,
        user: tv(usage.ru_utime),
        sys: tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        tree_rss_kib,
        overflows,
        machine_cpu,
    })
}

/// `TcpExtListenOverflows` of this network namespace: how many times a SYN (or the final ACK)
/// found a listen queue full since boot. `None` when `/proc/net/netstat` cannot be read.
fn listen_overflows() -> Option<u64> {
    let text = fs::read_to_string("/proc/net/netstat").ok()?;
    // Pairs of lines: `TcpExt: Name1 Name2 ...` then `TcpExt: value1 value2 ...`.
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// `wait4(pid)`: exit status and the resource usage of the child plus all its waited-for
/// descendants.
fn wait4(pid: u32) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value; both pointers are to live locals.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sum of resident memory of `root` and its descendants, in KiB.
fn tree_rss_kib(root: u32) -> u64 {
    let mut parent = std::collections::HashMap::new();
    let mut rss = std::collections::HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After "pid (comm)": state ppid ... ; rss (pages) is field 24 overall, 22 here.
        if let (Some(ppid), Some(pages)) = (
            fields.get(1).and_then(|s| s.parse::<u32>().ok()),
            fields.get(21).and_then(|s| s.parse::<u64>().ok()),
        ) {
            parent.insert(pid, ppid);
            rss.insert(pid, pages);
        }
    }
    // SAFETY: sysconf has no preconditions.
    let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64 / 1024;
    rss.iter()
        .filter(|(pid, _)| {
            let mut cur = **pid;
            for _ in 0..64 {
                if cur == root {
                    return true;
                }
                match parent.get(&cur) {
                    Some(&p) if p > 1 => cur = p,
                    _ => return false,
                }
            }
            false
        })
        .map(|(_, pages)| pages * page_kib)
        .sum()
}

/// The fixture's `MaxStartups`: far above the largest fleet, so that sshd refuses no
/// connection itself and what is left to overflow is the kernel's listen queue.
const MAX_STARTUPS: &str = "4000:30:8000";

/// Lets the server-side processes of the previous run finish before the next one: waits
/// (10 s at most) until the fixture sshd has no session left and the machine is idle (under
/// 5% of one CPU busy over 100 ms), so that work a run leaves behind on the server is counted
/// in its machine CPU and does not slow the next run.
fn settle(sshd: &Sshd) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let sessions = sshd.pid().is_some_and(|l| {
            fs::read_to_string(format!("/proc/{l}/task/{l}/children"))
                .is_ok_and(|s| !s.trim().is_empty())
        });
        let before = busy_jiffies();
        std::thread::sleep(Duration::from_millis(100));
        let idle = busy_jiffies().zip(before).is_none_or(|(after, before)| {
            jiffies(after.saturating_sub(before)) < Duration::from_millis(5)
        });
        if !sessions && idle {
            break;
        }
    }
}

/// CPU time the whole machine has spent busy since boot (user, nice, system, irq, softirq
/// and steal of `/proc/stat`), in clock ticks.
fn busy_jiffies() -> Option<u64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let cpu = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum())
}

/// Clock ticks as a duration.
fn jiffies(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64;
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / hz))
}

/// The load averages of `/proc/loadavg` (1, 5 and 15 minutes).
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn print_table(
    n: usize,
    fanout: usize,
    args: &Args,
    load: &str,
    contenders: &[Contender],
    samples: &[Vec<Sample>],
    broken: &[Option<String>],
) {
    println!();
    println!("# load average (1, 5, 15 min) before this size's first run: {load}");
    println!(
        "## {n} hosts ({} .. {}), fan-out {fanout}, medians of {} run(s)",
        hosts(1)[0],
        hosts(n).last().map_or("", String::as_str),
        args.runs
    );
    let tree = if args.tree_rss { "  tree RSS MiB" } else { "" };
    println!(
        "{:<26} {:>8} {:>13} {:>9} {:>9} {:>13}{tree} {:>5} {:>12} {:>12} {:>10}",
        "contender",
        "wall s",
        "CPU ms/host",
        "user s",
        "sys s",
        "peak RSS MiB",
        "ok",
        "listen ovf",
        "machine CPU",
        "wall/floor"
    );
    for (i, c) in contenders.iter().enumerate() {
        if let Some(reason) = &broken[i] {
            println!("{}: not available (warm-up run failed: {reason})", c.name);
            continue;
        }
        let ok: Vec<&Sample> = samples[i].iter().filter(|s| s.ok).collect();
        let okcol = format!("{}/{}", ok.len(), samples[i].len());
        let ovf = overflow_column(&samples[i]);
        if ok.is_empty() {
            println!("{:<26} {:>8} {okcol:>5} {ovf:>12}", c.name, "-");
            continue;
        }
        let med = |f: &dyn Fn(&Sample) -> f64| median(ok.iter().map(|s| f(s)).collect());
        let wall = med(&|s| s.wall.as_secs_f64());
        let user = med(&|s| s.user.as_secs_f64());
        let sys = med(&|s| s.sys.as_secs_f64());
        let cpu = med(&|s| (s.user + s.sys).as_secs_f64());
        let rss = med(&|s| s.max_rss_kib as f64 / 1024.0);
        // The floor: the machine's CPU for the run spread over every core, the least wall
        // time that work could take here.
        let machine = med(&|s| s.machine_cpu.map_or(f64::NAN, |d| d.as_secs_f64()));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let floor = wall / (machine / cores);
        let tree_col = if args.tree_rss {
            format!(
                "  {:>12.1}",
                med(&|s| s.tree_rss_kib.unwrap_or(0) as f64 / 1024.0)
            )
        } else {
            String::new()
        };
        println!(
            "{:<26} {wall:>8.2} {:>13.2} {user:>9.2} {sys:>9.2} {rss:>13.1}{tree_col} {okcol:>5} \
             {ovf:>12} {machine:>12.2} {floor:>10.2}",
            c.name,
            cpu * 1000.0 / n as f64,
        );
    }
}

/// Listen overflows of every measured run (failed ones included: they count most), as
/// `min-max`, or one number when all runs agree.
fn overflow_column(samples: &[Sample]) -> String {
    let v: Vec<u64> = samples.iter().filter_map(|s| s.overflows).collect();
    match (v.iter().min(), v.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "-".into(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        l if l % 2 == 1 => v[l / 2],
        l => (v[l / 2 - 1] + v[l / 2]) / 2.0,
    }
}

/// Why a run failed: exit status is in the table; this is the tail of its stderr.
fn failure_reason(s: &Sample, c: &Contender, work: &Path, tag: &str) -> String {
    let stem = work.join(format!("{}-{tag}", slug(&c.name)));
    let err = fs::read_to_string(stem.with_extension("err")).unwrap_or_default();
    let out = fs::read_to_string(stem.with_extension("out")).unwrap_or_default();
    let text = if err.trim().is_empty() { out } else { err };
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let how = if s.code < 0 {
        format!("killed by signal {}", -s.code)
    } else {
        format!("exit status {}", s.code)
    };
    if tail.is_empty() {
        format!("{how}, no output")
    } else {
        format!("{how}: {}", tail.join(" | "))
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Finds the sortie binary, or says why there is none.
fn resolve_sortie(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("{} does not exist", p.display()))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("sortie"));
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    candidates.push(workspace.join("target/release/sortie"));
    if let Some(p) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&p).map(|d| d.join("sortie")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "no sortie binary found; run `cargo build --release -p sortie-cli` or pass --sortie PATH"
            .to_owned()
    })
}

/// Raises the soft open-file limit to the hard limit (children inherit it); returns it.
fn raise_nofile() -> u64 {
    // SAFETY: an all-zero rlimit is valid; get/setrlimit only read/write that local.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn sshd_version() -> String {
    sortie_testkit::require_sshd()
        .map(|p| format!("sshd {}", first_line(Command::new(p).arg("-V"))))
        .unwrap_or_default()
}
