//! Host-range folding (`web01 web02 web03 web07` -> `web[01-03,07]`) for headers and the summary.
//!
//! SHIM: the real implementation is `sortie_inventory::hostexpr::fold(&[String]) -> String`,
//! being written in `sortie-inventory`. Until it lands this private stand-in has the same
//! signature and output shape; switching is a one-line change in [`fold`]. It owns nothing
//! else and must not grow features of its own.

use std::collections::BTreeMap;

/// Folds host labels into a compact host expression, e.g. `web[01-05,07]`.
pub(crate) fn fold(labels: &[String]) -> String {
    shim_fold(labels)
}

/// Splits `web07a` into (`web`, `07`, `a`) on the last run of digits.
fn split(label: &str) -> Option<(&str, &str, &str)> {
    let end = label.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = label[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    Some((&label[..start], &label[start..end], &label[end..]))
}

fn shim_fold(labels: &[String]) -> String {
    // (prefix, suffix, digit width) -> numbers; labels without digits stay as they are.
    let mut groups: BTreeMap<(&str, &str, usize), Vec<u64>> = BTreeMap::new();
    let mut plain: Vec<&str> = Vec::new();
    for label in labels {
        match split(label).and_then(|(p, d, s)| Some((p, d.parse::<u64>().ok()?, d.len(), s))) {
            Some((p, n, w, s)) => groups.entry((p, s, w)).or_default().push(n),
            None => plain.push(label),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    for ((prefix, suffix, width), mut nums) in groups {
        nums.sort_unstable();
        nums.dedup();
        if nums.len() == 1 {
            parts.push(format!("{prefix}{:0width$}{suffix}", nums[0]));
            continue;
        }
        let mut ranges: Vec<String> = Vec::new();
        let mut i = 0;
        while i < nums.len() {
            let mut j = i;
            while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
                j += 1;
            }
            if i == j {
                ranges.push(format!("{:0width$}", nums[i]));
            } else {
                ranges.push(format!("{:0width$}-{:0width$}", nums[i], nums[j]));
            }
            i = j + 1;
        }
        parts.push(format!("{prefix}[{}]{suffix}", ranges.join(",")));
    }
    plain.sort_unstable();
    plain.dedup();
    parts.extend(plain.into_iter().map(str::to_owned));
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(labels: &[&str]) -> String {
        fold(&labels.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn folds_ranges_keeping_zero_padding() {
        assert_eq!(f(&["web03", "web01", "web02", "web07"]), "web[01-03,07]");
        assert_eq!(f(&["web07"]), "web07");
        assert_eq!(f(&["db1", "web01", "gateway"]), "db1,web01,gateway");
    }
}
