//! Recorded event sequences replayed through the reporters (durations fixed, no network).

#![allow(dead_code)]

use sortie_events::{ConnectFailure, Counts, Event, Outcome, Stream};
use sortie_report::{CaptureBuffer, Fanout, Mode, Reporter, ReporterConfig};
use std::time::Duration;

pub const UNREACHABLE: &str = "connect to 10.0.0.6:22: Connection refused (os error 111)";
pub const HOSTKEY: &str = "host key for web07 (10.0.0.7:22) does not match the recorded key
  offered:  ssh-ed25519 SHA256:Xb3f9kq1sR0vJm7cYpLw2eH8tN5uQ4zA6dG1iK0oE2M
  recorded: /home/qa/.ssh/known_hosts:14
if web07 was reinstalled, remove the old key: ssh-keygen -R web07";

pub fn labels() -> Vec<String> {
    (1..=7).map(|i| format!("web{i:02}")).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn out(host: &str, job: u64, stream: Stream, line: &str) -> Event {
    Event::Output {
        host: host.into(),
        job,
        stream,
        line: line.as_bytes().to_vec(),
        partial: false,
    }
}

fn progress(
    pending: usize,
    connecting: usize,
    running: usize,
    done: usize,
    failed: usize,
) -> Event {
    Event::Progress {
        counts: Counts {
            pending,
            connecting,
            running,
            done,
            failed,
        },
    }
}

/// `sortie exec web[01-07] 'uname -r && ./check.sh'`:
/// web01-02 identical output, web03 a different kernel, web04 exits 2 with stdout and stderr
/// interleaved and a long line, web05 killed by TERM with a partial last line, web06
/// unreachable, web07 host key refused (multi-line message).
pub fn exec7() -> Vec<Event> {
    use Stream::*;
    let mut ev = vec![Event::RunStarted {
        hosts: 7,
        jobs: 7,
        command: "uname -r && ./check.sh".into(),
    }];
    for h in labels() {
        ev.push(Event::HostConnecting { host: h });
    }
    ev.push(progress(0, 7, 0, 0, 0));
    for (i, h) in ["web01", "web02", "web03", "web04", "web05"]
        .iter()
        .enumerate()
    {
        ev.push(Event::HostConnected {
            host: (*h).into(),
            elapsed: ms(120 + 10 * i as u64),
        });
    }
    ev.push(Event::HostFailed {
        host: "web06".into(),
        failure: ConnectFailure::Unreachable,
        message: UNREACHABLE.into(),
    });
    ev.push(Event::JobFinished {
        host: "web06".into(),
        job: 6,
        outcome: Outcome::ConnectFailed {
            failure: ConnectFailure::Unreachable,
            message: UNREACHABLE.into(),
        },
        elapsed: Duration::ZERO,
    });
    ev.push(Event::HostFailed {
        host: "web07".into(),
        failure: ConnectFailure::HostKeyRefused,
        message: HOSTKEY.into(),
    });
    ev.push(Event::JobFinished {
        host: "web07".into(),
        job: 7,
        outcome: Outcome::ConnectFailed {
            failure: ConnectFailure::HostKeyRefused,
            message: HOSTKEY.into(),
        },
        elapsed: Duration::ZERO,
    });
    for (i, h) in ["web01", "web02", "web03", "web04", "web05"]
        .iter()
        .enumerate()
    {
        ev.push(Event::JobStarted {
            host: (*h).into(),
            job: i as u64 + 1,
            command: "uname -r && ./check.sh".into(),
        });
    }
    ev.push(progress(0, 0, 5, 0, 2));
    let long = format!(
        "check: disk: /var 91% full; largest: {}",
        (1..=12)
            .map(|i| format!("/var/log/app/worker-{i:02}.log 1.{i}G"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ev.extend([
        out("web01", 1, Stdout, "6.1.0-18-amd64"),
        out("web04", 4, Stdout, "6.1.0-18-amd64"),
        out("web02", 2, Stdout, "6.1.0-18-amd64"),
        out("web04", 4, Stderr, "check: ntp: offset 0.8s"),
        out("web03", 3, Stdout, "6.1.0-17-amd64"),
        out("web05", 5, Stdout, "6.1.0-18-amd64"),
        out("web01", 1, Stdout, "checks passed"),
        out("web04", 4, Stdout, "ntp ok"),
        out("web02", 2, Stdout, "checks passed"),
        out("web04", 4, Stderr, &long),
        out("web03", 3, Stdout, "checks passed"),
        out("web04", 4, Stdout, "checks failed: 1 of 2"),
        Event::Output {
            host: "web05".into(),
            job: 5,
            stream: Stdout,
            line: b"waiting for lock /var/lib/dpkg/lock-frontend...".to_vec(),
            partial: true,
        },
    ]);
    let fin = |h: &str, job: u64, outcome: Outcome, t: u64| Event::JobFinished {
        host: h.into(),
        job,
        outcome,
        elapsed: ms(t),
    };
    ev.extend([
        fin("web01", 1, Outcome::Ok, 1250),
        fin("web02", 2, Outcome::Ok, 1310),
        fin("web03", 3, Outcome::Ok, 1402),
        progress(0, 0, 2, 3, 2),
        fin("web04", 4, Outcome::Exited { code: 2 }, 2100),
        fin(
            "web05",
            5,
            Outcome::Signaled {
                signal: "TERM".into(),
                core_dumped: false,
            },
            4010,
        ),
        progress(0, 0, 0, 3, 4),
        Event::RunFinished {
            counts: Counts {
                pending: 0,
                connecting: 0,
                running: 0,
                done: 3,
                failed: 4,
            },
            elapsed: ms(4210),
            interrupted: false,
        },
    ]);
    ev
}

/// `sortie run -S a1,b22 -j 2`: four jobs on two hosts, two slots each, output interleaved
/// across jobs; job 3 exits 1.
pub fn run4() -> Vec<Event> {
    use Stream::*;
    let start = |h: &str, job: u64| Event::JobStarted {
        host: h.into(),
        job,
        command: format!("./encode.sh part{job}"),
    };
    let fin = |h: &str, job: u64, outcome: Outcome, t: u64| Event::JobFinished {
        host: h.into(),
        job,
        outcome,
        elapsed: ms(t),
    };
    vec![
        Event::RunStarted {
            hosts: 2,
            jobs: 4,
            command: "./encode.sh {}".into(),
        },
        Event::HostConnecting { host: "a1".into() },
        Event::HostConnecting { host: "b22".into() },
        Event::HostConnected {
            host: "a1".into(),
            elapsed: ms(90),
        },
        Event::HostConnected {
            host: "b22".into(),
            elapsed: ms(95),
        },
        start("a1", 1),
        start("b22", 2),
        start("a1", 3),
        start("b22", 4),
        out("a1", 1, Stdout, "part1: 10%"),
        out("b22", 2, Stdout, "part2: 10%"),
        out("a1", 3, Stderr, "part3: missing input"),
        out("a1", 1, Stdout, "part1: 100%"),
        out("b22", 4, Stdout, "part4: 50%"),
        out("b22", 2, Stdout, "part2: 100%"),
        fin("a1", 3, Outcome::Exited { code: 1 }, 300),
        out("b22", 4, Stdout, "part4: 100%"),
        fin("b22", 2, Outcome::Ok, 900),
        fin("a1", 1, Outcome::Ok, 1000),
        fin("b22", 4, Outcome::Ok, 1100),
        Event::RunFinished {
            counts: Counts {
                pending: 0,
                connecting: 0,
                running: 0,
                done: 3,
                failed: 1,
            },
            elapsed: ms(1150),
            interrupted: false,
        },
    ]
}

/// A config with captured writers, no terminal, no colour: (config, stdout, stderr).
pub fn captured(mode: Mode) -> (ReporterConfig, CaptureBuffer, CaptureBuffer) {
    let (o, e) = (CaptureBuffer::new(), CaptureBuffer::new());
    let cfg = ReporterConfig::new(mode)
        .labels(labels())
        .terminals(false, false)
        .no_color_env(None)
        .stdout(Box::new(o.clone()))
        .stderr(Box::new(e.clone()));
    (cfg, o, e)
}

/// Replays `events` through `r` and finishes it.
pub fn replay(r: &mut Fanout, events: &[Event]) {
    for e in events {
        r.report(e).expect("report");
    }
    r.finish().expect("finish");
}
