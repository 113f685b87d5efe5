//! Oracle tests: sortie's ssh_config resolution against the real `ssh -G -F FILE HOST`.
//!
//! `ssh -G` only prints the configuration; it never connects. The fixtures live in
//! `tests/ssh_configs/`; `@DIR@` in them is replaced by the temp directory they are copied to,
//! so Include globs are absolute and deterministic. OpenSSH expands `~` with the password
//! database home (not `$HOME`), so sortie is given `LocalEnv::from_system()`, which does the same.
//!
//! Compared field by field: user, hostname, port, identityfile, certificatefile, forwardagent,
//! identitiesonly, proxyjump, proxycommand, userknownhostsfile, globalknownhostsfile,
//! stricthostkeychecking, connecttimeout, serveraliveinterval, serveralivecountmax,
//! hostkeyalias, hashknownhosts.
//! Deliberate differences, handled here: `ssh -G` prints identity files unexpanded (the test
//! expands them with its own small expander); sortie's 10 s / 15 s defaults for connecttimeout
//! and serveraliveinterval are applied only in `HostConfig`, not in the `Effective` compared here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sortie_inventory::sshconfig::{parse_proxy_jump, Effective, SshConfig, SshOptions};
use sortie_inventory::{LocalEnv, Overrides, Resolver, SelectRequest, StrictHostKeyChecking};

fn ssh_available() -> bool {
    Command::new("ssh").arg("-V").output().is_ok()
}

/// Copies the fixtures into a temp dir, substituting `@DIR@`.
fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_configs");
    copy_dir(&src, dir.path(), dir.path());
    dir
}

fn copy_dir(src: &Path, dst: &Path, root: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to, root);
        } else {
            let text = std::fs::read_to_string(e.path()).unwrap();
            std::fs::write(&to, text.replace("@DIR@", &root.display().to_string())).unwrap();
        }
    }
}

/// Runs `ssh -G` and returns key -> values (keys repeated for identityfile).
fn ssh_g(
    config: &Path,
    host: &str,
    opts: &[&str],
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-G").arg("-F").arg(config);
    for o in opts {
        cmd.arg("-o").arg(o);
    }
    let out = cmd.arg(host).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once(' ') {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    Ok(map)
}

fn ours(config: &Path, host: &str, preset: SshOptions) -> Effective {
    let env = LocalEnv::from_system();
    let cfg = SshConfig::load(Some(config), &env).unwrap();
    let mut o = preset;
    cfg.apply(host, &mut o, &env).unwrap();
    o.finish(host, &env).unwrap()
}

/// The test's own expansion of what `ssh -G` prints for IdentityFile.
fn expand_identity(raw: &str, env: &LocalEnv, e: &Effective, host_arg: &str) -> PathBuf {
    let home = env.home.display().to_string();
    let s = if let Some(rest) = raw.strip_prefix("~/") {
        format!("{home}/{rest}")
    } else {
        raw.to_string()
    };
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home),
            Some('u') => out.push_str(&env.user),
            Some('h') => out.push_str(&e.hostname),
            Some('r') => out.push_str(&e.user),
            Some('n') => out.push_str(host_arg),
            Some('p') => out.push_str(&e.port.to_string()),
            other => panic!("test expander does not know %{other:?}"),
        }
    }
    PathBuf::from(out)
}

fn one<'a>(m: &'a BTreeMap<String, Vec<String>>, k: &str) -> &'a str {
    m.get(k)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or_else(|| panic!("ssh -G printed no {k}"))
}

fn paths(v: &[PathBuf]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn compare(config: &Path, host: &str, opts: &[&str], preset: SshOptions) {
    let env = LocalEnv::from_system();
    let g = ssh_g(config, host, opts).unwrap_or_else(|e| panic!("ssh -G {host} failed: {e}"));
    let e = ours(config, host, preset);
    let ctx = format!("host {host} with {opts:?} in {}", config.display());
    assert_eq!(one(&g, "user"), e.user, "user: {ctx}");
    assert_eq!(one(&g, "hostname"), e.hostname, "hostname: {ctx}");
    assert_eq!(one(&g, "port"), e.port.to_string(), "port: {ctx}");
    let want_ids: Vec<PathBuf> = g["identityfile"]
        .iter()
        .filter(|f| *f != "none")
        .map(|f| expand_identity(f, &env, &e, host))
        .collect();
    assert_eq!(want_ids, e.identity_files, "identityfile: {ctx}");
    let want_certs: Vec<PathBuf> = g
        .get("certificatefile")
        .map(|v| {
            v.iter()
                .filter(|f| *f != "none")
                .map(|f| expand_identity(f, &env, &e, host))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(want_certs, e.certificate_files, "certificatefile: {ctx}");
    let fa = if e.forward_agent { "yes" } else { "no" };
    assert_eq!(one(&g, "forwardagent"), fa, "forwardagent: {ctx}");
    let io = if e.identities_only { "yes" } else { "no" };
    assert_eq!(one(&g, "identitiesonly"), io, "identitiesonly: {ctx}");
    let want_jump = g
        .get("proxyjump")
        .map(|v| parse_proxy_jump(&v[0]).unwrap())
        .unwrap_or_default();
    assert_eq!(want_jump, e.proxy_jump, "proxyjump: {ctx}");
    assert_eq!(
        g.get("proxycommand").map(|v| v[0].clone()),
        e.proxy_command,
        "proxycommand: {ctx}"
    );
    assert_eq!(
        one(&g, "userknownhostsfile"),
        paths(&e.user_known_hosts_files),
        "userknownhostsfile: {ctx}"
    );
    assert_eq!(
        one(&g, "globalknownhostsfile"),
        paths(&e.global_known_hosts_files),
        "globalknownhostsfile: {ctx}"
    );
    assert_eq!(
        one(&g, "stricthostkeychecking"),
        e.strict_host_key_checking.ssh_g(),
        "stricthostkeychecking: {ctx}"
    );
    let ct = e
        .connect_timeout
        .map_or("none".to_string(), |d| d.as_secs().to_string());
    assert_eq!(one(&g, "connecttimeout"), ct, "connecttimeout: {ctx}");
    let sai = e.server_alive_interval.map_or(0, |d| d.as_secs());
    assert_eq!(
        one(&g, "serveraliveinterval"),
        sai.to_string(),
        "serveraliveinterval: {ctx}"
    );
    assert_eq!(
        one(&g, "serveralivecountmax"),
        e.server_alive_count_max.to_string(),
        "serveralivecountmax: {ctx}"
    );
    assert_eq!(
        g.get("hostkeyalias").map(|v| v[0].clone()),
        e.host_key_alias,
        "hostkeyalias: {ctx}"
    );
    let hk = if e.hash_known_hosts { "yes" } else { "no" };
    assert_eq!(one(&g, "hashknownhosts"), hk, "hashknownhosts: {ctx}");
}

fn check_all(file: &str, hosts: &[&str]) {
    if !ssh_available() {
        eprintln!("ssh not installed; skipping");
        return;
    }
    let dir = fixtures();
    let cfg = dir.path().join(file);
    for h in hosts {
        compare(&cfg, h, &[], SshOptions::default());
    }
}

#[test]
fn patterns_negation_tokens_and_first_value_wins() {
    check_all(
        "basic.conf",
        &[
            "web1",
            "web9",
            "web10",
            "WEB1",
            "db.example",
            "quoted-x",
            "Other.Host",
            "10.1.2.3",
        ],
    );
}

#[test]
fn include_globs_nested_and_conditional() {
    check_all(
        "include.conf",
        &["inc-a", "inc-b", "inc-c", "other", "nomatch-ever", "zzz"],
    );
}

#[test]
fn proxy_jump_multi_hop_none_and_proxy_command() {
    check_all(
        "jump.conf",
        &["multi", "nojump", "cmdfirst", "jumpfirst", "anything"],
    );
}

#[test]
fn match_host_originalhost_user_localuser_all() {
    check_all("match.conf", &["m-1", "m-2", "m-3", "plain", "M-1"]);
}

#[test]
fn command_line_values_behave_like_ssh_dash_o() {
    if !ssh_available() {
        return;
    }
    let dir = fixtures();
    let cfg = dir.path().join("match.conf");
    // A preset user is seen by `Match user`, like `ssh -o User=admin`.
    let preset = SshOptions {
        user: Some("admin".into()),
        ..Default::default()
    };
    compare(&cfg, "m-1", &["User=admin"], preset);
    let preset = SshOptions {
        port: Some(4000),
        hostname: Some(sortie_inventory::sshconfig::Sourced::new(
            "Given.%h".to_string(),
            "test",
        )),
        ..Default::default()
    };
    compare(&cfg, "m-2", &["Port=4000", "HostName=Given.%h"], preset);
    let cfg = dir.path().join("basic.conf");
    let preset = SshOptions {
        identity_files: vec![sortie_inventory::sshconfig::Sourced::new(
            "/cli/key".to_string(),
            "test",
        )],
        strict_host_key_checking: Some(StrictHostKeyChecking::AcceptNew),
        connect_timeout: Some(4),
        ..Default::default()
    };
    compare(
        &cfg,
        "web1",
        &[
            "IdentityFile=/cli/key",
            "StrictHostKeyChecking=accept-new",
            "ConnectTimeout=4",
        ],
        preset,
    );
}

#[test]
fn malformed_lines_are_refused_by_both_with_the_line() {
    if !ssh_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, usize, usize)] = &[
        ("Host a\n  Port abc\n", 2, 8),
        ("Host a\n  User \"bob\n", 2, 8),
        ("Host a\n  Port 22 23\n", 2, 11),
        ("Host a\n  StrictHostKeyChecking maybe\n", 2, 25),
        ("Host a\n  ConnectTimeout soon\n", 2, 18),
        ("Host a\n  ProxyJump a:0\n", 2, 13),
        ("Host a\n  UserKnownHostsFile /a none\n", 2, 25),
        ("Match all host a\n", 1, 7),
        ("Match host\n", 1, 7),
        ("Host b\n  IdentitiesOnly maybe\n", 2, 18),
        ("Host b\n  ServerAliveCountMax x\n", 2, 23),
        ("Host b\n  HostName\n", 2, 3),
    ];
    for (i, (text, line, col)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.conf"));
        std::fs::write(&p, text).unwrap();
        let err = ssh_g(&p, "a", &[]).expect_err(&format!("ssh accepted {text:?}"));
        assert!(
            err.contains(&format!("line {line}")),
            "ssh said {err:?} for {text:?}"
        );
        let ours = SshConfig::load(Some(&p), &LocalEnv::from_system()).unwrap_err();
        let msg = ours.to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}:{col}: ", p.display())),
            "sortie said {msg:?} for {text:?}"
        );
    }
}

#[test]
fn match_criterion_equals_value_forms_canonical_and_final() {
    check_all("match_eq.conf", &["m-1", "m-2", "m-3", "plain", "M-1"]);
    check_all("final_only.conf", &["f-1", "f-2", "other"]);
}

/// `Match exec` runs the same commands, with the same tokens, in the same order as `ssh -G`
/// (the commands append to a log in the temp dir), and gives the same settings.
#[test]
fn match_exec_runs_like_openssh() {
    if !ssh_available() {
        eprintln!("ssh not installed; skipping");
        return;
    }
    let dir = fixtures();
    let cfg = dir.path().join("exec.conf");
    let log = dir.path().join("exec.log");
    std::fs::write(dir.path().join("flag-e-1"), "").unwrap();
    std::fs::write(dir.path().join("flag-other"), "").unwrap();
    for h in ["e-1", "e-2", "e-3", "other", "E-1"] {
        let _ = std::fs::remove_file(&log);
        ssh_g(&cfg, h, &[]).unwrap_or_else(|e| panic!("ssh -G {h} failed: {e}"));
        let theirs = std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::remove_file(&log).unwrap();
        ours(&cfg, h, SshOptions::default());
        let mine = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(mine, theirs, "commands run for {h}");
        assert!(
            theirs.contains("first ") && theirs.contains("final "),
            "{theirs}"
        );
        assert!(!theirs.contains("never"), "{theirs}");
        compare(&cfg, h, &[], SshOptions::default());
    }
}

#[test]
fn match_exec_failures_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.conf");
    std::fs::write(
        &p,
        "Host *\n  Port 22\nMatch exec \"kill -9 $$\"\n  User x\n",
    )
    .unwrap();
    let env = LocalEnv::from_system();
    let cfg = SshConfig::load(Some(&p), &env).unwrap();
    let err = cfg
        .apply("h", &mut SshOptions::default(), &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}:3:7", p.display())) && err.contains("abnormally"),
        "{err}"
    );
    std::fs::write(&p, "Match exec \"echo %Z\"\n  User x\n").unwrap();
    let cfg = SshConfig::load(Some(&p), &env).unwrap();
    let err = cfg
        .apply("h", &mut SshOptions::default(), &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("%Z"), "{err}");
}

/// Each `Match exec` command runs once per host, however often the host is resolved (a jump
/// host shared by many hosts): the command appends to a file, which keeps one line per host.
#[test]
fn match_exec_runs_once_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.conf");
    let log = dir.path().join("runs");
    std::fs::write(
        &p,
        format!("Match exec \"echo %n >> {}\"\n  User x\n", log.display()),
    )
    .unwrap();
    let env = LocalEnv::from_system();
    let cfg = SshConfig::load(Some(&p), &env).unwrap();
    for h in ["a", "b", "a", "a", "b"] {
        let mut o = SshOptions::default();
        cfg.apply(h, &mut o, &env).unwrap();
        assert_eq!(o.user.as_deref(), Some("x"));
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\nb\n");
}

fn resolve_text(text: &str, host: &str, preset: SshOptions) -> Result<Effective, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.conf");
    std::fs::write(&p, text).unwrap();
    let env = LocalEnv::from_system();
    let cfg = SshConfig::load(Some(&p), &env).map_err(|e| e.to_string())?;
    let mut o = preset;
    cfg.apply(host, &mut o, &env).map_err(|e| e.to_string())?;
    o.finish(host, &env).map_err(|e| e.to_string())
}

/// OpenSSH 9.2 does not know `Match tagged`; expectations from ssh_config(5): `Tag` (or
/// `ssh -P`) names a configuration, `Match tagged` tests it with a pattern list, and an empty
/// list matches when no tag is set.
#[test]
fn match_tagged_follows_ssh_config_5() {
    let text = "Host t-*\n  Tag prod\nMatch tagged=pr*,!prod-eu\n  User produser\nMatch tagged \"\"\n  User untagged\nMatch !tagged prod\n  Port 2400\n";
    let e = resolve_text(text, "t-1", SshOptions::default()).unwrap();
    assert_eq!((e.user.as_str(), e.port), ("produser", 22));
    let e = resolve_text(text, "x", SshOptions::default()).unwrap();
    assert_eq!((e.user.as_str(), e.port), ("untagged", 2400));
    // Like `ssh -P prod-eu`: the preset tag beats the file's Tag.
    let preset = SshOptions {
        tag: Some("prod-eu".into()),
        ..Default::default()
    };
    let e = resolve_text(text, "t-1", preset).unwrap();
    assert_ne!(e.user, "produser");
    assert_eq!(e.port, 2400);
}

/// OpenSSH 9.2 does not know `Match localnetwork`; expectations from ssh_config(5): it matches
/// when an address of an interface that is up lies in one of the CIDR networks; the loopback
/// interface is always up here, TEST-NET-3 (203.0.113.0/24) is not configured (this machine itself uses TEST-NET-1).
#[test]
fn match_localnetwork_follows_ssh_config_5() {
    let text = "Match localnetwork 203.0.113.0/24\n  User testnet\nMatch localnetwork=203.0.113.0/24,127.0.0.0/8\n  Port 2500\nMatch !localnetwork 203.0.113.0/24\n  ConnectTimeout 25\n";
    let e = resolve_text(text, "h", SshOptions::default()).unwrap();
    assert_ne!(e.user, "testnet");
    assert_eq!(e.port, 2500);
    assert_eq!(e.connect_timeout.map(|d| d.as_secs()), Some(25));
    for bad in [
        "10.0.0.1/8",
        "10.0.0.0/33",
        "web",
        "10.0.0.0/8,",
        "!10.0.0.0/8",
    ] {
        let err = resolve_text(
            &format!("Host *\n  Port 22\nMatch localnetwork {bad}\n"),
            "h",
            SshOptions::default(),
        )
        .unwrap_err();
        assert!(err.contains(":3:7: "), "{bad}: {err}");
    }
}

/// `%C` is OpenSSH 9.2's hash (what `ssh -G` gives a `Match exec` command at the end of the
/// file, where host, port and user are final), and `ConnectTimeout none` means no timeout.
#[test]
fn percent_c_and_connect_timeout_none_agree_with_ssh() {
    if !ssh_available() {
        eprintln!("ssh not installed; skipping");
        return;
    }
    let dir = fixtures();
    let cfg = dir.path().join("timeout_c.conf");
    for h in ["c-1", "c-2"] {
        let g = ssh_g(&cfg, h, &[]).unwrap();
        let c = std::fs::read_to_string(dir.path().join(format!("c-{h}"))).unwrap();
        let c = c.trim();
        assert_eq!(c.len(), 40, "{c}");
        let e = ours(&cfg, h, SshOptions::default());
        assert_eq!(e.identity_files, [dir.path().join(format!("id-{c}"))]);
        assert_eq!(
            e.user_known_hosts_files,
            [dir.path().join(format!("kh-{c}"))]
        );
        assert_eq!(one(&g, "connecttimeout"), "none");
        assert!(e.connect_timeout_none);
    }
    let e = ours(&cfg, "t-later", SshOptions::default());
    assert_eq!(e.connect_timeout.map(|d| d.as_secs()), Some(7));
    for h in ["t-none", "t-later", "t-x"] {
        let g = ssh_g(&cfg, h, &[]).unwrap();
        let e = ours(&cfg, h, SshOptions::default());
        let ct = e
            .connect_timeout
            .map_or("none".into(), |d| d.as_secs().to_string());
        assert_eq!(one(&g, "connecttimeout"), ct, "{h}");
    }
    // Through the resolver: none is no timeout (zero), not sortie's 10 s default, and
    // `sortie hosts --resolved` prints what `ssh -G` prints.
    let req = SelectRequest {
        hosts: vec!["t-none,t-x".into()],
        overrides: Overrides {
            ssh_config: Some(cfg.clone()),
            ..Default::default()
        },
        env: Some(LocalEnv {
            cwd: dir.path().to_path_buf(),
            ..LocalEnv::from_system()
        }),
        ..Default::default()
    };
    let r = Resolver::new(&req).unwrap();
    let hosts = r.select(&req).unwrap();
    assert_eq!(hosts[0].connect_timeout, std::time::Duration::ZERO);
    assert!(hosts[0].ssh_g_lines().contains("connecttimeout none\n"));
    assert_eq!(hosts[1].connect_timeout.as_secs(), 7);
}

#[test]
fn host_config_applies_sortie_defaults_and_ssh_g_lines() {
    let dir = fixtures();
    let req = SelectRequest {
        hosts: vec!["alice@web1:2022,web9".into()],
        overrides: Overrides {
            ssh_config: Some(dir.path().join("basic.conf")),
            ..Default::default()
        },
        env: Some(LocalEnv {
            cwd: dir.path().to_path_buf(),
            ..LocalEnv::from_system()
        }),
        ..Default::default()
    };
    let r = Resolver::new(&req).unwrap();
    let hosts = r.select(&req).unwrap();
    assert_eq!(hosts[0].name, "web1:2022");
    assert_eq!(hosts[0].user, "alice");
    assert_eq!(hosts[0].port, 2022);
    assert_eq!(hosts[0].hostname, "web1.internal.example");
    // basic.conf sets `ConnectTimeout none` for web1: no timeout, as in OpenSSH (issue 16; it
    // used to become sortie's 10 s default), and ServerAliveInterval 20.
    assert_eq!(hosts[0].connect_timeout, std::time::Duration::ZERO);
    assert_eq!(hosts[0].server_alive_interval.as_secs(), 20);
    let lines = hosts[0].ssh_g_lines();
    assert!(
        lines.contains("user alice\nhostname web1.internal.example\nport 2022\n"),
        "{lines}"
    );
    assert!(
        lines.contains("stricthostkeychecking accept-new\n"),
        "{lines}"
    );
    assert!(!lines.contains("proxyjump"), "{lines}");
    // web9 is excluded from `Host web? !web9`, so `Host *` gives it user fallback.
    assert_eq!(hosts[1].user, "fallback");
    assert_eq!(
        hosts[1].strict_host_key_checking,
        StrictHostKeyChecking::Yes
    );
}
