//! Error types of the crate.
//!
//! Owns [`ParseError`] (a located syntax or value error in some user input: a `-H` value, a
//! host file, an inventory, an ssh_config file) and [`InventoryError`] (everything selection can
//! fail with). Rendering for people is left to the CLI (miette); this module only carries the
//! facts: where, what, and what to do.

use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// Where a piece of parsed text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk (host file, inventory, ssh_config).
    File(PathBuf),
    /// A command-line option value, e.g. `-H` or `-x`.
    Option(String),
    /// Text from somewhere else (a group command's output, a test, a fuzzer).
    Other(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Option(o) => write!(f, "{o}"),
            Origin::Other(o) => write!(f, "{o}"),
        }
    }
}

/// A located error in user input, with 1-based line and column and a miette span.
///
/// Displays as `FILE:LINE:COL: message` for files, and as
/// `OPTION "TEXT", column COL: message` for option values.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{}", self.render())]
pub struct ParseError {
    /// Where the text came from.
    pub origin: Origin,
    /// 1-based line number within the source text.
    pub line: usize,
    /// 1-based column (in characters) within that line.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[help]
    pub help: Option<String>,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

impl ParseError {
    /// Builds an error for `source` (the whole text that was parsed) pointing at the byte range
    /// `offset..offset+len`. Offsets outside the text are clamped, so no caller can make this
    /// panic.
    pub fn new(
        origin: Origin,
        source: &str,
        offset: usize,
        len: usize,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let mut end = offset.saturating_add(len).min(source.len());
        while !source.is_char_boundary(end) {
            end += 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = source[line_start..offset].chars().count() + 1;
        ParseError {
            src: NamedSource::new(origin.to_string(), source.to_string()),
            span: SourceSpan::new(offset.into(), end - offset),
            origin,
            line,
            column,
            message: message.into(),
            help,
        }
    }

    /// Byte range of the offending text within the parsed source.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.span.offset()..self.span.offset() + self.span.len()
    }

    /// Re-labels an error produced by a `&str` parser with the place the text came from, and
    /// shifts it to where that text sits inside a larger `source` (e.g. a line inside a file).
    pub(crate) fn relocate(self, origin: Origin, source: &str, base: usize) -> Self {
        let span = self.span();
        ParseError::new(
            origin,
            source,
            base + span.start,
            span.len(),
            self.message,
            self.help,
        )
    }

    fn render(&self) -> String {
        match &self.origin {
            Origin::File(p) => format!(
                "{}:{}:{}: {}",
                p.display(),
                self.line,
                self.column,
                self.message
            ),
            Origin::Option(o) => format!(
                "{o} {:?}, column {}: {}",
                self.src.inner(),
                self.column,
                self.message
            ),
            Origin::Other(o) => format!("{o}:{}:{}: {}", self.line, self.column, self.message),
        }
    }
}

/// Everything host selection can fail with.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum InventoryError {
    /// Bad syntax or value in a host expression, host file, inventory or ssh_config.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Parse(Box<ParseError>),

    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(help("check that the file exists and is readable"))]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// OpenSSH refuses config files writable by others; so does sortie.
    #[error("bad owner or permissions on {}", path.display())]
    #[diagnostic(help(
        "ssh_config files must be owned by you or root and not writable by group or others (chmod go-w)"
    ))]
    BadPermissions {
        /// The file.
        path: PathBuf,
    },

    /// `-g NAME` named a group the inventory does not define.
    #[error("unknown group `{name}`; known groups: {}", if known.is_empty() { "(none)".to_string() } else { known.join(", ") })]
    #[diagnostic(help("define [groups.{name}] in the inventory or pick one of the known groups"))]
    UnknownGroup {
        /// The name asked for.
        name: String,
        /// Groups the inventory defines, in file order.
        known: Vec<String>,
    },

    /// `-g` was used but there is no inventory.
    #[error("-g {name} needs an inventory, but none was given and ./sortie.toml does not exist")]
    #[diagnostic(help("pass -i FILE or create sortie.toml"))]
    NoInventory {
        /// The group asked for.
        name: String,
    },

    /// A group's `command` could not be started or failed.
    #[error("group `{group}`: command failed ({status}): {command}{}", if stderr.is_empty() { String::new() } else { format!("\nstderr: {stderr}") })]
    #[diagnostic(help("run the command by hand to see what is wrong; it is run with `sh -c`"))]
    GroupCommand {
        /// The group.
        group: String,
        /// The command line.
        command: String,
        /// Exit status or spawn error.
        status: String,
        /// The end of the command's standard error.
        stderr: String,
    },

    /// Nothing to select.
    #[error("no hosts selected")]
    #[diagnostic(help(
        "use -H HOSTS or -g GROUP, or write an inventory (sortie.toml or -i FILE)"
    ))]
    NoHosts,

    /// Everything that was selected was excluded again.
    #[error("all selected hosts were excluded by -x")]
    #[diagnostic(help("check the -x expression"))]
    AllExcluded,

    /// A host expression expands to too many hosts.
    #[error("host expression expands to more than {limit} hosts")]
    #[diagnostic(help("split the selection or check the ranges"))]
    TooManyHosts {
        /// The limit.
        limit: usize,
    },

    /// Host files include each other too deeply (probably a cycle).
    #[error("host file {} is nested too deeply (more than {depth} levels of ^FILE); is there a cycle?", path.display())]
    HostFileDepth {
        /// The file that would exceed the limit.
        path: PathBuf,
        /// The limit.
        depth: usize,
    },

    /// A setting could not be turned into a value for one host (e.g. an unknown %-token).
    #[error("{host}: {message} (from {origin})")]
    #[diagnostic(help("{help}"))]
    Resolve {
        /// The host being resolved.
        host: String,
        /// Where the offending setting was written (file:line:col, or an option).
        origin: String,
        /// What is wrong.
        message: String,
        /// What to do.
        help: String,
    },

    /// `resolve_one` was given an expression that is not exactly one host.
    #[error("expected exactly one host, `{expr}` gives {count}")]
    NotOneHost {
        /// The expression.
        expr: String,
        /// How many hosts it expands to.
        count: usize,
    },
}

impl From<ParseError> for InventoryError {
    fn from(e: ParseError) -> Self {
        InventoryError::Parse(Box::new(e))
    }
}
