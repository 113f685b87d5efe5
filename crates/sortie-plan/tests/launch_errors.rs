//! Every plan error names the file, line and column of the offending text.

use std::time::Duration;

use sortie_plan::launch::{load_str, HostResolution, Plan, PlanError};

/// A valid base plan; tests replace parts of it.
const BASE: &str = r#"name = "t"

[data.channels]
csv = "channels.csv"

[roles.master]
hosts = ["h[1-2]"]
for_each = "channels"
unique_key = true
command = "./master {channel} {sn}"
ready = 'set up done'
stop = [{ signal = "INT", grace = "20s" }]

[roles.viewer]
hosts = "v[1-3]"
for_each = "channels"
count = 3
max_per_key = 10
after = "master"
after_mode = "same-key"
command = "./viewer {channel} {instance}"
slots = 10
rate = "5/s"
min_spacing_per_key = "350ms"
"#;

const CSV: &str = "channel,sn\nch1,a\nch2,b\nch3,c\n";

fn dir_with(csv: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("channels.csv"), csv).unwrap();
    dir
}

fn load_with(plan: &str, csv: &str, sets: &[&str]) -> Result<Plan, PlanError> {
    let dir = dir_with(csv);
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    load_str("plan.toml", plan, dir.path(), &sets)?.place(&HostResolution::new())
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

/// 1-based line and column of the first `needle` in `text` (plus `skip` characters).
fn pos(text: &str, needle: &str, skip: usize) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"))
        + skip;
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[track_caller]
fn assert_at(err: &PlanError, code: &str, file: &str, at: (usize, usize), says: &str) {
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(err.file(), file, "{err}");
    assert_eq!((err.line(), err.column()), at, "{err}");
    assert!(
        err.to_string().contains(says),
        "{err:?} should say {says:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{file}:{}:{}: ", at.0, at.1)),
        "{err}"
    );
}

#[test]
fn the_base_plan_is_valid() {
    let plan = load_with(BASE, CSV, &[]).unwrap();
    assert_eq!(plan.processes.len(), 3 + 9);
}

#[test]
fn unknown_role_in_a_dependency() {
    let text = edit(r#"after = "master""#, r#"after = "mastr""#);
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::unknown_role",
        "plan.toml",
        pos(&text, "\"mastr\"", 0),
        "unknown role \"mastr\"",
    );
}

#[test]
fn dependency_cycle() {
    let text = edit(
        "unique_key = true\n",
        "unique_key = true\nafter = \"viewer\"\n",
    );
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::dependency_cycle",
        "plan.toml",
        pos(&text, "\"viewer\"", 0),
        "master -> viewer -> master",
    );
}

#[test]
fn regex_error_points_into_the_pattern() {
    let text = edit("ready = 'set up done'", "ready = 'set (up done'");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    // The unclosed group opens at the `(`.
    assert_at(
        &err,
        "sortie::plan::bad_regex",
        "plan.toml",
        pos(&text, "(up done", 0),
        "unclosed group",
    );
}

#[test]
fn template_column_missing_from_the_data_set() {
    let text = edit("./master {channel} {sn}", "./master {channel} {serial}");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_template",
        "plan.toml",
        pos(&text, "{serial}", 0),
        "unknown placeholder {serial}",
    );
    assert!(
        err.to_string().contains("{sn}"),
        "lists the known columns: {err}"
    );
}

#[test]
fn two_masters_on_one_channel_point_at_the_csv_row() {
    let csv = "channel,sn\nch1,a\nch2,b\nch1,c\n";
    let err = load_with(BASE, csv, &[]).unwrap_err();
    assert_eq!(err.code(), "sortie::plan::csv");
    assert!(err.file().ends_with("channels.csv"), "{err}");
    assert_eq!((err.line(), err.column()), (4, 1), "{err}");
    assert!(err.to_string().contains("unique_key"), "{err}");
}

#[test]
fn too_many_viewers_per_channel() {
    // count over the limit points at count
    let text = edit("count = 3", "count = 11");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::constraint",
        "plan.toml",
        pos(&text, "11", 0),
        "max_per_key",
    );
    // rows over the limit point at the row that exceeds it
    let text = edit("max_per_key = 10", "max_per_key = 4").replace("unique_key = true\n", "");
    let csv = "channel,sn\nch1,a\nch2,b\nch1,c\n";
    let err = load_with(&text, csv, &[]).unwrap_err();
    assert_eq!((err.line(), err.column()), (4, 1), "{err}");
    assert!(
        err.to_string().contains("allows 4 process(es) per key"),
        "{err}"
    );
}

#[test]
fn not_enough_slots() {
    let text = edit("slots = 10", "slots = 2");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::not_enough_slots",
        "plan.toml",
        pos(&text, "slots = 2", 8),
        "9 processes but 3 host(s) x 2 slot(s) hold only 6",
    );
}

#[test]
fn bad_duration_rate_and_signal() {
    let text = edit(
        r#"min_spacing_per_key = "350ms""#,
        r#"min_spacing_per_key = "350 ms""#,
    );
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_value",
        "plan.toml",
        pos(&text, " ms\"", 0),
        "unknown unit",
    );

    let text = edit(r#"rate = "5/s""#, r#"rate = "5/sec""#);
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_value",
        "plan.toml",
        pos(&text, "sec\"", 0),
        "invalid rate",
    );

    let text = edit(r#"signal = "INT""#, r#"signal = "SIGINTR""#);
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_signal",
        "plan.toml",
        pos(&text, "\"SIGINTR\"", 0),
        "unknown signal",
    );
}

#[test]
fn unknown_keys_are_refused_where_written() {
    let text = edit("unique_key = true", "uniq_key = true");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::schema",
        "plan.toml",
        pos(&text, "uniq_key", 0),
        "unknown field `uniq_key`",
    );

    let text = edit("[roles.viewer]", "[roles.viewer]\nreadyy = 'x'");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::schema",
        "plan.toml",
        pos(&text, "readyy", 0),
        "unknown field `readyy`",
    );
}

#[test]
fn unknown_data_set_and_group() {
    let text = edit(r#"for_each = "channels""#, r#"for_each = "chans""#);
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::unknown_data",
        "plan.toml",
        pos(&text, "\"chans\"", 0),
        "unknown data set",
    );
    let text = edit(r#"hosts = "v[1-3]""#, r#"group = "viewers""#);
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::unknown_group",
        "plan.toml",
        pos(&text, "\"viewers\"", 0),
        "unknown group",
    );
}

#[test]
fn bad_host_expression_points_into_it() {
    let text = edit(r#"hosts = "v[1-3]""#, r#"hosts = "v[3-1]""#);
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_eq!(err.code(), "sortie::plan::bad_hosts", "{err}");
    let (line, col) = pos(&text, "v[3-1]", 0);
    assert_eq!(err.line(), line);
    assert!(err.column() >= col && err.column() < col + 6, "{err}");
}

#[test]
fn same_key_dependency_needs_a_partner() {
    let text = edit(
        "[roles.viewer]\nhosts = \"v[1-3]\"\nfor_each = \"channels\"",
        "[data.more]\ncsv = \"more.csv\"\n\n[roles.viewer]\nhosts = \"v[1-3]\"\nfor_each = \"more\"",
    );
    let dir = dir_with(CSV);
    std::fs::write(dir.path().join("more.csv"), "channel\nch1\nch9\n").unwrap();
    let err = load_str("plan.toml", &text, dir.path(), &[]).unwrap_err();
    assert_eq!(err.code(), "sortie::plan::csv");
    assert_eq!((err.line(), err.column()), (3, 1), "{err}");
    assert!(
        err.to_string().contains("no process with key \"ch9\""),
        "{err}"
    );
}

#[test]
fn thresholds_are_typed() {
    let text = format!(
        "{BASE}\n[[thresholds]]\nmetric = \"p99_time_to_ready\"\nrole = \"viewer\"\nmax = 15\n"
    );
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_threshold",
        "plan.toml",
        pos(&text, "15\n", 0),
        "needs a duration",
    );
    let text = format!("{BASE}\n[[thresholds]]\nmetric = \"p99_ttr\"\nmax = \"1s\"\n");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_threshold",
        "plan.toml",
        pos(&text, "\"p99_ttr\"", 0),
        "unknown metric",
    );
}

#[test]
fn overrides_change_the_plan_before_validation() {
    let plan = load_with(BASE, CSV, &["run.duration=30s", "roles.viewer.count=2"]).unwrap();
    assert_eq!(plan.run.duration, Some(Duration::from_secs(30)));
    assert_eq!(plan.processes_of("viewer").count(), 6);
    assert_eq!(plan.overrides, ["run.duration=30s", "roles.viewer.count=2"]);
}

#[test]
fn override_errors_name_the_option() {
    let err = load_with(BASE, CSV, &["run.duration=30x"]).unwrap_err();
    assert_eq!(err.file(), "--set run.duration=30x", "{err}");
    assert_eq!(err.column(), 14, "points at the value: {err}");
    assert!(err.to_string().contains("unknown unit"), "{err}");

    let err = load_with(BASE, CSV, &["roles.viewer.cont=2"]).unwrap_err();
    assert_eq!(err.file(), "--set roles.viewer.cont=2", "{err}");
    assert_eq!(err.column(), 1, "points at the key: {err}");
    assert!(err.to_string().contains("unknown field `cont`"), "{err}");

    let err = load_with(BASE, CSV, &["roles.viewr.count=2"]).unwrap_err();
    assert_eq!(err.code(), "sortie::plan::bad_override");
    assert!(err.to_string().contains("no table roles.viewr"), "{err}");

    // Placement errors in overridden values name the option too.
    let err = load_with(BASE, CSV, &["roles.viewer.slots=1"]).unwrap_err();
    assert_eq!(err.code(), "sortie::plan::not_enough_slots");
    assert_eq!(
        (err.file().as_str(), err.column()),
        ("--set roles.viewer.slots=1", 20),
        "{err}"
    );

    let err = load_with(BASE, CSV, &["run.duration"]).unwrap_err();
    assert!(err.to_string().contains("expected KEY=VALUE"), "{err}");
}

#[test]
fn schedule_respects_rate_and_per_key_spacing() {
    let text = edit(r#"rate = "5/s""#, r#"rate = "20/s""#);
    let plan = load_with(&text, "channel,sn\nch1,a\n", &[]).unwrap();
    let offsets: Vec<Duration> = plan
        .processes_of("viewer")
        .map(|p| p.start_offset)
        .collect();
    // One channel, three viewers: per-key spacing (350ms) dominates the rate (50ms).
    assert_eq!(
        offsets,
        [
            Duration::ZERO,
            Duration::from_millis(350),
            Duration::from_millis(700)
        ]
    );
    let plan = load_with(&text, CSV, &[]).unwrap();
    let offsets: Vec<u128> = plan
        .processes_of("viewer")
        .map(|p| p.start_offset.as_millis())
        .collect();
    // ch1#1 ch2#1 ch3#1 at the rate, then ch1#2 waits for 350ms after ch1#1.
    assert_eq!(offsets, [0, 50, 100, 350, 400, 450, 700, 750, 800]);
}

#[test]
fn placement_respects_slots_and_balances() {
    let text = edit("slots = 10", "slots = 3");
    let plan = load_with(&text, CSV, &[]).unwrap();
    for h in ["v1", "v2", "v3"] {
        let on: Vec<_> = plan
            .processes_of("viewer")
            .filter(|p| p.host == h)
            .collect();
        assert_eq!(on.len(), 3, "{h}");
        let mut slots: Vec<u32> = on.iter().map(|p| p.slot).collect();
        slots.sort();
        assert_eq!(slots, [1, 2, 3]);
        // three channels, three viewers each: each host holds one viewer of each channel
        let mut keys: Vec<&str> = on.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["ch1", "ch2", "ch3"], "{h}");
    }
    let masters: Vec<&str> = plan
        .processes_of("master")
        .map(|p| p.host.as_str())
        .collect();
    assert_eq!(masters, ["h1", "h2", "h1"]);
}

#[test]
fn errors_render_with_miette() {
    let text = edit(r#"after = "master""#, r#"after = "mastr""#);
    let err = load_with(&text, CSV, &[]).unwrap_err();
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, &err)
        .unwrap();
    assert!(out.contains("after = \"mastr\""), "{out}");
    assert!(out.contains("no such role"), "{out}");
    assert!(out.contains("roles of this plan: master, viewer"), "{out}");
}

#[test]
fn controller_env_check_names_the_variable() {
    let text = edit(
        "slots = 10",
        "slots = 10\nenv_from_controller = [\"AWS_SECRET_ACCESS_KEY\"]",
    );
    let dir = dir_with(CSV);
    let spec = load_str("plan.toml", &text, dir.path(), &[]).unwrap();
    let err = spec.check_controller_env(&|_| None).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::missing_env",
        "plan.toml",
        pos(&text, "AWS_SECRET", 0),
        "not set",
    );
    assert!(spec.check_controller_env(&|_| Some("x".into())).is_ok());
}

#[test]
fn all_values_placeholder_and_ambiguous_data_sets_are_refused() {
    let text = edit("./viewer {channel} {instance}", "./viewer {}");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_template",
        "plan.toml",
        pos(&text, "{}", 0),
        "not available in plans",
    );

    let text = edit(
        "csv = \"channels.csv\"",
        "csv = \"channels.csv\"\nvalues = [\"a\"]",
    );
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_data",
        "plan.toml",
        pos(&text, "channels]", 0),
        "exactly one of csv, values or rows",
    );
}

#[test]
fn an_upload_whose_source_is_missing_is_refused_at_its_src() {
    let text = format!("{BASE}\n[[upload]]\nsrc = \"bin/nope\"\ndest = \"/opt/kvs/\"\n");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::upload_source",
        "plan.toml",
        pos(&text, "\"bin/nope\"", 0),
        "bin/nope",
    );
}

#[test]
fn an_upload_source_is_relative_to_the_plan_and_listed_in_the_plan() {
    let dir = dir_with(CSV);
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::write(dir.path().join("bin/tool"), "x").unwrap();
    let text = format!(
        "{BASE}\n[[upload]]\nsrc = \"bin\"\ndest = \"/opt/{{host}}/\"\nrole = \"viewer\"\n\n[[collect]]\nsrc = \"/var/log/{{host}}.log\"\ndest = \"host-logs\"\n"
    );
    let plan = load_str("plan.toml", &text, dir.path(), &[])
        .unwrap()
        .place(&HostResolution::new())
        .unwrap();
    assert_eq!(plan.upload_source(&plan.uploads[0]), dir.path().join("bin"));
    // the upload goes to the viewer hosts only, the collection to every host
    let labels = |idx: Vec<usize>| -> Vec<String> {
        idx.into_iter()
            .map(|i| plan.hosts[i].label.clone())
            .collect()
    };
    assert_eq!(
        labels(plan.transfer_hosts(&plan.uploads[0])),
        ["v1", "v2", "v3"]
    );
    assert_eq!(
        labels(plan.transfer_hosts(&plan.collects[0])),
        ["h1", "h2", "v1", "v2", "v3"]
    );
}

#[test]
fn a_transfer_path_with_an_unknown_placeholder_is_refused_at_the_placeholder() {
    let text =
        format!("{BASE}\n[[collect]]\nsrc = \"/var/log/{{tag:dc}}/x.log\"\ndest = \"host-logs\"\n");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_placeholder",
        "plan.toml",
        pos(&text, "{tag:dc}", 0),
        "unknown placeholder",
    );
}

#[test]
fn a_collection_cannot_write_outside_the_run_directory() {
    for dest in ["../elsewhere", "/tmp/x", "logs/../../x"] {
        let text = format!("{BASE}\n[[collect]]\nsrc = \"x.log\"\ndest = \"{dest}\"\n");
        let err = load_with(&text, CSV, &[]).unwrap_err();
        assert_at(
            &err,
            "sortie::plan::collect_dest",
            "plan.toml",
            pos(&text, &format!("\"{dest}\""), 0),
            "inside the run directory",
        );
    }
}

#[test]
fn sample_interval_defaults_to_5s_turns_off_with_0_and_names_a_bad_value() {
    let plan = load_with(BASE, CSV, &[]).unwrap();
    assert_eq!(plan.run.sample_interval, Duration::from_secs(5));
    let plan = load_with(BASE, CSV, &["run.sample_interval=0"]).unwrap();
    assert_eq!(plan.run.sample_interval, Duration::ZERO);
    let text = format!("{BASE}\n[run]\nsample_interval = \"1.5s\"\n");
    let plan = load_with(&text, CSV, &[]).unwrap();
    assert_eq!(plan.run.sample_interval, Duration::from_millis(1500));

    let text = format!("{BASE}\n[run]\nsample_interval = \"5 parsecs\"\n");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_value",
        "plan.toml",
        pos(&text, " parsecs", 0),
        "run sample_interval",
    );
}

#[test]
fn a_step_load_is_checked_where_written() {
    // 3 channels x 3 viewers: a pool of 9
    let step = |s: &str| edit("slots = 10\n", &format!("slots = 10\n{s}\n"));
    let text = step("step = { add = 2, every = \"1m\", max = 10 }");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::constraint",
        "plan.toml",
        pos(&text, "10 }", 0),
        "step max 10 is above its 9 processes",
    );
    let text = step("step = { add = 0, every = \"1m\", max = 9 }");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_value",
        "plan.toml",
        pos(&text, "0, every", 0),
        "add must be at least 1",
    );
    let text = step("step = { add = 2, every = \"soon\", max = 9 }");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_eq!((err.line(), err.column()), pos(&text, "soon", 0), "{err}");
    let text = step("stages = [{ target = 2 }]\nstep = { add = 2, every = \"1m\", max = 9 }");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::constraint",
        "plan.toml",
        pos(&text, "{ add", 0),
        "both stages and a step load",
    );
    let text = step("step = { add = 3, every = \"1m\", max = 9 }");
    let plan = load_with(&text, CSV, &[]).unwrap();
    let s = plan.roles[1].step.expect("a step load");
    assert_eq!((s.start, s.add, s.max, s.steps()), (3, 3, 9, 3));
    assert_eq!((s.target(0), s.target(2), s.target(7)), (3, 9, 9));
}

#[test]
fn a_threshold_window_is_a_duration_above_zero() {
    let text =
        format!("{BASE}\n[[thresholds]]\nmetric = \"ready_ratio\"\nmin = 0.99\nwindow = \"0s\"\n");
    let err = load_with(&text, CSV, &[]).unwrap_err();
    assert_at(
        &err,
        "sortie::plan::bad_threshold",
        "plan.toml",
        pos(&text, "\"0s\"", 0),
        "window must be longer than zero",
    );
    let text = format!(
        "{BASE}\n[[thresholds]]\nmetric = \"ready_ratio\"\nmin = 0.99\nwindow = \"1m\"\nabort = true\n"
    );
    let plan = load_with(&text, CSV, &[]).unwrap();
    assert_eq!(plan.thresholds[0].window, Some(Duration::from_secs(60)));
    assert!(plan.thresholds[0].abort);
}
