//! The checks behind every fuzz target, one function per parser of user input.
//!
//! Each function takes arbitrary bytes, feeds them to one parser and checks what must hold for
//! *any* input: no panic, no unbounded work, and every error a person can see renders (miette's
//! graphical handler walks the span, so an out-of-range or mid-character span panics here) and
//! names a 1-based line and column. The libFuzzer targets in `fuzz_targets/` call these under
//! nightly (`cargo +nightly fuzz run NAME`); `tests/stable.rs` calls them on stable with the
//! seed corpus, the malformed corpus and bounded random mutations.
//!
//! This crate must not contact any host, run commands or write files.

use std::path::Path;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

/// A fuzz target: takes any bytes, panics when a check fails.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz_targets/*.rs` and of the corpus directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("hostexpr", hostexpr),
    ("inventory", inventory),
    ("sshconfig", sshconfig),
    ("plan", plan),
    ("csv", csv),
    ("knownhosts", knownhosts),
];

/// Renders a diagnostic the way the CLI does (graphical, no colour) and returns the text.
///
/// Panics when rendering fails or the text is empty: both are bugs a user would hit.
pub fn render(d: &dyn Diagnostic) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, d)
        .expect("a diagnostic renders");
    assert!(!out.trim().is_empty(), "empty rendering for {d:?}");
    out
}

/// Checks that `line`/`column` are 1-based and inside `text`, and that `shown` names them as
/// `LINE:COL` (how every located error of sortie reads).
fn check_location(text: &str, line: usize, column: usize, shown: &str) {
    assert!(line >= 1 && column >= 1, "0-based location {line}:{column}");
    let lines = text.split('\n').count();
    assert!(
        line <= lines,
        "line {line} beyond the {lines} line(s) of the text"
    );
    if let Some(l) = text.split('\n').nth(line - 1) {
        assert!(
            column <= l.chars().count() + 1,
            "column {column} beyond line {line} ({} chars)",
            l.chars().count()
        );
    }
    assert!(
        shown.contains(&format!("{line}:{column}")) || shown.contains(&format!("column {column}")),
        "message does not name {line}:{column}: {shown}"
    );
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Host expressions (`-H`, `-x`, host files): `sortie_inventory::hostexpr::parse`.
pub fn hostexpr(data: &[u8]) {
    let t = text(data);
    match sortie_inventory::hostexpr::parse(&t) {
        Ok(elements) => {
            // The summary folds host names back into ranges: that must not panic either, and
            // expanding the fold must give back exactly the same hosts.
            let names: Vec<String> = elements
                .iter()
                .filter_map(|e| match e {
                    sortie_inventory::hostexpr::Element::Hosts(h) => Some(h),
                    sortie_inventory::hostexpr::Element::File { .. } => None,
                })
                .flatten()
                .take(10_000)
                .map(|h| h.host.clone())
                .collect();
            let folded = sortie_inventory::fold(&names);
            if !names.is_empty() {
                let mut back: Vec<String> = sortie_inventory::hostexpr::parse(&folded)
                    .unwrap_or_else(|e| panic!("fold of {names:?} does not parse: {folded}: {e}"))
                    .into_iter()
                    .flat_map(|e| match e {
                        sortie_inventory::hostexpr::Element::Hosts(h) => h,
                        sortie_inventory::hostexpr::Element::File { .. } => Vec::new(),
                    })
                    .map(|h| h.host)
                    .collect();
                let mut want = names.clone();
                want.sort();
                want.dedup();
                back.sort();
                assert_eq!(back, want, "fold {folded}");
            }
        }
        Err(e) => {
            let shown = e.to_string();
            check_location(&t, e.line, e.column, &shown);
            render(&e);
        }
    }
    if let Err(e) = sortie_inventory::hostexpr::parse_host_file(&t, Path::new("hosts.txt")) {
        check_location(&t, e.line, e.column, &e.to_string());
        render(&e);
    }
}

/// Inventory files: `sortie_inventory::inventory::parse_str`.
pub fn inventory(data: &[u8]) {
    let t = text(data);
    if let Err(e) = sortie_inventory::inventory::parse_str(&t, Path::new("sortie.toml")) {
        let shown = e.to_string();
        assert!(shown.contains("sortie.toml"), "names the file: {shown}");
        check_location(&t, e.line, e.column, &shown);
        render(&e);
    }
}

/// ssh_config files: `sortie_inventory::sshconfig::parse_str`, then resolving one host with it.
pub fn sshconfig(data: &[u8]) {
    use sortie_inventory::sshconfig::{parse_str, SshOptions};
    let t = text(data);
    match parse_str(&t, Path::new("/fuzz/ssh_config")) {
        Ok(cfg) => {
            // Mutated text must never run commands (`Match exec "rm ..."`).
            let cfg = cfg.without_match_exec();
            let env = sortie_inventory::LocalEnv {
                user: "fuzz".into(),
                home: "/nonexistent-fuzz-home".into(),
                uid: 1000,
                hostname: "fuzzhost.example".into(),
                cwd: "/nonexistent-fuzz-cwd".into(),
                system_ssh_config: "/nonexistent-fuzz-ssh_config".into(),
            };
            let mut opts = SshOptions::default();
            if cfg.apply("web01.example", &mut opts, &env).is_ok() {
                let _ = opts.finish("web01.example", &env);
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.contains("/fuzz/ssh_config"),
                "names the file: {shown}"
            );
            check_location(&t, e.line, e.column, &shown);
            render(&e);
        }
    }
}

/// Launch plans: `sortie_plan::launch::load_str` (data sets resolve under a directory that does
/// not exist, so nothing is read).
pub fn plan(data: &[u8]) {
    let t = text(data);
    if let Err(e) =
        sortie_plan::launch::load_str("plan.toml", &t, Path::new("/nonexistent-sortie-fuzz"), &[])
    {
        let shown = e.to_string();
        assert!(!shown.trim().is_empty());
        render(&e);
    }
}

/// CSV job sources: `sortie_plan::csv::parse_str` and `parse_bytes` (invalid UTF-8 included).
pub fn csv(data: &[u8]) {
    let t = text(data);
    if let Err(e) = sortie_plan::csv::parse_str("jobs.csv", &t) {
        check_location(&t, e.line(), e.column(), &e.to_string());
        render(&e);
    }
    if let Err(e) = sortie_plan::csv::parse_bytes("jobs.csv", data) {
        assert!(e.line() >= 1 && e.column() >= 1);
        render(&e);
    }
}

/// known_hosts files: `sortie_knownhosts::KnownHosts::parse_str`, then a lookup with the input
/// as a key blob. Loading never fails; bad lines are warnings that must be located.
pub fn knownhosts(data: &[u8]) {
    let t = text(data);
    let known = sortie_knownhosts::KnownHosts::parse_str(&t, Path::new("known_hosts"));
    for w in known.warnings() {
        if let sortie_knownhosts::Warning::BadLine { line, column, .. } = w {
            check_location(&t, *line, *column, &w.to_string());
        }
        render(w);
    }
    let _ = known.check("web01.example", 2222, "ssh-ed25519", data);
    let _ = known.check("10.0.0.1", 22, "rsa-sha2-512", data);
}
