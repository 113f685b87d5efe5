//! Command templates: parsed and checked once, rendered per job with shell quoting.
//!
//! This module owns the placeholder grammar of `sortie run` commands, validating a template
//! against the job [`Columns`] before anything runs, and rendering it into the shell command line
//! for one job on one host slot. It does not run anything.
//!
//! # Placeholders
//!
//! | placeholder | inserts |
//! |---|---|
//! | `{}` | all values of the job, each shell-quoted, joined by spaces (for one source: the line) |
//! | `{1}`, `{2}`, … | the value in that 1-based position of the job's columns |
//! | `{-1}`, `{-2}`, … | the value in that position counted from the last column |
//! | `{name}` | the value of the column called `name` (a CSV header or a named source) |
//! | `{host}` | the label of the host the job runs on |
//! | `{slot}`, `{%}` | the 1-based slot on that host |
//! | `{seq}`, `{#}` | the 1-based job number |
//!
//! **GNU parallel's path edits** follow `{}` or a position: `{.}` removes the extension, `{/}`
//! keeps the basename, `{//}` the directory, `{/.}` the basename without extension; `{1.}`,
//! `{-1/}`, … edit one column ([`Modifier`] gives the exact rules, those of parallel 20221122).
//!
//! Values are shell-quoted POSIX-style with [`shell_quote`], so a value with spaces, quotes or `$`
//! arrives as one word, unchanged. Do not put placeholders inside quotes of your own (`'{}'`): the
//! value is already quoted.
//!
//! **Raw form.** `{=NAME=}` inserts the same value *unquoted*, for NAME empty, a position or a
//! name: `{=1=}`, `{=-1=}`, `{=channel=}`, `{=host=}`; `{==}` is the whole line unquoted (values
//! joined by spaces). Use it when the value is shell code or when you quote it yourself. Anything
//! else between `{=` and `=}` (and `{N= … =}`) is GNU parallel's Perl expression, which is refused
//! with a hint.
//!
//! **Never silently text.** Every token of GNU parallel's replacement-string grammar — `{`, an
//! optional position `N` or `-N`, an optional modifier among `. / // /. # %`, `}` — is either
//! understood or an error at its column (`{1#}`, `{0/}`, `{3}` with two columns). Other braces
//! stay as written, as parallel keeps them: shell text like `{a,b}`, `{ cmd; }`, `{1..3}`, `{..}`;
//! a name `{x}` that is no column and no built-in is an error. A `{` right after `$` (`${VAR}`) or
//! `\` is literal: write `\{}` or `\{1}` to pass a literal `{}` or `{1}` to the command (the shell
//! removes the backslash). `sortie run` parses with [`Template::parse_as_parallel`] instead,
//! which reads the command exactly as GNU parallel does (its quoting, no `\{` escape).
//!
//! **Appended `{}`.** As in GNU parallel, a template without any placeholder gets ` {}` appended
//! when there are job columns: `sortie run gzip ::: a b` runs `gzip a` and `gzip b`. A template
//! parsed against [`Columns::none`] (no job source) gets nothing appended.
//!
//! [`Template::parse`] never panics on any input and is the entry point for fuzzing.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use miette::{Diagnostic, LabeledSpan, SourceCode};
use std::sync::Arc;

use crate::jobs::{Columns, Job, RESERVED_NAMES};
use crate::position::Located;

/// Quotes `s` for a POSIX shell so it is read back as exactly one word equal to `s`.
///
/// Strings made only of ASCII letters, digits and `_ - . , / : @ % + =` are returned unchanged
/// (so `abc-1.2_x/y` stays readable); anything else, including the empty string, is enclosed in
/// single quotes, with each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"_-.,/:@%+=".contains(&b);
    if !s.is_empty() && s.bytes().all(safe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// Quotes `s` as GNU parallel 20221122 does for Bourne shells, byte for byte: strings made only
/// of ASCII letters, digits and `- _ . + /` are unchanged, the empty string is `''`, anything
/// else is enclosed in single quotes with each `'` written as `'"'"'` (and a leading or trailing
/// `''` dropped). Used by `sortie run` so that a value inside the user's own quotes
/// (`echo "{}"`) prints what parallel prints.
pub fn parallel_quote(s: &str) -> Cow<'_, str> {
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"-_.+/".contains(&b);
    if s.is_empty() {
        return Cow::Borrowed("''");
    }
    if s.bytes().all(safe) {
        return Cow::Borrowed(s);
    }
    let quoted = format!("'{}'", s.replace('\'', "'\"'\"'"));
    let quoted = quoted.strip_prefix("''").unwrap_or(&quoted);
    Cow::Owned(quoted.strip_suffix("''").unwrap_or(quoted).to_owned())
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceholderKind {
    /// `{}`: all job values.
    Line,
    /// `{N}` or `{name}`: the job value in this 0-based column.
    Column(usize),
    /// `{host}`.
    Host,
    /// `{slot}`.
    Slot,
    /// `{seq}`.
    Seq,
}

/// One placeholder found in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// What it stands for.
    pub kind: PlaceholderKind,
    /// Whether it is the raw (unquoted) form `{=…=}`.
    pub raw: bool,
    /// The path edit applied to job values (`{.}`, `{1/}`, …); [`Modifier::None`] otherwise.
    pub modifier: Modifier,
    /// Byte range in the template text, or `None` for the appended ` {}`.
    pub span: Option<Range<usize>>,
}

/// Per-job values that are not columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    /// The host label (`{host}`).
    pub host: &'a str,
    /// 1-based slot on that host (`{slot}`).
    pub slot: u32,
    /// 1-based job number (`{seq}`).
    pub seq: u64,
}

/// What is wrong with a template (see [`TemplateError`] for where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateErrorKind {
    /// The template is empty or only whitespace.
    #[error("the command is empty")]
    Empty,
    /// `{name}` names no column and no built-in.
    #[error("unknown placeholder {{{name}}} (known: {})", .known.join(", "))]
    Unknown {
        /// The name used.
        name: String,
        /// Every placeholder that would be accepted, e.g. `{}`, `{1}`, `{channel}`, `{host}`.
        known: Vec<String>,
    },
    /// `{0}`.
    #[error("placeholder {{0}}: positions start at 1")]
    PositionZero,
    /// `{N}` with N greater than the number of columns.
    #[error("placeholder {{{position}}} is out of range: the jobs have {count} column(s)")]
    PositionOutOfRange {
        /// The position used.
        position: String,
        /// Number of columns.
        count: usize,
    },
    /// A job-value placeholder when there is no job source.
    #[error("placeholder {placeholder} needs job values, but there is no job source")]
    NoJobValues {
        /// The placeholder as written.
        placeholder: String,
    },
    /// A column is named like a built-in placeholder.
    #[error("placeholder {{{name}}} is ambiguous: it is both a built-in and column {position}")]
    Ambiguous {
        /// The name.
        name: String,
        /// 1-based column position.
        position: usize,
    },
    /// A GNU parallel replacement string sortie does not support.
    #[error("placeholder {placeholder} is not supported")]
    Unsupported {
        /// The placeholder as written.
        placeholder: String,
        /// What to use instead.
        instead: String,
    },
}

impl TemplateErrorKind {
    fn help(&self) -> String {
        match self {
            Self::Empty => {
                "give a command to run; to run each input line as a command, use {==}".into()
            }
            Self::Unknown { .. } => {
                "use one of the known placeholders; to pass the braces to the command as text, quote the opening one: '{'name} (the shell removes the quotes)".into()
            }
            Self::PositionZero => "{1} is the first column".into(),
            Self::PositionOutOfRange { count, .. } => {
                format!("use {{1}} to {{{count}}}, or add a job source")
            }
            Self::NoJobValues { .. } => {
                "give jobs (--args, --csv, --range, :::), or use only {host}, {slot} and {seq}".into()
            }
            Self::Ambiguous { position, .. } => {
                format!("write {{{position}}} for the column, or rename the column")
            }
            Self::Unsupported { instead, .. } => instead.clone(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Empty => "sortie::template::empty",
            Self::Unknown { .. } => "sortie::template::unknown_placeholder",
            Self::PositionZero => "sortie::template::position_zero",
            Self::PositionOutOfRange { .. } => "sortie::template::position_out_of_range",
            Self::NoJobValues { .. } => "sortie::template::no_job_values",
            Self::Ambiguous { .. } => "sortie::template::ambiguous_placeholder",
            Self::Unsupported { .. } => "sortie::template::unsupported_placeholder",
        }
    }
}

/// An error in a command template, with its 1-based line and column (in characters) and a
/// labelled span for [`miette`]. Displays as `NAME:LINE:COLUMN: message`, where NAME is
/// `command template` unless given to [`Template::parse_named`]. Its place, message, label and
/// help are the crate's one located-error type, [`Located`].
#[derive(Debug, Clone)]
pub struct TemplateError(Box<(TemplateErrorKind, Located)>);

impl TemplateError {
    fn new(kind: TemplateErrorKind, name: &str, text: &str, span: Range<usize>) -> Self {
        let label = match &kind {
            TemplateErrorKind::Empty => "no command",
            TemplateErrorKind::Unknown { .. } => "unknown placeholder",
            TemplateErrorKind::Unsupported { .. } => "not supported",
            _ => "here",
        };
        let at = Located::new(
            kind.code(),
            &Arc::from(name),
            &Arc::from(text),
            span,
            true,
            kind.to_string(),
            label.to_owned(),
            Some(kind.help()),
        );
        Self(Box::new((kind, at)))
    }

    /// What is wrong.
    pub fn kind(&self) -> &TemplateErrorKind {
        &self.0 .0
    }

    /// Where, with the message, label and help.
    pub fn located(&self) -> &Located {
        &self.0 .1
    }

    /// 1-based line in the template.
    pub fn line(&self) -> usize {
        self.located().line()
    }

    /// 1-based column (in characters) in the template.
    pub fn column(&self) -> usize {
        self.located().column()
    }

    /// Byte range of the offending text in the template, for callers that embed the template in a
    /// larger file and want to report the error there.
    pub fn span(&self) -> Range<usize> {
        self.located().span()
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.located().fmt(f)
    }
}

impl std::error::Error for TemplateError {}

impl Diagnostic for TemplateError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Diagnostic::code(self.located())
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Diagnostic::help(self.located())
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Diagnostic::source_code(self.located())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Diagnostic::labels(self.located())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Value(Placeholder),
}

/// A parsed, validated command template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    segments: Vec<Segment>,
    appended: bool,
    parallel_quoting: bool,
    unquoted: bool,
}

/// A path edit GNU parallel applies to a value before inserting it: `{.}`, `{/}`, `{//}`,
/// `{/.}`, and the same after a position (`{1.}`, `{-1/}`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Modifier {
    /// The value as it is.
    #[default]
    None,
    /// `.`: the extension removed, as parallel's `s:\.[^/.]*$::` (`a/b.tar.gz` → `a/b.tar`).
    NoExtension,
    /// `/`: the basename, as parallel's `s:.*/::` (`a/b.c` → `b.c`).
    Basename,
    /// `//`: the directory, as Perl's `File::Basename::dirname` (`a/b.c` → `a`, `b` → `.`).
    Dirname,
    /// `/.`: the basename without extension (`a/b.c` → `b`).
    BasenameNoExtension,
}

impl Modifier {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" => Self::None,
            "." => Self::NoExtension,
            "/" => Self::Basename,
            "//" => Self::Dirname,
            "/." => Self::BasenameNoExtension,
            _ => return None,
        })
    }

    /// `value` with this edit applied, byte for byte as GNU parallel 20221122 does it.
    pub fn apply(self, value: &str) -> Cow<'_, str> {
        match self {
            Self::None => Cow::Borrowed(value),
            Self::NoExtension => Cow::Borrowed(remove_extension(value)),
            Self::Basename => basename(value),
            Self::Dirname => Cow::Borrowed(dirname(value)),
            Self::BasenameNoExtension => match basename(value) {
                Cow::Borrowed(b) => Cow::Borrowed(remove_extension(b)),
                Cow::Owned(b) => Cow::Owned(remove_extension(&b).to_owned()),
            },
        }
    }
}

/// `s:\.[^/.]*$::`: the last `.` goes with what follows it, unless a `/` follows it.
fn remove_extension(v: &str) -> &str {
    match v.rfind('.') {
        Some(i) if !v[i..].contains('/') => &v[..i],
        _ => v,
    }
}

/// `s:.*/::`: Perl's `.` stops at a newline, so the first line holding a `/` loses its text up
/// to that line's last `/`.
fn basename(v: &str) -> Cow<'_, str> {
    let mut line_start = 0;
    for line in v.split_inclusive('\n') {
        if let Some(slash) = line.rfind('/') {
            let rest = &v[line_start + slash + 1..];
            return if line_start == 0 {
                Cow::Borrowed(rest)
            } else {
                Cow::Owned(format!("{}{rest}", &v[..line_start]))
            };
        }
        line_start += line.len();
    }
    Cow::Borrowed(v)
}

/// Perl's `File::Basename::dirname` on Unix: trailing slashes ignored, `.` when there is no
/// directory, `/` for the root.
fn dirname(v: &str) -> &str {
    let trimmed = v.trim_end_matches('/');
    if trimmed.is_empty() {
        return if v.is_empty() { "." } else { "/" };
    }
    match trimmed.rfind('/') {
        None => ".",
        Some(i) => match trimmed[..=i].trim_end_matches('/') {
            "" => "/",
            dir => dir,
        },
    }
}

fn is_body_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Length of a sortie name body starting at `text[at..]` if it fits the grammar
/// (empty | digits | identifier), else `None`.
fn body_len(text: &str, at: usize) -> Option<usize> {
    let len = text[at..]
        .find(|c: char| !is_body_char(c))
        .unwrap_or(text.len() - at);
    let body = &text[at..at + len];
    (body.is_empty()
        || body.bytes().all(|b| b.is_ascii_digit())
        || crate::jobs::is_identifier(body))
    .then_some(len)
}

/// Length of the optional position (`N` or `-N`) at the start of `rest`.
fn position_len(rest: &str) -> usize {
    let sign = usize::from(rest.starts_with('-'));
    let digits = rest[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        0
    } else {
        sign + digits
    }
}

/// GNU parallel's modifiers, longest first.
const GNU_MODIFIERS: [&str; 7] = ["/.", "//", "/", ".", "#", "%", ""];

/// Length of a GNU parallel replacement-string body at the start of `rest` (an optional
/// position, an optional modifier), if a `}` follows it.
fn gnu_body_len(rest: &str) -> Option<usize> {
    let p = position_len(rest);
    if p == 0 && rest.starts_with('-') {
        return None;
    }
    GNU_MODIFIERS.iter().find_map(|m| {
        (rest[p..].starts_with(m) && rest[p + m.len()..].starts_with('}')).then_some(p + m.len())
    })
}

/// A `{…}` token of a template.
enum Token<'t> {
    /// `{BODY}` (`raw` false) or `{=BODY=}` (`raw` true), ending before byte `end`.
    Value {
        body: &'t str,
        raw: bool,
        end: usize,
    },
    /// `{=…=}` or `{N=…=}` that is not sortie's raw form: a GNU parallel Perl expression.
    Perl { end: usize },
}

/// The token opening at `text[open]` (a `{`), or `None` when the `{` is plain text.
fn token(text: &str, open: usize) -> Option<Token<'_>> {
    let at = open + 1;
    let rest = &text[at..];
    let p = position_len(rest);
    if rest[p..].starts_with('=') {
        if p == 0 {
            let negative = Some(position_len(&rest[1..])).filter(|&n| n > 0);
            if let Some(len) = negative.or_else(|| body_len(text, at + 1)) {
                if text[at + 1 + len..].starts_with("=}") {
                    let body = &text[at + 1..at + 1 + len];
                    return Some(Token::Value {
                        body,
                        raw: true,
                        end: at + len + 3,
                    });
                }
            }
        }
        let close = rest[p + 1..].find("=}")?;
        return Some(Token::Perl {
            end: at + p + 1 + close + 2,
        });
    }
    let len = gnu_body_len(rest)
        .or_else(|| body_len(text, at).filter(|len| text[at + len..].starts_with('}')))?;
    Some(Token::Value {
        body: &rest[..len],
        raw: false,
        end: at + len + 1,
    })
}

impl Template {
    /// Parses `text` and checks every placeholder against `columns`. Errors are reported as in a
    /// file called `command template`.
    pub fn parse(text: &str, columns: &Columns) -> Result<Self, TemplateError> {
        Self::parse_named("command template", text, columns)
    }

    /// Like [`parse`](Self::parse), naming the template `name` in errors (for templates read from
    /// a plan file, e.g. `plan.toml: fleet "master" command`).
    pub fn parse_named(name: &str, text: &str, columns: &Columns) -> Result<Self, TemplateError> {
        Self::parse_with(name, text, columns, false)
    }

    /// Parses a `sortie run` command as GNU parallel reads it: no `\{` or `${` escape (parallel
    /// replaces `{}` there too), values quoted with [`parallel_quote`], and no value quoted at
    /// all when a placeholder is part of the first word (`{} x`, `my_{}`: the value is the
    /// command itself, parallel's rule).
    pub fn parse_as_parallel(text: &str, columns: &Columns) -> Result<Self, TemplateError> {
        let mut t = Self::parse_with("command template", text, columns, true)?;
        t.parallel_quoting = true;
        let first_word = text.find([' ', '\t', '\n', '=']).unwrap_or(text.len());
        let unquoted = t
            .placeholders()
            .any(|p| p.span.as_ref().is_some_and(|s| s.start < first_word));
        t.unquoted = unquoted;
        Ok(t)
    }

    fn parse_with(
        name: &str,
        text: &str,
        columns: &Columns,
        parallel: bool,
    ) -> Result<Self, TemplateError> {
        let err = |kind, span| TemplateError::new(kind, name, text, span);
        if text.trim().is_empty() {
            return Err(err(TemplateErrorKind::Empty, 0..text.len()));
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut pos = 0;
        while let Some(rel) = text[pos..].find('{') {
            let open = pos + rel;
            literal.push_str(&text[pos..open]);
            pos = open + 1;
            // Parallel has no `\{` escape, and replaces `${1}` but keeps `${VAR}`.
            let escaped = if parallel {
                text[..open].ends_with('$') && gnu_body_len(&text[open + 1..]).is_none()
            } else {
                text[..open].ends_with(['$', '\\'])
            };
            let Some(token) = token(text, open).filter(|_| !escaped) else {
                literal.push('{');
                continue;
            };
            let (body, raw, end) = match token {
                Token::Value { body, raw, end } => (body, raw, end),
                Token::Perl { end } => {
                    let kind = TemplateErrorKind::Unsupported {
                        placeholder: text[open..end].to_owned(),
                        instead: "GNU parallel's {= perl =} expressions are not supported; {=NAME=} inserts a value unquoted, where NAME is empty, a position or a column name; for other edits, prepare the value in the job source".into(),
                    };
                    return Err(err(kind, open..end));
                }
            };
            let span = open..end;
            let written = &text[span.clone()];
            let (kind, modifier) =
                Self::resolve(body, written, columns).map_err(|k| err(k, span.clone()))?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Value(Placeholder {
                kind,
                raw,
                modifier,
                span: Some(span),
            }));
            pos = end;
        }
        literal.push_str(&text[pos..]);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let has_placeholder = segments.iter().any(|s| matches!(s, Segment::Value(_)));
        let appended = !has_placeholder && !columns.is_empty();
        if appended {
            segments.push(Segment::Literal(" ".into()));
            segments.push(Segment::Value(Placeholder {
                kind: PlaceholderKind::Line,
                raw: false,
                modifier: Modifier::None,
                span: None,
            }));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
            appended,
            parallel_quoting: false,
            unquoted: false,
        })
    }

    fn resolve(
        body: &str,
        written: &str,
        columns: &Columns,
    ) -> Result<(PlaceholderKind, Modifier), TemplateErrorKind> {
        let needs_jobs = || TemplateErrorKind::NoJobValues {
            placeholder: written.to_owned(),
        };
        let p = position_len(body);
        if let Some(modifier) = (body.len() - p <= 2)
            .then(|| &body[p..])
            .filter(|m| GNU_MODIFIERS.contains(m))
        {
            if modifier == "#" || modifier == "%" {
                if p > 0 {
                    let what = if modifier == "#" {
                        "job number"
                    } else {
                        "slot"
                    };
                    return Err(TemplateErrorKind::Unsupported {
                        placeholder: written.to_owned(),
                        instead: format!(
                            "{{{modifier}}} (the {what}) takes no position: write {{{modifier}}}"
                        ),
                    });
                }
                let kind = if modifier == "#" {
                    PlaceholderKind::Seq
                } else {
                    PlaceholderKind::Slot
                };
                return Ok((kind, Modifier::None));
            }
            let modifier = Modifier::parse(modifier).unwrap_or_default();
            if columns.is_empty() {
                return Err(needs_jobs());
            }
            if p == 0 {
                return Ok((PlaceholderKind::Line, modifier));
            }
            let position = &body[..p];
            let count = columns.len();
            let out_of_range = || TemplateErrorKind::PositionOutOfRange {
                position: position.to_owned(),
                count,
            };
            let n = position.trim_start_matches('-').parse::<usize>();
            return match (position.starts_with('-'), n) {
                (_, Ok(0)) => Err(TemplateErrorKind::PositionZero),
                (false, Ok(n)) if n <= count => Ok((PlaceholderKind::Column(n - 1), modifier)),
                (true, Ok(n)) if n <= count => Ok((PlaceholderKind::Column(count - n), modifier)),
                _ => Err(out_of_range()),
            };
        }
        let builtin = match body {
            "host" => Some(PlaceholderKind::Host),
            "slot" => Some(PlaceholderKind::Slot),
            "seq" => Some(PlaceholderKind::Seq),
            _ => None,
        };
        let kind = match (columns.position(body), builtin) {
            (Some(i), Some(_)) => Err(TemplateErrorKind::Ambiguous {
                name: body.to_owned(),
                position: i + 1,
            }),
            (Some(i), None) => Ok(PlaceholderKind::Column(i)),
            (None, Some(b)) => Ok(b),
            (None, None) => Err(TemplateErrorKind::Unknown {
                name: body.to_owned(),
                known: known_placeholders(columns),
            }),
        }?;
        Ok((kind, Modifier::None))
    }

    /// The template as written (without the appended ` {}`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether ` {}` was appended because the template had no placeholder.
    pub fn appended_line(&self) -> bool {
        self.appended
    }

    /// Whether rendering uses job values (`{}`, `{N}`, `{name}`, raw forms, or the appended
    /// ` {}`). If false, every job renders the same command for a given host/slot/seq.
    pub fn uses_job_values(&self) -> bool {
        self.placeholders()
            .any(|p| matches!(p.kind, PlaceholderKind::Line | PlaceholderKind::Column(_)))
    }

    /// The placeholders, in order (including the appended ` {}`).
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Value(p) => Some(p),
            Segment::Literal(_) => None,
        })
    }

    /// Renders the command for `job` in `ctx`.
    pub fn render(&self, job: &Job, ctx: &Context<'_>) -> String {
        self.render_values(job.values(), ctx)
    }

    /// Renders the command from bare values (one per column the template was parsed against; a
    /// missing value renders as empty). Use `&[]` for templates parsed against [`Columns::none`].
    pub fn render_values(&self, values: &[String], ctx: &Context<'_>) -> String {
        self.render_with(values, ctx, true)
    }

    /// Like [`render_values`](Self::render_values) with every value inserted unquoted, for
    /// text that is not shell code (GNU parallel's `--tagstring`).
    pub fn render_unquoted(&self, values: &[String], ctx: &Context<'_>) -> String {
        self.render_with(values, ctx, false)
    }

    fn render_with(&self, values: &[String], ctx: &Context<'_>, quoted: bool) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        for segment in &self.segments {
            let p = match segment {
                Segment::Literal(s) => {
                    out.push_str(s);
                    continue;
                }
                Segment::Value(p) => p,
            };
            let quote = |s: &str| -> String {
                let s = p.modifier.apply(s);
                if p.raw || !quoted || self.unquoted {
                    s.into_owned()
                } else if self.parallel_quoting {
                    parallel_quote(&s).into_owned()
                } else {
                    shell_quote(&s).into_owned()
                }
            };
            match p.kind {
                PlaceholderKind::Line => {
                    let parts: Vec<String> = values.iter().map(|v| quote(v)).collect();
                    out.push_str(&parts.join(" "));
                }
                PlaceholderKind::Column(i) => {
                    out.push_str(&quote(values.get(i).map_or("", String::as_str)));
                }
                PlaceholderKind::Host => out.push_str(&quote(ctx.host)),
                PlaceholderKind::Slot => out.push_str(&ctx.slot.to_string()),
                PlaceholderKind::Seq => out.push_str(&ctx.seq.to_string()),
            }
        }
        out
    }
}

/// Every placeholder accepted with `columns`, for error messages.
fn known_placeholders(columns: &Columns) -> Vec<String> {
    let mut known = Vec::new();
    match columns.len() {
        0 => {}
        1 => known.extend(["{}".to_owned(), "{1}".to_owned()]),
        n => known.extend(["{}".to_owned(), format!("{{1}}..{{{n}}}")]),
    }
    for name in columns.names().iter().flatten() {
        if crate::jobs::is_identifier(name) && !RESERVED_NAMES.contains(&name.as_str()) {
            known.push(format!("{{{name}}}"));
        }
    }
    known.extend(RESERVED_NAMES.iter().map(|n| format!("{{{n}}}")));
    known
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::Arc;

    fn cols(names: &[Option<&str>]) -> Columns {
        Columns::new(names.iter().map(|n| n.map(str::to_owned)).collect()).unwrap()
    }

    fn stream_columns() -> Columns {
        cols(&[Some("channel"), Some("role"), None])
    }

    const CTX: Context<'static> = Context {
        host: "web-01",
        slot: 2,
        seq: 7,
    };

    fn render(text: &str, columns: &Columns, values: &[&str]) -> String {
        let t = Template::parse(text, columns).unwrap();
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        t.render_values(&values, &CTX)
    }

    fn error(text: &str, columns: &Columns) -> TemplateError {
        Template::parse(text, columns).unwrap_err()
    }

    /// What `sh` reads back from `word`.
    fn sh_echo(word: &str) -> Vec<u8> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {word}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{word}: {out:?}");
        out.stdout
    }

    #[test]
    fn shell_quote_leaves_safe_strings_alone() {
        assert_eq!(shell_quote("abc-1.2_x/y"), "abc-1.2_x/y");
        assert!(matches!(shell_quote("a=b:c@d%e+f,g"), Cow::Borrowed(_)));
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("~"), "'~'");
    }

    #[test]
    fn parallel_quote_matches_gnu_parallel_20221122() {
        // Printed by `parallel --dry-run echo {} ::: VALUE`.
        for (v, q) in [
            ("a b", "'a b'"),
            ("c'd", "'c'\"'\"'d'"),
            ("$x", "'$x'"),
            ("e=f", "'e=f'"),
            ("a:b", "'a:b'"),
            ("a/b", "a/b"),
            ("+x", "+x"),
            ("é", "'é'"),
            ("", "''"),
            ("'", "\"'\""),
        ] {
            assert_eq!(parallel_quote(v), q, "{v:?}");
            if !v.is_empty() {
                assert_eq!(sh_echo(&parallel_quote(v)), v.as_bytes(), "{v:?}");
            }
        }
        let c = cols(&[None]);
        let render = |text: &str, v: &str| {
            Template::parse_as_parallel(text, &c)
                .unwrap()
                .render_values(&[v.into()], &CTX)
        };
        assert_eq!(render("echo \"{}\"", "e=f"), "echo \"'e=f'\"");
        // Parallel has no escapes: `\{}` is `\` and the value.
        assert_eq!(render("echo \\{} ${}", "a b"), "echo \\'a b' $'a b'");
        assert_eq!(render("echo ${HOME}{}", "a"), "echo ${HOME}a");
        // A placeholder in the first word: the value is the command, nothing is quoted.
        assert_eq!(render("{} x {}", "echo a"), "echo a x echo a");
        assert_eq!(render("my_{} 'a b'", "x y"), "my_x y 'a b'");
        assert_eq!(render("V={} echo {}", "a b"), "V='a b' echo 'a b'");
    }

    #[test]
    fn shell_quote_round_trips_through_sh() {
        let nasty = [
            "",
            "plain",
            "two words",
            "it's",
            "'",
            "''",
            "\"double\"",
            "new\nline",
            "$HOME ${PATH} $(id) `id`",
            "back\\slash\\",
            "tab\there",
            "glob * ? [a]",
            "~user",
            "semi;colon&amp|pipe>redir<",
            "é日本語🚀",
            "-n",
            "!history",
            "#comment",
            "{} {1}",
        ];
        for s in nasty {
            assert_eq!(sh_echo(&shell_quote(s)), s.as_bytes(), "{s:?}");
        }
    }

    #[test]
    fn rendered_commands_pass_values_unchanged_to_sh() {
        let columns = cols(&[Some("a"), Some("b")]);
        let t = Template::parse("printf '%s|' {a} {2} {} {host} {slot} {seq}", &columns).unwrap();
        let values = vec!["x 'y' $z".to_owned(), "line\nbreak\\".to_owned()];
        let cmd = t.render_values(&values, &CTX);
        let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "x 'y' $z|line\nbreak\\|x 'y' $z|line\nbreak\\|web-01|2|7|"
        );
    }

    #[test]
    fn placeholders_render() {
        let c = stream_columns();
        let v = ["ch 1", "master", "x"];
        assert_eq!(render("run {channel} {2}", &c, &v), "run 'ch 1' master");
        assert_eq!(render("run {}", &c, &v), "run 'ch 1' master x");
        assert_eq!(render("run {==}", &c, &v), "run ch 1 master x");
        assert_eq!(
            render("{=channel=}/{=1=}/{=host=}", &c, &v),
            "ch 1/ch 1/web-01"
        );
        assert_eq!(
            render("h={host} s={slot} n={seq} {3}", &c, &v),
            "h=web-01 s=2 n=7 x"
        );
        assert_eq!(render("{role}{role}", &c, &v), "mastermaster");
    }

    #[test]
    fn render_uses_job_values() {
        let columns = Arc::new(cols(&[None]));
        let t = Template::parse("echo {1}", &columns).unwrap();
        let job = Job::new(1, vec!["a b".into()], Arc::clone(&columns));
        assert_eq!(t.render(&job, &CTX), "echo 'a b'");
    }

    #[test]
    fn shell_syntax_is_not_a_placeholder() {
        let c = cols(&[Some("x")]);
        let v = ["V"];
        let keep = [
            "echo ${x} $(date) {a,b} {1..3} {x }",
            "f() { echo hi; }; f",
            "awk '{print $1}'",
            "echo {=not a raw",
            "{-x} {1a}",
        ];
        for text in keep {
            let t = Template::parse(text, &c).unwrap();
            assert!(t.appended_line(), "{text}");
            assert_eq!(t.render_values(&["V".into()], &CTX), format!("{text} V"));
        }
        // Backslash makes a literal placeholder for the shell to unescape.
        assert_eq!(
            render(r"find . -exec echo \{} \; {x}", &c, &v),
            r"find . -exec echo \{} \; V"
        );
        assert_eq!(render("echo ${x}{x}", &c, &v), "echo ${x}V");
    }

    #[test]
    fn appends_line_like_gnu_parallel() {
        let c = cols(&[None, None]);
        let t = Template::parse("gzip -9", &c).unwrap();
        assert!(t.appended_line());
        assert!(t.uses_job_values());
        assert_eq!(
            t.render_values(&["a b".into(), "c".into()], &CTX),
            "gzip -9 'a b' c"
        );
        assert_eq!(t.text(), "gzip -9");
        // Any placeholder, even a built-in one, suppresses the append, as {#} does in parallel.
        let t = Template::parse("echo {seq}", &c).unwrap();
        assert!(!t.appended_line());
        assert!(!t.uses_job_values());
        // No job source: nothing appended.
        let t = Template::parse("uptime", &Columns::none()).unwrap();
        assert!(!t.appended_line());
        assert_eq!(t.render_values(&[], &CTX), "uptime");
        assert_eq!(
            Template::parse("echo {host}", &Columns::none())
                .unwrap()
                .render_values(&[], &CTX),
            "echo web-01"
        );
    }

    #[test]
    fn placeholders_are_listed() {
        let c = stream_columns();
        let t = Template::parse("a {=role=} {host}", &c).unwrap();
        let got: Vec<_> = t.placeholders().cloned().collect();
        assert_eq!(
            got,
            [
                Placeholder {
                    kind: PlaceholderKind::Column(1),
                    raw: true,
                    modifier: Modifier::None,
                    span: Some(2..10)
                },
                Placeholder {
                    kind: PlaceholderKind::Host,
                    raw: false,
                    modifier: Modifier::None,
                    span: Some(11..17)
                },
            ]
        );
    }

    #[test]
    fn unknown_placeholder_names_column_and_known_names() {
        let e = error("run --ch {chanel} {role}", &stream_columns());
        assert_eq!((e.line(), e.column()), (1, 10));
        assert_eq!(e.span(), 9..17);
        assert_eq!(
            e.to_string(),
            "command template:1:10: unknown placeholder {chanel} (known: {}, {1}..{3}, {channel}, {role}, {host}, {slot}, {seq})"
        );
        let e = error("echo ok\n  é {nope}", &Columns::none());
        assert_eq!((e.line(), e.column()), (2, 5));
        assert_eq!(
            e.kind(),
            &TemplateErrorKind::Unknown {
                name: "nope".into(),
                known: vec!["{host}".into(), "{slot}".into(), "{seq}".into()]
            }
        );
        let e =
            Template::parse_named("plan.toml: master", "x {=zz=}", &stream_columns()).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("plan.toml: master:1:3: unknown placeholder {zz}"));
    }

    #[test]
    fn positions_are_checked() {
        let c = stream_columns();
        let e = error("echo {0}", &c);
        assert_eq!(e.kind(), &TemplateErrorKind::PositionZero);
        assert_eq!(e.column(), 6);
        let e = error("echo {1} {4}", &c);
        assert_eq!(
            e.kind(),
            &TemplateErrorKind::PositionOutOfRange {
                position: "4".into(),
                count: 3
            }
        );
        assert_eq!(e.column(), 10);
        let e = error("echo {99999999999999999999999}", &c);
        assert!(matches!(
            e.kind(),
            TemplateErrorKind::PositionOutOfRange { .. }
        ));
    }

    #[test]
    fn job_placeholders_need_a_job_source() {
        for (text, col) in [("echo {}", 6), ("echo {host} {=1=}", 13), ("{==}", 1)] {
            let e = error(text, &Columns::none());
            assert!(
                matches!(e.kind(), TemplateErrorKind::NoJobValues { .. }),
                "{text}"
            );
            assert_eq!(e.column(), col, "{text}");
        }
    }

    #[test]
    fn builtin_named_column_is_ambiguous() {
        let c = cols(&[Some("name"), Some("host")]);
        let e = error("ping {host}", &c);
        assert_eq!(
            e.kind(),
            &TemplateErrorKind::Ambiguous {
                name: "host".into(),
                position: 2
            }
        );
        assert_eq!(e.column(), 6);
        // Position still reaches the column.
        assert_eq!(render("ping {2}", &c, &["n", "h"]), "ping h");
    }

    #[test]
    fn gnu_parallel_replacement_strings_render_as_parallel_does() {
        let c = cols(&[None, None]);
        let v = ["/a/b/c.tar.gz", "x y/z.q"];
        assert_eq!(
            render("{1} {1.} {1/} {1//} {1/.}", &c, &v),
            "/a/b/c.tar.gz /a/b/c.tar c.tar.gz /a/b c.tar"
        );
        assert_eq!(render("{-1} {-2/}", &c, &v), "'x y/z.q' c.tar.gz");
        assert_eq!(render("{#} {%}", &c, &v), "7 2");
        // Without a position the edit applies to every value of the job.
        assert_eq!(render("{.} | {/.}", &c, &v), "/a/b/c.tar 'x y/z' | c.tar z");
        assert_eq!(render("{=-1=}", &c, &v), "x y/z.q");
    }

    #[test]
    fn path_edits_match_gnu_parallel_20221122() {
        // Expected values printed by `parallel echo '[{.}] [{/}] [{//}] [{/.}]' ::: VALUE`.
        let cases = [
            ("a.b", "a", "a.b", ".", "a"),
            (".bashrc", "", ".bashrc", ".", ""),
            ("a/b.c/d", "a/b.c/d", "d", "a/b.c", "d"),
            ("/x", "/x", "x", "/", "x"),
            ("a", "a", "a", ".", "a"),
            ("./a", "./a", "a", ".", "a"),
            ("a/", "a/", "", ".", ""),
            ("/a/b/", "/a/b/", "", "/a", ""),
            ("a//b", "a//b", "b", "a", "b"),
            ("", "", "", ".", ""),
            ("/", "/", "", "/", ""),
        ];
        for (v, dot, base, dir, base_dot) in cases {
            assert_eq!(Modifier::NoExtension.apply(v), dot, "{{.}} {v:?}");
            assert_eq!(Modifier::Basename.apply(v), base, "{{/}} {v:?}");
            assert_eq!(Modifier::Dirname.apply(v), dir, "{{//}} {v:?}");
            assert_eq!(
                Modifier::BasenameNoExtension.apply(v),
                base_dot,
                "{{/.}} {v:?}"
            );
        }
        assert_eq!(Modifier::Basename.apply("a\nb/c\nd/e"), "a\nc\nd/e");
    }

    #[test]
    fn gnu_tokens_that_are_not_understood_are_errors_at_their_column() {
        let c = cols(&[None]);
        for (text, column) in [
            ("echo {1#}", 6),
            ("echo x {-1%}", 8),
            ("echo {2.}", 6),
            ("echo {-2}", 6),
            ("echo {0/}", 6),
            ("a {= s/a/b/ =} x", 3),
            ("a {1= $_ =}", 3),
        ] {
            let e = error(text, &c);
            assert_eq!(e.column(), column, "{text}");
            assert!(Diagnostic::help(&e).is_some(), "{text}");
        }
        let e = error("echo {= s/a/b/ =} x", &c);
        assert_eq!(e.span(), 5..17);
        assert!(Diagnostic::help(&e).unwrap().to_string().contains("perl"));
        // Forms outside parallel's grammar stay text, as parallel keeps them.
        for text in ["{..}", "{+/}", "{1..3}", "{-}", "{/x}"] {
            assert!(Template::parse(text, &c).unwrap().appended_line(), "{text}");
        }
        // {#} and {%} need no job source.
        assert_eq!(
            Template::parse("n={#} s={%}", &Columns::none())
                .unwrap()
                .render_values(&[], &CTX),
            "n=7 s=2"
        );
    }

    #[test]
    fn empty_template() {
        for text in ["", "  \n\t"] {
            let e = error(text, &stream_columns());
            assert_eq!(e.kind(), &TemplateErrorKind::Empty);
            assert_eq!((e.line(), e.column()), (1, 1));
        }
    }

    #[test]
    fn error_renders_with_caret() {
        let e = error("run {chanel}", &stream_columns());
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &e)
            .unwrap();
        assert!(out.contains("run {chanel}"), "{out}");
        assert!(out.contains("unknown placeholder"), "{out}");
        assert!(
            out.contains("sortie::template::unknown_placeholder"),
            "{out}"
        );
    }

    #[test]
    fn never_panics_on_noise() {
        let alphabet = [
            "{", "}", "=", "$", "\\", "1", "0", "a", "host", " ", "é", "#", "/", ".",
        ];
        let columns = stream_columns();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for _ in 0..(state % 16) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            match Template::parse(&text, &columns) {
                Ok(t) => {
                    let _ = t.render_values(&["a".into()], &CTX);
                }
                Err(e) => assert!(e.span().end <= text.len(), "{text:?}"),
            }
        }
    }
}
