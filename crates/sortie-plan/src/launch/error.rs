//! Errors of plan loading, validation and placement.
//!
//! Owns [`PlanError`]: every problem a user can cause in a plan file, a data set or a `--set`
//! option, located by file, 1-based line and column, with a miette span into the text (the
//! crate's one [`Located`] type, shared with CSV errors). It does
//! not decide how errors are printed (the CLI renders them with miette).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, SourceCode};

use crate::csv::CsvError;
pub use crate::position::Located;

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

impl PlanError {
    /// A stable code such as `sortie::plan::unknown_role` (`sortie::plan::csv` for data-set
    /// errors, `sortie::plan::io` for unreadable files).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Located(l) => l.code(),
            Self::Csv(_) => "sortie::plan::csv",
            Self::Io { .. } => "sortie::plan::io",
        }
    }

    /// The file (or `--set KEY=VALUE` option) the error points into.
    pub fn file(&self) -> String {
        match self {
            Self::Located(l) => l.file().to_owned(),
            Self::Csv(e) => e.file().to_owned(),
            Self::Io { path, .. } => path.display().to_string(),
        }
    }

    /// 1-based line (0 for I/O errors).
    pub fn line(&self) -> usize {
        match self {
            Self::Located(l) => l.line(),
            Self::Csv(e) => e.line(),
            Self::Io { .. } => 0,
        }
    }

    /// 1-based column in characters (0 for I/O errors).
    pub fn column(&self) -> usize {
        match self {
            Self::Located(l) => l.column(),
            Self::Csv(e) => e.column(),
            Self::Io { .. } => 0,
        }
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> String {
        match self {
            Self::Located(l) => l.message().to_owned(),
            Self::Csv(e) => e.kind().to_string(),
            Self::Io { source, .. } => source.to_string(),
        }
    }

    /// Byte range of the offending text in the file (or option) it names.
    pub fn span(&self) -> Option<Range<usize>> {
        match self {
            Self::Located(l) => Some(l.span()),
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
            Self::Located(l) => l.help(),
            Self::Csv(e) => e.help(),
            Self::Io { .. } => Some(Box::new(
                "check the path; relative paths are relative to the plan file",
            )),
        }
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        match self {
            Self::Located(l) => l.source_code(),
            Self::Csv(e) => e.source_code(),
            Self::Io { .. } => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self {
            Self::Located(l) => l.labels(),
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
        PlanError::Located(Box::new(Located::new(
            code,
            &Arc::from(self.name.as_str()),
            &self.text,
            start..end,
            true,
            message.into(),
            label.into(),
            help,
        )))
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
                    help,
                    ..
                } = *l.clone();
                src.error(code, span, message, l.label().to_owned(), help)
            }
            other => other,
        }
    }
}
