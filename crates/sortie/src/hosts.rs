//! From a host selection (host expressions, inventory groups, ssh_config) to transport
//! [`Target`]s. Pure: reads files and may run an inventory group's command, never contacts
//! a host, so every input error surfaces before any connection.

use sortie_inventory::{HostConfig, HostSpec, StrictHostKeyChecking};

use crate::transport::{HostKeyChecking, Target, TransportKind};

pub use sortie_inventory::{InventoryError, Overrides, Resolver, SelectRequest};

/// Why a selection cannot be turned into targets.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SelectError {
    /// Bad host expression, inventory, ssh_config, or a failing group command.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Inventory(#[from] InventoryError),
    /// The host's ProxyCommand has a `%` token OpenSSH does not define for it.
    #[error("{host}: ProxyCommand `{command}`: unknown token `%{token}`")]
    #[diagnostic(
        code(sortie::proxy_command),
        help("ProxyCommand takes %h (host), %p (port), %r (user), %n (host as given) and %%")
    )]
    ProxyCommand {
        /// Host label.
        host: String,
        /// The command as configured.
        command: String,
        /// The token's letter.
        token: char,
    },
    /// A remote user name OpenSSH would refuse: shell metacharacters or a leading `-` (it would
    /// reach ProxyCommand's `%r` and the remote shell).
    #[error("{host}: invalid user name {user:?}")]
    #[diagnostic(
        code(sortie::user_name),
        help("as in OpenSSH, a user name may not start with '-' or contain quotes, backquotes or any of ;&<>|(){{}}")
    )]
    UserName {
        /// Host label.
        host: String,
        /// The refused name.
        user: String,
    },
    /// Nothing was selected.
    #[error("no host selected")]
    #[diagnostic(code(sortie::no_hosts), help("check -H/-g/-x and the inventory"))]
    NoHosts,
}

/// Resolves a selection into connection targets, jump hosts included.
///
/// ```
/// let req = sortie::hosts::SelectRequest { hosts: vec!["local".into()], ..Default::default() };
/// let targets = sortie::hosts::select_targets(&req).unwrap();
/// assert_eq!(targets[0].label, "local");
/// ```
pub fn select_targets(req: &SelectRequest) -> Result<Vec<Target>, SelectError> {
    select_targets_warn(req).map(|(t, _)| t)
}

/// As [`select_targets`], with the ssh_config lines that applied to the selected hosts (jump
/// hosts included) but that sortie does not honour; the caller shows them once.
pub fn select_targets_warn(
    req: &SelectRequest,
) -> Result<(Vec<Target>, Vec<sortie_inventory::ConfigWarning>), SelectError> {
    let resolver = Resolver::new(req)?;
    let hosts = resolver.select(req)?;
    if hosts.is_empty() {
        return Err(SelectError::NoHosts);
    }
    let targets = hosts
        .iter()
        .map(|h| target(&resolver, h))
        .collect::<Result<_, _>>()?;
    Ok((targets, resolver.warnings()))
}

/// One target from a host's effective settings; ProxyJump hops are resolved like any host
/// (ssh_config and inventory apply to them).
pub fn target(resolver: &Resolver, cfg: &HostConfig) -> Result<Target, SelectError> {
    if cfg.transport == sortie_inventory::TransportKind::Ssh && !valid_user(&cfg.user) {
        return Err(SelectError::UserName {
            host: cfg.name.clone(),
            user: cfg.user.clone(),
        });
    }
    let mut jumps = Vec::new();
    for hop in &cfg.proxy_jump {
        let spec = HostSpec {
            user: hop.user.clone(),
            host: hop.host.clone(),
            port: hop.port,
        };
        let hop_cfg = resolver.resolve(&spec, &[])?;
        let mut t = target_only(&hop_cfg);
        t.label = hop.to_string();
        jumps.push(t);
    }
    let mut t = target_only(cfg);
    t.jumps = jumps;
    if t.kind == TransportKind::Ssh {
        t.proxy_command = cfg
            .proxy_command
            .as_deref()
            .map(|c| proxy_command(c, cfg))
            .transpose()?;
    }
    Ok(t)
}

/// OpenSSH's `valid_ruser` (ssh.c): no leading `-`, none of `'`, backquote, `"`, `;&<>|(){}`,
/// no `-` right after whitespace, no `\` at the end.
fn valid_user(user: &str) -> bool {
    let b = user.as_bytes();
    !user.is_empty()
        && !user.starts_with('-')
        && !b.iter().enumerate().any(|(i, &c)| {
            b"'`\";&<>|(){}".contains(&c)
                || (c.is_ascii_whitespace() && b.get(i + 1) == Some(&b'-'))
                || (c == b'\\' && i + 1 == b.len())
        })
}

/// Expands ProxyCommand's tokens as OpenSSH does: `%h` the HostName, `%p` the port, `%r` the
/// user, `%n` the host as given, `%%` a `%`.
fn proxy_command(command: &str, cfg: &HostConfig) -> Result<String, SelectError> {
    let mut out = String::with_capacity(command.len() + 32);
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(&cfg.hostname),
            Some('p') => out.push_str(&cfg.port.to_string()),
            Some('r') => out.push_str(&cfg.user),
            Some('n') => out.push_str(original_host(&cfg.name)),
            other => {
                return Err(SelectError::ProxyCommand {
                    host: cfg.name.clone(),
                    command: command.to_string(),
                    token: other.unwrap_or(' '),
                })
            }
        }
    }
    Ok(out)
}

/// The host part of a selection label `[user@]host[:port]` (`[v6]:port` kept bracket-free).
fn original_host(label: &str) -> &str {
    let host = label.rsplit_once('@').map_or(label, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split_once(']').map_or(v6, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn target_only(cfg: &HostConfig) -> Target {
    let mut known_hosts_files = cfg.user_known_hosts_files.clone();
    known_hosts_files.extend(cfg.global_known_hosts_files.iter().cloned());
    Target {
        label: cfg.name.clone(),
        hostname: cfg.hostname.clone(),
        host_key_alias: cfg.host_key_alias.clone(),
        hash_known_hosts: cfg.hash_known_hosts,
        port: cfg.port,
        user: cfg.user.clone(),
        identity_files: cfg.identity_files.clone(),
        identities_only: cfg.identities_only,
        certificate_files: cfg.certificate_files.clone(),
        forward_agent: cfg.forward_agent,
        jumps: vec![],
        proxy_command: None,
        known_hosts_files,
        host_key_checking: match cfg.strict_host_key_checking {
            StrictHostKeyChecking::No => HostKeyChecking::No,
            StrictHostKeyChecking::AcceptNew => HostKeyChecking::AcceptNew,
            // OpenSSH's `ask` cannot ask here: sortie refuses, as with `yes`.
            StrictHostKeyChecking::Yes | StrictHostKeyChecking::Ask => HostKeyChecking::Yes,
        },
        connect_timeout: cfg.connect_timeout,
        keepalive_interval: cfg.server_alive_interval,
        keepalive_max: cfg.server_alive_count_max,
        kind: match cfg.transport {
            sortie_inventory::TransportKind::Local => TransportKind::Local,
            sortie_inventory::TransportKind::Ssh => TransportKind::Ssh,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_for(ssh_config: &str, host: &str) -> Result<Target, SelectError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssh_config");
        std::fs::write(&path, ssh_config).unwrap();
        let req = SelectRequest {
            hosts: vec![host.into()],
            overrides: Overrides {
                ssh_config: Some(path),
                ..Overrides::default()
            },
            ..SelectRequest::default()
        };
        select_targets(&req).map(|mut t| t.remove(0))
    }

    #[test]
    fn proxy_command_tokens_expand_like_openssh() {
        let t = cfg_for(
            "Host bastioned\n  HostName 10.0.0.7\n  User ec2-user\n  Port 2222\n  \
             ProxyCommand ssm %h %p %r %n 100%%\n",
            "bastioned",
        )
        .unwrap();
        assert_eq!(
            t.proxy_command.as_deref(),
            Some("ssm 10.0.0.7 2222 ec2-user bastioned 100%")
        );
        let e = cfg_for("Host x\n  ProxyCommand nc %z\n", "x").unwrap_err();
        assert!(e.to_string().contains("%z"), "{e}");
        let direct = cfg_for(
            "Host x\n  ProxyCommand none\nHost *\n  ProxyCommand nc %h\n",
            "x",
        );
        assert_eq!(direct.unwrap().proxy_command, None);
    }

    #[test]
    fn user_names_openssh_refuses_are_refused() {
        for bad in [
            "-oProxyCommand=x",
            "x$(id)",
            "a;b",
            "it's",
            "a|b",
            "a`b`",
            "x\\",
        ] {
            let e = cfg_for("", &format!("{bad}@h")).unwrap_err();
            assert!(matches!(e, SelectError::UserName { .. }), "{bad}: {e}");
        }
        for good in ["ec2-user", "root", "first.last", "user_1", "a@b"] {
            assert!(valid_user(good), "{good}");
        }
    }
}
