//! A strict CSV reader (RFC 4180) whose errors point at the exact line and column.
//!
//! This module owns turning the bytes of a CSV file into a header and rows of strings. It does no
//! I/O (callers read the file) and gives the values no meaning (that is [`crate::jobs`]' job).
//!
//! # Why not the `csv` crate
//!
//! The `csv` crate is excellent for throughput but deliberately lenient: a quote inside an
//! unquoted field, text after a closing quote or an unterminated quote are accepted and folded
//! into the value, and the positions it does report are not line/column pairs we can point a
//! caret at. sortie refuses bad input before contacting any host, with a message naming the place,
//! so this small hand-written reader is stricter and reports file:line:column for every error.
//!
//! # Format accepted
//!
//! - The first record is the header; it names the columns. Names must be non-empty and unique.
//! - Fields are separated by `,`; records end with `\n` or `\r\n` (the last one may lack it).
//! - A field is either unquoted (no `"`, `,`, `\r` or `\n` in it) or enclosed in double quotes, in
//!   which case it may contain `,`, line breaks and doubled quotes (`""` stands for `"`).
//! - Every record has as many fields as the header.
//! - A completely empty line is skipped (so a stray blank line at the end is harmless); write
//!   `""` for a row whose only value is empty.
//! - A UTF-8 byte order mark at the start is ignored (spreadsheet programs write one). The text
//!   must be UTF-8.
//!
//! Lines and columns in errors are 1-based; the column counts characters, not bytes.
//!
//! [`parse_str`] and [`parse_bytes`] never panic on any input and are the entry points for
//! fuzzing.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, SourceCode};

use crate::position::{char_len_at, line_col, Located};

/// What is wrong with a CSV file (see [`CsvError`] for where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsvErrorKind {
    /// The file holds no header line.
    #[error("the file is empty; its first line must be a header naming the columns")]
    Empty,
    /// A row has a different number of fields than the header.
    #[error("this row has {found} field(s) but the header has {expected}")]
    RaggedRow {
        /// Number of columns in the header.
        expected: usize,
        /// Number of fields found in the row.
        found: usize,
    },
    /// A `"` appears inside a field that does not start with a quote.
    #[error("quote character inside an unquoted field")]
    QuoteInUnquotedField,
    /// A quoted field is not closed before the end of the file.
    #[error("quoted field is never closed")]
    UnterminatedQuote,
    /// Something other than `,` or a line break follows a closing quote.
    #[error("unexpected {found:?} after the closing quote of a field")]
    TextAfterQuote {
        /// The character found.
        found: char,
    },
    /// A carriage return that is not part of a `\r\n` line ending.
    #[error("carriage return (\\r) that is not followed by a line feed")]
    BareCarriageReturn,
    /// The file is not valid UTF-8.
    #[error("the file is not valid UTF-8")]
    InvalidUtf8,
    /// A header field is empty.
    #[error("column {index} of the header has an empty name")]
    EmptyHeaderName {
        /// 1-based field number in the header.
        index: usize,
    },
    /// Two header fields have the same name.
    #[error("duplicate column name {name:?} (also column {first_index} of the header)")]
    DuplicateHeaderName {
        /// The repeated name.
        name: String,
        /// 1-based field number of its first use.
        first_index: usize,
    },
    /// A value was rejected by the code using the table (see [`CsvTable::cell_error`]).
    #[error("invalid value in column {column:?}: {message}")]
    InvalidValue {
        /// Header name of the column.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
}

impl CsvErrorKind {
    fn help(&self) -> Option<String> {
        Some(match self {
            Self::Empty => "add a header line such as `name,region` followed by one line per job".into(),
            Self::RaggedRow { expected, .. } => format!(
                "every row needs exactly {expected} comma-separated field(s); quote a value that contains a comma, like \"a,b\""
            ),
            Self::QuoteInUnquotedField => {
                "enclose the whole field in double quotes and double the quotes inside it: \"say \"\"hi\"\"\"".into()
            }
            Self::UnterminatedQuote => {
                "add the closing double quote; a quote inside a quoted field is written twice (\"\")".into()
            }
            Self::TextAfterQuote { .. } => {
                "a quoted field must end right after its closing quote; put the whole value inside the quotes".into()
            }
            Self::BareCarriageReturn => "save the file with LF or CRLF line endings".into(),
            Self::InvalidUtf8 => "convert the file to UTF-8 (for example with `iconv -t UTF-8`)".into(),
            Self::EmptyHeaderName { .. } => "give every column a name in the header line".into(),
            Self::DuplicateHeaderName { .. } => "rename one of the columns so each name is unique".into(),
            Self::InvalidValue { .. } => return None,
        })
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Empty => "sortie::csv::empty",
            Self::RaggedRow { .. } => "sortie::csv::ragged_row",
            Self::QuoteInUnquotedField => "sortie::csv::quote_in_unquoted_field",
            Self::UnterminatedQuote => "sortie::csv::unterminated_quote",
            Self::TextAfterQuote { .. } => "sortie::csv::text_after_quote",
            Self::BareCarriageReturn => "sortie::csv::bare_carriage_return",
            Self::InvalidUtf8 => "sortie::csv::invalid_utf8",
            Self::EmptyHeaderName { .. } => "sortie::csv::empty_header_name",
            Self::DuplicateHeaderName { .. } => "sortie::csv::duplicate_header_name",
            Self::InvalidValue { .. } => "sortie::csv::invalid_value",
        }
    }
}

/// An error in a CSV file, with the file name, 1-based line and column, and a labelled span into
/// the file's text so [`miette`] renders it with a caret.
///
/// Displays as `FILE:LINE:COLUMN: message`.
#[derive(Debug, Clone)]
pub struct CsvError(Box<(CsvErrorKind, Located)>);

impl CsvError {
    fn new(
        kind: CsvErrorKind,
        file: &Arc<str>,
        source: &Arc<str>,
        offset: usize,
        len: usize,
        label: impl Into<String>,
    ) -> Self {
        let help = kind.help();
        let at = Located::new(
            kind.code(),
            file,
            source,
            offset..offset + len,
            false,
            kind.to_string(),
            label.into(),
            help,
        );
        Self(Box::new((kind, at)))
    }

    /// What is wrong.
    pub fn kind(&self) -> &CsvErrorKind {
        &self.0 .0
    }

    /// Where, with the message, label and help (the crate's one located-error type).
    pub fn located(&self) -> &Located {
        &self.0 .1
    }

    /// The file name given to the parser.
    pub fn file(&self) -> &str {
        self.located().file()
    }

    /// 1-based line of the error.
    pub fn line(&self) -> usize {
        self.located().line()
    }

    /// 1-based column (in characters) of the error.
    pub fn column(&self) -> usize {
        self.located().column()
    }

    /// Byte range in the file's text that the error label covers.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.located().span()
    }

    /// Replaces the help text (the "what to do" line), for [`CsvTable::cell_error`] users.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0 .1.help = Some(help.into());
        self
    }
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.located().fmt(f)
    }
}

impl std::error::Error for CsvError {}

impl Diagnostic for CsvError {
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

/// One data row of a [`CsvTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    line: usize,
    fields: Vec<String>,
    spans: Vec<(usize, usize)>,
}

impl CsvRecord {
    /// 1-based line on which the row starts.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The row's values, unquoted, in header order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The value of the 0-based column `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.fields.get(index).map(String::as_str)
    }

    /// Consumes the record and returns its values.
    pub fn into_fields(self) -> Vec<String> {
        self.fields
    }
}

/// A parsed CSV file: a header and zero or more rows with as many fields each.
///
/// The table keeps the file's text so that code giving meaning to the values can report a bad
/// value with a caret under it ([`CsvTable::cell_error`]).
#[derive(Debug, Clone)]
pub struct CsvTable {
    name: Arc<str>,
    source: Arc<str>,
    headers: Vec<String>,
    header_spans: Vec<(usize, usize)>,
    records: Vec<CsvRecord>,
}

impl CsvTable {
    /// The file name given to the parser.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column names from the header, in order.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// 0-based index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The data rows (the header is not included).
    pub fn records(&self) -> &[CsvRecord] {
        &self.records
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the file has a header but no data rows.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Consumes the table and returns the header and the rows.
    pub fn into_parts(self) -> (Vec<String>, Vec<CsvRecord>) {
        (self.headers, self.records)
    }

    /// Builds an error that points at the value in data row `record` (0-based index into
    /// [`records`](Self::records)) and column `column` (0-based), for code that gives the values a
    /// meaning and finds one invalid. Out-of-range indices point at the header instead of
    /// panicking. Add advice with [`CsvError::with_help`].
    pub fn cell_error(&self, record: usize, column: usize, message: impl Into<String>) -> CsvError {
        let message = message.into();
        let (start, end) = self
            .records
            .get(record)
            .and_then(|r| r.spans.get(column))
            .or_else(|| self.header_spans.get(column))
            .copied()
            .unwrap_or((0, 0));
        let column_name = self.headers.get(column).cloned().unwrap_or_default();
        CsvError::new(
            CsvErrorKind::InvalidValue {
                column: column_name,
                message: message.clone(),
            },
            &self.name,
            &self.source,
            start,
            (end - start).max(1),
            message,
        )
    }
}

/// Parses CSV text. `name` is the file name used in errors.
pub fn parse_str(name: &str, text: &str) -> Result<CsvTable, CsvError> {
    Parser::new(Arc::from(name), Arc::from(text)).parse()
}

/// Parses CSV bytes, reporting invalid UTF-8 at its line and column. `name` is the file name
/// used in errors.
pub fn parse_bytes(name: &str, bytes: &[u8]) -> Result<CsvTable, CsvError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_str(name, text),
        Err(e) => {
            let lossy: Arc<str> = Arc::from(String::from_utf8_lossy(bytes).into_owned());
            // Everything before the first bad byte is valid, so offsets up to it are unchanged.
            Err(CsvError::new(
                CsvErrorKind::InvalidUtf8,
                &Arc::from(name),
                &lossy,
                e.valid_up_to(),
                1,
                "invalid UTF-8 here",
            ))
        }
    }
}

/// A field as found in the text: its value and byte range.
struct RawField {
    value: String,
    start: usize,
    end: usize,
}

/// A record as found in the text.
struct RawRecord {
    start: usize,
    end: usize,
    fields: Vec<RawField>,
}

struct Parser {
    name: Arc<str>,
    src: Arc<str>,
    pos: usize,
    /// Line number at `line_at`, to compute record lines incrementally.
    line: usize,
    line_at: usize,
}

impl Parser {
    fn new(name: Arc<str>, src: Arc<str>) -> Self {
        let pos = if src.starts_with('\u{feff}') { 3 } else { 0 };
        Self {
            name,
            src,
            pos,
            line: 1,
            line_at: 0,
        }
    }

    fn error(&self, kind: CsvErrorKind, offset: usize, label: impl Into<String>) -> CsvError {
        let len = char_len_at(&self.src, offset);
        CsvError::new(kind, &self.name, &self.src, offset, len, label)
    }

    fn line_of(&mut self, offset: usize) -> usize {
        let bytes = self.src.as_bytes();
        self.line += bytes[self.line_at..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line_at = offset;
        self.line
    }

    fn parse(mut self) -> Result<CsvTable, CsvError> {
        let header = match self.record()? {
            Some(h) => h,
            None => {
                return Err(self.error(CsvErrorKind::Empty, self.src.len(), "no header line"));
            }
        };
        let mut headers: Vec<String> = Vec::with_capacity(header.fields.len());
        let mut header_spans = Vec::with_capacity(header.fields.len());
        for (i, field) in header.fields.into_iter().enumerate() {
            if field.value.is_empty() {
                return Err(self.error(
                    CsvErrorKind::EmptyHeaderName { index: i + 1 },
                    field.start,
                    "empty column name",
                ));
            }
            if let Some(first) = headers.iter().position(|h| *h == field.value) {
                let kind = CsvErrorKind::DuplicateHeaderName {
                    name: field.value.clone(),
                    first_index: first + 1,
                };
                let len = (field.end - field.start).max(1);
                return Err(CsvError::new(
                    kind,
                    &self.name,
                    &self.src,
                    field.start,
                    len,
                    "this name is already used",
                ));
            }
            header_spans.push((field.start, field.end));
            headers.push(field.value);
        }
        let expected = headers.len();
        let mut records = Vec::new();
        while let Some(raw) = self.record()? {
            let found = raw.fields.len();
            if found != expected {
                let (offset, label) = if found > expected {
                    (
                        raw.fields[expected].start,
                        format!("expected {expected} field(s), found {found}"),
                    )
                } else {
                    (
                        raw.end,
                        format!("expected {expected} field(s), found {found}"),
                    )
                };
                let (line, column) = line_col(&self.src, offset);
                let len = (raw.end - raw.start).max(1);
                let mut err = CsvError::new(
                    CsvErrorKind::RaggedRow { expected, found },
                    &self.name,
                    &self.src,
                    raw.start,
                    len,
                    label,
                );
                // Label the whole row, but report the position where the row goes wrong.
                err.0 .1.line = line;
                err.0 .1.column = column;
                return Err(err);
            }
            let line = self.line_of(raw.start);
            let spans = raw.fields.iter().map(|f| (f.start, f.end)).collect();
            let fields = raw.fields.into_iter().map(|f| f.value).collect();
            records.push(CsvRecord {
                line,
                fields,
                spans,
            });
        }
        Ok(CsvTable {
            name: self.name,
            source: self.src,
            headers,
            header_spans,
            records,
        })
    }

    /// Reads the next record, skipping empty lines; `None` at the end of the text.
    fn record(&mut self) -> Result<Option<RawRecord>, CsvError> {
        let src = Arc::clone(&self.src);
        let bytes = src.as_bytes();
        loop {
            match bytes.get(self.pos..) {
                None | Some([]) => return Ok(None),
                Some([b'\n', ..]) => self.pos += 1,
                Some([b'\r', b'\n', ..]) => self.pos += 2,
                Some(_) => break,
            }
        }
        let start = self.pos;
        let mut fields = Vec::new();
        loop {
            fields.push(self.field()?);
            // `field` stops at a delimiter, a line ending or the end of the text.
            match bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'\n') => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(Some(RawRecord { start, end, fields }));
                }
                Some(b'\r') => {
                    // `field` only stops at a `\r` followed by `\n`.
                    let end = self.pos;
                    self.pos += 2;
                    return Ok(Some(RawRecord { start, end, fields }));
                }
                _ => {
                    return Ok(Some(RawRecord {
                        start,
                        end: self.pos,
                        fields,
                    }))
                }
            }
        }
    }

    /// Reads one field and leaves `pos` on the byte after it.
    fn field(&mut self) -> Result<RawField, CsvError> {
        let src = Arc::clone(&self.src);
        let bytes = src.as_bytes();
        let start = self.pos;
        if bytes.get(start) == Some(&b'"') {
            let mut value = String::new();
            let mut pos = start + 1;
            loop {
                let Some(rel) = bytes[pos..].iter().position(|&b| b == b'"') else {
                    return Err(self.error(
                        CsvErrorKind::UnterminatedQuote,
                        start,
                        "this quote is never closed",
                    ));
                };
                value.push_str(&src[pos..pos + rel]);
                pos += rel + 1;
                if bytes.get(pos) == Some(&b'"') {
                    value.push('"');
                    pos += 1;
                } else {
                    break;
                }
            }
            match bytes.get(pos..) {
                None | Some([]) | Some([b',' | b'\n', ..]) | Some([b'\r', b'\n', ..]) => {}
                Some([b'\r', ..]) => {
                    return Err(self.error(CsvErrorKind::BareCarriageReturn, pos, "bare \\r"));
                }
                Some(_) => {
                    let found = src[pos..].chars().next().unwrap_or('?');
                    return Err(self.error(
                        CsvErrorKind::TextAfterQuote { found },
                        pos,
                        "expected `,` or the end of the line here",
                    ));
                }
            }
            self.pos = pos;
            return Ok(RawField {
                value,
                start,
                end: pos,
            });
        }
        let mut pos = start;
        while let Some(&b) = bytes.get(pos) {
            match b {
                b',' | b'\n' => break,
                b'\r' if bytes.get(pos + 1) == Some(&b'\n') => break,
                b'\r' => {
                    return Err(self.error(CsvErrorKind::BareCarriageReturn, pos, "bare \\r"));
                }
                b'"' => {
                    return Err(self.error(
                        CsvErrorKind::QuoteInUnquotedField,
                        pos,
                        "quote in an unquoted field",
                    ));
                }
                _ => pos += 1,
            }
        }
        self.pos = pos;
        Ok(RawField {
            value: src[start..pos].to_owned(),
            start,
            end: pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> CsvTable {
        parse_str("t.csv", text).unwrap()
    }

    fn err(text: &str) -> CsvError {
        parse_str("t.csv", text).unwrap_err()
    }

    fn rows(t: &CsvTable) -> Vec<Vec<&str>> {
        t.records()
            .iter()
            .map(|r| r.fields().iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn reads_header_and_rows_with_lf_and_crlf() {
        let t = table("name,region\r\nmaster-1,us-west-2\nviewer-1,eu-west-1");
        assert_eq!(t.headers(), ["name", "region"]);
        assert_eq!(
            rows(&t),
            [["master-1", "us-west-2"], ["viewer-1", "eu-west-1"]]
        );
        assert_eq!(t.records()[0].line(), 2);
        assert_eq!(t.records()[1].line(), 3);
        assert_eq!(t.column_index("region"), Some(1));
        assert_eq!(t.column_index("nope"), None);
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_newlines() {
        let t = table("a,b\n\"x,y\",\"say \"\"hi\"\"\"\n\"multi\r\nline\",\"\"\nlast,\"\"\"\"\n");
        assert_eq!(
            rows(&t),
            [
                vec!["x,y", "say \"hi\""],
                vec!["multi\r\nline", ""],
                vec!["last", "\""]
            ]
        );
        // The third row starts after the two-line quoted field.
        assert_eq!(t.records()[2].line(), 5);
    }

    #[test]
    fn empty_fields_and_trailing_comma() {
        let t = table("a,b,c\n,,\n1,,\n");
        assert_eq!(rows(&t), [["", "", ""], ["1", "", ""]]);
    }

    #[test]
    fn blank_lines_are_skipped_and_bom_ignored() {
        let t = table("\u{feff}a\n\n1\r\n\r\n\"\"\n\n");
        assert_eq!(t.headers(), ["a"]);
        assert_eq!(rows(&t), [vec!["1"], vec![""]]);
        assert_eq!(t.records()[1].line(), 5);
    }

    #[test]
    fn header_only_is_an_empty_table() {
        let t = table("a,b\n");
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn empty_file() {
        for text in ["", "\n\n", "\u{feff}", "\r\n"] {
            let e = err(text);
            assert_eq!(e.kind(), &CsvErrorKind::Empty, "{text:?}");
        }
        let e = err("");
        assert_eq!((e.line(), e.column()), (1, 1));
        assert!(e.to_string().starts_with("t.csv:1:1: the file is empty"));
    }

    #[test]
    fn ragged_rows_name_expected_and_found() {
        let e = err("a,b,c\n1,2,3\n1,2,3,4\n");
        assert_eq!(
            e.kind(),
            &CsvErrorKind::RaggedRow {
                expected: 3,
                found: 4
            }
        );
        // Points at the first extra field.
        assert_eq!((e.line(), e.column()), (3, 7));
        assert_eq!(
            e.to_string(),
            "t.csv:3:7: this row has 4 field(s) but the header has 3"
        );

        let e = err("a,b,c\nxy,z\n");
        assert_eq!(
            e.kind(),
            &CsvErrorKind::RaggedRow {
                expected: 3,
                found: 2
            }
        );
        // Points at the end of the short row.
        assert_eq!((e.line(), e.column()), (2, 5));
    }

    #[test]
    fn quote_inside_unquoted_field() {
        let e = err("a,b\nok,ab\"c\n");
        assert_eq!(e.kind(), &CsvErrorKind::QuoteInUnquotedField);
        assert_eq!((e.line(), e.column()), (2, 6));
    }

    #[test]
    fn unterminated_quote_points_at_opening_quote() {
        let e = err("a,b\n1,2\n3,\"never\nclosed\n");
        assert_eq!(e.kind(), &CsvErrorKind::UnterminatedQuote);
        assert_eq!((e.line(), e.column()), (3, 3));
    }

    #[test]
    fn text_after_closing_quote() {
        let e = err("a,b\n\"x\"y,2\n");
        assert_eq!(e.kind(), &CsvErrorKind::TextAfterQuote { found: 'y' });
        assert_eq!((e.line(), e.column()), (2, 4));
        let e = err("a,b\n\"x\" ,2\n");
        assert_eq!(e.kind(), &CsvErrorKind::TextAfterQuote { found: ' ' });
    }

    #[test]
    fn bare_carriage_return() {
        let e = err("a,b\r1,2\n");
        assert_eq!(e.kind(), &CsvErrorKind::BareCarriageReturn);
        assert_eq!((e.line(), e.column()), (1, 4));
        let e = err("a\n\"x\"\ry\n");
        assert_eq!(e.kind(), &CsvErrorKind::BareCarriageReturn);
        assert_eq!((e.line(), e.column()), (2, 4));
    }

    #[test]
    fn invalid_utf8_position() {
        let e = parse_bytes("t.csv", b"a,b\n\xc3\xa9\xc3\xa9,\xff\n").unwrap_err();
        assert_eq!(e.kind(), &CsvErrorKind::InvalidUtf8);
        // "éé," is three characters, so the bad byte is in column 4.
        assert_eq!((e.line(), e.column()), (2, 4));
        assert_eq!(e.span(), 9..10);
        assert!(parse_bytes("t.csv", "a\né\n".as_bytes()).is_ok());
    }

    #[test]
    fn header_names_must_be_present_and_unique() {
        let e = err("a,,c\n1,2,3\n");
        assert_eq!(e.kind(), &CsvErrorKind::EmptyHeaderName { index: 2 });
        assert_eq!((e.line(), e.column()), (1, 3));
        let e = err("name,region,name\n");
        assert_eq!(
            e.kind(),
            &CsvErrorKind::DuplicateHeaderName {
                name: "name".into(),
                first_index: 1
            }
        );
        assert_eq!((e.line(), e.column()), (1, 13));
        assert_eq!(e.span(), 12..16);
    }

    #[test]
    fn cell_error_points_at_the_value() {
        let t = table("name,count\nx,1\ny,\"lots\"\n");
        let e = t
            .cell_error(1, 1, "not a number")
            .with_help("write a whole number");
        assert_eq!((e.line(), e.column()), (3, 3));
        assert_eq!(e.span(), 17..23);
        assert_eq!(
            e.to_string(),
            "t.csv:3:3: invalid value in column \"count\": not a number"
        );
        assert_eq!(
            Diagnostic::help(&e).map(|h| h.to_string()).as_deref(),
            Some("write a whole number")
        );
        // Out of range falls back without panicking.
        let e = t.cell_error(99, 99, "x");
        assert_eq!((e.line(), e.column()), (1, 1));
    }

    #[test]
    fn renders_with_caret_under_the_error() {
        let e = err("a,b\nok,ab\"c\n");
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &e)
            .unwrap();
        assert!(out.contains("t.csv:2:6"), "{out}");
        assert!(out.contains("quote in an unquoted field"), "{out}");
        assert!(out.contains("ok,ab\"c"), "{out}");
        assert!(
            out.contains("sortie::csv::quote_in_unquoted_field"),
            "{out}"
        );
    }

    #[test]
    fn never_panics_on_noise() {
        // Deterministic pseudo-random inputs over the characters that matter to the parser.
        let alphabet: &[&str] = &["a", ",", "\"", "\n", "\r", "é", "\u{feff}", " ", "\"\""];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            if let Err(e) = parse_str("f.csv", &text) {
                assert!(e.line() >= 1 && e.column() >= 1);
                assert!(e.span().end <= text.len() + 1, "{text:?} {e}");
            }
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let i = (state as usize) % bytes.len();
                bytes[i] = 0xff;
            }
            let _ = parse_bytes("f.csv", &bytes);
        }
    }
}
