//! Replays a JSON Lines event recording through the reporters, pacing events so the status
//! line can be watched: `cargo run -p sortie-report --example replay -- events.jsonl [--group]`.

use sortie_events::Event;
use sortie_report::{Mode, Reporter, ReporterConfig};
use std::io::BufRead;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: replay EVENTS.jsonl [--group|--json|--per-job]")?;
    let mode = match args.get(1).map(String::as_str) {
        Some("--group") => Mode::Group,
        Some("--json") => Mode::Json,
        Some("--per-job") => Mode::PerJob,
        _ => Mode::Line,
    };
    let events: Vec<Event> = std::io::BufReader::new(std::fs::File::open(path)?)
        .lines()
        .map(|l| Ok(serde_json::from_str(&l?)?))
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    let mut labels: Vec<String> = Vec::new();
    for e in &events {
        if let Event::HostConnecting { host } = e {
            labels.push(host.clone());
        }
    }
    let mut r = ReporterConfig::new(mode).labels(labels).build()?;
    for e in &events {
        r.report(e)?;
        std::thread::sleep(std::time::Duration::from_millis(80));
    }
    r.finish()?;
    Ok(())
}
