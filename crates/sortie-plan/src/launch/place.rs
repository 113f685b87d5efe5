//! Placement of a validated plan on hosts, and the start schedule.
//!
//! Owns turning a [`PlanSpec`] plus the hosts of groups the engine resolved into a [`Plan`]:
//! which host and slot each process gets (balanced, deterministic), its rendered command,
//! environment and directory, what it waits for, and its planned start offset. It runs no
//! command and contacts no host.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sortie_inventory::hostexpr::{natural_cmp, HostSpec};

use super::error::PlanError;
use super::model::*;
use super::validate::{render_raw, Pending, RoleWork};
use super::{Plan, PlanSpec};
use crate::template::Context;

/// Hosts of the groups listed by [`PlanSpec::host_needs`], by group name, as the engine resolved
/// them (ran the group's command, or read the inventory).
pub type HostResolution = BTreeMap<String, Vec<HostSpec>>;

/// Directory name for a key: characters outside `[A-Za-z0-9._-]` become `_`.
fn dir_name(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

impl PlanSpec {
    /// Groups used by a role whose hosts are not written in the plan (a `command` group or an
    /// inventory group): the engine resolves them, then calls [`place`](Self::place).
    pub fn host_needs(&self) -> Vec<HostNeed> {
        let mut out: Vec<HostNeed> = Vec::new();
        for w in &self.work {
            let Some(g) = &w.group else { continue };
            let Some(group) = self.groups.iter().find(|x| &x.name == g) else {
                continue;
            };
            if matches!(group.source, GroupSource::Hosts(_)) || out.iter().any(|n| &n.group == g) {
                continue;
            }
            out.push(HostNeed {
                group: g.clone(),
                source: group.source.clone(),
            });
        }
        out
    }

    /// Places every process on a host, renders it and plans its start. `resolved` holds the
    /// hosts of every group in [`host_needs`](Self::host_needs) (empty when there are none).
    ///
    /// Hosts are sorted naturally by label; each process goes to the host with the fewest
    /// processes of the same key, then the fewest processes of its role, ties broken
    /// round-robin; a host never gets more than `slots` processes of a role.
    pub fn place(&self, resolved: &HostResolution) -> Result<Plan, PlanError> {
        self.place_inner(resolved)
            .map_err(|e| super::overrides::attribute(e, &self.landed))
    }

    fn place_inner(&self, resolved: &HostResolution) -> Result<Plan, PlanError> {
        let mut all_hosts: Vec<PlanHost> = Vec::new();
        let mut placed = Placed::default();
        for (role, w) in self.roles.iter().zip(&self.work) {
            let hosts = self.role_hosts(role, w, resolved)?;
            placed.role(role, w, &hosts);
            for h in hosts {
                if !all_hosts.iter().any(|x| x.label == h.label) {
                    all_hosts.push(h);
                }
            }
        }
        all_hosts.sort_by(|a, b| natural_cmp(&a.label, &b.label));
        Ok(Plan {
            name: self.name.clone(),
            digest: self.digest.clone(),
            path: self.path.clone(),
            base_dir: self.base_dir.clone(),
            overrides: self.overrides.clone(),
            roles: self.roles.clone(),
            hosts: all_hosts,
            processes: placed.processes,
            run: self.run.clone(),
            thresholds: self.thresholds.clone(),
            uploads: self.uploads.clone(),
            collects: self.collects.clone(),
        })
    }

    /// A role's hosts (inline, or its group's), sorted naturally, with their connection
    /// settings; refused when there are none or they have too few slots.
    fn role_hosts(
        &self,
        role: &Role,
        w: &RoleWork,
        resolved: &HostResolution,
    ) -> Result<Vec<PlanHost>, PlanError> {
        let src = &*self.source;
        let (specs, group_name, conn) = match &role.hosts {
            RoleHosts::Inline(h) => (
                h.clone(),
                format!("role:{}", role.name),
                self.defaults.clone(),
            ),
            RoleHosts::Group(g) => {
                let group = (self.groups.iter())
                    .find(|x| &x.name == g)
                    .expect("validation checked the group");
                let specs = match &group.source {
                    GroupSource::Hosts(h) => h.clone(),
                    _ => resolved.get(g).cloned().ok_or_else(|| {
                        src.error(
                            "sortie::plan::unresolved_group",
                            w.hosts_span.clone(),
                            format!("the hosts of group {g:?} were not resolved"),
                            "hosts needed",
                            Some(
                                "resolve the groups of PlanSpec::host_needs before placing".into(),
                            ),
                        )
                    })?,
                };
                (specs, g.clone(), group.connection.clone())
            }
        };
        let mut hosts: Vec<PlanHost> = Vec::new();
        for spec in specs {
            let label = spec.label();
            if hosts.iter().any(|h| h.label == label) {
                continue;
            }
            let mut c = conn.clone();
            if spec.user.is_some() {
                c.user.clone_from(&spec.user);
            }
            if spec.port.is_some() {
                c.port = spec.port;
            }
            if spec.host == "local" {
                // As in the inventory: the host named `local` is always this machine.
                c.transport = Some(Transport::Local);
            }
            hosts.push(PlanHost {
                label,
                spec,
                group: group_name.clone(),
                connection: c,
            });
        }
        hosts.sort_by(|a, b| natural_cmp(&a.label, &b.label));
        self.check_capacity(role, w, &hosts)?;
        Ok(hosts)
    }

    /// A role needs hosts, and enough slots on them for its processes.
    fn check_capacity(
        &self,
        role: &Role,
        w: &RoleWork,
        hosts: &[PlanHost],
    ) -> Result<(), PlanError> {
        let src = &*self.source;
        if hosts.is_empty() {
            return Err(src.error(
                "sortie::plan::no_hosts",
                w.hosts_span.clone(),
                format!("role {:?} has no hosts", role.name),
                "resolved to no host",
                Some("check the group's command or inventory".into()),
            ));
        }
        let n = w.pending.len();
        if let Some(slots) = role.slots {
            let capacity = hosts.len() as u64 * u64::from(slots);
            if capacity < n as u64 {
                return Err(src.error(
                    "sortie::plan::not_enough_slots",
                    w.slots_span.clone().unwrap_or(w.hosts_span.clone()),
                    format!(
                        "role {:?} has {n} processes but {} host(s) x {slots} slot(s) hold only {capacity}",
                        role.name,
                        hosts.len()
                    ),
                    "too few slots",
                    Some(format!(
                        "raise slots to {} or add hosts",
                        (n as u64).div_ceil(hosts.len() as u64)
                    )),
                ));
            }
        }
        Ok(())
    }
}

/// The processes placed so far, and their ids by (role, key) for same-key dependencies.
#[derive(Default)]
struct Placed {
    processes: Vec<ProcessSpec>,
    ids_by_role_key: HashMap<(String, String), Vec<ProcessId>>,
}

/// Where the placement of one role stands.
struct RoleCursor<'a> {
    load: Vec<u32>,
    same_key: HashMap<(usize, &'a str), u32>,
    cursor: usize,
    last_start: Option<Duration>,
    last_key_start: HashMap<&'a str, Duration>,
}

impl Placed {
    /// Places every process of `role` on `hosts`.
    fn role(&mut self, role: &Role, w: &RoleWork, hosts: &[PlanHost]) {
        let mut at = RoleCursor {
            load: vec![0u32; hosts.len()],
            same_key: HashMap::new(),
            cursor: 0,
            last_start: None,
            last_key_start: HashMap::new(),
        };
        for (i, p) in w.pending.iter().enumerate() {
            let chosen = at.choose(role, p, hosts.len());
            let start = at.start_offset(role, p);
            let spec = self.process(
                role,
                w,
                p,
                &hosts[chosen],
                at.load[chosen],
                i as u64 + 1,
                start,
            );
            self.ids_by_role_key
                .entry((role.name.clone(), p.key.clone()))
                .or_default()
                .push(spec.id.clone());
            self.processes.push(spec);
        }
    }

    /// The process `p` of `role` on `host`, in `slot`, `seq`-th of its role.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        role: &Role,
        w: &RoleWork,
        p: &Pending,
        host: &PlanHost,
        slot: u32,
        seq: u64,
        start_offset: Duration,
    ) -> ProcessSpec {
        let ctx = Context {
            host: &host.label,
            slot,
            seq,
        };
        let mut values = p.values.clone();
        values.extend([p.instance.to_string(), p.key.clone(), role.name.clone()]);
        let command = w.command.render_values(&values, &ctx);
        let mut env: Vec<EnvVar> = (w.env.iter())
            .map(|(k, t)| EnvVar {
                name: k.clone(),
                value: EnvValue::Literal(render_raw(t, &values, &ctx)),
            })
            .collect();
        env.extend(role.env_from_controller.iter().map(|k| EnvVar {
            name: k.clone(),
            value: EnvValue::FromController,
        }));
        let id_key = if w.numbered {
            format!("{}#{}", p.key, p.instance)
        } else {
            p.key.clone()
        };
        let (cwd, fresh_dir) = fresh_dir(role, w, p);
        ProcessSpec {
            id: ProcessId(format!("{}/{id_key}", role.name)),
            role: role.name.clone(),
            key: p.key.clone(),
            instance: p.instance,
            seq,
            values: w
                .columns
                .iter()
                .cloned()
                .zip(p.values.iter().cloned())
                .collect(),
            host: host.label.clone(),
            slot,
            command,
            env,
            cwd,
            fresh_dir,
            depends_on: self.depends_on(role, p),
            start_offset,
        }
    }

    /// What process `p` of `role` waits for.
    fn depends_on(&self, role: &Role, p: &Pending) -> DependsOn {
        match &role.after {
            None => DependsOn::Nothing,
            Some(d) if d.mode == DependencyMode::RoleReady => DependsOn::Role(d.role.clone()),
            Some(d) => DependsOn::Processes(
                self.ids_by_role_key
                    .get(&(d.role.clone(), p.key.clone()))
                    .cloned()
                    .unwrap_or_default(),
            ),
        }
    }
}

/// The working directory of process `p` and, with `fresh_dir`, the fresh directory to make.
fn fresh_dir(role: &Role, w: &RoleWork, p: &Pending) -> (Option<String>, Option<FreshDir>) {
    match (&role.workdir, role.fresh_dir) {
        (Some(wd), true) => {
            let wd = wd.trim_end_matches('/');
            let mut dir = dir_name(&p.key);
            if w.numbered {
                dir = format!("{dir}-{}", p.instance);
            }
            let path = format!("{wd}/.sortie/{}/{dir}", role.name);
            let links = (role.links.iter())
                .map(|l| (l.clone(), format!("{wd}/{l}")))
                .collect();
            (Some(path.clone()), Some(FreshDir { path, links }))
        }
        (wd, _) => (wd.clone(), None),
    }
}

impl<'a> RoleCursor<'a> {
    /// The host for `p`: the fewest processes of the same key, then the fewest of the role,
    /// ties broken round-robin; never beyond `slots`.
    fn choose(&mut self, role: &Role, p: &'a Pending, n_hosts: usize) -> usize {
        let mut best: Option<(u32, u32, usize)> = None; // (same key, load, distance)
        let mut chosen = 0;
        for step in 0..n_hosts {
            let h = (self.cursor + step) % n_hosts;
            if role.slots.is_some_and(|s| self.load[h] >= s) {
                continue;
            }
            let score = (
                self.same_key
                    .get(&(h, p.key.as_str()))
                    .copied()
                    .unwrap_or(0),
                self.load[h],
                step,
            );
            if best.is_none_or(|b| score < b) {
                best = Some(score);
                chosen = h;
            }
        }
        self.load[chosen] += 1;
        *self.same_key.entry((chosen, p.key.as_str())).or_insert(0) += 1;
        self.cursor = (chosen + 1) % n_hosts;
        chosen
    }

    /// The planned start offset of `p`: the role's rate, and the spacing within a key.
    fn start_offset(&mut self, role: &Role, p: &'a Pending) -> Duration {
        let mut t = match (self.last_start, role.rate) {
            (None, _) => Duration::ZERO,
            (Some(prev), Some(rate)) => prev + rate.interval(),
            (Some(prev), None) => prev,
        };
        if let (Some(prev), Some(gap)) = (
            self.last_key_start.get(p.key.as_str()),
            role.min_spacing_per_key,
        ) {
            t = t.max(*prev + gap);
        }
        self.last_start = Some(t);
        self.last_key_start.insert(p.key.as_str(), t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::dir_name;

    #[test]
    fn key_directories_are_safe_names() {
        assert_eq!(dir_name("ch-1"), "ch-1");
        assert_eq!(dir_name("a/b c"), "a_b_c");
        assert_eq!(dir_name(".."), "_..");
    }
}
