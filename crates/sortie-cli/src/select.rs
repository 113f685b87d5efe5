//! From command-line selection options to transport targets, and the shared run plumbing
//! (transports, Ctrl-C).

use std::sync::Arc;

use sortie::transport::{
    ssh::{SshOptions, SshTransport},
    Target, Transport, Transports,
};
use sortie_inventory::{HostConfig, Overrides, Resolver, SelectRequest, StrictHostKeyChecking};

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
            strict_host_key_checking: sel.host_key_checking.map(strict),
            known_hosts_files: (!sel.known_hosts.is_empty()).then(|| sel.known_hosts.clone()),
            ssh_options: sel.ssh_options.clone(),
            ..Overrides::default()
        },
        defaults: sel.defaults.clone(),
        ..SelectRequest::default()
    }
}

/// The inventory layer's host key policy for the command line's.
pub fn strict(h: args::HostKeyChecking) -> StrictHostKeyChecking {
    match h {
        args::HostKeyChecking::Yes => StrictHostKeyChecking::Yes,
        args::HostKeyChecking::AcceptNew => StrictHostKeyChecking::AcceptNew,
        args::HostKeyChecking::No => StrictHostKeyChecking::No,
    }
}

/// Resolves the selection into targets, jump hosts included. Every input error surfaces here,
/// before any host is contacted.
pub fn targets(sel: &Selection) -> miette::Result<Vec<Target>> {
    for key in &sel.identity {
        if let Err(e) = std::fs::File::open(key) {
            return Err(miette::miette!(
                help = "give the path of a readable private key file",
                "--identity {}: {e}",
                key.display()
            ));
        }
    }
    let (targets, warnings) =
        sortie::hosts::select_targets_warn(&request(sel)).map_err(miette::Report::new)?;
    print_warnings(&warnings);
    Ok(targets)
}

/// Shows, once each, the ssh_config lines that sortie does not honour although they change
/// what `ssh` would do (on stderr, before any host is contacted).
pub fn print_warnings(warnings: &[sortie_inventory::ConfigWarning]) {
    let mut shown = std::collections::BTreeSet::new();
    for w in warnings {
        if shown.insert(&w.origin) {
            eprintln!("sortie: warning: {w}");
        }
    }
}

/// One target from its effective settings (see [`sortie::hosts::target`]).
#[allow(dead_code)]
pub fn target(resolver: &Resolver, cfg: &HostConfig) -> miette::Result<Target> {
    sortie::hosts::target(resolver, cfg).map_err(miette::Report::new)
}

/// The transports of a run; `max_handshakes` is `--max-handshakes` (or its config value), the
/// built-in default when unset.
pub fn transports(max_handshakes: Option<u32>) -> Arc<dyn Transport> {
    let mut options = SshOptions::default();
    if let Some(n) = max_handshakes {
        options.max_handshakes = n as usize;
    }
    Arc::new(Transports::new(SshTransport::new(options)))
}

/// First Ctrl-C, SIGTERM or SIGHUP cancels the run (stop new work, end what runs); a second
/// exits at once.
pub fn on_interrupt(signals: crate::signals::Interrupts, cancel: sortie::CancellationToken) {
    crate::signals::on_interrupt(signals, cancel, None, "ending remote commands");
}
