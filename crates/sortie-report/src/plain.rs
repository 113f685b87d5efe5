//! GNU parallel's output (`sortie run --plain`, `--tag`, `--tagstring`, `-k`).
//!
//! Each job's stdout and stderr are held until the job ends, then written whole (parallel's
//! default `--group`): stdout bytes to stdout, stderr bytes to stderr, exactly as they came (no
//! newline added, `\r` kept), with no `host/seq |` prefix and no summary. A job that is tried
//! again (`--retries`) shows only its last try's output, as parallel does. With `keep_order`
//! the jobs are printed in job order (`-k`), else in the order they end. A tag, when given, is
//! written before every line followed by a tab (`--tag`, `--tagstring`).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use sortie_events::{Event, Outcome, Stream};

use crate::Reporter;

/// Computes a job's tag from its number and host (`--tag`: its values; `--tagstring`: a
/// rendered template).
pub type TagFn = Box<dyn Fn(u64, &str) -> String + Send>;

/// One job's output: `(stream, bytes)` in the order received.
type Held = Vec<(Stream, Vec<u8>)>;

/// Writes each job's output bytes whole, as GNU parallel does (see the module docs).
pub struct PlainReporter<O: Write, E: Write> {
    out: O,
    err: E,
    keep_order: bool,
    tag: Option<TagFn>,
    running: HashMap<u64, (String, Held)>,
    finished: BTreeMap<u64, (String, Held)>,
    next: u64,
    failed: u64,
}

impl<O: Write, E: Write> PlainReporter<O, E> {
    /// A reporter writing to `out` and `err`; `keep_order` prints jobs in job order.
    pub fn new(out: O, err: E, keep_order: bool, tag: Option<TagFn>) -> Self {
        Self {
            out,
            err,
            keep_order,
            tag,
            running: HashMap::new(),
            finished: BTreeMap::new(),
            next: 1,
            failed: 0,
        }
    }

    /// Jobs whose final outcome was not success so far (GNU parallel's exit status counts them).
    pub fn failed(&self) -> u64 {
        self.failed
    }

    fn write_job(&mut self, seq: u64, host: &str, held: &Held) -> io::Result<()> {
        let tag = self.tag.as_ref().map(|t| t(seq, host));
        for (stream, bytes) in held {
            let w: &mut dyn Write = match stream {
                Stream::Stdout => &mut self.out,
                Stream::Stderr => &mut self.err,
            };
            match &tag {
                None => w.write_all(bytes)?,
                Some(tag) => {
                    for line in bytes.split_inclusive(|&b| b == b'\n') {
                        w.write_all(tag.as_bytes())?;
                        w.write_all(b"\t")?;
                        w.write_all(line)?;
                    }
                }
            }
        }
        self.out.flush()?;
        self.err.flush()
    }

    fn flush_ready(&mut self, all: bool) -> io::Result<()> {
        while let Some(entry) = self.finished.first_entry() {
            if !all && self.keep_order && *entry.key() != self.next {
                break;
            }
            let seq = *entry.key();
            let (host, held) = entry.remove();
            self.write_job(seq, &host, &held)?;
            self.next = seq + 1;
        }
        Ok(())
    }
}

/// Appends a line event's bytes to `held`, merged with the previous piece of the same stream
/// (a tag then goes before whole lines only).
fn hold(held: &mut Held, stream: Stream, line: &[u8], partial: bool) {
    let bytes = match held.last_mut() {
        Some((s, b)) if *s == stream => b,
        _ => {
            held.push((stream, Vec::new()));
            &mut held.last_mut().expect("just pushed").1
        }
    };
    bytes.extend_from_slice(line);
    if !partial {
        bytes.push(b'\n');
    }
}

impl<O: Write, E: Write> Reporter for PlainReporter<O, E> {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        match event {
            // A new try starts with no output: only the last try's is shown.
            Event::JobStarted { host, job, .. } => {
                self.running.insert(*job, (host.clone(), Vec::new()));
            }
            Event::Output {
                job,
                stream,
                line,
                partial,
                host,
            } => {
                let entry = self
                    .running
                    .entry(*job)
                    .or_insert_with(|| (host.clone(), Vec::new()));
                hold(&mut entry.1, *stream, line, *partial);
            }
            Event::JobFinished {
                host, job, outcome, ..
            } => {
                if *outcome != Outcome::Ok {
                    self.failed += 1;
                }
                let held = self
                    .running
                    .remove(job)
                    .unwrap_or_else(|| (host.clone(), Vec::new()));
                self.finished.insert(*job, held);
                self.flush_ready(false)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        // Jobs never finished (skipped by --resume, cancelled) leave gaps: print the rest.
        self.flush_ready(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn output(job: u64, stream: Stream, line: &[u8], partial: bool) -> Event {
        Event::Output {
            host: "h".into(),
            job,
            stream,
            line: line.to_vec(),
            partial,
        }
    }

    fn started(job: u64) -> Event {
        Event::JobStarted {
            host: "h".into(),
            job,
            command: String::new(),
        }
    }

    fn finished(job: u64, outcome: Outcome) -> Event {
        Event::JobFinished {
            host: "h".into(),
            job,
            outcome,
            elapsed: Duration::ZERO,
        }
    }

    fn play(keep: bool, tag: Option<TagFn>, events: &[Event]) -> (String, String, u64) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let failed = {
            let mut r = PlainReporter::new(&mut out, &mut err, keep, tag);
            for e in events {
                r.report(e).unwrap();
            }
            r.finish().unwrap();
            r.failed()
        };
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            failed,
        )
    }

    #[test]
    fn bytes_pass_as_they_came_and_only_the_last_try_shows() {
        let events = [
            started(2),
            output(2, Stream::Stdout, b"two\r", false),
            output(2, Stream::Stdout, b"no newline", true),
            started(1),
            output(1, Stream::Stdout, b"first try", false),
            started(1),
            output(1, Stream::Stderr, b"oops", false),
            output(1, Stream::Stdout, b"second try", false),
            finished(2, Outcome::Ok),
            finished(1, Outcome::Exited { code: 1 }),
        ];
        let (out, err, failed) = play(false, None, &events);
        assert_eq!(out, "two\r\nno newlinesecond try\n");
        assert_eq!(err, "oops\n");
        assert_eq!(failed, 1);
        let (out, _, _) = play(true, None, &events);
        assert_eq!(out, "second try\ntwo\r\nno newline");
    }

    #[test]
    fn tags_go_before_every_line() {
        let events = [
            started(1),
            output(1, Stream::Stdout, b"a", false),
            output(1, Stream::Stdout, b"b", true),
            finished(1, Outcome::Ok),
        ];
        let tag: TagFn = Box::new(|seq, host| format!("{host}{seq}"));
        let (out, _, _) = play(true, Some(tag), &events);
        assert_eq!(out, "h1\ta\nh1\tb");
    }
}
