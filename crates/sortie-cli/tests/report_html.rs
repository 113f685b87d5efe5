//! `report.html` and the live dashboard, looked at in a real headless Chromium (Debian's
//! `chromium`; one browser start shared by the tests here). What a user checks: the page opens
//! from disk with no network and no console error, every chart drew the points its data has,
//! the process table has one row per process and can be filtered; during a launch with
//! `--web`, the page's counts change as processes become ready, `/metrics` parses as
//! Prometheus text with the expected series; and no `env_from_controller` value is on the page
//! or in the metrics. A screenshot of each page is written under `target/` for people.
//!
//! Where Chromium is missing or cannot start, the tests print `SKIP <name>: <reason>`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The one browser of this test binary, or why there is none.
fn browser() -> &'static Result<Browser, String> {
    static B: OnceLock<Result<Browser, String>> = OnceLock::new();
    B.get_or_init(|| {
        if !Path::new(CHROMIUM).exists() {
            return Err(format!(
                "{CHROMIUM} not installed (apt-get install chromium)"
            ));
        }
        let opts = LaunchOptions::default_builder()
            .path(Some(reaped_chromium()?))
            .sandbox(false)
            .window_size(Some((1280, 1600)))
            .idle_browser_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| e.to_string())?;
        Browser::new(opts).map_err(|e| format!("chromium did not start: {e}"))
    })
}

/// A wrapper that runs Chromium and stops it once this test binary has exited: the shared
/// browser lives in a static, which is never dropped, and Chromium does not end with its
/// parent, so without it every run of this binary would leave a browser behind.
fn reaped_chromium() -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::temp_dir().join(format!("sortie-test-chromium-{}.sh", std::process::id()));
    let script = format!(
        "#!/bin/sh\n{CHROMIUM} \"$@\" &\nc=$!\nwhile kill -0 $PPID 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 1; done\n\
         kill $c 2>/dev/null\nrm -f \"$0\"\n"
    );
    std::fs::write(&path, script)
        .and_then(|_| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Console errors and uncaught exceptions a tab saw.
type Errors = Arc<Mutex<Vec<String>>>;

/// A tab that records console errors and uncaught exceptions, or `None` (test skipped).
fn tab(test: &str) -> Option<(Arc<Tab>, Errors)> {
    let b = match browser() {
        Ok(b) => b,
        Err(why) => {
            sortie_testkit::skip(test, why);
            return None;
        }
    };
    let tab = b.new_tab().expect("a new tab");
    tab.enable_runtime().unwrap();
    tab.enable_log().unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    tab.add_event_listener(Arc::new(move |ev: &Event| {
        let msg = match ev {
            Event::RuntimeExceptionThrown(e) => Some(format!("{:?}", e.params.exception_details)),
            Event::RuntimeConsoleAPICalled(e)
                if format!("{:?}", e.params.Type).eq_ignore_ascii_case("error") =>
            {
                Some(format!("console.error {:?}", e.params.args))
            }
            Event::LogEntryAdded(e) if format!("{:?}", e.params.entry.level) == "Error" => {
                Some(format!("{:?}: {}", e.params.entry.url, e.params.entry.text))
            }
            _ => None,
        };
        if let Some(m) = msg {
            sink.lock().unwrap().push(m);
        }
    }))
    .unwrap();
    Some((tab, errors))
}

/// Evaluates `js` (which returns a JSON string) in the tab.
fn eval(tab: &Tab, js: &str) -> Value {
    let v = tab
        .evaluate(js, false)
        .unwrap()
        .value
        .unwrap_or(Value::Null);
    match v {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        v => v,
    }
}

const PAGE_STATE: &str = r#"JSON.stringify({
  rendered: Number(document.body.getAttribute('data-rendered') || 0),
  charts: Array.from(document.querySelectorAll('.chart')).map(function (c) {
    return { name: c.getAttribute('data-chart'), points: Number(c.getAttribute('data-points')),
             canvases: c.querySelectorAll('canvas').length };
  }),
  rows: Array.from(document.querySelectorAll('#processes tbody tr')).map(function (r) { return r.getAttribute('data-id'); }),
  ready: Array.from(document.querySelectorAll('#roles tbody tr')).map(function (r) { return Number(r.children[2].textContent); }),
  resources: performance.getEntriesByType('resource').map(function (r) { return r.name; }),
  html: document.documentElement.outerHTML
})"#;

fn screenshot(tab: &Tab, name: &str) -> PathBuf {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

fn wait_rendered(tab: &Tab) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let st = eval(tab, PAGE_STATE);
        if st["rendered"].as_u64().unwrap_or(0) > 0 {
            return st;
        }
        assert!(Instant::now() < end, "the page never rendered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The recorded run of examples/local with host and process samples added every 500 ms of
/// the run (as a sampling launch records them); returns the record's lines.
fn sampled_record() -> Vec<Value> {
    let text = std::fs::read_to_string(
        repo().join("crates/sortie-report/tests/data/local-demo.events.jsonl"),
    )
    .unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = lines[0].clone();
    let last = lines.pop().unwrap();
    let end = last["elapsed_ms"].as_u64().unwrap();
    let run_id = first["run_id"].clone();
    let hosts: Vec<String> = (first["host_list"].as_array().unwrap().iter())
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect();
    let started: Vec<Value> = (lines.iter())
        .filter(|l| l["event"] == "process_started")
        .cloned()
        .collect();
    let mut at = 500;
    while at < end {
        for (i, h) in hosts.iter().enumerate() {
            lines.push(
                json!({"v":1,"run_id":run_id,"event":"host_sample","host":h,"at_ms":at,
                "interval_ms":500,"cpus":2,"cpu_user":0.1 + 0.05 * i as f64,"cpu_system":0.05,
                "cpu_iowait":0.0,"cpu_steal":0.0,"load1":0.5,"load5":0.4,"load15":0.3,
                "mem_available_bytes":3u64 << 30,"mem_total_bytes":4u64 << 30,
                "net_rx_bytes":1000 * at,"net_tx_bytes":500 * at}),
            );
        }
        for s in &started {
            lines.push(
                json!({"v":1,"run_id":run_id,"event":"process_sample","process":s["process"],
                "pgid":s["pgid"],"at_ms":at,"cpu_seconds":0.01 * at as f64,"cpu_cores":0.02,
                "rss_bytes":3u64 << 20,"threads":1,"procs":2}),
            );
        }
        at += 500;
    }
    lines.push(last);
    lines
}

#[test]
fn report_html_of_a_recorded_run_draws_every_chart_and_lists_every_process() {
    let test = "report_html_of_a_recorded_run_draws_every_chart_and_lists_every_process";
    let dir = tempfile::tempdir().unwrap();
    let record = sampled_record();
    let text: String = record.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("events.jsonl"), text).unwrap();
    let out = sortie()
        .args(["report", "--html"])
        .arg(dir.path())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("page:   "), "{shown}");
    let html_path = dir.path().join("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "nothing fetched from the network"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let Some((tab, errors)) = tab(test) else {
        return;
    };
    tab.navigate_to(&format!("file://{}", html_path.display()))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let st = wait_rendered(&tab);
    screenshot(&tab, "report-html.png");

    // Every chart drew as many points as its data has, counted from the record and the report.
    let host_samples = record
        .iter()
        .filter(|l| l["event"] == "host_sample")
        .count() as u64;
    let processes = report["processes"].as_array().unwrap();
    let charts = st["charts"].as_array().unwrap();
    let names: Vec<&str> = charts.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for role in ["master", "viewer"] {
        assert!(
            names.contains(&format!("counts-{role}").as_str()),
            "{names:?}"
        );
    }
    for c in charts {
        let name = c["name"].as_str().unwrap();
        let points = c["points"].as_u64().unwrap();
        let want = if let Some(role) = name.strip_prefix("ready-") {
            (processes.iter())
                .filter(|p| p["role"] == role && !p["time_to_ready_ms"].is_null())
                .count() as u64
        } else if name.starts_with("host-") {
            host_samples
        } else {
            let role = name.strip_prefix("counts-").unwrap();
            let changes = record
                .iter()
                .filter(|l| l["event"] == "progress" || l["event"] == "launch_finished")
                .filter_map(|l| {
                    let r = l["roles"].as_array()?.iter().find(|r| r["role"] == role)?;
                    Some(
                        [&r["starting"], &r["ready"], &r["failed"], &r["stopped"]]
                            .map(Value::clone),
                    )
                })
                .fold(Vec::new(), |mut v: Vec<[Value; 4]>, c| {
                    if v.last() != Some(&c) {
                        v.push(c);
                    }
                    v
                });
            4 * changes.len() as u64
        };
        assert!(want > 0, "{name}: a chart with nothing to draw");
        assert_eq!(points, want, "chart {name}");
        assert!(c["canvases"].as_u64().unwrap() >= 1, "{name} has a canvas");
    }
    for name in [
        "ready-master",
        "ready-viewer",
        "host-cpu",
        "host-mem",
        "host-net",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    // One row per process; filtering keeps the matching ones.
    let mut rows: Vec<&str> = st["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut ids: Vec<&str> = processes
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    rows.sort_unstable();
    ids.sort_unstable();
    assert_eq!(rows, ids);
    let shown = eval(
        &tab,
        "(function(){var f=document.getElementById('filter');f.value='viewer/';\
         f.dispatchEvent(new Event('input'));return JSON.stringify(\
         Array.from(document.querySelectorAll('#processes tbody tr')).map(function(r){return r.getAttribute('data-id')}))})()",
    );
    let viewers = ids.iter().filter(|i| i.starts_with("viewer/")).count();
    assert_eq!(shown.as_array().unwrap().len(), viewers, "{shown}");

    assert_eq!(st["resources"], json!([]), "nothing loaded from elsewhere");
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// A tiny HTTP/1.1 GET on loopback; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

const SECRET: &str = "web-secret-5f0c2a7e91";

#[test]
fn the_live_dashboard_follows_a_local_launch_and_serves_prometheus_metrics() {
    let test = "the_live_dashboard_follows_a_local_launch_and_serves_prometheus_metrics";
    if browser().is_err() {
        let _ = tab(test);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    // Four workers started one every two seconds; each becomes ready at once and holds.
    std::fs::write(
        &plan,
        "name = \"web\"\n[groups.box]\nhosts = [\"local\"]\ntransport = \"local\"\n\n\
         [roles.w]\ngroup = \"box\"\ncount = 4\nrate = \"30/m\"\n\
         env_from_controller = [\"SORTIE_T_WEB_SECRET\"]\n\
         command = \"test -n \\\"$SORTIE_T_WEB_SECRET\\\" && echo up; exec sleep 60\"\n\
         ready = 'up'\nready_timeout = \"60s\"\nstop = [{ signal = \"TERM\", grace = \"1s\" }]\n\n\
         [run]\nduration = \"60s\"\n",
    )
    .unwrap();
    let mut child = sortie()
        .args(["launch", "--web", "127.0.0.1:0", "--run-dir"])
        .arg(dir.path().join("run"))
        .arg(&plan)
        .env("SORTIE_T_WEB_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no dashboard line");
        if let Some(rest) = line.strip_prefix("dashboard: http://") {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let (tab, errors) = tab(test).unwrap();
    tab.navigate_to(&format!("http://{addr}/"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();

    // Watch the page's ready count while the workers start (one every two seconds), then scrape
    // /metrics while all four hold; then stop the run as Ctrl-C does.
    let ready_js = "JSON.stringify(Array.from(document.querySelectorAll('#roles tbody tr'))\
                    .map(function (r) { return Number(r.children[2].textContent); }))";
    let mut seen: Vec<u64> = Vec::new();
    let end = Instant::now() + Duration::from_secs(50);
    while Instant::now() < end && seen.last() != Some(&4) {
        if let Some(n) = eval(&tab, ready_js).get(0).and_then(Value::as_u64) {
            if seen.last() != Some(&n) {
                seen.push(n);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = eval(&tab, PAGE_STATE);
    screenshot(&tab, "live-dashboard.png");
    let (status, page) = http_get(&addr, "/");
    assert!(status.contains("200"), "{status}");
    let (status, metrics) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    let errors = errors.lock().unwrap().clone();
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();

    assert!(
        seen.len() >= 2 && seen.windows(2).all(|w| w[0] < w[1]) && seen.last() == Some(&4),
        "the page's ready count went up step by step to 4: {seen:?}"
    );
    assert!(errors.is_empty(), "console errors: {errors:?}");

    let lines = metrics.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape.samples.iter().find_map(|s| {
            let ok = s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
            match (&s.value, ok) {
                (prometheus_parse::Value::Gauge(v), true) => Some(*v),
                (prometheus_parse::Value::Untyped(v), true) => Some(*v),
                _ => None,
            }
        })
    };
    assert_eq!(
        value("sortie_processes", &[("role", "w"), ("state", "ready")]),
        Some(4.0)
    );
    assert_eq!(
        value("sortie_processes", &[("role", "w"), ("state", "planned")]),
        Some(4.0)
    );
    let hist = scrape
        .samples
        .iter()
        .find(|s| s.metric == "sortie_time_to_ready_seconds" && s.labels.get("role") == Some("w"))
        .unwrap_or_else(|| panic!("no histogram in {metrics}"));
    match &hist.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
            assert_eq!(inf.count, 4.0, "{metrics}");
        }
        other => panic!("not a histogram: {other:?}"),
    }

    for (what, text) in [
        ("page", page.as_str()),
        ("metrics", metrics.as_str()),
        ("DOM", st["html"].as_str().unwrap()),
        ("stdout", out.as_str()),
    ] {
        assert!(!text.contains(SECRET), "the secret is in the {what}");
    }
}

#[test]
fn a_dashboard_beyond_loopback_must_be_asked_for_before_any_host_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let marker = dir.path().join("started");
    std::fs::write(
        &plan,
        format!(
            "name = \"web\"\n[groups.box]\nhosts = [\"local\"]\ntransport = \"local\"\n\n\
             [roles.w]\ngroup = \"box\"\ncommand = \"touch {}\"\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = sortie()
        .args(["launch", "--web", "0.0.0.0:0", "--run-dir"])
        .arg(dir.path().join("run"))
        .arg(&plan)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--web 0.0.0.0:0: not a loopback address"),
        "{err}"
    );
    assert!(err.contains("--web-public"), "{err}");
    assert!(!marker.exists(), "nothing ran");
}

/// A step load on the local transport whose stand-ins refuse work above 2 (a shared counter):
/// the page says where it broke, draws the target against the live processes, and the
/// thresholds table shows the failure during the run.
#[test]
fn report_html_of_a_step_load_draws_target_against_live_and_where_it_broke() {
    let test = "report_html_of_a_step_load_draws_target_against_live_and_where_it_broke";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("counter")).unwrap();
    std::fs::write(
        root.join("w.sh"),
        "n=$(flock \"$1/lock\" sh -c 'n=$(( $(cat \"$1/n\" 2>/dev/null || echo 0) + 1 )); \
         echo $n > \"$1/n\"; echo $n' _ \"$1\")\n[ \"$n\" -gt 2 ] && exit 1\necho UP\n\
         while :; do sleep 0.2; done\n",
    )
    .unwrap();
    let plan = format!(
        "name = \"steps\"\n[groups.box]\nhosts = [\"local1\"]\ntransport = \"local\"\n\
         [roles.w]\ngroup = \"box\"\ncount = 6\ncommand = \"sh {0}/w.sh {0}/counter\"\n\
         ready = \"UP\"\nstop = [{{ signal = \"INT\", grace = \"5s\" }}]\n\
         step = {{ add = 1, every = \"1500ms\", max = 6 }}\n\
         [run]\nduration = \"1s\"\n[[thresholds]]\nmetric = \"ready_ratio\"\nmin = 0.99\n\
         window = \"2s\"\n",
        root.display()
    );
    std::fs::write(root.join("plan.toml"), plan).unwrap();
    let out = sortie()
        .current_dir(root)
        .args(["launch", "plan.toml", "--run-dir", "run"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html_path = root.join("run/report.html");
    let Some((tab, errors)) = tab(test) else {
        return;
    };
    tab.navigate_to(&format!("file://{}", html_path.display()))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_rendered(&tab);
    screenshot(&tab, "report-html-step.png");
    let st = eval(
        &tab,
        r#"JSON.stringify({
  step: Array.from(document.querySelectorAll('header p.step')).map(function (p) { return p.textContent; }),
  labels: Array.from(document.querySelectorAll('[data-chart="counts-w"] .u-legend .u-label')).map(function (l) { return l.textContent; }),
  title: (document.querySelector('[data-chart="counts-w"] h3') || {}).textContent,
  verdicts: Array.from(document.querySelectorAll('header table tbody tr')).map(function (r) { return r.lastChild.textContent; })
})"#,
    );
    let step = st["step"].as_array().unwrap();
    assert_eq!(step.len(), 1, "{st}");
    let step = step[0].as_str().unwrap();
    assert!(
        step.starts_with("step load: held 2 w, broke at 3"),
        "{step}"
    );
    let labels: Vec<&str> = (st["labels"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    assert!(
        labels.starts_with(&["target", "live"]),
        "the counts chart draws target and live first: {labels:?}"
    );
    assert!(st["title"].as_str().unwrap().contains("target"), "{st}");
    let verdict = st["verdicts"][0].as_str().unwrap();
    assert!(
        verdict.starts_with("FAIL at ") && verdict.contains("ready_ratio"),
        "{verdict}"
    );
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
