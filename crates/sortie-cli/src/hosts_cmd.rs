//! `sortie hosts`: list the selection (one name a line, or folded into one expression with
//! `--fold`), or print one host's effective settings like `ssh -G`.

use sortie_inventory::{HostSpec, Resolver};

use crate::args::HostsArgs;
use crate::exit::ExitCode;
use crate::select;

pub async fn run(args: HostsArgs) -> miette::Result<ExitCode> {
    let req = select::request(&args.selection);
    let resolver = Resolver::new(&req).map_err(miette::Report::new)?;
    if let Some(host) = &args.resolved {
        let spec = sortie_inventory::hostexpr::expand(
            host,
            sortie_inventory::Origin::Option("--resolved".into()),
            std::path::Path::new("."),
        )
        .map_err(miette::Report::new)?
        .into_iter()
        .next()
        .unwrap_or_else(|| HostSpec::new(host.clone()));
        let cfg = resolver
            .resolve(&spec, &args.selection.groups)
            .map_err(miette::Report::new)?;
        select::print_warnings(&resolver.warnings());
        print!("{}", cfg.ssh_g_lines());
        return Ok(ExitCode::Ok);
    }
    let hosts = resolver.select(&req).map_err(miette::Report::new)?;
    select::print_warnings(&resolver.warnings());
    if args.fold {
        let names: Vec<String> = hosts.into_iter().map(|h| h.name).collect();
        if !names.is_empty() {
            println!("{}", sortie_inventory::hostexpr::fold(&names));
        }
        return Ok(ExitCode::Ok);
    }
    for h in hosts {
        println!("{}", h.name);
    }
    Ok(ExitCode::Ok)
}
