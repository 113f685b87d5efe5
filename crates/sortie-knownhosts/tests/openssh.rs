//! Compares sortie-knownhosts with OpenSSH's own `ssh-keygen`: key generation, fingerprints
//! (`ssh-keygen -l`), hashing (`ssh-keygen -H`) and lookup (`ssh-keygen -F`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use sortie_knownhosts::{
    fingerprint_sha256, lookup_name, KnownHosts, LineProblem, Marker, RecordError, Recorded,
    Recorder, Verdict, Warning,
};
use tempfile::TempDir;

/// A public key made by ssh-keygen.
#[derive(Clone)]
struct Key {
    algorithm: String,
    b64: String,
    blob: Vec<u8>,
    pub_file: PathBuf,
}

impl Key {
    /// `algo base64`, the key part of a known_hosts line.
    fn text(&self) -> String {
        format!("{} {}", self.algorithm, self.b64)
    }
}

fn keygen(dir: &Path, name: &str, args: &[&str]) -> Key {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", "", "-f"])
        .arg(&path)
        .args(args)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen {args:?} failed");
    let pub_file = path.with_extension("pub");
    let text = fs::read_to_string(&pub_file).unwrap();
    let mut parts = text.split_whitespace();
    let algorithm = parts.next().unwrap().to_owned();
    let b64 = parts.next().unwrap().to_owned();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .unwrap();
    Key {
        algorithm,
        b64,
        blob,
        pub_file,
    }
}

fn ed25519(dir: &Path, name: &str) -> Key {
    keygen(dir, name, &["-t", "ed25519"])
}

/// `ssh-keygen -lf FILE -E sha256`: one fingerprint per key line.
fn keygen_fingerprints(file: &Path) -> Vec<String> {
    let out = Command::new("ssh-keygen")
        .args(["-E", "sha256", "-lf"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

/// `ssh-keygen -F NAME -f FILE`: the line numbers OpenSSH finds for a lookup name.
fn keygen_find(name: &str, file: &Path) -> BTreeSet<usize> {
    let out = Command::new("ssh-keygen")
        .args(["-F", name, "-f"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("# Host "))
        .map(|l| {
            let after = l.split(" found: line ").nth(1).unwrap();
            after.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

fn ours_find(known: &KnownHosts, host: &str, port: u16) -> BTreeSet<usize> {
    known.matching(host, port).map(|e| e.line()).collect()
}

/// Lines of literal names are found through an index, the others line by line: a lookup
/// still returns every matching line once, in load order across files and kinds of line.
#[test]
fn matching_lines_come_in_load_order_across_files_and_kinds_of_line() {
    let dir = TempDir::new().unwrap();
    let k = ed25519(dir.path(), "k").text();
    let first = format!("web1,WEB1 {k}\nweb* {k}\nother {k}\n[web1]:2222,web1 {k}\n");
    let second = format!("!web2,w* {k}\nweb1 {k}\n");
    let mut known = KnownHosts::parse_str(&first, Path::new("first"));
    known.add_str(&second, Path::new("second"));
    let found: Vec<(String, usize)> = known
        .matching("web1", 22)
        .map(|e| (e.file().display().to_string(), e.line()))
        .collect();
    let want = [
        ("first", 1),
        ("first", 2),
        ("first", 4),
        ("second", 1),
        ("second", 2),
    ];
    let want: Vec<(String, usize)> = want.iter().map(|(f, l)| (f.to_string(), *l)).collect();
    assert_eq!(found, want);
    let other: Vec<usize> = known.matching("web2", 22).map(|e| e.line()).collect();
    assert_eq!(other, [2]);
}

#[test]
fn fingerprints_match_ssh_keygen_for_every_key_type() {
    let dir = TempDir::new().unwrap();
    let keys = [
        keygen(dir.path(), "ed", &["-t", "ed25519"]),
        keygen(dir.path(), "ec256", &["-t", "ecdsa", "-b", "256"]),
        keygen(dir.path(), "ec384", &["-t", "ecdsa", "-b", "384"]),
        keygen(dir.path(), "ec521", &["-t", "ecdsa", "-b", "521"]),
        keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]),
    ];
    let expected_algorithms = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    ];
    let mut kh = String::new();
    for (key, algo) in keys.iter().zip(expected_algorithms) {
        assert_eq!(key.algorithm, algo);
        let theirs = keygen_fingerprints(&key.pub_file);
        assert_eq!(theirs, vec![fingerprint_sha256(&key.blob)]);
        kh.push_str(&format!("h-{algo} {}\n", key.text()));
    }
    // The same through a known_hosts file: every line parsed, same fingerprints in order.
    let file = dir.path().join("known_hosts");
    fs::write(&file, &kh).unwrap();
    let known = KnownHosts::load(&[&file]);
    assert!(known.warnings().is_empty(), "{:?}", known.warnings());
    let ours: Vec<String> = known.entries().iter().map(|e| e.fingerprint()).collect();
    assert_eq!(ours, keygen_fingerprints(&file));
    let algos: Vec<&str> = known.entries().iter().map(|e| e.algorithm()).collect();
    assert_eq!(algos, expected_algorithms);
}

#[test]
fn lookup_agrees_with_ssh_keygen_find() {
    let dir = TempDir::new().unwrap();
    let k = ed25519(dir.path(), "k").text();

    // Hashed lines come from ssh-keygen -H on a clean file (it refuses wildcards and bad
    // lines), then get appended to a file with everything else.
    let to_hash = dir.path().join("to_hash");
    fs::write(
        &to_hash,
        format!("hashed1 {k}\n[hashed2]:2200 {k}\nhashed3,hashed4 {k}\n"),
    )
    .unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-H", "-f"])
        .arg(&to_hash)
        .status()
        .unwrap();
    assert!(st.success());
    let hashed = fs::read_to_string(&to_hash).unwrap();
    assert_eq!(hashed.lines().filter(|l| l.starts_with("|1|")).count(), 4);

    let text = format!(
        "# a comment\n\
         web1,web2 {k}\n\
         [web1]:2222 {k}\n\
         \n\
         *.example.com,!bad.example.com {k}\n\
         !evil.example.com,*.example.com {k}\n\
         db? {k}\n\
         WEB3 {k}\n\
         not a valid line at all\n\
         [*.lab]:* {k}\n\
         @revoked *.example.com {k}\n\
         @cert-authority *.corp {k}\n\
         10.0.0.? {k}\n\
         {hashed}"
    );
    let file = dir.path().join("known_hosts");
    fs::write(&file, &text).unwrap();
    let known = KnownHosts::load(&[&file]);

    let queries: &[(&str, u16)] = &[
        ("web1", 22),
        ("web2", 22),
        ("web3", 22),
        ("web1", 2222),
        ("web2", 2222),
        ("good.example.com", 22),
        ("bad.example.com", 22),
        ("evil.example.com", 22),
        ("a.b.example.com", 22),
        ("example.com", 22),
        ("good.example.com", 2022),
        ("db1", 22),
        ("db12", 22),
        ("x.lab", 22),
        ("x.lab", 2200),
        ("x.corp", 22),
        ("10.0.0.7", 22),
        ("10.0.0.77", 22),
        ("hashed1", 22),
        ("hashed2", 2200),
        ("hashed2", 22),
        ("hashed1", 2200),
        ("hashed3", 22),
        ("hashed4", 22),
        ("unknown", 22),
    ];
    let mut nonempty = 0;
    for &(host, port) in queries {
        let name = lookup_name(host, port);
        let theirs = keygen_find(&name, &file);
        let ours = ours_find(&known, host, port);
        assert_eq!(ours, theirs, "lookup of {name}");
        nonempty += usize::from(!theirs.is_empty());
    }
    // The oracle is not vacuous: 16 of the 25 names are found, 9 are not.
    assert_eq!(nonempty, 16);

    // Uppercase lookups match too (ssh lowercases the name before looking it up).
    assert_eq!(ours_find(&known, "WEB1", 22), ours_find(&known, "web1", 22));
    // Negation: bad.example.com matches line 11 (@revoked *.example.com) only.
    assert_eq!(
        ours_find(&known, "bad.example.com", 22),
        BTreeSet::from([6, 11])
    );
    // The garbled line is reported, with its number.
    assert!(matches!(
        known.warnings(),
        [Warning::BadLine { line: 9, .. }]
    ));
}

#[test]
fn verdicts_for_trusted_mismatch_other_types_unknown_revoked() {
    let dir = TempDir::new().unwrap();
    let good = ed25519(dir.path(), "good");
    let other = ed25519(dir.path(), "other");
    let stolen = ed25519(dir.path(), "stolen");
    let ec = keygen(dir.path(), "ec", &["-t", "ecdsa", "-b", "256"]);

    let user = dir.path().join("known_hosts");
    let system = dir.path().join("ssh_known_hosts");
    fs::write(
        &user,
        format!(
            "web1 {}\n[web1]:2222 {}\nonlyec {}\nstolenhost {}\n",
            good.text(),
            other.text(),
            ec.text(),
            stolen.text()
        ),
    )
    .unwrap();
    fs::write(
        &system,
        format!(
            "# system file\n@revoked * {}\n@cert-authority * {}\nweb2 {}\n",
            stolen.text(),
            other.text(),
            good.text()
        ),
    )
    .unwrap();
    let missing = dir.path().join("does-not-exist");
    let known = KnownHosts::load(&[&user, &missing, &system]);
    assert!(known.warnings().is_empty(), "{:?}", known.warnings());

    // Trusted, with the exact location; the ecdsa key of another host does not interfere.
    assert_eq!(
        known.check("web1", 22, "ssh-ed25519", &good.blob),
        Verdict::Trusted {
            location: sortie_knownhosts::Location {
                file: user.clone(),
                line: 1,
                algorithm: "ssh-ed25519".into(),
                fingerprint: fingerprint_sha256(&good.blob),
            }
        }
    );
    // A key from the second file.
    match known.check("web2", 22, "ssh-ed25519", &good.blob) {
        Verdict::Trusted { location } => {
            assert_eq!((location.file, location.line), (system.clone(), 4))
        }
        v => panic!("{v:?}"),
    }

    // Mismatch: same type, other key; points at the recorded line, fingerprint of the offer.
    match known.check("web1", 22, "ssh-ed25519", &other.blob) {
        Verdict::Mismatch {
            offered_algorithm,
            offered_fingerprint,
            recorded,
        } => {
            assert_eq!(offered_algorithm, "ssh-ed25519");
            assert_eq!(offered_fingerprint, keygen_fingerprints(&other.pub_file)[0]);
            assert_eq!(recorded.len(), 1);
            assert_eq!(
                (recorded[0].file.clone(), recorded[0].line),
                (user.clone(), 1)
            );
            assert_eq!(
                recorded[0].fingerprint,
                keygen_fingerprints(&good.pub_file)[0]
            );
        }
        v => panic!("{v:?}"),
    }
    // The [host]:port line is separate: on 2222, `good` is a mismatch against line 2 and the
    // bare-host line is not consulted (ssh only falls back when nothing is known for the port).
    match known.check("web1", 2222, "ssh-ed25519", &good.blob) {
        Verdict::Mismatch { recorded, .. } => assert_eq!(recorded[0].line, 2),
        v => panic!("{v:?}"),
    }
    // ... whereas on a port with no entry, the bare host's key is accepted, as ssh does.
    match known.check("web1", 2200, "ssh-ed25519", &good.blob) {
        Verdict::Trusted { location } => assert_eq!(location.line, 1),
        v => panic!("{v:?}"),
    }
    assert!(matches!(
        known.check("web1", 2200, "ssh-ed25519", &other.blob),
        Verdict::Unknown { .. }
    ));

    // Host known only with an ecdsa key, offered ed25519.
    match known.check("onlyec", 22, "ssh-ed25519", &good.blob) {
        Verdict::OtherAlgorithmsKnown { recorded, .. } => {
            assert_eq!(recorded.len(), 1);
            assert_eq!(recorded[0].algorithm, "ecdsa-sha2-nistp256");
            assert_eq!(recorded[0].line, 3);
        }
        v => panic!("{v:?}"),
    }
    assert!(known
        .check("onlyec", 22, "ecdsa-sha2-nistp256", &ec.blob)
        .is_trusted());

    // Revoked wins even where a plain line trusts the key, and applies to any host under `*`.
    for host in ["stolenhost", "anything.example.com"] {
        match known.check(host, 22, "ssh-ed25519", &stolen.blob) {
            Verdict::Revoked { location } => {
                assert_eq!((location.file, location.line), (system.clone(), 2))
            }
            v => panic!("{host}: {v:?}"),
        }
    }

    // A revocation for the bare host also covers other ports of that host.
    let bare_revoked = KnownHosts::parse_str(
        &format!("@revoked web9 {}\n", stolen.text()),
        Path::new("kh"),
    );
    assert!(matches!(
        bare_revoked.check("web9", 2222, "ssh-ed25519", &stolen.blob),
        Verdict::Revoked { .. }
    ));

    // A @cert-authority key is never trusted as a plain host key.
    let v = known.check("newhost", 22, "ssh-ed25519", &other.blob);
    assert!(v.may_accept_new(), "{v:?}");
    assert_eq!(
        v,
        Verdict::Unknown {
            offered_algorithm: "ssh-ed25519".into(),
            offered_fingerprint: fingerprint_sha256(&other.blob),
        }
    );
}

#[test]
fn rsa_signature_algorithm_names_check_ssh_rsa_keys() {
    let dir = TempDir::new().unwrap();
    let rsa = keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
    let known = KnownHosts::parse_str(&format!("h {}\n", rsa.text()), Path::new("kh"));
    assert!(known.check("h", 22, "rsa-sha2-512", &rsa.blob).is_trusted());
    assert_eq!(known.algorithms_for("h", 22), vec!["ssh-rsa".to_owned()]);
}

#[test]
fn algorithms_for_lists_plain_types_in_file_order() {
    let dir = TempDir::new().unwrap();
    let ed = ed25519(dir.path(), "ed").text();
    let ec = keygen(dir.path(), "ec", &["-t", "ecdsa", "-b", "384"]).text();
    let text = format!(
        "@revoked h2 {ed}\n@cert-authority h2 {ed}\nh,other {ec}\n*.x {ed}\nh {ed}\nh {ec}\n"
    );
    let known = KnownHosts::parse_str(&text, Path::new("kh"));
    assert_eq!(
        known.algorithms_for("h", 22),
        vec!["ecdsa-sha2-nistp384".to_owned(), "ssh-ed25519".to_owned()]
    );
    assert_eq!(known.algorithms_for("h", 2222), Vec::<String>::new());
    assert_eq!(
        known.algorithms_for("a.x", 22),
        vec!["ssh-ed25519".to_owned()]
    );
    // Revoked and CA lines say nothing about which key the host should present.
    assert_eq!(known.algorithms_for("h2", 22), Vec::<String>::new());
}

#[test]
fn any_matching_line_trusts_even_if_another_line_has_an_old_key() {
    let dir = TempDir::new().unwrap();
    let old = ed25519(dir.path(), "old");
    let new = ed25519(dir.path(), "new");
    let text = format!("h {}\nh {}\n", old.text(), new.text());
    let known = KnownHosts::parse_str(&text, Path::new("kh"));
    match known.check("h", 22, "ssh-ed25519", &new.blob) {
        Verdict::Trusted { location } => assert_eq!(location.line, 2),
        v => panic!("{v:?}"),
    }
    assert!(known.check("h", 22, "ssh-ed25519", &old.blob).is_trusted());
}

#[test]
fn unreadable_files_and_garbled_lines_are_warnings() {
    let dir = TempDir::new().unwrap();
    let k = ed25519(dir.path(), "k");
    let file = dir.path().join("kh");
    let mut bytes = format!("good {}\n", k.text()).into_bytes();
    bytes.extend_from_slice(b"\xff\xfe garbage \x00\n");
    bytes.extend_from_slice(format!("bad ssh-ed25519 {}x\n", &k.b64[..20]).as_bytes());
    bytes.extend_from_slice(format!("also-good {} trailing comment", k.text()).as_bytes());
    fs::write(&file, bytes).unwrap();
    let a_directory = dir.path().to_path_buf();
    let known = KnownHosts::load(&[a_directory.clone(), file.clone()]);
    let hosts: Vec<&str> = known.entries().iter().map(|e| e.hosts()).collect();
    assert_eq!(hosts, ["good", "also-good"]);
    assert_eq!(known.entries()[1].comment(), "trailing comment");
    let w = known.warnings();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(matches!(&w[0], Warning::Unreadable { file, .. } if *file == a_directory));
    assert!(matches!(&w[1], Warning::BadLine { line: 2, .. }));
    assert!(matches!(
        &w[2],
        Warning::BadLine {
            line: 3,
            column: 17,
            problem: LineProblem::BadBase64 | LineProblem::BadKeyBlob,
            ..
        }
    ));
    assert!(w[2]
        .to_string()
        .starts_with(&format!("{}:3:17: ", file.display())));
}

#[test]
fn recorder_creates_private_file_and_writes_what_ssh_reads() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let k = ed25519(dir.path(), "k");
    let other = ed25519(dir.path(), "other");
    let ssh_dir = dir.path().join("home/.ssh");
    let file = ssh_dir.join("known_hosts");
    let rec = Recorder::new(&file);

    let added = rec.record("Web1", 2222, "ssh-ed25519", &k.blob).unwrap();
    assert!(matches!(&added, Recorded::Added { location } if location.line == 1));
    assert_eq!(
        fs::metadata(&ssh_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("[web1]:2222 {}\n", k.text())
    );
    // OpenSSH finds it under the same lookup name, with the same key.
    assert_eq!(keygen_find("[web1]:2222", &file), BTreeSet::from([1]));
    assert_eq!(
        keygen_fingerprints(&file),
        vec![fingerprint_sha256(&k.blob)]
    );

    // Port 22 is written without brackets.
    rec.record("web1", 22, "ssh-ed25519", &k.blob).unwrap();
    assert_eq!(keygen_find("web1", &file), BTreeSet::from([2]));

    // Second time: nothing written.
    assert!(matches!(
        rec.record("web1", 2222, "ssh-ed25519", &k.blob).unwrap(),
        Recorded::AlreadyPresent { location } if location.line == 1
    ));
    // A different key for a known host is refused, not appended.
    match rec.record("web1", 22, "ssh-ed25519", &other.blob).unwrap() {
        Recorded::Refused {
            verdict: Verdict::Mismatch { recorded, .. },
        } => assert_eq!(recorded[0].line, 2),
        r => panic!("{r:?}"),
    }
    assert_eq!(fs::read_to_string(&file).unwrap().lines().count(), 2);

    // Bad input is an error, not a broken line.
    assert!(matches!(
        rec.record("a,b", 22, "ssh-ed25519", &k.blob),
        Err(RecordError::InvalidHost { .. })
    ));
    assert!(matches!(
        rec.record("h", 22, "ssh-rsa", &k.blob),
        Err(RecordError::InvalidKey { .. })
    ));
}

/// `HashKnownHosts yes`: the recorder writes `|1|salt|hash` lines that `ssh-keygen -F` finds
/// (and only for the name recorded), each with its own salt, and that sortie reads back.
#[test]
fn hashed_recording_is_found_by_ssh_keygen() {
    let dir = TempDir::new().unwrap();
    let k = ed25519(dir.path(), "k");
    let other = ed25519(dir.path(), "other");
    let file = dir.path().join("known_hosts");
    let rec = Recorder::new(&file);
    let added = rec
        .record_as("Web1.Example", 2222, "ssh-ed25519", &k.blob, true)
        .unwrap();
    assert!(matches!(&added, Recorded::Added { location } if location.line == 1));
    rec.record_as("web2", 22, "ssh-ed25519", &k.blob, true)
        .unwrap();
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert!(l.starts_with("|1|") && !l.contains("web"), "{l}");
        assert!(l.ends_with(&k.text()), "{l}");
    }
    let salt = |l: &str| l.split('|').nth(2).unwrap().to_owned();
    assert_ne!(salt(lines[0]), salt(lines[1]));
    assert_eq!(
        keygen_find("[web1.example]:2222", &file),
        BTreeSet::from([1])
    );
    assert_eq!(keygen_find("web2", &file), BTreeSet::from([2]));
    assert!(keygen_find("web1.example", &file).is_empty());
    assert!(keygen_find("[web2]:2222", &file).is_empty());
    // Read back: present once, a different key refused, not appended.
    assert!(matches!(
        rec.record_as("web2", 22, "ssh-ed25519", &k.blob, true).unwrap(),
        Recorded::AlreadyPresent { location } if location.line == 2
    ));
    assert!(matches!(
        rec.record_as("web2", 22, "ssh-ed25519", &other.blob, true)
            .unwrap(),
        Recorded::Refused { .. }
    ));
    assert_eq!(fs::read_to_string(&file).unwrap().lines().count(), 2);
}

#[test]
fn recorder_never_glues_onto_an_unterminated_last_line() {
    let dir = TempDir::new().unwrap();
    let k = ed25519(dir.path(), "k");
    let file = dir.path().join("known_hosts");
    fs::write(&file, format!("old {}", k.text())).unwrap();
    let added = Recorder::new(&file)
        .record("new", 22, "ssh-ed25519", &k.blob)
        .unwrap();
    assert!(matches!(added, Recorded::Added { location } if location.line == 2));
    let known = KnownHosts::load(&[&file]);
    assert!(known.warnings().is_empty());
    assert!(known.check("old", 22, "ssh-ed25519", &k.blob).is_trusted());
    assert!(known.check("new", 22, "ssh-ed25519", &k.blob).is_trusted());
}

#[test]
fn concurrent_recording_adds_each_host_once_without_interleaving() {
    let dir = TempDir::new().unwrap();
    let keys: Vec<Key> = (0..4)
        .map(|i| keygen(dir.path(), &format!("k{i}"), &["-t", "ecdsa", "-b", "521"]))
        .collect();
    let file = dir.path().join("known_hosts");
    let rec = Arc::new(Recorder::new(&file));
    const HOSTS: usize = 60;
    const THREADS: usize = 12;
    // Every thread records every host (in a different order), as many connections to the same
    // fleet would.
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let rec = Arc::clone(&rec);
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut added = 0;
                for i in 0..HOSTS {
                    let h = (i * 7 + t * 13) % HOSTS;
                    let key = &keys[h % keys.len()];
                    let port = if h % 3 == 0 { 22 } else { 2000 + h as u16 };
                    match rec
                        .record(&format!("host{h}.fleet"), port, &key.algorithm, &key.blob)
                        .unwrap()
                    {
                        Recorded::Added { .. } => added += 1,
                        Recorded::AlreadyPresent { .. } => {}
                        r => panic!("{r:?}"),
                    }
                }
                added
            })
        })
        .collect();
    let total_added: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total_added, HOSTS);

    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), HOSTS);
    let known = KnownHosts::load(&[&file]);
    assert!(known.warnings().is_empty(), "{:?}", known.warnings());
    let distinct: BTreeSet<&str> = known.entries().iter().map(|e| e.hosts()).collect();
    assert_eq!(distinct.len(), HOSTS);
    for h in 0..HOSTS {
        let key = &keys[h % keys.len()];
        let port = if h % 3 == 0 { 22 } else { 2000 + h as u16 };
        assert!(known
            .check(&format!("host{h}.fleet"), port, &key.algorithm, &key.blob)
            .is_trusted());
    }
    // OpenSSH reads every line as a key.
    assert_eq!(keygen_fingerprints(&file).len(), HOSTS);
    assert!(known.entries().iter().all(|e| e.marker() == Marker::None));
}
