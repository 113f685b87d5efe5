//! Selection and resolution: which hosts a run uses, and the effective settings of each.
//!
//! Owns the precedence between sources. For each setting the first source that sets it wins:
//!
//! 1. command-line overrides ([`Overrides`]: sortie's own options like `ssh -l/-p`, then the
//!    `-o KEY=VALUE` values, the first of a keyword winning, as `ssh -o`);
//! 2. the host expression as written (`user@host:port`);
//! 3. the inventory: the host's `[hosts.NAME]` table, then its groups (the groups it was
//!    selected through, then groups listing it statically, in file order), then `[defaults]`;
//! 4. ssh_config (`-F FILE`, else `~/.ssh/config` then `/etc/ssh/ssh_config`), evaluated with
//!    1-3 already set, exactly as `ssh -o` values are (so `Match user` sees them);
//! 5. built-in defaults, as OpenSSH computes them, except two sortie defaults:
//!    `ConnectTimeout` 10 s (OpenSSH: none) and `ServerAliveInterval` 15 s (OpenSSH: 0, off)
//!    when nothing sets them; an explicit 0 keeps them off.
//!
//! Identity files accumulate as in OpenSSH: command line first, then the inventory's list, then
//! every `IdentityFile` of ssh_config; the default list is used only when none is given.
//!
//! With neither `-H` nor `-g`, every `[hosts.*]` entry and every group of the inventory is
//! selected (running group commands). Hosts are de-duplicated by label (first kept, in order),
//! then `-x` removes hosts: an exclude matches on host name, and also on port or user when the
//! exclude writes them. Hosts using the `local` transport (and the host named `local`) skip
//! ssh_config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::LocalEnv;
use crate::error::{InventoryError, Origin};
use crate::hostexpr::{self, HostSpec};
use crate::inventory::{self, Group, Inventory, Settings, TransportKind};
use crate::sshconfig::{
    parse_proxy_jump, JumpHost, Sourced, SshConfig, SshOptions, StrictHostKeyChecking,
};

/// sortie's connect timeout when nothing sets one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// sortie's keep-alive interval when nothing sets one.
pub const DEFAULT_SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Inventory file looked for in the working directory when `-i` is not given.
pub const DEFAULT_INVENTORY: &str = "sortie.toml";

/// Effective settings of one selected host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Label used in output: the host as written (no user), plus `:port` only when a port was
    /// written (`[::1]:2222` for IPv6).
    pub name: String,
    /// Address to connect to.
    pub hostname: String,
    /// Remote user.
    pub user: String,
    /// Port.
    pub port: u16,
    /// Identity files to try, in order, expanded.
    pub identity_files: Vec<PathBuf>,
    /// Use only the identity files, not every agent key.
    pub identities_only: bool,
    /// User certificates to offer (`CertificateFile`), expanded.
    pub certificate_files: Vec<PathBuf>,
    /// Forward the local agent to the host (`ForwardAgent yes`, `-A`).
    pub forward_agent: bool,
    /// Jump hops in order; empty = direct. Resolve each hop with [`resolve_one`].
    pub proxy_jump: Vec<JumpHost>,
    /// An ssh_config `ProxyCommand` that applies (never `none`). The transport must honour or
    /// refuse it; it must not connect directly as if it were absent.
    pub proxy_command: Option<String>,
    /// User known-hosts files (empty = `none`).
    pub user_known_hosts_files: Vec<PathBuf>,
    /// Global known-hosts files (empty = `none`).
    pub global_known_hosts_files: Vec<PathBuf>,
    /// Host key policy. `Ask` is treated as `Yes` by sortie.
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// Name to look up in known_hosts instead of `hostname` (`HostKeyAlias`).
    pub host_key_alias: Option<String>,
    /// Hash host names when recording new known_hosts entries (`HashKnownHosts`).
    pub hash_known_hosts: bool,
    /// Time allowed to connect and authenticate; zero = no timeout (`ConnectTimeout none`).
    pub connect_timeout: Duration,
    /// Keep-alive interval; zero = off.
    pub server_alive_interval: Duration,
    /// Keep-alives without answer before the connection is considered dead.
    pub server_alive_count_max: u32,
    /// How to reach the host.
    pub transport: TransportKind,
    /// Tags from the inventory (host beats group beats defaults, key by key).
    pub tags: BTreeMap<String, String>,
    /// Inventory groups the host belongs to (selected through, then static), in order.
    pub groups: Vec<String>,
}

impl HostConfig {
    /// Lower-case `key value` lines in the style and order of `ssh -G`, for the settings sortie
    /// uses. Differences from `ssh -G`: identity and certificate files are printed expanded
    /// (OpenSSH prints them as written); `connecttimeout`/`serveraliveinterval` show sortie's defaults;
    /// `proxyjump` is omitted when there is none, as `ssh -G` does.
    pub fn ssh_g_lines(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: &str| {
            s.push_str(k);
            s.push(' ');
            s.push_str(v);
            s.push('\n');
        };
        let join = |v: &[PathBuf]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        line("user", &self.user);
        line("hostname", &self.hostname);
        line("port", &self.port.to_string());
        line(
            "identitiesonly",
            if self.identities_only { "yes" } else { "no" },
        );
        line(
            "stricthostkeychecking",
            self.strict_host_key_checking.ssh_g(),
        );
        line(
            "hashknownhosts",
            if self.hash_known_hosts { "yes" } else { "no" },
        );
        line(
            "serveralivecountmax",
            &self.server_alive_count_max.to_string(),
        );
        line(
            "serveraliveinterval",
            &self.server_alive_interval.as_secs().to_string(),
        );
        if let Some(a) = &self.host_key_alias {
            line("hostkeyalias", a);
        }
        for f in &self.identity_files {
            line("identityfile", &f.display().to_string());
        }
        for f in &self.certificate_files {
            line("certificatefile", &f.display().to_string());
        }
        line(
            "forwardagent",
            if self.forward_agent { "yes" } else { "no" },
        );
        line(
            "globalknownhostsfile",
            &join(&self.global_known_hosts_files),
        );
        line("userknownhostsfile", &join(&self.user_known_hosts_files));
        let timeout = match self.connect_timeout.as_secs() {
            0 => "none".to_string(),
            t => t.to_string(),
        };
        line("connecttimeout", &timeout);
        if let Some(c) = &self.proxy_command {
            line("proxycommand", c);
        }
        if !self.proxy_jump.is_empty() {
            let hops: Vec<String> = self.proxy_jump.iter().map(|h| h.to_string()).collect();
            line("proxyjump", &hops.join(","));
        }
        s
    }
}

/// Command-line settings; every field beats the inventory and ssh_config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `-l USER`.
    pub user: Option<String>,
    /// `-p PORT`.
    pub port: Option<u16>,
    /// `-i FILE` (repeatable); tried before any other identity file.
    pub identity_files: Vec<PathBuf>,
    /// IdentitiesOnly.
    pub identities_only: Option<bool>,
    /// `-F FILE`: replaces `~/.ssh/config` and `/etc/ssh/ssh_config`; `none` reads no file.
    pub ssh_config: Option<PathBuf>,
    /// Connect timeout (whole seconds, rounded up).
    pub connect_timeout: Option<Duration>,
    /// Keep-alive interval (whole seconds, rounded up).
    pub server_alive_interval: Option<Duration>,
    /// Keep-alive count.
    pub server_alive_count_max: Option<u32>,
    /// Host key policy.
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// User known-hosts files (replace ssh_config's).
    pub known_hosts_files: Option<Vec<PathBuf>>,
    /// `-J`: ProxyJump syntax, `none` allowed.
    pub proxy_jump: Option<String>,
    /// `-o KEY=VALUE` values, in order, as `ssh -o`: under the fields above (sortie's own
    /// options), over the host expression, the inventory and every ssh_config file; the first
    /// `-o` of a keyword wins.
    pub ssh_options: Vec<String>,
    /// Force a transport for every host.
    pub transport: Option<TransportKind>,
}

/// Settings under ssh_config: the user's sortie config file. Each applies only to a host for
/// which neither the command line, the environment, the inventory nor ssh_config set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Connect timeout (whole seconds, rounded up).
    pub connect_timeout: Option<Duration>,
    /// Host key policy.
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
}

/// What to select and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectRequest {
    /// `-H` values: host expressions.
    pub hosts: Vec<String>,
    /// `-x` values: host expressions to remove.
    pub excludes: Vec<String>,
    /// `-g` values: group names (each may be a comma-separated list).
    pub groups: Vec<String>,
    /// `-i`: inventory file; `None` = `./sortie.toml` when it exists.
    pub inventory: Option<PathBuf>,
    /// Command-line settings.
    pub overrides: Overrides,
    /// Settings under ssh_config (the config file).
    pub defaults: Defaults,
    /// Local facts; `None` = [`LocalEnv::from_system`].
    pub env: Option<LocalEnv>,
}

/// Loaded inventory and ssh_config, reusable for many hosts.
#[derive(Debug, Clone)]
pub struct Resolver {
    env: LocalEnv,
    inventory: Option<Inventory>,
    ssh: SshConfig,
    overrides: Overrides,
    defaults: Defaults,
    proxy_jump_override: Option<Vec<JumpHost>>,
}

impl Resolver {
    /// ssh_config lines applied to the hosts resolved so far that sortie does not honour
    /// although they change what `ssh` would do; show them once per run.
    pub fn warnings(&self) -> Vec<crate::sshconfig::ConfigWarning> {
        self.ssh.warnings()
    }

    /// Loads the inventory and ssh_config named by `req` (no group command runs here).
    pub fn new(req: &SelectRequest) -> Result<Resolver, InventoryError> {
        let env = req.env.clone().unwrap_or_else(LocalEnv::from_system);
        let inventory = match &req.inventory {
            Some(p) => Some(inventory::load(&env.cwd.join(p))?),
            None => {
                let p = env.cwd.join(DEFAULT_INVENTORY);
                if p.is_file() {
                    Some(inventory::load(&p)?)
                } else {
                    None
                }
            }
        };
        let ssh_path = req.overrides.ssh_config.as_ref().map(|p| {
            if p == Path::new("none") || p.is_absolute() || p.starts_with("~") {
                p.clone()
            } else {
                env.cwd.join(p)
            }
        });
        let ssh = SshConfig::load(ssh_path.as_deref(), &env)?
            .with_command_line(&req.overrides.ssh_options)?;
        let proxy_jump_override = match &req.overrides.proxy_jump {
            None => None,
            Some(j) => Some(parse_proxy_jump(j).map_err(|m| {
                crate::error::ParseError::new(
                    Origin::Option("-J".into()),
                    j,
                    0,
                    j.len(),
                    m,
                    Some("write hops as [user@]host[:port], comma-separated, or none".into()),
                )
            })?),
        };
        Ok(Resolver {
            env,
            inventory,
            ssh,
            overrides: req.overrides.clone(),
            defaults: req.defaults.clone(),
            proxy_jump_override,
        })
    }

    /// The loaded inventory, if any.
    pub fn inventory(&self) -> Option<&Inventory> {
        self.inventory.as_ref()
    }

    /// The local facts in use.
    pub fn env(&self) -> &LocalEnv {
        &self.env
    }

    /// What the command line sets for every host: sortie's own options, then the `-o` values
    /// (those only for SSH hosts, as they are ssh_config).
    fn command_line_options(&self, transport: TransportKind) -> SshOptions {
        let ov = &self.overrides;
        let mut o = SshOptions {
            user: ov.user.clone(),
            port: ov.port,
            identity_files: ov
                .identity_files
                .iter()
                .map(|f| Sourced::new(f.display().to_string(), "command line"))
                .collect(),
            identities_only: ov.identities_only,
            proxy_jump: self.proxy_jump_override.clone(),
            user_known_hosts_files: ov.known_hosts_files.as_ref().map(|v| {
                Sourced::new(
                    v.iter().map(|p| p.display().to_string()).collect(),
                    "command line",
                )
            }),
            strict_host_key_checking: ov.strict_host_key_checking,
            connect_timeout: ov.connect_timeout.map(ceil_secs),
            server_alive_interval: ov.server_alive_interval.map(ceil_secs),
            server_alive_count_max: ov.server_alive_count_max,
            ..SshOptions::default()
        };
        if transport == TransportKind::Ssh {
            self.ssh.apply_command_line(&mut o);
        }
        o
    }

    /// Effective settings of `spec`, selected through the groups named in `via`.
    pub fn resolve(&self, spec: &HostSpec, via: &[String]) -> Result<HostConfig, InventoryError> {
        let inv = self.inventory.as_ref();
        let entry = inv.and_then(|i| i.host_entry(&spec.host));
        let mut groups: Vec<&Group> = Vec::new();
        if let Some(i) = inv {
            for name in via {
                if let Some(g) = i.group(name) {
                    groups.push(g);
                }
            }
            for g in i.static_groups_of(&spec.host) {
                if !groups.iter().any(|x| x.name == g.name) {
                    groups.push(g);
                }
            }
        }
        // Inventory layers, most specific first.
        let mut layers: Vec<&Settings> = Vec::new();
        if let Some(e) = entry {
            layers.push(&e.settings);
        }
        layers.extend(groups.iter().map(|g| &g.settings));
        if let Some(i) = inv {
            layers.push(&i.defaults);
        }
        let pick = |f: &dyn Fn(&Settings) -> bool| layers.iter().copied().find(|s| f(s));

        let transport = if spec.host == "local" {
            TransportKind::Local
        } else {
            self.overrides
                .transport
                .or_else(|| pick(&|s| s.transport.is_some()).and_then(|s| s.transport))
                .unwrap_or_default()
        };

        // sortie's own options first, then `-o` (as `ssh -o`), then the expression as written
        // and the inventory: each fills only what is still unset.
        let mut o = self.command_line_options(transport);
        o.user = o
            .user
            .or_else(|| spec.user.clone())
            .or_else(|| pick(&|s| s.user.is_some()).and_then(|s| s.user.clone()));
        o.port = o
            .port
            .or(spec.port)
            .or_else(|| pick(&|s| s.port.is_some()).and_then(|s| s.port));
        if let Some(h) = entry.and_then(|e| e.hostname.clone()) {
            if o.hostname.is_none() {
                let origin = format!(
                    "{} [hosts.{}]",
                    inv.map(|i| i.path.display().to_string())
                        .unwrap_or_default(),
                    spec.host
                );
                o.hostname = Some(Sourced::new(h, origin));
            }
        }
        if let Some(s) = pick(&|s| s.identity_files.is_some()) {
            for f in s.identity_files.iter().flatten() {
                if !o.identity_files.iter().any(|x| &x.value == f) {
                    o.identity_files
                        .push(Sourced::new(f.clone(), format!("inventory {}", s.origin)));
                }
            }
        }
        if o.proxy_jump.is_none() && o.proxy_command.is_none() {
            o.proxy_jump = pick(&|s| s.proxy_jump.is_some()).and_then(|s| s.proxy_jump.clone());
        }

        if transport == TransportKind::Ssh {
            self.ssh.apply(&spec.host, &mut o, &self.env)?;
        }
        // The config file's values come last: under everything above.
        if !o.connect_timeout_none {
            o.connect_timeout = o
                .connect_timeout
                .or(self.defaults.connect_timeout.map(ceil_secs));
        }
        o.strict_host_key_checking = o
            .strict_host_key_checking
            .or(self.defaults.strict_host_key_checking);
        let eff = o.finish(&spec.host, &self.env)?;

        let mut tags = BTreeMap::new();
        for s in layers.iter().rev() {
            for (k, v) in &s.tags {
                tags.insert(k.clone(), v.clone());
            }
        }
        Ok(HostConfig {
            name: spec.label(),
            hostname: eff.hostname,
            user: eff.user,
            port: eff.port,
            identity_files: eff.identity_files,
            identities_only: eff.identities_only,
            certificate_files: eff.certificate_files,
            forward_agent: eff.forward_agent,
            proxy_jump: eff.proxy_jump,
            proxy_command: eff.proxy_command,
            user_known_hosts_files: eff.user_known_hosts_files,
            global_known_hosts_files: eff.global_known_hosts_files,
            strict_host_key_checking: eff.strict_host_key_checking,
            host_key_alias: eff.host_key_alias,
            hash_known_hosts: eff.hash_known_hosts,
            connect_timeout: match eff.connect_timeout {
                Some(t) => t,
                // `ConnectTimeout none`, as OpenSSH: no timeout.
                None if eff.connect_timeout_none => Duration::ZERO,
                None => DEFAULT_CONNECT_TIMEOUT,
            },
            server_alive_interval: eff
                .server_alive_interval
                .unwrap_or(DEFAULT_SERVER_ALIVE_INTERVAL),
            server_alive_count_max: eff.server_alive_count_max,
            transport,
            tags,
            groups: groups.iter().map(|g| g.name.clone()).collect(),
        })
    }

    /// Runs the selection of `req` (see the module doc) with this resolver's files.
    pub fn select(&self, req: &SelectRequest) -> Result<Vec<HostConfig>, InventoryError> {
        let cwd = &self.env.cwd;
        let mut picked: Vec<(HostSpec, Vec<String>)> = Vec::new();
        for h in &req.hosts {
            for spec in hostexpr::expand(h, Origin::Option("-H".into()), cwd)? {
                picked.push((spec, Vec::new()));
            }
        }
        let group_names: Vec<String> = req
            .groups
            .iter()
            .flat_map(|g| g.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        if !group_names.is_empty() {
            let Some(inv) = &self.inventory else {
                return Err(InventoryError::NoInventory {
                    name: group_names[0].clone(),
                });
            };
            // Check every name before running any command.
            for g in &group_names {
                if inv.group(g).is_none() {
                    return Err(InventoryError::UnknownGroup {
                        name: g.clone(),
                        known: inv.group_names(),
                    });
                }
            }
            for g in &group_names {
                for spec in inv.group_members(g)? {
                    picked.push((spec, vec![g.clone()]));
                }
            }
        }
        if req.hosts.is_empty() && group_names.is_empty() {
            if let Some(inv) = &self.inventory {
                for h in &inv.hosts {
                    picked.push((HostSpec::new(h.name.clone()), Vec::new()));
                }
                for g in &inv.groups {
                    for spec in inv.group_members(&g.name)? {
                        picked.push((spec, vec![g.name.clone()]));
                    }
                }
            }
        }
        if picked.is_empty() {
            return Err(InventoryError::NoHosts);
        }
        // De-duplicate by label, keeping the first and remembering every group it came from.
        let mut unique: Vec<(HostSpec, Vec<String>)> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        for (spec, via) in picked {
            match index.get(&spec.label()) {
                Some(&i) => {
                    for g in via {
                        if !unique[i].1.contains(&g) {
                            unique[i].1.push(g);
                        }
                    }
                }
                None => {
                    index.insert(spec.label(), unique.len());
                    unique.push((spec, via));
                }
            }
        }
        let mut excludes = Vec::new();
        for x in &req.excludes {
            excludes.extend(hostexpr::expand(x, Origin::Option("-x".into()), cwd)?);
        }
        unique.retain(|(s, _)| {
            !excludes.iter().any(|x| {
                x.host == s.host
                    && (x.port.is_none() || x.port == s.port)
                    && (x.user.is_none() || x.user == s.user)
            })
        });
        if unique.is_empty() {
            return Err(InventoryError::AllExcluded);
        }
        unique
            .iter()
            .map(|(spec, via)| self.resolve(spec, via))
            .collect()
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Selects hosts for `req` and resolves each (see the module doc for the rules).
pub fn select(req: &SelectRequest) -> Result<Vec<HostConfig>, InventoryError> {
    Resolver::new(req)?.select(req)
}

/// Resolves one host expression (which must expand to exactly one host) with the inventory
/// and ssh_config of `req`, e.g. a ProxyJump hop. The host gets the settings of its
/// `[hosts.NAME]` table and of groups listing it statically.
pub fn resolve_one(req: &SelectRequest, host: &str) -> Result<HostConfig, InventoryError> {
    let r = Resolver::new(req)?;
    let specs = hostexpr::expand(host, Origin::Other("host".into()), &r.env.cwd)?;
    match specs.as_slice() {
        [one] => r.resolve(one, &[]),
        _ => Err(InventoryError::NotOneHost {
            expr: host.to_string(),
            count: specs.len(),
        }),
    }
}
