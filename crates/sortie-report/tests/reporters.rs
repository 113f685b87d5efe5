//! Snapshot tests of every mode, from recorded event sequences.

mod common;

use common::*;
use sortie_events::{Event, Stream};
use sortie_report::{
    CaptureBuffer, ColorChoice, Fanout, Mode, PrefixStyle, Reporter, ReporterConfig, MESSAGE_LINES,
};
use std::io;

/// stdout and stderr in one buffer: what a terminal shows.
fn merged(mode: Mode, prefix: PrefixStyle, labels: Vec<String>, events: &[Event]) -> String {
    let buf = CaptureBuffer::new();
    let mut r = ReporterConfig::new(mode)
        .labels(labels)
        .prefix(prefix)
        .terminals(false, false)
        .stdout(Box::new(buf.clone()))
        .stderr(Box::new(buf.clone()))
        .build()
        .unwrap();
    replay(&mut r, events);
    buf.contents()
}

#[test]
fn line_mode_as_seen_on_a_terminal() {
    let text = merged(Mode::Line, PrefixStyle::Host, labels(), &exec7());
    insta::assert_snapshot!("line_exec_merged", text);
}

#[test]
fn line_mode_keeps_remote_stderr_and_summary_off_stdout() {
    let (cfg, out, err) = captured(Mode::Line);
    replay(&mut cfg.build().unwrap(), &exec7());
    let out = out.contents();
    let err = err.contents();
    insta::assert_snapshot!("line_exec_stdout", out);
    assert!(out
        .lines()
        .all(|l| l.starts_with("web0") && l[5..].starts_with(" | ")));
    assert!(err.contains("web04 ! check: ntp: offset 0.8s\n"));
    assert!(err.contains("exited non-zero (2): web04\n"));
    // Long lines are not truncated.
    assert!(err.contains("/var/log/app/worker-12.log 1.12G\n"));
    // The partial last line is printed.
    assert!(out.ends_with("web05 | waiting for lock /var/lib/dpkg/lock-frontend...\n"));
}

#[test]
fn labels_are_padded_to_the_longest_given() {
    let buf = CaptureBuffer::new();
    let mut r = ReporterConfig::new(Mode::Line)
        .labels(["a1", "db-primary"])
        .terminals(false, false)
        .summary(false)
        .stdout(Box::new(buf.clone()))
        .build()
        .unwrap();
    let ev = Event::Output {
        host: "a1".into(),
        job: 1,
        stream: Stream::Stdout,
        line: b"up".to_vec(),
        partial: false,
    };
    replay(&mut r, &[ev]);
    assert_eq!(buf.contents(), "a1         | up\n");
}

#[test]
fn stderr_lines_are_red_only_with_colour() {
    let coloured = |no_color: Option<&str>, term: bool, choice: ColorChoice| {
        let buf = CaptureBuffer::new();
        let mut r = ReporterConfig::new(Mode::Line)
            .labels(labels())
            .terminals(term, term)
            .status_line(false)
            .color(choice)
            .no_color_env(no_color.map(Into::into))
            .stdout(Box::new(buf.clone()))
            .stderr(Box::new(buf.clone()))
            .build()
            .unwrap();
        replay(&mut r, &exec7());
        buf.contents()
    };
    let on = coloured(None, true, ColorChoice::Auto);
    assert!(on.contains("\x1b[31mweb04 ! check: ntp: offset 0.8s\x1b[0m\n"));
    assert!(
        on.contains("web01 | checks passed\n"),
        "stdout lines stay plain"
    );
    assert!(!coloured(Some("1"), true, ColorChoice::Auto).contains('\x1b'));
    assert!(coloured(Some(""), true, ColorChoice::Auto).contains('\x1b'));
    assert!(!coloured(None, false, ColorChoice::Auto).contains('\x1b'));
    assert!(coloured(Some("1"), false, ColorChoice::Always).contains('\x1b'));
}

#[test]
fn group_mode_prints_each_distinct_output_once() {
    let (cfg, out, err) = captured(Mode::Group);
    replay(&mut cfg.build().unwrap(), &exec7());
    insta::assert_snapshot!("group_exec_stdout", out.contents());
    insta::assert_snapshot!("summary_exec", err.contents());
}

#[test]
fn group_mode_lists_hosts_that_printed_nothing() {
    let (cfg, out, _) = captured(Mode::Group);
    let mut events: Vec<Event> = exec7()
        .into_iter()
        .filter(|e| !matches!(e, Event::Output { host, .. } if host == "web03" || host == "web01"))
        .collect();
    events.retain(|e| !matches!(e, Event::Output { host, .. } if host == "web02"));
    replay(&mut cfg.build().unwrap(), &events);
    insta::assert_snapshot!("group_exec_silent_hosts", out.contents());
}

#[test]
fn out_dir_writes_raw_bytes_per_host_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("logs");
    let (cfg, out, _) = captured(Mode::OutDir(target.clone()));
    replay(&mut cfg.build().unwrap(), &exec7());
    assert_eq!(out.contents(), "", "nothing on stdout in out-dir mode");
    let mut listing = String::new();
    let mut names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for n in names {
        let body = std::fs::read_to_string(target.join(&n)).unwrap();
        listing.push_str(&format!("== {n} ({} bytes)\n{body}", body.len()));
        if !body.ends_with('\n') && !body.is_empty() {
            listing.push_str("<no newline at end>\n");
        }
    }
    insta::assert_snapshot!("outdir_exec", listing);
    assert_eq!(
        std::fs::read(target.join("web01.out")).unwrap(),
        b"6.1.0-18-amd64\nchecks passed\n"
    );
    assert_eq!(std::fs::read(target.join("web01.err")).unwrap(), b"");
    assert!(
        !target.join("web06.out").exists(),
        "unreachable hosts leave no files"
    );
}

#[test]
fn out_dir_for_run_uses_one_directory_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _, _) = captured(Mode::OutDir(dir.path().to_owned()));
    replay(
        &mut cfg.prefix(PrefixStyle::HostJob).build().unwrap(),
        &run4(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("a1/3.err")).unwrap(),
        b"part3: missing input\n"
    );
    assert_eq!(std::fs::read(dir.path().join("a1/3.out")).unwrap(), b"");
    assert_eq!(
        std::fs::read(dir.path().join("b22/4.out")).unwrap(),
        b"part4: 50%\npart4: 100%\n"
    );
}

#[test]
fn out_dir_that_cannot_be_created_is_refused_at_build() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let (cfg, _, _) = captured(Mode::OutDir(file.path().join("sub")));
    let err = cfg.build().err().expect("a file is in the way");
    assert!(err.to_string().contains("cannot create output directory"));
}

#[test]
fn json_mode_writes_one_parsable_event_per_line() {
    let (cfg, out, err) = captured(Mode::Json);
    let events = exec7();
    replay(&mut cfg.summary(false).build().unwrap(), &events);
    let text = out.contents();
    insta::assert_snapshot!("json_exec", text);
    let back: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
        .collect();
    assert_eq!(back, events);
    assert_eq!(err.contents(), "");
}

#[test]
fn run_line_mode_prefixes_host_and_job() {
    let labels = vec!["a1".to_string(), "b22".to_string()];
    let text = merged(Mode::Line, PrefixStyle::HostJob, labels, &run4());
    insta::assert_snapshot!("line_run_merged", text);
}

#[test]
fn run_per_job_mode_never_interleaves_jobs() {
    let labels = vec!["a1".to_string(), "b22".to_string()];
    let text = merged(Mode::PerJob, PrefixStyle::HostJob, labels, &run4());
    insta::assert_snapshot!("perjob_run_merged", text);
    // Each job's lines are contiguous.
    let prefixes: Vec<&str> = text
        .lines()
        .take_while(|l| l.contains(" | ") || l.contains(" ! "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for p in prefixes {
        if seen.last() != Some(&p) {
            assert!(!seen.contains(&p), "job {p} printed in two pieces:\n{text}");
            seen.push(p);
        }
    }
    assert_eq!(seen, ["a1/3", "b22/2", "a1/1", "b22/4"]);
}

#[test]
fn a_stream_cut_short_still_prints_what_was_held_and_a_summary() {
    let labels = vec!["a1".to_string(), "b22".to_string()];
    let mut events = run4();
    events.truncate(events.len() - 3); // b22/2, a1/1, b22/4 never finish; no RunFinished
    let text = merged(Mode::PerJob, PrefixStyle::HostJob, labels, &events);
    insta::assert_snapshot!("perjob_run_cut_short", text);
}

#[test]
fn long_connect_messages_are_cut_with_a_pointer_to_json() {
    let (cfg, _, err) = captured(Mode::Line);
    let message: String = (1..=10).map(|i| format!("detail line {i}\n")).collect();
    let events = vec![
        Event::RunStarted {
            hosts: 1,
            jobs: 1,
            command: "true".into(),
        },
        Event::HostFailed {
            host: "web01".into(),
            failure: sortie_events::ConnectFailure::AuthFailed,
            message,
        },
    ];
    replay(&mut cfg.build().unwrap(), &events);
    let err = err.contents();
    assert!(err.starts_with("\nauth failed: web01\n    detail line 1\n"));
    assert!(err.contains(&format!("detail line {}\n", MESSAGE_LINES - 1)));
    assert!(!err.contains(&format!("detail line {}\n", MESSAGE_LINES)));
    assert!(err.contains(&format!(
        "({} more lines in --json output)",
        11 - MESSAGE_LINES
    )));
}

struct Broken;
impl Reporter for Broken {
    fn report(&mut self, _: &Event) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
    }
}

#[test]
fn fanout_delivers_to_all_and_returns_the_first_error() {
    let buf = CaptureBuffer::new();
    let json = ReporterConfig::new(Mode::Json)
        .terminals(false, false)
        .summary(false)
        .stdout(Box::new(buf.clone()))
        .build()
        .unwrap();
    let mut f = Fanout::new().with(Box::new(Broken)).with(Box::new(json));
    let ev = Event::HostConnecting {
        host: "web01".into(),
    };
    let err = f.report(&ev).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(
        buf.contents(),
        "{\"event\":\"host_connecting\",\"host\":\"web01\"}\n"
    );
}

#[test]
fn the_built_reporter_can_move_to_the_runner_task() {
    fn is_send<T: Send>(_: &T) {}
    let (cfg, _, _) = captured(Mode::Line);
    is_send(&cfg.build().unwrap());
}

#[test]
fn an_interrupted_run_says_why_and_how_each_host_ended() {
    use sortie_events::{Counts, Outcome};
    use std::time::Duration;
    let fin = |h: &str, job: u64, outcome: Outcome| Event::JobFinished {
        host: h.into(),
        job,
        outcome,
        elapsed: Duration::from_secs(61),
    };
    let mut events = vec![Event::RunStarted {
        hosts: 5,
        jobs: 5,
        command: "./soak.sh".into(),
    }];
    events.extend([
        fin("web01", 1, Outcome::Ok),
        fin(
            "web02",
            2,
            Outcome::Signaled {
                signal: "SEGV".into(),
                core_dumped: true,
            },
        ),
        fin("web03", 3, Outcome::TimedOut),
        Event::RunCancelling {
            reason: "interrupted (Ctrl-C)".into(),
        },
        fin("web04", 4, Outcome::Interrupted),
        fin("web05", 5, Outcome::Interrupted),
        Event::RunFinished {
            counts: Counts {
                done: 1,
                failed: 4,
                ..Counts::default()
            },
            elapsed: Duration::from_secs(62),
            interrupted: true,
        },
    ]);
    let (cfg, _, err) = captured(Mode::Json);
    replay(&mut cfg.build().unwrap(), &events);
    insta::assert_snapshot!("summary_interrupted", err.contents());
}

/// Events recorded from `sortie exec --json` against a fixture sshd
/// (`refusals_for_the_same_reason_are_printed_once` in sortie-cli's tests, with
/// SORTIE_RECORD_EVENTS set): 127.0.0.1-2 ok, 127.0.0.3-12 with no known host key,
/// 127.0.0.13 with a changed key, 127.0.0.1:1 and 127.0.0.2:1 refusing connections.
fn recorded_refusals() -> Vec<Event> {
    include_str!("data/refused_exec.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a recorded event"))
        .collect()
}

#[test]
fn failure_reasons_are_printed_once_per_distinct_message() {
    let (cfg, _, err) = captured(Mode::Json);
    replay(&mut cfg.build().unwrap(), &recorded_refusals());
    let err = err.contents();
    insta::assert_snapshot!("summary_refusals_folded", err);
    assert!(err.contains("host key refused: 127.0.0.[3-12]\n"), "{err}");
    assert_eq!(err.matches("No host key is known for").count(), 1, "{err}");
    assert!(err.contains("unreachable: 127.0.0.[1-2]:1\n    {host}: Connection refused"));
}

#[test]
fn a_thousand_hosts_refused_alike_print_the_reason_once() {
    let (cfg, _, err) = captured(Mode::Json);
    let hosts: Vec<String> = (1..=1000).map(|i| format!("web{i:04}")).collect();
    let mut events = vec![Event::RunStarted {
        hosts: 1001,
        jobs: 1001,
        command: "true".into(),
    }];
    for h in &hosts {
        events.push(Event::HostFailed {
            host: h.clone(),
            failure: sortie_events::ConnectFailure::HostKeyRefused,
            message: format!(
                "No host key is known for {h} and strict host key checking is on.\n\
                 The fingerprint for the ssh-ed25519 key sent by {h} is\n  SHA256:same"
            ),
        });
    }
    // web1's message also names web10: not its own name, so it stays apart.
    events.push(Event::HostFailed {
        host: "web1".into(),
        failure: sortie_events::ConnectFailure::HostKeyRefused,
        message: "No host key is known for web1 and strict host key checking is on.\n\
                  The fingerprint for the ssh-ed25519 key sent by web10 is\n  SHA256:same"
            .into(),
    });
    replay(&mut cfg.build().unwrap(), &events);
    let err = err.contents();
    assert_eq!(
        err,
        "host key refused: web[0001-1000]\n\
         \x20   No host key is known for {host} and strict host key checking is on.\n\
         \x20   The fingerprint for the ssh-ed25519 key sent by {host} is\n\
         \x20     SHA256:same\n\
         host key refused: web1\n\
         \x20   No host key is known for web1 and strict host key checking is on.\n\
         \x20   The fingerprint for the ssh-ed25519 key sent by web10 is\n\
         \x20     SHA256:same\n\
         1001 hosts: 0 ok, 1001 failed, run did not finish\n"
    );
}
