//! Job sources and their cartesian product, as in GNU parallel.
//!
//! This module owns turning the user's job inputs into numbered [`Job`]s:
//!
//! | source | constructor | columns |
//! |---|---|---|
//! | `--args FILE` (`-` = stdin) | [`JobSource::args_path`], [`JobSource::args_reader`] | 1, one job per line |
//! | `--csv FILE` | [`JobSource::csv_path`], [`JobSource::csv_table`] | one per header name |
//! | `--range A..B` | [`JobSource::range`] | 1, inclusive integers |
//! | `::: a b c` | [`JobSource::list`] | 1 |
//! | standard input | [`JobSource::stdin`] | 1, one job per line |
//!
//! Several sources combine as a cartesian product in which the **first source varies slowest**,
//! exactly like `parallel echo ::: a b ::: 1 2` (`a 1`, `a 2`, `b 1`, `b 2`). The columns of the
//! product are the sources' columns side by side: position `{1}` is the first column of the
//! first source, and so on. CSV columns are named by their header; a one-column source can be
//! named with [`JobSource::named`].
//!
//! Lines are split on `\n` (for `--args`, with a trailing `\r` removed; GNU parallel's
//! spellings `::::`, `-a` and standard input keep it, as parallel does); a final line break does not add an empty
//! job, but an empty line in the middle is a job whose value is empty (as in GNU parallel).
//!
//! [`JobSet`] computes jobs on demand from their index, so even a product of millions of jobs
//! costs only the memory of its sources. This module reads files but does nothing else with the
//! outside world; deciding that standard input is the source when no other is given is the CLI's
//! business.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::csv::{self, CsvError, CsvTable};
use crate::position::line_col;

/// Names that templates reserve for the run context (`{host}`, `{slot}`, `{seq}`).
pub const RESERVED_NAMES: [&str; 3] = ["host", "slot", "seq"];

/// Whether `name` matches the placeholder identifier grammar `[A-Za-z_][A-Za-z0-9_-]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Errors from reading or combining job sources.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum JobsError {
    /// A source file or standard input could not be read.
    #[error("cannot read {origin}: {error}")]
    #[diagnostic(
        code(sortie::jobs::io),
        help("check that the file exists and that you may read it")
    )]
    Io {
        /// The source, as the user wrote it (e.g. `--args hosts.txt`).
        origin: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// A CSV source is malformed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Csv(#[from] CsvError),
    /// A line-based source is not valid UTF-8.
    #[error(transparent)]
    #[diagnostic(transparent)]
    InvalidUtf8(Box<InvalidUtf8Error>),
    /// A `--range` argument is malformed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Range(Box<RangeError>),
    /// A source has no values, so the product has no jobs.
    #[error("the job source {origin} is empty, so there is nothing to run")]
    #[diagnostic(code(sortie::jobs::empty_source))]
    EmptySource {
        /// The source, as the user wrote it.
        origin: String,
        /// What to do about it.
        #[help]
        help: String,
    },
    /// A name given to a source is not usable in a template.
    #[error("cannot name job source {origin} {name:?}: {reason}")]
    #[diagnostic(
        code(sortie::jobs::bad_name),
        help("use a name made of letters, digits, `_` and `-` that starts with a letter or `_` and is not host, slot or seq")
    )]
    BadName {
        /// The source.
        origin: String,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Two columns have the same name.
    #[error("the column name {name:?} is used by both {first} and {second}")]
    #[diagnostic(
        code(sortie::jobs::duplicate_name),
        help("rename one of them; a template could not tell them apart")
    )]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// Where it is first used.
        first: String,
        /// Where it is used again.
        second: String,
    },
    /// The product of the sources does not fit in a `u64`.
    #[error("the job sources multiply to more than {} jobs", u64::MAX)]
    #[diagnostic(code(sortie::jobs::too_many))]
    TooMany,
    /// `--colsep` split the lines of a source into different numbers of columns.
    #[error("{origin}: value {row} has {got} column(s) where the first has {expected}")]
    #[diagnostic(
        code(sortie::jobs::uneven_columns),
        help("give every line the same number of separators; GNU parallel would pass fewer arguments for that job, which sortie refuses rather than guess")
    )]
    UnevenColumns {
        /// The source.
        origin: String,
        /// 1-based value (line) number.
        row: usize,
        /// Columns of the first value.
        expected: usize,
        /// Columns of this one.
        got: usize,
    },
    /// `-N n` on a source whose values do not fill the last job.
    #[error("{origin}: {len} value(s) do not make jobs of {n} (-N {n}): {rest} left over")]
    #[diagnostic(
        code(sortie::jobs::partial_group),
        help("give a multiple of {n} values; GNU parallel would run a last job with fewer arguments, which sortie refuses rather than guess")
    )]
    PartialGroup {
        /// The source.
        origin: String,
        /// Values in the source.
        len: u64,
        /// Values per job.
        n: usize,
        /// Values left for the last job.
        rest: u64,
    },
    /// No source was given to [`JobSet::new`].
    #[error("no job source was given")]
    #[diagnostic(
        code(sortie::jobs::no_source),
        help("give jobs with --args, --csv, --range, ::: or on standard input")
    )]
    NoSources,
}

/// Invalid UTF-8 in a line-based source, with its line and column.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{origin}:{line}:{column}: the input is not valid UTF-8")]
#[diagnostic(
    code(sortie::jobs::invalid_utf8),
    help("convert the input to UTF-8 (for example with `iconv -t UTF-8`)")
)]
pub struct InvalidUtf8Error {
    /// The source (file name or `standard input`).
    pub origin: String,
    /// 1-based line of the first invalid byte.
    pub line: usize,
    /// 1-based column (in characters) of the first invalid byte.
    pub column: usize,
    #[source_code]
    src: NamedSource<String>,
    #[label("invalid UTF-8 here")]
    span: SourceSpan,
}

/// A malformed `--range` argument, with a span into it.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("invalid range {text:?}: {reason}")]
#[diagnostic(
    code(sortie::jobs::bad_range),
    help("write a range as START..END with whole numbers and START <= END, like 1..10, or 001..120 to keep zero padding")
)]
pub struct RangeError {
    /// The argument as given.
    pub text: String,
    /// What is wrong.
    pub reason: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{reason}")]
    span: SourceSpan,
}

impl RangeError {
    fn build(text: &str, reason: &str, start: usize, len: usize) -> JobsError {
        JobsError::Range(Box::new(RangeError {
            text: text.to_owned(),
            reason: reason.to_owned(),
            src: NamedSource::new("--range", text.to_owned()),
            span: SourceSpan::new(start.into(), len.max(1)),
        }))
    }
}

/// The names of the columns of a job product, by position (0-based here; templates use 1-based
/// `{1}`). A column may be unnamed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    names: Vec<Option<String>>,
    by_name: HashMap<String, usize>,
}

impl Columns {
    /// Columns with the given names. Fails if a name repeats.
    pub fn new(names: Vec<Option<String>>) -> Result<Self, JobsError> {
        let mut by_name = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(name) = name {
                if let Some(first) = by_name.insert(name.clone(), i) {
                    return Err(JobsError::DuplicateName {
                        name: name.clone(),
                        first: format!("column {}", first + 1),
                        second: format!("column {}", i + 1),
                    });
                }
            }
        }
        Ok(Self { names, by_name })
    }

    /// `n` unnamed columns.
    pub fn anonymous(n: usize) -> Self {
        Self {
            names: vec![None; n],
            by_name: HashMap::new(),
        }
    }

    /// No columns at all: templates parsed against this (e.g. for `sortie exec`) may use only
    /// `{host}`, `{slot}` and `{seq}`, and get nothing appended.
    pub fn none() -> Self {
        Self::default()
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Name of the 0-based column `index`, if it has one.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index)?.as_deref()
    }

    /// 0-based index of the column called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// All names, by position.
    pub fn names(&self) -> &[Option<String>] {
        &self.names
    }
}

/// Values of one source.
#[derive(Debug, Clone)]
enum Data {
    /// Row-major values, `width` per row.
    Rows { width: usize, values: Vec<String> },
    /// `start`, `start + 1`, … (`len` numbers), zero-padded to `pad` characters.
    Range { start: i64, len: u64, pad: usize },
}

/// How GNU parallel cuts its input sources (`:::` values, `::::` and `-a` files, standard
/// input) into values: `-d DELIM` / `-0` and `-E EOF-STRING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delimiting {
    /// What ends each item (`\n` by default; `\0` with `-0`). Never empty.
    pub delimiter: String,
    /// An item equal to this ends the source (`-E`); the item and the rest are not read.
    pub eof: Option<String>,
}

impl Default for Delimiting {
    fn default() -> Self {
        Self {
            delimiter: "\n".into(),
            eof: None,
        }
    }
}

/// One job source: a table of values with one or more (optionally named) columns.
#[derive(Debug, Clone)]
pub struct JobSource {
    origin: String,
    names: Vec<Option<String>>,
    data: Data,
    empty_help: String,
}

impl JobSource {
    fn one_column(origin: String, values: Vec<String>, empty_help: &str) -> Self {
        Self {
            origin,
            names: vec![None],
            data: Data::Rows { width: 1, values },
            empty_help: empty_help.to_owned(),
        }
    }

    /// One job per line of `bytes`. `origin` names the source in errors (e.g. `--args jobs.txt`).
    pub fn lines(origin: impl Into<String>, bytes: &[u8]) -> Result<Self, JobsError> {
        Self::split_items(origin.into(), bytes, &Delimiting::default(), true)
    }

    /// One job per line of `bytes`, as GNU parallel reads `::::` files, `-a` files and standard
    /// input: a `\r` before the `\n` stays part of the value.
    pub fn lines_as_parallel(origin: impl Into<String>, bytes: &[u8]) -> Result<Self, JobsError> {
        Self::items_as_parallel(origin, bytes, &Delimiting::default())
    }

    /// One job per item of `bytes` as GNU parallel reads them with `-d`/`-0` and `-E`: items end
    /// with the delimiter (the last one may lack it), an item equal to the end-of-file string
    /// ends the source, nothing else is removed.
    pub fn items_as_parallel(
        origin: impl Into<String>,
        bytes: &[u8],
        how: &Delimiting,
    ) -> Result<Self, JobsError> {
        Self::split_items(origin.into(), bytes, how, false)
    }

    fn split_items(
        origin: String,
        bytes: &[u8],
        how: &Delimiting,
        strip_cr: bool,
    ) -> Result<Self, JobsError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            let (line, column) = line_col(&lossy, e.valid_up_to());
            JobsError::InvalidUtf8(Box::new(InvalidUtf8Error {
                origin: origin.clone(),
                line,
                column,
                src: NamedSource::new(&origin, lossy),
                span: SourceSpan::new(e.valid_up_to().into(), 1),
            }))
        })?;
        let delimiter = how.delimiter.as_str();
        let text = text.strip_suffix(delimiter).unwrap_or(text);
        let mut values = Vec::new();
        if !bytes.is_empty() {
            for item in text.split(delimiter) {
                if how.eof.as_deref() == Some(item) {
                    break;
                }
                let item = match item.strip_suffix('\r') {
                    Some(l) if strip_cr => l,
                    _ => item,
                };
                values.push(item.to_owned());
            }
        }
        Ok(Self::one_column(
            origin,
            values,
            "give it at least one line",
        ))
    }

    /// One job per line read from `reader`; `origin` names it in errors.
    pub fn args_reader(
        origin: impl Into<String>,
        mut reader: impl Read,
    ) -> Result<Self, JobsError> {
        let origin = origin.into();
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|error| JobsError::Io {
                origin: origin.clone(),
                error,
            })?;
        Self::lines(origin, &bytes)
    }

    /// `--args FILE`: one job per line of the file; `-` reads standard input.
    pub fn args_path(path: &Path) -> Result<Self, JobsError> {
        if path == Path::new("-") {
            return Self::args_reader("--args - (standard input)", std::io::stdin().lock());
        }
        let origin = format!("--args {}", path.display());
        let bytes = std::fs::read(path).map_err(|error| JobsError::Io {
            origin: origin.clone(),
            error,
        })?;
        // Errors inside the file name the file itself, like compilers do.
        let mut source = Self::lines(path.display().to_string(), &bytes)?;
        source.origin = origin;
        Ok(source)
    }

    /// A file of GNU parallel's `::::`, `-a` or `--arg-file`: one job per line (or item of
    /// `how`), `\r` kept, `-` for standard input. `how` is the spelling used, for messages
    /// (e.g. `::::`).
    pub fn arg_file(sep: &str, path: &Path, how: &Delimiting) -> Result<Self, JobsError> {
        let origin = format!("{sep} {}", path.display());
        let bytes = if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|error| JobsError::Io {
                    origin: origin.clone(),
                    error,
                })?;
            bytes
        } else {
            std::fs::read(path).map_err(|error| JobsError::Io {
                origin: origin.clone(),
                error,
            })?
        };
        let mut source = Self::items_as_parallel(path.display().to_string(), &bytes, how)?;
        source.origin = origin;
        Ok(source)
    }

    /// GNU parallel's `::: a b c` read as parallel reads it: the values are written one per
    /// item (each followed by the delimiter) and read back, so a value holding the delimiter
    /// (a newline by default) gives several jobs and `-E` ends the list.
    pub fn list_as_parallel(sep: &str, values: &[String], how: &Delimiting) -> Self {
        let mut text = String::new();
        for v in values {
            text.push_str(v);
            text.push_str(&how.delimiter);
        }
        let mut source = Self::items_as_parallel(sep, text.as_bytes(), how)
            .expect("the values are UTF-8 strings");
        source.origin = Self::list(values.to_vec()).origin.replacen(":::", sep, 1);
        source.empty_help = format!("give at least one value after {sep}");
        source
    }

    /// Sources whose rows go together, side by side, as GNU parallel links them: with `wrap`
    /// false (`:::+`, `::::+`) there are as many rows as the shortest source has; with `wrap`
    /// true (`--link`) as many as the longest, the shorter ones starting over.
    pub fn link(sources: Vec<JobSource>, wrap: bool) -> Result<Self, JobsError> {
        if let Some(empty) = sources.iter().find(|s| s.is_empty()) {
            return Err(JobsError::EmptySource {
                origin: empty.origin.clone(),
                help: empty.empty_help.clone(),
            });
        }
        let lens = sources.iter().map(JobSource::len);
        let rows = if wrap { lens.max() } else { lens.min() }.unwrap_or(0);
        let width: usize = sources.iter().map(JobSource::width).sum();
        let mut values = Vec::new();
        for row in 0..rows {
            for source in &sources {
                for column in 0..source.width() {
                    let value = source.value(row % source.len(), column).unwrap_or_default();
                    values.push(value.into_owned());
                }
            }
        }
        let origins: Vec<&str> = sources.iter().map(|s| s.origin.as_str()).collect();
        Ok(Self {
            origin: origins.join(if wrap { " --link " } else { " + " }),
            names: sources.iter().flat_map(|s| s.names.clone()).collect(),
            data: Data::Rows { width, values },
            empty_help: String::new(),
        })
    }

    /// Standard input, one job per line, `\r` kept (GNU parallel's source when no other is
    /// given).
    pub fn stdin_as_parallel(how: &Delimiting) -> Result<Self, JobsError> {
        Self::arg_file("standard input", Path::new("-"), how).map(|mut s| {
            s.origin = "standard input".into();
            s
        })
    }

    /// Standard input, one job per line (the source when no other is given).
    pub fn stdin() -> Result<Self, JobsError> {
        Self::args_reader("standard input", std::io::stdin().lock())
    }

    /// `--csv FILE`: one job per data row, columns named by the header.
    pub fn csv_path(path: &Path) -> Result<Self, JobsError> {
        let origin = format!("--csv {}", path.display());
        let bytes = std::fs::read(path).map_err(|error| JobsError::Io {
            origin: origin.clone(),
            error,
        })?;
        let table = csv::parse_bytes(&path.display().to_string(), &bytes)?;
        let mut source = Self::csv_table(table);
        source.origin = origin;
        Ok(source)
    }

    /// A source from an already parsed CSV table.
    pub fn csv_table(table: CsvTable) -> Self {
        let origin = format!("--csv {}", table.name());
        let (headers, records) = table.into_parts();
        let width = headers.len();
        let mut values = Vec::with_capacity(width * records.len());
        for record in records {
            values.extend(record.into_fields());
        }
        Self {
            origin,
            names: headers.into_iter().map(Some).collect(),
            data: Data::Rows { width, values },
            empty_help: "the file has a header line but no data rows; add one row per job".into(),
        }
    }

    /// `::: a b c`: one job per value.
    pub fn list<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        let mut origin = String::from(":::");
        for v in &values {
            if origin.chars().count() > 40 {
                origin.push_str(" …");
                break;
            }
            origin.push(' ');
            origin.push_str(v);
        }
        Self::one_column(origin, values, "give at least one value after :::")
    }

    /// `--range A..B`: the integers from A to B inclusive. If either end is written with a leading
    /// zero (`001..120`), every value is zero-padded to the wider of the two as written, like
    /// bash's `{001..120}`. `B < A` is an error.
    pub fn range(text: &str) -> Result<Self, JobsError> {
        let Some(dots) = text.find("..") else {
            return Err(RangeError::build(
                text,
                "expected START..END",
                0,
                text.len(),
            ));
        };
        let (a, b) = (&text[..dots], &text[dots + 2..]);
        let parse = |s: &str, at: usize, which: &str| -> Result<i64, JobsError> {
            let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(RangeError::build(
                    text,
                    &format!("{which} is not a whole number"),
                    at,
                    s.len(),
                ));
            }
            s.parse()
                .map_err(|_| RangeError::build(text, &format!("{which} is too large"), at, s.len()))
        };
        let start = parse(a, 0, "START")?;
        let end = parse(b, dots + 2, "END")?;
        if end < start {
            return Err(RangeError::build(
                text,
                "END is smaller than START",
                0,
                text.len(),
            ));
        }
        let padded = |s: &str| {
            let d = s.strip_prefix(['-', '+']).unwrap_or(s);
            d.len() > 1 && d.starts_with('0')
        };
        let pad = if padded(a) || padded(b) {
            a.len().max(b.len())
        } else {
            0
        };
        let len = u64::try_from(i128::from(end) - i128::from(start) + 1)
            .map_err(|_| RangeError::build(text, "the range is too long", 0, text.len()))?;
        Ok(Self {
            origin: format!("--range {text}"),
            names: vec![None],
            data: Data::Range { start, len, pad },
            empty_help: String::new(),
        })
    }

    /// Names the single column of this source, so templates can use `{name}`. CSV sources are
    /// named by their header and cannot be renamed.
    pub fn named(mut self, name: impl Into<String>) -> Result<Self, JobsError> {
        let name = name.into();
        let reason = if self.names.len() != 1 || self.names[0].is_some() {
            Some("only a one-column source (--args, --range, :::, stdin) can be named")
        } else if !is_identifier(&name) {
            Some("not a valid placeholder name")
        } else if RESERVED_NAMES.contains(&name.as_str()) {
            Some("the name is reserved for a built-in placeholder")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(JobsError::BadName {
                origin: self.origin,
                name,
                reason: reason.into(),
            });
        }
        self.names[0] = Some(name);
        Ok(self)
    }

    /// GNU parallel's `--colsep SEP` and `--header :` on this one-column source: each value is
    /// split on the literal `sep` into columns (empty fields kept), and with `header` the first
    /// value names the columns (`{name}`) instead of being a job. Fails if values split into
    /// different numbers of columns.
    pub fn split_columns(self, sep: Option<&str>, header: bool) -> Result<Self, JobsError> {
        if self.width() != 1 {
            return Ok(self);
        }
        let mut rows: Vec<Vec<String>> = (0..self.len())
            .map(|row| {
                let v = self.value(row, 0).unwrap_or_default();
                match sep {
                    Some(sep) if !sep.is_empty() => v.split(sep).map(str::to_owned).collect(),
                    _ => vec![v.into_owned()],
                }
            })
            .collect();
        let width = rows.first().map_or(1, Vec::len);
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
            return Err(JobsError::UnevenColumns {
                origin: self.origin,
                row: i + 1,
                expected: width,
                got: row.len(),
            });
        }
        let names = if header && !rows.is_empty() {
            rows.remove(0).into_iter().map(Some).collect()
        } else {
            vec![None; width]
        };
        Ok(Self {
            origin: self.origin,
            names,
            data: Data::Rows {
                width,
                values: rows.into_iter().flatten().collect(),
            },
            empty_help: self.empty_help,
        })
    }

    /// GNU parallel's `-N n` on this one-column source: each job takes the next `n` values, as
    /// columns `{1}`..`{n}`. Fails unless the values fill every job.
    pub fn group_rows(self, n: usize) -> Result<Self, JobsError> {
        self.group(n, false)
    }

    /// GNU parallel's `-n n` (`--max-args`) on this one-column source: each job takes the next
    /// `n` values; the last job takes what is left, so its row is shorter (a missing position
    /// has no value, and [`JobSet::get`] gives that job fewer values).
    pub fn group_values(self, n: usize) -> Result<Self, JobsError> {
        self.group(n, true)
    }

    fn group(self, n: usize, partial: bool) -> Result<Self, JobsError> {
        let n = n.max(1);
        let len = self.len();
        let rest = len % n as u64;
        if self.width() != 1 || (rest != 0 && !partial) {
            return Err(JobsError::PartialGroup {
                origin: self.origin,
                len,
                n,
                rest,
            });
        }
        let values = (0..len)
            .map(|row| self.value(row, 0).unwrap_or_default().into_owned())
            .collect();
        Ok(Self {
            origin: self.origin,
            names: vec![None; n],
            data: Data::Rows { width: n, values },
            empty_help: self.empty_help,
        })
    }

    /// How the user gave this source, for messages (e.g. `--csv streams.csv`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Column names of this source.
    pub fn names(&self) -> &[Option<String>] {
        &self.names
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Number of rows (jobs contributed to the product).
    pub fn len(&self) -> u64 {
        match &self.data {
            // Rounded up: the last row of `-n` may be short.
            Data::Rows { width, values } => values.len().div_ceil((*width).max(1)) as u64,
            Data::Range { len, .. } => *len,
        }
    }

    /// Whether the source has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value at 0-based `row` and `column`.
    pub fn value(&self, row: u64, column: usize) -> Option<Cow<'_, str>> {
        if row >= self.len() || column >= self.width() {
            return None;
        }
        match &self.data {
            Data::Rows { width, values } => {
                let i = usize::try_from(row).ok()? * width + column;
                values.get(i).map(|v| Cow::Borrowed(v.as_str()))
            }
            Data::Range { start, pad, .. } => {
                let v = i128::from(*start) + i128::from(row);
                Some(Cow::Owned(format!("{v:0pad$}")))
            }
        }
    }
}

/// One job: its 1-based sequence number and its values, one per column of the product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    seq: u64,
    values: Vec<String>,
    columns: Arc<Columns>,
}

impl Job {
    /// A job with the given values. `values` should have one entry per column; templates render a
    /// missing value as empty rather than panic.
    pub fn new(seq: u64, values: Vec<String>, columns: Arc<Columns>) -> Self {
        Self {
            seq,
            values,
            columns,
        }
    }

    /// 1-based job number (`{seq}`), in product order.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Values, by column.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Value of the 1-based `position` (`{1}`, `{2}`, …).
    pub fn value(&self, position: usize) -> Option<&str> {
        self.values
            .get(position.checked_sub(1)?)
            .map(String::as_str)
    }

    /// Value of the column called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(self.columns.position(name)?)
            .map(String::as_str)
    }

    /// All values joined by a space (unquoted), i.e. what `{==}` inserts; for a single source,
    /// the input line.
    pub fn line(&self) -> String {
        self.values.join(" ")
    }

    /// The columns the values belong to.
    pub fn columns(&self) -> &Arc<Columns> {
        &self.columns
    }
}

/// The cartesian product of job sources, first source varying slowest. Jobs are computed on
/// demand from their index.
#[derive(Debug, Clone)]
pub struct JobSet {
    sources: Vec<JobSource>,
    columns: Arc<Columns>,
    len: u64,
}

impl JobSet {
    /// Combines `sources`. Fails if there are none, if any is empty (naming it), if two columns
    /// share a name, or if the product overflows `u64`.
    pub fn new(sources: Vec<JobSource>) -> Result<Self, JobsError> {
        if sources.is_empty() {
            return Err(JobsError::NoSources);
        }
        let mut len: u64 = 1;
        let mut names = Vec::new();
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for source in &sources {
            if source.is_empty() {
                return Err(JobsError::EmptySource {
                    origin: source.origin.clone(),
                    help: source.empty_help.clone(),
                });
            }
            len = len.checked_mul(source.len()).ok_or(JobsError::TooMany)?;
            for name in source.names.iter().flatten() {
                if let Some(first) = seen.insert(name, &source.origin) {
                    return Err(JobsError::DuplicateName {
                        name: name.clone(),
                        first: first.to_owned(),
                        second: source.origin.clone(),
                    });
                }
            }
            names.extend(source.names.iter().cloned());
        }
        let columns = Arc::new(Columns::new(names)?);
        Ok(Self {
            sources,
            columns,
            len,
        })
    }

    /// The columns of the product (all sources' columns side by side).
    pub fn columns(&self) -> &Arc<Columns> {
        &self.columns
    }

    /// The sources, in the order given.
    pub fn sources(&self) -> &[JobSource] {
        &self.sources
    }

    /// Number of jobs.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: [`JobSet::new`] refuses empty sources.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The job at 0-based `index` (its `seq` is `index + 1`).
    pub fn get(&self, index: u64) -> Option<Job> {
        if index >= self.len {
            return None;
        }
        let mut rows = vec![0u64; self.sources.len()];
        let mut rest = index;
        for (row, source) in rows.iter_mut().zip(&self.sources).rev() {
            *row = rest % source.len();
            rest /= source.len();
        }
        let mut values = Vec::with_capacity(self.columns.len());
        for (source, &row) in self.sources.iter().zip(&rows) {
            // A short last row (`-n`) gives the job fewer values.
            values.extend(
                (0..source.width()).map_while(|c| source.value(row, c).map(Cow::into_owned)),
            );
        }
        Some(Job::new(index + 1, values, Arc::clone(&self.columns)))
    }

    /// All jobs in order.
    pub fn iter(&self) -> Jobs<'_> {
        Jobs { set: self, next: 0 }
    }
}

impl<'a> IntoIterator for &'a JobSet {
    type Item = Job;
    type IntoIter = Jobs<'a>;

    fn into_iter(self) -> Jobs<'a> {
        self.iter()
    }
}

/// Iterator over the jobs of a [`JobSet`], in order.
#[derive(Debug, Clone)]
pub struct Jobs<'a> {
    set: &'a JobSet,
    next: u64,
}

impl Iterator for Jobs<'_> {
    type Item = Job;

    fn next(&mut self) -> Option<Job> {
        let job = self.set.get(self.next)?;
        self.next += 1;
        Some(job)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.set.len - self.next;
        match usize::try_from(left) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn lines_of(set: &JobSet) -> Vec<String> {
        set.iter().map(|j| j.line()).collect()
    }

    #[test]
    fn product_order_matches_gnu_parallel() {
        let set = JobSet::new(vec![
            JobSource::list(["a", "b"]),
            JobSource::list(["1", "2", "3"]),
            JobSource::list(["x", "y"]),
        ])
        .unwrap();
        let ours: Vec<String> = set.iter().map(|j| format!("echo {}", j.line())).collect();
        assert_eq!(ours.len(), 12);
        assert_eq!(set.len(), 12);
        let out = Command::new("parallel")
            .args([
                "--will-cite",
                "--dry-run",
                "-k",
                "echo",
                ":::",
                "a",
                "b",
                ":::",
                "1",
                "2",
                "3",
                ":::",
                "x",
                "y",
            ])
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let theirs: Vec<String> = String::from_utf8(out.stdout)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                assert_eq!(ours, theirs);
            }
            // Without the oracle, check the order we know it has.
            _ => assert_eq!(&ours[..3], ["echo a 1 x", "echo a 1 y", "echo a 2 x"]),
        }
        let seqs: Vec<u64> = set.iter().map(|j| j.seq()).collect();
        assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    }

    #[test]
    fn lines_keep_inner_empty_lines_and_strip_crlf() {
        let s = JobSource::lines("f", b"x\r\n\ny\n").unwrap();
        let set = JobSet::new(vec![s]).unwrap();
        assert_eq!(lines_of(&set), ["x", "", "y"]);
        let s = JobSource::lines("f", b"no newline").unwrap();
        assert_eq!(s.len(), 1);
        // A single line break is one empty line, as GNU parallel reads it.
        assert_eq!(JobSource::lines("f", b"\n").unwrap().len(), 1);
        assert_eq!(JobSource::lines("f", b"").unwrap().len(), 0);
    }

    #[test]
    fn lines_report_invalid_utf8_position() {
        let err = JobSource::lines("jobs.txt", b"ok\nab\xffc\n").unwrap_err();
        match err {
            JobsError::InvalidUtf8(e) => {
                assert_eq!((e.line, e.column), (2, 3));
                assert_eq!(e.to_string(), "jobs.txt:2:3: the input is not valid UTF-8");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn args_from_reader_and_missing_file() {
        let s = JobSource::args_reader("standard input", &b"a b\nc\n"[..]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.value(0, 0).as_deref(), Some("a b"));
        let err = JobSource::args_path(Path::new("/nonexistent/jobs.txt")).unwrap_err();
        assert!(matches!(err, JobsError::Io { .. }));
        assert!(err
            .to_string()
            .starts_with("cannot read --args /nonexistent/jobs.txt:"));
    }

    #[test]
    fn args_and_csv_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let args = dir.join("a.txt");
        std::fs::write(&args, "one\ntwo\n").unwrap();
        let csv_file = dir.join("s.csv");
        std::fs::write(&csv_file, "channel,role\nc1,master\n").unwrap();
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "a,b\n1\n").unwrap();
        let set = JobSet::new(vec![
            JobSource::csv_path(&csv_file).unwrap(),
            JobSource::args_path(&args).unwrap().named("item").unwrap(),
        ])
        .unwrap();
        let jobs: Vec<Job> = set.iter().collect();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].get("channel"), Some("c1"));
        assert_eq!(jobs[1].get("item"), Some("two"));
        assert_eq!(jobs[1].value(2), Some("master"));
        assert_eq!(jobs[1].value(3), Some("two"));
        assert_eq!(jobs[1].value(0), None);
        let err = JobSource::csv_path(&bad).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.ends_with("bad.csv:2:2: this row has 1 field(s) but the header has 2"),
            "{msg}"
        );
    }

    #[test]
    fn ranges() {
        let r = JobSource::range("1..3").unwrap();
        let set = JobSet::new(vec![r]).unwrap();
        assert_eq!(lines_of(&set), ["1", "2", "3"]);
        let r = JobSource::range("008..011").unwrap();
        let got: Vec<_> = (0..r.len()).map(|i| r.value(i, 0).unwrap()).collect();
        assert_eq!(got, ["008", "009", "010", "011"]);
        let r = JobSource::range("001..120").unwrap();
        assert_eq!(r.len(), 120);
        assert_eq!(r.value(119, 0).as_deref(), Some("120"));
        let r = JobSource::range("-2..1").unwrap();
        let got: Vec<_> = (0..r.len()).map(|i| r.value(i, 0).unwrap()).collect();
        assert_eq!(got, ["-2", "-1", "0", "1"]);
        assert_eq!(JobSource::range("5..5").unwrap().len(), 1);
        let full = JobSource::range(&format!("{}..{}", i64::MIN + 1, i64::MAX)).unwrap();
        assert_eq!(full.len(), u64::MAX);
        assert!(JobSource::range(&format!("{}..{}", i64::MIN, i64::MAX)).is_err());
    }

    #[test]
    fn range_errors_point_into_the_argument() {
        let cases = [
            ("10", "expected START..END", 0..2),
            ("a..3", "START is not a whole number", 0..1),
            ("1..x3", "END is not a whole number", 3..5),
            ("1..", "END is not a whole number", 3..4),
            ("1...3", "END is not a whole number", 3..5),
            ("5..2", "END is smaller than START", 0..4),
            ("1..99999999999999999999", "END is too large", 3..23),
        ];
        for (text, reason, span) in cases {
            match JobSource::range(text) {
                Err(JobsError::Range(e)) => {
                    assert_eq!(e.reason, reason, "{text}");
                    assert_eq!(
                        e.span.offset()..e.span.offset() + e.span.len(),
                        span,
                        "{text}"
                    );
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn empty_sources_are_named() {
        let err = JobSet::new(vec![
            JobSource::list(["a"]),
            JobSource::list(Vec::<String>::new()),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the job source ::: is empty, so there is nothing to run"
        );
        let table = csv::parse_str("s.csv", "a,b\n").unwrap();
        let err = JobSet::new(vec![JobSource::csv_table(table)]).unwrap_err();
        assert!(err.to_string().contains("--csv s.csv is empty"));
        assert!(Diagnostic::help(&err)
            .unwrap()
            .to_string()
            .contains("header line but no data rows"));
        let err = JobSet::new(vec![JobSource::lines("standard input", b"").unwrap()]).unwrap_err();
        assert!(err.to_string().contains("standard input is empty"));
        assert!(matches!(JobSet::new(vec![]), Err(JobsError::NoSources)));
    }

    #[test]
    fn names_are_checked() {
        let csv_src = || JobSource::csv_table(csv::parse_str("s.csv", "n,m\n1,2\n").unwrap());
        for (name, why) in [
            ("1x", "not a valid placeholder name"),
            ("a b", "not a valid placeholder name"),
            ("host", "reserved"),
        ] {
            let err = JobSource::list(["a"]).named(name).unwrap_err();
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
        assert!(csv_src().named("x").is_err());
        let err = JobSet::new(vec![
            csv_src(),
            JobSource::range("1..2").unwrap().named("n").unwrap(),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the column name \"n\" is used by both --csv s.csv and --range 1..2"
        );
        assert!(Columns::new(vec![Some("a".into()), None, Some("a".into())]).is_err());
    }

    #[test]
    fn overflow_is_an_error_and_large_products_are_lazy() {
        let big = || JobSource::range(&format!("1..{}", u64::MAX / 2)).unwrap();
        assert!(matches!(
            JobSet::new(vec![big(), big(), big()]),
            Err(JobsError::TooMany)
        ));
        let set = JobSet::new(vec![
            JobSource::range("1..1000000").unwrap(),
            JobSource::range("1..1000").unwrap(),
        ])
        .unwrap();
        assert_eq!(set.len(), 1_000_000_000);
        assert_eq!(set.get(999_999_999).unwrap().line(), "1000000 1000");
        assert_eq!(set.get(1_000).unwrap().line(), "2 1");
        assert!(set.get(1_000_000_000).is_none());
    }

    #[test]
    fn colsep_splits_values_and_header_names_columns() {
        let s = JobSource::list(["n,x", "1,a", ",b"])
            .split_columns(Some(","), true)
            .unwrap();
        assert_eq!(s.names(), [Some("n".to_owned()), Some("x".to_owned())]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.value(1, 0).unwrap(), "");
        assert_eq!(s.value(1, 1).unwrap(), "b");
        let e = JobSource::list(["a,b", "c,d,"])
            .split_columns(Some(","), false)
            .unwrap_err();
        assert!(matches!(
            e,
            JobsError::UnevenColumns {
                row: 2,
                expected: 2,
                got: 3,
                ..
            }
        ));
    }

    fn values_of(s: &JobSource) -> Vec<String> {
        (0..s.len())
            .map(|r| s.value(r, 0).unwrap().into_owned())
            .collect()
    }

    #[test]
    fn items_follow_gnu_parallel_delimiter_and_eof_string() {
        let comma = Delimiting {
            delimiter: ",".into(),
            eof: None,
        };
        // Items end with the delimiter; a newline is part of the last item; empty ones stay.
        let s = JobSource::items_as_parallel("f", b"a,,b\n", &comma).unwrap();
        assert_eq!(values_of(&s), ["a", "", "b\n"]);
        let s = JobSource::items_as_parallel("f", b"a,b,", &comma).unwrap();
        assert_eq!(values_of(&s), ["a", "b"]);
        // `:::` values are written one per item and read back: `a,` gives `a` and ``.
        let s = JobSource::list_as_parallel(":::", &["a,".into(), "c".into()], &comma);
        assert_eq!(values_of(&s), ["a", "", "c"]);
        let lines = Delimiting::default();
        let s = JobSource::list_as_parallel(":::", &["a\nb".into(), "c".into()], &lines);
        assert_eq!(values_of(&s), ["a", "b", "c"]);
        // `-E stop`: the item and everything after it are not read; `\r` stays.
        let eof = Delimiting {
            eof: Some("stop".into()),
            ..Delimiting::default()
        };
        let s = JobSource::items_as_parallel("f", b"a\r\nstop\nb\n", &eof).unwrap();
        assert_eq!(values_of(&s), ["a\r"]);
        let s = JobSource::list_as_parallel(":::", &["stop".into()], &eof);
        assert!(s.is_empty());
    }

    #[test]
    fn max_args_groups_values_and_the_last_job_takes_the_rest() {
        let s = JobSource::list(["A", "B", "C"]).group_values(2).unwrap();
        let set = JobSet::new(vec![s]).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.get(0).unwrap().values(), ["A", "B"]);
        assert_eq!(set.get(1).unwrap().values(), ["C"]);
        assert!(JobSource::list(["A", "B", "C"]).group_rows(2).is_err());
    }
}
