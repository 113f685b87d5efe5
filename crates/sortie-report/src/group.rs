//! Group mode (`--group`, like `pdsh ... | dshbak -c`): identical outputs printed once.
//!
//! Each host's stdout and stderr are buffered together in arrival order (what the user would
//! have seen merged on a terminal). When the run finishes, hosts with byte-identical output
//! share one block under a header naming them as a folded host range:
//!
//! ```text
//! ----------------
//! web[01-03,05]
//! ----------------
//! <output>
//! ```
//!
//! Stderr lines are marked with a leading `! ` (red when colour is on); a partial last line is
//! printed followed by a newline so the next header starts on its own line. Blocks come in the
//! order their first host started. Hosts that ran but printed nothing share a last block whose
//! body is `(no output)`; hosts that never ran a command (connection failures) are left to the
//! summary. Everything goes to stdout. For `sortie run`, a host's block holds all its jobs.
//!
//! This module owns only the buffering and the blocks.

use crate::fold::fold;
use crate::sink::{Lines, Sink};
use crate::style::{Paint, DIM, ERROR, HEADER};
use crate::Reporter;
use sortie_events::{Event, Outcome, Stream};
use std::collections::HashMap;
use std::io;

const RULE: &str = "----------------";

#[derive(Default)]
struct HostBuf {
    order: usize,
    ran: bool,
    lines: Lines,
}

/// Buffers output per host and prints each distinct output once at the end of the run.
pub struct GroupReporter {
    out: Sink,
    paint: Paint,
    hosts: HashMap<String, HostBuf>,
    printed: bool,
}

impl GroupReporter {
    pub(crate) fn new(out: Sink, paint: Paint) -> Self {
        GroupReporter {
            out,
            paint,
            hosts: HashMap::new(),
            printed: false,
        }
    }

    fn host(&mut self, host: &str) -> &mut HostBuf {
        let next = self.hosts.len();
        self.hosts
            .entry(host.to_owned())
            .or_insert_with(|| HostBuf {
                order: next,
                ..HostBuf::default()
            })
    }

    fn print(&mut self) -> io::Result<()> {
        if self.printed {
            return Ok(());
        }
        self.printed = true;
        let mut hosts: Vec<(&String, &HostBuf)> = self.hosts.iter().collect();
        hosts.sort_by_key(|(_, b)| b.order);
        // Distinct outputs in order of first appearance; hosts that printed nothing last.
        let mut groups: Vec<(&Lines, Vec<String>)> = Vec::new();
        let mut index: HashMap<&Lines, usize> = HashMap::new();
        let mut silent: Vec<String> = Vec::new();
        for (name, buf) in hosts {
            if buf.lines.is_empty() {
                if buf.ran {
                    silent.push(name.clone());
                }
                continue;
            }
            let i = *index.entry(&buf.lines).or_insert_with(|| {
                groups.push((&buf.lines, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(name.clone());
        }
        let mut text = Vec::new();
        for (lines, names) in &groups {
            self.header(&mut text, names);
            for (stream, line) in lines.iter() {
                match stream {
                    Stream::Stdout => text.extend_from_slice(line),
                    Stream::Stderr => {
                        let mut marked = b"! ".to_vec();
                        marked.extend_from_slice(line);
                        self.paint.put(&mut text, ERROR, &marked);
                    }
                }
                text.push(b'\n');
            }
        }
        if !silent.is_empty() {
            self.header(&mut text, &silent);
            self.paint.put(&mut text, DIM, b"(no output)");
            text.push(b'\n');
        }
        self.out.write(&text)
    }

    fn header(&self, text: &mut Vec<u8>, names: &[String]) {
        let head = format!("{RULE}\n{}\n{RULE}", fold(names));
        self.paint.put(text, HEADER, head.as_bytes());
        text.push(b'\n');
    }
}

impl Reporter for GroupReporter {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::HostConnecting { host } => {
                self.host(host);
            }
            Event::JobStarted { host, .. } => self.host(host).ran = true,
            Event::Output {
                host, stream, line, ..
            } => {
                let buf = self.host(host);
                buf.ran = true;
                buf.lines.push((*stream, line.clone()));
            }
            Event::JobFinished { host, outcome, .. } => {
                let buf = self.host(host);
                if !matches!(outcome, Outcome::ConnectFailed { .. }) {
                    buf.ran = true;
                }
            }
            Event::RunFinished { .. } => self.print()?,
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.print()?;
        self.out.flush()
    }
}
