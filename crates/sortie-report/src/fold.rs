//! Host-range folding (`web01 web02 web03 web07` -> `web[01-03,07]`) for group headers and
//! the summary: one call into `sortie_inventory::hostexpr::fold`, so what sortie prints can be
//! pasted back as a host expression. This module owns nothing else.

/// Folds host labels into a compact host expression, e.g. `web[01-05,07]`.
pub(crate) fn fold(labels: &[String]) -> String {
    sortie_inventory::hostexpr::fold(labels)
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
        // Every number folds, as in group headers: `rack[1-2]-n[1-2]`, not four names.
        assert_eq!(
            f(&["rack1-n1", "rack2-n2", "rack1-n2", "rack2-n1"]),
            "rack[1-2]-n[1-2]"
        );
    }
}
