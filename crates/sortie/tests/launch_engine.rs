//! The launch lifecycle on an in-memory transport under paused time: rates, spacing,
//! `max_starting`, dependencies, readiness timeout, fail lines, holding, stop sequences and
//! graces, dependents stopped first, restarts, lost hosts, interrupts and escalation.

mod launch_support;

use std::time::Duration;

use launch_support::run_plan;
use sortie::launch::{Ending, LaunchEvent, Phase};

const MS: Duration = Duration::from_millis(1);

fn plan(roles: &str, run: &str) -> String {
    format!(
        r#"
[data.channels]
values = ["c1", "c2", "c3"]
column = "channel"
{roles}
[run]
{run}
"#
    )
}

#[tokio::test(start_paused = true)]
async fn role_rate_and_per_key_spacing_pace_the_starts() {
    let p = plan(
        r#"
[roles.w]
hosts = "h[1-2]"
for_each = "channels"
count = 2
command = "fake ready=100"
ready = 'READY'
rate = "5/s"
min_spacing_per_key = "700ms"
stop = [{ signal = "INT", grace = "1s" }]
"#,
        "duration = \"1s\"",
    );
    let ran = run_plan(&p, |_| {}, None, None).await;
    // start order: c1#1 c2#1 c3#1 c1#2 c2#2 c3#2; 200 ms apart, but c1#2 waits 700 ms after c1#1
    let first = ran.started_at("w/c1#1");
    let t = |id: &str| ran.started_at(id) - first;
    assert_eq!(t("w/c2#1"), 200);
    assert_eq!(t("w/c3#1"), 400);
    assert_eq!(t("w/c1#2"), 700);
    assert_eq!(t("w/c2#2"), 900);
    assert_eq!(t("w/c3#2"), 1100);
    assert!(ran
        .result
        .report
        .processes
        .iter()
        .all(|p| p.ending == Ending::ReadyThenStopped));
}

#[tokio::test(start_paused = true)]
async fn run_rate_applies_across_roles_and_max_starting_caps_in_flight() {
    let p = plan(
        r#"
[roles.a]
hosts = "h1"
for_each = "channels"
command = "fake ready=1000"
ready = 'READY'
[roles.b]
hosts = "h2"
for_each = "channels"
command = "fake ready=1000"
ready = 'READY'
"#,
        "duration = \"1s\"\nrate = \"10/s\"\nmax_starting = 2",
    );
    let ran = run_plan(&p, |_| {}, None, None).await;
    let mut starting = 0i64;
    let mut last_start: Option<u64> = None;
    for e in &ran.events {
        match e {
            LaunchEvent::ProcessStarting { at_ms, .. } => {
                starting += 1;
                assert!(starting <= 2, "more than max_starting in flight");
                if let Some(l) = last_start {
                    assert!(at_ms - l >= 100, "run rate 10/s broken: {l} then {at_ms}");
                }
                last_start = Some(*at_ms);
            }
            LaunchEvent::ProcessReady { .. } => starting -= 1,
            _ => {}
        }
    }
    assert_eq!(
        ran.result
            .report
            .roles
            .iter()
            .map(|r| r.ready)
            .sum::<usize>(),
        6
    );
}

#[tokio::test(start_paused = true)]
async fn no_viewer_starts_before_its_masters_ready_line() {
    let p = plan(
        r#"
[roles.master]
hosts = "m[1-2]"
for_each = "channels"
command = "fake ready=300 {channel}"
ready = 'READY'
rate = "2/s"
[roles.viewer]
hosts = "v[1-2]"
for_each = "channels"
count = 2
after = "master"
after_mode = "same-key"
command = "fake ready=50 {channel}"
ready = 'READY'
"#,
        "duration = \"500ms\"",
    );
    let ran = run_plan(&p, |_| {}, None, None).await;
    for ch in ["c1", "c2", "c3"] {
        let master_ready = ran.ready_at(&format!("master/{ch}")).unwrap();
        for n in 1..=2 {
            let v = ran.started_at(&format!("viewer/{ch}#{n}"));
            assert!(
                v >= master_ready,
                "viewer {ch}#{n} at {v} before master ready {master_ready}"
            );
        }
    }
    // viewers of c1 did not wait for master c3
    assert!(ran.started_at("viewer/c1#1") < ran.ready_at("master/c3").unwrap());
}

#[tokio::test(start_paused = true)]
async fn ready_timeout_and_fail_line_are_reported_with_host_and_key() {
    let p = r#"
[roles.slow]
hosts = "h1"
command = "fake"
ready = 'READY'
ready_timeout = "5s"
stop = [{ signal = "INT", grace = "2s" }]
[roles.bad]
hosts = "h2"
command = "fake fail=300 ready=1000"
ready = 'READY'
fail = ['ERROR \w+']
[run]
duration = "1s"
"#;
    let ran = run_plan(p, |_| {}, None, None).await;
    let timeout = ran
        .events
        .iter()
        .find_map(|e| match e {
            LaunchEvent::ProcessFailed {
                process,
                ending: Ending::ReadyTimeout { timeout_ms },
                at_ms,
                ..
            } => Some((process.clone(), *timeout_ms, *at_ms)),
            _ => None,
        })
        .expect("a ready timeout");
    assert_eq!(
        (timeout.0.id.as_str(), timeout.0.host.as_str()),
        ("slow/slow", "h1")
    );
    assert_eq!(timeout.1, 5000);
    let started = ran.started_at("slow/slow");
    assert_eq!(timeout.2 - started, 5000);

    let bad = ran.process("bad/bad");
    assert_eq!(bad.host, "h2");
    assert_eq!(
        bad.ending,
        Ending::Failed {
            pattern: "ERROR \\w+".into(),
            line: "ERROR boom".into()
        }
    );
    assert_eq!(bad.first_failure_line.as_deref(), Some("ERROR boom"));
    assert_eq!(
        ran.process("slow/slow").ending,
        Ending::ReadyTimeout { timeout_ms: 5000 }
    );
    // the failed processes were stopped, and nothing is left
    assert_eq!(ran.alive(), 0);
    assert_eq!(ran.result.report.failed(), 2);
}

#[tokio::test(start_paused = true)]
async fn duration_ends_with_int_first_and_dependents_stop_before_masters() {
    let p = plan(
        r#"
[roles.master]
hosts = "m1"
for_each = "channels"
command = "fake ready=100 master"
ready = 'READY'
stop = [{ signal = "INT", grace = "20s" }, { signal = "TERM", grace = "5s" }]
[roles.viewer]
hosts = "v1"
for_each = "channels"
after = "master"
command = "fake ready=100 viewer"
ready = 'READY'
stop = [{ signal = "INT", grace = "3s" }]
"#,
        "duration = \"10s\"",
    );
    let ran = run_plan(&p, |_| {}, None, None).await;
    // hold started once everything was ready, and lasted the duration
    let holding = ran
        .events
        .iter()
        .find_map(|e| match e {
            LaunchEvent::PhaseChanged {
                phase: Phase::Holding,
                at_ms,
            } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    let stopping = ran
        .events
        .iter()
        .find_map(|e| match e {
            LaunchEvent::PhaseChanged {
                phase: Phase::Stopping,
                at_ms,
            } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    assert_eq!(stopping - holding, 10_000);
    for (_, sig) in ran.signals() {
        assert_eq!(sig.first().map(String::as_str), Some("INT"));
    }
    // every viewer stopped before the first master was stopped
    let pos = |pred: &dyn Fn(&LaunchEvent) -> bool| ran.events.iter().position(pred);
    let last_viewer = ran
        .events
        .iter()
        .rposition(|e| matches!(e, LaunchEvent::ProcessStopped { process, .. } if process.role == "viewer"))
        .unwrap();
    let first_master = pos(
        &|e| matches!(e, LaunchEvent::ProcessStopped { process, .. } if process.role == "master"),
    )
    .unwrap();
    assert!(last_viewer < first_master);
    assert!(ran
        .result
        .report
        .processes
        .iter()
        .all(|p| p.ending == Ending::ReadyThenStopped));
    assert_eq!(ran.result.report.stop_check.survivors, vec![]);
    assert!(ran.result.thresholds_passed);
}

#[tokio::test(start_paused = true)]
async fn a_process_ignoring_int_gets_term_after_the_grace() {
    let p = r#"
[roles.stubborn]
hosts = "h1"
command = "fake ready=10 ignore-int"
ready = 'READY'
stop = [{ signal = "INT", grace = "3s" }, { signal = "TERM", grace = "1s" }]
[run]
duration = "1s"
"#;
    let ran = run_plan(p, |_| {}, None, None).await;
    let (_, sig) = &ran.signals()[0];
    assert_eq!(sig, &vec!["INT".to_string(), "TERM".to_string()]);
    let stopping = ran
        .events
        .iter()
        .find_map(|e| match e {
            LaunchEvent::PhaseChanged {
                phase: Phase::Stopping,
                at_ms,
            } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    let exited = ran
        .events
        .iter()
        .find_map(|e| match e {
            LaunchEvent::ProcessStopped { at_ms, exit, .. } => Some((*at_ms, exit.code)),
            _ => None,
        })
        .unwrap();
    // TERM came after the 3 s grace (50 ms polls)
    assert!(
        (3000..3200).contains(&(exited.0 - stopping)),
        "{exited:?} {stopping}"
    );
    assert_eq!(exited.1, Some(143));
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_up_to_max_restarts() {
    let p = r#"
[roles.flaky]
hosts = "h1"
command = "fake ready=10 exit=1@500"
ready = 'READY'
restart = "on-failure"
max_restarts = 2
[run]
duration = "10s"
[[thresholds]]
metric = "restarts"
max = 1
"#;
    let ran = run_plan(p, |_| {}, None, None).await;
    let pr = ran.process("flaky/flaky");
    assert_eq!(pr.restarts, 2);
    assert_eq!(pr.attempts, 3);
    assert_eq!(
        pr.ending,
        Ending::ExitedEarly {
            code: Some(1),
            signal: None
        }
    );
    assert!(!ran.result.thresholds_passed);
    assert_eq!(ran.result.report.thresholds[0].value, Some(2.0));
}

#[tokio::test(start_paused = true)]
async fn a_lost_host_moves_its_processes_when_the_policy_allows() {
    // the process placed on h1 drops h1's connection after 1 s
    let p = r#"
[groups.pool]
hosts = ["h1", "h2"]
[data.k]
columns = ["name", "extra"]
rows = [["a", "lose=1000@h1"], ["b", "-"]]
[roles.w]
group = "pool"
for_each = "k"
command = "fake ready=10 {=extra=}"
ready = 'READY'
restart = "on-failure"
[run]
duration = "5s"
reconnect_window = "1s"
"#;
    let ran = run_plan(p, |_| {}, None, None).await;
    // first a disconnect (the process runs on), then the loss once the window has passed
    let at = |f: &dyn Fn(&LaunchEvent) -> bool| ran.events.iter().position(f);
    let disc = at(&|e| matches!(e, LaunchEvent::HostDisconnected { host, .. } if host == "h1"));
    let lost = at(&|e| matches!(e, LaunchEvent::HostLost { host, .. } if host == "h1"));
    assert!(
        disc.is_some() && lost.is_some() && disc < lost,
        "{:?}",
        ran.events
    );
    let a = ran.process("w/a");
    assert_eq!(a.planned_host, "h1");
    assert_eq!(a.host, "h2");
    assert_eq!(a.restarts, 1);
    assert_eq!(a.ending, Ending::ReadyThenStopped);
    assert_eq!(ran.process("w/b").ending, Ending::ReadyThenStopped);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_host_leaves_its_processes_never_started() {
    let p = r#"
[roles.w]
hosts = "h[1-2]"
count = 2
command = "fake ready=10"
ready = 'READY'
[run]
duration = "1s"
"#;
    let ran = run_plan(p, |w| w.down.push("h2".into()), None, None).await;
    let never: Vec<_> = ran
        .result
        .report
        .processes
        .iter()
        .filter(|p| matches!(&p.ending, Ending::NeverStarted { reason } if reason.contains("h2") && reason.contains("refused")))
        .collect();
    assert_eq!(never.len(), 1);
    assert_eq!(ran.result.report.roles[0].ready, 1);
}

#[tokio::test(start_paused = true)]
async fn interrupt_while_starting_stops_everything_and_skips_the_rest() {
    let p = plan(
        r#"
[roles.w]
hosts = "h1"
for_each = "channels"
count = 3
command = "fake ready=100"
ready = 'READY'
rate = "1/s"
stop = [{ signal = "INT", grace = "5s" }]
"#,
        "",
    );
    let ran = run_plan(&p, |_| {}, Some(2500 * MS), None).await;
    assert!(ran.result.interrupted);
    assert_eq!(ran.alive(), 0);
    let r = &ran.result.report;
    let started = r.processes.iter().filter(|p| p.attempts > 0).count();
    assert_eq!(started, 3);
    assert!(r.processes.iter().filter(|p| p.attempts == 0).all(
        |p| matches!(&p.ending, Ending::NeverStarted { reason } if reason.contains("interrupted"))
    ));
    for (_, sig) in ran.signals() {
        assert_eq!(sig, vec!["INT".to_string()]);
    }
}

#[tokio::test(start_paused = true)]
async fn interrupt_while_holding_then_escalation_kills_at_once() {
    let p = r#"
[roles.stubborn]
hosts = "h1"
count = 2
command = "fake ready=10 ignore-int"
ready = 'READY'
stop = [{ signal = "INT", grace = "60s" }]
"#;
    // no duration: holds until interrupted; the second interrupt comes 1 s into the grace
    let ran = run_plan(p, |_| {}, Some(2000 * MS), Some(3000 * MS)).await;
    assert!(ran.result.interrupted);
    assert_eq!(ran.alive(), 0);
    for (_, sig) in ran.signals() {
        assert_eq!(sig, vec!["INT".to_string(), "KILL".to_string()]);
    }
    let finished = ran
        .events
        .iter()
        .find_map(|e| match e {
            LaunchEvent::LaunchFinished { elapsed_ms, .. } => Some(*elapsed_ms),
            _ => None,
        })
        .unwrap();
    assert!(
        finished < 4000,
        "escalation waited for the grace: {finished}"
    );
}

#[tokio::test(start_paused = true)]
async fn events_and_report_never_hold_controller_secrets() {
    let p = r#"
[roles.w]
hosts = "h1"
command = "fake ready=10"
ready = 'READY'
env_from_controller = ["SECRET_TOKEN"]
[run]
duration = "1s"
"#;
    let ran = run_plan(p, |_| {}, None, None).await;
    let all: String = ran.events.iter().map(|e| e.to_json()).collect();
    assert!(!all.contains("s3cr3t-value"));
    assert!(!ran.result.report.to_json_pretty().contains("s3cr3t-value"));
    assert_eq!(ran.process("w/w").ending, Ending::ReadyThenStopped);
}
