//! Line mode and per-job grouping: output lines prefixed with their origin.
//!
//! Live line mode (the default of `sortie exec`) prints every whole line as it arrives:
//! `web03 | text` for stdout on stdout, `web03 ! text` for stderr on stderr (red when colour is
//! on), labels padded to the longest label so columns line up. Per-job mode (the default of
//! `sortie run`) formats the same way but holds a job's lines until the job finishes and then
//! prints them in one go, so two jobs never interleave. Lines are never truncated; a partial
//! last line (no trailing newline) is printed as a line of its own.
//!
//! This module owns only that formatting and buffering; the summary lives in `summary`.

use crate::sink::{Lines, Sink};
use crate::style::{Paint, ERROR};
use crate::{PrefixStyle, Reporter};
use sortie_events::{Event, Stream};
use std::collections::HashMap;
use std::io;

/// Prints output lines prefixed with `host` or `host/job`, live or grouped per job.
pub struct LineReporter {
    out: Sink,
    err: Sink,
    paint_err: Paint,
    prefix: PrefixStyle,
    host_width: usize,
    job_digits: usize,
    /// `Some` in per-job mode: buffered lines per (host, job), with their start order.
    held: Option<HashMap<(String, u64), (u64, Lines)>>,
    started: u64,
}

impl LineReporter {
    pub(crate) fn new(
        out: Sink,
        err: Sink,
        paint_err: Paint,
        prefix: PrefixStyle,
        labels: &[String],
        per_job: bool,
    ) -> Self {
        LineReporter {
            out,
            err,
            paint_err,
            prefix,
            host_width: labels.iter().map(|l| l.chars().count()).max().unwrap_or(0),
            job_digits: 1,
            held: per_job.then(HashMap::new),
            started: 0,
        }
    }

    fn render(&self, host: &str, job: u64, stream: Stream, line: &[u8]) -> Vec<u8> {
        let (label, width) = match self.prefix {
            PrefixStyle::Host => (host.to_owned(), self.host_width),
            PrefixStyle::HostJob => (
                format!("{host}/{job}"),
                self.host_width + 1 + self.job_digits,
            ),
        };
        let mut text = Vec::with_capacity(width + line.len() + 4);
        text.extend_from_slice(label.as_bytes());
        text.resize(
            text.len() + width.saturating_sub(label.chars().count()),
            b' ',
        );
        let mut out = Vec::with_capacity(text.len() + line.len() + 16);
        match stream {
            Stream::Stdout => {
                out.extend_from_slice(&text);
                out.extend_from_slice(b" | ");
                out.extend_from_slice(line);
            }
            Stream::Stderr => {
                text.extend_from_slice(b" ! ");
                text.extend_from_slice(line);
                self.paint_err.put(&mut out, ERROR, &text);
            }
        }
        out.push(b'\n');
        out
    }

    fn emit(&self, host: &str, job: u64, lines: &[(Stream, Vec<u8>)]) -> io::Result<()> {
        // Consecutive lines of one stream go out in one write: fewer syscalls, same order.
        let mut run: Vec<u8> = Vec::new();
        let mut run_stream = None;
        for (stream, line) in lines {
            if run_stream.is_some_and(|s| s != *stream) {
                self.sink(run_stream).write(&run)?;
                run.clear();
            }
            run_stream = Some(*stream);
            run.extend_from_slice(&self.render(host, job, *stream, line));
        }
        if !run.is_empty() {
            self.sink(run_stream).write(&run)?;
        }
        Ok(())
    }

    fn sink(&self, stream: Option<Stream>) -> &Sink {
        match stream {
            Some(Stream::Stderr) => &self.err,
            _ => &self.out,
        }
    }

    fn flush_held(&mut self) -> io::Result<()> {
        let Some(held) = self.held.as_mut() else {
            return Ok(());
        };
        let mut rest: Vec<_> = held.drain().collect();
        rest.sort_by_key(|(_, (order, _))| *order);
        for ((host, job), (_, lines)) in rest {
            self.emit(&host, job, &lines)?;
        }
        Ok(())
    }
}

impl Reporter for LineReporter {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::RunStarted { jobs, .. } => {
                self.job_digits = jobs.max(&1).ilog10() as usize + 1;
            }
            Event::JobStarted { host, job, .. } => {
                let order = self.started;
                self.started += 1;
                if let Some(held) = self.held.as_mut() {
                    held.entry((host.clone(), *job))
                        .or_insert_with(|| (order, Vec::new()));
                }
            }
            Event::Output {
                host,
                job,
                stream,
                line,
                ..
            } => match self.held.as_mut() {
                Some(held) => {
                    let order = self.started;
                    held.entry((host.clone(), *job))
                        .or_insert_with(|| (order, Vec::new()))
                        .1
                        .push((*stream, line.clone()));
                }
                None => {
                    let prefixed = self.render(host, *job, *stream, line);
                    self.sink(Some(*stream)).write(&prefixed)?;
                }
            },
            Event::JobFinished { host, job, .. } => {
                let done = self
                    .held
                    .as_mut()
                    .and_then(|h| h.remove(&(host.clone(), *job)));
                if let Some((_, lines)) = done {
                    self.emit(host, *job, &lines)?;
                }
            }
            Event::RunFinished { .. } => self.flush_held()?,
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush_held()?;
        self.out.flush()?;
        self.err.flush()
    }
}
