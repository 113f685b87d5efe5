//! One role of a plan, checked section by section: its hosts, its data, its command and
//! environment, its working directory, its timing (slots, rates, readiness), its stop sequence,
//! its restart policy, its dependency, and the processes it makes (with the data constraints).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use toml::Spanned;

use super::{
    expand_hosts, in_file_order, is_env_name, render_raw, Checker, DataSet, Pending, RoleWork,
    DEFAULT_MAX_RESTARTS, DEFAULT_READY_TIMEOUT, DEFAULT_STOP, PLAN_PLACEHOLDERS,
};
use crate::jobs::Columns;
use crate::launch::error::PlanError;
use crate::launch::model::*;
use crate::launch::schema::*;
use crate::template::{Context, PlaceholderKind, Template};

/// What checking a role needs from the rest of the plan.
pub(super) struct RolesContext<'a> {
    pub data: &'a HashMap<String, DataSet>,
    pub group_names: HashSet<String>,
    pub has_inventory: bool,
}

/// The checked roles, what placement needs of each, and the inventory groups they name.
pub(super) type Roles = (Vec<Role>, Vec<RoleWork>, Vec<String>);

/// Every role in dependency `order`.
pub(super) fn roles(
    ck: &Checker<'_>,
    ctx: &RolesContext<'_>,
    raw_roles: Vec<(Spanned<String>, Spanned<RawRole>)>,
    order: &[usize],
) -> Result<Roles, PlanError> {
    let mut raw_slots: Vec<Option<(Spanned<String>, Spanned<RawRole>)>> =
        raw_roles.into_iter().map(Some).collect();
    let mut roles: Vec<Role> = Vec::new();
    let mut work: Vec<RoleWork> = Vec::new();
    let mut inventory_groups: Vec<String> = Vec::new();
    for &i in order {
        let (rname, r) = raw_slots[i].take().expect("each role is taken once");
        let (role, w) = role(
            ck,
            ctx,
            rname,
            r.into_inner(),
            &roles,
            &work,
            &mut inventory_groups,
        )?;
        roles.push(role);
        work.push(w);
    }
    Ok((roles, work, inventory_groups))
}

/// The parts of a role's command line and environment.
struct Commands {
    columns: Vec<String>,
    command: Template,
    key_text: String,
    key_tpl: Template,
    key_col: usize,
    env: Vec<(String, Template)>,
    from_controller: Vec<String>,
}

/// One role; `before` are the roles (and their work) it may depend on.
fn role(
    ck: &Checker<'_>,
    ctx: &RolesContext<'_>,
    rname: Spanned<String>,
    r: RawRole,
    before: &[Role],
    before_work: &[RoleWork],
    inventory_groups: &mut Vec<String>,
) -> Result<(Role, RoleWork), PlanError> {
    let rspan = rname.span();
    let rname = rname.into_inner();
    let (hosts, hosts_span, group) =
        role_hosts(ck, ctx, &rname, rspan.clone(), &r, inventory_groups)?;
    let set = role_data(ck, ctx, &r)?;
    let c = commands(ck, &rname, &r, set)?;
    let fresh_dir = working_dir(ck, rspan.clone(), &r)?;
    let t = timing(ck, &rname, &r)?;
    let stop = stop_sequence(ck, &rname, &r)?;
    let restart = restart_policy(ck, &r)?;
    let after = dependency(ck, &r)?;
    let procs = processes(ck, &rname, rspan.clone(), &r, set, &c)?;
    if let Some(dep) = &after {
        same_key_partners(
            ck,
            &rname,
            rspan,
            &r,
            set,
            &c,
            dep,
            &procs.pending,
            before,
            before_work,
        )?;
    }
    let role = Role {
        name: rname.clone(),
        hosts,
        for_each: r.for_each.as_ref().map(|f| f.get_ref().clone()),
        count: procs.count,
        key: c.key_text.clone(),
        command: r.command.get_ref().clone(),
        env: (c.env.iter())
            .map(|(k, t)| (k.clone(), t.text().to_owned()))
            .collect(),
        env_from_controller: c.from_controller.clone(),
        workdir: r.workdir.as_ref().map(|w| w.get_ref().clone()),
        fresh_dir,
        links: r.links.iter().map(|l| l.get_ref().clone()).collect(),
        slots: t.slots,
        rate: t.rate,
        min_spacing_per_key: t.spacing,
        ready: t.ready,
        ready_timeout: t.ready_timeout,
        fail: t.fail,
        stop,
        restart,
        after,
        unique_key: procs.unique_key,
        max_per_key: procs.max_per_key,
        stages: stages(ck, &rname, &r, procs.pending.len())?,
        step: step(ck, &rname, &r, procs.pending.len())?,
    };
    let work = RoleWork {
        columns: c.columns,
        command: c.command,
        env: c.env,
        pending: procs.pending,
        numbered: procs.numbered,
        hosts_span,
        slots_span: r.slots.as_ref().map(|s| s.span()),
        group,
    };
    Ok((role, work))
}

/// `hosts` or `group` (a group of the plan, or of the inventory when the plan names one).
fn role_hosts(
    ck: &Checker<'_>,
    ctx: &RolesContext<'_>,
    rname: &str,
    rspan: Range<usize>,
    r: &RawRole,
    inventory_groups: &mut Vec<String>,
) -> Result<(RoleHosts, Range<usize>, Option<String>), PlanError> {
    match (&r.hosts, &r.group) {
        (Some(h), None) => Ok((RoleHosts::Inline(expand_hosts(ck, h)?), h.span(), None)),
        (None, Some(g)) => {
            if !ctx.group_names.contains(g.get_ref()) {
                if !ctx.has_inventory {
                    return Err(ck.err(
                        "sortie::plan::unknown_group",
                        g.span(),
                        format!("unknown group {:?}", g.get_ref()),
                        "no such group",
                        "define it under [groups], or refer to an inventory file with inventory = \"sortie.toml\"",
                    ));
                }
                if !inventory_groups.contains(g.get_ref()) {
                    inventory_groups.push(g.get_ref().clone());
                }
            }
            Ok((
                RoleHosts::Group(g.get_ref().clone()),
                g.span(),
                Some(g.get_ref().clone()),
            ))
        }
        _ => Err(ck.err(
            "sortie::plan::bad_role",
            rspan,
            format!("role {rname:?} needs exactly one of hosts or group"),
            "this role",
            "write hosts = \"10.0.1.[10-13]\" or group = \"masters\"",
        )),
    }
}

/// `for_each`: a data set of the plan.
fn role_data<'a>(
    ck: &Checker<'_>,
    ctx: &RolesContext<'a>,
    r: &RawRole,
) -> Result<Option<&'a DataSet>, PlanError> {
    let Some(f) = &r.for_each else {
        return Ok(None);
    };
    if let Some(s) = ctx.data.get(f.get_ref()) {
        return Ok(Some(s));
    }
    let mut known: Vec<&str> = ctx.data.keys().map(String::as_str).collect();
    known.sort();
    Err(ck.err(
        "sortie::plan::unknown_data",
        f.span(),
        format!("unknown data set {:?}", f.get_ref()),
        "no such data set",
        if known.is_empty() {
            "define it under [data.NAME]".to_owned()
        } else {
            format!("data sets of this plan: {}", known.join(", "))
        },
    ))
}

/// `command`, `key`, `env` and `env_from_controller`: templates over the data's columns.
fn commands(
    ck: &Checker<'_>,
    rname: &str,
    r: &RawRole,
    set: Option<&DataSet>,
) -> Result<Commands, PlanError> {
    let data_columns = set.map(DataSet::columns).unwrap_or_default();
    let key_columns = Columns::new(data_columns.iter().cloned().map(Some).collect())
        .expect("CSV headers and inline columns are unique");
    let mut all = data_columns.clone();
    all.extend(PLAN_PLACEHOLDERS.iter().map(|s| (*s).to_owned()));
    let columns = Columns::new(all.iter().cloned().map(Some).collect())
        .expect("reserved names were refused above");
    let what = |field: &str| format!("role {rname:?} {field}");
    let command = ck.template(&r.command, &what("command"), &columns)?;
    let key_text = match &r.key {
        Some(k) => k.get_ref().clone(),
        None => match data_columns.first() {
            Some(c) => format!("{{{c}}}"),
            None => rname.to_owned(),
        },
    };
    let key_tpl = match &r.key {
        Some(k) => ck.template(k, &what("key"), &key_columns)?,
        None => Template::parse_named("key", &key_text, &key_columns)
            .expect("the default key names an existing column"),
    };
    let key_col = (key_tpl.placeholders())
        .find_map(|p| match p.kind {
            PlaceholderKind::Column(c) => Some(c),
            _ => None,
        })
        .unwrap_or(0);
    let (env, from_controller) = environment(ck, rname, r, &columns)?;
    Ok(Commands {
        columns: data_columns,
        command,
        key_text,
        key_tpl,
        key_col,
        env,
        from_controller,
    })
}

/// `env` (templates) and `env_from_controller` (names): valid names, each once.
#[allow(clippy::type_complexity)]
fn environment(
    ck: &Checker<'_>,
    rname: &str,
    r: &RawRole,
    columns: &Columns,
) -> Result<(Vec<(String, Template)>, Vec<String>), PlanError> {
    let mut env = Vec::new();
    let mut env_names: HashSet<String> = HashSet::new();
    for (k, v) in in_file_order(r.env.clone()) {
        if !is_env_name(k.get_ref()) {
            return Err(ck.err(
                "sortie::plan::bad_env",
                k.span(),
                format!("invalid environment variable name {:?}", k.get_ref()),
                "here",
                "use letters, digits and '_', not starting with a digit",
            ));
        }
        let what = format!("role {rname:?} env {}", k.get_ref());
        let t = ck.template(&v, &what, columns)?;
        env_names.insert(k.get_ref().clone());
        env.push((k.into_inner(), t));
    }
    let mut from_controller = Vec::new();
    for v in &r.env_from_controller {
        if !is_env_name(v.get_ref()) || !env_names.insert(v.get_ref().clone()) {
            return Err(ck.err(
                "sortie::plan::bad_env",
                v.span(),
                format!("invalid or repeated environment variable {:?}", v.get_ref()),
                "here",
                "name each variable once, in env or in env_from_controller",
            ));
        }
        from_controller.push(v.get_ref().clone());
    }
    Ok((env, from_controller))
}

/// `workdir`, `fresh_dir` and `links`; returns `fresh_dir`.
fn working_dir(ck: &Checker<'_>, rspan: Range<usize>, r: &RawRole) -> Result<bool, PlanError> {
    let fresh_dir = r.fresh_dir.as_ref().is_some_and(|f| *f.get_ref());
    // A placeholder would reach the host literally (a directory named `{host}`), and the
    // plan's collections would then miss it: refuse it here, where the plan names it.
    if let Some(w) = &r.workdir {
        let text = w.get_ref();
        if let Some(open) = text.find('{').filter(|&i| text[i..].contains('}')) {
            let start = w.span().start + 1 + open;
            let end = start + text[open..].find('}').map_or(1, |c| c + 1);
            return Err(ck.err(
                "sortie::plan::bad_role",
                start..end,
                "workdir takes no placeholder: it is one directory, the same on every host",
                "placeholder",
                "for a directory per process use fresh_dir = true (WORKDIR/.sortie/ROLE/KEY); \
                 for a different path per host, give each host its own group and role",
            ));
        }
    }
    if fresh_dir && r.workdir.is_none() {
        return Err(ck.err(
            "sortie::plan::bad_role",
            r.fresh_dir.as_ref().map_or(rspan, |f| f.span()),
            "fresh_dir needs a workdir (fresh directories are made under it)",
            "here",
            "add workdir = \"/path/on/the/host\"",
        ));
    }
    for l in &r.links {
        let bad = l.get_ref().is_empty()
            || l.get_ref().starts_with('/')
            || l.get_ref().split('/').any(|p| p == "..");
        if !fresh_dir || bad {
            return Err(ck.err(
                "sortie::plan::bad_role",
                l.span(),
                if bad {
                    format!(
                        "link {:?} must be a relative path inside workdir",
                        l.get_ref()
                    )
                } else {
                    "links need fresh_dir = true".to_owned()
                },
                "here",
                "links name files of workdir to symlink into each fresh directory",
            ));
        }
    }
    Ok(fresh_dir)
}

/// A role's pace and readiness.
struct Timing {
    slots: Option<u32>,
    rate: Option<crate::units::Rate>,
    spacing: Option<std::time::Duration>,
    ready: Option<regex::Regex>,
    ready_timeout: std::time::Duration,
    fail: Vec<regex::Regex>,
}

/// `slots`, `rate`, `min_spacing_per_key`, `ready`, `ready_timeout` and `fail`.
fn timing(ck: &Checker<'_>, rname: &str, r: &RawRole) -> Result<Timing, PlanError> {
    let what = |field: &str| format!("role {rname:?} {field}");
    let slots = match &r.slots {
        Some(s) if *s.get_ref() == 0 => {
            return Err(ck.err(
                "sortie::plan::bad_value",
                s.span(),
                "slots must be at least 1",
                "here",
                "remove slots for no limit",
            ))
        }
        s => s.as_ref().map(|s| *s.get_ref()),
    };
    let rate = (r.rate.as_ref())
        .map(|v| ck.rate(v, &what("rate")))
        .transpose()?;
    let spacing = (r.min_spacing_per_key.as_ref())
        .map(|v| ck.duration(v, &what("min_spacing_per_key")))
        .transpose()?;
    let ready = (r.ready.as_ref())
        .map(|v| ck.regex(v, &what("ready")))
        .transpose()?;
    let ready_timeout = (r.ready_timeout.as_ref())
        .map(|v| ck.duration(v, &what("ready_timeout")))
        .transpose()?
        .unwrap_or(DEFAULT_READY_TIMEOUT);
    let fail = (r.fail.iter())
        .map(|v| ck.regex(v, &what("fail")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Timing {
        slots,
        rate,
        spacing,
        ready,
        ready_timeout,
        fail,
    })
}

/// `stop`: signals and graces (default: TERM, 10 s, then KILL).
fn stop_sequence(ck: &Checker<'_>, rname: &str, r: &RawRole) -> Result<Vec<StopStep>, PlanError> {
    let Some(steps) = &r.stop else {
        return Ok(vec![DEFAULT_STOP]);
    };
    let mut out = Vec::new();
    for s in steps.get_ref() {
        let s = s.get_ref();
        let signal = Signal::parse(s.signal.get_ref()).ok_or_else(|| {
            ck.err(
                "sortie::plan::bad_signal",
                s.signal.span(),
                format!("unknown signal {:?}", s.signal.get_ref()),
                "unknown signal",
                "use INT, TERM, HUP, QUIT, USR1, USR2 or KILL",
            )
        })?;
        let grace = (s.grace.as_ref())
            .map(|g| ck.duration(g, &format!("role {rname:?} stop grace")))
            .transpose()?
            .unwrap_or(DEFAULT_STOP.grace);
        out.push(StopStep { signal, grace });
    }
    Ok(out)
}

/// `restart` and `max_restarts`.
fn restart_policy(ck: &Checker<'_>, r: &RawRole) -> Result<RestartPolicy, PlanError> {
    match r.restart.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("never") => {
            if let Some(m) = &r.max_restarts {
                return Err(ck.err(
                    "sortie::plan::bad_role",
                    m.span(),
                    "max_restarts needs restart = \"on-failure\"",
                    "here",
                    "add restart = \"on-failure\" or remove max_restarts",
                ));
            }
            Ok(RestartPolicy::Never)
        }
        Some("on-failure") => Ok(RestartPolicy::OnFailure {
            max_restarts: (r.max_restarts.as_ref()).map_or(DEFAULT_MAX_RESTARTS, |m| *m.get_ref()),
        }),
        Some(other) => Err(ck.err(
            "sortie::plan::bad_value",
            r.restart.as_ref().map_or(0..0, |s| s.span()),
            format!("unknown restart policy {other:?}"),
            "here",
            "use \"never\" or \"on-failure\"",
        )),
    }
}

/// `after` and `after_mode`.
fn dependency(ck: &Checker<'_>, r: &RawRole) -> Result<Option<Dependency>, PlanError> {
    match (&r.after, &r.after_mode) {
        (None, Some(m)) => Err(ck.err(
            "sortie::plan::bad_role",
            m.span(),
            "after_mode needs after",
            "here",
            "add after = \"ROLE\"",
        )),
        (None, None) => Ok(None),
        (Some(a), mode) => Ok(Some(Dependency {
            role: a.get_ref().clone(),
            mode: match mode.as_ref().map(|m| m.get_ref().as_str()) {
                None | Some("role-ready") => DependencyMode::RoleReady,
                Some("same-key") => DependencyMode::SameKey,
                Some(other) => {
                    return Err(ck.err(
                        "sortie::plan::bad_value",
                        mode.as_ref().map_or(0..0, |m| m.span()),
                        format!("unknown after_mode {other:?}"),
                        "here",
                        "use \"same-key\" or \"role-ready\"",
                    ))
                }
            },
        })),
    }
}

/// The processes of a role and its data constraints.
struct Processes {
    count: u32,
    unique_key: bool,
    max_per_key: Option<u32>,
    /// In start order: first instance of every key, then the second... (spreads same-key
    /// starts).
    pending: Vec<Pending>,
    numbered: bool,
}

/// `stages = [...]`: ramps and holds; a target above the role's pool of processes is an error
/// at the target.
fn stages(
    ck: &Checker<'_>,
    rname: &str,
    r: &RawRole,
    pool: usize,
) -> Result<Vec<Stage>, PlanError> {
    let Some(list) = &r.stages else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for st in list.get_ref() {
        let span = st.span();
        let st = st.get_ref();
        match (&st.target, &st.hold) {
            (Some(t), None) => {
                let target = *t.get_ref();
                if target as usize > pool {
                    return Err(ck.err(
                        "sortie::plan::constraint",
                        t.span(),
                        format!(
                            "role {rname:?}: stage target {target} is above its {pool} processes \
                             (for_each rows x count)"
                        ),
                        "more than the pool",
                        "raise count (or add rows), or lower the target",
                    ));
                }
                let over = (st.over.as_ref())
                    .map(|o| ck.duration(o, "stage over"))
                    .transpose()?
                    .unwrap_or_default();
                out.push(Stage::Ramp { target, over });
            }
            (None, Some(h)) if st.over.is_none() => {
                out.push(Stage::Hold(ck.duration(h, "stage hold")?));
            }
            _ => {
                return Err(ck.err(
                    "sortie::plan::bad_value",
                    span,
                    format!("role {rname:?}: a stage is either {{ target = N, over = \"DURATION\" }} or {{ hold = \"DURATION\" }}"),
                    "this stage",
                    "e.g. stages = [{ target = 10, over = \"1m\" }, { hold = \"5m\" }, { target = 0, over = \"30s\" }]",
                ))
            }
        }
    }
    Ok(out)
}

/// `[roles.NAME.step]`: stairs from `start` (default `add`) by `add` every `every` up to `max`,
/// which must fit the role's pool; not with `stages`.
fn step(
    ck: &Checker<'_>,
    rname: &str,
    r: &RawRole,
    pool: usize,
) -> Result<Option<Step>, PlanError> {
    let Some(raw) = &r.step else {
        return Ok(None);
    };
    if r.stages.is_some() {
        return Err(ck.err(
            "sortie::plan::constraint",
            raw.span(),
            format!("role {rname:?} has both stages and a step load"),
            "a step load here",
            "a role's load follows either stages = [...] or [roles.NAME.step], not both",
        ));
    }
    let st = raw.get_ref();
    let add = *st.add.get_ref();
    if add == 0 {
        return Err(ck.err(
            "sortie::plan::bad_value",
            st.add.span(),
            "step add must be at least 1",
            "here",
            "e.g. add = 10",
        ));
    }
    let every = ck.duration(&st.every, "step every")?;
    if every.is_zero() {
        return Err(ck.err(
            "sortie::plan::bad_value",
            st.every.span(),
            "step every must be longer than zero",
            "here",
            "e.g. every = \"1m\"",
        ));
    }
    let max = *st.max.get_ref();
    if max as usize > pool {
        return Err(ck.err(
            "sortie::plan::constraint",
            st.max.span(),
            format!(
                "role {rname:?}: step max {max} is above its {pool} processes (for_each rows x count)"
            ),
            "more than the pool",
            "raise count (or add rows), or lower max",
        ));
    }
    let start = st.start.as_ref().map_or(add, |s| *s.get_ref());
    if start == 0 || start > max {
        let span = st.start.as_ref().map_or(st.max.span(), |s| s.span());
        return Err(ck.err(
            "sortie::plan::bad_value",
            span,
            format!("step start {start} must be from 1 to max ({max})"),
            "here",
            "start is the first step's target; it defaults to add",
        ));
    }
    Ok(Some(Step {
        start,
        add,
        every,
        max,
    }))
}

/// The most processes one role may have: far above any fleet a controller drives, low enough
/// that a typo (`count = 4000000000`) is an error rather than hours of work and gigabytes.
pub(crate) const MAX_PROCESSES_PER_ROLE: u64 = 1_000_000;

/// `count` processes per data row, keyed, within `unique_key` / `max_per_key`.
fn processes(
    ck: &Checker<'_>,
    rname: &str,
    rspan: Range<usize>,
    r: &RawRole,
    set: Option<&DataSet>,
    c: &Commands,
) -> Result<Processes, PlanError> {
    let count = r.count.as_ref().map_or(1, |c| *c.get_ref());
    let count_span = r.count.as_ref().map(|c| c.span()).unwrap_or(rspan);
    if count == 0 {
        return Err(ck.err(
            "sortie::plan::bad_value",
            count_span,
            "count must be at least 1",
            "here",
            "remove the role to run none",
        ));
    }
    let unique_key = r.unique_key.as_ref().is_some_and(|u| *u.get_ref());
    let max_per_key = r.max_per_key.as_ref().map(|m| *m.get_ref());
    let limit = if unique_key { Some(1) } else { max_per_key };
    if let Some(limit) = limit.filter(|l| count > *l) {
        let what = if unique_key {
            "unique_key"
        } else {
            "max_per_key"
        };
        return Err(ck.err(
            "sortie::plan::constraint",
            count_span,
            format!("count = {count} processes per row, but {what} allows {limit} per key"),
            "too many per key",
            "lower count or raise max_per_key",
        ));
    }
    let rows = set.map_or_else(|| vec![Vec::new()], DataSet::rows);
    let total = u64::from(count) * rows.len() as u64;
    if total > MAX_PROCESSES_PER_ROLE {
        return Err(ck.err(
            "sortie::plan::too_many",
            count_span,
            format!(
                "role {rname:?} would have {total} processes ({count} per row, {} rows); a role \
                 holds at most {MAX_PROCESSES_PER_ROLE}",
                rows.len()
            ),
            "too many",
            "lower count (or split the load over several runs)",
        ));
    }
    let mut per_key: HashMap<String, u32> = HashMap::new();
    let mut pending = Vec::new();
    let ctx = Context {
        host: "",
        slot: 0,
        seq: 0,
    };
    for (row, values) in rows.iter().enumerate() {
        let key = render_raw(&c.key_tpl, values, &ctx);
        if key.is_empty() {
            let set = set.expect("an empty key needs data values");
            return Err(set.cell_error(
                ck,
                "sortie::plan::empty_key",
                row,
                c.key_col,
                format!("role {rname:?}: the key of this row is empty"),
                "give every row a key value",
            ));
        }
        for _ in 0..count {
            let n = per_key.entry(key.clone()).or_insert(0);
            *n += 1;
            if let Some(limit) = limit.filter(|l| *n > *l) {
                let set = set.expect("a repeated key with count <= limit needs data rows");
                let message = if unique_key {
                    format!("role {rname:?} has unique_key = true, but key {key:?} appears again in this row")
                } else {
                    format!("role {rname:?} allows {limit} process(es) per key (max_per_key), but this row makes {} for key {key:?}", *n)
                };
                return Err(set.cell_error(
                    ck,
                    "sortie::plan::constraint",
                    row,
                    c.key_col,
                    message,
                    "remove the duplicate row or relax the constraint",
                ));
            }
            pending.push(Pending {
                key: key.clone(),
                instance: *n,
                row,
                values: values.clone(),
            });
        }
    }
    pending.sort_by_key(|p| p.instance);
    Ok(Processes {
        count,
        unique_key,
        max_per_key,
        pending,
        numbered: per_key.values().any(|&n| n > 1),
    })
}

/// With `after_mode = "same-key"`, every key of the role must have a process in the role it
/// runs after.
#[allow(clippy::too_many_arguments)]
fn same_key_partners(
    ck: &Checker<'_>,
    rname: &str,
    rspan: Range<usize>,
    r: &RawRole,
    set: Option<&DataSet>,
    c: &Commands,
    dep: &Dependency,
    pending: &[Pending],
    before: &[Role],
    before_work: &[RoleWork],
) -> Result<(), PlanError> {
    if dep.mode != DependencyMode::SameKey {
        return Ok(());
    }
    let j = (before.iter())
        .position(|x| x.name == dep.role)
        .expect("dependencies come first in dependency order");
    let keys: HashSet<&str> = (before_work[j].pending.iter())
        .map(|p| p.key.as_str())
        .collect();
    let Some(p) = pending.iter().find(|p| !keys.contains(p.key.as_str())) else {
        return Ok(());
    };
    let message = format!(
        "role {rname:?} runs after {:?} by same key, but {:?} has no process with key {:?}",
        dep.role, dep.role, p.key
    );
    let help = "add the key to the other role's data, or use after_mode = \"role-ready\"";
    Err(match set {
        Some(set) => set.cell_error(
            ck,
            "sortie::plan::missing_partner",
            p.row,
            c.key_col,
            message,
            help,
        ),
        None => ck.err(
            "sortie::plan::missing_partner",
            r.after.as_ref().map_or(rspan, |a| a.span()),
            message,
            "here",
            help,
        ),
    })
}
