//! Executor tests with an in-memory transport under paused time: rates, retries, halting,
//! refused channels, lost hosts and cancellation, without SSH.
//!
//! The fake host runs a tiny command language, `;`-separated: `sleep MS`, `echo TEXT`,
//! `exit N`, `failon HOST` (exit 1 on that host), `hang` (until stopped), `die` (the host's
//! connections are lost).

use super::*;
use async_trait::async_trait;
use bytes::Bytes;
use sortie_plan::{parse_rate, JobSource};
use std::collections::BTreeMap;
use std::sync::Mutex as StdMutex;

use crate::transport::{ByteStream, ConnectError, Exit, Process, ProcessEvent, SpawnError};

#[derive(Default)]
struct HostSim {
    max_sessions: Option<usize>,
    unreachable: bool,
    dead: bool,
    open: usize,
    connections: usize,
    /// pgid -> stop sender
    running: HashMap<u32, mpsc::Sender<Exit>>,
}

/// (host, command, env, start) of every started process.
type Started = (String, String, Vec<(String, String)>, Instant);

#[derive(Default)]
struct World {
    hosts: BTreeMap<String, HostSim>,
    next_pgid: u32,
    started: Vec<Started>,
    max_open: HashMap<String, usize>,
}

#[derive(Clone, Default)]
struct Fake(Arc<StdMutex<World>>);

impl Fake {
    fn host(&self, name: &str, f: impl FnOnce(&mut HostSim)) {
        f(self.0.lock().unwrap().hosts.entry(name.into()).or_default())
    }
    fn started(&self) -> Vec<Started> {
        self.0.lock().unwrap().started.clone()
    }
}

struct FakeConn {
    world: Fake,
    host: String,
    /// Channels open on this connection (MaxSessions is per connection).
    open: Arc<StdMutex<usize>>,
}

#[async_trait]
impl Transport for Fake {
    async fn connect(&self, target: &Target) -> Result<Arc<dyn Connection>, ConnectError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut w = self.0.lock().unwrap();
        let h = w.hosts.entry(target.hostname.clone()).or_default();
        if h.unreachable || h.dead {
            return Err(ConnectError::new(ConnectFailure::Unreachable, "refused"));
        }
        h.connections += 1;
        Ok(Arc::new(FakeConn {
            world: self.clone(),
            host: target.hostname.clone(),
            open: Arc::default(),
        }))
    }
}

#[async_trait]
impl Connection for FakeConn {
    async fn spawn(&self, command: &Command) -> Result<Process, SpawnError> {
        let (stop_tx, mut stop_rx) = mpsc::channel::<Exit>(1);
        let pgid = {
            let mut w = self.world.0.lock().unwrap();
            w.next_pgid += 1;
            let pgid = w.next_pgid;
            let h = w.hosts.get_mut(&self.host).unwrap();
            if h.dead {
                return Err(SpawnError::Lost("dead".into()));
            }
            let mut open = self.open.lock().unwrap();
            if h.max_sessions.is_some_and(|m| *open >= m) {
                return Err(SpawnError::ChannelRefused(
                    "administratively prohibited".into(),
                ));
            }
            *open += 1;
            h.open += 1;
            h.running.insert(pgid, stop_tx);
            let open = h.open;
            let m = w.max_open.entry(self.host.clone()).or_default();
            *m = (*m).max(open);
            w.started.push((
                self.host.clone(),
                command.command.clone(),
                command.env.clone(),
                Instant::now(),
            ));
            pgid
        };
        let (tx, rx) = mpsc::channel(16);
        let world = self.world.clone();
        let host = self.host.clone();
        // Template values arrive shell-quoted; the fake language has no quoting.
        let script = command.command.replace('\'', "");
        let conn_open = self.open.clone();
        tokio::spawn(async move {
            let run = async {
                for step in script.split(';').map(str::trim) {
                    let (op, arg) = step.split_once(' ').unwrap_or((step, ""));
                    match op {
                        "sleep" => {
                            tokio::time::sleep(Duration::from_millis(arg.parse().unwrap())).await
                        }
                        "echo" => {
                            let _ = tx
                                .send(ProcessEvent::Stdout(Bytes::from(format!("{arg}\n"))))
                                .await;
                        }
                        "exit" => return Exit::Code(arg.parse().unwrap()),
                        "failon" if arg == host => return Exit::Code(1),
                        "hang" => std::future::pending::<()>().await,
                        "die" => {
                            let senders: Vec<_> = {
                                let mut w = world.0.lock().unwrap();
                                let h = w.hosts.get_mut(&host).unwrap();
                                h.dead = true;
                                h.running.values().cloned().collect()
                            };
                            for s in senders {
                                let _ = s.try_send(Exit::Lost("connection reset".into()));
                            }
                            std::future::pending::<()>().await
                        }
                        _ => {}
                    }
                }
                Exit::Code(0)
            };
            let exit = tokio::select! {
                e = run => e,
                Some(e) = stop_rx.recv() => e,
            };
            {
                let mut w = world.0.lock().unwrap();
                let h = w.hosts.get_mut(&host).unwrap();
                h.open -= 1;
                h.running.remove(&pgid);
                *conn_open.lock().unwrap() -= 1;
            }
            let _ = tx.send(ProcessEvent::Exit(exit)).await;
        });
        Ok(Process {
            pgid: Some(pgid),
            events: rx,
        })
    }

    async fn stop(&self, pgid: u32, _sequence: &StopSequence) -> Result<(), SpawnError> {
        let s = {
            let w = self.world.0.lock().unwrap();
            let h = &w.hosts[&self.host];
            if h.dead {
                return Err(SpawnError::Lost("dead".into()));
            }
            if h.max_sessions
                .is_some_and(|m| *self.open.lock().unwrap() >= m)
            {
                return Err(SpawnError::ChannelRefused("full".into()));
            }
            h.running.get(&pgid).cloned()
        };
        if let Some(s) = s {
            let _ = s
                .send(Exit::Signal {
                    name: "TERM".into(),
                    core_dumped: false,
                })
                .await;
        }
        Ok(())
    }

    async fn signal(&self, _pgid: u32, _signal: &str) -> Result<(), SpawnError> {
        Ok(())
    }
    async fn subsystem(&self, _name: &str) -> Result<ByteStream, SpawnError> {
        Err(SpawnError::Other("no".into()))
    }
    async fn exec_stream(&self, _command: &str) -> Result<ByteStream, SpawnError> {
        Err(SpawnError::Other("no".into()))
    }
    fn is_closed(&self) -> bool {
        false
    }
    async fn close(&self) {}
}

fn target(name: &str) -> Target {
    Target::named(name)
}

fn job_set(values: &[&str]) -> JobSet {
    JobSet::new(vec![JobSource::list(values.iter().copied())]).unwrap()
}

struct Ran {
    events: Vec<Event>,
    result: RunResult,
}

impl Ran {
    fn finished(&self) -> Vec<(u64, String, Outcome)> {
        let mut v: Vec<_> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::JobFinished {
                    job, host, outcome, ..
                } => Some((*job, host.clone(), outcome.clone())),
                _ => None,
            })
            .collect();
        v.sort_by_key(|f| f.0);
        v
    }
}

async fn go(
    fake: &Fake,
    hosts: &[&str],
    values: &[&str],
    template: &str,
    options: RunOptions,
    cancel: CancellationToken,
) -> Ran {
    let jobs = job_set(values);
    let template = Template::parse(template, jobs.columns()).unwrap();
    let targets = hosts.iter().map(|h| target(h)).collect();
    let mut handle = run(
        Arc::new(fake.clone()),
        targets,
        jobs,
        template,
        options,
        cancel,
    )
    .unwrap();
    let mut events = Vec::new();
    while let Some(ev) = handle.events.recv().await {
        events.push(ev);
    }
    Ran {
        events,
        result: handle.result.await.unwrap(),
    }
}

#[tokio::test(start_paused = true)]
async fn rate_spaces_job_starts_globally() {
    let fake = Fake::default();
    let options = RunOptions {
        slots: 5,
        rate: Some(parse_rate("10/s").unwrap()),
        ..Default::default()
    };
    let ran = go(
        &fake,
        &["a", "b"],
        &["1", "2", "3", "4", "5"],
        "sleep 1000; echo {}",
        options,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(ran.result.counts.done, 5);
    let starts: Vec<Instant> = fake.started().iter().map(|s| s.3).collect();
    for w in starts.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(100),
            "starts {:?} apart",
            w[1] - w[0]
        );
    }
    // Not more than needed either: 5 starts 100 ms apart fit in well under a second.
    assert!(starts[4] - starts[0] < Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn failed_job_is_retried_on_the_other_host_and_finishes_once() {
    let fake = Fake::default();
    let options = RunOptions {
        retries: 1,
        ..Default::default()
    };
    let ran = go(
        &fake,
        &["a", "b"],
        &["x"],
        "failon a; sleep 10; echo ok",
        RunOptions {
            spread: Spread::RoundRobin,
            ..options
        },
        CancellationToken::new(),
    )
    .await;
    let hosts: Vec<String> = fake.started().into_iter().map(|s| s.0).collect();
    assert_eq!(hosts, ["a", "b"]);
    assert_eq!(ran.finished(), vec![(1, "b".into(), Outcome::Ok)]);
    assert_eq!(ran.result.counts.done, 1);
    assert_eq!(ran.result.counts.failed, 0);
}

#[tokio::test(start_paused = true)]
async fn refused_channels_open_more_connections_without_losing_or_repeating_jobs() {
    let fake = Fake::default();
    fake.host("a", |h| h.max_sessions = Some(3));
    let values: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let options = RunOptions {
        slots: 8,
        ..Default::default()
    };
    let ran = go(
        &fake,
        &["a"],
        &values,
        "sleep 50; echo {}",
        options,
        CancellationToken::new(),
    )
    .await;
    let finished = ran.finished();
    assert_eq!(finished.len(), 40);
    assert!(finished.iter().all(|f| f.2 == Outcome::Ok), "{finished:?}");
    let mut seqs: Vec<u64> = finished.iter().map(|f| f.0).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 40, "each job finished once");
    let started = fake.started();
    assert_eq!(started.len(), 40, "each job started once");
    let w = fake.0.lock().unwrap();
    assert!(
        w.hosts["a"].connections >= 3,
        "{}",
        w.hosts["a"].connections
    );
}

#[tokio::test(start_paused = true)]
async fn halt_now_stops_running_jobs_and_starts_nothing_more() {
    let fake = Fake::default();
    let options = RunOptions {
        slots: 3,
        halt: Some("now,fail=1".parse().unwrap()),
        ..Default::default()
    };
    let ran = go(
        &fake,
        &["a"],
        &["hang", "sleep 100; exit 4", "hang", "hang", "hang"],
        "{}",
        options,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(fake.started().len(), 3);
    let finished = ran.finished();
    assert_eq!(
        finished.iter().map(|f| f.2.clone()).collect::<Vec<_>>(),
        [
            Outcome::Interrupted,
            Outcome::Exited { code: 4 },
            Outcome::Interrupted
        ]
    );
    assert!(ran
        .events
        .iter()
        .any(|e| matches!(e, Event::RunCancelling { reason } if reason.contains("halt"))));
    assert!(!ran.result.interrupted);
}

#[tokio::test(start_paused = true)]
async fn lost_host_jobs_are_reported_lost_and_rerun_elsewhere_when_retries_allow() {
    for retries in [0, 1] {
        let fake = Fake::default();
        let options = RunOptions {
            slots: 2,
            retries,
            spread: Spread::RoundRobin,
            ..Default::default()
        };
        // Hosts fill in connection order: jobs 1 and 2 on a, 3 and 4 on b. Job 1 kills host
        // a after 50 ms while job 2 runs there (on b, job 1 just fails).
        let ran = go(
            &fake,
            &["a", "b"],
            &[
                "sleep 50; failon b; die",
                "sleep 500",
                "sleep 10",
                "sleep 10",
            ],
            "{}",
            options,
            CancellationToken::new(),
        )
        .await;
        let finished = ran.finished();
        assert_eq!(finished.len(), 4, "{finished:?}");
        let host_failed = ran
            .events
            .iter()
            .filter(|e| matches!(e, Event::HostFailed { host, failure: ConnectFailure::ConnectionLost, .. } if host == "a"))
            .count();
        assert_eq!(host_failed, 1);
        let lost = |seq: u64| {
            matches!(
                &finished[seq as usize - 1].2,
                Outcome::ConnectFailed {
                    failure: ConnectFailure::ConnectionLost,
                    ..
                }
            )
        };
        if retries == 0 {
            assert!(lost(1) && lost(2), "{finished:?}");
            assert_eq!(ran.result.counts.failed, 2);
        } else {
            assert_eq!(finished[1], (2, "b".into(), Outcome::Ok), "{finished:?}");
            assert_eq!(finished[0], (1, "b".into(), Outcome::Exited { code: 1 }));
        }
        // Host a was never used again after its loss.
        let starts = fake.started();
        let die_at = starts.iter().position(|s| s.1.contains("die")).unwrap();
        let a_later = starts[die_at + 1..]
            .iter()
            .filter(|s| s.0 == "a" && s.3 > starts[die_at].3 + Duration::from_millis(50))
            .count();
        assert_eq!(a_later, 0, "{starts:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_running_jobs_and_starts_no_more() {
    let fake = Fake::default();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.cancel();
    });
    let ran = go(
        &fake,
        &["a", "b"],
        &["1", "2", "3", "4"],
        "hang",
        RunOptions::default(),
        cancel,
    )
    .await;
    assert_eq!(fake.started().len(), 2);
    assert!(ran.result.interrupted);
    assert_eq!(
        ran.finished().into_iter().map(|f| f.2).collect::<Vec<_>>(),
        [Outcome::Interrupted, Outcome::Interrupted]
    );
}

#[tokio::test(start_paused = true)]
async fn env_reaches_the_command_but_no_event_or_joblog_row() {
    let fake = Fake::default();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let options = RunOptions {
        env: vec![("TOKEN".into(), "hunter2".into())],
        joblog: Some(log.clone()),
        results: Some(dir.path().join("res")),
        ..Default::default()
    };
    let ran = go(
        &fake,
        &["a"],
        &["7"],
        "echo {}; exit 3",
        options,
        CancellationToken::new(),
    )
    .await;
    // The user's variables, then GNU parallel's for the job.
    let env: Vec<(String, String)> = [
        ("TOKEN", "hunter2"),
        ("PARALLEL_SEQ", "1"),
        ("PARALLEL_JOBSLOT", "1"),
        ("PARALLEL_SSHLOGIN", "a"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(fake.started()[0].2, env);
    for e in &ran.events {
        assert!(!e.to_json_line().contains("hunter2"));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("hunter2"));
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows[0].join("\t"), JOBLOG_HEADER);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[1][0], rows[1][1], rows[1][5], rows[1][6], rows[1][7], rows[1][8]),
        ("1", "a", "2", "3", "0", "echo 7; exit 3")
    );
    let res = dir.path().join("res/1");
    assert_eq!(std::fs::read_to_string(res.join("stdout")).unwrap(), "7\n");
    assert_eq!(std::fs::read_to_string(res.join("stderr")).unwrap(), "");
    assert_eq!(std::fs::read_to_string(res.join("exit")).unwrap(), "3\n");
}

#[tokio::test(start_paused = true)]
async fn resume_failed_reruns_exactly_the_failed_jobs() {
    let fake = Fake::default();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let values = ["exit 0", "exit 1", "exit 0", "exit 2"];
    let options = RunOptions {
        slots: 4,
        joblog: Some(log.clone()),
        ..Default::default()
    };
    go(
        &fake,
        &["a"],
        &values,
        "{}",
        options.clone(),
        CancellationToken::new(),
    )
    .await;
    let again = Fake::default();
    let ran = go(
        &again,
        &["a"],
        &values,
        "{}",
        RunOptions {
            resume: Resume::Failed,
            ..options.clone()
        },
        CancellationToken::new(),
    )
    .await;
    let seqs: Vec<u64> = ran.finished().iter().map(|f| f.0).collect();
    assert_eq!(seqs, [2, 4]);
    // Plain resume now skips everything.
    let third = Fake::default();
    let ran = go(
        &third,
        &["a"],
        &values,
        "{}",
        RunOptions {
            resume: Resume::All,
            ..options
        },
        CancellationToken::new(),
    )
    .await;
    assert!(ran.finished().is_empty());
    assert!(third.started().is_empty());
    let rows = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(rows, 1 + 4 + 2, "header, first run, reruns");
}

#[tokio::test(start_paused = true)]
async fn unreachable_hosts_leave_jobs_to_the_others_and_none_left_abandons() {
    let fake = Fake::default();
    fake.host("a", |h| h.unreachable = true);
    let ran = go(
        &fake,
        &["a", "b"],
        &["1", "2", "3"],
        "echo {}",
        RunOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(ran
        .finished()
        .iter()
        .all(|f| f.1 == "b" && f.2 == Outcome::Ok));
    let fake = Fake::default();
    fake.host("a", |h| h.unreachable = true);
    let ran = go(
        &fake,
        &["a"],
        &["1", "2"],
        "echo {}",
        RunOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(ran.finished().len(), 2);
    assert_eq!(ran.result.counts.failed, 2);
}

#[test]
fn halt_values_parse_like_gnu_parallel() {
    assert_eq!(
        "soon,fail=20%".parse::<Halt>().unwrap(),
        Halt {
            when: HaltWhen::Soon,
            fail: FailThreshold::Percent(20.0)
        }
    );
    assert_eq!("now".parse::<Halt>().unwrap().fail, FailThreshold::Count(1));
    let e = "later,fail=3".parse::<Halt>().unwrap_err();
    assert!(e.to_string().contains("expected `now` or `soon`"), "{e}");
    assert!("now,fail=0".parse::<Halt>().is_err());
    assert!("now,fail=x%".parse::<Halt>().is_err());
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let jobs = job_set(&["1"]);
        let t = Template::parse("echo {}", jobs.columns()).unwrap();
        let fake: Arc<dyn Transport> = Arc::new(Fake::default());
        let cancel = CancellationToken::new();
        let r = run(
            fake.clone(),
            vec![target("a")],
            jobs.clone(),
            t.clone(),
            RunOptions {
                resume: Resume::All,
                ..Default::default()
            },
            cancel.clone(),
        );
        assert!(matches!(r, Err(RunError::ResumeWithoutJoblog)));
        let r = run(
            fake,
            vec![target("a")],
            jobs,
            t,
            RunOptions {
                slots: 0,
                ..Default::default()
            },
            cancel,
        );
        assert!(matches!(r, Err(RunError::ZeroSlots)));
    });
}
