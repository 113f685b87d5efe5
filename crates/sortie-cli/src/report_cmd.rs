//! `sortie report RUN_DIR`: renders a launch again from its record alone. Folds
//! `RUN_DIR/events.jsonl` into the report, rewrites `RUN_DIR/report.json`, prints the same
//! summary as the end of the live run and exits with the same code; with `--html`, also writes
//! `RUN_DIR/report.html` (the page a launch writes at its end). A record that ends before
//! the launch finished (a controller that died) renders what is known and says so.

use sortie_report::launch::{read_record, write_html, PageFold, HTML_FILE};

use crate::args::ReportArgs;
use crate::exit::ExitCode;
use crate::launch_cmd::{end_text, exit_code};

/// Runs `sortie report`.
pub fn run(a: ReportArgs) -> miette::Result<ExitCode> {
    let record = read_record(&a.run_dir).map_err(miette::Report::new)?;
    for (line, why) in &record.unreadable {
        eprintln!("sortie: events.jsonl:{line}: skipped, unreadable ({why})");
    }
    if record.events.is_empty() {
        return Err(miette::miette!(
            code = "sortie::report::empty",
            help = "a launch writes events.jsonl in its run directory from its first moment",
            "{}: no launch event in events.jsonl",
            a.run_dir.display()
        ));
    }
    let mut fold = PageFold::new(&record.run_id);
    for ev in &record.events {
        fold.apply(ev);
    }
    let report = fold.report_fold().report();
    let dir = if a.run_dir.is_dir() {
        a.run_dir.clone()
    } else {
        a.run_dir
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default()
    };
    let path = match report.write_to(&dir) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("sortie: cannot write report.json in {}: {e}", dir.display());
            None
        }
    };
    let mut text = end_text(&report, path.as_deref());
    if a.html {
        match write_html(&fold.data(false), &dir) {
            Ok(p) => text.push_str(&format!("page:   {}\n", p.display())),
            Err(e) => {
                return Err(miette::miette!(
                    code = "sortie::report::html",
                    "cannot write {HTML_FILE} in {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    print!("{text}");
    Ok(exit_code(&report))
}
