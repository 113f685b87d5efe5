//! `--set KEY=VALUE` overrides, applied to the plan's TOML document before it is read.
//!
//! Owns the override syntax (a dotted path to a key, `=`, a TOML value or else a bare string)
//! and finding which parts of the edited text each override wrote, so that an error there names
//! the option instead of a line the user never wrote. It knows nothing about the schema: the
//! edited document goes through the same validation as the file.

use std::ops::Range;

use toml_edit::{DocumentMut, Item, Table, Value};

use super::error::{PlanError, Source};

/// Where one override landed in the edited text.
#[derive(Debug, Clone)]
pub(crate) struct Landed {
    /// The option as given (`run.duration=30s`), for errors.
    pub source: Source,
    /// Byte range in the option text of the value.
    pub value: Range<usize>,
    /// Byte range in the option text of the key.
    pub key: Range<usize>,
    /// Byte range in the edited plan text: from the start of the key's line to the value's end.
    pub region: Range<usize>,
    /// Byte range in the edited plan text of the value.
    pub value_region: Range<usize>,
}

fn option_error(
    opt: &Source,
    span: Range<usize>,
    message: impl Into<String>,
    help: &str,
) -> PlanError {
    opt.error(
        "sortie::plan::bad_override",
        span,
        message,
        "here",
        Some(help.to_owned()),
    )
}

/// Applies `sets` to `text`; returns the edited text and where each override landed.
pub(crate) fn apply(
    text: &str,
    file: &Source,
    sets: &[String],
) -> Result<(String, Vec<Landed>), PlanError> {
    if sets.is_empty() {
        return Ok((text.to_owned(), Vec::new()));
    }
    let toml_error = |e: toml_edit::TomlError| {
        file.error(
            "sortie::plan::toml",
            e.span().unwrap_or(0..0),
            e.message().to_owned(),
            "here",
            None,
        )
    };
    let mut doc: DocumentMut = text.parse().map_err(toml_error)?;
    let mut parsed = Vec::new();
    for set in sets {
        parsed.push(set_one(&mut doc, set)?);
    }
    let edited = doc.to_string();
    let spanned: toml_edit::Document<String> =
        toml_edit::Document::parse(edited.clone()).map_err(toml_error)?;
    let landed = (parsed.into_iter())
        .map(|(opt, path, eq)| landing(&edited, &spanned, opt, &path, eq))
        .collect();
    Ok((edited, landed))
}

/// Applies one `--set KEY=VALUE` to `doc`; returns the option's text as a source, the key's
/// path and the position of `=`.
fn set_one(doc: &mut DocumentMut, set: &str) -> Result<(Source, Vec<String>, usize), PlanError> {
    let opt = Source::new(format!("--set {set}"), set);
    let Some(eq) = set.find('=') else {
        return Err(option_error(
            &opt,
            0..set.len(),
            "expected KEY=VALUE",
            "for example --set run.duration=30s",
        ));
    };
    let (key, value) = (&set[..eq], &set[eq + 1..]);
    let path: Vec<&str> = key.split('.').map(str::trim).collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(option_error(
            &opt,
            0..eq,
            format!("invalid key path {key:?}"),
            "write a dotted path such as roles.viewer.count",
        ));
    }
    let v: Value = value
        .parse::<Value>()
        .unwrap_or_else(|_| Value::from(value.trim()));
    let table = parent_table(doc, &path, &opt, eq)?;
    table.insert(path[path.len() - 1], Item::Value(v));
    let path = path.iter().map(|s| (*s).to_owned()).collect();
    Ok((opt, path, eq))
}

/// The table that holds the last key of `path`: top-level tables are made when missing,
/// inline tables become tables, deeper tables must exist.
fn parent_table<'d>(
    doc: &'d mut DocumentMut,
    path: &[&str],
    opt: &Source,
    eq: usize,
) -> Result<&'d mut Table, PlanError> {
    let mut table: &mut Table = doc.as_table_mut();
    for (depth, seg) in path[..path.len() - 1].iter().enumerate() {
        let here = path[..=depth].join(".");
        if !table.contains_key(seg) {
            if depth > 0 {
                return Err(option_error(
                    opt,
                    0..eq,
                    format!("the plan has no table {here}"),
                    "override keys of tables the plan defines, e.g. roles.NAME.count",
                ));
            }
            let mut t = Table::new();
            t.set_implicit(false);
            table.insert(seg, Item::Table(t));
        }
        let item = table.get_mut(seg).expect("inserted above");
        if let Item::Value(Value::InlineTable(_)) = item {
            let it = std::mem::replace(item, Item::None);
            if let Item::Value(Value::InlineTable(inline)) = it {
                *item = Item::Table(inline.into_table());
            }
        }
        table = match item {
            Item::Table(t) => t,
            _ => {
                return Err(option_error(
                    opt,
                    0..eq,
                    format!("{here} is not a table"),
                    "override a key inside a table, e.g. run.duration",
                ));
            }
        };
    }
    Ok(table)
}

/// Where an override's value landed in the edited text.
fn landing(
    edited: &str,
    spanned: &toml_edit::Document<String>,
    opt: Source,
    path: &[String],
    eq: usize,
) -> Landed {
    let mut item: &Item = spanned.as_item();
    for seg in path {
        item = item.get(seg.as_str()).unwrap_or(&Item::None);
    }
    let value_region = item.span().unwrap_or(0..0);
    let line_start = edited[..value_region.start]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let len = opt.text.len();
    Landed {
        source: opt,
        value: eq + 1..len,
        key: 0..eq,
        region: line_start..value_region.end,
        value_region,
    }
}

/// Re-points an error that lies in text an override wrote at that option.
pub(crate) fn attribute(err: PlanError, landed: &[Landed]) -> PlanError {
    let Some(span) = err.span() else { return err };
    if !matches!(err, PlanError::Located(_)) {
        return err;
    }
    for l in landed {
        if span.start >= l.region.start && span.start < l.region.end.max(l.region.start + 1) {
            let target = if span.start >= l.value_region.start {
                l.value.clone()
            } else {
                l.key.clone()
            };
            return err.relocate(&l.source, target);
        }
    }
    err
}
