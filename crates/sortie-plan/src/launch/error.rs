//! Errors of plan loading, validation and placement.
//!
//! Owns [`PlanError`]: every problem a user can cause in a plan file, a data set or a `--set`
//! option, located by file, 1-based line and column, with a miette span into the text. It does
//! not decide how errors are printed (the CLI renders them with miette).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

use crate::csv::CsvError;
use crate::position::line_col;

/// Anything that makes a plan unusable, found before any host is contacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A problem located in the plan file (or in a `--set` option's text).
    #[error("{0}")]
    Located(Box<Located>),
    /// A problem located in a CSV data set (bad syntax, or a row that violates a constraint).
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// A file (the plan, a data set) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// A located problem: file (or option), line, column, message, label and help.
#[derive(Debug, Clone)]
pub struct Located {
    code: &'static str,
    message: String,
    file: String,
    line: usize,
    column: usize,
    span: Range<usize>,
    src: NamedSource<Arc<str>>,
    label: String,
    help: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl PlanError {
    /// A stable code such as `sortie::plan::unknown_role` (`sortie::plan::csv` for data-set
    /// errors, `sortie::plan::io` for unreadable files).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Located(l) => l.code,
            Self::Csv(_) => "sortie::plan::csv",
            Self::Io { .. } => "sortie::plan::io",
        }
    }

    /// The file (or `--set KEY=VALUE` option) the error points into.
    pub fn file(&self) -> String {
        match self {
            Self::Located(l) => l.file.clone(),
            Self::Csv(e) => e.file().to_owned(),
            Self::Io { path, .. } => path.display().to_string(),
        }
    }

    /// 1-based line (0 for I/O errors).
    pub fn line(&self) -> usize {
        match self {
            Self::Located(l) => l.line,
            Self::Csv(e) => e.line(),
            Self::Io { .. } => 0,
        }
    }

    /// 1-based column in characters (0 for I/O errors).
    pub fn column(&self) -> usize {
        match self {
            Self::Located(l) => l.column,
            Self::Csv(e) => e.column(),
            Self::Io { .. } => 0,
        }
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> String {
        match self {
            Self::Located(l) => l.message.clone(),
            Self::Csv(e) => e.kind().to_string(),
            Self::Io { source, .. } => source.to_string(),
        }
    }

    /// Byte range of the offending text in the file (or option) it names.
    pub fn span(&self) -> Option<Range<usize>> {
        match self {
            Self::Located(l) => Some(l.span.clone()),
            Self::Csv(e) => Some(e.span()),
            Self::Io { .. } => None,
        }
    }
}

impl Diagnostic for PlanError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self {
            Self::Csv(e) => e.code(),
            _ => Some(Box::new(PlanError::code(self))),
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self {
            Self::Located(l) => l
                .help
                .as_ref()
                .map(|h| Box::new(h) as Box<dyn fmt::Display>),
            Self::Csv(e) => e.help(),
            Self::Io { .. } => Some(Box::new(
                "check the path; relative paths are relative to the plan file",
            )),
        }
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        match self {
            Self::Located(l) => Some(&l.src),
            Self::Csv(e) => e.source_code(),
            Self::Io { .. } => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self {
            Self::Located(l) => Some(Box::new(std::iter::once(
                LabeledSpan::new_primary_with_span(
                    Some(l.label.clone()),
                    SourceSpan::new(l.span.start.into(), l.span.len().max(1)),
                ),
            ))),
            Self::Csv(e) => e.labels(),
            Self::Io { .. } => None,
        }
    }
}

/// A text errors can point into: the plan file (after `--set` edits) or an option value.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// Name shown in errors (the plan path as given, or `--set KEY=VALUE`).
    pub name: String,
    /// The whole text.
    pub text: Arc<str>,
}

impl Source {
    pub(crate) fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// An error at byte range `span` of this text.
    pub(crate) fn error(
        &self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> PlanError {
        let start = span.start.min(self.text.len());
        let end = span.end.clamp(start, self.text.len());
        let (line, column) = line_col(&self.text, start);
        PlanError::Located(Box::new(Located {
            code,
            message: message.into(),
            file: self.name.clone(),
            line,
            column,
            span: start..end,
            src: NamedSource::new(self.name.clone(), Arc::clone(&self.text)),
            label: label.into(),
            help,
        }))
    }
}

impl PlanError {
    /// The same error re-pointed at `span` of `src` (used to attribute an error in text that
    /// a `--set` option wrote to that option).
    pub(crate) fn relocate(self, src: &Source, span: Range<usize>) -> PlanError {
        match self {
            PlanError::Located(l) => {
                let Located {
                    code,
                    message,
                    label,
                    help,
                    ..
                } = *l;
                src.error(code, span, message, label, help)
            }
            other => other,
        }
    }
}
