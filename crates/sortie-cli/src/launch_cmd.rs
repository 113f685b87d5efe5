//! `sortie launch PLAN.toml`: load and place the plan, resolve its hosts into targets, run the
//! library's launch, and show it with `sortie-report`'s [`LiveView`]: a live table on a
//! terminal, a status line every few seconds otherwise, the run record's lines with `--json`;
//! then the summary and the exit code (thresholds decide).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressDrawTarget;
use sortie::launch::{launch, render_summary, LaunchOptions, LaunchReport};
use sortie::transport::{Target, TransportKind};
use sortie::CancellationToken;
use sortie_inventory::{HostSpec, Overrides, Resolver, SelectRequest};
use sortie_plan::launch::{GroupSource, HostResolution, Plan, PlanSpec, Transport};
use sortie_report::launch::{read_record, write_html, LiveView, PageFold, HTML_FILE};

use crate::args::{LaunchArgs, RunDirArgs};
use crate::exit::ExitCode;
use crate::select;

/// Runs `sortie launch`.
pub async fn run(a: LaunchArgs, signals: crate::signals::Interrupts) -> miette::Result<ExitCode> {
    let Some(plan) = prepare(&a)? else {
        return Ok(ExitCode::Ok);
    };
    if a.detach && plan.run.duration.is_none() {
        return Err(miette::miette!(
            code = "sortie::launch::detach_needs_duration",
            help = "give the run a duration: --duration 1h, or [run] duration in the plan",
            "--detach needs a duration: the hosts stop the fleet by themselves at its end"
        ));
    }
    if a.detach {
        refuse_live_judgement(&plan)?;
    }
    let targets = targets(&plan, &a)?;
    let run_id = sortie::launch::new_run_id();
    let run_dir = a.run_dir.clone().unwrap_or_else(|| plan.run_dir(&run_id));
    let web = match a.web {
        Some(addr) => Some(crate::web::Dashboard::start(addr, a.web_public, &run_id).await?),
        None => None,
    };
    let mut options = options(&a, run_id.clone(), run_dir.clone());
    options.detach = a.detach;
    let hold = plan.run.duration.unwrap_or_default();
    let cancel = CancellationToken::new();
    let handle = launch(
        select::transports(a.max_handshakes),
        plan,
        targets,
        options,
        cancel.clone(),
    );
    let end = Ending {
        json: a.json,
        run_id: &run_id,
        record_in: Some(&run_dir),
        web: web.as_ref(),
    };
    let result = drive(handle, cancel, signals, end).await?;
    if result.detached {
        print_end(a.json, &detached_text(&result.report, &run_dir, hold));
        return Ok(ExitCode::Ok);
    }
    let mut text = end_text(&result.report, result.report_path.as_deref());
    page_text(&mut text, &result, &run_dir);
    print_end(a.json, &text);
    Ok(exit_code(&result.report))
}

/// Writes `report.html` from the whole record (as `sortie report --html` does) and says where.
fn page_text(text: &mut String, result: &sortie::launch::LaunchResult, run_dir: &Path) {
    if result.report_path.is_none() {
        return;
    }
    let Ok(record) = read_record(run_dir) else {
        return;
    };
    let mut page = PageFold::new(&record.run_id);
    for ev in &record.events {
        page.apply(ev);
    }
    match write_html(&page.data(false), run_dir) {
        Ok(p) => text.push_str(&format!("page:   {}\n", p.display())),
        Err(e) => eprintln!(
            "sortie: cannot write {HTML_FILE} in {}: {e}",
            run_dir.display()
        ),
    }
}

/// What [`drive`] shows and records besides the live view.
struct Ending<'a> {
    json: bool,
    run_id: &'a str,
    /// Where to record how to attach (a new launch).
    record_in: Option<&'a Path>,
    /// The live dashboard (`--web`).
    web: Option<&'a crate::web::Dashboard>,
}

/// The end text goes to stdout, or to stderr when stdout carries `--json` lines.
fn print_end(json: bool, text: &str) {
    if json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// Loads and places the plan (`None` after a dry run), and checks the controller's
/// environment: everything that can fail before a host is contacted.
fn prepare(a: &LaunchArgs) -> miette::Result<Option<Plan>> {
    let mut overrides = a.set.clone();
    if let Some(d) = &a.duration {
        overrides.push(format!("run.duration=\"{d}\""));
    }
    if let Some(d) = &a.sample_interval {
        overrides.push(format!("run.sample_interval=\"{d}\""));
    }
    let spec = sortie_plan::launch::load(&a.plan, &overrides).map_err(miette::Report::new)?;
    let resolved = resolve_groups(&spec)?;
    let plan = spec.place(&resolved).map_err(miette::Report::new)?;
    if a.dry_run {
        print!("{}", sortie_plan::launch::render_dry_run(&plan));
        return Ok(None);
    }
    spec.check_controller_env(&|k| std::env::var(k).ok())
        .map_err(miette::Report::new)?;
    Ok(Some(plan))
}

/// The launch options of `a` for run `run_id` in `run_dir`.
fn options(a: &LaunchArgs, run_id: String, run_dir: PathBuf) -> LaunchOptions {
    LaunchOptions {
        run_id,
        run_dir: Some(run_dir),
        fanout: a.fanout as usize,
        progress_interval: Duration::from_millis(250),
        remote_dir: a.remote_dir.clone(),
        reconnect_window: a.reconnect_window,
        lease: a.lease,
        keep_remote_dir: a.keep_remote_dir,
        ..LaunchOptions::default()
    }
}

/// Runs a launch (or an attach) to its end with the live view and the signals; records how
/// to attach in the run directory first.
async fn drive(
    handle: Result<sortie::launch::LaunchHandle, sortie::launch::LaunchError>,
    cancel: CancellationToken,
    signals: crate::signals::Interrupts,
    end: Ending<'_>,
) -> miette::Result<sortie::launch::LaunchResult> {
    let mut handle = handle.map_err(miette::Report::new)?;
    if let Some(dir) = end.record_in {
        crate::run_file::write(dir, end.run_id)?;
    }
    // First Ctrl-C, SIGTERM or SIGHUP: stop sequences, dependents first. Second: KILL at once.
    // Third: exit.
    crate::signals::on_interrupt(
        signals,
        cancel,
        Some((handle.escalate.clone(), "killing every process now")),
        "stopping every process",
    );
    let mut view = live_view(end.json, end.run_id);
    while let Some(ev) = handle.events.recv().await {
        view.event(&ev);
        if let Some(w) = end.web {
            w.event(&ev);
        }
    }
    if view.finish() {
        // indicatif leaves the cursor at the end of the table's last row: end it, then a
        // blank line before the summary, as before.
        eprintln!();
        eprintln!();
    }
    handle
        .result
        .await
        .map_err(|e| miette::miette!("the launch task failed: {e}"))
}

/// `--detach` with a step load or a threshold judged during the run (`window`, `abort`): a
/// detached fleet has no controller to judge it, so neither would happen; refused.
fn refuse_live_judgement(plan: &Plan) -> miette::Result<()> {
    let what = if let Some(r) = plan.roles.iter().find(|r| r.step.is_some()) {
        format!("role {} has a step load", r.name)
    } else if let Some(t) = (plan.thresholds.iter()).find(|t| t.window.is_some() || t.abort) {
        format!(
            "threshold {} is judged during the run (window or abort)",
            t.metric
        )
    } else {
        return Ok(());
    };
    Err(miette::miette!(
        code = "sortie::launch::detach_needs_controller",
        help = "run without --detach; `sortie attach` can take over a run whose controller died",
        "--detach cannot be used here: {what}, and a detached fleet has no controller to judge it"
    ))
}

/// What `--detach` prints when it returns.
fn detached_text(report: &LaunchReport, dir: &Path, hold: Duration) -> String {
    let dir = dir.display();
    let ready: usize = report.roles.iter().map(|r| r.ready).sum();
    let hold = sortie::launch::short_duration(hold);
    format!(
        "detached: {ready} of {} processes ready; the hosts hold the fleet for {hold} and then \
         stop it by themselves\n  sortie status {dir}\n  sortie attach {dir}\n  sortie stop {dir}\n",
        report.processes.len()
    )
}

/// `sortie attach RUN_DIR` (and `sortie stop RUN_DIR`, `stop_now`): takes the run over.
pub async fn attach(
    rd: RunDirArgs,
    a: LaunchArgs,
    stop_now: bool,
    signals: crate::signals::Interrupts,
) -> miette::Result<ExitCode> {
    let record = read_record(&rd.run_dir).map_err(miette::Report::new)?;
    if record.finished() {
        return Err(miette::miette!(
            code = "sortie::attach::finished",
            help = "sortie report RUN_DIR prints its summary",
            "{}: this run has finished",
            rd.run_dir.display()
        ));
    }
    let Some(plan) = prepare(&a)? else {
        return Ok(ExitCode::Ok);
    };
    let targets = targets(&plan, &a)?;
    let mut options = options(&a, record.run_id.clone(), rd.run_dir.clone());
    options.attach = Some(record.events);
    options.stop_now = stop_now;
    let web = match rd.web {
        Some(addr) => {
            Some(crate::web::Dashboard::start(addr, rd.web_public, &record.run_id).await?)
        }
        None => None,
    };
    // The page starts from the whole record, then follows the run live.
    if let (Some(w), Some(events)) = (&web, &options.attach) {
        for ev in events {
            w.event(ev);
        }
    }
    let cancel = CancellationToken::new();
    let handle = launch(
        select::transports(a.max_handshakes),
        plan,
        targets,
        options,
        cancel.clone(),
    );
    let end = Ending {
        json: rd.json,
        run_id: &record.run_id,
        record_in: None,
        web: web.as_ref(),
    };
    let result = drive(handle, cancel, signals, end).await?;
    let mut text = end_text(&result.report, result.report_path.as_deref());
    page_text(&mut text, &result, &rd.run_dir);
    print_end(rd.json, &text);
    Ok(exit_code(&result.report))
}

/// `sortie status RUN_DIR`: per role, where the processes are as the hosts see them now.
pub async fn status(rd: RunDirArgs, a: LaunchArgs) -> miette::Result<ExitCode> {
    let record = read_record(&rd.run_dir).map_err(miette::Report::new)?;
    let Some(plan) = prepare(&a)? else {
        return Ok(ExitCode::Ok);
    };
    let targets = targets(&plan, &a)?;
    let hosts = sortie::launch::status(
        select::transports(a.max_handshakes),
        &plan,
        targets,
        &record.run_id,
        a.remote_dir.as_deref(),
    )
    .await;
    print!("{}", status_text(&plan, &record, &hosts));
    Ok(if hosts.iter().any(|h| h.error.is_some()) {
        ExitCode::CommandFailed
    } else {
        ExitCode::Ok
    })
}

fn status_text(
    plan: &Plan,
    record: &sortie_report::launch::Recorded,
    hosts: &[sortie::launch::HostStatus],
) -> String {
    use sortie::launch::RemoteState;
    use std::fmt::Write as _;
    let mut o = String::new();
    let controller = if record.finished() {
        "finished"
    } else if record
        .events
        .iter()
        .any(|e| matches!(e, sortie::launch::LaunchEvent::LaunchDetached { .. }))
    {
        "detached"
    } else {
        "running, or gone without finishing"
    };
    let _ = writeln!(o, "run {}: controller {controller}", record.run_id);
    let width = plan
        .roles
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        o,
        "  {:<width$} {:>7} {:>7} {:>7} {:>7}",
        "role", "planned", "running", "exited", "killed"
    );
    for role in &plan.roles {
        let procs = hosts
            .iter()
            .flat_map(|h| &h.processes)
            .filter(|p| p.role == role.name);
        let (mut running, mut exited, mut killed) = (0, 0, 0);
        for p in procs {
            match p.state {
                RemoteState::Running(_) => running += 1,
                RemoteState::Exited(_) => exited += 1,
                RemoteState::Killed => killed += 1,
            }
        }
        let planned = plan
            .processes
            .iter()
            .filter(|p| p.role == role.name)
            .count();
        let _ = writeln!(
            o,
            "  {:<width$} {planned:>7} {running:>7} {exited:>7} {killed:>7}",
            role.name
        );
    }
    for h in hosts {
        if let Some(e) = &h.error {
            let _ = writeln!(o, "host {}: {e}", h.host);
        }
        if let Some(w) = &h.watchdog {
            let why = if w == "expired" {
                "stopped the fleet: the lease expired (no controller renewed it)"
            } else {
                "stopped the fleet at the end of the detached run"
            };
            let _ = writeln!(o, "host {}: the watchdog {why}", h.host);
        }
    }
    o
}

/// What a launch prints at its end (and `sortie report` prints again): the summary, then where
/// the report and the logs are.
pub fn end_text(report: &LaunchReport, report_path: Option<&Path>) -> String {
    let mut text = render_summary(report);
    if let Some(p) = report_path {
        let logs = p.with_file_name("logs");
        text.push_str(&format!(
            "report: {}\nlogs:   {}\n",
            p.display(),
            logs.display()
        ));
    }
    text
}

/// The live view: `--json` lines on stdout, the table on a terminal's stderr, status lines
/// on stderr otherwise.
fn live_view(json: bool, run_id: &str) -> LiveView {
    if json {
        return LiveView::json(Box::new(std::io::stdout()), run_id);
    }
    let tty =
        std::io::stderr().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb");
    if tty {
        LiveView::table(ProgressDrawTarget::stderr())
    } else {
        LiveView::lines(Box::new(std::io::stderr()))
    }
}

/// Interrupted beats a failed threshold; without thresholds, any failed process fails the run;
/// a run that passed but whose `[[collect]]` did not bring everything back exits 1, and so
/// does a run whose record ends before it finished (`sortie report` of a dead controller).
pub fn exit_code(report: &LaunchReport) -> ExitCode {
    let code = lifecycle_code(report);
    if code == ExitCode::Ok && (report.collections_incomplete() > 0 || !report.finished) {
        ExitCode::CommandFailed
    } else {
        code
    }
}

fn lifecycle_code(report: &LaunchReport) -> ExitCode {
    if report.interrupted {
        ExitCode::Interrupted
    } else if !report.thresholds.is_empty() {
        if report.thresholds_passed {
            ExitCode::Ok
        } else {
            ExitCode::ThresholdFailed
        }
    } else if report.failed() > 0
        || report
            .processes
            .iter()
            .any(|p| matches!(p.ending, sortie::launch::Ending::NeverStarted { .. }))
    {
        ExitCode::CommandFailed
    } else {
        ExitCode::Ok
    }
}

/// Runs the commands of command-defined groups and reads inventory groups, as the inventory
/// layer does for its own groups.
fn resolve_groups(spec: &PlanSpec) -> miette::Result<HostResolution> {
    let mut out = HostResolution::new();
    for need in spec.host_needs() {
        let hosts = match &need.source {
            GroupSource::Command(cmd) => {
                // A one-group inventory: sortie-inventory runs the command (sh -c, in the
                // plan's directory) and expands its output, errors included.
                let text = format!(
                    "[groups.{}]\ncommand = {}\n",
                    toml_key(&need.group),
                    toml_string(cmd)
                );
                let path = spec
                    .base_dir
                    .join(spec.path.file_name().unwrap_or_default());
                let inv = sortie_inventory::inventory::parse_str(&text, &path)
                    .map_err(|e| miette::miette!("group {}: {e}", need.group))?;
                inv.group_members(&need.group)
                    .map_err(miette::Report::new)?
            }
            GroupSource::Inventory(path) => {
                let inv = sortie_inventory::inventory::load(path).map_err(miette::Report::new)?;
                inv.group_members(&need.group)
                    .map_err(miette::Report::new)?
            }
            GroupSource::Hosts(h) => h.clone(),
        };
        out.insert(need.group.clone(), hosts);
    }
    Ok(out)
}

fn toml_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_string()
    } else {
        toml_string(s)
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// One target per plan host: local hosts run here; SSH hosts are resolved with ssh_config and
/// the inventory like `sortie exec` hosts, the plan's connection settings (user, port,
/// identity file, ProxyJump) between the command line and ssh_config.
fn targets(plan: &Plan, a: &LaunchArgs) -> miette::Result<Vec<Target>> {
    let mut resolvers: HashMap<(Option<String>, Option<String>), Resolver> = HashMap::new();
    let mut out = Vec::with_capacity(plan.hosts.len());
    for h in &plan.hosts {
        let c = &h.connection;
        if c.transport == Some(Transport::Local) || h.spec.host == "local" {
            out.push(local_target(&h.label));
            continue;
        }
        let key = (c.identity_file.clone(), c.proxy_jump.clone());
        if !resolvers.contains_key(&key) {
            let mut identity_files = a.identity.clone();
            if let Some(f) = &c.identity_file {
                identity_files.push(expand_home(f));
            }
            let req = SelectRequest {
                inventory: None,
                overrides: Overrides {
                    user: a.user.clone(),
                    port: a.port,
                    identity_files,
                    ssh_config: a.ssh_config.clone(),
                    connect_timeout: a.connect_timeout,
                    strict_host_key_checking: a.host_key_checking.map(select::strict),
                    known_hosts_files: (!a.known_hosts.is_empty()).then(|| a.known_hosts.clone()),
                    proxy_jump: c.proxy_jump.clone(),
                    ssh_options: a.ssh_options.clone(),
                    ..Overrides::default()
                },
                defaults: a.defaults.clone(),
                ..SelectRequest::default()
            };
            let r = Resolver::new(&req).map_err(miette::Report::new)?;
            resolvers.insert(key.clone(), r);
        }
        let resolver = &resolvers[&key];
        let spec = HostSpec {
            user: c.user.clone(),
            host: h.spec.host.clone(),
            port: c.port,
        };
        let cfg = resolver.resolve(&spec, &[]).map_err(miette::Report::new)?;
        let mut t = select::target(resolver, &cfg)?;
        t.label = h.label.clone();
        out.push(t);
    }
    let warnings: Vec<_> = resolvers.values().flat_map(Resolver::warnings).collect();
    select::print_warnings(&warnings);
    Ok(out)
}

fn local_target(label: &str) -> Target {
    Target {
        port: 0,
        kind: TransportKind::Local,
        ..Target::named(label)
    }
}
