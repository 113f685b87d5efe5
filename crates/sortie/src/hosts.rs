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
    /// ssh_config gives the host a ProxyCommand, which sortie does not run.
    #[error("{host}: ProxyCommand `{command}` is not supported by sortie")]
    #[diagnostic(
        code(sortie::proxy_command),
        help("use ProxyJump instead, or `ProxyCommand none` for this host")
    )]
    ProxyCommand {
        /// Host label.
        host: String,
        /// The command as configured.
        command: String,
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
    let resolver = Resolver::new(req)?;
    let hosts = resolver.select(req)?;
    if hosts.is_empty() {
        return Err(SelectError::NoHosts);
    }
    hosts.iter().map(|h| target(&resolver, h)).collect()
}

/// One target from a host's effective settings; ProxyJump hops are resolved like any host
/// (ssh_config and inventory apply to them).
pub fn target(resolver: &Resolver, cfg: &HostConfig) -> Result<Target, SelectError> {
    if let Some(command) = &cfg.proxy_command {
        return Err(SelectError::ProxyCommand {
            host: cfg.name.clone(),
            command: command.clone(),
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
    Ok(t)
}

fn target_only(cfg: &HostConfig) -> Target {
    let mut known_hosts_files = cfg.user_known_hosts_files.clone();
    known_hosts_files.extend(cfg.global_known_hosts_files.iter().cloned());
    Target {
        label: cfg.name.clone(),
        hostname: cfg.hostname.clone(),
        host_key_alias: cfg.host_key_alias.clone(),
        port: cfg.port,
        user: cfg.user.clone(),
        identity_files: cfg.identity_files.clone(),
        identities_only: cfg.identities_only,
        jumps: vec![],
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
