//! Folding host names back into one host expression, the way ClusterShell's `nodeset -f` does.
//!
//! Every run of ASCII digits in a name is a dimension: `rack1-n08` is the pattern `rack%s-n%s`
//! with the numbers `1` and `08`. Names with the same pattern are folded together over all
//! their dimensions, so `rack[1-2]-n[1-3]` folds back to itself rather than to six names.
//!
//! What carries over from ClusterShell (`RangeSet.py`, `RangeSetND`; the code here is our own):
//!
//! * A number is kept as written: `08` and `8` are different hosts. Numbers sort shorter
//!   first, then by value (`9`, `08`, `10`), and a range only joins numbers of one kind: a
//!   zero-padded run takes numbers of its width (`08-10`), an unpadded run takes unpadded
//!   numbers (`9-10`), so `n08,n9` folds to `n[9,08]` and expands back to the same two hosts.
//! * When only one dimension varies, the fold is that dimension's range (fast path).
//! * Otherwise every host starts as its own vector of one-number sets, and vectors that differ
//!   in exactly one dimension are merged (when their sets there are disjoint, or one contains
//!   the other), in ClusterShell's order: sort (bigger vectors first, then per dimension bigger
//!   sets first, then first and last number as text), cheap passes that stop at the first pair
//!   that cannot merge, then full passes over every pair until nothing changes. Using the same
//!   order makes our text the same as `nodeset -f`'s, not only the same hosts.
//! * Patterns are listed in the order of their text with `%s` for numbers.
//!
//! Digit runs longer than 18 characters stay literal text. In a `host:port` label the port is
//! literal text too (an element of a host expression has one port, so `h[1-2]:22` can be
//! written but `h1:[22-23]` cannot; ClusterShell, which knows no ports, would fold it as a
//! number). Names that cannot be written back into a host expression (IPv6 addresses) are
//! listed as they are.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::is_name_char;

/// One number as written: (digit count, value). `08` is (2, 8), `8` is (1, 8). The derived
/// order (shorter first, then by value) is ClusterShell's order of number strings.
type Num = (u8, u64);

/// Longest digit run folded as a number (fits a u64); longer runs stay literal text.
const MAX_DIGITS: usize = 18;

/// One dimension's numbers: sorted, no duplicates.
type Set = Vec<Num>;

/// Compresses host names into one host expression, like ClusterShell's `nodeset -f`:
/// `web01..web05,web07` -> `web[01-05,07]`, `rack1-n1..rack2-n3` -> `rack[1-2]-n[1-3]`.
///
/// Every number in a name is folded (see the module docs); zero padding and mixed widths are
/// kept (`web08`,`web09`,`web10` -> `web[08-10]`, `n08`,`n9` -> `n[9,08]`); `host:port`
/// labels fold their host part (`127.0.0.[1-2]:2222`). Duplicates are removed and the result
/// does not depend on the input order. Names that cannot be written back as a range (IPv6)
/// are listed as they are. For names produced by
/// [`super::expand_names`], expanding the result gives back exactly the same set.
pub fn fold(names: &[String]) -> String {
    // (pattern text with %s, opaque) -> number vectors; opaque names keep their text.
    let mut patterns: BTreeMap<(String, bool), Group> = BTreeMap::new();
    for name in names {
        match split(name) {
            Some((pattern, nums)) => {
                let group = patterns
                    .entry((pattern, false))
                    .or_insert_with(|| Group::Vectors(BTreeSet::new()));
                if let Group::Vectors(v) = group {
                    v.insert(nums);
                }
            }
            None => {
                let group = patterns
                    .entry((pattern_of(name), true))
                    .or_insert_with(|| Group::Opaque(BTreeSet::new()));
                if let Group::Opaque(v) = group {
                    v.insert(name.clone());
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for ((pattern, _), group) in patterns {
        match group {
            Group::Opaque(names) => out.extend(names),
            Group::Vectors(vectors) => {
                let pieces: Vec<&str> = pattern.split("%s").collect();
                for vector in fold_vectors(vectors) {
                    out.push(render(&pieces, &vector));
                }
            }
        }
    }
    out.join(",")
}

/// The names of one pattern.
enum Group {
    /// Foldable names, as number vectors.
    Vectors(BTreeSet<Vec<Num>>),
    /// Names listed as they are.
    Opaque(BTreeSet<String>),
}

/// Splits a foldable name into its pattern (`%s` for each number) and its numbers.
///
/// A `host:port` label folds its host part and keeps the port as literal text, since an
/// element of a host expression has one port: `127.0.0.[1-2]:2222`.
fn split(name: &str) -> Option<(String, Vec<Num>)> {
    let (host, port) = match name.split_once(':') {
        None => (name, None),
        Some((host, port)) => match port.parse::<u16>() {
            Ok(n) if n > 0 && n.to_string() == port => (host, Some(port)),
            _ => return None,
        },
    };
    if host.is_empty() || !host.chars().all(is_name_char) {
        return None;
    }
    let name = host;
    let mut pattern = String::with_capacity(name.len() + 4);
    let mut nums = Vec::new();
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            let run = &name[start..i];
            match run.parse::<u64>() {
                Ok(v) if run.len() <= MAX_DIGITS => {
                    pattern.push_str("%s");
                    nums.push((run.len() as u8, v));
                }
                _ => pattern.push_str(run),
            }
        } else {
            let c = name[i..].chars().next().unwrap_or(' ');
            pattern.push(c);
            i += c.len_utf8();
        }
    }
    if let Some(port) = port {
        pattern.push(':');
        pattern.push_str(port);
    }
    Some((pattern, nums))
}

/// The sort text of a name that is not folded: digit runs as `%s`, as ClusterShell sorts it.
fn pattern_of(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("%s");
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Writes one folded vector into its pattern: `[..]` around sets of more than one number.
fn render(pieces: &[&str], vector: &[Set]) -> String {
    let mut s = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        s.push_str(piece);
        if let Some(set) = vector.get(i) {
            if set.len() > 1 {
                s.push('[');
                s.push_str(&ranges(set));
                s.push(']');
            } else {
                s.push_str(&ranges(set));
            }
        }
    }
    s
}

/// The inside of a bracket: `1-3,7`, `08-10`, `9,08`.
///
/// A run continues while numbers are consecutive and of the run's kind: a zero-padded run
/// takes numbers of its width, an unpadded run takes unpadded numbers.
fn ranges(set: &[Num]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < set.len() {
        let (width, start) = set[i];
        let padded = is_padded(set[i]);
        let mut j = i;
        while let Some(&next) = set.get(j + 1) {
            let same_kind = if padded {
                next.0 == width
            } else {
                !is_padded(next)
            };
            if !same_kind || next.1 != set[j].1 + 1 {
                break;
            }
            j += 1;
        }
        let w = if padded { usize::from(width) } else { 0 };
        if i == j {
            parts.push(text(set[i]));
        } else {
            parts.push(format!("{start:0w$}-{:0w$}", set[j].1));
        }
        i = j + 1;
    }
    parts.join(",")
}

/// `08` is padded; `0`, `8` and `10` are not.
fn is_padded((width, value): Num) -> bool {
    usize::from(width) > digits(value)
}

fn digits(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// A number as written.
fn text((width, value): Num) -> String {
    format!("{value:0w$}", w = usize::from(width))
}

/// Folds the number vectors of one pattern into as few vectors of sets as ClusterShell would.
fn fold_vectors(vectors: BTreeSet<Vec<Num>>) -> Vec<Vec<Set>> {
    let dims = vectors.first().map_or(0, Vec::len);
    if dims == 0 {
        return vec![Vec::new()];
    }
    let mut per_dim: Vec<BTreeSet<Num>> = vec![BTreeSet::new(); dims];
    for v in &vectors {
        for (d, n) in v.iter().enumerate() {
            per_dim[d].insert(*n);
        }
    }
    // Univariate: at most one dimension varies, so the set is exactly the product.
    if per_dim.iter().filter(|s| s.len() > 1).count() <= 1 {
        return vec![per_dim
            .into_iter()
            .map(|s| s.into_iter().collect())
            .collect()];
    }
    let items: Vec<Vec<Set>> = vectors
        .into_iter()
        .map(|v| v.into_iter().map(|n| vec![n]).collect())
        .collect();
    merge_passes(items)
}

/// ClusterShell's multivariate merge: sorted passes, cheap ones first, then full ones.
fn merge_passes(mut items: Vec<Vec<Set>>) -> Vec<Vec<Set>> {
    let mut full = false;
    let mut changed = true;
    while changed {
        changed = false;
        items.sort_by_cached_key(|v| sort_key(v));
        let mut alive = vec![true; items.len()];
        for i in 0..items.len() {
            if !alive[i] {
                continue;
            }
            let (head, tail) = items.split_at_mut(i + 1);
            let item = &mut head[i];
            for (j, other) in tail.iter().enumerate() {
                if !alive[i + 1 + j] {
                    continue;
                }
                if merge_into(item, other) {
                    alive[i + 1 + j] = false;
                    changed = true;
                } else if !full {
                    break;
                }
            }
        }
        let mut keep = alive.into_iter();
        items.retain(|_| keep.next().unwrap_or(true));
        if !changed && !full {
            changed = true;
            full = true;
        }
    }
    items
}

/// See [`sort_key`].
type SortKey = (Reverse<u128>, Vec<(Reverse<usize>, String, String)>);

/// Sort key: bigger vectors first, then per dimension bigger sets first, then first and last
/// number compared as text (ClusterShell compares the strings).
fn sort_key(v: &[Set]) -> SortKey {
    let size = v
        .iter()
        .fold(1u128, |acc, s| acc.saturating_mul(s.len() as u128));
    let dims = v
        .iter()
        .map(|s| {
            let first = s.first().map_or_else(String::new, |n| text(*n));
            let last = s.last().map_or_else(String::new, |n| text(*n));
            (Reverse(s.len()), first, last)
        })
        .collect();
    (Reverse(size), dims)
}

/// Merges `other` into `item` when they differ in at most one dimension and there the sets are
/// disjoint (union) or one contains the other (the larger one). Returns whether it merged.
fn merge_into(item: &mut [Set], other: &[Set]) -> bool {
    let mut diff = None;
    for (d, (a, b)) in item.iter().zip(other).enumerate() {
        if a != b {
            if diff.is_some() {
                return false;
            }
            diff = Some(d);
        }
    }
    let Some(d) = diff else {
        return true;
    };
    let (a, b) = (&item[d], &other[d]);
    let common = common_count(a, b);
    if common == 0 {
        union_into(&mut item[d], b);
    } else if common == a.len() {
        item[d] = b.clone();
    } else if common != b.len() {
        return false;
    }
    true
}

/// How many numbers two sorted sets share.
fn common_count(a: &[Num], b: &[Num]) -> usize {
    match (a.first(), a.last(), b.first(), b.last()) {
        (Some(af), Some(al), Some(bf), Some(bl)) if al < bf || bl < af => return 0,
        _ => {}
    }
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Adds the numbers of `b` (disjoint from `a`) to the sorted set `a`.
fn union_into(a: &mut Set, b: &[Num]) {
    if a.last().is_some_and(|l| b.first().is_some_and(|f| l < f)) {
        a.extend_from_slice(b);
        return;
    }
    if b.len() == 1 {
        let at = a.partition_point(|n| *n < b[0]);
        a.insert(at, b[0]);
        return;
    }
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && a[i] < b[j]) {
            merged.push(a[i]);
            i += 1;
        } else {
            merged.push(b[j]);
            j += 1;
        }
    }
    *a = merged;
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Element};
    use super::*;

    fn f(names: &[&str]) -> String {
        fold(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Every host of a folded expression, sorted.
    fn expand_sorted(folded: &str) -> Vec<String> {
        if folded.is_empty() {
            return Vec::new();
        }
        let mut back: Vec<String> = parse(folded)
            .unwrap_or_else(|e| panic!("{folded}: {e}"))
            .into_iter()
            .flat_map(|e| match e {
                Element::Hosts(h) => h,
                Element::File { .. } => Vec::new(),
            })
            .map(|h| h.host)
            .collect();
        back.sort();
        back
    }

    /// Each of these is what `nodeset -f` (ClusterShell 1.10.1) prints for the same names.
    #[test]
    fn folds_every_dimension_like_nodeset() {
        assert_eq!(
            f(&["rack1-n1", "rack1-n2", "rack1-n3", "rack2-n1", "rack2-n2", "rack2-n3"]),
            "rack[1-2]-n[1-3]"
        );
        assert_eq!(
            f(&["a1b2", "a1b3", "a2b2", "a2b3", "a3b2"]),
            "a[1-2]b[2-3],a3b2"
        );
        assert_eq!(f(&["a1b1", "a2b2"]), "a1b1,a2b2");
        assert_eq!(f(&["x1y", "x2y", "x1z"]), "x[1-2]y,x1z");
        assert_eq!(f(&["foo", "n1", "bar2x", "bar2y"]), "bar2x,bar2y,foo,n1");
        assert_eq!(f(&["a-1", "a1"]), "a1,a-1");
        let grid: Vec<String> = (1..=4)
            .flat_map(|r| (1..=3).map(move |n| format!("r{r}-n{n}")))
            .chain(std::iter::once("r5-n1".to_string()))
            .collect();
        assert_eq!(fold(&grid), "r[1-4]-n[1-3],r5-n1");
        let ips: Vec<String> = (0..4)
            .flat_map(|c| (1..=250).map(move |d| format!("10.0.{c}.{d}")))
            .collect();
        assert_eq!(fold(&ips), "10.0.[0-3].[1-250]");
    }

    /// Zero padding and mixed widths as ClusterShell keeps them.
    #[test]
    fn keeps_padding_and_mixed_widths() {
        assert_eq!(f(&["n08", "n9"]), "n[9,08]");
        assert_eq!(f(&["n08", "n09", "n10"]), "n[08-10]");
        assert_eq!(f(&["n8", "n9", "n10"]), "n[8-10]");
        assert_eq!(f(&["n9", "n10", "n08", "n09"]), "n[9,08-10]");
        assert_eq!(f(&["n9", "n10", "n010"]), "n[9-10,010]");
        assert_eq!(f(&["n1", "n01", "n001"]), "n[1,01,001]");
        assert_eq!(f(&["n0", "n00", "n1"]), "n[0-1,00]");
        let padded: Vec<String> = (1..=10).map(|i| format!("n{i:02}")).collect();
        assert_eq!(fold(&padded), "n[01-10]");
        let plain: Vec<String> = (1..=10).map(|i| format!("n{i}")).collect();
        assert_eq!(fold(&plain), "n[1-10]");
        for folded in ["n[9,08]", "n[9,08-10]", "n[9-10,010]", "n[0-1,00]"] {
            assert_eq!(fold(&expand_sorted(folded)), folded);
        }
    }

    #[test]
    fn folds_hosts_with_ports_and_leaves_the_rest_alone() {
        let labels = [
            "127.0.0.1:2222",
            "127.0.0.2:2222",
            "127.0.0.1:22",
            "h1:022",
            "h2:0",
        ];
        let folded = f(&labels);
        assert_eq!(folded, "127.0.0.1:22,127.0.0.[1-2]:2222,h1:022,h2:0");
        let back: Vec<String> = parse("127.0.0.1:22,127.0.0.[1-2]:2222")
            .unwrap()
            .into_iter()
            .flat_map(|e| match e {
                Element::Hosts(h) => h,
                Element::File { .. } => Vec::new(),
            })
            .map(|h| h.label())
            .collect();
        assert_eq!(back, ["127.0.0.1:22", "127.0.0.1:2222", "127.0.0.2:2222"]);
        assert_eq!(
            f(&["::1", "fe80::2", "h:22", "h:23"]),
            "::1,fe80::2,h:22,h:23"
        );
        let long = "n1234567890123456789012";
        assert_eq!(f(&[long, "n1"]), format!("n1,{long}"));
        assert_eq!(expand_sorted(&f(&[long, "n1"])), ["n1", long]);
    }

    mod prop {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// Names of 1 to 3 patterns, each with 1 to 3 numbers of mixed widths (0 to 3 digits of
        /// padding), drawn from small ranges so that many vectors can merge.
        fn names() -> impl Strategy<Value = Vec<String>> {
            let pattern = (1usize..4).prop_flat_map(|dims| {
                (
                    "[a-c]{0,2}",
                    vec("[a-c.-]{1,2}", dims - 1),
                    "[a-b]{0,1}",
                    2u64..12,
                    vec(vec((0u64..12, 0usize..4), dims), 0..70),
                )
            });
            vec(pattern, 1..4).prop_map(|patterns| {
                let mut out = Vec::new();
                for (first, middle, last, span, vectors) in patterns {
                    for v in vectors {
                        let mut name = first.clone();
                        for (d, (n, w)) in v.iter().enumerate() {
                            let n = n % span;
                            name.push_str(&format!("{n:0w$}"));
                            if let Some(sep) = middle.get(d) {
                                name.push_str(sep);
                            }
                        }
                        name.push_str(&last);
                        out.push(name);
                    }
                }
                out
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn expanding_a_fold_gives_back_exactly_the_hosts(names in names()) {
                let folded = fold(&names);
                let mut want = names.clone();
                want.sort();
                want.dedup();
                prop_assert_eq!(expand_sorted(&folded), want, "folded: {}", folded);
                let mut shuffled = names.clone();
                shuffled.reverse();
                prop_assert_eq!(fold(&shuffled), folded.clone(), "order matters");
                prop_assert_eq!(fold(&expand_sorted(&folded)), folded);
            }
        }
    }
}
