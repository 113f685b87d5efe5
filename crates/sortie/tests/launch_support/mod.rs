//! An in-memory transport for launch tests under paused time.
//!
//! Processes are simulated tasks driven by words in their command line: `ready=MS` prints
//! `READY` after MS, `fail=MS` prints `ERROR boom` after MS, `exit=CODE@MS` exits, `ignore-int`
//! ignores SIGINT, `lose=MS@HOST` drops HOST's connections after MS (when it runs there) and
//! keeps it unreachable. The launch's host-side scripts are understood by their shape: the
//! start batch creates simulated supervised processes whose output and exit go to simulated
//! files of the host's remote directory; the follower streams those files as frames, as the
//! real one does; stop, kill and survivor scripts act on the simulated groups, so stop
//! sequences, graces and escalation run as on a host, in virtual time.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sortie::launch::{launch, LaunchEvent, LaunchOptions, LaunchResult};
use sortie::transport::{
    ByteStream, Command, ConnectError, ConnectFailure, Connection, Exit, Process, ProcessEvent,
    SpawnError, StopSequence, Target, Transport,
};
use sortie::CancellationToken;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One simulated process group.
pub struct Sim {
    pub host: String,
    /// Its directory under the remote directory's `p/`.
    pub dir: String,
    pub command: String,
    pub alive: bool,
    pub signals: Vec<String>,
    ctl: mpsc::UnboundedSender<String>,
}

/// The simulated hosts.
#[derive(Default)]
pub struct World {
    pub procs: HashMap<u32, Sim>,
    next: u32,
    pub down: Vec<String>,
    pub conns: HashMap<String, Vec<Arc<AtomicBool>>>,
    pub max_sessions: Option<usize>,
    pub open: HashMap<usize, usize>,
    /// Per host, per process directory: its output files and exit.
    pub files: HashMap<String, HashMap<String, Files>>,
    /// Running followers' control channels, by their group.
    followers: HashMap<u32, mpsc::UnboundedSender<String>>,
}

/// A supervised process's files on its host.
#[derive(Default, Clone)]
pub struct Files {
    pub out: Vec<u8>,
    pub err: Vec<u8>,
    pub exit: Option<String>,
}

pub type Shared = Arc<Mutex<World>>;

pub struct Fake(pub Shared);

#[async_trait]
impl Transport for Fake {
    async fn connect(&self, target: &Target) -> Result<Arc<dyn Connection>, ConnectError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut w = self.0.lock().unwrap();
        if w.down.contains(&target.label) {
            return Err(ConnectError {
                failure: ConnectFailure::Unreachable,
                message: "connection refused".into(),
            });
        }
        let closed = Arc::new(AtomicBool::new(false));
        w.conns
            .entry(target.label.clone())
            .or_default()
            .push(closed.clone());
        Ok(Arc::new(FakeConn {
            world: self.0.clone(),
            host: target.label.clone(),
            closed,
        }))
    }
}

struct FakeConn {
    world: Shared,
    host: String,
    closed: Arc<AtomicBool>,
}

fn word<'a>(cmd: &'a str, key: &str) -> Option<&'a str> {
    cmd.split(|c: char| c.is_whitespace() || c == '\'')
        .find_map(|w| w.strip_prefix(key))
}

fn ms(v: &str) -> Duration {
    Duration::from_millis(v.parse().unwrap())
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let start = s.find(a).map(|i| i + a.len()).unwrap_or(0);
    let end = s[start..].find(b).map(|i| start + i).unwrap_or(s.len());
    &s[start..end]
}

fn pgids(list: &str) -> Vec<u32> {
    list.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

impl FakeConn {
    /// Plays a start batch: one supervised process per `sortie_w` line; returns the `S` lines.
    fn start_batch(&self, text: &str) -> String {
        let mut out = String::new();
        for l in text.lines() {
            let Some(rest) = l.strip_prefix("sortie_w \"$R/p/") else {
                continue;
            };
            let (dir, ids) = rest.split_once("\" ").unwrap();
            let start = text.find(&format!("sortie-sup \"$R/p/{dir}\" ")).unwrap();
            let cmd = between(&text[start..], "\" ", ") </dev/null").to_string();
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            let pgid = {
                let mut w = self.world.lock().unwrap();
                w.next += 1;
                let pgid = 1000 + w.next;
                w.procs.insert(
                    pgid,
                    Sim {
                        host: self.host.clone(),
                        dir: dir.to_string(),
                        command: cmd,
                        alive: true,
                        signals: Vec::new(),
                        ctl: ctl_tx,
                    },
                );
                pgid
            };
            tokio::spawn(simulate(self.world.clone(), pgid, ctl_rx));
            out.push_str(&format!("\x02S {ids} {pgid}\n"));
        }
        out
    }

    fn signal(&self, pgid: u32, sig: &str) {
        let w = self.world.lock().unwrap();
        if let Some(f) = w.followers.get(&pgid) {
            let _ = f.send(sig.to_string());
        }
        if let Some(p) = w.procs.get(&pgid) {
            if p.alive {
                let _ = p.ctl.send(sig.to_string());
            }
        }
    }

    fn alive(&self, pgid: u32) -> bool {
        let w = self.world.lock().unwrap();
        w.procs.get(&pgid).is_some_and(|p| p.alive)
    }

    /// Plays a control script; returns its stdout.
    async fn script(&self, s: &str) -> String {
        if s.starts_with("P='") {
            let list = pgids(between(s, "P='", "'"));
            let mut steps = Vec::new();
            let mut rest = s;
            while let Some(i) = rest.find("do kill -") {
                let sig = between(&rest[i..], "do kill -", " ");
                let polls: u64 = between(&rest[i..], "[ $i -lt ", " ]").parse().unwrap_or(1);
                if sig == "KILL" {
                    break;
                }
                if sig == "0" {
                    rest = &rest[i + 10..];
                    continue;
                }
                steps.push((sig.to_string(), Duration::from_millis(polls * 50)));
                rest = &rest[i + 10..];
            }
            for (sig, grace) in steps {
                for p in &list {
                    self.signal(*p, &sig);
                }
                let end = Instant::now() + grace;
                while Instant::now() < end && list.iter().any(|p| self.alive(*p)) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            for p in &list {
                self.signal(*p, "KILL");
            }
            String::new()
        } else if s.starts_with("for p in") {
            for p in pgids(between(s, "for p in ", ";")) {
                self.signal(p, "KILL");
            }
            String::new()
        } else if s.starts_with("if ps") {
            let list = pgids(between(s, "want=' ", " '"));
            list.iter()
                .filter(|p| self.alive(**p))
                .map(|p| format!("{p}\n"))
                .collect()
        } else {
            panic!("unexpected script: {s}")
        }
    }
}

fn append(world: &Shared, host: &str, dir: &str, err: bool, data: &[u8]) {
    let mut w = world.lock().unwrap();
    let f = w
        .files
        .entry(host.into())
        .or_default()
        .entry(dir.into())
        .or_default();
    if err {
        f.err.extend_from_slice(data);
    } else {
        f.out.extend_from_slice(data);
    }
}

/// A supervised process: its output and exit go to its files on the host.
async fn simulate(world: Shared, pgid: u32, mut ctl: mpsc::UnboundedReceiver<String>) {
    let (cmd, host, dir) = {
        let w = world.lock().unwrap();
        let p = &w.procs[&pgid];
        (p.command.clone(), p.host.clone(), p.dir.clone())
    };
    let t0 = Instant::now();
    let ready = word(&cmd, "ready=").map(|v| t0 + ms(v));
    let fail = word(&cmd, "fail=").map(|v| t0 + ms(v));
    let exit = word(&cmd, "exit=").map(|v| {
        let (code, at) = v.split_once('@').unwrap();
        (code.parse::<u32>().unwrap(), t0 + ms(at))
    });
    // lose=MS@HOST: only on that host
    let mut lose = word(&cmd, "lose=").and_then(|v| {
        let (at, on) = v.split_once('@').unwrap();
        (on == host).then(|| t0 + ms(at))
    });
    let ignore_int = cmd.contains("ignore-int");
    append(&world, &host, &dir, false, b"hello\n");
    let mut printed_ready = false;
    let mut printed_fail = false;
    let end = loop {
        let mut next: Vec<Instant> = Vec::new();
        if let Some(t) = ready.filter(|_| !printed_ready) {
            next.push(t);
        }
        if let Some(t) = fail.filter(|_| !printed_fail) {
            next.push(t);
        }
        if let Some((_, t)) = exit {
            next.push(t);
        }
        if let Some(t) = lose {
            next.push(t);
        }
        let wake = next.into_iter().min();
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            sig = ctl.recv() => {
                let Some(sig) = sig else { break "0".to_string() };
                world.lock().unwrap().procs.get_mut(&pgid).unwrap().signals.push(sig.clone());
                match sig.as_str() {
                    "INT" if ignore_int => {}
                    "INT" => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        append(&world, &host, &dir, false, b"Cleanup done\n");
                        break "0".to_string();
                    }
                    "TERM" => break "143".to_string(),
                    // KILL ends the supervisor too: no exit file, the follower says dead.
                    _ => break "dead".to_string(),
                }
            }
            _ = sleep => {
                let now = Instant::now();
                if ready.is_some_and(|t| t <= now) && !printed_ready {
                    printed_ready = true;
                    append(&world, &host, &dir, false, b"READY now\n");
                }
                if fail.is_some_and(|t| t <= now) && !printed_fail {
                    printed_fail = true;
                    append(&world, &host, &dir, true, b"ERROR boom\n");
                }
                if let Some((code, t)) = exit {
                    if t <= now { break code.to_string(); }
                }
                if lose.is_some_and(|t| t <= now) {
                    lose = None;
                    // the host's connections drop and it stays unreachable; the process runs on
                    let mut w = world.lock().unwrap();
                    w.down.push(host.clone());
                    for c in w.conns.get(&host).into_iter().flatten() {
                        c.store(true, Ordering::Release);
                    }
                }
            }
        }
    };
    let mut w = world.lock().unwrap();
    w.procs.get_mut(&pgid).unwrap().alive = false;
    let f = w.files.entry(host).or_default().entry(dir).or_default();
    f.exit = Some(end);
}

/// The follower: frames of every new byte and exit of the host's files, from the offsets in
/// its script, every 50 ms, until its connection closes or it is signalled.
async fn follow(
    world: Shared,
    host: String,
    script: String,
    tx: mpsc::Sender<ProcessEvent>,
    mut ctl: mpsc::UnboundedReceiver<String>,
    closed: Arc<AtomicBool>,
) {
    let mut off: HashMap<String, usize> = HashMap::new();
    let mut done: Vec<String> = Vec::new();
    for l in script.lines().filter_map(|l| l.strip_prefix("I ")) {
        let (path, o) = l.rsplit_once(' ').unwrap();
        match path.strip_suffix("/exit") {
            Some(d) => done.push(d.to_string()),
            None => {
                off.insert(path.to_string(), o.parse().unwrap());
            }
        }
    }
    let end = loop {
        if closed.load(Ordering::Acquire) {
            break Exit::Lost("connection reset".into());
        }
        let snapshot = world
            .lock()
            .unwrap()
            .files
            .get(&host)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for (dir, f) in &snapshot {
            for (name, data) in [("out", &f.out), ("err", &f.err)] {
                let path = format!("{dir}/{name}");
                let o = off.get(&path).copied().unwrap_or(0);
                if data.len() > o {
                    out.extend(format!("\x02F {path} {o} {}\n", data.len() - o).bytes());
                    out.extend_from_slice(&data[o..]);
                    off.insert(path, data.len());
                }
            }
            if let Some(x) = f.exit.as_ref().filter(|_| !done.contains(dir)) {
                out.extend(format!("\x02X {dir} {x}\n").bytes());
                done.push(dir.clone());
            }
        }
        if !out.is_empty()
            && tx
                .send(ProcessEvent::Stdout(Bytes::from(out)))
                .await
                .is_err()
        {
            return;
        }
        tokio::select! {
            _ = ctl.recv() => break Exit::Code(143),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let _ = tx.send(ProcessEvent::Exit(end)).await;
}

#[async_trait]
impl Connection for FakeConn {
    async fn spawn(&self, command: &Command) -> Result<Process, SpawnError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SpawnError::Lost("connection reset".into()));
        }
        let (tx, rx) = mpsc::channel(64);
        let text = command.command.clone();
        if text.starts_with("P='") || text.starts_with("for p in") || text.starts_with("if ps") {
            let me = FakeConn {
                world: self.world.clone(),
                host: self.host.clone(),
                closed: self.closed.clone(),
            };
            tokio::spawn(async move {
                let out = me.script(&text).await;
                if !out.is_empty() {
                    let _ = tx.send(ProcessEvent::Stdout(Bytes::from(out))).await;
                }
                let _ = tx.send(ProcessEvent::Exit(Exit::Code(0))).await;
            });
            return Ok(Process {
                pgid: None,
                events: rx,
            });
        }
        if text.contains("sortie_sup=") {
            let out = self.start_batch(&text);
            tokio::spawn(async move {
                let _ = tx.send(ProcessEvent::Stdout(Bytes::from(out))).await;
                let _ = tx.send(ProcessEvent::Exit(Exit::Code(0))).await;
            });
            return Ok(Process {
                pgid: None,
                events: rx,
            });
        }
        if text.contains("wc -c") {
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            let pgid = {
                let mut w = self.world.lock().unwrap();
                w.next += 1;
                let pgid = 50_000 + w.next;
                w.followers.insert(pgid, ctl_tx);
                pgid
            };
            let (world, host, closed) =
                (self.world.clone(), self.host.clone(), self.closed.clone());
            tokio::spawn(follow(world, host, text, tx, ctl_rx, closed));
            return Ok(Process {
                pgid: Some(pgid),
                events: rx,
            });
        }
        assert!(text.starts_with("R="), "unexpected script: {text}");
        // set-up, lease renewal, end of run: they answer ok
        tokio::spawn(async move {
            let _ = tx
                .send(ProcessEvent::Stdout(Bytes::from_static(b"\x02ok\n")))
                .await;
            let _ = tx.send(ProcessEvent::Exit(Exit::Code(0))).await;
        });
        Ok(Process {
            pgid: None,
            events: rx,
        })
    }
    async fn stop(&self, _pgid: u32, _s: &StopSequence) -> Result<(), SpawnError> {
        unreachable!("launch stops with scripts")
    }
    async fn signal(&self, pgid: u32, signal: &str) -> Result<(), SpawnError> {
        FakeConn::signal(self, pgid, signal);
        Ok(())
    }
    async fn subsystem(&self, _name: &str) -> Result<ByteStream, SpawnError> {
        Err(SpawnError::ChannelRefused("none".into()))
    }
    async fn exec_stream(&self, _c: &str) -> Result<ByteStream, SpawnError> {
        Err(SpawnError::ChannelRefused("none".into()))
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    async fn close(&self) {}
}

/// A target per label (the fake ignores everything but the label).
pub fn targets(labels: &[String]) -> Vec<Target> {
    labels.iter().map(|l| Target::named(l)).collect()
}

/// A launch's events and result.
pub struct Ran {
    pub events: Vec<LaunchEvent>,
    pub result: LaunchResult,
    pub world: Shared,
}

impl Ran {
    /// `at_ms` of the `ProcessStarting` of `id` (attempt 1).
    pub fn started_at(&self, id: &str) -> u64 {
        self.events
            .iter()
            .find_map(|e| match e {
                LaunchEvent::ProcessStarting { process, at_ms, .. } if process.id == id => {
                    Some(*at_ms)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{id} never started"))
    }

    /// `at_ms` of the first `ProcessReady` of `id`.
    pub fn ready_at(&self, id: &str) -> Option<u64> {
        self.events.iter().find_map(|e| match e {
            LaunchEvent::ProcessReady { process, at_ms, .. } if process.id == id => Some(*at_ms),
            _ => None,
        })
    }

    /// Every process's signals, by the simulated process's command.
    pub fn signals(&self) -> Vec<(String, Vec<String>)> {
        let w = self.world.lock().unwrap();
        let mut v: Vec<(String, Vec<String>)> = w
            .procs
            .values()
            .map(|p| (p.command.clone(), p.signals.clone()))
            .collect();
        v.sort();
        v
    }

    /// Simulated processes still alive.
    pub fn alive(&self) -> usize {
        self.world
            .lock()
            .unwrap()
            .procs
            .values()
            .filter(|p| p.alive)
            .count()
    }

    /// The report entry of `id`.
    pub fn process(&self, id: &str) -> &sortie::launch::ProcessReport {
        self.result
            .report
            .processes
            .iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("no {id} in the report"))
    }
}

/// Loads `plan` (TOML text), places it and runs it on the fake transport, cancelling
/// `cancel_at` after the start when given.
pub async fn run_plan(
    plan: &str,
    setup: impl FnOnce(&mut World),
    cancel_at: Option<Duration>,
    escalate_at: Option<Duration>,
) -> Ran {
    let spec = sortie_plan::launch::load_str("plan.toml", plan, std::path::Path::new("."), &[])
        .expect("plan is valid");
    let placed = spec.place(&Default::default()).expect("plan places");
    let labels: Vec<String> = placed.hosts.iter().map(|h| h.label.clone()).collect();
    let world: Shared = Arc::default();
    setup(&mut world.lock().unwrap());
    let cancel = CancellationToken::new();
    let options = LaunchOptions {
        controller_env: Arc::new(|k| (k == "SECRET_TOKEN").then(|| "s3cr3t-value".to_string())),
        ..LaunchOptions::default()
    };
    let mut handle = launch(
        Arc::new(Fake(world.clone())),
        placed,
        targets(&labels),
        options,
        cancel.clone(),
    )
    .expect("launch starts");
    if let Some(at) = cancel_at {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            c.cancel();
        });
    }
    if let Some(at) = escalate_at {
        let e = handle.escalate.clone();
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            e.cancel();
        });
    }
    let mut events = Vec::new();
    while let Some(ev) = handle.events.recv().await {
        events.push(ev);
    }
    let result = handle.result.await.expect("launch ends");
    Ran {
        events,
        result,
        world,
    }
}
