//! Launch plans: the file `sortie launch PLAN.toml` reads, checked and placed before anything
//! runs.
//!
//! This module owns the plan format (documented in `docs/plan.md`), its validation with errors
//! that name the file, line and column, the placement of processes on hosts, the planned start
//! schedule and the dry-run rendering. It is pure and synchronous: it reads the plan and its
//! CSV data sets, and nothing else; it never runs a group's `command`, contacts a host or reads
//! the environment (see [`PlanSpec::check_controller_env`] for an explicit check).
//!
//! The lifecycle engine uses it in three steps:
//!
//! 1. [`load`] (or [`load_str`]) parses the file, applies `--set` overrides and validates
//!    everything that does not need hosts, giving a [`PlanSpec`];
//! 2. it resolves the groups of [`PlanSpec::host_needs`] (runs their `command`, or reads the
//!    inventory) into a [`HostResolution`];
//! 3. [`PlanSpec::place`] places and renders every process, giving the [`Plan`] it runs.
//!
//! ```
//! use sortie_plan::launch::{load_str, HostResolution};
//!
//! let plan = load_str(
//!     "plan.toml",
//!     r#"
//! [data.channels]
//! values = ["ch1", "ch2"]
//! column = "channel"
//!
//! [roles.master]
//! hosts = "local[1-2]"
//! for_each = "channels"
//! command = "./master {channel}"
//! unique_key = true
//! "#,
//!     std::path::Path::new("."),
//!     &[],
//! )
//! .unwrap()
//! .place(&HostResolution::new())
//! .unwrap();
//! assert_eq!(plan.processes[1].id.to_string(), "master/ch2");
//! assert_eq!(plan.processes[1].host, "local2");
//! assert_eq!(plan.processes[1].command, "./master ch2");
//! ```

mod error;
mod model;
mod overrides;
mod place;
mod render;
mod schema;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use error::{Located, PlanError};
pub use model::*;
pub use place::HostResolution;
pub use render::{render_dry_run, render_dry_run_with, DryRunOptions};

use error::Source;

/// A validated plan, before placement (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct PlanSpec {
    /// Plan name (`name = ...`, else the file stem).
    pub name: String,
    /// SHA-256 of the plan file's bytes (before overrides), lowercase hex.
    pub digest: String,
    /// The plan file as given.
    pub path: PathBuf,
    /// Directory relative paths in the plan start from.
    pub base_dir: PathBuf,
    /// The `--set` overrides applied, as given.
    pub overrides: Vec<String>,
    /// `[defaults]` connection settings.
    pub defaults: Connection,
    /// The inventory file the plan refers to, if any.
    pub inventory: Option<PathBuf>,
    /// Host groups: those of `[groups]`, then inventory groups roles use.
    pub groups: Vec<HostGroup>,
    /// Roles in dependency order (a role after the one it depends on; otherwise file order).
    pub roles: Vec<Role>,
    /// Run settings.
    pub run: RunSettings,
    /// Pass/fail thresholds.
    pub thresholds: Vec<Threshold>,
    /// `[[upload]]` transfers (run by the transfer engine before the launch).
    pub uploads: Vec<Transfer>,
    /// `[[collect]]` transfers (run by the transfer engine after the stop).
    pub collects: Vec<Transfer>,
    work: Vec<validate::RoleWork>,
    source: Arc<Source>,
    landed: Vec<overrides::Landed>,
}

impl PlanSpec {
    /// Checks that every `env_from_controller` variable is set, with `lookup` standing for the
    /// environment (`|k| std::env::var(k).ok()`); the error points at the name in the plan.
    pub fn check_controller_env(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), PlanError> {
        validate::missing_controller_env(self, lookup)
    }

    /// Number of processes each role will run, in role order.
    pub fn process_counts(&self) -> Vec<(String, usize)> {
        self.roles
            .iter()
            .zip(&self.work)
            .map(|(r, w)| (r.name.clone(), w.pending.len()))
            .collect()
    }
}

/// A placed plan: every process rendered, on a host, with its planned start.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Plan name.
    pub name: String,
    /// SHA-256 of the plan file's bytes, lowercase hex.
    pub digest: String,
    /// The plan file as given.
    pub path: PathBuf,
    /// Directory relative paths in the plan start from.
    pub base_dir: PathBuf,
    /// The `--set` overrides applied.
    pub overrides: Vec<String>,
    /// Roles in dependency order.
    pub roles: Vec<Role>,
    /// Every host used, sorted naturally by label.
    pub hosts: Vec<PlanHost>,
    /// Every process, role by role in dependency order, each role in start order.
    pub processes: Vec<ProcessSpec>,
    /// Run settings.
    pub run: RunSettings,
    /// Pass/fail thresholds.
    pub thresholds: Vec<Threshold>,
    /// `[[upload]]` transfers: run on each host before its first process starts.
    pub uploads: Vec<Transfer>,
    /// `[[collect]]` transfers: run on each host after the stop, into the run directory.
    pub collects: Vec<Transfer>,
}

impl Plan {
    /// The role called `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The host labelled `label`.
    pub fn host(&self, label: &str) -> Option<&PlanHost> {
        self.hosts.iter().find(|h| h.label == label)
    }

    /// The processes of role `name`, in start order.
    pub fn processes_of<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a ProcessSpec> + 'a {
        self.processes.iter().filter(move |p| p.role == role)
    }

    /// The run directory for a run started at `timestamp` (e.g. `20240501-120000`):
    /// `run.run_dir` with `{name}` and `{timestamp}` replaced, relative to the plan's directory.
    pub fn run_dir(&self, timestamp: &str) -> PathBuf {
        let rel = self
            .run
            .run_dir
            .replace("{name}", &self.name)
            .replace("{timestamp}", timestamp);
        self.base_dir.join(rel)
    }

    /// The local file or directory an `[[upload]]` sends: `~/` is the controller's home,
    /// other relative paths start at the plan's directory.
    pub fn upload_source(&self, upload: &Transfer) -> PathBuf {
        validate::local_source(&self.base_dir, &upload.src)
    }

    /// The hosts role `role` runs on, by index into [`Plan::hosts`]: those of its group (or
    /// its inline `hosts`) and any host one of its processes was placed on.
    pub fn role_hosts(&self, role: &Role) -> Vec<usize> {
        let group = match &role.hosts {
            RoleHosts::Group(g) => g.clone(),
            RoleHosts::Inline(_) => format!("role:{}", role.name),
        };
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.group == group
                    || self
                        .processes
                        .iter()
                        .any(|p| p.role == role.name && p.host == h.label)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The plan hosts a transfer applies to (its role's hosts, or every host), by index into
    /// [`Plan::hosts`].
    pub fn transfer_hosts(&self, t: &Transfer) -> Vec<usize> {
        match t.role.as_deref().and_then(|r| self.role(r)) {
            Some(role) => self.role_hosts(role),
            None => (0..self.hosts.len()).collect(),
        }
    }
}

/// Reads and validates the plan file at `path`, applying `overrides` (`KEY=VALUE`, as given to
/// `--set`). Data sets are read relative to the plan's directory.
pub fn load(path: &Path, overrides: &[String]) -> Result<PlanSpec, PlanError> {
    let bytes = std::fs::read(path).map_err(|source| PlanError::Io {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
        let at = e.utf8_error().valid_up_to();
        Source::new(path.display().to_string(), lossy).error(
            "sortie::plan::invalid_utf8",
            at..at + 1,
            "the plan is not valid UTF-8",
            "invalid UTF-8 here",
            Some("save the file as UTF-8".into()),
        )
    })?;
    let base = path.parent().map_or_else(
        || PathBuf::from("."),
        |p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_owned()
            }
        },
    );
    load_inner(path.to_owned(), &text, base, overrides)
}

/// Like [`load`], from text: `name` is the file name shown in errors, `base_dir` the directory
/// data-set paths are relative to.
pub fn load_str(
    name: &str,
    text: &str,
    base_dir: &Path,
    overrides: &[String],
) -> Result<PlanSpec, PlanError> {
    load_inner(PathBuf::from(name), text, base_dir.to_owned(), overrides)
}

fn load_inner(
    path: PathBuf,
    text: &str,
    base_dir: PathBuf,
    overrides: &[String],
) -> Result<PlanSpec, PlanError> {
    let digest: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = path.display().to_string();
    let original = Source::new(name.clone(), text);
    let (edited, landed) = overrides::apply(text, &original, overrides)?;
    let src = Source::new(name, edited);
    let result = toml::from_str::<schema::RawPlan>(&src.text)
        .map_err(|e| {
            src.error(
                "sortie::plan::schema",
                e.span().unwrap_or(0..0),
                e.message().trim().to_owned(),
                "here",
                Some("see docs/plan.md for the plan format".into()),
            )
        })
        .and_then(|raw| {
            validate::validate(raw, src.clone(), path, base_dir, digest, overrides.to_vec())
        });
    let mut spec = result.map_err(|e| overrides::attribute(e, &landed))?;
    spec.landed = landed;
    Ok(spec)
}
