//! Human-readable rendering of a [`Verdict`].
//!
//! Owns the wording a person sees when a host key is not trusted: the OpenSSH-style banner for a
//! changed or revoked key, the offered fingerprint, the file:line of each recorded key, and what
//! to do next (`ssh-keygen -R ...`). It only formats; it never decides trust.

use std::fmt;
use std::path::Path;

use crate::{lookup_name, Location, Verdict};

const BAR: &str = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@";

/// A [`Verdict`] explained for one host; its [`fmt::Display`] is the message to show.
/// Made by [`Verdict::report`].
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    verdict: &'a Verdict,
    host: &'a str,
    port: u16,
}

impl<'a> Report<'a> {
    pub(crate) fn new(verdict: &'a Verdict, host: &'a str, port: u16) -> Report<'a> {
        Report {
            verdict,
            host,
            port,
        }
    }
}

/// Quotes `s` for a POSIX shell when it holds anything but obviously safe characters.
fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@%+=,".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn banner(f: &mut fmt::Formatter<'_>, title: &str) -> fmt::Result {
    writeln!(f, "{BAR}")?;
    writeln!(f, "@{title:^57}@")?;
    writeln!(f, "{BAR}")
}

fn recorded_lines(f: &mut fmt::Formatter<'_>, recorded: &[Location]) -> fmt::Result {
    for loc in recorded {
        writeln!(f, "  {} key {} in {}", loc.algorithm, loc.fingerprint, loc)?;
    }
    Ok(())
}

fn removal_advice(f: &mut fmt::Formatter<'_>, lookup: &str, recorded: &[Location]) -> fmt::Result {
    writeln!(
        f,
        "If the host's administrator confirms the new key, remove the old entry:"
    )?;
    let mut files: Vec<&Path> = Vec::new();
    for loc in recorded {
        if !files.contains(&loc.file.as_path()) {
            files.push(&loc.file);
        }
    }
    for file in files {
        writeln!(
            f,
            "  ssh-keygen -R {} -f {}",
            shell_quote(lookup),
            shell_quote(&file.to_string_lossy())
        )?;
    }
    write!(
        f,
        "then record the new key (connect once with accept-new host key checking, or add it by hand)."
    )
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lookup = lookup_name(self.host, self.port);
        match self.verdict {
            Verdict::Trusted { location } => write!(
                f,
                "The {} host key for {lookup} ({}) matches {location}.",
                location.algorithm, location.fingerprint
            ),
            Verdict::Revoked { location } => {
                banner(f, "WARNING: REVOKED HOST KEY DETECTED!")?;
                writeln!(
                    f,
                    "The {} host key for {lookup} is marked as revoked in {location}.",
                    location.algorithm
                )?;
                writeln!(
                    f,
                    "This could mean that a stolen key is being used to impersonate this host."
                )?;
                writeln!(f, "Revoked key fingerprint: {}", location.fingerprint)?;
                write!(
                    f,
                    "Refusing to connect. Ask the host's administrator for its current host key."
                )
            }
            Verdict::Mismatch {
                offered_algorithm,
                offered_fingerprint,
                recorded,
            } => {
                banner(f, "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!")?;
                writeln!(f, "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!")?;
                writeln!(
                    f,
                    "Someone could be eavesdropping on you right now (man-in-the-middle attack)!"
                )?;
                writeln!(
                    f,
                    "It is also possible that a host key has just been changed."
                )?;
                writeln!(
                    f,
                    "The fingerprint for the {offered_algorithm} key sent by {lookup} is\n  {offered_fingerprint}"
                )?;
                writeln!(f, "but known_hosts records for this host:")?;
                recorded_lines(f, recorded)?;
                writeln!(f, "Refusing to connect.")?;
                removal_advice(f, &lookup, recorded)
            }
            Verdict::OtherAlgorithmsKnown {
                offered_algorithm,
                offered_fingerprint,
                recorded,
            } => {
                banner(f, "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!")?;
                writeln!(
                    f,
                    "{lookup} sent a {offered_algorithm} key that is not recorded, \
                     but keys of other types are known for this host."
                )?;
                writeln!(
                    f,
                    "Someone could be in the middle, or the host's keys were replaced."
                )?;
                writeln!(
                    f,
                    "The fingerprint for the {offered_algorithm} key sent by {lookup} is\n  {offered_fingerprint}"
                )?;
                writeln!(f, "known_hosts records for this host:")?;
                recorded_lines(f, recorded)?;
                writeln!(f, "Refusing to connect.")?;
                removal_advice(f, &lookup, recorded)
            }
            Verdict::CertificateRejected { reason, plain, .. } => {
                writeln!(
                    f,
                    "The host certificate of {lookup} is not accepted: {reason}."
                )?;
                writeln!(
                    f,
                    "Checked as a plain host key instead (as ssh does), its key is not trusted either:"
                )?;
                write!(f, "{}", Report::new(plain, self.host, self.port))
            }
            Verdict::Unknown {
                offered_algorithm,
                offered_fingerprint,
            } => {
                writeln!(
                    f,
                    "No host key is known for {lookup} and strict host key checking is on."
                )?;
                writeln!(
                    f,
                    "The fingerprint for the {offered_algorithm} key sent by {lookup} is\n  {offered_fingerprint}"
                )?;
                write!(
                    f,
                    "Compare it with the fingerprint the host's administrator gives you \
                     (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host), then add the key \
                     to known_hosts, or allow trust on first use with accept-new."
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("web1.example.com"), "web1.example.com");
        assert_eq!(shell_quote("[web1]:2222"), "'[web1]:2222'");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn mismatch_report_names_everything_needed() {
        let verdict = Verdict::Mismatch {
            offered_algorithm: "ssh-ed25519".into(),
            offered_fingerprint: "SHA256:new".into(),
            recorded: vec![Location {
                file: PathBuf::from("/home/u/.ssh/known_hosts"),
                line: 7,
                algorithm: "ssh-ed25519".into(),
                fingerprint: "SHA256:old".into(),
            }],
        };
        let text = verdict.report("Web1", 2222).to_string();
        let expected = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ssh-ed25519 key sent by [web1]:2222 is
  SHA256:new
but known_hosts records for this host:
  ssh-ed25519 key SHA256:old in /home/u/.ssh/known_hosts:7
Refusing to connect.
If the host's administrator confirms the new key, remove the old entry:
  ssh-keygen -R '[web1]:2222' -f /home/u/.ssh/known_hosts
then record the new key (connect once with accept-new host key checking, or add it by hand).";
        assert_eq!(text, expected);
    }

    #[test]
    fn other_reports_name_key_and_place() {
        let loc = Location {
            file: PathBuf::from("/etc/ssh/ssh_known_hosts"),
            line: 3,
            algorithm: "ecdsa-sha2-nistp256".into(),
            fingerprint: "SHA256:recorded".into(),
        };
        let other = Verdict::OtherAlgorithmsKnown {
            offered_algorithm: "ssh-ed25519".into(),
            offered_fingerprint: "SHA256:offered".into(),
            recorded: vec![loc.clone()],
        }
        .report("db1", 22)
        .to_string();
        assert!(
            other.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{other}"
        );
        assert!(other.contains("SHA256:offered"), "{other}");
        assert!(
            other.contains("ecdsa-sha2-nistp256 key SHA256:recorded in /etc/ssh/ssh_known_hosts:3")
        );
        assert!(other.contains("ssh-keygen -R db1 -f /etc/ssh/ssh_known_hosts"));

        let revoked = Verdict::Revoked { location: loc }
            .report("db1", 22)
            .to_string();
        assert!(revoked.contains("REVOKED HOST KEY DETECTED"));
        assert!(
            revoked.contains("revoked in /etc/ssh/ssh_known_hosts:3"),
            "{revoked}"
        );

        let unknown = Verdict::Unknown {
            offered_algorithm: "ssh-ed25519".into(),
            offered_fingerprint: "SHA256:offered".into(),
        }
        .report("db1", 2200)
        .to_string();
        assert!(
            unknown.contains("No host key is known for [db1]:2200"),
            "{unknown}"
        );
        assert!(unknown.contains("SHA256:offered"));
    }
}
