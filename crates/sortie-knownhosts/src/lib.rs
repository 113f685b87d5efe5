//! OpenSSH-compatible known_hosts handling for sortie.
//!
//! This crate owns host key *trust decisions*: it reads known_hosts files the way OpenSSH's
//! `ssh` does, answers "is this key right for this host?" with a [`Verdict`], tells the
//! transport which key algorithms to prefer ([`KnownHosts::algorithms_for`]), renders a changed
//! key loudly ([`Verdict::report`]), and appends first-seen keys for `accept-new`
//! ([`Recorder`]). It does no networking and knows nothing about russh: the transport hands it
//! a key as its type name plus SSH wire-format blob.
//!
//! # Semantics (OpenSSH 9.x, `hostfile.c` / `match.c` / `sshconnect.c`)
//!
//! * Lookup name: `host` when the port is 22, else `[host]:port` ([`lookup_name`]), lowercased.
//!   When a non-22 port finds nothing, a key recorded for the bare `host` is accepted, as
//!   `ssh` does ("checking without port identifier"); a bare-host `@revoked` line for the key is
//!   honoured there too (stricter than `ssh`).
//! * Host field: comma-separated patterns with `*` and `?`; a matching `!pattern` makes the line
//!   not match even if other patterns do; `|1|salt|hash` lines match the one name whose
//!   HMAC-SHA1 keyed by the salt is the hash. Case-insensitive.
//! * `@revoked` lines whose host field matches (usually `*`) reject their key for that host,
//!   whatever else the files say. As in OpenSSH, a revocation applies only to hosts its pattern
//!   matches.
//! * `@cert-authority` lines never take part in plain key matching; they make host certificates
//!   signed by their key valid for matching hosts, within the certificate's principals and
//!   validity interval, unless a matching `@revoked` line lists the certificate's key or its CA
//!   (see the `cert` module; [`KnownHosts::check_certificate_at`]).
//! * Bad lines are skipped with a [`Warning`]; missing files are silently empty.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//! use base64::Engine as _;
//! use sortie_knownhosts::{KnownHosts, Verdict};
//!
//! let key = "AAAAC3NzaC1lZDI1NTE5AAAAIJzUytSo1uiw+5o/88PTajAxGRaunXbPEZUHlEQQnK0v";
//! let text = format!("web1,*.lab,!bad.lab ssh-ed25519 {key}\n[web1]:2222 ssh-ed25519 {key}\n");
//! let known = KnownHosts::parse_str(&text, Path::new("known_hosts"));
//! let blob = base64::engine::general_purpose::STANDARD.decode(key).unwrap();
//!
//! assert!(known.check("web1", 22, "ssh-ed25519", &blob).is_trusted());
//! assert!(known.check("db.lab", 22, "ssh-ed25519", &blob).is_trusted());
//! assert!(matches!(known.check("bad.lab", 22, "ssh-ed25519", &blob), Verdict::Unknown { .. }));
//! match known.check("web1", 2222, "ssh-ed25519", &blob) {
//!     Verdict::Trusted { location } => assert_eq!(location.to_string(), "known_hosts:2"),
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(known.algorithms_for("web1", 22), ["ssh-ed25519"]);
//! ```

#![warn(missing_docs)]

mod cert;
mod key;
mod parse;
pub mod pattern;
mod recorder;
mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cert::{certificate_plain_key, is_certificate_type};
pub use key::{blob_key_type, fingerprint_sha256, key_type_of_algorithm};
pub use parse::{Entry, LineProblem, Marker, Warning};
pub use recorder::{RecordError, Recorded, Recorder};
pub use report::Report;

pub(crate) use parse::BASE64;

/// The name OpenSSH looks up in known_hosts for `host` on `port`: `host` for port 22,
/// `[host]:port` otherwise, lowercased.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Where a key is recorded, and which key it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The known_hosts file.
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: usize,
    /// Key type of the recorded key, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// Fingerprint of the recorded key, `SHA256:...` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

impl std::fmt::Display for Location {
    /// `file:line`, the form editors and OpenSSH messages use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The answer to "may I trust this host key for this host?".
///
/// Only [`Verdict::Trusted`] lets a connection proceed under strict checking. Under
/// `accept-new`, only [`Verdict::Unknown`] may be recorded and trusted
/// ([`Verdict::may_accept_new`]): OpenSSH treats a host known with keys of *other* types as a
/// changed key too ("Offending ECDSA key in ..."), so [`Verdict::OtherAlgorithmsKnown`] must not
/// be recorded silently either. Prefer the recorded algorithms in negotiation
/// ([`KnownHosts::algorithms_for`]) so that case only happens when the server really changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A plain line for this host records exactly this key.
    Trusted {
        /// The first matching line.
        location: Location,
    },
    /// A matching `@revoked` line lists this key. Wins over everything else.
    Revoked {
        /// The `@revoked` line.
        location: Location,
    },
    /// The host is recorded with a key of the offered type, but not this key: the host key
    /// changed, or someone is in the middle.
    Mismatch {
        /// Key type of the offered key (from its blob when readable).
        offered_algorithm: String,
        /// Fingerprint of the offered key.
        offered_fingerprint: String,
        /// Every plain line for this host with a key of the offered type, in file order.
        recorded: Vec<Location>,
    },
    /// The host is recorded only with keys of other types.
    OtherAlgorithmsKnown {
        /// Key type of the offered key.
        offered_algorithm: String,
        /// Fingerprint of the offered key.
        offered_fingerprint: String,
        /// Every plain line for this host, in file order.
        recorded: Vec<Location>,
    },
    /// A host certificate that is not valid for this host (no `@cert-authority` line for its
    /// CA, expired, another host's principals...), and whose plain key is not trusted either:
    /// `plain` is the verdict for that key, as `ssh` falls back to it.
    CertificateRejected {
        /// Why the certificate itself was not accepted.
        reason: String,
        /// Fingerprint of the certificate's plain key.
        offered_fingerprint: String,
        /// The verdict for the certificate's plain key (never trusted or revoked).
        plain: Box<Verdict>,
    },
    /// No plain line matches this host.
    Unknown {
        /// Key type of the offered key.
        offered_algorithm: String,
        /// Fingerprint of the offered key.
        offered_fingerprint: String,
    },
}

impl Verdict {
    /// True for [`Verdict::Trusted`].
    pub fn is_trusted(&self) -> bool {
        matches!(self, Verdict::Trusted { .. })
    }

    /// True only for [`Verdict::Unknown`]: the one case where `accept-new` may record the key.
    /// For a rejected certificate, its plain key's verdict decides (and the plain key, from
    /// [`certificate_plain_key`], is what gets recorded, as `ssh` records it).
    pub fn may_accept_new(&self) -> bool {
        match self {
            Verdict::Unknown { .. } => true,
            Verdict::CertificateRejected { plain, .. } => plain.may_accept_new(),
            _ => false,
        }
    }

    /// A human-readable explanation for `host`:`port`, in the spirit of OpenSSH's messages
    /// (the changed-key banner, the offending file:line, and the `ssh-keygen -R` command).
    pub fn report<'a>(&'a self, host: &'a str, port: u16) -> Report<'a> {
        Report::new(self, host, port)
    }
}

/// The parsed content of one or more known_hosts files.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    warnings: Vec<Warning>,
    /// Entries whose host field lists only literal names, by each name (lowercase): a lookup
    /// finds them without matching every line, so a fleet of N hosts checks its N keys in
    /// O(N), not O(N^2).
    literal: HashMap<String, Vec<usize>>,
    /// The other entries (wildcards, negations, hashed names), matched line by line.
    scanned: Vec<usize>,
}

impl KnownHosts {
    /// Reads `files` in order (e.g. `~/.ssh/known_hosts`, `~/.ssh/known_hosts2`,
    /// `/etc/ssh/ssh_known_hosts`). A missing file counts as empty; an unreadable file or a bad
    /// line becomes a [`Warning`] and is skipped. Never fails, never panics.
    pub fn load<P: AsRef<Path>>(files: &[P]) -> KnownHosts {
        let mut known = KnownHosts::default();
        for path in files {
            let path = path.as_ref();
            match std::fs::read(path) {
                Ok(bytes) => known.add_str(&String::from_utf8_lossy(&bytes), path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => known.warnings.push(Warning::Unreadable {
                    file: path.to_path_buf(),
                    message: e.to_string(),
                }),
            }
        }
        known
    }

    /// Parses `text` as if it were the content of the file `origin` (which is not read; it only
    /// names the lines in locations and warnings).
    pub fn parse_str(text: &str, origin: &Path) -> KnownHosts {
        let mut known = KnownHosts::default();
        known.add_str(text, origin);
        known
    }

    /// Adds the lines of `text`, as the content of `origin`, after those already loaded.
    pub fn add_str(&mut self, text: &str, origin: &Path) {
        let file: Arc<Path> = Arc::from(origin);
        let first = self.entries.len();
        parse::parse_into(text, &file, &mut self.entries, &mut self.warnings);
        for (i, e) in self.entries.iter().enumerate().skip(first) {
            match e.literal_names() {
                Some(names) => {
                    for name in names {
                        let at = self.literal.entry(name.to_owned()).or_default();
                        // A line naming the same host twice is still one line.
                        if at.last() != Some(&i) {
                            at.push(i);
                        }
                    }
                }
                None => self.scanned.push(i),
            }
        }
    }

    /// The entries whose host field matches `lookup` (lowercase), in load order.
    pub(crate) fn matching_lower(&self, lookup: &str) -> Vec<&Entry> {
        let mut at: Vec<usize> = self.literal.get(lookup).cloned().unwrap_or_default();
        at.extend(
            (self.scanned.iter().copied()).filter(|&i| self.entries[i].matches_lower(lookup)),
        );
        at.sort_unstable();
        at.into_iter().map(|i| &self.entries[i]).collect()
    }

    /// Every usable line, in load order, including `@revoked` and `@cert-authority` lines.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The files and lines that were skipped, in load order.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Every line (with any marker) whose host field matches `host` on `port`, in load order:
    /// the lines `ssh-keygen -F` would print.
    pub fn matching<'a>(&'a self, host: &str, port: u16) -> impl Iterator<Item = &'a Entry> + 'a {
        self.matching_lower(&lookup_name(host, port)).into_iter()
    }

    /// Decides whether the key `blob` offered by `host` on `port` is trusted.
    ///
    /// `algorithm` is the key type (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...);
    /// the RSA signature names `rsa-sha2-256`/`rsa-sha2-512` are accepted for `ssh-rsa`. When the
    /// blob names its own type, that name is used.
    ///
    /// A certificate (`*-cert-v01@openssh.com`) is judged at the current time by
    /// [`KnownHosts::check_certificate_at`].
    pub fn check(&self, host: &str, port: u16, algorithm: &str, blob: &[u8]) -> Verdict {
        let key_type = blob_key_type(blob)
            .unwrap_or_else(|| key_type_of_algorithm(algorithm))
            .to_owned();
        if is_certificate_type(&key_type) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            return self.check_certificate_at(host, port, blob, now);
        }
        let verdict = self.check_lookup(&lookup_name(host, port), &key_type, blob);
        if port != 22 && matches!(verdict, Verdict::Unknown { .. }) {
            // ssh(1) retries without the port and accepts only an exact match from that. We also
            // honour a revocation found there (ssh would not), so a revoked key can never be
            // recorded under `[host]:port` by accept-new.
            let bare = self.check_lookup(&lookup_name(host, 22), &key_type, blob);
            if matches!(bare, Verdict::Trusted { .. } | Verdict::Revoked { .. }) {
                return bare;
            }
        }
        verdict
    }

    fn check_lookup(&self, lookup: &str, key_type: &str, blob: &[u8]) -> Verdict {
        let matching = self.matching_lower(lookup);
        if let Some(revoked) = matching
            .iter()
            .find(|e| e.marker() == Marker::Revoked && e.blob() == blob)
        {
            return Verdict::Revoked {
                location: revoked.location(),
            };
        }
        let plain: Vec<&Entry> = matching
            .into_iter()
            .filter(|e| e.marker() == Marker::None)
            .collect();
        if let Some(found) = plain.iter().find(|e| e.blob() == blob) {
            return Verdict::Trusted {
                location: found.location(),
            };
        }
        let offered_algorithm = key_type.to_owned();
        let offered_fingerprint = fingerprint_sha256(blob);
        let same_type: Vec<Location> = plain
            .iter()
            .filter(|e| e.algorithm() == key_type)
            .map(|e| e.location())
            .collect();
        if !same_type.is_empty() {
            return Verdict::Mismatch {
                offered_algorithm,
                offered_fingerprint,
                recorded: same_type,
            };
        }
        if !plain.is_empty() {
            return Verdict::OtherAlgorithmsKnown {
                offered_algorithm,
                offered_fingerprint,
                recorded: plain.iter().map(|e| e.location()).collect(),
            };
        }
        Verdict::Unknown {
            offered_algorithm,
            offered_fingerprint,
        }
    }

    /// True when an `@cert-authority` line matches `host` on `port`: then the host may prove
    /// itself with a certificate, and the transport should ask for one.
    pub fn has_cert_authority_for(&self, host: &str, port: u16) -> bool {
        self.matching(host, port)
            .any(|e| e.marker() == Marker::CertAuthority)
    }

    /// Key types recorded on plain lines for `host` on `port`, in file order without repeats
    /// (`@revoked` and `@cert-authority` lines are left out).
    ///
    /// OpenSSH puts host key algorithms it already has keys for first in key exchange, so a
    /// server with several host keys presents the one the user already trusts. `ssh-rsa` here
    /// covers the `rsa-sha2-512` and `rsa-sha2-256` signature algorithms.
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.matching(host, port) {
            if e.marker() == Marker::None && !out.iter().any(|a| a == e.algorithm()) {
                out.push(e.algorithm().to_owned());
            }
        }
        out
    }
}
