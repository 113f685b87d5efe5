//! Positions in a text and the one located-error type of this crate.
//!
//! Owns the one definition of "line" and "column" used by every error in this crate: lines are
//! separated by `\n` (a `\r` before it belongs to the line ending), and the column counts Unicode
//! scalar values from the start of the line, both starting at 1. [`Located`] is the problem at
//! such a place that plan errors ([`crate::launch::PlanError::Located`]) and CSV errors
//! ([`crate::CsvError`]) both carry: file, line, column, message, a labelled span for miette and
//! what to do.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

/// A problem at a place in a text: `FILE:LINE:COLUMN: message`, with a miette span and label,
/// a stable code and what to do.
#[derive(Debug, Clone)]
pub struct Located {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) file: Arc<str>,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) span: Range<usize>,
    label_span: SourceSpan,
    src: NamedSource<Arc<str>>,
    pub(crate) label: String,
    pub(crate) help: Option<String>,
}

impl Located {
    /// A problem at byte range `span` of `text`, named `file`. The label covers `span` (at
    /// least one character when `min_one`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        code: &'static str,
        file: &Arc<str>,
        text: &Arc<str>,
        span: Range<usize>,
        min_one: bool,
        message: String,
        label: String,
        help: Option<String>,
    ) -> Self {
        let (line, column) = line_col(text, span.start);
        let len = if min_one {
            span.len().max(1)
        } else {
            span.len()
        };
        Located {
            code,
            message,
            file: Arc::clone(file),
            line,
            column,
            label_span: SourceSpan::new(span.start.into(), len),
            span,
            src: NamedSource::new(&**file, Arc::clone(text)),
            label,
            help,
        }
    }

    /// A stable code such as `sortie::plan::unknown_role`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The file (or option) the problem is in.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is wrong, without the place.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte range of the offending text.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The label under the span.
    pub fn label(&self) -> &str {
        &self.label
    }
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

impl std::error::Error for Located {}

impl Diagnostic for Located {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.src)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(self.label.clone()), self.label_span),
        )))
    }
}

/// 1-based `(line, column)` of byte `offset` in `src`.
///
/// `offset` is clamped to the text and moved back to a character boundary, so this never panics.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Byte length of the character starting at `offset` (1 at the end of the text, so a label there
/// still shows a caret).
pub(crate) fn char_len_at(src: &str, offset: usize) -> usize {
    src.get(offset..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_unicode_columns() {
        let src = "ab\r\ncé,x\ny";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 1), (1, 2));
        // 'x' is after 'c', 'é' (2 bytes) and ','.
        let x = src.find('x').unwrap();
        assert_eq!(line_col(src, x), (2, 4));
        assert_eq!(line_col(src, src.len()), (3, 2));
        assert_eq!(line_col(src, 10_000), (3, 2));
    }
}
