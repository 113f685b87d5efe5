//! Host expressions: parsing, range expansion, host files and folding back into ranges.
//!
//! Owns the syntax users type after `-H` and `-x` and write in host files and inventories:
//!
//! * a comma-separated list of elements `[user@]host[:port]`;
//! * IPv6 addresses as `[::1]:2222` (with port) or bare `::1` (without);
//! * numeric ranges in the host part, pdsh/ClusterShell style: `web[01-20]`, `n[1-3,7]`,
//!   `n[1-9/2]` (step), several brackets give the cartesian product
//!   (`rack[1-2]-n[1-3]` = rack1-n1, rack1-n2, ..., rack2-n3); zero padding of the start is kept
//!   (`web[08-10]` = web08 web09 web10); commas inside brackets do not split;
//! * `^FILE` reads a host file: one expression per line, `#` starts a comment, blank lines are
//!   fine; a relative `FILE` inside a host file is relative to that file's directory.
//!
//! [`fold`] does the reverse for display, like ClusterShell's `nodeset -f` / `dshbak -c`,
//! folding every number of a name (`rack[1-2]-n[1-3]`).
//!
//! [`parse`] is pure (no file access) so it can be fuzzed; [`expand`] follows `^FILE`.
//! This module knows nothing about inventories or ssh_config.

use std::cmp::Ordering;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use crate::error::{InventoryError, Origin, ParseError};

mod fold;
pub use fold::fold;

/// Largest number of hosts one expression may expand to (guards against `n[1-999999999]`).
pub const MAX_HOSTS: usize = 1_000_000;

/// Deepest nesting of `^FILE` inside host files.
pub const MAX_FILE_DEPTH: usize = 16;

/// One host as written in an expression, after range expansion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostSpec {
    /// `user@` part, when written.
    pub user: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// `:port` part, when written.
    pub port: Option<u16>,
}

impl HostSpec {
    /// A host with neither user nor port.
    pub fn new(host: impl Into<String>) -> HostSpec {
        HostSpec {
            user: None,
            host: host.into(),
            port: None,
        }
    }

    /// The label used in output: the host as written without the user, plus `:port` only when
    /// a port was written (`[::1]:2222` for IPv6).
    pub fn label(&self) -> String {
        match self.port {
            None => self.host.clone(),
            Some(p) if self.host.contains(':') => format!("[{}]:{p}", self.host),
            Some(p) => format!("{}:{p}", self.host),
        }
    }
}

impl std::fmt::Display for HostSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.label())
    }
}

/// One element of a parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// Hosts produced by one `[user@]host[:port]` element (several when it has ranges).
    Hosts(Vec<HostSpec>),
    /// `^FILE`: read more expressions from a file.
    File {
        /// The file name as written.
        path: String,
        /// Byte range of the name in the parsed text.
        span: std::ops::Range<usize>,
    },
}

/// A syntax error before it is given its origin.
struct Raw {
    offset: usize,
    len: usize,
    message: String,
    help: Option<String>,
}

fn raw(offset: usize, len: usize, message: impl Into<String>) -> Raw {
    Raw {
        offset,
        len,
        message: message.into(),
        help: None,
    }
}

impl Raw {
    fn help(mut self, h: &str) -> Raw {
        self.help = Some(h.to_string());
        self
    }
    fn into_error(self, origin: Origin, source: &str, base: usize) -> ParseError {
        ParseError::new(
            origin,
            source,
            base + self.offset,
            self.len.max(1),
            self.message,
            self.help,
        )
    }
}

/// Parses a host expression without touching the file system (`^FILE` stays an
/// [`Element::File`]). Errors are labelled "host expression"; use [`parse_in`] to name the
/// option or file the text came from.
pub fn parse(text: &str) -> Result<Vec<Element>, ParseError> {
    parse_in(text, Origin::Other("host expression".into()))
}

/// Like [`parse`], with errors naming `origin` (e.g. `Origin::Option("-H".into())`).
pub fn parse_in(text: &str, origin: Origin) -> Result<Vec<Element>, ParseError> {
    parse_raw(text).map_err(|r| r.into_error(origin, text, 0))
}

/// Expands the ranges of a bare name pattern (`web[01-03]` -> web01 web02 web03), with no
/// user, port or commas at the top level.
pub fn expand_names(pattern: &str) -> Result<Vec<String>, ParseError> {
    expand_ranges(pattern, 0)
        .map_err(|r| r.into_error(Origin::Other("host name pattern".into()), pattern, 0))
}

/// Parses `text` and follows `^FILE` elements (relative to `base_dir`), returning every host in
/// written order (duplicates kept; selection removes them).
pub fn expand(
    text: &str,
    origin: Origin,
    base_dir: &Path,
) -> Result<Vec<HostSpec>, InventoryError> {
    let mut out = Vec::new();
    let elements = parse_in(text, origin)?;
    push_elements(elements, base_dir, 0, &mut out)?;
    Ok(out)
}

/// Reads a host file: one expression per line, `#` comments, blank lines ignored. Errors name
/// `FILE:LINE:COL`.
pub fn read_host_file(path: &Path) -> Result<Vec<HostSpec>, InventoryError> {
    let mut out = Vec::new();
    read_host_file_into(path, 0, &mut out)?;
    Ok(out)
}

/// Parses the text of a host file (see [`read_host_file`]) without following `^FILE`; errors
/// name `path`.
pub fn parse_host_file(text: &str, path: &Path) -> Result<Vec<Element>, ParseError> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let content = line.split('#').next().unwrap_or("");
        let trimmed_start = content.len() - content.trim_start().len();
        let expr = content.trim();
        if !expr.is_empty() {
            let els = parse_raw(expr).map_err(|r| {
                r.into_error(
                    Origin::File(path.to_path_buf()),
                    text,
                    line_start + trimmed_start,
                )
            })?;
            out.extend(els.into_iter().map(|e| match e {
                Element::File { path, span } => Element::File {
                    path,
                    span: span.start + line_start + trimmed_start
                        ..span.end + line_start + trimmed_start,
                },
                other => other,
            }));
        }
        line_start += line.len();
    }
    Ok(out)
}

fn read_host_file_into(
    path: &Path,
    depth: usize,
    out: &mut Vec<HostSpec>,
) -> Result<(), InventoryError> {
    if depth >= MAX_FILE_DEPTH {
        return Err(InventoryError::HostFileDepth {
            path: path.to_path_buf(),
            depth: MAX_FILE_DEPTH,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let elements = parse_host_file(&text, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    push_elements(elements, dir, depth + 1, out)
}

fn push_elements(
    elements: Vec<Element>,
    base_dir: &Path,
    depth: usize,
    out: &mut Vec<HostSpec>,
) -> Result<(), InventoryError> {
    for e in elements {
        match e {
            Element::Hosts(h) => {
                if out.len() + h.len() > MAX_HOSTS {
                    return Err(InventoryError::TooManyHosts { limit: MAX_HOSTS });
                }
                out.extend(h)
            }
            Element::File { path, .. } => {
                let p = expand_tilde_simple(&path);
                let p = if p.is_absolute() { p } else { base_dir.join(p) };
                read_host_file_into(&p, depth, out)?;
            }
        }
    }
    Ok(())
}

fn expand_tilde_simple(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(p)
}

fn parse_raw(text: &str) -> Result<Vec<Element>, Raw> {
    if text.trim().is_empty() {
        return Err(raw(0, text.len(), "empty host expression")
            .help("name at least one host, e.g. web01 or web[01-10]"));
    }
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                pieces.push((start, &text[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push((start, &text[start..]));
    let mut out = Vec::new();
    let mut total = 0usize;
    for (off, piece) in pieces {
        let lead = piece.len() - piece.trim_start().len();
        let el = piece.trim();
        if el.is_empty() {
            // Point at the comma that ends (or starts) the empty element.
            let at = if off < text.len() {
                off
            } else {
                off.saturating_sub(1)
            };
            return Err(raw(at, 1, "empty element in host list").help("remove the extra comma"));
        }
        let e = parse_element(el, off + lead)?;
        if let Element::Hosts(h) = &e {
            total += h.len();
            if total > MAX_HOSTS {
                return Err(raw(
                    off + lead,
                    el.len(),
                    format!("expression expands to more than {MAX_HOSTS} hosts"),
                ));
            }
        }
        out.push(e);
    }
    Ok(out)
}

fn parse_element(s: &str, base: usize) -> Result<Element, Raw> {
    if let Some(rest) = s.strip_prefix('^') {
        if rest.is_empty() {
            return Err(raw(base, 1, "missing file name after ^")
                .help("write ^FILE to read hosts from FILE"));
        }
        return Ok(Element::File {
            path: rest.to_string(),
            span: base + 1..base + s.len(),
        });
    }
    if let Some((i, c)) = s.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(
            raw(base + i, c.len_utf8(), "whitespace inside a host element")
                .help("separate hosts with commas"),
        );
    }
    // user@ : the last '@' outside brackets.
    let mut depth = 0usize;
    let mut at = None;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '@' if depth == 0 => at = Some(i),
            _ => {}
        }
    }
    let (user, hp, hp_off) = match at {
        Some(i) => {
            let user = &s[..i];
            if user.is_empty() {
                return Err(raw(base + i, 1, "empty user name before @"));
            }
            if let Some(j) = user.find(['[', ']', '@']) {
                return Err(raw(
                    base + j,
                    1,
                    "ranges and '@' are not allowed in the user name",
                ));
            }
            (Some(user.to_string()), &s[i + 1..], base + i + 1)
        }
        None => (None, s, base),
    };
    if hp.is_empty() {
        return Err(raw(
            hp_off.saturating_sub(1),
            1,
            "missing host name after @",
        ));
    }
    // Bracketed IPv6: [addr] or [addr]:port.
    if hp.starts_with('[') {
        if let Some(close) = hp.find(']') {
            let inner = &hp[1..close];
            if inner.contains(':') {
                check_ipv6(inner, hp_off + 1)?;
                let after = &hp[close + 1..];
                let port = if after.is_empty() {
                    None
                } else if let Some(p) = after.strip_prefix(':') {
                    Some(parse_port(p, hp_off + close + 2)?)
                } else {
                    return Err(raw(
                        hp_off + close + 1,
                        after.len(),
                        "unexpected text after IPv6 address",
                    )
                    .help("write [ADDRESS]:PORT"));
                };
                return Ok(Element::Hosts(vec![HostSpec {
                    user,
                    host: inner.to_string(),
                    port,
                }]));
            }
        }
    }
    let mut depth = 0usize;
    let colons: Vec<usize> = hp
        .char_indices()
        .filter_map(|(i, c)| match c {
            '[' => {
                depth += 1;
                None
            }
            ']' => {
                depth = depth.saturating_sub(1);
                None
            }
            ':' if depth == 0 => Some(i),
            _ => None,
        })
        .collect();
    let (host, port) = match colons.as_slice() {
        [] => (hp, None),
        [i] => {
            let p = &hp[i + 1..];
            (&hp[..*i], Some(parse_port(p, hp_off + i + 1)?))
        }
        _ => {
            check_ipv6(hp, hp_off)?;
            return Ok(Element::Hosts(vec![HostSpec {
                user,
                host: hp.to_string(),
                port: None,
            }]));
        }
    };
    if host.is_empty() {
        return Err(raw(hp_off, 1, "missing host name before :port"));
    }
    let names = expand_ranges(host, hp_off)?;
    Ok(Element::Hosts(
        names
            .into_iter()
            .map(|h| HostSpec {
                user: user.clone(),
                host: h,
                port,
            })
            .collect(),
    ))
}

fn check_ipv6(s: &str, off: usize) -> Result<(), Raw> {
    let addr = s.split('%').next().unwrap_or("");
    if addr.parse::<Ipv6Addr>().is_ok() && !s.ends_with('%') {
        Ok(())
    } else {
        Err(raw(off, s.len(), format!("`{s}` is not a valid IPv6 address"))
            .help("write IPv6 addresses as [ADDRESS]:PORT or bare ADDRESS; a host name takes at most one :PORT"))
    }
}

fn parse_port(p: &str, off: usize) -> Result<u16, Raw> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => {
            Err(raw(off, p.len(), format!("bad port `{p}`"))
                .help("a port is a number from 1 to 65535"))
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '+')
}

/// Expands `[..]` ranges in a host name; `base` is the offset of `s` for error positions.
fn expand_ranges(s: &str, base: usize) -> Result<Vec<String>, Raw> {
    // Each segment is a list of alternatives; the result is their cartesian product.
    let mut segments: Vec<Vec<String>> = Vec::new();
    let mut literal = String::new();
    let mut total: usize = 1;
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        match c {
            '[' => {
                let rest = &s[i + 1..];
                let close = rest.find(']');
                let open = rest.find('[');
                let close = match (close, open) {
                    (Some(cl), Some(op)) if op < cl => {
                        return Err(raw(base + i + 1 + op, 1, "nested '[' in range")
                            .help("ranges cannot be nested; write n[1-3]-[5-6] for a product"));
                    }
                    (Some(cl), _) => cl,
                    (None, _) => {
                        return Err(raw(base + i, 1, "unbalanced '[': missing ']'")
                            .help("close the range, e.g. web[01-10]"));
                    }
                };
                if !literal.is_empty() {
                    segments.push(vec![std::mem::take(&mut literal)]);
                }
                let inner = &rest[..close];
                let alts = expand_bracket(inner, base + i + 1)?;
                total = total.saturating_mul(alts.len());
                if total > MAX_HOSTS {
                    return Err(raw(
                        base,
                        s.len(),
                        format!("expands to more than {MAX_HOSTS} hosts"),
                    ));
                }
                segments.push(alts);
                i += close + 2;
            }
            ']' => {
                return Err(raw(base + i, 1, "unbalanced ']': no matching '['"));
            }
            c if is_name_char(c) => {
                literal.push(c);
                i += c.len_utf8();
            }
            c => {
                return Err(raw(
                    base + i,
                    c.len_utf8(),
                    format!("character `{c}` is not allowed in a host name"),
                )
                .help("host names use letters, digits, '-', '.', '_' and [ranges]"));
            }
        }
    }
    if !literal.is_empty() {
        segments.push(vec![literal]);
    }
    let mut out = vec![String::new()];
    for seg in segments {
        let mut next = Vec::with_capacity(out.len() * seg.len());
        for prefix in &out {
            for alt in &seg {
                let mut s = prefix.clone();
                s.push_str(alt);
                next.push(s);
            }
        }
        out = next;
    }
    Ok(out)
}

/// Expands the inside of one `[...]`: `1-3,7`, `01-10`, `1-9/2`.
fn expand_bracket(inner: &str, base: usize) -> Result<Vec<String>, Raw> {
    if inner.is_empty() {
        return Err(raw(base.saturating_sub(1), 2, "empty range '[]'")
            .help("write a range such as [1-5] or a list such as [1,3,7]"));
    }
    let mut out = Vec::new();
    let mut off = 0;
    for item in inner.split(',') {
        let here = base + off;
        off += item.len() + 1;
        if item.is_empty() {
            return Err(raw(
                here.saturating_sub(usize::from(here > base)),
                1,
                "empty element in range",
            )
            .help("remove the extra comma"));
        }
        let bad = || {
            raw(here, item.len(), format!("bad range `{item}`"))
                .help("a range element is N, N-M or N-M/STEP with decimal numbers, start <= end")
        };
        let (span, step) = match item.split_once('/') {
            Some((a, st)) => (a, Some(st)),
            None => (item, None),
        };
        let (a, b) = span.split_once('-').unwrap_or((span, span));
        let num = |t: &str| -> Option<u64> {
            if t.is_empty() || t.len() > 18 || !t.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                t.parse().ok()
            }
        };
        let (Some(lo), Some(hi)) = (num(a), num(b)) else {
            return Err(bad());
        };
        let step = match step {
            None => 1,
            Some(st) => match num(st) {
                Some(n) if n > 0 => n,
                _ => return Err(bad()),
            },
        };
        if lo > hi {
            return Err(raw(
                here,
                item.len(),
                format!("bad range `{item}`: start is greater than end"),
            )
            .help("write the smaller number first, e.g. [2-5]"));
        }
        let count = (hi - lo) / step + 1;
        if count as u128 + out.len() as u128 > MAX_HOSTS as u128 {
            return Err(raw(
                here,
                item.len(),
                format!("range `{item}` has more than {MAX_HOSTS} elements"),
            ));
        }
        let width = if a.len() > 1 && a.starts_with('0') {
            a.len()
        } else {
            0
        };
        let mut n = lo;
        loop {
            out.push(format!("{n:0width$}"));
            match n.checked_add(step) {
                Some(m) if m <= hi => n = m,
                _ => break,
            }
        }
    }
    Ok(out)
}

/// Natural order: runs of digits compare by value, the rest byte-wise.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let lx = x.iter().take_while(|b| b.is_ascii_digit()).count();
                let ly = y.iter().take_while(|b| b.is_ascii_digit()).count();
                let (nx, ny) = (&x[..lx], &y[..ly]);
                let tx = trim_zeros(nx);
                let ty = trim_zeros(ny);
                let ord = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[lx..];
                y = &y[ly..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let i = d.iter().position(|&b| b != b'0').unwrap_or(d.len());
    &d[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> Vec<String> {
        parse(text)
            .unwrap()
            .into_iter()
            .flat_map(|e| match e {
                Element::Hosts(h) => h,
                Element::File { .. } => panic!("file"),
            })
            .map(|h| h.to_string())
            .collect()
    }

    fn err(text: &str) -> ParseError {
        parse_in(text, Origin::Option("-H".into())).unwrap_err()
    }

    #[test]
    fn plain_user_port_and_ipv6() {
        assert_eq!(
            hosts("a,b@c,d:2222,e@f:22"),
            ["a", "b@c", "d:2222", "e@f:22"]
        );
        assert_eq!(
            hosts("[::1]:2222,::1,u@[fe80::1%eth0]"),
            ["[::1]:2222", "::1", "u@fe80::1%eth0"]
        );
        let h = match &parse("root@[::1]:2222").unwrap()[0] {
            Element::Hosts(h) => h[0].clone(),
            _ => unreachable!(),
        };
        assert_eq!(h.user.as_deref(), Some("root"));
        assert_eq!(h.host, "::1");
        assert_eq!(h.port, Some(2222));
        assert_eq!(h.label(), "[::1]:2222");
    }

    #[test]
    fn ranges_padding_lists_and_products() {
        assert_eq!(hosts("web[08-10]"), ["web08", "web09", "web10"]);
        assert_eq!(hosts("web[8-10]"), ["web8", "web9", "web10"]);
        assert_eq!(hosts("n[1-3,7]"), ["n1", "n2", "n3", "n7"]);
        assert_eq!(
            hosts("rack[1-2]-n[1-3]"),
            ["rack1-n1", "rack1-n2", "rack1-n3", "rack2-n1", "rack2-n2", "rack2-n3"]
        );
        assert_eq!(hosts("n[1-9/4]"), ["n1", "n5", "n9"]);
        assert_eq!(
            hosts("u@10.0.1.[1-2]:22, x"),
            ["u@10.0.1.1:22", "u@10.0.1.2:22", "x"]
        );
        assert_eq!(hosts("[1-2].example"), ["1.example", "2.example"]);
    }

    #[test]
    fn file_elements_are_left_alone_by_parse() {
        let els = parse("a,^hosts.txt").unwrap();
        assert_eq!(
            els[1],
            Element::File {
                path: "hosts.txt".into(),
                span: 3..12
            }
        );
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = err("web[1-3");
        assert_eq!((e.line, e.column), (1, 4));
        assert!(e.message.contains("unbalanced '['"), "{e}");
        assert_eq!(
            e.to_string(),
            "-H \"web[1-3\", column 4: unbalanced '[': missing ']'"
        );

        let e = err("a,web[5-2]");
        assert_eq!(e.column, 7);
        assert!(e.message.contains("start is greater than end"));

        let e = err("a,,b");
        assert_eq!(e.column, 3);
        assert!(e.message.contains("empty element"));
        assert_eq!(err("a,").column, 2);

        let e = err("host:99999");
        assert_eq!(e.column, 6);
        assert!(e.message.contains("bad port"));
        assert!(err("host:").message.contains("bad port"));
        assert!(err("host:0").message.contains("bad port"));
        assert!(err("web]1").message.contains("unbalanced ']'"));
        assert!(err("web[]").message.contains("empty range"));
        assert!(err("web[1,,2]").message.contains("empty element in range"));
        assert!(err("web[a-b]").message.contains("bad range"));
        assert!(err("web[1-[2]]").message.contains("nested"));
        assert!(err("@h").message.contains("empty user"));
        assert!(err("u@").message.contains("missing host"));
        assert!(err("a:b:c").message.contains("IPv6"));
        assert!(err("a b").message.contains("whitespace"));
        assert!(err("a/b").message.contains("not allowed"));
        assert!(err("").message.contains("empty host expression"));
        assert!(err("n[1-999999999]").message.contains("more than"));
        assert!(err("a[1-1000]b[1-1000]c[1-1000]")
            .message
            .contains("more than"));
    }

    #[test]
    fn fold_compresses_like_clustershell() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            fold(&v(&["web03", "web01", "web02", "web04", "web05", "web07"])),
            "web[01-05,07]"
        );
        let ips: Vec<String> = (1..=200).map(|i| format!("127.0.0.{i}")).collect();
        assert_eq!(fold(&ips), "127.0.0.[1-200]");
        assert_eq!(fold(&v(&["web08", "web09", "web10"])), "web[08-10]");
        assert_eq!(
            fold(&v(&["db1", "web2", "web1", "db1", "::1"])),
            "::1,db1,web[1-2]"
        );
        assert_eq!(fold(&v(&["n10", "n9", "n1"])), "n[1,9-10]");
        assert_eq!(fold(&v(&["a", "b"])), "a,b");
        assert_eq!(
            fold(&v(&["rack1-n1", "rack1-n2", "rack2-n1"])),
            "rack1-n[1-2],rack2-n1"
        );
        assert_eq!(fold(&[]), "");
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("n9", "n10"), Ordering::Less);
        assert_eq!(natural_cmp("a", "b"), Ordering::Less);
        assert_eq!(natural_cmp("n010", "n9"), Ordering::Greater);
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn fold_then_expand_gives_the_same_set(
                names in proptest::collection::vec(("[a-c]{0,2}", 0u32..30, "[a-b.-]{0,2}", 0usize..3), 0..40)
            ) {
                let names: Vec<String> = names
                    .into_iter()
                    .map(|(p, n, s, w)| format!("{p}{n:0w$}{s}"))
                    .collect();
                let folded = fold(&names);
                let mut back: Vec<String> = if folded.is_empty() {
                    Vec::new()
                } else {
                    parse(&folded)
                        .unwrap()
                        .into_iter()
                        .flat_map(|e| match e {
                            Element::Hosts(h) => h,
                            Element::File { .. } => Vec::new(),
                        })
                        .map(|h| h.host)
                        .collect()
                };
                let mut want = names.clone();
                want.sort();
                want.dedup();
                back.sort();
                prop_assert_eq!(back, want, "folded: {}", folded);
            }

            #[test]
            fn parse_never_panics(s in "\\PC{0,40}") {
                let _ = parse(&s);
            }
        }
    }
}
