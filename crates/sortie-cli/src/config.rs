//! Defaults from the user's config file and from `SORTIE_*` environment variables, and
//! `sortie config`, which shows where each value comes from.
//!
//! Precedence, highest first: the command line, then the environment (`SORTIE_FANOUT`...), then
//! the inventory, then ssh_config, then the config file, then sortie's built-in defaults. The
//! environment sits just under the command line because it is how a CI job or a wrapper script
//! sets a value for one session (pdsh's `WCOLL`, `PDSH_SSH_ARGS`); the config file sits under
//! ssh_config because it holds a person's general taste, which a host's own ssh_config entry
//! (a slower link's `ConnectTimeout`, a lab's `StrictHostKeyChecking`) knows better.
//!
//! The file is `$SORTIE_CONFIG`, else `$XDG_CONFIG_HOME/sortie/config.toml`, else
//! `~/.config/sortie/config.toml`; a missing file is no error. Bad values are refused with the
//! file, line and column or the variable's name, before any host is contacted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use toml::Spanned;

use crate::args::{self, HostKeyChecking};

/// The file's keys (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
struct File {
    fanout: Option<Spanned<u32>>,
    max_handshakes: Option<Spanned<u32>>,
    connect_timeout: Option<Spanned<String>>,
    host_key_checking: Option<Spanned<String>>,
    output: Option<Spanned<String>>,
    inventory: Option<Spanned<String>>,
}

/// How `exec` prints when no option says (`--group`, `--json`, `--out-dir` win).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Live lines prefixed with the host.
    Lines,
    /// Identical outputs once under a folded host range.
    Group,
    /// JSON Lines events.
    Json,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `SORTIE_...`.
    Env(&'static str),
    /// The config file, at a line.
    File(PathBuf, usize),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env(var) => write!(f, "environment {var}"),
            Source::File(path, line) => write!(f, "config file {}:{line}", path.display()),
        }
    }
}

/// One value and where it came from.
#[derive(Clone, Debug)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub source: Source,
}

/// The layer of one origin (environment or file): each value is optional.
#[derive(Clone, Debug, Default)]
pub struct Layer {
    /// `fanout`, `SORTIE_FANOUT`.
    pub fanout: Option<Sourced<u32>>,
    /// `max_handshakes`, `SORTIE_MAX_HANDSHAKES`.
    pub max_handshakes: Option<Sourced<u32>>,
    /// `connect_timeout`, `SORTIE_CONNECT_TIMEOUT`.
    pub connect_timeout: Option<Sourced<Duration>>,
    /// `host_key_checking`, `SORTIE_HOST_KEY_CHECKING`.
    pub host_key_checking: Option<Sourced<HostKeyChecking>>,
    /// `output`, `SORTIE_OUTPUT`.
    pub output: Option<Sourced<Output>>,
    /// `inventory`, `SORTIE_INVENTORY`.
    pub inventory: Option<Sourced<PathBuf>>,
}

/// Both layers, and the file they were read from.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The config file's path (whether or not it exists).
    pub path: Option<PathBuf>,
    /// Whether the file exists.
    pub file_found: bool,
    /// `SORTIE_*` variables.
    pub env: Layer,
    /// The config file.
    pub file: Layer,
}

/// A bad value in the config file, located.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(sortie::config))]
struct FileError {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    at: SourceSpan,
    #[help]
    help: Option<String>,
}

impl Settings {
    /// Reads the environment through `var` and the config file it names.
    pub fn load(var: &dyn Fn(&str) -> Option<String>) -> miette::Result<Settings> {
        let path = config_path(var);
        let mut s = Settings {
            env: env_layer(var)?,
            ..Settings::default()
        };
        if let Some(path) = path {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    s.file = file_layer(&path, &text)?;
                    s.file_found = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(miette::miette!(
                        "cannot read the config file {}: {e}",
                        path.display()
                    ))
                }
            }
            s.path = Some(path);
        }
        Ok(s)
    }

    /// The value of the layer that wins among the environment and the file (callers check the
    /// command line first, and put the file under ssh_config where that matters).
    fn pick<T: Clone>(&self, get: impl Fn(&Layer) -> &Option<Sourced<T>>) -> Option<T> {
        get(&self.env)
            .as_ref()
            .or(get(&self.file).as_ref())
            .map(|s| s.value.clone())
    }

    /// Applies the settings to parsed arguments. `matches` tells which options the command
    /// line gave (`fanout` has a built-in default, so its presence cannot be told otherwise).
    pub fn apply(&self, command: &mut args::Command, matches: &clap::ArgMatches) {
        let given = |id: &str| {
            matches.subcommand().is_some_and(|(_, m)| {
                // A subcommand without the option has no id for it (and value_source would panic).
                m.try_contains_id(id).is_ok()
                    && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            })
        };
        let fanout = (!given("fanout"))
            .then(|| self.pick(|l| &l.fanout))
            .flatten();
        let handshakes = self.pick(|l| &l.max_handshakes);
        let paced = |n: &mut Option<u32>| *n = n.or(handshakes);
        match command {
            args::Command::Exec(a) => {
                self.apply_selection(&mut a.selection);
                paced(&mut a.max_handshakes);
                if let Some(f) = fanout {
                    a.fanout = f;
                }
                if !a.group && !a.json && a.out_dir.is_none() {
                    match self.pick(|l| &l.output) {
                        Some(Output::Group) => a.group = true,
                        Some(Output::Json) => a.json = true,
                        _ => {}
                    }
                }
            }
            args::Command::Run(a) => {
                self.apply_selection(&mut a.selection);
                paced(&mut a.max_handshakes);
                if let Some(f) = fanout {
                    a.fanout = f;
                }
            }
            args::Command::Put(a) => {
                self.apply_selection(&mut a.selection);
                paced(&mut a.common.max_handshakes);
                if let Some(f) = fanout {
                    a.common.fanout = f;
                }
            }
            args::Command::Get(a) => {
                self.apply_selection(&mut a.selection);
                paced(&mut a.common.max_handshakes);
                if let Some(f) = fanout {
                    a.common.fanout = f;
                }
            }
            args::Command::Hosts(a) => self.apply_selection(&mut a.selection),
            args::Command::Launch(a) => {
                paced(&mut a.max_handshakes);
                if let Some(f) = fanout {
                    a.fanout = f;
                }
                if !dash_o_sets(&a.ssh_options, "connecttimeout") {
                    a.connect_timeout =
                        a.connect_timeout.or(self.env_value(|l| &l.connect_timeout));
                }
                if !dash_o_sets(&a.ssh_options, "stricthostkeychecking") {
                    a.host_key_checking = a
                        .host_key_checking
                        .or(self.env_value(|l| &l.host_key_checking));
                }
                a.defaults = self.defaults();
            }
            args::Command::Completions(_)
            | args::Command::Man
            | args::Command::Config
            | args::Command::Report(_)
            | args::Command::Attach(_)
            | args::Command::Status(_)
            | args::Command::Stop(_) => {}
        }
    }

    fn env_value<T: Clone>(&self, get: impl Fn(&Layer) -> &Option<Sourced<T>>) -> Option<T> {
        get(&self.env).as_ref().map(|s| s.value.clone())
    }

    /// The environment as if given on the command line (under it); the file as defaults under
    /// ssh_config.
    /// A `-o` for the same setting is command line too, so it beats the environment.
    fn apply_selection(&self, sel: &mut args::Selection) {
        if !dash_o_sets(&sel.ssh_options, "connecttimeout") {
            sel.connect_timeout = sel
                .connect_timeout
                .or(self.env_value(|l| &l.connect_timeout));
        }
        if !dash_o_sets(&sel.ssh_options, "stricthostkeychecking") {
            sel.host_key_checking = sel
                .host_key_checking
                .or(self.env_value(|l| &l.host_key_checking));
        }
        if sel.inventory.is_none() {
            sel.inventory = self.pick(|l| &l.inventory);
        }
        sel.defaults = self.defaults();
    }

    /// The file's connection values, which apply under ssh_config.
    fn defaults(&self) -> sortie_inventory::Defaults {
        sortie_inventory::Defaults {
            connect_timeout: self.file.connect_timeout.as_ref().map(|s| s.value),
            strict_host_key_checking: self
                .file
                .host_key_checking
                .as_ref()
                .map(|s| crate::select::strict(s.value)),
        }
    }

    /// `sortie config`: every setting, its value and where it came from.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match (&self.path, self.file_found) {
            (Some(p), true) => out.push_str(&format!("config file: {}\n", p.display())),
            (Some(p), false) => out.push_str(&format!("config file: {} (none)\n", p.display())),
            (None, _) => out.push_str("config file: none (no $HOME or $XDG_CONFIG_HOME)\n"),
        }
        out.push_str("precedence: command line > environment > inventory > ssh_config > config file > built-in\n\n");
        let row = |out: &mut String, key: &str, value: Option<(String, String)>, builtin: &str| {
            let (v, from) = value.unwrap_or_else(|| {
                let when = if key == "inventory" {
                    " (when it exists)"
                } else {
                    ""
                };
                (builtin.to_string(), format!("built-in{when}"))
            });
            out.push_str(&format!("{key:<18} {v:<14} {from}\n"));
        };
        let show = |l: &Layer, f: &dyn Fn(&Layer) -> Option<(String, String)>| f(l);
        let both = |f: &dyn Fn(&Layer) -> Option<(String, String)>| {
            show(&self.env, f).or_else(|| show(&self.file, f))
        };
        row(
            &mut out,
            "fanout",
            both(&|l| {
                l.fanout
                    .as_ref()
                    .map(|s| (s.value.to_string(), s.source.to_string()))
            }),
            "64",
        );
        row(
            &mut out,
            "max_handshakes",
            both(&|l| {
                l.max_handshakes
                    .as_ref()
                    .map(|s| (s.value.to_string(), s.source.to_string()))
            }),
            &sortie::transport::ssh::DEFAULT_MAX_HANDSHAKES.to_string(),
        );
        row(
            &mut out,
            "connect_timeout",
            both(&|l| {
                l.connect_timeout
                    .as_ref()
                    .map(|s| (format!("{}s", s.value.as_secs_f64()), s.source.to_string()))
            }),
            "10s",
        );
        row(
            &mut out,
            "host_key_checking",
            both(&|l| {
                l.host_key_checking
                    .as_ref()
                    .map(|s| (policy_name(s.value).into(), s.source.to_string()))
            }),
            "yes",
        );
        row(
            &mut out,
            "output",
            both(&|l| {
                l.output
                    .as_ref()
                    .map(|s| (output_name(s.value).into(), s.source.to_string()))
            }),
            "lines",
        );
        row(
            &mut out,
            "inventory",
            both(&|l| {
                l.inventory
                    .as_ref()
                    .map(|s| (s.value.display().to_string(), s.source.to_string()))
            }),
            "sortie.toml",
        );
        out.push_str(
            "\nconnect_timeout and host_key_checking from the config file apply only where \
             ssh_config sets nothing;\n`sortie hosts --resolved HOST` shows a host's effective \
             values.\n",
        );
        out
    }
}

fn config_path(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(p) = non_empty("SORTIE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = non_empty("XDG_CONFIG_HOME") {
        return Some(Path::new(&x).join("sortie/config.toml"));
    }
    non_empty("HOME").map(|h| Path::new(&h).join(".config/sortie/config.toml"))
}

/// A value's parser: the text in, the value or what a valid one looks like.
type Parse<T> = fn(&str) -> Result<T, String>;

fn env_layer(var: &dyn Fn(&str) -> Option<String>) -> miette::Result<Layer> {
    fn get<T>(
        var: &dyn Fn(&str) -> Option<String>,
        name: &'static str,
        parse: Parse<T>,
    ) -> miette::Result<Option<Sourced<T>>> {
        let Some(text) = var(name).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        parse(&text)
            .map(|value| {
                Some(Sourced {
                    value,
                    source: Source::Env(name),
                })
            })
            .map_err(|e| miette::miette!("environment variable {name}={text:?}: {e}"))
    }
    Ok(Layer {
        fanout: get(var, "SORTIE_FANOUT", parse_fanout)?,
        max_handshakes: get(var, "SORTIE_MAX_HANDSHAKES", parse_handshakes)?,
        connect_timeout: get(var, "SORTIE_CONNECT_TIMEOUT", args::parse_duration)?,
        host_key_checking: get(var, "SORTIE_HOST_KEY_CHECKING", parse_policy)?,
        output: get(var, "SORTIE_OUTPUT", parse_output)?,
        inventory: get(var, "SORTIE_INVENTORY", |s| Ok(home_path(s)))?,
    })
}

fn file_layer(path: &Path, text: &str) -> miette::Result<Layer> {
    let file: File = toml::from_str(text).map_err(|e| {
        located(
            path,
            text,
            e.message().to_string(),
            e.span().unwrap_or(0..0),
            Some(
                "keys: fanout, max_handshakes, connect_timeout, host_key_checking, output, \
                 inventory"
                    .into(),
            ),
        )
    })?;
    let value = |s: Option<Spanned<String>>| s.map(|s| (s.span(), s.into_inner()));
    Ok(Layer {
        fanout: at_least_one(path, text, "fanout", file.fanout)?,
        max_handshakes: at_least_one(path, text, "max_handshakes", file.max_handshakes)?,
        connect_timeout: checked(
            path,
            text,
            value(file.connect_timeout),
            args::parse_duration,
        )?,
        host_key_checking: checked(path, text, value(file.host_key_checking), parse_policy)?,
        output: checked(path, text, value(file.output), parse_output)?,
        inventory: checked(path, text, value(file.inventory), |t| Ok(home_path(t)))?,
    })
}

/// A whole number of the file that must be at least 1, with its line, or an error at its place.
fn at_least_one(
    path: &Path,
    text: &str,
    key: &str,
    value: Option<Spanned<u32>>,
) -> miette::Result<Option<Sourced<u32>>> {
    match value {
        Some(f) if *f.get_ref() == 0 => Err(located(
            path,
            text,
            format!("{key} must be at least 1"),
            f.span(),
            None,
        )),
        Some(f) => Ok(Some(Sourced {
            value: *f.get_ref(),
            source: Source::File(path.to_path_buf(), line_of(text, &f.span())),
        })),
        None => Ok(None),
    }
}

/// A file value through its parser: the value with its line, or an error at its place.
fn checked<T>(
    path: &Path,
    text: &str,
    value: Option<(std::ops::Range<usize>, String)>,
    parse: Parse<T>,
) -> miette::Result<Option<Sourced<T>>> {
    let Some((span, raw)) = value else {
        return Ok(None);
    };
    match parse(&raw) {
        Ok(value) => Ok(Some(Sourced {
            value,
            source: Source::File(path.to_path_buf(), line_of(text, &span)),
        })),
        Err(e) => Err(located(path, text, e, span, None)),
    }
}

fn line_of(text: &str, span: &std::ops::Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

fn located(
    path: &Path,
    text: &str,
    message: String,
    span: std::ops::Range<usize>,
    help: Option<String>,
) -> miette::Report {
    miette::Report::new(FileError {
        message: format!("{}: {message}", path.display()),
        src: NamedSource::new(path.display().to_string(), text.to_string()),
        at: span.into(),
        help,
    })
}

/// A path with a leading `~/` made absolute with `$HOME`, as a shell would.
fn home_path(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(s),
    }
}

fn parse_fanout(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of hosts, at least 1".into()),
    }
}

fn parse_handshakes(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of connections, at least 1".into()),
    }
}

fn parse_policy(s: &str) -> Result<HostKeyChecking, String> {
    match s.trim() {
        "yes" => Ok(HostKeyChecking::Yes),
        "accept-new" => Ok(HostKeyChecking::AcceptNew),
        "no" => Ok(HostKeyChecking::No),
        _ => Err("expected yes, accept-new or no".into()),
    }
}

fn policy_name(p: HostKeyChecking) -> &'static str {
    match p {
        HostKeyChecking::Yes => "yes",
        HostKeyChecking::AcceptNew => "accept-new",
        HostKeyChecking::No => "no",
    }
}

fn parse_output(s: &str) -> Result<Output, String> {
    match s.trim() {
        "lines" => Ok(Output::Lines),
        "group" => Ok(Output::Group),
        "json" => Ok(Output::Json),
        _ => Err("expected lines, group or json".into()),
    }
}

fn output_name(o: Output) -> &'static str {
    match o {
        Output::Lines => "lines",
        Output::Group => "group",
        Output::Json => "json",
    }
}

/// Whether one of the `-o` values sets ssh_config `keyword` (lower-case).
fn dash_o_sets(options: &[String], keyword: &str) -> bool {
    options.iter().any(|o| {
        let o = o.trim_start();
        let end = o.find([' ', '\t', '=']).unwrap_or(o.len());
        o[..end].eq_ignore_ascii_case(keyword)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_file_is_found_by_sortie_config_then_xdg_then_home() {
        assert_eq!(
            config_path(&vars(&[("SORTIE_CONFIG", "/a.toml"), ("HOME", "/h")])),
            Some(PathBuf::from("/a.toml"))
        );
        assert_eq!(
            config_path(&vars(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/sortie/config.toml"))
        );
        assert_eq!(
            config_path(&vars(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/sortie/config.toml"))
        );
    }

    #[test]
    fn file_values_carry_their_line_and_bad_ones_their_place() {
        let l = file_layer(
            Path::new("c.toml"),
            "# mine\nfanout = 8\nhost_key_checking = \"accept-new\"\n",
        )
        .unwrap();
        let f = l.fanout.unwrap();
        assert_eq!(f.value, 8);
        assert_eq!(f.source, Source::File("c.toml".into(), 2));
        assert_eq!(
            l.host_key_checking.unwrap().value,
            HostKeyChecking::AcceptNew
        );
        let e = file_layer(Path::new("c.toml"), "fanout = 8\noutput = \"fancy\"\n").unwrap_err();
        assert!(
            format!("{e:?}").contains("expected lines, group or json"),
            "{e:?}"
        );
        let e = file_layer(Path::new("c.toml"), "fanuot = 8\n").unwrap_err();
        assert!(format!("{e}").contains("fanuot"), "{e}");
    }

    #[test]
    fn max_handshakes_comes_from_the_file_or_the_environment_and_zero_is_refused() {
        let l = file_layer(Path::new("c.toml"), "max_handshakes = 32\n").unwrap();
        assert_eq!(l.max_handshakes.unwrap().value, 32);
        let e = file_layer(Path::new("c.toml"), "fanout = 8\nmax_handshakes = 0\n").unwrap_err();
        assert!(
            format!("{e}").contains("max_handshakes must be at least 1"),
            "{e}"
        );
        let l = env_layer(&vars(&[("SORTIE_MAX_HANDSHAKES", "16")])).unwrap();
        assert_eq!(l.max_handshakes.unwrap().value, 16);
        let e = env_layer(&vars(&[("SORTIE_MAX_HANDSHAKES", "0")])).unwrap_err();
        assert!(e.to_string().contains("SORTIE_MAX_HANDSHAKES"), "{e}");
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let e = env_layer(&vars(&[("SORTIE_CONNECT_TIMEOUT", "soon")])).unwrap_err();
        assert!(e.to_string().contains("SORTIE_CONNECT_TIMEOUT"), "{e}");
        let e = env_layer(&vars(&[("SORTIE_FANOUT", "0")])).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
    }
}
