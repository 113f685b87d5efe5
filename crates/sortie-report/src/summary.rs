//! The final summary, printed when the run finishes.
//!
//! One line per outcome bucket, in [`Bucket`] order, naming the hosts as a folded host range
//! (`ok: web[01-03,05]`). Exit codes and signals are split out
//! (`exited non-zero (2): web[03-04]`, `killed by signal (TERM): web05`). Connection failures
//! are grouped by message as `dshbak -c` groups outputs: one line per distinct message naming
//! its hosts as a folded range, with the message indented underneath once (up to
//! [`MESSAGE_LINES`] lines; the JSON stream always has all of it), because that message
//! carries what a person needs: the reason, the host-key fingerprint, the known_hosts
//! file:line. Messages that differ only by the host's own name count as one, shown with the
//! name written `{host}`. A cancellation reason, then a totals line with the elapsed time, end it:
//! `7 hosts: 3 ok, 4 failed, 4.2s`.
//!
//! For `sortie run` the entries are jobs (`web03/7`), listed by job number rather than folded;
//! successful jobs are only counted. When command output shares the terminal (line, per-job
//! and group modes) the summary starts with an empty line to set it apart.
//!
//! This module owns the summary's wording and layout; it is written to stderr by default so
//! that `sortie exec ... | grep` sees only command output (pdsh and pssh habits).

use crate::fold::fold;
use crate::sink::Sink;
use crate::style::{Paint, DIM, ERROR, OK, WARN};
use crate::{PrefixStyle, Reporter};
use sortie_events::{Bucket, Counts, Event, Outcome};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::time::Duration;

/// Connection-failure messages longer than this many lines are cut, saying how many lines
/// were left out.
pub const MESSAGE_LINES: usize = 6;

/// One finished job: host, job number, outcome.
type Entry = (String, u64, Outcome);

/// Collects outcomes and prints the summary at `RunFinished`.
pub struct SummaryReporter {
    err: Sink,
    paint: Paint,
    prefix: PrefixStyle,
    hosts: usize,
    jobs: usize,
    /// (host, job, outcome) in finishing order.
    finished: Vec<(String, u64, Outcome)>,
    /// HostFailed events, used for hosts that never got a JobFinished.
    host_failed: Vec<(String, Outcome)>,
    cancelled: Option<String>,
    printed: bool,
    blank_first: bool,
}

impl SummaryReporter {
    /// `blank_first`: start with an empty line, to set the summary apart from command output
    /// shown on the same terminal.
    pub(crate) fn new(err: Sink, paint: Paint, prefix: PrefixStyle, blank_first: bool) -> Self {
        SummaryReporter {
            err,
            paint,
            prefix,
            hosts: 0,
            jobs: 0,
            finished: Vec::new(),
            host_failed: Vec::new(),
            cancelled: None,
            printed: false,
            blank_first,
        }
    }

    fn names(&self, entries: &[&(String, u64, Outcome)]) -> String {
        match self.prefix {
            PrefixStyle::Host => {
                let hosts: Vec<String> = entries.iter().map(|(h, _, _)| h.clone()).collect();
                fold(&hosts)
            }
            PrefixStyle::HostJob => {
                let mut jobs: Vec<(u64, &str)> =
                    entries.iter().map(|(h, j, _)| (*j, h.as_str())).collect();
                jobs.sort_unstable();
                jobs.iter()
                    .map(|(j, h)| format!("{h}/{j}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
    }

    fn label(&self, bucket: Bucket, detail: Option<&str>) -> String {
        let text = match detail {
            Some(d) => format!("{} ({d})", bucket.label()),
            None => bucket.label().to_owned(),
        };
        let style = match bucket {
            Bucket::Ok => OK,
            Bucket::Interrupted | Bucket::TimedOut => WARN,
            _ => ERROR,
        };
        self.paint.str(style, &text)
    }

    /// Renders the summary text.
    fn render(
        &self,
        counts: Option<&Counts>,
        elapsed: Option<Duration>,
        interrupted: bool,
    ) -> String {
        let mut entries: Vec<(String, u64, Outcome)> = self.finished.clone();
        let seen: HashSet<&str> = self.finished.iter().map(|(h, _, _)| h.as_str()).collect();
        let mut orphans: Vec<(String, u64, Outcome)> = self
            .host_failed
            .iter()
            .filter(|(h, _)| !seen.contains(h.as_str()))
            .map(|(h, o)| (h.clone(), 0, o.clone()))
            .collect();
        entries.append(&mut orphans);

        let mut buckets: BTreeMap<Bucket, Vec<&(String, u64, Outcome)>> = BTreeMap::new();
        for e in &entries {
            buckets.entry(e.2.bucket()).or_default().push(e);
        }
        let mut s = String::new();
        if self.blank_first {
            s.push('\n');
        }
        for (bucket, list) in &buckets {
            match bucket {
                Bucket::ExitedNonZero | Bucket::Signaled => {
                    let mut by: BTreeMap<(u32, String), Vec<&Entry>> = BTreeMap::new();
                    for e in list {
                        let key = match &e.2 {
                            Outcome::Exited { code } => (*code, String::new()),
                            Outcome::Signaled {
                                signal,
                                core_dumped,
                            } => (
                                0,
                                if *core_dumped {
                                    format!("{signal}, core dumped")
                                } else {
                                    signal.clone()
                                },
                            ),
                            _ => (0, String::new()),
                        };
                        by.entry(key).or_default().push(e);
                    }
                    for ((code, signal), l) in by {
                        let detail = if *bucket == Bucket::Signaled {
                            signal
                        } else {
                            code.to_string()
                        };
                        let _ = writeln!(
                            s,
                            "{}: {}",
                            self.label(*bucket, Some(&detail)),
                            self.names(&l)
                        );
                    }
                }
                _ if list
                    .iter()
                    .any(|e| matches!(e.2, Outcome::ConnectFailed { .. })) =>
                {
                    for (hosts, message) in by_message(list) {
                        let _ =
                            writeln!(s, "{}: {}", self.label(*bucket, None), self.names(&hosts));
                        if let Some(message) = message {
                            self.message(&mut s, &message);
                        }
                    }
                }
                // Successful jobs of a run are counted, not listed: there may be thousands.
                Bucket::Ok if self.prefix == PrefixStyle::HostJob => {
                    let n = list.len();
                    let jobs = if n == 1 { "job" } else { "jobs" };
                    let _ = writeln!(s, "{}: {n} {jobs}", self.label(*bucket, None));
                }
                _ => {
                    let _ = writeln!(s, "{}: {}", self.label(*bucket, None), self.names(list));
                }
            }
        }
        if let Some(reason) = &self.cancelled {
            let _ = writeln!(s, "{}: {reason}", self.paint.str(WARN, "cancelled"));
        }
        s.push_str(&self.totals(&entries, counts, elapsed, interrupted));
        s.push('\n');
        s
    }

    fn message(&self, s: &mut String, message: &str) {
        let lines: Vec<&str> = message.lines().filter(|l| !l.trim().is_empty()).collect();
        let cut = lines.len() > MESSAGE_LINES;
        let shown = if cut { MESSAGE_LINES - 1 } else { lines.len() };
        for l in &lines[..shown] {
            let _ = writeln!(s, "    {}", self.paint.str(DIM, l));
        }
        if cut {
            let more = format!("({} more lines in --json output)", lines.len() - shown);
            let _ = writeln!(s, "    {}", self.paint.str(DIM, &more));
        }
    }

    fn totals(
        &self,
        entries: &[(String, u64, Outcome)],
        counts: Option<&Counts>,
        elapsed: Option<Duration>,
        interrupted: bool,
    ) -> String {
        let (done, failed) = match counts {
            Some(c) => (c.done, c.failed),
            None => {
                let ok = entries.iter().filter(|e| e.2.is_success()).count();
                (ok, entries.len() - ok)
            }
        };
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut t = match self.prefix {
            PrefixStyle::Host => plural(self.hosts, "host"),
            PrefixStyle::HostJob => {
                format!(
                    "{} on {}",
                    plural(self.jobs, "job"),
                    plural(self.hosts, "host")
                )
            }
        };
        let _ = write!(t, ": {done} ok, {failed} failed");
        let not_run = match counts {
            Some(c) => c.pending + c.connecting + c.running,
            None => match self.prefix {
                PrefixStyle::Host => self.hosts,
                PrefixStyle::HostJob => self.jobs,
            }
            .saturating_sub(entries.len()),
        };
        if not_run > 0 {
            let _ = write!(t, ", {not_run} not finished");
        }
        if interrupted {
            let _ = write!(t, ", {}", self.paint.str(WARN, "interrupted"));
        }
        match elapsed {
            Some(e) => {
                let _ = write!(t, ", {}", format_duration(e));
            }
            None => t.push_str(", run did not finish"),
        }
        t
    }
}

/// Groups connection failures by message, in the order each message first appears, as
/// `dshbak -c` groups outputs. Messages that differ only by the host's own name are one
/// message: a group of several hosts shows it with the name written `{host}`; a host alone
/// keeps its message as it was. Entries without a message form one group.
fn by_message<'a>(list: &[&'a Entry]) -> Vec<(Vec<&'a Entry>, Option<String>)> {
    let mut groups: Vec<(Option<String>, Vec<&'a Entry>)> = Vec::new();
    let mut index: HashMap<Option<String>, usize> = HashMap::new();
    for e in list {
        let key = match &e.2 {
            Outcome::ConnectFailed { message, .. } => Some(generic_message(message, &e.0)),
            _ => None,
        };
        match index.get(&key) {
            Some(&i) => groups[i].1.push(e),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![e]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, hosts)| {
            let message = match (&hosts[..], key) {
                ([one], Some(_)) => match &one.2 {
                    Outcome::ConnectFailed { message, .. } => Some(message.clone()),
                    _ => None,
                },
                (_, key) => key,
            };
            (hosts, message)
        })
        .collect()
}

/// `message` with the host's label, and its name without the port, written `{host}`
/// (whole names only, ASCII case ignored: the known_hosts name is lower case).
fn generic_message(message: &str, label: &str) -> String {
    let bare = match label.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None if label.matches(':').count() == 1 => label.split(':').next().unwrap_or(label),
        None => label,
    };
    let once = replace_name(message, label);
    if bare.is_empty() || bare == label {
        once
    } else {
        replace_name(&once, bare)
    }
}

/// Replaces whole-name occurrences of `name` in `text` with `{host}`: the characters around
/// a match must not continue a name (`web1` does not match inside `web10` or `10.0.0.1` inside
/// `10.0.0.10`).
fn replace_name(text: &str, name: &str) -> String {
    let continues =
        |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() {
        return text.to_string();
    }
    let lower = text.to_ascii_lowercase();
    let needle = name.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(i) = lower[at..].find(&needle).map(|i| i + at) {
        let end = i + needle.len();
        let whole =
            !continues(text[..i].chars().next_back()) && !continues(text[end..].chars().next());
        out.push_str(&text[at..i]);
        out.push_str(if whole { "{host}" } else { &text[i..end] });
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// `4.2s`, `1m02s`, `2h03m04s`: short, and exact enough for a person.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

impl Reporter for SummaryReporter {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::RunStarted { hosts, jobs, .. } => {
                self.hosts = *hosts;
                self.jobs = *jobs;
            }
            Event::HostFailed {
                host,
                failure,
                message,
            } => self.host_failed.push((
                host.clone(),
                Outcome::ConnectFailed {
                    failure: *failure,
                    message: message.clone(),
                },
            )),
            Event::JobFinished {
                host, job, outcome, ..
            } => self.finished.push((host.clone(), *job, outcome.clone())),
            Event::RunCancelling { reason } => self.cancelled = Some(reason.clone()),
            Event::RunFinished {
                counts,
                elapsed,
                interrupted,
            } if !self.printed => {
                self.printed = true;
                let text = self.render(Some(counts), Some(*elapsed), *interrupted);
                self.err.write(text.as_bytes())?;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        // A stream that ends without RunFinished (the runner failed) still gets a summary of
        // what did finish; a stream with no run at all gets none.
        if !self.printed && (self.hosts > 0 || !self.finished.is_empty()) {
            self.printed = true;
            let text = self.render(None, None, false);
            self.err.write(text.as_bytes())?;
        }
        self.err.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_own_host_as_a_placeholder() {
        assert_eq!(
            generic_message(
                "127.0.0.1:2222: refused; key for [127.0.0.1]:2222",
                "127.0.0.1:2222"
            ),
            "{host}: refused; key for [{host}]:2222"
        );
        assert_eq!(
            generic_message("no key for web1, nor web10 or 10.0.0.1", "Web1"),
            "no key for {host}, nor web10 or 10.0.0.1"
        );
        assert_eq!(
            generic_message("[::1]:22 refused", "[::1]:22"),
            "{host} refused"
        );
        assert_eq!(generic_message("::1 refused", "[::1]:22"), "{host} refused");
        assert_eq!(
            generic_message("10.0.0.10 refused", "10.0.0.1"),
            "10.0.0.10 refused"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(format_duration(Duration::from_secs(62)), "1m02s");
        assert_eq!(format_duration(Duration::from_secs(7384)), "2h03m04s");
    }
}
