//! sortie-plan: what to run, before anything runs.
//!
//! This crate owns the pure, synchronous parts of `sortie run`: reading job sources (CSV files,
//! argument files, ranges, literal lists, standard input) into a cartesian product of jobs,
//! parsing and validating command templates against the available columns, rendering them per
//! job with shell quoting, and parsing duration/rate options. It performs no network I/O and
//! knows nothing about hosts beyond the label it substitutes for `{host}`.
//!
//! Every error a user can cause names the file, line and column (or the option) and implements
//! [`miette::Diagnostic`] with a labelled span.

pub mod csv;
pub mod jobs;
mod position;
pub mod template;
pub mod units;
