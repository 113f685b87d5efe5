//! Hostile input and secrets.
//!
//! - Every file of the malformed corpus (`fuzz/malformed/<kind>/`, shared with the fuzz
//!   targets) is refused by the real `sortie` with exit code 2 and a message naming
//!   `FILE:LINE:COL`, and no host is contacted: the only host in play is a `TcpListener`
//!   that must see no connection. A file named `NAME@L-C.ext` must be reported at `L:C`.
//! - No secret (key passphrase, `--env`/`--env-file` values, `env_from_controller` values)
//!   appears in anything sortie writes: stderr at `-vvv`, JSON events, output files, job logs,
//!   results directories, launch logs and reports.

mod faults_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faults_support::{run, sortie, sshd_or_skip, summary_line, Finished, RUN_LIMIT};

fn malformed_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/malformed")
}

fn files(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(malformed_root().join(kind))
        .unwrap_or_else(|e| panic!("fuzz/malformed/{kind}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// `L:C` from a file name `NAME@L-C[.ext]`.
fn expected_location(path: &Path) -> Option<String> {
    let stem = path.file_name()?.to_str()?;
    let at = stem.rsplit_once('@')?.1;
    let at = at.split('.').next()?;
    let (l, c) = at.split_once('-')?;
    Some(format!("{l}:{c}"))
}

/// A copy of `src` in `dir` (same name) with `@PORT@` replaced by `port`.
fn instantiate(src: &Path, dir: &Path, port: u16) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let out = dir.join(src.file_name().unwrap());
    if text.contains("@PORT@") {
        std::fs::write(&out, text.replace("@PORT@", &port.to_string())).unwrap();
    } else {
        std::fs::write(&out, bytes).unwrap();
    }
    out
}

fn check_refused(kind: &str, file: &Path, done: &Finished) {
    let shown = done.shown();
    assert_eq!(done.code(), Some(2), "{kind} {}: {shown}", file.display());
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let located = regex_like_location(&done.stderr, &name);
    assert!(
        located.is_some(),
        "{kind} {}: no NAME:LINE:COL in the message: {shown}",
        file.display()
    );
    if let Some(want) = expected_location(file) {
        assert!(
            done.stderr.contains(&format!("{name}:{want}")),
            "{kind} {}: expected {name}:{want}: {shown}",
            file.display()
        );
    }
}

/// The first `NAME:LINE:COL` in `text` (LINE and COL numbers).
fn regex_like_location(text: &str, name: &str) -> Option<(usize, usize)> {
    text.match_indices(name).find_map(|(i, _)| {
        let rest = &text[i + name.len()..];
        let rest = rest.strip_prefix(':')?;
        let (l, rest) = rest.split_once(':')?;
        let c: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((l.parse().ok()?, c.parse().ok()?))
    })
}

#[test]
fn malformed_files_are_refused_with_their_place_before_any_host_is_contacted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let limit = Duration::from_secs(20);
    let mut checked = 0;
    for src in files("hostexpr") {
        let f = instantiate(&src, dir.path(), port);
        let done = run(
            sortie().args([
                "exec",
                "-H",
                &format!("{host},^{}", f.display()),
                "--",
                "true",
            ]),
            limit,
        );
        check_refused("host file", &src, &done);
        checked += 1;
    }
    for src in files("inventory") {
        let f = instantiate(&src, dir.path(), port);
        let done = run(
            sortie()
                .args(["exec", "-i"])
                .arg(&f)
                .args(["-g", "web", "--", "true"]),
            limit,
        );
        check_refused("inventory", &src, &done);
        checked += 1;
    }
    for src in files("sshconfig") {
        let f = instantiate(&src, dir.path(), port);
        let done = run(
            sortie()
                .args(["exec", "-F"])
                .arg(&f)
                .args(["-H", &host, "--", "true"]),
            limit,
        );
        check_refused("ssh_config", &src, &done);
        checked += 1;
    }
    for src in files("csv") {
        let f = instantiate(&src, dir.path(), port);
        let done = run(
            sortie()
                .args(["run", "--csv"])
                .arg(&f)
                .args(["-H", &host, "--", "echo {a}"]),
            limit,
        );
        check_refused("csv", &src, &done);
        checked += 1;
    }
    for src in files("plan") {
        let f = instantiate(&src, dir.path(), port);
        let done = run(
            sortie()
                .arg("launch")
                .arg(&f)
                .arg("--run-dir")
                .arg(dir.path().join("run")),
            limit,
        );
        check_refused("plan", &src, &done);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} malformed files");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a host was contacted: {other:?}"),
    }
}

#[test]
fn malformed_known_hosts_lines_are_located_warnings_and_trust_nothing() {
    let Some(sshd) =
        sshd_or_skip("malformed_known_hosts_lines_are_located_warnings_and_trust_nothing")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // OpenSSH skips bad known_hosts lines; so does sortie, but it says where they are, and a
    // skipped line never makes a key trusted.
    let cfg = sshd.ssh_config_for(&[]).unwrap();
    for src in files("knownhosts") {
        let f = instantiate(&src, dir.path(), sshd.port());
        let done = run(
            sortie()
                .args(["exec", "-F"])
                .arg(&cfg)
                .arg("--known-hosts")
                .arg(&f)
                .args(["-H", "127.0.0.1", "--", "echo trusted"]),
            Duration::from_secs(20),
        );
        let shown = done.shown();
        assert_eq!(done.code(), Some(3), "{}: {shown}", src.display());
        assert!(!done.stdout.contains("trusted"), "{shown}");
        assert!(
            summary_line(&done.stderr, "host key refused").is_some(),
            "{}: {shown}",
            src.display()
        );
        // The library reports each skipped line as a located warning (checked by the fuzz
        // target `knownhosts`); the CLI does not print them yet (docs/reliability.md, gaps).
    }
}

const SECRET_ENV: &str = "s3cr3t-env-value-7f1c";
const SECRET_FILE_ENV: &str = "s3cr3t-envfile-value-90ab";
const SECRET_CONTROLLER: &str = "s3cr3t-controller-value-c0de";

/// Every byte sortie produced: its output plus every file under `dirs`.
fn everything(done: &Finished, dirs: &[&Path]) -> Vec<(String, Vec<u8>)> {
    let mut v = vec![
        ("stdout".to_owned(), done.stdout.clone().into_bytes()),
        ("stderr".to_owned(), done.stderr.clone().into_bytes()),
    ];
    fn walk(p: &Path, v: &mut Vec<(String, Vec<u8>)>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), v);
            }
        } else if let Ok(b) = std::fs::read(p) {
            v.push((p.display().to_string(), b));
        }
    }
    for d in dirs {
        walk(d, &mut v);
    }
    v
}

fn assert_no_secret(what: &str, outputs: &[(String, Vec<u8>)], secrets: &[&str]) {
    for (name, bytes) in outputs {
        let text = String::from_utf8_lossy(bytes);
        for s in secrets {
            assert!(
                !text.contains(s),
                "{what}: secret {s:?} found in {name}:\n{}",
                &text[..text.len().min(3000)]
            );
        }
    }
}

/// `sha256sum`'s output line for `value` (`HEX  -`), as the remote shell prints it.
fn sha256_line(value: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

#[test]
fn secrets_never_appear_in_logs_events_or_files() {
    let Some(sshd) = sshd_or_skip("secrets_never_appear_in_logs_events_or_files") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hosts = ["127.0.0.1", "127.0.0.2"];
    let (key, passphrase) = sshd.encrypted_key();
    let askpass = dir.path().join("askpass.sh");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{passphrase}'\n")).unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&askpass)
        .status()
        .unwrap();
    let cfg = sshd
        .ssh_config_with(
            &hosts,
            &[
                &format!("IdentityFile {}", key.display()),
                "IdentitiesOnly yes",
            ],
        )
        .unwrap();
    let secrets = [passphrase, SECRET_ENV, SECRET_FILE_ENV, SECRET_CONTROLLER];
    let with_askpass = |c: &mut std::process::Command| {
        c.env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("SORTIE_SECRET_FROM_CONTROLLER", SECRET_CONTROLLER);
    };
    // The command proves it received the value without printing it; `ENV-OK` appears only in
    // the output, never in the command text that events echo.
    // The values are compared by SHA-256, so the command text holds no secret either.
    let check = format!(
        "test \"$(printf %s \"$SECRET\" | sha256sum)\" = '{}' && echo env-ok | tr a-z A-Z",
        sha256_line(SECRET_ENV)
    );

    for mode in [vec!["--json"], vec!["--out-dir"]] {
        let od = dir.path().join("exec-out");
        let mut c = sortie();
        with_askpass(&mut c);
        c.args(["-vvv", "exec"]).args(&mode);
        if mode[0] == "--out-dir" {
            c.arg(&od);
        }
        c.arg("-F")
            .arg(&cfg)
            .args([
                "-H",
                &hosts.join(","),
                "--env",
                &format!("SECRET={SECRET_ENV}"),
            ])
            .args(["--", &check]);
        let done = run(&mut c, RUN_LIMIT);
        assert_eq!(done.code(), Some(0), "{}", done.shown());
        let all = everything(&done, &[&od]);
        let seen = all
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).matches("ENV-OK").count())
            .sum::<usize>();
        assert_eq!(seen, 2, "{}", done.shown());
        assert_no_secret(&format!("exec {mode:?}"), &all, &secrets);
    }

    // sortie run: --env, --env-file, job log, results directory, JSON events.
    let env_file = dir.path().join("env");
    std::fs::write(
        &env_file,
        format!("# secrets\nFROMFILE={SECRET_FILE_ENV}\n"),
    )
    .unwrap();
    let joblog = dir.path().join("joblog");
    let results = dir.path().join("results");
    let mut c = sortie();
    with_askpass(&mut c);
    c.args(["-vvv", "run", "--json", "-F"])
        .arg(&cfg)
        .args([
            "-H",
            &hosts.join(","),
            "--env",
            &format!("SECRET={SECRET_ENV}"),
            "--env-file",
        ])
        .arg(&env_file)
        .arg("--joblog")
        .arg(&joblog)
        .arg("--results-dir")
        .arg(&results)
        .args([
            "--",
            &format!(
                "test \"$(printf %s \"$FROMFILE\" | sha256sum)\" = '{}' && echo job {{}} && {check}",
                sha256_line(SECRET_FILE_ENV)
            ),
            ":::",
            "1",
            "2",
            "3",
        ]);
    let done = run(&mut c, RUN_LIMIT);
    assert_eq!(done.code(), Some(0), "{}", done.shown());
    let all = everything(&done, &[&joblog, &results]);
    assert!(
        all.iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains("ENV-OK")),
        "{}",
        done.shown()
    );
    assert_no_secret("run", &all, &secrets);

    // sortie launch: env_from_controller values stay out of logs, events and the report.
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"secrets\"\n[groups.box]\nhosts = [\"127.0.0.[1-2]\"]\n\n[roles.w]\n\
             group = \"box\"\ncount = 2\nenv_from_controller = [\"SORTIE_SECRET_FROM_CONTROLLER\"]\n\
             command = \"test \\\"$(printf %s \\\"$SORTIE_SECRET_FROM_CONTROLLER\\\" | sha256sum)\\\" = '{ctl_sum}' && echo ctl-ok | tr a-z A-Z; sleep 30\"\n\
             ready = 'CTL-OK'\nready_timeout = \"20s\"\nstop = [{{ signal = \"TERM\", grace = \"1s\" }}]\n\n\
             [run]\nduration = \"1s\"\n",
            ctl_sum = sha256_line(SECRET_CONTROLLER)
        ),
    )
    .unwrap();
    let run_dir = dir.path().join("launch");
    let mut c = sortie();
    with_askpass(&mut c);
    c.args(["-vvv", "launch", "--json"])
        .arg(&plan)
        .arg("-F")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&run_dir);
    let done = run(&mut c, RUN_LIMIT);
    assert_eq!(done.code(), Some(0), "{}", done.shown());
    let all = everything(&done, &[&run_dir]);
    assert!(
        all.iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains("CTL-OK")),
        "the processes saw the controller's value: {}",
        done.shown()
    );
    assert_no_secret("launch", &all, &secrets);
}
