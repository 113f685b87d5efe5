//! `/metrics` of the live dashboard: the launch in Prometheus' text exposition format (0.0.4),
//! rendered from a [`PageFold`] so that it shows exactly what the events said.
//!
//! Series: `sortie_processes{role,state}` (gauge, the latest counts), `sortie_target{role}`
//! (roles with a load shape), `sortie_restarts{role}`
//! (gauge), `sortie_time_to_ready_seconds{role}` (histogram over processes that became ready),
//! `sortie_host_cpu_ratio{host,mode}` (gauge, fraction of the host over the last interval),
//! `sortie_host_load1{host}`, `sortie_host_memory_available_bytes{host}` and
//! `sortie_host_memory_total_bytes{host}` (gauges, the latest sample). No environment value
//! or process output is in any of them.

use std::fmt::Write as _;

use super::page::PageFold;

/// Upper bounds of the time-to-ready histogram's buckets, in seconds.
pub const READY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value, escaped as the format wants (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The metrics text of the launch as far as `fold` has seen it.
pub fn render(fold: &PageFold) -> String {
    let mut out = String::new();
    let counts = fold.latest_counts();
    head(
        &mut out,
        "sortie_processes",
        "gauge",
        "Processes of the launch by role and state.",
    );
    for c in counts {
        let r = label(&c.role);
        for (state, n) in [
            ("planned", c.planned),
            ("pending", c.pending),
            ("starting", c.starting),
            ("ready", c.ready),
            ("failed", c.failed),
            ("exited", c.exited),
            ("stopped", c.stopped),
            ("never_started", c.never_started),
        ] {
            let _ = writeln!(
                out,
                "sortie_processes{{role=\"{r}\",state=\"{state}\"}} {n}"
            );
        }
    }
    head(
        &mut out,
        "sortie_restarts",
        "gauge",
        "Restarts of the role's processes so far.",
    );
    for c in counts {
        let _ = writeln!(
            out,
            "sortie_restarts{{role=\"{}\"}} {}",
            label(&c.role),
            c.restarts
        );
    }
    if counts.iter().any(|c| c.target.is_some()) {
        head(
            &mut out,
            "sortie_target",
            "gauge",
            "Live processes the role's load shape (stages or step load) asks for now.",
        );
        for c in counts {
            if let Some(t) = c.target {
                let _ = writeln!(out, "sortie_target{{role=\"{}\"}} {t}", label(&c.role));
            }
        }
    }
    ready_histogram(&mut out, fold);
    host_gauges(&mut out, fold);
    out
}

fn ready_histogram(out: &mut String, fold: &PageFold) {
    let report = fold.report_fold().report();
    let name = "sortie_time_to_ready_seconds";
    head(
        out,
        name,
        "histogram",
        "Time from start to ready of processes that became ready.",
    );
    for role in &report.roles {
        let r = label(&role.role);
        let ttr: Vec<f64> = (report.processes.iter())
            .filter(|p| p.role == role.role)
            .filter_map(|p| p.time_to_ready_ms)
            .map(|ms| ms as f64 / 1000.0)
            .collect();
        for le in READY_BUCKETS {
            let n = ttr.iter().filter(|v| **v <= *le).count();
            let _ = writeln!(out, "{name}_bucket{{role=\"{r}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{role=\"{r}\",le=\"+Inf\"}} {}",
            ttr.len()
        );
        let _ = writeln!(
            out,
            "{name}_sum{{role=\"{r}\"}} {}",
            ttr.iter().sum::<f64>()
        );
        let _ = writeln!(out, "{name}_count{{role=\"{r}\"}} {}", ttr.len());
    }
}

fn host_gauges(out: &mut String, fold: &PageFold) {
    let samples: Vec<_> = fold.latest_samples().collect();
    head(
        out,
        "sortie_host_cpu_ratio",
        "gauge",
        "CPU of the host by mode over the last sampling interval, fraction of all its CPUs.",
    );
    for s in &samples {
        let h = label(&s.host);
        for (mode, v) in [
            ("user", s.cpu_user),
            ("system", s.cpu_system),
            ("iowait", s.cpu_iowait),
            ("steal", s.cpu_steal),
        ] {
            let _ = writeln!(
                out,
                "sortie_host_cpu_ratio{{host=\"{h}\",mode=\"{mode}\"}} {v}"
            );
        }
    }
    type Get = fn(&sortie_events::launch::HostSample) -> f64;
    let gauges: [(&str, &str, Get); 3] = [
        (
            "sortie_host_load1",
            "1-minute load average of the host.",
            |s| s.load1,
        ),
        (
            "sortie_host_memory_available_bytes",
            "Available memory of the host (MemAvailable).",
            |s| s.mem_available_bytes as f64,
        ),
        (
            "sortie_host_memory_total_bytes",
            "Memory of the host (MemTotal).",
            |s| s.mem_total_bytes as f64,
        ),
    ];
    for (name, help, get) in gauges {
        head(out, name, "gauge", help);
        for s in &samples {
            let _ = writeln!(out, "{name}{{host=\"{}\"}} {}", label(&s.host), get(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sortie_events::launch::{
        HostSample, LaunchEvent, PlannedHost, PlannedProcess, ProcessRef, RoleCounts,
    };

    fn events() -> Vec<LaunchEvent> {
        let p = |key: &str| PlannedProcess {
            id: format!("mx/{key}"),
            role: "mx".into(),
            key: key.into(),
            host: "h1".into(),
            log: None,
        };
        let ready = |key: &str, ms: u64| LaunchEvent::ProcessReady {
            process: ProcessRef {
                id: format!("mx/{key}"),
                role: "mx".into(),
                key: key.into(),
                host: "h1".into(),
            },
            time_to_ready_ms: ms,
            at_ms: ms,
            ready_at: None,
        };
        vec![
            LaunchEvent::LaunchStarted {
                plan: "p".into(),
                digest: String::new(),
                plan_path: String::new(),
                overrides: vec![],
                run_dir: None,
                started_at: String::new(),
                processes: 3,
                hosts: 1,
                roles: vec!["mx".into()],
                duration_ms: None,
                host_list: vec![PlannedHost {
                    host: "h1".into(),
                    group: "g".into(),
                }],
                process_list: vec![p("a"), p("b"), p("c")],
                thresholds: vec![],
            },
            ready("a", 200),
            ready("b", 3000),
            LaunchEvent::Progress {
                phase: sortie_events::launch::Phase::Starting,
                roles: vec![RoleCounts {
                    role: "mx".into(),
                    planned: 3,
                    starting: 1,
                    ready: 2,
                    ..RoleCounts::default()
                }],
                starting: 1,
                start_rate: 0.0,
                elapsed_ms: 3000,
                remaining_ms: None,
            },
            LaunchEvent::HostSample(HostSample {
                host: "h1".into(),
                at_ms: 3000,
                interval_ms: 1000,
                cpus: 2,
                cpu_user: 0.25,
                cpu_system: 0.125,
                mem_available_bytes: 3 << 30,
                mem_total_bytes: 4 << 30,
                ..HostSample::default()
            }),
        ]
    }

    #[test]
    fn metrics_parse_as_prometheus_text_with_counts_histogram_and_host_gauges() {
        let mut fold = PageFold::new("r");
        for ev in events() {
            fold.apply(&ev);
        }
        let text = render(&fold);
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let gauge = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
            scrape.samples.iter().find_map(|s| {
                let ok =
                    s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
                match (&s.value, ok) {
                    (prometheus_parse::Value::Gauge(v), true) => Some(*v),
                    _ => None,
                }
            })
        };
        let role = "mx";
        // prometheus-parse splits labels naively; the escaping itself is checked by hand.
        assert_eq!(label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        assert_eq!(
            gauge("sortie_processes", &[("role", role), ("state", "ready")]),
            Some(2.0)
        );
        assert_eq!(
            gauge("sortie_processes", &[("role", role), ("state", "starting")]),
            Some(1.0)
        );
        assert_eq!(
            gauge("sortie_host_cpu_ratio", &[("host", "h1"), ("mode", "user")]),
            Some(0.25)
        );
        assert_eq!(
            gauge("sortie_host_memory_available_bytes", &[("host", "h1")]),
            Some((3u64 << 30) as f64)
        );
        assert_eq!(
            gauge("sortie_host_memory_total_bytes", &[("host", "h1")]),
            Some((4u64 << 30) as f64)
        );
        let hist = (scrape.samples.iter())
            .find(|s| s.metric == "sortie_time_to_ready_seconds")
            .unwrap_or_else(|| panic!("{text}"));
        let prometheus_parse::Value::Histogram(b) = &hist.value else {
            panic!("{:?}", hist.value)
        };
        let at = |le: f64| b.iter().find(|x| x.less_than == le).map(|x| x.count);
        assert_eq!(at(0.25), Some(1.0), "200 ms");
        assert_eq!(at(2.5), Some(1.0));
        assert_eq!(at(5.0), Some(2.0), "and 3 s");
        assert_eq!(at(f64::INFINITY), Some(2.0));
    }
}
