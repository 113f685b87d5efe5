//! Colour decisions and the few styles reporters use.
//!
//! Colour is on only when the stream is a terminal (or the user forced it) and `NO_COLOR` is
//! unset or empty (<https://no-color.org>). This module owns that rule and the palette; it
//! writes nothing.

use anstyle::{AnsiColor, Style};
use std::ffi::OsStr;

/// When to use colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour on terminals, unless `NO_COLOR` is set to a non-empty value.
    #[default]
    Auto,
    /// Always colour (e.g. `--color=always` piped into `less -R`).
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Decides colour for one stream: `is_terminal` is whether that stream is a terminal,
    /// `no_color` the value of the `NO_COLOR` environment variable, if set.
    pub fn resolve(self, is_terminal: bool, no_color: Option<&OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

/// Remote stderr lines and failure labels.
pub(crate) const ERROR: Style = AnsiColor::Red.on_default();
/// Success labels.
pub(crate) const OK: Style = AnsiColor::Green.on_default();
/// Interrupted/cancelled labels.
pub(crate) const WARN: Style = AnsiColor::Yellow.on_default();
/// Group headers.
pub(crate) const HEADER: Style = Style::new().bold();
/// Secondary text (failure details).
pub(crate) const DIM: Style = Style::new().dimmed();

/// Applies styles only when colour is on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Paint(pub(crate) bool);

impl Paint {
    /// Appends `text` to `out`, wrapped in `style` when colour is on.
    pub(crate) fn put(self, out: &mut Vec<u8>, style: Style, text: &[u8]) {
        if self.0 {
            out.extend_from_slice(style.render().to_string().as_bytes());
            out.extend_from_slice(text);
            out.extend_from_slice(style.render_reset().to_string().as_bytes());
        } else {
            out.extend_from_slice(text);
        }
    }

    /// `text` wrapped in `style` when colour is on.
    pub(crate) fn str(self, style: Style, text: &str) -> String {
        if self.0 {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_disables_only_when_non_empty_and_auto() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(ColorChoice::Auto.resolve(true, None));
        assert!(ColorChoice::Auto.resolve(true, empty));
        assert!(!ColorChoice::Auto.resolve(true, set));
        assert!(!ColorChoice::Auto.resolve(false, None));
        assert!(ColorChoice::Always.resolve(false, set));
        assert!(!ColorChoice::Never.resolve(true, None));
    }
}
