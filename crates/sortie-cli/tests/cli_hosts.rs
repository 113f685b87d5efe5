//! `sortie hosts`: selection listing and `--resolved` compared line by line with `ssh -G`.

use std::process::Command;

fn sortie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sortie"))
}

/// The fields sortie prints, as `ssh -G` prints them for the same config.
fn ssh_g(config: &std::path::Path, host: &str) -> Option<Vec<(String, String)>> {
    let out = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg(host)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn resolved_matches_ssh_g_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(
        &cfg,
        "Host web*\n  User deploy\n  Port 2200\n  IdentityFile ~/.ssh/web_%h_%r\n  IdentityFile /keys/second\n\
         \x20 ProxyJump bastion.example,jump2:2222\n  ServerAliveInterval 7\n\nHost web03\n  User ignored\n  HostName 10.1.2.3\n\
         \nHost *\n  ConnectTimeout 4\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile /kh/one /kh/two\n  ServerAliveCountMax 5\n  ServerAliveInterval 9\n",
    )
    .unwrap();
    for host in ["web03", "db1"] {
        let Some(oracle) = ssh_g(&cfg, host) else {
            sortie_testkit::skip(
                "resolved_matches_ssh_g_field_by_field",
                "`ssh -G` is not available",
            );
            return;
        };
        let out = sortie()
            .args(["hosts", "-F"])
            .arg(&cfg)
            .args(["--resolved", host])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                l.split_once(' ')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .unwrap()
            })
            .collect();
        for key in [
            "hostname",
            "user",
            "port",
            "proxyjump",
            "userknownhostsfile",
            "stricthostkeychecking",
            "connecttimeout",
            "serveraliveinterval",
            "serveralivecountmax",
        ] {
            let theirs: Vec<&String> = oracle
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v)
                .collect();
            let mine: Vec<&String> = ours
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(mine, theirs, "{host}: {key}");
        }
        // identityfile: ssh -G prints them unexpanded; sortie prints them expanded.
        let ids: Vec<&String> = ours
            .iter()
            .filter(|(k, _)| k == "identityfile")
            .map(|(_, v)| v)
            .collect();
        if host == "web03" {
            assert_eq!(ids.len(), 2, "{ids:?}");
            assert!(ids[0].ends_with("/.ssh/web_10.1.2.3_deploy"), "{ids:?}");
            assert_eq!(ids[1], "/keys/second");
        }
    }
}

#[test]
fn documented_defaults_where_openssh_has_none() {
    // sortie bounds connections by default (10 s) and detects dead peers (15 s x 3).
    let out = sortie()
        .args(["hosts", "-F", "none", "--resolved", "plain"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nconnecttimeout 10\n"), "{text}");
    assert!(text.contains("\nserveraliveinterval 15\n"), "{text}");
    assert!(text.contains("\nserveralivecountmax 3\n"), "{text}");
}

#[test]
fn lists_a_selection_with_ranges_and_excludes() {
    let out = sortie()
        .args([
            "hosts",
            "-F",
            "none",
            "-H",
            "n[1-3,7],web[08-10]",
            "-x",
            "n2,web09",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "n1\nn3\nn7\nweb08\nweb10\n"
    );
}

#[test]
fn fold_prints_the_selection_as_one_expression() {
    let out = sortie()
        .args([
            "hosts",
            "-F",
            "none",
            "-H",
            "rack[1-2]-n[1-3],n08,n9,web[01-10]",
            "-x",
            "web05",
        ])
        .arg("--fold")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "n[9,08],rack[1-2]-n[1-3],web[01-04,06-10]\n"
    );
}

/// A small deterministic generator (xorshift), so a failing set can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One generated set: 1 to 3 patterns of 1 to 3 numbers each, zero padded, unpadded or mixed
/// widths per dimension, as full products, products with holes, or sparse picks.
fn generated_set(rng: &mut Rng) -> Vec<String> {
    const PATTERNS: [&[&str]; 7] = [
        &["cn", ""],
        &["rack", "-n", ""],
        &["r", "c", "n", ".lab"],
        &["10.1.", ".", ""],
        &["gpu", "-", ""],
        &["x", "y", "z", ""],
        &["", "-db", ""],
    ];
    let mut names = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let pieces = PATTERNS[rng.below(PATTERNS.len() as u64) as usize];
        let dims = pieces.len() - 1;
        // Per dimension: first value, count, and width policy (0 none, 2, 3, or 9 = mixed).
        let spec: Vec<(u64, u64, usize)> = (0..dims)
            .map(|_| {
                let width = [0, 0, 2, 3, 9][rng.below(5) as usize];
                (rng.below(12), 1 + rng.below(9), width)
            })
            .collect();
        let keep = [100, 100, 90, 60, 25][rng.below(5) as usize];
        let total: u64 = spec.iter().map(|s| s.1).product();
        for mut i in 0..total {
            if rng.below(100) >= keep {
                continue;
            }
            let mut name = pieces[0].to_string();
            for (d, (start, count, width)) in spec.iter().enumerate() {
                let n = start + i % count;
                i /= count;
                let w = if *width == 9 {
                    rng.below(3) as usize
                } else {
                    *width
                };
                name.push_str(&format!("{n:0w$}{}", pieces[d + 1]));
            }
            names.push(name);
        }
    }
    if names.is_empty() {
        names.push("cn1".into());
    }
    names
}

/// Folds `names` with sortie and with `nodeset -f`, checks that both folds select exactly
/// `names`, and returns (sortie's, nodeset's).
fn compare_fold(names: &[String]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.txt");
    // A newline after the last name: nodeset drops the last character of every line.
    std::fs::write(&file, names.join("\n") + "\n").unwrap();
    let out = sortie()
        .current_dir(dir.path())
        .args(["hosts", "-F", "none", "-H", "^hosts.txt", "--fold"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let theirs = Command::new("nodeset")
        .arg("-f")
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_string();
    let mut want = names.to_vec();
    want.sort();
    want.dedup();
    assert_eq!(selected(dir.path(), &ours), want, "sortie's fold {ours}");
    assert_eq!(
        selected(dir.path(), &theirs),
        want,
        "nodeset's fold {theirs}"
    );
    (ours, theirs)
}

/// The hosts `sortie hosts` selects for `expr`, sorted.
fn selected(dir: &std::path::Path, expr: &str) -> Vec<String> {
    let out = sortie()
        .current_dir(dir)
        .args(["hosts", "-F", "none", "-H", expr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{expr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut hosts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    hosts.sort();
    hosts
}

/// ClusterShell's `nodeset -f` as the oracle: on generated multi-dimensional sets, sortie's
/// fold names exactly the hosts, and is nodeset's text or shorter. Of the 150 sets, 150 are
/// identical to nodeset's text when this was written (the count is printed on every run).
#[test]
fn fold_matches_clustershell_nodeset() {
    let test = "fold_matches_clustershell_nodeset";
    if Command::new("nodeset")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        sortie_testkit::skip(
            test,
            "ClusterShell's `nodeset` is not installed (pip install clustershell)",
        );
        return;
    }
    let mut rng = Rng(0x5eed_f01d);
    let sets: Vec<Vec<String>> = (0..150).map(|_| generated_set(&mut rng)).collect();
    // nodeset is a Python program: start a few at once.
    let results: Vec<(String, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = sets
            .chunks(sets.len().div_ceil(4))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|names| compare_fold(names))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let sets = results.len();
    let mut identical = 0;
    let mut different = Vec::new();
    for (ours, theirs) in results {
        if ours == theirs {
            identical += 1;
        } else {
            assert!(
                ours.len() <= theirs.len(),
                "longer than nodeset:\n  ours   {ours}\n  theirs {theirs}"
            );
            different.push(format!("  ours   {ours}\n  theirs {theirs}"));
        }
    }
    eprintln!("{test}: {identical} of {sets} folds identical to nodeset -f");
    for d in &different {
        eprintln!("{d}");
    }
    assert_eq!(
        identical,
        sets,
        "folds that differ from nodeset -f:\n{}",
        different.join("\n")
    );
}

/// ssh_config lines sortie does not honour, although they change what `ssh` would do, are
/// warned about once each with file:line:col, whatever the number of hosts; values that change
/// nothing (ForwardX11 no, RequestTTY auto), lines of blocks that do not apply, and lines whose
/// keyword an earlier line already set (the first value wins) are not.
#[test]
fn unhonoured_keywords_warn_once_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(
        &cfg,
        "Host a*\n  ForwardX11 no\n  RequestTTY auto\n  LocalForward 8080 localhost:80\n\
         Host zzz\n  RemoteCommand top\nHost *\n  RequestTTY yes\n  ForwardX11 yes\n  ControlMaster auto\n\
         \x20 ControlPath ~/.ssh/cm-%C\n  Ciphers aes128-ctr\n  ForwardAgent /tmp/agent.sock\n  DynamicForward 1080\n",
    )
    .unwrap();
    let path = cfg.display().to_string();
    let out = sortie()
        .args(["hosts", "-F"])
        .arg(&cfg)
        .args(["-H", "a1,a2,b1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("sortie: warning: "))
        .collect();
    let want = [
        (4, "LocalForward"),
        (8, "RequestTTY yes"),
        (9, "ForwardX11 yes"),
        (10, "ControlMaster auto"),
        (11, "ControlPath"),
        (12, "Ciphers aes128-ctr"),
        // `ForwardAgent yes` is honoured (agent forwarding); a socket path is not.
        (13, "ForwardAgent /tmp/agent.sock"),
        (14, "DynamicForward"),
    ];
    assert_eq!(warned.len(), want.len(), "{stderr}");
    for (line, what) in want {
        let prefix = format!("sortie: warning: {path}:{line}:3: {what}");
        assert_eq!(
            warned.iter().filter(|l| l.starts_with(&prefix)).count(),
            1,
            "{prefix} in {stderr}"
        );
    }
    // The listing itself is unchanged, and --resolved warns about its one host.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a1\na2\nb1\n");
    let out = sortie()
        .args(["hosts", "-F"])
        .arg(&cfg)
        .args(["--resolved", "a1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{path}:4:3: LocalForward 8080 localhost:80 is not honoured"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(":9:3:"),
        "a1 has ForwardX11 no first: {stderr}"
    );
}

/// A command that connects prints the same warnings before it contacts the host (here a
/// closed loopback port).
#[test]
fn exec_warns_about_unhonoured_keywords_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &cfg,
        format!("Host 127.0.0.1\n  Port {port}\n  RequestTTY force\n"),
    )
    .unwrap();
    let out = sortie()
        .args(["exec", "-F"])
        .arg(&cfg)
        .args(["-H", "127.0.0.1", "--", "true"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .matches(&format!(
                "sortie: warning: {}:3:3: RequestTTY force",
                cfg.display()
            ))
            .count(),
        1,
        "{stderr}"
    );
}

/// `-o KEY=VALUE` as `ssh -o`: beats the files and `user@host`, the first -o of a keyword
/// wins, and a Match in the file sees the -o value; `ssh -G -o ...` is the oracle.
#[test]
fn dash_o_agrees_with_ssh_g_dash_o() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(
        &cfg,
        "Host web*\n  User deploy\n  Port 2200\n  ConnectTimeout 9\nMatch user cli\n  ServerAliveInterval 33\n\
         Host *\n  StrictHostKeyChecking yes\n  ServerAliveCountMax 4\n  ConnectTimeout 5\n  ServerAliveInterval 6\n",
    )
    .unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "web1",
            &[
                "User=cli",
                "User=second",
                "Port 2300",
                "ConnectTimeout=none",
                "HostName=%h.example",
            ],
        ),
        (
            "bob@web2",
            &["User=cli", "StrictHostKeyChecking=accept-new"],
        ),
        ("db1", &["ServerAliveCountMax=7", "ProxyJump=j1,j2:2222"]),
        ("db2", &["ProxyCommand=nc %h %p", "ProxyJump=j1"]),
    ];
    for (host, opts) in cases {
        let mut ssh = Command::new("ssh");
        ssh.arg("-G").arg("-F").arg(&cfg);
        let mut ours = sortie();
        ours.args(["hosts", "-F"]).arg(&cfg);
        for o in *opts {
            ssh.args(["-o", o]);
            ours.args(["-o", o]);
        }
        let Ok(theirs) = ssh.arg(host).output() else {
            sortie_testkit::skip(
                "dash_o_agrees_with_ssh_g_dash_o",
                "`ssh -G` is not available",
            );
            return;
        };
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let out = ours.args(["--resolved", host]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = |b: &[u8]| -> Vec<(String, String)> {
            String::from_utf8_lossy(b)
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let (theirs, mine) = (lines(&theirs.stdout), lines(&out.stdout));
        for key in [
            "hostname",
            "user",
            "port",
            "proxyjump",
            "proxycommand",
            "stricthostkeychecking",
            "connecttimeout",
            "serveraliveinterval",
            "serveralivecountmax",
        ] {
            let pick = |v: &[(String, String)]| -> Vec<String> {
                v.iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            assert_eq!(pick(&mine), pick(&theirs), "{host} {opts:?}: {key}");
        }
    }
}

/// A bad -o value is a usage error naming the option; nothing is contacted.
#[test]
fn bad_dash_o_values_are_usage_errors() {
    for (opt, what) in [
        ("Port=abc", "Bad port"),
        ("Host=x", "Host directive not supported"),
        ("Match=all", "Match directive not supported"),
        ("Frobnicate=1", "unknown or unsupported option"),
    ] {
        let out = sortie()
            .args([
                "exec",
                "-F",
                "none",
                "-o",
                opt,
                "-H",
                "127.0.0.1",
                "--",
                "true",
            ])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{opt}: {stderr}");
        assert!(
            stderr.contains(what) && stderr.contains("-o"),
            "{opt}: {stderr}"
        );
    }
}
