//! From command-line selection options to transport targets, and the shared run plumbing
//! (transports, Ctrl-C).

use std::sync::Arc;

use sortie::transport::{
    ssh::{SshOptions, SshTransport},
    HostKeyChecking, Target, Transport, TransportKind, Transports,
};
use sortie_inventory::{
    HostConfig, HostSpec, Overrides, Resolver, SelectRequest, StrictHostKeyChecking,
};

use crate::args::{self, Selection};

/// The selection request for the inventory layer.
pub fn request(sel: &Selection) -> SelectRequest {
    SelectRequest {
        hosts: sel.hosts.clone(),
        excludes: sel.exclude.clone(),
        groups: sel.groups.clone(),
        inventory: sel.inventory.clone(),
        overrides: Overrides {
            user: sel.user.clone(),
            port: sel.port,
            identity_files: sel.identity.clone(),
            ssh_config: sel.ssh_config.clone(),
            connect_timeout: sel.connect_timeout,
            strict_host_key_checking: sel.host_key_checking.map(|h| match h {
                args::HostKeyChecking::Yes => StrictHostKeyChecking::Yes,
                args::HostKeyChecking::AcceptNew => StrictHostKeyChecking::AcceptNew,
                args::HostKeyChecking::No => StrictHostKeyChecking::No,
            }),
            known_hosts_files: (!sel.known_hosts.is_empty()).then(|| sel.known_hosts.clone()),
            ..Overrides::default()
        },
        ..SelectRequest::default()
    }
}

/// Resolves the selection into targets, jump hosts included. Every input error surfaces here,
/// before any host is contacted.
pub fn targets(sel: &Selection) -> miette::Result<Vec<Target>> {
    let req = request(sel);
    let resolver = Resolver::new(&req).map_err(miette::Report::new)?;
    let hosts = resolver.select(&req).map_err(miette::Report::new)?;
    if hosts.is_empty() {
        return Err(miette::miette!(
            help = "check -H/-g/-x and the inventory",
            "no host selected"
        ));
    }
    hosts
        .iter()
        .map(|h| target(&resolver, h))
        .collect::<miette::Result<Vec<_>>>()
}

/// One target from its effective settings; jump hops are resolved like any host.
pub fn target(resolver: &Resolver, cfg: &HostConfig) -> miette::Result<Target> {
    if let Some(pc) = &cfg.proxy_command {
        return Err(miette::miette!(
            help = "use ProxyJump instead, or `ProxyCommand none` for this host",
            "{}: ProxyCommand `{pc}` is not supported by sortie",
            cfg.name
        ));
    }
    let mut jumps = Vec::new();
    for hop in &cfg.proxy_jump {
        let spec = HostSpec {
            user: hop.user.clone(),
            host: hop.host.clone(),
            port: hop.port,
        };
        let hop_cfg = resolver.resolve(&spec, &[]).map_err(miette::Report::new)?;
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
        hostname: cfg
            .host_key_alias
            .clone()
            .filter(|_| false)
            .unwrap_or_else(|| cfg.hostname.clone()),
        port: cfg.port,
        user: cfg.user.clone(),
        identity_files: cfg.identity_files.clone(),
        identities_only: cfg.identities_only,
        jumps: vec![],
        known_hosts_files,
        host_key_checking: match cfg.strict_host_key_checking {
            StrictHostKeyChecking::No => HostKeyChecking::No,
            StrictHostKeyChecking::AcceptNew => HostKeyChecking::AcceptNew,
            // OpenSSH's `ask` cannot ask here: sortie refuses, as `yes` does.
            _ => HostKeyChecking::Yes,
        },
        connect_timeout: cfg.connect_timeout,
        keepalive_interval: cfg.server_alive_interval,
        keepalive_max: cfg.server_alive_count_max,
        kind: match cfg.transport {
            sortie_inventory::TransportKind::Local => TransportKind::Local,
            _ => TransportKind::Ssh,
        },
    }
}

/// The transports of a run.
pub fn transports() -> Arc<dyn Transport> {
    Arc::new(Transports::new(SshTransport::new(SshOptions::default())))
}

/// First Ctrl-C cancels the run (stop new work, end what runs); a second exits at once.
pub fn on_interrupt(cancel: sortie::CancellationToken) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("sortie: interrupted; ending remote commands (Ctrl-C again to exit at once)");
        cancel.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("sortie: exiting at once");
            std::process::exit(130);
        }
    });
}
