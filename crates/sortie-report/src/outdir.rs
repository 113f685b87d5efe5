//! Out-dir mode (`--out-dir DIR`, like `pssh -o/-e`): raw output in one file per host and stream.
//!
//! Layout: for `sortie exec` (prefix style [`PrefixStyle::Host`]) `DIR/<host>.out` and
//! `DIR/<host>.err`; for `sortie run` ([`PrefixStyle::HostJob`]) `DIR/<host>/<job>.out` and
//! `DIR/<host>/<job>.err`. Both files are created (truncated) when the job starts, so a command
//! that printed nothing still leaves two empty files; hosts that never started a command
//! (connection failures) leave none. Content is the raw bytes with each line's newline
//! restored; a partial last line is written without one, so the files match what the command
//! wrote. Files are flushed and closed when the job finishes.
//!
//! Host labels become file names with `%` written `%25`, `/` written `%2F`, and a leading `.`
//! written `%2E`, so no label can escape DIR or hide a file.
//!
//! This module owns only the files; it prints nothing on the terminal.

use crate::{PrefixStyle, Reporter};
use sortie_events::{Event, Stream};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes each job's stdout and stderr to its own files under one directory.
pub struct OutDirReporter {
    dir: PathBuf,
    prefix: PrefixStyle,
    open: HashMap<(String, u64), [BufWriter<File>; 2]>,
}

/// Makes a host label safe as one path component.
pub(crate) fn file_name(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for (i, c) in label.chars().enumerate() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '.' if i == 0 => out.push_str("%2E"),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl OutDirReporter {
    /// Creates `dir` (and parents) if needed.
    pub(crate) fn new(dir: PathBuf, prefix: PrefixStyle) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(OutDirReporter {
            dir,
            prefix,
            open: HashMap::new(),
        })
    }

    /// The two paths (stdout, stderr) for one job.
    pub(crate) fn paths(&self, host: &str, job: u64) -> io::Result<[PathBuf; 2]> {
        let host = file_name(host);
        let (dir, stem) = match self.prefix {
            PrefixStyle::Host => (self.dir.clone(), host),
            PrefixStyle::HostJob => {
                let d = self.dir.join(host);
                fs::create_dir_all(&d).map_err(|e| with_path(&d, e))?;
                (d, job.to_string())
            }
        };
        // Appended, not `with_extension`: a label like `db.example` must keep its dot.
        Ok([
            dir.join(format!("{stem}.out")),
            dir.join(format!("{stem}.err")),
        ])
    }

    fn files(&mut self, host: &str, job: u64) -> io::Result<&mut [BufWriter<File>; 2]> {
        let key = (host.to_owned(), job);
        if !self.open.contains_key(&key) {
            let [out, err] = self.paths(host, job)?;
            let create = |p: &Path| {
                File::create(p)
                    .map(BufWriter::new)
                    .map_err(|e| with_path(p, e))
            };
            let files = [create(&out)?, create(&err)?];
            self.open.insert(key.clone(), files);
        }
        Ok(self.open.get_mut(&key).expect("inserted above"))
    }
}

impl Reporter for OutDirReporter {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::JobStarted { host, job, .. } => {
                self.files(host, *job)?;
            }
            Event::Output {
                host,
                job,
                stream,
                line,
                partial,
            } => {
                let files = self.files(host, *job)?;
                let f = &mut files[usize::from(*stream == Stream::Stderr)];
                f.write_all(line)?;
                if !partial {
                    f.write_all(b"\n")?;
                }
            }
            Event::JobFinished { host, job, .. } => {
                if let Some(mut files) = self.open.remove(&(host.clone(), *job)) {
                    for f in &mut files {
                        f.flush()?;
                    }
                }
            }
            Event::RunFinished { .. } => self.finish()?,
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        for (_, mut files) in self.open.drain() {
            for f in &mut files {
                f.flush()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cannot_escape_the_directory() {
        assert_eq!(file_name("web01"), "web01");
        assert_eq!(file_name("../etc"), "%2E.%2Fetc");
        assert_eq!(file_name("a/b%c"), "a%2Fb%25c");
        assert_eq!(file_name(".."), "%2E.");
        assert_eq!(file_name(""), "%00");
        assert_eq!(file_name("root@db.example:2222"), "root@db.example:2222");
    }
}
