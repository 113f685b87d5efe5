//! Parsing known_hosts text into [`Entry`] values and [`Warning`]s.
//!
//! Owns the line syntax of OpenSSH's sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT": optional marker
//! (`@cert-authority`, `@revoked`), host field, key type, base64 key, optional comment; `#`
//! comments and blank lines. A line that cannot be understood becomes a [`Warning`] naming file,
//! line and column, and is skipped, as OpenSSH skips it. Parsing never panics and does no I/O.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;

use crate::key::{blob_key_type, fingerprint_sha256};
use crate::pattern::HostMatcher;
use crate::Location;

/// What a known_hosts line says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Marker {
    /// A plain line: the host is trusted with this key.
    None,
    /// `@cert-authority`: the key is a CA that signs host certificates for matching hosts.
    /// Kept so callers can see it, but never used for plain key matching.
    CertAuthority,
    /// `@revoked`: the key must never be accepted for matching hosts.
    Revoked,
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    file: Arc<Path>,
    line: usize,
    marker: Marker,
    hosts: String,
    matcher: HostMatcher,
    algorithm: String,
    blob: Vec<u8>,
    comment: String,
}

impl Entry {
    /// The file this line came from (as given to [`crate::KnownHosts::load`] or
    /// [`crate::KnownHosts::parse_str`]).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The 1-based line number in [`Entry::file`].
    pub fn line(&self) -> usize {
        self.line
    }

    /// The line's marker.
    pub fn marker(&self) -> Marker {
        self.marker
    }

    /// The host field as written (a pattern list, or `|1|salt|hash` for hashed lines).
    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    /// True when the host field was hashed (`|1|...`).
    pub fn is_hashed(&self) -> bool {
        matches!(self.matcher, HostMatcher::Hashed { .. })
    }

    /// The key type name, e.g. `ssh-ed25519` (the same as the name inside [`Entry::blob`]).
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The public key in SSH wire format.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Whatever followed the key on the line, trimmed; often empty.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The key's fingerprint as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint_sha256(&self.blob)
    }

    /// True when this line's host field matches `lookup`, a name built by
    /// [`crate::lookup_name`] (`host`, or `[host]:port` for ports other than 22).
    /// Matching is case-insensitive, as in OpenSSH.
    pub fn matches_lookup(&self, lookup: &str) -> bool {
        self.matcher.matches(&lookup.to_ascii_lowercase())
    }

    /// Where this line is, with its key's type and fingerprint.
    pub fn location(&self) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line: self.line,
            algorithm: self.algorithm.clone(),
            fingerprint: self.fingerprint(),
        }
    }

    /// Matching against an already-lowercased lookup name.
    pub(crate) fn matches_lower(&self, lookup_lower: &str) -> bool {
        self.matcher.matches(lookup_lower)
    }

    /// The names this line's host field lists, when they are all literal (lowercase; no `*`,
    /// `?` or `!`, not hashed): then it matches exactly those lookups.
    pub(crate) fn literal_names(&self) -> Option<impl Iterator<Item = &str>> {
        self.matcher.literal_names()
    }
}

/// A known_hosts file or line that was skipped. Loading never fails; it collects these instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum Warning {
    /// A line that is not a valid known_hosts entry. OpenSSH ignores such lines too.
    #[error("{}:{line}:{column}: {problem}; line ignored", file.display())]
    #[diagnostic(
        code(sortie::known_hosts::bad_line),
        help(
            "fix the line, comment it out with '#', or delete it; \
             `ssh-keygen -R HOST -f FILE` removes every line for HOST"
        )
    )]
    BadLine {
        /// The file holding the line.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column (in characters) where the problem starts.
        column: usize,
        /// What is wrong.
        problem: LineProblem,
    },
    /// A file that exists but could not be read (a missing file is not a warning).
    #[error("cannot read known_hosts file {}: {message}", file.display())]
    #[diagnostic(
        code(sortie::known_hosts::unreadable),
        help("check the file's permissions, or stop listing it as a known_hosts file")
    )]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// The operating system's explanation.
        message: String,
    },
}

/// What is wrong with a skipped known_hosts line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// A word starting with `@` that is not `@cert-authority` or `@revoked`.
    #[error("unknown marker '{0}' (expected @cert-authority or @revoked)")]
    UnknownMarker(String),
    /// More than one marker on one line.
    #[error("only one marker is allowed per line")]
    MultipleMarkers,
    /// The line ends after the host field.
    #[error("missing key type after the host field")]
    MissingKeyType,
    /// The line ends after the key type.
    #[error("missing key data after key type '{0}'")]
    MissingKeyData(String),
    /// An SSH protocol 1 RSA key (`bits exponent modulus`), which OpenSSH no longer reads.
    #[error("SSH protocol 1 RSA key, not supported")]
    ProtocolOneKey,
    /// The key data is not base64.
    #[error("key data is not valid base64")]
    BadBase64,
    /// The decoded key does not start with a key type name.
    #[error("key data is not an SSH public key")]
    BadKeyBlob,
    /// The key data is of another type than the line says.
    #[error("line says key type '{line_says}' but the key data is of type '{blob_says}'")]
    KeyTypeMismatch {
        /// The key type field.
        line_says: String,
        /// The name inside the key data.
        blob_says: String,
    },
    /// A host field starting with `|` that is not a valid `|1|salt|hash`.
    #[error("malformed hashed host field (expected |1|<base64 salt>|<base64 hash>)")]
    BadHostHash,
}

/// The standard base64 alphabet, accepting input with or without `=` padding.
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A cursor over one line that hands out whitespace-separated fields with their byte offsets.
struct Fields<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Fields<'a> {
    fn skip_blanks(&mut self) {
        let rest = &self.line[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches(is_blank).len();
    }

    fn peek(&self) -> Option<char> {
        self.line[self.pos..].chars().next()
    }

    /// The next field (up to a blank or the end) and its byte offset; empty at the end.
    fn next_field(&mut self) -> (&'a str, usize) {
        self.skip_blanks();
        let start = self.pos;
        let rest = &self.line[start..];
        let len = rest.find(is_blank).unwrap_or(rest.len());
        self.pos += len;
        (&rest[..len], start)
    }

    fn rest(&self) -> &'a str {
        self.line[self.pos..].trim_matches(is_blank)
    }

    fn column(&self, byte_offset: usize) -> usize {
        self.line[..byte_offset].chars().count() + 1
    }
}

/// Parses every line of `text`, appending entries and warnings.
pub(crate) fn parse_into(
    text: &str,
    file: &Arc<Path>,
    entries: &mut Vec<Entry>,
    warnings: &mut Vec<Warning>,
) {
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match parse_line(line, file, line_no) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            Err((column, problem)) => warnings.push(Warning::BadLine {
                file: file.to_path_buf(),
                line: line_no,
                column,
                problem,
            }),
        }
    }
}

/// Parses one line: `Ok(None)` for blank and comment lines, `Err((column, problem))` for lines
/// OpenSSH would skip as invalid.
fn parse_line(
    line: &str,
    file: &Arc<Path>,
    line_no: usize,
) -> Result<Option<Entry>, (usize, LineProblem)> {
    let mut fields = Fields { line, pos: 0 };
    fields.skip_blanks();
    match fields.peek() {
        None | Some('#') => return Ok(None),
        Some(_) => {}
    }

    let mut marker = Marker::None;
    while fields.peek() == Some('@') {
        let (word, at) = fields.next_field();
        if marker != Marker::None {
            return Err((fields.column(at), LineProblem::MultipleMarkers));
        }
        marker = match word {
            "@cert-authority" => Marker::CertAuthority,
            "@revoked" => Marker::Revoked,
            other => {
                return Err((
                    fields.column(at),
                    LineProblem::UnknownMarker(other.to_owned()),
                ))
            }
        };
        fields.skip_blanks();
    }

    let (hosts, hosts_at) = fields.next_field();
    let matcher = HostMatcher::parse(hosts)
        .map_err(|_| (fields.column(hosts_at), LineProblem::BadHostHash))?;

    let (algorithm, alg_at) = fields.next_field();
    if algorithm.is_empty() || algorithm.starts_with('#') {
        return Err((fields.column(alg_at), LineProblem::MissingKeyType));
    }
    if algorithm.len() < 8 && algorithm.bytes().all(|b| b.is_ascii_digit()) {
        return Err((fields.column(alg_at), LineProblem::ProtocolOneKey));
    }

    let (data, data_at) = fields.next_field();
    if data.is_empty() || data.starts_with('#') {
        return Err((
            fields.column(data_at),
            LineProblem::MissingKeyData(algorithm.to_owned()),
        ));
    }
    let blob = BASE64
        .decode(data)
        .map_err(|_| (fields.column(data_at), LineProblem::BadBase64))?;
    let blob_says =
        blob_key_type(&blob).ok_or((fields.column(data_at), LineProblem::BadKeyBlob))?;
    if blob_says != algorithm {
        return Err((
            fields.column(alg_at),
            LineProblem::KeyTypeMismatch {
                line_says: algorithm.to_owned(),
                blob_says: blob_says.to_owned(),
            },
        ));
    }

    Ok(Some(Entry {
        file: Arc::clone(file),
        line: line_no,
        marker,
        hosts: hosts.to_owned(),
        matcher,
        algorithm: algorithm.to_owned(),
        comment: fields.rest().to_owned(),
        blob,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJzUytSo1uiw+5o/88PTajAxGRaunXbPEZUHlEQQnK0v";

    fn parse(text: &str) -> (Vec<Entry>, Vec<Warning>) {
        let file: Arc<Path> = Arc::from(Path::new("kh"));
        let (mut e, mut w) = (Vec::new(), Vec::new());
        parse_into(text, &file, &mut e, &mut w);
        (e, w)
    }

    fn problem(w: &Warning) -> (usize, usize, &LineProblem) {
        match w {
            Warning::BadLine {
                line,
                column,
                problem,
                ..
            } => (*line, *column, problem),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn fields_markers_comments() {
        let text = format!(
            "# comment\n\n   \t\nweb1,web2 ssh-ed25519 {ED} my comment here\r\n\
             @revoked * ssh-ed25519 {ED}\n\t@cert-authority *.example.com ssh-ed25519 {ED}\n"
        );
        let (entries, warnings) = parse(&text);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].line(), 4);
        assert_eq!(entries[0].hosts(), "web1,web2");
        assert_eq!(entries[0].comment(), "my comment here");
        assert_eq!(entries[0].marker(), Marker::None);
        assert_eq!(entries[1].marker(), Marker::Revoked);
        assert_eq!(entries[1].line(), 5);
        assert_eq!(entries[2].marker(), Marker::CertAuthority);
        assert_eq!(entries[2].hosts(), "*.example.com");
    }

    #[test]
    fn bad_lines_are_reported_with_position() {
        let text = format!(
            "@bogus host ssh-ed25519 {ED}\n\
             @revoked @revoked host ssh-ed25519 {ED}\n\
             hostonly\n\
             host ssh-ed25519\n\
             host 1024 35 12345\n\
             host ssh-ed25519 not*base64\n\
             host ssh-rsa {ED}\n\
             |1|bad|hash ssh-ed25519 {ED}\n\
             host ssh-ed25519 AAAA\n"
        );
        let (entries, warnings) = parse(&text);
        assert!(entries.is_empty());
        let got: Vec<_> = warnings.iter().map(problem).collect();
        assert_eq!(got[0], (1, 1, &LineProblem::UnknownMarker("@bogus".into())));
        assert_eq!(got[1], (2, 10, &LineProblem::MultipleMarkers));
        assert_eq!(got[2], (3, 9, &LineProblem::MissingKeyType));
        assert_eq!(
            got[3],
            (4, 17, &LineProblem::MissingKeyData("ssh-ed25519".into()))
        );
        assert_eq!(got[4], (5, 6, &LineProblem::ProtocolOneKey));
        assert_eq!(got[5], (6, 18, &LineProblem::BadBase64));
        assert_eq!(
            got[6],
            (
                7,
                6,
                &LineProblem::KeyTypeMismatch {
                    line_says: "ssh-rsa".into(),
                    blob_says: "ssh-ed25519".into()
                }
            )
        );
        assert_eq!(got[7], (8, 1, &LineProblem::BadHostHash));
        assert_eq!(got[8], (9, 18, &LineProblem::BadKeyBlob));
        assert_eq!(got.len(), 9);
        let shown = warnings[2].to_string();
        assert_eq!(
            shown,
            "kh:3:9: missing key type after the host field; line ignored"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "\u{0}\u{1}@",
            "@",
            "@revoked",
            "@revoked ",
            "ä ö ü",
            "|1|",
            "|1||",
            "h\tssh-ed25519\t#",
            "h ssh-ed25519 ====",
            "ñ ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
        ];
        for s in samples {
            let _ = parse(s);
        }
    }
}
