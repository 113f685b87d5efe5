//! sortie-plan: what to run, before anything runs.
//!
//! This crate owns the pure, synchronous parts of `sortie run` and `sortie launch`: reading job sources (CSV files,
//! argument files, ranges, literal lists, standard input) into a cartesian product of jobs,
//! parsing and validating command templates against the available columns, rendering them per
//! job with shell quoting, and parsing duration/rate options. It performs no network I/O and
//! knows nothing about hosts beyond the label it substitutes for `{host}`.
//!
//! Every error a user can cause names the file, line and column (or the option value) and
//! implements [`miette::Diagnostic`] with a labelled span.
//!
//! | module | owns |
//! |---|---|
//! | [`csv`] | strict RFC 4180 reader with positioned errors |
//! | [`jobs`] | job sources, [`Columns`], the [`JobSet`] product |
//! | [`template`] | placeholder grammar, validation, rendering, [`shell_quote`] |
//! | [`units`] | `--timeout 1.5s`, `--rate 5/s` values |
//! | [`launch`] | `sortie launch` plan files: validation, placement, start schedule, dry run |
//!
//! ```
//! use sortie_plan::{Context, JobSet, JobSource, Template};
//!
//! let streams = sortie_plan::csv::parse_str("streams.csv", "channel,role\nch-1,master\n").unwrap();
//! let jobs = JobSet::new(vec![
//!     JobSource::csv_table(streams),
//!     JobSource::range("1..2").unwrap().named("n").unwrap(),
//! ])
//! .unwrap();
//! // Checked before anything runs: a typo such as {chanel} is an error here.
//! let template = Template::parse("start --channel {channel} --id {n} on {host}", jobs.columns()).unwrap();
//! let commands: Vec<String> = jobs
//!     .iter()
//!     .map(|job| {
//!         let ctx = Context { host: "web-01", slot: 1, seq: job.seq() };
//!         template.render(&job, &ctx)
//!     })
//!     .collect();
//! assert_eq!(commands, [
//!     "start --channel ch-1 --id 1 on web-01",
//!     "start --channel ch-1 --id 2 on web-01",
//! ]);
//! ```
//!
//! Fuzzing entry points (they never panic): [`csv::parse_bytes`], [`csv::parse_str`],
//! [`Template::parse`], [`parse_duration`], [`parse_rate`].

#![warn(missing_docs)]

pub mod csv;
pub mod jobs;
pub mod launch;
mod position;
pub mod template;
pub mod units;

pub use csv::{CsvError, CsvTable};
pub use jobs::{Columns, Delimiting, Job, JobSet, JobSource, JobsError};
pub use launch::{
    load as load_plan, render_dry_run, HostResolution, Plan, PlanError, PlanSpec, ProcessSpec,
};
pub use position::Located;
pub use template::{parallel_quote, shell_quote, Context, Modifier, Template, TemplateError};
pub use units::{parse_duration, parse_rate, Rate, UnitError};
