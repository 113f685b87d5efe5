//! The habits users bring from pdsh, clush, ripgrep and their shells, checked through the binary
//! on the local transport: the command without `--`, `--color`, completions that load in bash,
//! and a man page that `man` renders.

use std::process::{Command, Output};

fn sortie() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sortie"));
    c.env_remove("NO_COLOR");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("sortie runs");
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    (out, o, e)
}

/// Whether `s` holds an SGR (colour) escape: ESC `[`, digits and `;`, then `m`. Cursor moves and
/// line clears of a status line are not colour.
fn has_colour(s: &str) -> bool {
    s.match_indices("\x1b[").any(|(i, _)| {
        let rest = &s[i + 2..];
        let params = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(rest.len());
        params > 0 && rest[params..].starts_with('m')
    })
}

/// Runs `command` under a pseudo-terminal (util-linux `script`), as a user at a terminal would;
/// returns everything the terminal showed.
fn on_a_terminal(args: &[&str]) -> String {
    let line = std::iter::once(env!("CARGO_BIN_EXE_sortie"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .output()
        .expect("util-linux script runs");
    text(&out.stdout)
}

#[test]
fn the_exec_command_needs_no_double_dash_and_keeps_its_own_options() {
    let (out, stdout, stderr) = run(sortie().args(["exec", "-H", "local", "echo", "hello", "-n"]));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // `-n` after the command's first word belongs to the command, as with pdsh.
    assert_eq!(stdout.trim_end(), "local | hello -n");
    let (out, stdout, _) = run(sortie().args(["exec", "-H", "local", "--", "echo", "dashes"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout.trim_end(), "local | dashes");
    // A misspelt sortie option before the command is still an error, never a command.
    let (out, _, stderr) = run(sortie().args(["exec", "-H", "local", "--timout", "3s", "true"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--timeout"), "{stderr}");
}

#[test]
fn color_always_colours_a_pipe_and_never_leaves_a_terminal_plain() {
    let failing = ["exec", "-H", "local", "echo oops >&2; exit 3"];
    let (_, _, stderr) = run(sortie().arg("--color=always").args(failing));
    assert!(
        has_colour(&stderr),
        "--color always into a pipe: {stderr:?}"
    );
    let (_, _, stderr) = run(sortie().args(failing));
    assert!(!has_colour(&stderr), "auto into a pipe: {stderr:?}");

    let mut args = vec!["--color", "never"];
    args.extend(failing);
    let shown = on_a_terminal(&args);
    assert!(shown.contains("oops"), "{shown:?}");
    assert!(
        !has_colour(&shown),
        "--color never on a terminal: {shown:?}"
    );
    // The same on a terminal without the option is coloured: the pty is a real terminal.
    let shown = on_a_terminal(&failing);
    assert!(has_colour(&shown), "auto on a terminal: {shown:?}");
}

#[test]
fn completions_load_in_bash_and_every_shell_gets_a_script() {
    let script = format!(
        "source <('{}' completions bash) && complete -p sortie",
        env!("CARGO_BIN_EXE_sortie")
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("_sortie sortie"),
        "{}",
        text(&out.stdout)
    );
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let (out, stdout, _) = run(sortie().args(["completions", shell]));
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(stdout.contains("launch"), "{shell}: subcommands listed");
    }
    let (out, _, stderr) = run(sortie().args(["completions", "tcsh"]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error: {stderr}"
    );
}

#[test]
fn the_man_page_renders_with_man() {
    let (out, page, _) = run(sortie().arg("man"));
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sortie.1");
    std::fs::write(&path, page).unwrap();
    let Ok(rendered) = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .output()
    else {
        sortie_testkit::skip(
            "the_man_page_renders_with_man",
            "man is not installed (scripts/test.sh installs man-db as root)",
        );
        return;
    };
    let shown = text(&rendered.stdout);
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    assert!(shown.contains("NAME"), "{shown}");
    assert!(shown.contains("Start work on a fleet"), "{shown}");
    for sub in ["exec", "run", "launch", "put", "get", "completions"] {
        assert!(
            shown.contains(&format!("sortie-{sub}")),
            "{sub} listed: {shown}"
        );
    }
}

/// A `sortie` that reads the config file `cfg` (and no other) and no `SORTIE_*` variable of the
/// person running the tests.
fn with_config(cfg: &std::path::Path) -> Command {
    let mut c = sortie();
    for (k, _) in std::env::vars() {
        if k.starts_with("SORTIE_") {
            c.env_remove(k);
        }
    }
    c.env("SORTIE_CONFIG", cfg);
    c
}

/// The effective connect timeout of `host`, as `hosts --resolved` prints it (like `ssh -G`).
fn connect_timeout(cmd: &mut Command, options: &[&str], host: &str) -> String {
    let (out, stdout, stderr) = run(cmd.arg("hosts").args(options).args(["--resolved", host]));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("connecttimeout "))
        .unwrap_or_else(|| panic!("no connecttimeout in {stdout}"))
        .to_string()
}

#[test]
fn config_file_and_environment_take_their_place_in_the_precedence_chain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "# my defaults\nconnect_timeout = \"7s\"\nhost_key_checking = \"accept-new\"\n",
    )
    .unwrap();
    let ssh = dir.path().join("ssh_config");
    std::fs::write(&ssh, "Host slow\n    ConnectTimeout 3\n").unwrap();
    let ssh = ssh.to_str().unwrap();
    // built-in < config file < ssh_config < environment < command line
    assert_eq!(
        connect_timeout(
            sortie().env("SORTIE_CONFIG", "/nonexistent"),
            &["-F", ssh],
            "plain"
        ),
        "10"
    );
    assert_eq!(
        connect_timeout(&mut with_config(&cfg), &["-F", ssh], "plain"),
        "7"
    );
    assert_eq!(
        connect_timeout(&mut with_config(&cfg), &["-F", ssh], "slow"),
        "3"
    );
    assert_eq!(
        connect_timeout(
            with_config(&cfg).env("SORTIE_CONNECT_TIMEOUT", "2s"),
            &["-F", ssh],
            "slow"
        ),
        "2"
    );
    assert_eq!(
        connect_timeout(
            with_config(&cfg).env("SORTIE_CONNECT_TIMEOUT", "2s"),
            &["-F", ssh, "--connect-timeout", "1s"],
            "slow"
        ),
        "1"
    );
    // -o is command line too: it beats the environment (and ssh_config).
    assert_eq!(
        connect_timeout(
            with_config(&cfg).env("SORTIE_CONNECT_TIMEOUT", "2s"),
            &["-F", ssh, "-o", "ConnectTimeout=6"],
            "slow"
        ),
        "6"
    );
    // `sortie config` says where each value came from.
    let (out, shown, _) = run(with_config(&cfg).env("SORTIE_OUTPUT", "json").arg("config"));
    assert_eq!(out.status.code(), Some(0));
    let line = |key: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_string()
    };
    assert!(line("connect_timeout").contains("config.toml:2"), "{shown}");
    assert!(line("host_key_checking").contains("accept-new"), "{shown}");
    assert!(
        line("output").contains("environment SORTIE_OUTPUT"),
        "{shown}"
    );
    assert!(line("fanout").contains("built-in"), "{shown}");
    // An output mode from the environment applies when no option names one.
    let (out, stdout, _) = run(with_config(&cfg)
        .env("SORTIE_OUTPUT", "json")
        .args(["exec", "-H", "local", "echo hi"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.lines().all(|l| l.starts_with('{')), "{stdout}");
}

#[test]
fn bad_config_and_environment_values_are_refused_before_any_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "fanout = 8\noutput = \"fancy\"\n").unwrap();
    let (out, _, stderr) = run(with_config(&cfg).args(["exec", "-H", &host, "true"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config.toml:2:10"), "{stderr}");
    assert!(stderr.contains("expected lines, group or json"), "{stderr}");
    let (out, _, stderr) = run(sortie()
        .env("SORTIE_CONFIG", "/nonexistent")
        .env("SORTIE_CONNECT_TIMEOUT", "soon")
        .args(["exec", "-H", &host, "true"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SORTIE_CONNECT_TIMEOUT"), "{stderr}");
    assert!(listener.accept().is_err(), "no host may be contacted");
}
