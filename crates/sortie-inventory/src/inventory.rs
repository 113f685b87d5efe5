//! The TOML inventory (`sortie.toml`): named groups of hosts, per-host and per-group settings,
//! and groups computed by a local command.
//!
//! Owns the file format and group membership. It does not resolve ssh_config or decide
//! precedence against the command line (that is [`crate::resolve`]).
//!
//! ```toml
//! [defaults]                      # optional: settings for every host
//! user = "ec2-user"
//! identity_file = "~/.ssh/qa.pem" # or identity_files = ["a", "b"]
//!
//! [groups.masters]
//! hosts = ["10.0.1.[10-19]", "web01"]   # host expressions (ranges, user@, :port, ^FILE)
//! user = "ec2-user"
//! port = 22
//! proxy_jump = "bastion"          # ProxyJump syntax: hops separated by commas, or "none"
//! transport = "ssh"               # "ssh" (default) or "local"
//! tags = { role = "master" }
//!
//! [groups.viewers]                # hosts computed when (and only when) the group is selected
//! command = "aws ec2 describe-instances ... --output text"
//!
//! [hosts.web01]                   # settings for one host; the key may hold a range: [hosts."web[01-04]"]
//! hostname = "10.0.0.5"
//! port = 2222
//! tags = { az = "a" }
//! ```
//!
//! Settings (`user`, `port`, `identity_file`/`identity_files`, `proxy_jump`, `transport`, `tags`)
//! may appear in `[defaults]`, `[groups.NAME]` and `[hosts.NAME]`; a host's own table beats its
//! groups, which beat `[defaults]` (tags are merged key by key with the same precedence).
//!
//! A group's `command` runs with `sh -c` in the inventory file's directory, only when that group
//! is selected; its standard output is split on whitespace (so `aws ... --output text` with
//! several tab-separated addresses per line works) and each word is a host expression. A
//! non-zero exit or a failure to start is an error naming the group, with the end of stderr.
//!
//! Unknown keys and wrong types are errors naming `FILE:LINE:COL`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{InventoryError, Origin, ParseError};
use crate::hostexpr::{self, Element, HostSpec};
use crate::sshconfig::{parse_proxy_jump, JumpHost};

/// How sortie reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Over SSH (the default).
    #[default]
    Ssh,
    /// As local processes on this machine (the host name `local` always means this).
    Local,
}

/// Settings shared by `[defaults]`, groups and hosts. `None`/empty = not set at this level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Remote user.
    pub user: Option<String>,
    /// SSH port.
    pub port: Option<u16>,
    /// Identity files as written (`~` and `%`-tokens are expanded at resolution).
    pub identity_files: Option<Vec<String>>,
    /// Jump hops; `Some(vec![])` = `none`.
    pub proxy_jump: Option<Vec<JumpHost>>,
    /// Transport.
    pub transport: Option<TransportKind>,
    /// Tags (free-form labels, e.g. role, az).
    pub tags: BTreeMap<String, String>,
    /// Where these settings were written (`FILE:LINE:COL`), for messages.
    pub origin: String,
}

/// A `[groups.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Hosts listed in `hosts`, expanded (static members).
    pub hosts: Vec<HostSpec>,
    /// Command printing more members, run only when the group is selected.
    pub command: Option<String>,
    /// The group's settings.
    pub settings: Settings,
}

/// A `[hosts.NAME]` table (one per name when the key holds a range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// Host name as used in expressions.
    pub name: String,
    /// Address to connect to instead of `name` (like ssh_config HostName).
    pub hostname: Option<String>,
    /// The host's settings.
    pub settings: Settings,
}

/// A parsed inventory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// The file it came from.
    pub path: PathBuf,
    /// `[defaults]`.
    pub defaults: Settings,
    /// Groups in file order.
    pub groups: Vec<Group>,
    /// Host tables in file order.
    pub hosts: Vec<HostEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    defaults: Option<Spanned<RawSettings>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(default)]
    hosts: BTreeMap<String, Spanned<RawHost>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<Spanned<String>>,
    identity_files: Option<Spanned<Vec<String>>>,
    proxy_jump: Option<Spanned<String>>,
    transport: Option<TransportKind>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    hosts: Option<Vec<Spanned<String>>>,
    command: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<Spanned<String>>,
    identity_files: Option<Spanned<Vec<String>>>,
    proxy_jump: Option<Spanned<String>>,
    transport: Option<TransportKind>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    hostname: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<Spanned<String>>,
    identity_files: Option<Spanned<Vec<String>>>,
    proxy_jump: Option<Spanned<String>>,
    transport: Option<TransportKind>,
    tags: Option<BTreeMap<String, String>>,
}

/// Reads and parses an inventory file.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_str(&text, path)?)
}

/// Parses inventory text; `path` names the file in errors and is kept in [`Inventory::path`].
/// Pure: group commands are not run here.
pub fn parse_str(text: &str, path: &Path) -> Result<Inventory, ParseError> {
    let origin = || Origin::File(path.to_path_buf());
    let raw: RawInventory = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ParseError::new(
            origin(),
            text,
            span.start,
            span.len(),
            e.message().trim().to_string(),
            Some("see docs/inventory.md for the inventory format".into()),
        )
    })?;
    let at = |span: std::ops::Range<usize>, msg: String, help: &str| {
        ParseError::new(
            origin(),
            text,
            span.start,
            span.len(),
            msg,
            Some(help.into()),
        )
    };
    let loc = |offset: usize| {
        let e = ParseError::new(origin(), text, offset, 0, "", None);
        format!("{}:{}:{}", path.display(), e.line, e.column)
    };
    #[allow(clippy::too_many_arguments)]
    let settings = |user: Option<String>,
                    port: Option<u16>,
                    identity_file: Option<Spanned<String>>,
                    identity_files: Option<Spanned<Vec<String>>>,
                    proxy_jump: Option<Spanned<String>>,
                    transport: Option<TransportKind>,
                    tags: Option<BTreeMap<String, String>>,
                    start: usize|
     -> Result<Settings, ParseError> {
        let identity_files = match (identity_file, identity_files) {
            (Some(one), Some(_)) => {
                return Err(at(
                    one.span(),
                    "both identity_file and identity_files are set".into(),
                    "use only one of them",
                ))
            }
            (Some(one), None) => Some(vec![one.into_inner()]),
            (None, Some(many)) => Some(many.into_inner()),
            (None, None) => None,
        };
        let proxy_jump = match proxy_jump {
            None => None,
            Some(pj) => Some(parse_proxy_jump(pj.get_ref()).map_err(|m| {
                at(
                    pj.span(),
                    m,
                    "write hops as [user@]host[:port], comma-separated, or \"none\"",
                )
            })?),
        };
        Ok(Settings {
            user,
            port,
            identity_files,
            proxy_jump,
            transport,
            tags: tags.unwrap_or_default(),
            origin: loc(start),
        })
    };
    let defaults = match raw.defaults {
        None => Settings::default(),
        Some(d) => {
            let start = d.span().start;
            let d = d.into_inner();
            settings(
                d.user,
                d.port,
                d.identity_file,
                d.identity_files,
                d.proxy_jump,
                d.transport,
                d.tags,
                start,
            )?
        }
    };
    let mut groups: Vec<(usize, Group)> = Vec::new();
    for (name, g) in raw.groups {
        let start = g.span().start;
        let g = g.into_inner();
        let mut hosts = Vec::new();
        for h in g.hosts.unwrap_or_default() {
            let span = h.span();
            // Point inside the string when it is written plainly ("..."), else at its start.
            let inner = if text
                .get(span.clone())
                .is_some_and(|s| s.len() >= 2 && s[1..s.len() - 1] == *h.get_ref())
            {
                span.start + 1
            } else {
                span.start
            };
            let els =
                hostexpr::parse(h.get_ref()).map_err(|e| e.relocate(origin(), text, inner))?;
            for el in els {
                match el {
                    Element::Hosts(v) => hosts.extend(v),
                    Element::File { span: s, .. } => {
                        return Err(at(
                            inner + s.start - 1..inner + s.end,
                            "^FILE is not supported in inventory host lists".into(),
                            "list the hosts, or use a group command such as `cat FILE`",
                        ))
                    }
                }
            }
        }
        let settings = settings(
            g.user,
            g.port,
            g.identity_file,
            g.identity_files,
            g.proxy_jump,
            g.transport,
            g.tags,
            start,
        )?;
        groups.push((
            start,
            Group {
                name,
                hosts,
                command: g.command,
                settings,
            },
        ));
    }
    groups.sort_by_key(|(s, _)| *s);
    let mut hosts: Vec<(usize, HostEntry)> = Vec::new();
    for (key, h) in raw.hosts {
        let start = h.span().start;
        let names = hostexpr::expand_names(&key).map_err(|e| {
            at(
                start..start + 1,
                format!("bad host name `{key}` in [hosts]: {}", e.message),
                "use a host name, optionally with ranges like web[01-04]",
            )
        })?;
        let h = h.into_inner();
        let s = settings(
            h.user,
            h.port,
            h.identity_file,
            h.identity_files,
            h.proxy_jump,
            h.transport,
            h.tags,
            start,
        )?;
        for (i, name) in names.into_iter().enumerate() {
            hosts.push((
                start + i,
                HostEntry {
                    name,
                    hostname: h.hostname.clone(),
                    settings: s.clone(),
                },
            ));
        }
    }
    hosts.sort_by_key(|(s, _)| *s);
    Ok(Inventory {
        path: path.to_path_buf(),
        defaults,
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        hosts: hosts.into_iter().map(|(_, h)| h).collect(),
    })
}

impl Inventory {
    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Group names in file order.
    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// The `[hosts.NAME]` entry for `name`.
    pub fn host_entry(&self, name: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Groups that list `host` statically in `hosts`, in file order.
    pub fn static_groups_of(&self, host: &str) -> Vec<&Group> {
        self.groups
            .iter()
            .filter(|g| g.hosts.iter().any(|h| h.host == host))
            .collect()
    }

    /// Members of group `name`: its static hosts, then (when it has a `command`) the hosts its
    /// command prints. Runs the command. Unknown names are an error listing the known groups.
    pub fn group_members(&self, name: &str) -> Result<Vec<HostSpec>, InventoryError> {
        let g = self
            .group(name)
            .ok_or_else(|| InventoryError::UnknownGroup {
                name: name.to_string(),
                known: self.group_names(),
            })?;
        let mut out = g.hosts.clone();
        if let Some(cmd) = &g.command {
            let dir = self
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let stdout = run_group_command(&g.name, cmd, dir)?;
            let origin = Origin::Other(format!("output of group `{}` command", g.name));
            for word in stdout.split_whitespace() {
                out.extend(hostexpr::expand(word, origin.clone(), dir)?);
            }
        }
        Ok(out)
    }
}

/// Runs a group command with `sh -c` and returns its standard output.
fn run_group_command(group: &str, command: &str, dir: &Path) -> Result<String, InventoryError> {
    let fail = |status: String, stderr: String| InventoryError::GroupCommand {
        group: group.to_string(),
        command: command.to_string(),
        status,
        stderr,
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("could not start: {e}"), String::new()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim();
    // Keep the end: that is where tools print the reason.
    let excerpt = match err.char_indices().rev().nth(1999) {
        Some((i, _)) => format!("...{}", &err[i..]),
        None => err.to_string(),
    };
    if !out.status.success() {
        return Err(fail(out.status.to_string(), excerpt));
    }
    // A pipeline's status is its last command's: `aws ... | tr ...` exits 0 when `aws` is not
    // found. No host on stdout with something on stderr is that failure, not an empty group.
    if out.stdout.iter().all(u8::is_ascii_whitespace) && !err.is_empty() {
        return Err(fail(
            "exited 0 but printed no host, and wrote on stderr".into(),
            excerpt,
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| {
        fail(
            "exited 0 but printed non-UTF-8 output".into(),
            String::new(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, ParseError> {
        parse_str(text, Path::new("/inv/sortie.toml"))
    }

    #[test]
    fn full_example() {
        let inv = parse(
            r#"
[defaults]
user = "ec2-user"
identity_file = "~/.ssh/qa.pem"

[groups.masters]
hosts = ["10.0.1.[10-12]", "web01"]
port = 22
proxy_jump = "bastion"
transport = "ssh"
tags = { role = "master" }

[groups.viewers]
command = "echo v1"

[hosts.web01]
hostname = "10.0.0.5"
port = 2222
transport = "local"
tags = { az = "a" }

[hosts."db[1-2]"]
user = "pg"
"#,
        )
        .unwrap();
        assert_eq!(inv.defaults.user.as_deref(), Some("ec2-user"));
        assert_eq!(
            inv.defaults.identity_files,
            Some(vec!["~/.ssh/qa.pem".to_string()])
        );
        assert_eq!(inv.group_names(), ["masters", "viewers"]);
        let m = inv.group("masters").unwrap();
        let names: Vec<_> = m.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["10.0.1.10", "10.0.1.11", "10.0.1.12", "web01"]);
        assert_eq!(m.settings.proxy_jump.as_ref().unwrap()[0].host, "bastion");
        assert_eq!(m.settings.tags["role"], "master");
        let w = inv.host_entry("web01").unwrap();
        assert_eq!(w.hostname.as_deref(), Some("10.0.0.5"));
        assert_eq!(w.settings.transport, Some(TransportKind::Local));
        assert_eq!(
            inv.host_entry("db2").unwrap().settings.user.as_deref(),
            Some("pg")
        );
        let hosts: Vec<_> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(hosts, ["web01", "db1", "db2"]);
        assert_eq!(inv.static_groups_of("web01")[0].name, "masters");
    }

    #[test]
    fn unknown_keys_and_types_name_line_and_column() {
        let e = parse("[groups.a]\nhosts = [\"x\"]\nusr = \"bob\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(
            e.to_string()
                .starts_with("/inv/sortie.toml:3:1: unknown field `usr`"),
            "{e}"
        );
        let e = parse("[hosts.a]\nport = \"22\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8), "{e}");
        let e = parse("[hosts.a]\nport = 70000\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("[hosts.a]\ntransport = \"telnet\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn bad_host_expression_points_into_the_string() {
        let e = parse("[groups.a]\nhosts = [\"ok\", \"web[5-2]\"]\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 21), "{e}");
        assert!(e.message.contains("start is greater than end"));
        let e = parse("[groups.a]\nproxy_jump = \"a:0\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 14), "{e}");
    }

    #[test]
    fn group_command_output_is_split_on_whitespace() {
        let mut inv =
            parse("[groups.v]\ncommand = \"printf '10.0.0.1\\t10.0.0.2\\nweb[1-2]\\n'\"\n")
                .unwrap();
        inv.path = std::env::temp_dir().join("sortie.toml");
        let hosts: Vec<String> = inv
            .group_members("v")
            .unwrap()
            .into_iter()
            .map(|h| h.host)
            .collect();
        assert_eq!(hosts, ["10.0.0.1", "10.0.0.2", "web1", "web2"]);
    }

    #[test]
    fn failing_group_command_names_the_group_and_stderr() {
        let mut inv = parse("[groups.v]\ncommand = \"echo boom >&2; exit 3\"\n").unwrap();
        inv.path = std::env::temp_dir().join("sortie.toml");
        let e = inv.group_members("v").unwrap_err().to_string();
        assert!(
            e.contains("group `v`") && e.contains("boom") && e.contains('3'),
            "{e}"
        );
    }

    #[test]
    fn a_pipeline_whose_first_command_is_missing_is_an_error_with_its_stderr() {
        // `tr` ends the pipeline with status 0; the missing tool's message is the reason.
        let mut inv =
            parse("[groups.v]\ncommand = \"no-such-tool-xyz describe | tr '\\\\t' '\\\\n'\"\n")
                .unwrap();
        inv.path = std::env::temp_dir().join("sortie.toml");
        let e = inv.group_members("v").unwrap_err().to_string();
        assert!(
            e.contains("group `v`") && e.contains("no-such-tool-xyz"),
            "{e}"
        );
        // Hosts on stdout with a warning on stderr are still hosts.
        let mut inv = parse("[groups.v]\ncommand = \"echo careful >&2; echo web1\"\n").unwrap();
        inv.path = std::env::temp_dir().join("sortie.toml");
        let hosts = inv.group_members("v").unwrap();
        assert_eq!(hosts.len(), 1);
    }

    #[test]
    fn unknown_group_lists_known_ones() {
        let inv = parse("[groups.a]\nhosts=[\"x\"]\n[groups.b]\nhosts=[\"y\"]\n").unwrap();
        let e = inv.group_members("c").unwrap_err().to_string();
        assert_eq!(e, "unknown group `c`; known groups: a, b");
    }
}
