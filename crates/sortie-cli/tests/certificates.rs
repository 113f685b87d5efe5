//! Certificates against real OpenSSH: host certificates checked through `@cert-authority` and
//! `@revoked` lines, with the real `ssh` client as the oracle on the same fixture and files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sortie_testkit::{KeyKind, Keys, Sshd};

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

fn have_sshd(test: &str) -> bool {
    if sortie_testkit::require_sshd().is_none() {
        sortie_testkit::skip(
            test,
            "OpenSSH sshd is not installed (scripts/test.sh installs it as root)",
        );
        return false;
    }
    if Command::new("ssh").arg("-V").output().is_err() {
        sortie_testkit::skip(test, "the OpenSSH client (the oracle) is not installed");
        return false;
    }
    true
}

/// Runs `ssh-keygen` with `args`; panics with its stderr when it fails.
fn keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority in `dir`: `dir/NAME` and `dir/NAME.pub`.
fn new_ca(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        name,
        "-f",
        key.to_str().unwrap(),
    ]);
    key
}

fn public_line(key: &Path) -> String {
    let pub_path = PathBuf::from(format!("{}.pub", key.display()));
    std::fs::read_to_string(pub_path).unwrap().trim().to_owned()
}

/// Signs the fixtures' shared ed25519 host key with `ca` for `principals` and `validity`
/// (ssh-keygen -V syntax); returns the certificate file.
fn host_certificate(
    dir: &Path,
    ca: &Path,
    name: &str,
    principals: &str,
    validity: &str,
) -> PathBuf {
    let keys = Keys::shared().unwrap();
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&public, keys.host_public_key(KeyKind::Ed25519).unwrap()).unwrap();
    keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        name,
        "-h",
        "-n",
        principals,
        "-V",
        validity,
        public.to_str().unwrap(),
    ]);
    dir.join(format!("{name}-cert.pub"))
}

/// An sshd presenting `cert` for its ed25519 host key.
fn sshd_with_cert(cert: &Path) -> Sshd {
    Sshd::builder()
        .config_line(format!("HostCertificate {}", cert.display()))
        .start()
        .expect("fixture sshd starts")
}

/// Does `ssh` connect to `host` with `config`? And does sortie? (exit status 0 each)
fn verdicts(config: &Path, host: &str) -> (bool, bool, String) {
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args([host, "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let ours = sortie()
        .args(["exec", "-F"])
        .arg(config)
        .args(["-H", host, "--", "true"])
        .output()
        .unwrap();
    let said = format!(
        "ssh: {}\nsortie: {}",
        String::from_utf8_lossy(&ssh.stderr),
        String::from_utf8_lossy(&ours.stderr)
    );
    (ssh.status.success(), ours.status.success(), said)
}

#[test]
fn host_certificate_verdicts_agree_with_ssh() {
    if !have_sshd("host_certificate_verdicts_agree_with_ssh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = new_ca(d, "ca");
    let other_ca = new_ca(d, "other-ca");
    let valid = sshd_with_cert(&host_certificate(
        d,
        &ca,
        "valid",
        "127.0.0.1,127.0.0.2",
        "-5m:+1h",
    ));
    let expired = sshd_with_cert(&host_certificate(
        d,
        &ca,
        "expired",
        "127.0.0.1",
        "20200101:20200102",
    ));
    let future = sshd_with_cert(&host_certificate(d, &ca, "future", "127.0.0.1", "+1d:+2d"));
    let host_key = Keys::shared()
        .unwrap()
        .host_public_key(KeyKind::Ed25519)
        .unwrap();
    let host_key = host_key.trim();
    let trust_ca = format!("@cert-authority * {}\n", public_line(&ca));
    // (case, fixture, host, known_hosts text, whether ssh must accept, sortie's reason)
    let cases: Vec<(&str, &Sshd, &str, String, bool, &str)> = vec![
        ("valid", &valid, "127.0.0.1", trust_ca.clone(), true, ""),
        (
            "second principal",
            &valid,
            "127.0.0.2",
            trust_ca.clone(),
            true,
            "",
        ),
        (
            "wrong principal",
            &valid,
            "127.0.0.3",
            trust_ca.clone(),
            false,
            "127.0.0.3 is not one of its principals (127.0.0.1,127.0.0.2)",
        ),
        (
            "CA pattern for other hosts",
            &valid,
            "127.0.0.1",
            format!("@cert-authority *.example.com {}\n", public_line(&ca)),
            false,
            "No host key is known for [127.0.0.1]:",
        ),
        (
            "another CA",
            &valid,
            "127.0.0.1",
            format!("@cert-authority * {}\n", public_line(&other_ca)),
            false,
            "lists the CA that signed it",
        ),
        (
            "expired",
            &expired,
            "127.0.0.1",
            trust_ca.clone(),
            false,
            "it expired (2020-01-02T00:00:00Z)",
        ),
        (
            "not yet valid",
            &future,
            "127.0.0.1",
            trust_ca.clone(),
            false,
            "it is not yet valid",
        ),
        (
            "revoked host key",
            &valid,
            "127.0.0.1",
            format!("{trust_ca}@revoked * {host_key}\n"),
            false,
            "REVOKED HOST KEY",
        ),
        (
            "revoked CA",
            &valid,
            "127.0.0.1",
            format!("{trust_ca}@revoked * {}\n", public_line(&ca)),
            false,
            "REVOKED HOST KEY",
        ),
        (
            "expired, plain key recorded",
            &expired,
            "127.0.0.1",
            format!("{trust_ca}[127.0.0.1]:{} {host_key}\n", expired.port()),
            true,
            "",
        ),
    ];
    for (i, (case, sshd, host, known, accept, reason)) in cases.into_iter().enumerate() {
        let kh = d.join(format!("known_hosts.{i}"));
        std::fs::write(&kh, &known).unwrap();
        let config = sshd
            .ssh_config_with(&[], &[&format!("UserKnownHostsFile {}", kh.display())])
            .unwrap();
        let (ssh, ours, said) = verdicts(&config, host);
        assert_eq!(
            ssh, accept,
            "{case}: ssh, the oracle, disagrees with the test\n{said}"
        );
        assert_eq!(ours, ssh, "{case}: sortie and ssh disagree\n{said}");
        if !ours {
            assert!(said.contains("host key refused"), "{case}: {said}");
            assert!(said.contains(reason), "{case}: no {reason:?} in\n{said}");
        }
    }

    // accept-new with a certificate that is not valid: ssh drops it and records the plain key
    // (not the certificate); sortie records the same line.
    let mut recorded = Vec::new();
    for who in ["ssh", "sortie"] {
        let kh = d.join(format!("known_hosts.accept-new.{who}"));
        std::fs::write(&kh, &trust_ca).unwrap();
        let config = expired
            .ssh_config_with(
                &[],
                &[
                    &format!("UserKnownHostsFile {}", kh.display()),
                    "StrictHostKeyChecking accept-new",
                ],
            )
            .unwrap();
        let out = if who == "ssh" {
            Command::new("ssh")
                .arg("-F")
                .arg(&config)
                .args(["127.0.0.1", "true"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        } else {
            sortie()
                .args(["exec", "-F"])
                .arg(&config)
                .args(["-H", "127.0.0.1", "--", "true"])
                .output()
                .unwrap()
        };
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{who} with accept-new\n{said}");
        let text = std::fs::read_to_string(&kh).unwrap();
        let added: Vec<String> = text.lines().skip(1).map(str::to_owned).collect();
        recorded.push(added);
    }
    let want = format!("[127.0.0.1]:{} {host_key}", expired.port());
    for added in &recorded {
        assert!(
            added.iter().any(|l| l.trim() == want.trim()),
            "{want} not recorded: {recorded:?}"
        );
        assert!(!added.iter().any(|l| l.contains("cert")), "{recorded:?}");
    }
}

/// A user key in `dir/NAME` (not in any authorized_keys) and, when `validity` is given, its
/// user certificate for `principal` signed by `ca`, written to `cert_path`.
fn user_key(
    dir: &Path,
    name: &str,
    ca: &Path,
    principal: &str,
    validity: &str,
    cert_path: &Path,
) -> PathBuf {
    let key = dir.join(name);
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        name,
        "-f",
        key.to_str().unwrap(),
    ]);
    let public = format!("{}.pub", key.display());
    keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        name,
        "-n",
        principal,
        "-V",
        validity,
        &public,
    ]);
    std::fs::rename(format!("{}-cert.pub", key.display()), cert_path).unwrap();
    key
}

#[test]
fn user_certificates_from_files_and_from_the_agent_log_in_as_with_ssh() {
    if !have_sshd("user_certificates_from_files_and_from_the_agent_log_in_as_with_ssh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = new_ca(d, "user-ca");
    let sshd = Sshd::builder()
        .config_line(format!("TrustedUserCAKeys {}.pub", ca.display()))
        .start()
        .expect("fixture sshd starts");
    let user = sshd.user();
    // A certificate in a file of its own (CertificateFile), one beside its key
    // (IDENTITY-cert.pub), an expired one, and a key whose certificate names another user.
    let k1 = user_key(d, "k1", &ca, &user, "-5m:+1h", &d.join("k1.cert"));
    let k2 = user_key(d, "k2", &ca, &user, "-5m:+1h", &d.join("k2-cert.pub"));
    let k3 = user_key(
        d,
        "k3",
        &ca,
        &user,
        "20200101:20200102",
        &d.join("k3-cert.pub"),
    );
    let k4 = user_key(
        d,
        "k4",
        &ca,
        "somebody-else",
        "-5m:+1h",
        &d.join("k4-cert.pub"),
    );
    let kh = sshd.known_hosts_for(&["127.0.0.1"]).unwrap();
    let config = |name: &str, lines: &[String]| {
        let path = d.join(name);
        let mut text = String::from("Host 127.*\n");
        for l in lines {
            text.push_str(&format!("  {l}\n"));
        }
        text.push_str(&format!(
            "  User {user}\n  Port {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  \
             LogLevel ERROR\n",
            sshd.port(),
            kh.display()
        ));
        std::fs::write(&path, text).unwrap();
        path
    };
    let id = |k: &Path| format!("IdentityFile {}", k.display());
    let cases = [
        (
            "CertificateFile",
            config(
                "c1",
                &[
                    id(&k1),
                    format!("CertificateFile {}", d.join("k1.cert").display()),
                ],
            ),
            true,
        ),
        (
            "key without its certificate",
            config("c2", &[id(&k1)]),
            false,
        ),
        (
            "IDENTITY-cert.pub beside the key",
            config("c3", &[id(&k2)]),
            true,
        ),
        ("expired certificate", config("c4", &[id(&k3)]), false),
        (
            "certificate for another user",
            config("c5", &[id(&k4)]),
            false,
        ),
    ];
    for (case, cfg, accept) in &cases {
        let (ssh, ours, said) = verdicts(cfg, "127.0.0.1");
        assert_eq!(
            ssh, *accept,
            "{case}: ssh, the oracle, disagrees with the test\n{said}"
        );
        assert_eq!(ours, ssh, "{case}: sortie and ssh disagree\n{said}");
        if !ours {
            assert!(said.contains("auth failed"), "{case}: {said}");
        }
    }

    // From a real ssh-agent: ssh-add loads k2 with k2-cert.pub beside it, so the agent holds
    // the certificate; no identity file exists.
    let agent = sortie_testkit::Agent::with_keys(&[&k2]).unwrap();
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", agent.sock())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("CERT"),
        "agent holds no certificate"
    );
    let cfg = config(
        "c6",
        &[
            format!("IdentityFile {}", d.join("missing").display()),
            "IdentitiesOnly no".into(),
        ],
    );
    let ssh = Command::new("ssh")
        .env("SSH_AUTH_SOCK", agent.sock())
        .arg("-F")
        .arg(&cfg)
        .args(["127.0.0.1", "true"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(ssh.success(), "ssh with the agent's certificate");
    let ours = sortie()
        .env("SSH_AUTH_SOCK", agent.sock())
        .args(["exec", "-F"])
        .arg(&cfg)
        .args(["-H", "127.0.0.1", "--", "echo in"])
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "sortie with the agent's certificate: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
}
