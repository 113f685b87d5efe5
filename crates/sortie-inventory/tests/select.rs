//! Selection end to end with temp inventories, host files and ssh_configs (no ssh needed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sortie_inventory::{
    resolve_one, select, InventoryError, LocalEnv, Overrides, SelectRequest, TransportKind,
};

fn env(dir: &Path) -> LocalEnv {
    LocalEnv {
        user: "me".into(),
        home: dir.join("home"),
        uid: 1000,
        hostname: "box".into(),
        cwd: dir.to_path_buf(),
        system_ssh_config: dir.join("no-system-config"),
    }
}

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("sortie.toml"),
        r#"
[defaults]
user = "ec2-user"
identity_file = "~/.ssh/qa.pem"
tags = { env = "qa", role = "none" }

[groups.masters]
hosts = ["10.0.1.[10-11]", "web01"]
user = "master-user"
proxy_jump = "bastion"
tags = { role = "master" }

[groups.viewers]
command = "printf '10.0.2.1\t10.0.2.2\n'"
tags = { role = "viewer" }

[hosts.web01]
hostname = "10.0.0.5"
port = 2222
tags = { az = "a" }

[hosts.local]
"#,
    )
    .unwrap();
    std::fs::write(
        d.path().join("ssh_config"),
        "Host 10.0.2.*\n  User from-ssh-config\n  ConnectTimeout 4\nHost *\n  User never-wins\n  IdentityFile ~/.ssh/extra\n",
    )
    .unwrap();
    d
}

fn req(d: &Path) -> SelectRequest {
    SelectRequest {
        overrides: Overrides {
            ssh_config: Some(PathBuf::from("ssh_config")),
            ..Default::default()
        },
        env: Some(env(d)),
        ..Default::default()
    }
}

fn names(v: &[sortie_inventory::HostConfig]) -> Vec<String> {
    v.iter().map(|h| h.name.clone()).collect()
}

#[test]
fn groups_apply_precedence_and_tags() {
    let d = setup();
    let r = SelectRequest {
        groups: vec!["masters,viewers".into()],
        ..req(d.path())
    };
    let hosts = select(&r).unwrap();
    assert_eq!(
        names(&hosts),
        ["10.0.1.10", "10.0.1.11", "web01", "10.0.2.1", "10.0.2.2"]
    );
    let web = &hosts[2];
    assert_eq!(web.hostname, "10.0.0.5");
    assert_eq!(web.port, 2222, "host table beats group");
    assert_eq!(
        web.user, "master-user",
        "group beats defaults and ssh_config"
    );
    assert_eq!(web.proxy_jump[0].host, "bastion");
    assert_eq!(web.tags["role"], "master");
    assert_eq!(web.tags["az"], "a");
    assert_eq!(web.tags["env"], "qa");
    let home = d.path().join("home");
    assert_eq!(
        web.identity_files,
        [home.join(".ssh/qa.pem"), home.join(".ssh/extra")],
        "inventory identity first, ssh_config ones accumulate"
    );
    let viewer = &hosts[3];
    assert_eq!(
        viewer.user, "ec2-user",
        "inventory defaults beat ssh_config"
    );
    assert_eq!(
        viewer.connect_timeout,
        Duration::from_secs(4),
        "ssh_config fills the rest"
    );
    assert_eq!(viewer.server_alive_interval, Duration::from_secs(15));
    assert_eq!(viewer.tags["role"], "viewer");
    assert_eq!(viewer.groups, ["viewers"]);
}

#[test]
fn command_line_beats_everything_and_excludes_apply() {
    let d = setup();
    let r = SelectRequest {
        hosts: vec!["bob@web01,web01:2200,10.0.1.[10-12]".into()],
        excludes: vec!["10.0.1.11".into()],
        overrides: Overrides {
            port: Some(2022),
            ssh_config: Some(PathBuf::from("ssh_config")),
            ..Default::default()
        },
        ..req(d.path())
    };
    let hosts = select(&r).unwrap();
    assert_eq!(
        names(&hosts),
        ["web01", "web01:2200", "10.0.1.10", "10.0.1.12"]
    );
    assert_eq!(hosts[0].user, "bob", "user@ as written beats the inventory");
    assert_eq!(hosts[0].port, 2022, "-p beats :port and the host table");
    assert_eq!(
        hosts[0].groups,
        ["masters"],
        "static membership gives group settings"
    );
    assert_eq!(
        hosts[3].user, "ec2-user",
        "in no group: [defaults] still beat ssh_config"
    );
    assert!(hosts[3].groups.is_empty());
}

/// `-o` sits under sortie's own options and over the expression, the inventory and ssh_config;
/// the first `-o` of a keyword wins; the local transport ignores it (no ssh_config there).
#[test]
fn dash_o_precedence() {
    let d = setup();
    let r = SelectRequest {
        hosts: vec!["bob@web01,10.0.2.1,local".into()],
        overrides: Overrides {
            port: Some(2022),
            ssh_config: Some(PathBuf::from("ssh_config")),
            ssh_options: vec![
                "User=from-o".into(),
                "User=second-o".into(),
                "Port=2999".into(),
                "HostName=%h.via-o".into(),
                "ProxyJump=none".into(),
                "ConnectTimeout=none".into(),
            ],
            ..Default::default()
        },
        ..req(d.path())
    };
    let hosts = select(&r).unwrap();
    assert_eq!(hosts[0].user, "from-o", "-o beats user@ and the inventory");
    assert_eq!(hosts[0].port, 2022, "-p beats -o Port");
    assert_eq!(
        hosts[0].hostname, "web01.via-o",
        "-o beats the host table's hostname"
    );
    assert!(
        hosts[0].proxy_jump.is_empty(),
        "-o ProxyJump=none beats the group's"
    );
    assert_eq!(hosts[1].user, "from-o", "-o beats ssh_config");
    // As `ssh -G -o ConnectTimeout=none`: none leaves it unset, so the file's 4 s applies.
    assert_eq!(hosts[1].connect_timeout, Duration::from_secs(4));
    assert_eq!(
        hosts[0].connect_timeout,
        Duration::ZERO,
        "nothing else sets web01's: none"
    );
    assert_eq!(hosts[2].transport, TransportKind::Local);
    assert_eq!(hosts[2].hostname, "local");
    let bad = SelectRequest {
        overrides: Overrides {
            ssh_options: vec!["Port=x".into()],
            ..Default::default()
        },
        ..req(d.path())
    };
    let err = select(&bad).unwrap_err().to_string();
    assert!(err.starts_with("-o \"Port=x\""), "{err}");
}

#[test]
fn everything_when_nothing_is_selected_and_local_host() {
    let d = setup();
    let hosts = select(&req(d.path())).unwrap();
    assert_eq!(
        names(&hosts),
        [
            "web01",
            "local",
            "10.0.1.10",
            "10.0.1.11",
            "10.0.2.1",
            "10.0.2.2"
        ]
    );
    let local = &hosts[1];
    assert_eq!(local.transport, TransportKind::Local);
    assert_eq!(local.user, "ec2-user");
}

#[test]
fn errors_for_unknown_group_no_hosts_and_bad_expression() {
    let d = setup();
    let r = SelectRequest {
        groups: vec!["nope".into()],
        ..req(d.path())
    };
    let e = select(&r).unwrap_err().to_string();
    assert_eq!(e, "unknown group `nope`; known groups: masters, viewers");

    let empty = tempfile::tempdir().unwrap();
    let e = select(&SelectRequest {
        env: Some(env(empty.path())),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, InventoryError::NoHosts));
    assert!(format!("{:?}", miette::Report::new(e)).contains("-H"));

    let e = select(&SelectRequest {
        hosts: vec!["web[3-1]".into()],
        ..req(d.path())
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "-H \"web[3-1]\", column 5: bad range `3-1`: start is greater than end"
    );

    let e = select(&SelectRequest {
        hosts: vec!["a".into()],
        excludes: vec!["a".into()],
        ..req(d.path())
    })
    .unwrap_err();
    assert!(matches!(e, InventoryError::AllExcluded));
}

#[test]
fn host_files_with_comments_and_errors_naming_file_line_col() {
    let d = setup();
    std::fs::write(
        d.path().join("hosts.txt"),
        "# fleet\nweb[1-2]\n\n  db1  # primary\n",
    )
    .unwrap();
    let hosts = select(&SelectRequest {
        hosts: vec!["^hosts.txt".into()],
        ..req(d.path())
    })
    .unwrap();
    assert_eq!(names(&hosts), ["web1", "web2", "db1"]);

    std::fs::write(d.path().join("bad.txt"), "ok\n  web[1-\n").unwrap();
    let e = select(&SelectRequest {
        hosts: vec!["^bad.txt".into()],
        ..req(d.path())
    })
    .unwrap_err()
    .to_string();
    let want = format!(
        "{}:2:6: unbalanced '[': missing ']'",
        d.path().join("bad.txt").display()
    );
    assert_eq!(e, want);
}

#[test]
fn resolve_one_for_a_jump_host() {
    let d = setup();
    let h = resolve_one(&req(d.path()), "ops@bastion:2200").unwrap();
    assert_eq!(
        (h.user.as_str(), h.port, h.hostname.as_str()),
        ("ops", 2200, "bastion")
    );
    let e = resolve_one(&req(d.path()), "a,b").unwrap_err();
    assert!(matches!(e, InventoryError::NotOneHost { count: 2, .. }));
}
