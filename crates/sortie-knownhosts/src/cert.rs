//! Host certificates (`*-cert-v01@openssh.com` host keys) judged as OpenSSH's `ssh` judges
//! them (`sshconnect.c` `check_host_key`, `hostfile.c`, `sshkey.c`
//! `sshkey_cert_check_authority`):
//!
//! 1. a matching `@revoked` line listing the certificate's own key, or the CA that signed it,
//!    refuses it, whatever else the files say;
//! 2. a matching `@cert-authority` line must list the signing CA;
//! 3. the certificate must be a host certificate, signed by that CA (signature checked here),
//!    not with the SHA-1 `ssh-rsa` signature (OpenSSH's default `CASignatureAlgorithms`
//!    leaves it out), within its validity interval (`valid after <= now < valid before`),
//!    with the name looked up (host or `HostKeyAlias`, no port) among its principals when it
//!    lists any, and without critical options.
//!
//! When 2 or 3 fails, `ssh` drops the certificate and checks its plain key like any host key
//! ("No matching CA found. Retry with plain key"): a host whose plain key is recorded is still
//! trusted, and under accept-new an unknown one is recorded as a plain key. The verdict then
//! carries why the certificate was not accepted ([`Verdict::CertificateRejected`]).

use ssh_key::{Algorithm, Certificate};

use crate::key::fingerprint_sha256;
use crate::{lookup_name, KnownHosts, Marker, Verdict};

/// True for a certificate key type name (`ssh-ed25519-cert-v01@openssh.com`, ...).
pub fn is_certificate_type(key_type: &str) -> bool {
    key_type.ends_with("-cert-v01@openssh.com")
}

/// The plain key inside a certificate blob: its key type and wire-format blob; `None` when the
/// blob is not a certificate sortie can read.
pub fn certificate_plain_key(blob: &[u8]) -> Option<(String, Vec<u8>)> {
    let cert = Certificate::from_bytes(blob).ok()?;
    let key = ssh_key::PublicKey::new(cert.public_key().clone(), "");
    Some((key.algorithm().as_str().to_owned(), key.to_bytes().ok()?))
}

/// The wire-format blob of a CA key inside a certificate.
fn key_blob(key: &ssh_key::public::KeyData) -> Option<Vec<u8>> {
    ssh_key::PublicKey::new(key.clone(), "").to_bytes().ok()
}

impl KnownHosts {
    /// [`KnownHosts::check`] for a host certificate `blob` at `now` (Unix seconds); `check`
    /// calls it with the current time for certificate key types. `host` is also the name the
    /// certificate's principals must list.
    pub fn check_certificate_at(&self, host: &str, port: u16, blob: &[u8], now: u64) -> Verdict {
        let unreadable = || Verdict::CertificateRejected {
            reason: "the host certificate cannot be read".into(),
            offered_fingerprint: fingerprint_sha256(blob),
            plain: Box::new(Verdict::Unknown {
                offered_algorithm: crate::blob_key_type(blob).unwrap_or("?").to_owned(),
                offered_fingerprint: fingerprint_sha256(blob),
            }),
        };
        let Ok(cert) = Certificate::from_bytes(blob) else {
            return unreadable();
        };
        let (Some(plain_blob), Some(ca_blob)) =
            (key_blob(cert.public_key()), key_blob(cert.signature_key()))
        else {
            return unreadable();
        };
        let lookup = lookup_name(host, port);
        let matching = self.matching_lower(&lookup);
        if let Some(revoked) = matching.iter().find(|e| {
            e.marker() == Marker::Revoked && (e.blob() == plain_blob || e.blob() == ca_blob)
        }) {
            return Verdict::Revoked {
                location: revoked.location(),
            };
        }
        let ca = matching
            .iter()
            .find(|e| e.marker() == Marker::CertAuthority && e.blob() == ca_blob);
        let problem = match ca {
            None => Some(format!(
                "no @cert-authority line for {lookup} lists the CA that signed it ({})",
                fingerprint_sha256(&ca_blob)
            )),
            Some(_) => certificate_problem(&cert, &host.to_ascii_lowercase(), now),
        };
        match (problem, ca) {
            (None, Some(ca)) => Verdict::Trusted {
                location: ca.location(),
            },
            (reason, _) => {
                let plain_type = crate::blob_key_type(&plain_blob).unwrap_or("?").to_owned();
                let plain = self.check(host, port, &plain_type, &plain_blob);
                if matches!(plain, Verdict::Trusted { .. } | Verdict::Revoked { .. }) {
                    return plain;
                }
                Verdict::CertificateRejected {
                    reason: reason.unwrap_or_default(),
                    offered_fingerprint: fingerprint_sha256(&plain_blob),
                    plain: Box::new(plain),
                }
            }
        }
    }
}

/// Why a certificate signed by a trusted CA is still not valid for `name` at `now`, as
/// `sshkey_cert_check_authority` words it; `None` when it is valid.
fn certificate_problem(cert: &Certificate, name: &str, now: u64) -> Option<String> {
    if !cert.cert_type().is_host() {
        return Some("it is not a host certificate".into());
    }
    if cert.verify_signature().is_err() {
        return Some("its CA signature does not verify".into());
    }
    if matches!(cert.signature().algorithm(), Algorithm::Rsa { hash: None }) {
        return Some(
            "its CA signed it with ssh-rsa (SHA-1), which OpenSSH no longer accepts".into(),
        );
    }
    if now < cert.valid_after() {
        return Some(format!(
            "it is not yet valid (valid from {})",
            unix_time(cert.valid_after())
        ));
    }
    if now >= cert.valid_before() {
        return Some(format!("it expired ({})", unix_time(cert.valid_before())));
    }
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p == name) {
        return Some(format!(
            "{name} is not one of its principals ({})",
            principals.join(",")
        ));
    }
    if !cert.critical_options().is_empty() {
        return Some("it has critical options, which host certificates must not have".into());
    }
    None
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (UTC), the form `ssh-keygen -L` shows without zone.
fn unix_time(secs: u64) -> String {
    if secs == u64::MAX {
        return "forever".into();
    }
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm), for 1970 onwards.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::unix_time;

    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(unix_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(unix_time(1_764_633_600 + 3661), "2025-12-02T01:01:01Z");
        assert_eq!(unix_time(u64::MAX), "forever");
    }
}

#[cfg(test)]
mod with_ssh_keygen {
    use crate::{KnownHosts, Verdict};
    use base64::Engine as _;
    use std::path::Path;
    use std::process::Command;

    fn keygen(args: &[&str]) -> bool {
        Command::new("ssh-keygen")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn blob_of(line: &str) -> Vec<u8> {
        let b64 = line.split_whitespace().nth(1).unwrap();
        crate::BASE64.decode(b64).unwrap()
    }

    /// The validity bounds and the principal list, at their edges: `valid after <= now <
    /// valid before`, exact principal names, and a host key that is not a user certificate.
    #[test]
    fn validity_bounds_principals_and_certificate_type() {
        let dir = std::env::temp_dir().join(format!("sortie-kh-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
        if !keygen(&["-q", "-t", "ed25519", "-N", "", "-f", &p("ca")])
            || !keygen(&["-q", "-t", "ed25519", "-N", "", "-f", &p("host")])
        {
            let line =
                "SKIP validity_bounds_principals_and_certificate_type: ssh-keygen is missing";
            eprintln!("{line}");
            if let Some(log) = std::env::var_os("SORTIE_SKIP_LOG") {
                use std::io::Write as _;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log);
                let _ = file.map(|mut f| writeln!(f, "{line}"));
            }
            return;
        }
        // 2030-01-01T00:00:00Z .. 2030-01-02T00:00:00Z, in UTC.
        let (after, before) = (1_893_456_000u64, 1_893_542_400u64);
        let validity = "20300101000000Z:20300102000000Z";
        let sign = |kind: &[&str], principals: &str| {
            let ca_key = p("ca");
            let mut args = vec!["-q", "-s", &ca_key, "-I", "t", "-n", principals];
            args.extend_from_slice(kind);
            args.extend_from_slice(&["-V", validity]);
            let host = p("host.pub");
            args.push(&host);
            assert!(keygen(&args));
            blob_of(&std::fs::read_to_string(p("host-cert.pub")).unwrap())
        };
        let ca = std::fs::read_to_string(p("ca.pub")).unwrap();
        let known = KnownHosts::parse_str(
            &format!("@cert-authority web* {ca}"),
            Path::new("known_hosts"),
        );
        let host_cert = sign(&["-h"], "web1,web2");
        let ok = |v: &Verdict| v.is_trusted();
        assert!(!ok(&known.check_certificate_at(
            "web1",
            22,
            &host_cert,
            after - 1
        )));
        assert!(ok(
            &known.check_certificate_at("web1", 22, &host_cert, after)
        ));
        assert!(ok(&known.check_certificate_at(
            "WEB2",
            22,
            &host_cert,
            before - 1
        )));
        assert!(!ok(
            &known.check_certificate_at("web1", 22, &host_cert, before)
        ));
        match known.check_certificate_at("web3", 22, &host_cert, after) {
            Verdict::CertificateRejected { reason, plain, .. } => {
                assert_eq!(reason, "web3 is not one of its principals (web1,web2)");
                assert!(plain.may_accept_new());
            }
            other => panic!("{other:?}"),
        }
        let user_cert = sign(&[], "web1");
        match known.check_certificate_at("web1", 22, &user_cert, after) {
            Verdict::CertificateRejected { reason, .. } => {
                assert_eq!(reason, "it is not a host certificate")
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
