//! The launch core with inputs and a fake clock: no runtime, no transport, no process. Each
//! test feeds what the driver would report and checks the actions a driver would perform.

use std::sync::Arc;
use std::time::Duration;

use sortie_events::launch::{Ending, LaunchEvent, Phase};
use tokio::time::Instant;

use super::{Action, Core, Input, Settings};
use crate::transport::Exit;

const MS: Duration = Duration::from_millis(1);

/// A core for `roles` (TOML) over three channels, at fake instant `t0`.
fn core(roles: &str, run: &str) -> (Core, Instant) {
    let text = format!(
        "[data.channels]\nvalues = [\"c1\", \"c2\", \"c3\"]\ncolumn = \"channel\"\n{roles}\n[run]\n{run}\n"
    );
    let spec = sortie_plan::launch::load_str("plan.toml", &text, ".".as_ref(), &[])
        .expect("plan is valid");
    let plan = spec.place(&Default::default()).expect("plan places");
    let settings = Settings {
        run_id: "test".into(),
        run_dir: None,
        restart_delay: Duration::from_secs(1),
        stop_patience: Duration::from_secs(15),
        controller_env: Arc::new(|_| None),
    };
    let t0 = Instant::now();
    (Core::new(plan, settings, t0, chrono::Utc::now()), t0)
}

/// The processes started by `actions`: (index, attempt).
fn starts(actions: &[Action]) -> Vec<(usize, u32)> {
    (actions.iter())
        .filter_map(|a| match a {
            Action::Start { idx, attempt, .. } => Some((*idx, *attempt)),
            _ => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<&LaunchEvent> {
    (actions.iter())
        .filter_map(|a| match a {
            Action::Emit(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

fn phases(actions: &[Action]) -> Vec<Phase> {
    (events(actions).into_iter())
        .filter_map(|e| match e {
            LaunchEvent::PhaseChanged { phase, .. } => Some(*phase),
            _ => None,
        })
        .collect()
}

/// Stop actions as (host, pgids, first signal).
fn stops(actions: &[Action]) -> Vec<(usize, Vec<u32>, String)> {
    (actions.iter())
        .filter_map(|a| match a {
            Action::Stop {
                host, pgids, steps, ..
            } => Some((*host, pgids.clone(), steps[0].0.clone())),
            _ => None,
        })
        .collect()
}

const MASTERS_AND_VIEWERS: &str = r#"
[roles.master]
hosts = "h1"
for_each = "channels"
command = "m {channel}"
ready = 'UP'
stop = [{ signal = "INT", grace = "2s" }]
[roles.viewer]
hosts = "h2"
for_each = "channels"
after = "master"
after_mode = "same-key"
command = "v {channel}"
ready = 'UP'
stop = [{ signal = "TERM", grace = "1s" }]
"#;

#[test]
fn nothing_starts_before_its_host_is_up_and_viewers_wait_for_their_masters_ready_line() {
    let (mut c, t0) = core(MASTERS_AND_VIEWERS, "duration = \"10s\"");
    let a = c.on(Input::Begin, t0);
    assert!(starts(&a).is_empty());
    assert!(matches!(
        events(&a)[0],
        LaunchEvent::LaunchStarted { processes: 6, .. }
    ));
    let a = c.on(
        Input::HostUp {
            host: 0,
            elapsed: MS,
        },
        t0,
    );
    assert_eq!(
        starts(&a),
        vec![(0, 1), (1, 1), (2, 1)],
        "the three masters"
    );
    let a = c.on(
        Input::HostUp {
            host: 1,
            elapsed: MS,
        },
        t0,
    );
    assert!(
        starts(&a).is_empty(),
        "no viewer before its master is ready"
    );
    let a = c.on(Input::Ready { idx: 1, attempt: 1 }, t0 + 300 * MS);
    assert_eq!(starts(&a), vec![(4, 1)], "the viewer of c2 only");
    assert!(events(&a).iter().any(|e| matches!(e,
        LaunchEvent::ProcessReady { process, time_to_ready_ms: 300, .. } if process.id == "master/c2")));
}

#[test]
fn a_failed_master_leaves_its_viewer_never_started_and_the_hold_ends_with_dependents_first() {
    let (mut c, t0) = core(MASTERS_AND_VIEWERS, "duration = \"10s\"");
    c.on(Input::Begin, t0);
    c.on(
        Input::HostUp {
            host: 0,
            elapsed: MS,
        },
        t0,
    );
    c.on(
        Input::HostUp {
            host: 1,
            elapsed: MS,
        },
        t0,
    );
    for idx in 0..3 {
        let pgid = Some(100 + idx as u32);
        c.on(
            Input::Spawned {
                idx,
                attempt: 1,
                pgid,
            },
            t0 + MS,
        );
    }
    c.on(Input::Ready { idx: 0, attempt: 1 }, t0 + 10 * MS);
    c.on(Input::Ready { idx: 1, attempt: 1 }, t0 + 10 * MS);
    let line = "error 0x5d".to_string();
    let a = c.on(
        Input::FailLine {
            idx: 2,
            attempt: 1,
            pattern: "error".into(),
            line: line.clone(),
        },
        t0 + 20 * MS,
    );
    // the failed master is stopped with its role's sequence
    assert_eq!(stops(&a), vec![(0, vec![102], "INT".to_string())]);
    let a = c.on(
        Input::Exited {
            idx: 2,
            attempt: 1,
            exit: Exit::Signal {
                name: "INT".into(),
                core_dumped: false,
            },
            host_up: true,
        },
        t0 + 30 * MS,
    );
    assert!(events(&a).iter().any(|e| matches!(e,
        LaunchEvent::ProcessNeverStarted { process, reason }
            if process.id == "viewer/c3" && reason.contains("master/c3, which failed"))));
    for (idx, pgid) in [(3, 200), (4, 201)] {
        c.on(
            Input::Spawned {
                idx,
                attempt: 1,
                pgid: Some(pgid),
            },
            t0 + 40 * MS,
        );
        c.on(Input::Ready { idx, attempt: 1 }, t0 + 50 * MS);
    }
    assert_eq!(
        c.wake(),
        Some(t0 + 50 * MS + Duration::from_secs(10)),
        "the hold's end"
    );
    // the hold ends: viewers (TERM) are stopped before masters (INT)
    let a = c.on(Input::Timer, t0 + 50 * MS + Duration::from_secs(10));
    assert_eq!(phases(&a), vec![Phase::Stopping]);
    assert_eq!(stops(&a), vec![(1, vec![200, 201], "TERM".to_string())]);
    let mut a = Vec::new();
    for idx in [3, 4] {
        a = c.on(
            Input::Exited {
                idx,
                attempt: 1,
                exit: Exit::Code(0),
                host_up: true,
            },
            t0 + Duration::from_secs(11),
        );
    }
    assert_eq!(stops(&a), vec![(0, vec![100, 101], "INT".to_string())]);
    assert_eq!(c.report().processes[3].ending, Ending::ReadyThenStopped);
    assert_eq!(
        c.report().processes[2].ending,
        Ending::Failed {
            pattern: "error".into(),
            line
        }
    );
}

#[test]
fn a_process_that_never_exits_is_given_up_after_the_graces_and_the_patience() {
    let (mut c, t0) = core(
        r#"
[roles.w]
hosts = "h1"
for_each = "channels"
command = "w"
stop = [{ signal = "INT", grace = "3s" }, { signal = "TERM", grace = "1s" }]
"#,
        "duration = \"1s\"",
    );
    c.on(Input::Begin, t0);
    c.on(
        Input::HostUp {
            host: 0,
            elapsed: MS,
        },
        t0,
    );
    for idx in 0..3 {
        // no ready pattern: ready as soon as it runs
        c.on(
            Input::Spawned {
                idx,
                attempt: 1,
                pgid: Some(10 + idx as u32),
            },
            t0,
        );
    }
    let a = c.on(Input::Timer, t0 + Duration::from_secs(1));
    assert_eq!(stops(&a).len(), 1);
    // graces (4 s) + patience (15 s)
    let late = t0 + Duration::from_secs(20);
    assert_eq!(c.wake(), Some(late));
    let a = c.on(Input::Timer, late);
    let stopped = (events(&a).into_iter())
        .filter(|e| {
            matches!(e, LaunchEvent::ProcessStopped { exit, .. }
            if exit.note.as_deref() == Some("no exit seen after the stop sequence"))
        })
        .count();
    assert_eq!(stopped, 3);
    assert_eq!(phases(&a), vec![Phase::Confirming]);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Confirm { host: 0, pgids } if pgids == &[10, 11, 12])));
}

#[test]
fn on_failure_restarts_after_the_delay_and_counts_the_restart() {
    let (mut c, t0) = core(
        r#"
[roles.w]
hosts = "h1"
for_each = "channels"
command = "w"
ready = 'UP'
restart = "on-failure"
max_restarts = 1
"#,
        "",
    );
    c.on(Input::Begin, t0);
    c.on(
        Input::HostUp {
            host: 0,
            elapsed: MS,
        },
        t0,
    );
    c.on(
        Input::Spawned {
            idx: 0,
            attempt: 1,
            pgid: Some(7),
        },
        t0,
    );
    let a = c.on(
        Input::Exited {
            idx: 0,
            attempt: 1,
            exit: Exit::Code(3),
            host_up: true,
        },
        t0 + 100 * MS,
    );
    assert!(events(&a).iter().any(|e| matches!(
        e,
        LaunchEvent::ProcessFailed {
            ending: Ending::ExitedEarly { code: Some(3), .. },
            will_restart: true,
            ..
        }
    )));
    assert!(events(&a)
        .iter()
        .any(|e| matches!(e, LaunchEvent::ProcessRestarting { restarts: 1, .. })));
    assert!(starts(&a).is_empty(), "not before the restart delay");
    assert_eq!(c.wake(), Some(t0 + 1100 * MS));
    let a = c.on(Input::Timer, t0 + 1100 * MS);
    assert_eq!(starts(&a), vec![(0, 2)]);
    // a stale input about the first attempt changes nothing
    let a = c.on(Input::Ready { idx: 0, attempt: 1 }, t0 + 1200 * MS);
    assert!(events(&a).is_empty());
}

#[test]
fn interrupt_then_escalation_kills_every_running_group_at_once() {
    let (mut c, t0) = core(MASTERS_AND_VIEWERS, "");
    c.on(Input::Begin, t0);
    c.on(
        Input::HostUp {
            host: 0,
            elapsed: MS,
        },
        t0,
    );
    c.on(
        Input::Spawned {
            idx: 0,
            attempt: 1,
            pgid: Some(50),
        },
        t0,
    );
    c.on(
        Input::Spawned {
            idx: 1,
            attempt: 1,
            pgid: Some(51),
        },
        t0,
    );
    let a = c.on(Input::Interrupt, t0 + MS);
    assert!(c.interrupted());
    assert_eq!(phases(&a), vec![Phase::Stopping]);
    // the viewers never started (their host never came up): masters get INT
    assert!(
        events(&a)
            .iter()
            .filter(|e| matches!(e, LaunchEvent::ProcessNeverStarted { .. }))
            .count()
            >= 3
    );
    assert_eq!(stops(&a), vec![(0, vec![50, 51], "INT".to_string())]);
    let a = c.on(Input::Escalate, t0 + 2 * MS);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Kill { host: 0, pgids, wait: false } if pgids == &[50, 51])));
    // the patience restarts without the graces
    assert_eq!(c.wake(), Some(t0 + 2 * MS + Duration::from_secs(15)));
}

#[test]
fn the_last_event_carries_the_final_counts_and_the_threshold_verdict() {
    let (mut c, t0) = core(
        r#"
[roles.w]
hosts = "h1"
for_each = "channels"
command = "w"
[[thresholds]]
metric = "ready_ratio"
min = 1.0
"#,
        "duration = \"1s\"",
    );
    c.on(Input::Begin, t0);
    c.on(
        Input::HostFailed {
            host: 0,
            message: "refused".into(),
        },
        t0,
    );
    assert!(c.is_done(), "nothing could start, nothing to stop or check");
    let a = c.finish(t0 + MS);
    match events(&a)[..] {
        [LaunchEvent::LaunchFinished {
            thresholds_passed: false,
            roles,
            ..
        }] => assert_eq!(roles[0].never_started, 3),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn stages_ramp_up_hold_and_ramp_down_newest_first() {
    let roles = r#"
[roles.w]
hosts = "h1"
count = 6
command = "w"
stop = [{ signal = "INT", grace = "1s" }]
stages = [{ target = 4, over = "2s" }, { hold = "2s" }, { target = 1, over = "2s" }]
"#;
    let (mut c, t0) = core(roles, "duration = \"1s\"");
    let a = c.on(Input::Begin, t0);
    assert!(events(&a).iter().any(|e| matches!(
        e,
        LaunchEvent::StageChanged {
            stage: 1,
            target: 4,
            ..
        }
    )));
    let (s, _) = drive(&mut c, t0, 8, |_| true);
    let at = |sec: u64| s.iter().find(|(t, _)| *t == sec).unwrap().1;
    assert_eq!(at(0), 0, "{s:?}");
    assert_eq!(at(1), 2, "halfway up the ramp: {s:?}");
    assert_eq!(at(2), 4, "{s:?}");
    assert_eq!(at(3), 4, "holding: {s:?}");
    assert_eq!(at(4), 4, "{s:?}");
    assert_eq!(
        at(5),
        3,
        "halfway down (4 -> 1 over 2 s rounds to 2.5 -> 3): {s:?}"
    );
    assert_eq!(at(6), 1, "{s:?}");
    // 1 s of `duration` after the last stage, then the run stops
    assert!(
        c.phase() != Phase::Holding,
        "still holding after the stages and duration"
    );
}

#[test]
fn ramping_down_stops_a_masters_viewers_before_the_master() {
    let roles = r#"
[roles.master]
hosts = "h1"
for_each = "channels"
command = "m {channel}"
stop = [{ signal = "INT", grace = "1s" }]
stages = [{ target = 3 }, { hold = "1s" }, { target = 1 }]
[roles.viewer]
hosts = "h1"
for_each = "channels"
after = "master"
after_mode = "same-key"
command = "v {channel}"
stop = [{ signal = "TERM", grace = "1s" }]
"#;
    let (mut c, t0) = core(roles, "duration = \"2s\"");
    c.on(Input::Begin, t0);
    let mut a = c.on(
        Input::HostUp {
            host: 0,
            elapsed: MS,
        },
        t0,
    );
    // masters start (target 3 at once), then each viewer once its master runs
    let mut running = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let mut next = Vec::new();
        for (idx, attempt) in starts(&a) {
            running.insert(idx);
            next.extend(c.on(
                Input::Spawned {
                    idx,
                    attempt,
                    pgid: Some(idx as u32 + 100),
                },
                t0,
            ));
        }
        a = next;
    }
    assert_eq!(running.len(), 6, "3 masters and 3 viewers");
    // the target drops to 1 at 1 s: the two newest masters have viewers, which go first
    let a = c.on(Input::Timer, t0 + Duration::from_millis(1100));
    let stopped: Vec<u32> = stops(&a).into_iter().flat_map(|(_, g, _)| g).collect();
    assert!(!stopped.is_empty(), "nothing stopped");
    for g in &stopped {
        let idx = *g as usize - 100;
        assert!(idx >= 3, "a master ({idx}) stopped while its viewer runs");
    }
}

/// Drives a core with a fake clock in 100 ms ticks: every start runs at once (group = index +
/// 100), the `n`th start (1-based, counting every attempt) is ready at once when `good(n)` (a
/// role without a ready pattern is ready on its own) and otherwise exits with code 1 at once;
/// every stop ends the process. Returns the live count at each sampled second and every event.
fn drive(
    c: &mut Core,
    t0: Instant,
    until_s: u64,
    good: impl Fn(usize) -> bool,
) -> (Vec<(u64, usize)>, Vec<LaunchEvent>) {
    drive_with(c, t0, until_s, good, None)
}

/// [`drive`], but with `hang_for` a start that is not good prints nothing and runs on, and
/// the driver reports its ready timeout once `hang_for` has passed (as the engine does).
fn drive_with(
    c: &mut Core,
    t0: Instant,
    until_s: u64,
    good: impl Fn(usize) -> bool,
    hang_for: Option<Duration>,
) -> (Vec<(u64, usize)>, Vec<LaunchEvent>) {
    let mut hung: Vec<(usize, u32, Instant)> = Vec::new();
    let mut live: std::collections::BTreeMap<usize, u32> = Default::default();
    let (mut samples, mut evs, mut n) = (Vec::new(), Vec::new(), 0usize);
    let mut pending: Vec<Action> = c.on(
        Input::HostUp {
            host: 0,
            elapsed: MS,
        },
        t0,
    );
    for tick in 0..=(until_s * 10) {
        let now = t0 + Duration::from_millis(tick * 100);
        while !pending.is_empty() {
            let mut next = Vec::new();
            for a in std::mem::take(&mut pending) {
                match a {
                    Action::Emit(ev) => evs.push(ev),
                    Action::Start { idx, attempt, .. } => {
                        n += 1;
                        let pgid = Some(idx as u32 + 100);
                        next.extend(c.on(Input::Spawned { idx, attempt, pgid }, now));
                        if good(n) {
                            live.insert(idx, attempt);
                            next.extend(c.on(Input::Ready { idx, attempt }, now));
                        } else if hang_for.is_some() {
                            live.insert(idx, attempt);
                            hung.push((idx, attempt, now));
                        } else {
                            let exit = Exit::Code(1);
                            let input = Input::Exited {
                                idx,
                                attempt,
                                exit,
                                host_up: true,
                            };
                            next.extend(c.on(input, now));
                        }
                    }
                    Action::Stop { pgids, .. } => {
                        for g in pgids {
                            let idx = g as usize - 100;
                            if let Some(attempt) = live.remove(&idx) {
                                let input = Input::Exited {
                                    idx,
                                    attempt,
                                    exit: Exit::Code(0),
                                    host_up: true,
                                };
                                next.extend(c.on(input, now));
                            }
                        }
                    }
                    _ => {}
                }
            }
            pending = next;
        }
        if tick % 10 == 0 {
            samples.push((tick / 10, live.len()));
        }
        if let Some(limit) = hang_for {
            for (idx, attempt, _) in hung.extract_if(.., |h| now.duration_since(h.2) >= limit) {
                pending.extend(c.on(Input::ReadyTimeout { idx, attempt }, now));
            }
        }
        pending.extend(c.on(Input::Timer, now + Duration::from_millis(100)));
    }
    (samples, evs)
}

#[test]
fn a_step_load_climbs_until_a_threshold_fails_then_backs_off_to_the_last_step_that_held() {
    let roles = r#"
[roles.w]
hosts = "h1"
count = 12
command = "w"
ready = "UP"
stop = [{ signal = "INT", grace = "1s" }]
step = { add = 2, every = "2s", max = 12 }
[[thresholds]]
metric = "ready_ratio"
role = "w"
min = 0.99
window = "3s"
"#;
    let (mut c, t0) = core(roles, "duration = \"2s\"");
    c.on(Input::Begin, t0);
    // The service takes 5: the 6th start and every later one fail.
    let (s, evs) = drive(&mut c, t0, 12, |n| n <= 5);
    let at = |sec: u64| s.iter().find(|(t, _)| *t == sec).unwrap().1;
    assert_eq!((at(1), at(3)), (2, 4), "the first two steps: {s:?}");
    let broke: Vec<_> = (evs.iter())
        .filter_map(|e| match e {
            LaunchEvent::StepBroke {
                held,
                broke_at,
                reason,
                at_ms,
                ..
            } => Some((*held, *broke_at, reason.clone(), *at_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(broke.len(), 1, "{broke:?}");
    let (held, broke_at, reason, at_ms) = &broke[0];
    assert_eq!((*held, *broke_at), (4, 6), "{broke:?}");
    assert!(reason.starts_with("w ready_ratio 0."), "{reason}");
    assert!(reason.ends_with("< 0.99 over the last 3s"), "{reason}");
    assert!(
        (4000..6000).contains(at_ms),
        "broke during the third step: {at_ms}"
    );
    assert_eq!(at(5), 4, "back to the last step that held: {s:?}");
    assert!(
        s.iter().all(|(_, n)| *n <= 5),
        "never above what the service took: {s:?}"
    );
    assert!(
        c.phase() != Phase::Holding,
        "the run ends `duration` after the break"
    );
    let report = c.report();
    assert_eq!(report.steps.len(), 1);
    assert!(!report.thresholds_passed, "a failure during the run stands");
}

#[test]
fn a_step_load_without_failures_climbs_to_max_and_the_run_ends_after_the_top_step() {
    let roles = r#"
[roles.w]
hosts = "h1"
count = 6
command = "w"
ready = "UP"
step = { start = 2, add = 2, every = "1s", max = 5 }
[[thresholds]]
metric = "ready_ratio"
min = 0.99
window = "2s"
"#;
    let (mut c, t0) = core(roles, "");
    let begin = c.on(Input::Begin, t0);
    let (s, mut evs) = drive(&mut c, t0, 6, |_| true);
    evs.extend(events(&begin).into_iter().cloned());
    let at = |sec: u64| s.iter().find(|(t, _)| *t == sec).unwrap().1;
    assert_eq!((at(0), at(1), at(2)), (2, 4, 5), "{s:?}");
    let stages: Vec<u32> = (evs.iter())
        .filter_map(|e| match e {
            LaunchEvent::StageChanged { target, .. } => Some(*target),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages,
        vec![4, 5, 2],
        "steps 2 and 3, then step 1 (at Begin)"
    );
    assert!(!evs
        .iter()
        .any(|e| matches!(e, LaunchEvent::StepBroke { .. })));
    assert!(c.phase() != Phase::Holding, "ends after the top step (3 s)");
    assert!(c.report().thresholds_passed);
}

#[test]
fn an_abort_threshold_stops_the_run_within_a_second_through_the_stop_sequence() {
    let roles = r#"
[roles.w]
hosts = "h1"
count = 4
command = "w"
ready = "UP"
rate = "1/s"
stop = [{ signal = "INT", grace = "1s" }]
[[thresholds]]
metric = "failed"
max = 0
abort = true
"#;
    let (mut c, t0) = core(roles, "duration = \"60s\"");
    c.on(Input::Begin, t0);
    // The third start (at 2 s) fails.
    let (_, evs) = drive(&mut c, t0, 5, |n| n != 3);
    let aborted = (evs.iter()).find_map(|e| match e {
        LaunchEvent::LaunchAborted { reason, at_ms } => Some((reason.clone(), *at_ms)),
        _ => None,
    });
    let (reason, at_ms) = aborted.expect("aborted");
    assert_eq!(reason, "failed 1 > 0 so far");
    assert!(
        (2000..=2200).contains(&at_ms),
        "within 100 ms of the failure: {at_ms}"
    );
    assert!(
        (evs.iter()).any(|e| matches!(
            e,
            LaunchEvent::ProcessNeverStarted { reason, .. } if reason.contains("aborted")
        )),
        "the fourth never starts"
    );
    assert!(c.phase() != Phase::Holding && c.phase() != Phase::Starting);
    let report = c.report();
    assert_eq!(report.aborted.as_ref().map(|a| a.at_ms), Some(at_ms));
    assert!(!report.thresholds_passed);
}

#[test]
fn a_target_that_falls_mid_ramp_stops_starting_and_scales_down_to_it() {
    let roles = r#"
[roles.w]
hosts = "h1"
count = 8
command = "w"
ready = "UP"
rate = "2/s"
stages = [{ target = 8, over = "2s" }, { target = 2, over = "0s" }, { hold = "2s" }]
"#;
    let (mut c, t0) = core(roles, "");
    c.on(Input::Begin, t0);
    let (s, evs) = drive(&mut c, t0, 4, |_| true);
    let at = |sec: u64| s.iter().find(|(t, _)| *t == sec).unwrap().1;
    assert!(at(1) <= 3, "the rate holds the ramp back: {s:?}");
    assert_eq!(at(3), 2, "{s:?}");
    let started = (evs.iter())
        .filter(|e| matches!(e, LaunchEvent::ProcessStarted { .. }))
        .count();
    assert!(started <= 5, "no start after the target fell: {started}");
}

#[test]
fn a_step_break_is_charged_to_the_step_that_started_the_processes_that_never_became_ready() {
    let roles = r#"
[roles.w]
hosts = "h1"
count = 12
command = "w"
ready = "UP"
ready_timeout = "5s"
step = { add = 2, every = "2s", max = 12 }
[[thresholds]]
metric = "ready_ratio"
role = "w"
min = 0.99
window = "20s"
"#;
    let (mut c, t0) = core(roles, "duration = \"1s\"");
    c.on(Input::Begin, t0);
    // The service takes 4; the 5th start onwards hangs without a ready line. Their timeouts
    // run out at 9 s, three steps after the one (4 s, target 6) that started them.
    let (_, evs) = drive_with(&mut c, t0, 12, |n| n <= 4, Some(Duration::from_secs(5)));
    let broke = (evs.iter()).find_map(|e| match e {
        LaunchEvent::StepBroke {
            held,
            broke_at,
            at_ms,
            ..
        } => Some((*held, *broke_at, *at_ms)),
        _ => None,
    });
    let (held, broke_at, at_ms) = broke.expect("the step load broke");
    assert!(
        at_ms >= 9000,
        "seen when the first timeout ran out: {at_ms}"
    );
    assert_eq!((held, broke_at), (4, 6));
}
