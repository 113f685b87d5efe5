//! From the raw TOML structures to a checked [`PlanSpec`].
//!
//! Owns every rule that can be checked without hosts: field values (durations, rates, signals,
//! regexes, templates), references (data sets, groups, roles), the dependency graph, the data
//! constraints (`unique_key`, `max_per_key`, same-key partners) and the process list of each
//! role in start order. Placement on hosts is `place`'s job.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use sortie_inventory::hostexpr::{self, HostSpec};
use sortie_inventory::{InventoryError, Origin};
use toml::Spanned;

mod role;

use super::error::{PlanError, Source};
use super::model::*;
use super::schema::*;
use super::PlanSpec;
use crate::csv::CsvTable;
use crate::jobs::Columns;
use crate::template::{Context, PlaceholderKind, Template, TemplateError};
use crate::units::{parse_duration, parse_rate, Rate, UnitError};

/// Placeholders a plan adds to the data columns in commands and env values.
pub(crate) const PLAN_PLACEHOLDERS: [&str; 3] = ["instance", "key", "role"];

/// Default readiness timeout.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default stop sequence: TERM, 10 s, then KILL.
const DEFAULT_STOP: StopStep = StopStep {
    signal: Signal::Term,
    grace: Duration::from_secs(10),
};
/// Default `max_restarts` with `restart = "on-failure"`.
const DEFAULT_MAX_RESTARTS: u32 = 3;

/// One process before placement.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub key: String,
    pub instance: u32,
    /// 0-based data row (0 without a data set).
    pub row: usize,
    pub values: Vec<String>,
}

/// What placement needs to know about a role besides [`Role`].
#[derive(Debug, Clone)]
pub(crate) struct RoleWork {
    pub columns: Vec<String>,
    pub command: Template,
    pub env: Vec<(String, Template)>,
    /// Processes in start order.
    pub pending: Vec<Pending>,
    /// Whether ids carry `#N` (some key has several processes).
    pub numbered: bool,
    pub hosts_span: Range<usize>,
    pub slots_span: Option<Range<usize>>,
    /// Group name when the role runs on a group.
    pub group: Option<String>,
}

/// Context shared by the checks: the plan text and where relative paths start.
pub(crate) struct Checker<'a> {
    pub src: &'a Source,
    pub base_dir: &'a Path,
}

impl Checker<'_> {
    pub(crate) fn err(
        &self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) -> PlanError {
        let help: String = help.into();
        self.src.error(
            code,
            span,
            message,
            label,
            (!help.is_empty()).then_some(help),
        )
    }

    /// Byte range in the plan text of `inner` (a range in the string value `value` whose TOML
    /// token sits at `token`). Falls back to the whole token when escapes make the mapping
    /// uncertain.
    fn inner_span(&self, token: &Range<usize>, value: &str, inner: &Range<usize>) -> Range<usize> {
        let Some(raw) = self.src.text.get(token.clone()) else {
            return token.clone();
        };
        let mut prefix = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
            3
        } else if raw.starts_with('\'') || raw.starts_with('"') {
            1
        } else {
            0
        };
        if prefix == 3 {
            if raw[3..].starts_with("\r\n") {
                prefix += 2;
            } else if raw[3..].starts_with('\n') {
                prefix += 1;
            }
        }
        match raw.get(prefix..prefix + value.len()) {
            Some(s) if s == value && inner.end <= value.len() => {
                token.start + prefix + inner.start
                    ..token.start + prefix + inner.end.max(inner.start)
            }
            _ => token.clone(),
        }
    }

    pub(crate) fn duration(&self, v: &Spanned<String>, what: &str) -> Result<Duration, PlanError> {
        parse_duration(v.get_ref()).map_err(|e| self.unit_error(v, what, &e))
    }

    fn rate(&self, v: &Spanned<String>, what: &str) -> Result<Rate, PlanError> {
        parse_rate(v.get_ref()).map_err(|e| self.unit_error(v, what, &e))
    }

    fn unit_error(&self, v: &Spanned<String>, what: &str, e: &UnitError) -> PlanError {
        let span = self.inner_span(&v.span(), v.get_ref(), &e.span());
        let help = if e.what() == "rate" {
            "write a count per unit of time: 5/s, 100/m, 0.5/s or 30/h"
        } else {
            "write a number with a unit: 300ms, 1.5s, 2m or 1h (a bare number means seconds)"
        };
        self.err(
            "sortie::plan::bad_value",
            span,
            format!(
                "{what}: invalid {} {:?}: {}",
                e.what(),
                e.input(),
                e.reason()
            ),
            e.reason().to_owned(),
            help,
        )
    }

    /// Compiles a regex, pointing into the pattern on a syntax error.
    fn regex(&self, v: &Spanned<String>, what: &str) -> Result<Regex, PlanError> {
        let pattern = v.get_ref();
        if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(pattern) {
            let s = e.span();
            let inner = s.start.offset..s.end.offset.max(s.start.offset + 1).min(pattern.len());
            let span = self.inner_span(&v.span(), pattern, &inner);
            return Err(self.err(
                "sortie::plan::bad_regex",
                span,
                format!("{what}: invalid regular expression: {}", e.kind()),
                e.kind().to_string(),
                "write a Rust regex (https://docs.rs/regex); use a literal string '...' so backslashes stay as written",
            ));
        }
        Regex::new(pattern).map_err(|e| {
            self.err(
                "sortie::plan::bad_regex",
                v.span(),
                format!("{what}: invalid regular expression: {e}"),
                "this pattern",
                "simplify the pattern",
            )
        })
    }

    /// Parses a template against `columns`, refusing `{}` and not appending anything.
    fn template(
        &self,
        v: &Spanned<String>,
        what: &str,
        columns: &Columns,
    ) -> Result<Template, PlanError> {
        let map = |e: TemplateError| {
            let span = self.inner_span(&v.span(), v.get_ref(), &e.span());
            let help = e.help().map(|h| h.to_string()).unwrap_or_default();
            self.err(
                "sortie::plan::bad_template",
                span,
                format!("{what}: {}", e.kind()),
                "here",
                help,
            )
        };
        let mut t = Template::parse_named(what, v.get_ref(), columns).map_err(map)?;
        if t.appended_line() {
            // A plan command without placeholders runs as written.
            t = Template::parse_named(what, v.get_ref(), &Columns::none()).map_err(map)?;
        }
        if let Some(p) = t
            .placeholders()
            .find(|p| matches!(p.kind, PlaceholderKind::Line))
        {
            let span = self.inner_span(&v.span(), v.get_ref(), &p.span.clone().unwrap_or(0..0));
            return Err(self.err(
                "sortie::plan::bad_template",
                span,
                format!("{what}: {{}} (all values) is not available in plans"),
                "here",
                "name the columns, e.g. {channel}",
            ));
        }
        Ok(t)
    }
}

use miette::Diagnostic as _;

/// A data set: a CSV file or inline values.
enum DataSet {
    Csv(CsvTable),
    Inline {
        columns: Vec<String>,
        rows: Vec<Vec<Spanned<String>>>,
    },
}

impl DataSet {
    fn columns(&self) -> Vec<String> {
        match self {
            DataSet::Csv(t) => t.headers().to_vec(),
            DataSet::Inline { columns, .. } => columns.clone(),
        }
    }

    fn rows(&self) -> Vec<Vec<String>> {
        match self {
            DataSet::Csv(t) => t.records().iter().map(|r| r.fields().to_vec()).collect(),
            DataSet::Inline { rows, .. } => rows
                .iter()
                .map(|r| r.iter().map(|v| v.get_ref().clone()).collect())
                .collect(),
        }
    }

    fn cell_error(
        &self,
        ck: &Checker<'_>,
        code: &'static str,
        row: usize,
        col: usize,
        message: String,
        help: &str,
    ) -> PlanError {
        match self {
            DataSet::Csv(t) => PlanError::Csv(t.cell_error(row, col, message).with_help(help)),
            DataSet::Inline { rows, .. } => {
                let span = rows
                    .get(row)
                    .and_then(|r| r.get(col).or_else(|| r.first()))
                    .map_or(0..0, |v| v.span());
                ck.err(code, span, message, "here", help)
            }
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Entries of a named map in file order.
fn in_file_order<T>(map: Named<T>) -> Vec<(Spanned<String>, Spanned<T>)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

/// Renders a template with every value unquoted (keys, env values, paths are not shell words).
pub(crate) fn render_raw(t: &Template, values: &[String], ctx: &Context<'_>) -> String {
    let text = t.text();
    let mut out = String::new();
    let mut pos = 0;
    for p in t.placeholders() {
        let Some(span) = &p.span else { continue };
        out.push_str(&text[pos..span.start]);
        match p.kind {
            PlaceholderKind::Column(i) => {
                out.push_str(&p.modifier.apply(values.get(i).map_or("", String::as_str)))
            }
            PlaceholderKind::Host => out.push_str(ctx.host),
            PlaceholderKind::Slot => out.push_str(&ctx.slot.to_string()),
            PlaceholderKind::Seq => out.push_str(&ctx.seq.to_string()),
            PlaceholderKind::Line => {
                let edited: Vec<_> = values.iter().map(|v| p.modifier.apply(v)).collect();
                out.push_str(&edited.join(" "))
            }
        }
        pos = span.end;
    }
    out.push_str(&text[pos..]);
    // `\{` escapes are for the shell; outside a shell the backslash would stay.
    out
}

fn connection(
    ck: &Checker<'_>,
    user: &Option<Spanned<String>>,
    port: &Option<Spanned<u16>>,
    identity_file: &Option<Spanned<String>>,
    proxy_jump: &Option<Spanned<String>>,
    transport: &Option<Spanned<String>>,
) -> Result<Connection, PlanError> {
    let transport = match transport {
        None => None,
        Some(t) => Some(match t.get_ref().as_str() {
            "ssh" => Transport::Ssh,
            "local" => Transport::Local,
            other => {
                return Err(ck.err(
                    "sortie::plan::bad_value",
                    t.span(),
                    format!("unknown transport {other:?}"),
                    "unknown transport",
                    "use \"ssh\" or \"local\"",
                ))
            }
        }),
    };
    if let Some(pj) = proxy_jump {
        if let Err(m) = sortie_inventory::sshconfig::parse_proxy_jump(pj.get_ref()) {
            return Err(ck.err(
                "sortie::plan::bad_value",
                pj.span(),
                format!("invalid proxy_jump: {m}"),
                "here",
                "write [user@]host[:port], several separated by commas",
            ));
        }
    }
    Ok(Connection {
        user: user.as_ref().map(|u| u.get_ref().clone()),
        port: port.as_ref().map(|p| *p.get_ref()),
        identity_file: identity_file.as_ref().map(|u| u.get_ref().clone()),
        proxy_jump: proxy_jump.as_ref().map(|u| u.get_ref().clone()),
        transport,
    })
}

fn expand_hosts(ck: &Checker<'_>, list: &Spanned<HostList>) -> Result<Vec<HostSpec>, PlanError> {
    let mut hosts = Vec::new();
    for item in &list.get_ref().0 {
        let item = if item.span().is_empty() {
            Spanned::new(list.span(), item.get_ref().clone())
        } else {
            item.clone()
        };
        hosts.extend(expand_one(ck, &item)?);
    }
    if hosts.is_empty() {
        return Err(ck.err(
            "sortie::plan::bad_hosts",
            list.span(),
            "the host expression names no host",
            "empty",
            "write hosts such as \"web[01-04]\"",
        ));
    }
    Ok(hosts)
}

fn expand_one(ck: &Checker<'_>, v: &Spanned<String>) -> Result<Vec<HostSpec>, PlanError> {
    hostexpr::expand(
        v.get_ref(),
        Origin::Other("host expression".into()),
        ck.base_dir,
    )
    .map_err(|e| match e {
        InventoryError::Parse(p) => {
            let span = ck.inner_span(&v.span(), v.get_ref(), &p.span());
            ck.err(
                "sortie::plan::bad_hosts",
                span,
                format!("invalid host expression: {}", p.message),
                "here",
                p.help.clone().unwrap_or_default(),
            )
        }
        other => ck.err(
            "sortie::plan::bad_hosts",
            v.span(),
            other.to_string(),
            "in this host expression",
            other.help().map(|h| h.to_string()).unwrap_or_default(),
        ),
    })
}

fn load_data(
    ck: &Checker<'_>,
    name: &Spanned<String>,
    d: Spanned<RawData>,
) -> Result<DataSet, PlanError> {
    let span = name.span();
    let d = d.into_inner();
    let set = match (d.csv, d.values, d.rows) {
        (Some(path), None, None) => {
            if let Some(c) = d.column.as_ref().or(d.columns.as_ref().and_then(|c| c.first())) {
                return Err(ck.err(
                    "sortie::plan::bad_data",
                    c.span(),
                    "a CSV data set takes its column names from its header",
                    "not allowed with csv",
                    "remove this key",
                ));
            }
            let full = ck.base_dir.join(path.get_ref());
            let bytes = std::fs::read(&full).map_err(|e| {
                ck.err(
                    "sortie::plan::io",
                    path.span(),
                    format!("cannot read data set {}: {e}", full.display()),
                    "this file",
                    "the path is relative to the plan file",
                )
            })?;
            DataSet::Csv(crate::csv::parse_bytes(&full.display().to_string(), &bytes)?)
        }
        (None, Some(values), None) => {
            let column = d.column.map_or_else(|| "value".to_owned(), |c| c.into_inner());
            DataSet::Inline {
                columns: vec![column],
                rows: values.into_iter().map(|v| vec![v]).collect(),
            }
        }
        (None, None, Some(rows)) => {
            let Some(columns) = d.columns else {
                return Err(ck.err(
                    "sortie::plan::bad_data",
                    span,
                    format!("data set {:?} has rows but no columns", name.get_ref()),
                    "here",
                    "add columns = [\"channel\", \"sn\"]",
                ));
            };
            let width = columns.len();
            let mut out = Vec::new();
            for row in rows {
                if row.get_ref().len() != width {
                    return Err(ck.err(
                        "sortie::plan::bad_data",
                        row.span(),
                        format!(
                            "this row has {} value(s) but there are {width} column(s)",
                            row.get_ref().len()
                        ),
                        "here",
                        "give one value per column",
                    ));
                }
                out.push(row.into_inner());
            }
            DataSet::Inline {
                columns: columns.into_iter().map(Spanned::into_inner).collect(),
                rows: out,
            }
        }
        _ => {
            return Err(ck.err(
                "sortie::plan::bad_data",
                span,
                format!(
                    "data set {:?} needs exactly one of csv, values or rows",
                    name.get_ref()
                ),
                "this data set",
                "write csv = \"file.csv\", values = [\"a\", \"b\"] (with column = \"name\"), or columns + rows",
            ))
        }
    };
    for c in set.columns() {
        if PLAN_PLACEHOLDERS.contains(&c.as_str()) {
            return Err(ck.err(
                "sortie::plan::bad_data",
                span,
                format!(
                    "data set {:?} has a column named {c:?}, which plans reserve for {{{c}}}",
                    name.get_ref()
                ),
                "this data set",
                "rename the column",
            ));
        }
    }
    Ok(set)
}

/// Validates the raw plan into a [`PlanSpec`] (everything but placement), section by section:
/// name, groups, data, the role graph, each role, run settings, thresholds and transfers.
pub(crate) fn validate(
    raw: RawPlan,
    src: Source,
    path: PathBuf,
    base_dir: PathBuf,
    digest: String,
    overrides: Vec<String>,
) -> Result<PlanSpec, PlanError> {
    let ck = Checker {
        src: &src,
        base_dir: &base_dir,
    };
    let name = plan_name(&ck, raw.name.as_ref(), &path)?;
    let (defaults, mut groups) = host_groups(&ck, raw.defaults.as_ref(), raw.groups)?;
    let inventory = raw.inventory.as_ref().map(|i| base_dir.join(i.get_ref()));
    let mut data: HashMap<String, DataSet> = HashMap::new();
    for (dname, d) in in_file_order(raw.data) {
        let set = load_data(&ck, &dname, d)?;
        data.insert(dname.into_inner(), set);
    }
    let roles_span = raw.roles.span();
    let graph = role_graph(&ck, roles_span, in_file_order(raw.roles.into_inner()))?;
    let ctx = role::RolesContext {
        data: &data,
        group_names: groups.iter().map(|g| g.name.clone()).collect(),
        has_inventory: inventory.is_some(),
    };
    let (roles, work, inventory_groups) = role::roles(&ck, &ctx, graph.roles, &graph.order)?;
    let run = run_settings(&ck, raw.run)?;
    let role_ref = |r: &Option<Spanned<String>>| role_ref(&ck, &graph.names, r);
    let mut thresholds = Vec::new();
    for t in &raw.thresholds {
        let t = t.get_ref();
        thresholds.push(threshold(&ck, t, role_ref(&t.role)?)?);
    }
    let uploads = transfers(&ck, &raw.upload, true, &role_ref)?;
    let collects = transfers(&ck, &raw.collect, false, &role_ref)?;
    for g in inventory_groups {
        groups.push(HostGroup {
            name: g,
            source: GroupSource::Inventory(inventory.clone().expect("checked with the role")),
            connection: defaults.clone(),
        });
    }
    Ok(PlanSpec {
        name,
        digest,
        path,
        base_dir,
        overrides,
        defaults,
        inventory,
        groups,
        roles,
        run,
        thresholds,
        uploads,
        collects,
        work,
        source: Arc::new(src),
        landed: Vec::new(),
    })
}

/// The plan's name: `name`, else the file's stem when it is a valid name, else `plan`.
fn plan_name(
    ck: &Checker<'_>,
    name: Option<&Spanned<String>>,
    path: &Path,
) -> Result<String, PlanError> {
    Ok(match name {
        Some(n) if !is_name(n.get_ref()) => {
            return Err(ck.err(
                "sortie::plan::bad_value",
                n.span(),
                format!("invalid plan name {:?}", n.get_ref()),
                "here",
                "use letters, digits, '-', '_' and '.'",
            ))
        }
        Some(n) => n.get_ref().clone(),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| is_name(s))
            .unwrap_or_else(|| "plan".into()),
    })
}

/// `[defaults]` and `[groups.NAME]`: connection settings and where each group's hosts come
/// from.
fn host_groups(
    ck: &Checker<'_>,
    defaults: Option<&Spanned<RawConnection>>,
    raw: Named<RawGroup>,
) -> Result<(Connection, Vec<HostGroup>), PlanError> {
    let defaults = match defaults {
        Some(d) => {
            let d = d.get_ref();
            connection(
                ck,
                &d.user,
                &d.port,
                &d.identity_file,
                &d.proxy_jump,
                &d.transport,
            )?
        }
        None => Connection::default(),
    };
    let mut groups = Vec::new();
    for (gname, g) in in_file_order(raw) {
        let gspan = gname.span();
        let g = g.into_inner();
        let conn = connection(
            ck,
            &g.user,
            &g.port,
            &g.identity_file,
            &g.proxy_jump,
            &g.transport,
        )?
        .or(&defaults);
        let source =
            match (&g.hosts, &g.command) {
                (Some(h), None) => GroupSource::Hosts(expand_hosts(ck, h)?),
                (None, Some(c)) if !c.get_ref().trim().is_empty() => {
                    GroupSource::Command(c.get_ref().clone())
                }
                _ => return Err(ck.err(
                    "sortie::plan::bad_group",
                    gspan,
                    format!(
                        "group {:?} needs exactly one of hosts or command",
                        gname.get_ref()
                    ),
                    "this group",
                    "write hosts = \"web[01-04]\" or command = \"a command printing host names\"",
                )),
            };
        groups.push(HostGroup {
            name: gname.into_inner(),
            source,
            connection: conn,
        });
    }
    Ok((defaults, groups))
}

/// The roles, checked as a graph: valid names, known `after` roles, no cycle, and the
/// dependency order (each role after the one it depends on, otherwise file order).
struct RoleGraph {
    names: Vec<String>,
    order: Vec<usize>,
    roles: Vec<(Spanned<String>, Spanned<RawRole>)>,
}

fn role_graph(
    ck: &Checker<'_>,
    roles_span: Range<usize>,
    raw_roles: Vec<(Spanned<String>, Spanned<RawRole>)>,
) -> Result<RoleGraph, PlanError> {
    if raw_roles.is_empty() {
        return Err(ck.err(
            "sortie::plan::no_roles",
            roles_span,
            "the plan defines no role",
            "here",
            "add a [roles.NAME] table with a command",
        ));
    }
    let names: Vec<String> = raw_roles.iter().map(|(k, _)| k.get_ref().clone()).collect();
    for (k, _) in &raw_roles {
        if !is_name(k.get_ref()) {
            return Err(ck.err(
                "sortie::plan::bad_value",
                k.span(),
                format!("invalid role name {:?}", k.get_ref()),
                "here",
                "use letters, digits, '-', '_' and '.'",
            ));
        }
    }
    let parent = role_parents(ck, &names, &raw_roles)?;
    check_cycles(ck, &names, &raw_roles, &parent)?;
    let mut order = Vec::new();
    let mut placed = vec![false; raw_roles.len()];
    while order.len() < raw_roles.len() {
        for i in 0..raw_roles.len() {
            if !placed[i] && parent[i].is_none_or(|p| placed[p]) {
                placed[i] = true;
                order.push(i);
                break;
            }
        }
    }
    Ok(RoleGraph {
        names,
        order,
        roles: raw_roles,
    })
}

/// The role each role runs `after`, by index.
fn role_parents(
    ck: &Checker<'_>,
    names: &[String],
    raw_roles: &[(Spanned<String>, Spanned<RawRole>)],
) -> Result<Vec<Option<usize>>, PlanError> {
    let index: HashMap<&str, usize> = (names.iter().enumerate())
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut parent: Vec<Option<usize>> = vec![None; raw_roles.len()];
    for (i, (_, r)) in raw_roles.iter().enumerate() {
        if let Some(a) = &r.get_ref().after {
            match index.get(a.get_ref().as_str()) {
                Some(&j) => parent[i] = Some(j),
                None => {
                    return Err(ck.err(
                        "sortie::plan::unknown_role",
                        a.span(),
                        format!("unknown role {:?} in after", a.get_ref()),
                        "no such role",
                        format!("roles of this plan: {}", names.join(", ")),
                    ))
                }
            }
        }
    }
    Ok(parent)
}

/// Refuses a dependency cycle, naming it from the role whose `after` closes it.
fn check_cycles(
    ck: &Checker<'_>,
    names: &[String],
    raw_roles: &[(Spanned<String>, Spanned<RawRole>)],
    parent: &[Option<usize>],
) -> Result<(), PlanError> {
    for start in 0..raw_roles.len() {
        let mut path = vec![start];
        let mut cur = start;
        while let Some(p) = parent[cur] {
            if p == start {
                let mut cycle: Vec<&str> = path.iter().map(|&i| names[i].as_str()).collect();
                cycle.push(&names[start]);
                let after = raw_roles[start]
                    .1
                    .get_ref()
                    .after
                    .as_ref()
                    .map_or(0..0, |a| a.span());
                return Err(ck.err(
                    "sortie::plan::dependency_cycle",
                    after,
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                    "closes the cycle",
                    "remove one of the `after` settings",
                ));
            }
            if path.contains(&p) {
                break; // a cycle not through `start`; reported from its own members
            }
            path.push(p);
            cur = p;
        }
    }
    Ok(())
}

/// `[run]`.
fn run_settings(ck: &Checker<'_>, run: Option<Spanned<RawRun>>) -> Result<RunSettings, PlanError> {
    let run = run.map(Spanned::into_inner).unwrap_or_default();
    Ok(RunSettings {
        duration: run
            .duration
            .as_ref()
            .map(|d| ck.duration(d, "run duration"))
            .transpose()?,
        run_dir: run.run_dir.as_ref().map_or_else(
            || "runs/{name}-{timestamp}".to_owned(),
            |d| d.get_ref().clone(),
        ),
        rate: run
            .rate
            .as_ref()
            .map(|d| ck.rate(d, "run rate"))
            .transpose()?,
        max_starting: run.max_starting.as_ref().map(|m| *m.get_ref()),
        remote_dir: run
            .remote_dir
            .as_ref()
            .map(|d| remote_dir(ck, d))
            .transpose()?,
        reconnect_window: run
            .reconnect_window
            .as_ref()
            .map(|d| ck.duration(d, "reconnect window"))
            .transpose()?,
        lease: run
            .lease
            .as_ref()
            .map(|d| ck.duration(d, "lease"))
            .transpose()?,
        sample_interval: run
            .sample_interval
            .as_ref()
            .map(|d| {
                ck.duration(
                    &Spanned::new(d.span(), d.get_ref().text()),
                    "run sample_interval",
                )
            })
            .transpose()?
            .unwrap_or(super::model::DEFAULT_SAMPLE_INTERVAL),
    })
}

/// `[run] remote_dir`: a directory of its own, never one of the `fresh_dir` directories
/// (under `WORKDIR/.sortie/`), which a process start empties.
fn remote_dir(ck: &Checker<'_>, d: &Spanned<String>) -> Result<String, PlanError> {
    let v = d.get_ref();
    if v.trim().is_empty() || v.split('/').any(|c| c == ".sortie") {
        return Err(ck.err(
            "sortie::plan::bad_value",
            d.span(),
            "remote_dir must be a directory of its own",
            "empty, or under a `.sortie` directory",
            "fresh_dir directories live under WORKDIR/.sortie/ and are emptied at each start; \
             the default ~/.sortie-runs needs no setting",
        ));
    }
    Ok(v.clone())
}

/// A `role = "..."` of a threshold or transfer: a role of the plan.
fn role_ref(
    ck: &Checker<'_>,
    names: &[String],
    r: &Option<Spanned<String>>,
) -> Result<Option<String>, PlanError> {
    match r {
        None => Ok(None),
        Some(r) if names.contains(r.get_ref()) => Ok(Some(r.get_ref().clone())),
        Some(r) => Err(ck.err(
            "sortie::plan::unknown_role",
            r.span(),
            format!("unknown role {:?}", r.get_ref()),
            "no such role",
            format!("roles of this plan: {}", names.join(", ")),
        )),
    }
}

/// Checks a `role = "..."` reference (see [`role_ref`]).
type RoleRef<'a> = dyn Fn(&Option<Spanned<String>>) -> Result<Option<String>, PlanError> + 'a;

/// `[[upload]]` (`upload`) or `[[collect]]`: paths present, remote templates valid, an
/// upload's source readable, a collection's destination inside the run directory.
fn transfers(
    ck: &Checker<'_>,
    list: &[Spanned<RawTransfer>],
    upload: bool,
    role_ref: &RoleRef<'_>,
) -> Result<Vec<Transfer>, PlanError> {
    list.iter()
        .map(|t| {
            let t = t.get_ref();
            for v in [&t.src, &t.dest] {
                if v.get_ref().trim().is_empty() {
                    return Err(ck.err(
                        "sortie::plan::bad_value",
                        v.span(),
                        "empty path",
                        "here",
                        "give a path",
                    ));
                }
            }
            let (local, remote) = if upload {
                (&t.src, &t.dest)
            } else {
                (&t.dest, &t.src)
            };
            check_remote_template(ck, remote)?;
            if upload {
                let path = local_source(ck.base_dir, local.get_ref());
                if let Err(e) = std::fs::symlink_metadata(&path) {
                    return Err(ck.err(
                        "sortie::plan::upload_source",
                        local.span(),
                        format!("cannot read {}: {e}", path.display()),
                        "this upload's source",
                        "paths are relative to the plan's directory; nothing was contacted",
                    ));
                }
            } else {
                check_collect_dest(ck, local)?;
            }
            Ok(Transfer {
                src: t.src.get_ref().clone(),
                dest: t.dest.get_ref().clone(),
                role: role_ref(&t.role)?,
            })
        })
        .collect()
}

fn threshold(
    ck: &Checker<'_>,
    t: &RawThreshold,
    role: Option<String>,
) -> Result<Threshold, PlanError> {
    let m = t.metric.get_ref().as_str();
    let metric = match m {
        "ready_ratio" => Metric::ReadyRatio,
        "failed" => Metric::Failed,
        "restarts" => Metric::Restarts,
        "max_time_to_ready" => Metric::TimeToReady { percentile: 100 },
        _ => match m
            .strip_prefix('p')
            .and_then(|r| r.strip_suffix("_time_to_ready"))
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|p| (1..=99).contains(p))
        {
            Some(percentile) => Metric::TimeToReady { percentile },
            None => {
                return Err(ck.err(
                    "sortie::plan::bad_threshold",
                    t.metric.span(),
                    format!("unknown metric {m:?}"),
                    "unknown metric",
                    "use ready_ratio, p50_time_to_ready (any percentile 1-99), max_time_to_ready, failed or restarts",
                ))
            }
        },
    };
    let mut bounds = Vec::new();
    for (v, is_min) in [(&t.min, true), (&t.max, false)] {
        let Some(v) = v else { continue };
        let bad = |expect: &str| {
            ck.err(
                "sortie::plan::bad_threshold",
                v.span(),
                format!("{metric} needs {expect}"),
                "here",
                "",
            )
        };
        let x = match (metric, v.get_ref()) {
            (Metric::ReadyRatio, toml::Value::Float(f)) if (0.0..=1.0).contains(f) => *f,
            (Metric::ReadyRatio, toml::Value::Integer(i)) if (0..=1).contains(i) => *i as f64,
            (Metric::ReadyRatio, _) => return Err(bad("a number from 0 to 1, such as 0.99")),
            (Metric::TimeToReady { .. }, toml::Value::String(s)) => {
                let s = Spanned::new(v.span(), s.clone());
                ck.duration(&s, &format!("threshold {metric}"))?
                    .as_secs_f64()
            }
            (Metric::TimeToReady { .. }, _) => return Err(bad("a duration, such as \"15s\"")),
            (_, toml::Value::Integer(i)) if *i >= 0 => *i as f64,
            _ => return Err(bad("a whole number, such as 0")),
        };
        bounds.push(if is_min { Bound::Min(x) } else { Bound::Max(x) });
    }
    if bounds.is_empty() {
        return Err(ck.err(
            "sortie::plan::bad_threshold",
            t.metric.span(),
            format!("threshold {metric} has neither min nor max"),
            "here",
            "add min = ... or max = ...",
        ));
    }
    let window = match &t.window {
        Some(w) => {
            let d = ck.duration(w, "threshold window")?;
            if d.is_zero() {
                return Err(ck.err(
                    "sortie::plan::bad_threshold",
                    w.span(),
                    "a threshold window must be longer than zero",
                    "here",
                    "e.g. window = \"1m\"; leave it out to judge the whole run",
                ));
            }
            Some(d)
        }
        None => None,
    };
    Ok(Threshold {
        metric,
        role,
        bounds,
        window,
        abort: t.abort.as_ref().is_some_and(|a| *a.get_ref()),
    })
}

/// Controller variables in the plan that `lookup` does not find, with the place they are
/// named, as an error.
pub(crate) fn missing_controller_env(
    spec: &PlanSpec,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), PlanError> {
    for role in &spec.roles {
        for name in &role.env_from_controller {
            if lookup(name).is_none() {
                let text = &spec.source.text;
                let needle = format!("\"{name}\"");
                let span = text
                    .find(&needle)
                    .map_or(0..0, |s| s + 1..s + 1 + name.len());
                return Err(spec.source.error(
                    "sortie::plan::missing_env",
                    span,
                    format!("role {:?} copies {name} from sortie's environment, but it is not set", role.name),
                    "not set",
                    Some(format!("export {name} before running sortie, or remove it from env_from_controller")),
                ));
            }
        }
    }
    Ok(())
}

/// The local path of an upload's source: `~/` is the controller's home, other relative paths
/// are relative to the plan's directory.
pub(crate) fn local_source(base_dir: &Path, src: &str) -> PathBuf {
    match src.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map_or_else(|| base_dir.join(src), |h| PathBuf::from(h).join(rest)),
        None => base_dir.join(src),
    }
}

/// A remote path of a plan transfer may hold `{host}` (and `{{`, `}}`), nothing else: plans
/// carry no inventory tags.
fn check_remote_template(ck: &Checker<'_>, v: &Spanned<String>) -> Result<(), PlanError> {
    let text = v.get_ref();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'}' if bytes.get(i + 1) == Some(&b'}') => i += 2,
            b'{' if text[i..].starts_with("{host}") => i += "{host}".len(),
            b'{' | b'}' => {
                let end = text[i + 1..].find('}').map_or(i + 1, |e| i + e + 2);
                return Err(ck.err(
                    "sortie::plan::bad_placeholder",
                    ck.inner_span(&v.span(), text, &(i..end)),
                    "unknown placeholder in a transfer path",
                    "here",
                    "plan transfers know {host} only; write {{ and }} for literal braces",
                ));
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// A collection's destination is a directory inside the run directory.
fn check_collect_dest(ck: &Checker<'_>, v: &Spanned<String>) -> Result<(), PlanError> {
    let p = Path::new(v.get_ref());
    let escapes = p.is_absolute()
        || p.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
    if escapes {
        return Err(ck.err(
            "sortie::plan::collect_dest",
            v.span(),
            "a collection's destination must stay inside the run directory",
            "absolute, or climbs with `..`",
            "give a relative directory such as \"host-logs\"; files land in <run-dir>/<dest>/<host>/",
        ));
    }
    Ok(())
}
