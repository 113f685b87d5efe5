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
