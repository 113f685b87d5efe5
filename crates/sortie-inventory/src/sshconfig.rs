//! OpenSSH client configuration (`ssh_config`), resolved the way `ssh -G` does.
//!
//! Owns reading `~/.ssh/config` then `/etc/ssh/ssh_config` (or only the `-F` file), following
//! `Include`, and computing the settings sortie needs for one host. It does not know about
//! inventories or host expressions: callers pre-set values (command line, inventory) in
//! [`SshOptions`] exactly like `ssh -o` does, then [`SshConfig::apply`] fills what is still unset,
//! and [`SshOptions::finish`] applies OpenSSH's built-in defaults and expansions.
//!
//! Semantics follow OpenSSH 9.x (`man ssh_config`, `readconf.c`), checked against `ssh -G`:
//!
//! * keywords are case-insensitive; `Key value`, `Key=value`, `Key = value`; arguments may be
//!   quoted (`"..."`, `'...'`) with `\` escapes; `#` at the start of a word ends the line;
//! * the first value obtained wins, except `IdentityFile`, whose lines accumulate (duplicates
//!   dropped). `UserKnownHostsFile`/`GlobalKnownHostsFile` take several files on ONE line; the
//!   first line wins. `ConnectTimeout none` leaves the option unset, so a later line can set it;
//! * `Host` patterns use `*` and `?`, `!pattern` negates (a negated match deactivates the
//!   block), and are matched case-sensitively against the host as given;
//! * `Match` with every OpenSSH 9 criterion (all, canonical, final, exec, host, originalhost,
//!   user, localuser, localnetwork, tagged), `criterion value` or `criterion=value`, `!`
//!   negation and comma pattern lists. `Match host` tests the `HostName` known at that point
//!   (with `%h` expanded), lower-cased. `exec` runs `$SHELL -c CMD` only when the criteria before
//!   it held, once per host and pass. sortie does not canonicalise: as OpenSSH with
//!   `CanonicalizeHostname no`, a `Match final` asks for a second pass where `canonical`/`final`
//!   hold and `Host` lines match the host name; `CanonicalizeHostname yes|always` is refused;
//! * `Include` takes globs; relative paths are relative to `~/.ssh` in user files (including the
//!   `-F` file) and to the system config directory in the system file; an `Include` inside a
//!   `Host`/`Match` block only applies while that block is active; nesting is limited to 16;
//! * files included, and `~/.ssh/config`, must not be writable by others (OpenSSH refuses them);
//! * keywords sortie does not implement but that change what `ssh` would do (forwardings,
//!   RequestTTY, control sockets, algorithm lists, ... see `UNHONOURED`) give one
//!   [`ConfigWarning`] per applying line, collected for the caller ([`SshConfig::warnings`]);
//!   other unknown keywords are ignored (OpenSSH would refuse truly unknown ones, but many valid
//!   ones are irrelevant to sortie); values of the keywords below are validated even in inactive
//!   blocks, as OpenSSH does.
//!
//! Keywords used: HostName (`%h`, `%%`), User, Port, IdentityFile, CertificateFile,
//! IdentitiesOnly, ForwardAgent (`yes`/`no`), ProxyJump,
//! ProxyCommand, UserKnownHostsFile, GlobalKnownHostsFile, StrictHostKeyChecking,
//! ConnectTimeout, ServerAliveInterval, ServerAliveCountMax, HostKeyAlias, HashKnownHosts,
//! CanonicalizeHostname, Tag, Host, Match, Include.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sortie_knownhosts::pattern::glob_match;

use crate::env::{home_of, LocalEnv};
use crate::error::{InventoryError, Origin, ParseError};

/// Deepest `Include` nesting, as OpenSSH's `READCONF_MAX_DEPTH`.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// OpenSSH's default identity files, in the order `ssh -G` lists them.
pub const DEFAULT_IDENTITY_FILES: [&str; 7] = [
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
];

/// OpenSSH's default user known-hosts files.
pub const DEFAULT_USER_KNOWN_HOSTS: [&str; 2] = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];

/// OpenSSH's default global known-hosts files.
pub const DEFAULT_GLOBAL_KNOWN_HOSTS: [&str; 2] =
    ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// How unknown host keys are handled (`StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrictHostKeyChecking {
    /// `yes`/`true`: only keys already in known_hosts are accepted.
    Yes,
    /// `accept-new`: unknown hosts are recorded (trust on first use); changed keys refused.
    AcceptNew,
    /// `no`/`off`/`false`: unknown keys accepted and recorded; changed keys still refused by
    /// sortie.
    No,
    /// `ask` (OpenSSH's default): sortie cannot ask, so it treats this as [`Self::Yes`].
    Ask,
}

impl StrictHostKeyChecking {
    /// Parses an ssh_config value (case-insensitive), as OpenSSH accepts it.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "yes" | "true" => Some(Self::Yes),
            "no" | "false" | "off" => Some(Self::No),
            "ask" => Some(Self::Ask),
            "accept-new" => Some(Self::AcceptNew),
            _ => None,
        }
    }

    /// The spelling `ssh -G` prints.
    pub fn ssh_g(self) -> &'static str {
        match self {
            Self::Yes => "true",
            Self::No => "false",
            Self::Ask => "ask",
            Self::AcceptNew => "accept-new",
        }
    }
}

/// One ProxyJump hop: `[user@]host[:port]` (or `ssh://[user@]host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JumpHost {
    /// User for this hop, when written.
    pub user: Option<String>,
    /// Host of this hop (IPv6 without brackets). Resolve it through ssh_config like any host.
    pub host: String,
    /// Port of this hop, when written.
    pub port: Option<u16>,
}

impl std::fmt::Display for JumpHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Parses a ProxyJump value: `none` (gives an empty list) or comma-separated hops.
pub fn parse_proxy_jump(s: &str) -> Result<Vec<JumpHost>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    s.split(',').map(parse_jump_host).collect()
}

fn parse_jump_host(s: &str) -> Result<JumpHost, String> {
    let bad = || format!("invalid ProxyJump hop `{s}`: expected [user@]host[:port]");
    let body = match s.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("ssh://") => {
            let rest = &s[6..];
            rest.strip_suffix('/').unwrap_or(rest)
        }
        _ => s,
    };
    let (user, hp) = match body.rfind('@') {
        Some(0) => return Err(bad()),
        Some(i) => (Some(body[..i].to_string()), &body[i + 1..]),
        None => (None, body),
    };
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let close = rest.find(']').ok_or_else(bad)?;
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
        };
        (&rest[..close], port)
    } else {
        match hp.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(bad()),
        },
    };
    Ok(JumpHost {
        user,
        host: host.to_string(),
        port,
    })
}

/// A value together with where it was set (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it was written: `FILE:LINE:COL`, or an option name.
    pub origin: String,
}

impl<T> Sourced<T> {
    /// A value set from `origin`.
    pub fn new(value: T, origin: impl Into<String>) -> Self {
        Sourced {
            value,
            origin: origin.into(),
        }
    }
}

/// Options being collected for one host, before defaults. `None` = not set yet; the first
/// value set wins. Pre-set fields the way `ssh -o` would (command line, then inventory) before
/// calling [`SshConfig::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// `HostName`, unexpanded (`%h` allowed).
    pub hostname: Option<Sourced<String>>,
    /// `User`.
    pub user: Option<String>,
    /// `Port`.
    pub port: Option<u16>,
    /// `IdentityFile` entries in order, unexpanded; they accumulate.
    pub identity_files: Vec<Sourced<String>>,
    /// `IdentitiesOnly`.
    pub identities_only: Option<bool>,
    /// `CertificateFile` entries in order, unexpanded; they accumulate.
    pub certificate_files: Vec<Sourced<String>>,
    /// `ForwardAgent` (`yes`/`no`; a socket path or variable is warned about, not honoured).
    pub forward_agent: Option<bool>,
    /// `ProxyJump`; `Some(vec![])` is `none`.
    pub proxy_jump: Option<Vec<JumpHost>>,
    /// `ProxyCommand` as written (`none` included).
    pub proxy_command: Option<String>,
    /// `UserKnownHostsFile` list, unexpanded (`["none"]` for none).
    pub user_known_hosts_files: Option<Sourced<Vec<String>>>,
    /// `GlobalKnownHostsFile` list (`["none"]` for none).
    pub global_known_hosts_files: Option<Vec<String>>,
    /// `StrictHostKeyChecking`.
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// `ConnectTimeout` in seconds.
    pub connect_timeout: Option<u64>,
    /// `ConnectTimeout none` was given (it leaves [`Self::connect_timeout`] unset, so a later
    /// value may still set it, as in OpenSSH); when nothing does, there is no timeout at all,
    /// not sortie's default.
    pub connect_timeout_none: bool,
    /// `ServerAliveInterval` in seconds.
    pub server_alive_interval: Option<u64>,
    /// `ServerAliveCountMax`.
    pub server_alive_count_max: Option<u32>,
    /// `HostKeyAlias`.
    pub host_key_alias: Option<String>,
    /// `HashKnownHosts`.
    pub hash_known_hosts: Option<bool>,
    /// `CanonicalizeHostname`: `Some(None)` = no; `Some(Some(what))` = canonicalisation was
    /// asked for (`what` names the value and where), which [`SshOptions::finish`] refuses.
    pub canonicalize: Option<Option<String>>,
    /// `Tag`: the name `Match tagged` tests (OpenSSH's `-P`).
    pub tag: Option<String>,
}

/// The effective OpenSSH settings of one host, after defaults and expansions (what `ssh -G`
/// prints, with file names expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// Host name to connect to (`%h` expanded, lower-cased unless it is an IP address).
    pub hostname: String,
    /// Remote user (default: the local user).
    pub user: String,
    /// Port (default 22).
    pub port: u16,
    /// Identity files, `~`, `%`-tokens and `${VAR}` expanded; `none` entries dropped.
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly` (default false).
    pub identities_only: bool,
    /// Certificate files, expanded like identity files; `none` entries dropped.
    pub certificate_files: Vec<PathBuf>,
    /// `ForwardAgent yes` (default no): forward `$SSH_AUTH_SOCK` to the host.
    pub forward_agent: bool,
    /// Jump hops in order; empty = none.
    pub proxy_jump: Vec<JumpHost>,
    /// `ProxyCommand` when one applies (never `none`); sortie's transport must honour or refuse it.
    pub proxy_command: Option<String>,
    /// User known-hosts files, expanded; empty for `none`.
    pub user_known_hosts_files: Vec<PathBuf>,
    /// Global known-hosts files as written (OpenSSH does not expand them); empty for `none`.
    pub global_known_hosts_files: Vec<PathBuf>,
    /// `StrictHostKeyChecking` (default `ask`).
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// `ConnectTimeout`; `None` = not set (`ssh -G` prints `none`).
    pub connect_timeout: Option<Duration>,
    /// `ConnectTimeout none` was written and no value set: no timeout (not sortie's default).
    pub connect_timeout_none: bool,
    /// `ServerAliveInterval`; `None` = not set (`ssh -G` prints 0).
    pub server_alive_interval: Option<Duration>,
    /// `ServerAliveCountMax` (default 3).
    pub server_alive_count_max: u32,
    /// `HostKeyAlias`: the name to look up in known_hosts instead of the host name.
    pub host_key_alias: Option<String>,
    /// `HashKnownHosts` (default false).
    pub hash_known_hosts: bool,
}

#[derive(Debug)]
struct SourceFile {
    path: PathBuf,
    text: String,
    /// Set for a command-line `-o` value (the path is then unused).
    option: bool,
}

#[derive(Debug, Clone)]
struct Pos {
    file: Arc<SourceFile>,
    offset: usize,
    len: usize,
}

impl Pos {
    fn error(&self, message: impl Into<String>, help: Option<String>) -> ParseError {
        let origin = if self.file.option {
            Origin::Option("-o".into())
        } else {
            Origin::File(self.file.path.clone())
        };
        ParseError::new(
            origin,
            &self.file.text,
            self.offset,
            self.len,
            message,
            help,
        )
    }
    fn origin(&self) -> String {
        if self.file.option {
            return format!("-o {:?}", self.file.text);
        }
        let e = self.error("", None);
        format!("{}:{}:{}", self.file.path.display(), e.line, e.column)
    }
}

#[derive(Debug, Clone)]
enum Criterion {
    All,
    Canonical,
    Final,
    Exec(String),
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    LocalNetwork(Vec<(std::net::IpAddr, u8)>),
    Tagged(String),
}

#[derive(Debug, Clone)]
struct Crit {
    negate: bool,
    kind: Criterion,
    pos: Pos,
}

#[derive(Debug, Clone)]
enum Setting {
    Host(Vec<(bool, String)>),
    Match(Vec<Crit>),
    Include(Vec<Vec<Entry>>),
    HostName(String),
    User(String),
    Port(u16),
    IdentityFile(String),
    CertificateFile(String),
    ForwardAgent(bool),
    IdentitiesOnly(bool),
    ProxyJump(Vec<JumpHost>),
    ProxyCommand(String),
    UserKnownHosts(Vec<String>),
    GlobalKnownHosts(Vec<String>),
    Strict(StrictHostKeyChecking),
    ConnectTimeout(Option<u64>),
    ServerAliveInterval(Option<u64>),
    ServerAliveCountMax(u32),
    HostKeyAlias(String),
    HashKnownHosts(bool),
    Canonicalize(Option<String>),
    Tag(String),
    /// A keyword sortie does not implement; `warn` when the value written changes what `ssh`
    /// would do.
    Unhonoured {
        keyword: &'static str,
        warn: Option<String>,
        accumulates: bool,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    setting: Setting,
    pos: Pos,
}

/// A parsed ssh_config: one or more files with their includes, ready to be applied to hosts.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    /// `-o` values (no Host, Match or Include), applied before the files.
    command_line: Vec<Entry>,
    entries: Vec<Vec<Entry>>,
    execs: Arc<ExecCache>,
    warnings: Arc<std::sync::Mutex<Vec<ConfigWarning>>>,
}

/// A line of ssh_config that applies to a selected host but that sortie does not honour,
/// although it changes what `ssh` would do (a forwarding, a pseudo-terminal, a control master,
/// an algorithm list...). The caller shows it once per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// `FILE:LINE:COL` of the keyword.
    pub origin: String,
    /// The keyword, in ssh_config's spelling.
    pub keyword: &'static str,
    /// What sortie does instead.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Parses one ssh_config text. `Include` lines are checked but not followed (use
/// [`SshConfig::load`] for that), so this never touches the file system; errors name
/// `origin_path:LINE:COL`.
pub fn parse_str(text: &str, origin_path: &Path) -> Result<SshConfig, ParseError> {
    let file = Arc::new(SourceFile {
        path: origin_path.to_path_buf(),
        text: text.to_string(),
        option: false,
    });
    let entries = parse_file(&file, &mut |_, _| Ok(Vec::new())).map_err(|e| match e {
        LoadError::Parse(p) => *p,
        LoadError::Other(_) => unreachable_parse(),
    })?;
    Ok(SshConfig {
        entries: vec![entries],
        ..SshConfig::default()
    })
}

/// Parses `ssh -o` values (`Key=Value` or `Key Value`), one line each, as OpenSSH does:
/// `Host`, `Match` and `Include` are refused; errors name the option.
fn parse_command_line(options: &[String]) -> Result<Vec<Entry>, ParseError> {
    let mut out = Vec::new();
    for opt in options {
        let file = Arc::new(SourceFile {
            path: PathBuf::from("-o"),
            text: opt.clone(),
            option: true,
        });
        if opt.contains('\n') {
            return Err(Pos {
                file,
                offset: 0,
                len: opt.len(),
            }
            .error("an -o value is one line", None));
        }
        let mut refuse = |_: &str, pos: &Pos| -> Result<Vec<Vec<Entry>>, LoadError> {
            Err(pos
                .error(
                    "Include directive not supported as a command-line option",
                    None,
                )
                .into())
        };
        let entries = parse_file(&file, &mut refuse).map_err(|e| match e {
            LoadError::Parse(p) => *p,
            LoadError::Other(_) => unreachable_parse(),
        })?;
        if entries.is_empty() {
            return Err(Pos {
                file,
                offset: 0,
                len: opt.len(),
            }
            .error(
                format!("unknown or unsupported option `{opt}`"),
                Some("write -o Keyword=value with an ssh_config keyword sortie uses".into()),
            ));
        }
        for e in entries {
            let what = match e.setting {
                Setting::Host(_) => "Host",
                Setting::Match(_) => "Match",
                _ => {
                    out.push(e);
                    continue;
                }
            };
            return Err(e.pos.error(
                format!("{what} directive not supported as a command-line option"),
                None,
            ));
        }
    }
    Ok(out)
}

fn unreachable_parse() -> ParseError {
    ParseError::new(
        Origin::Other("ssh_config".into()),
        "",
        0,
        0,
        "internal error: include loader failed without file access",
        None,
    )
}

enum LoadError {
    Parse(Box<ParseError>),
    Other(InventoryError),
}

impl From<LoadError> for InventoryError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Parse(p) => InventoryError::Parse(p),
            LoadError::Other(o) => o,
        }
    }
}

impl From<ParseError> for LoadError {
    fn from(e: ParseError) -> Self {
        LoadError::Parse(Box::new(e))
    }
}

impl SshConfig {
    /// The same configuration, except that a `Match exec` line that would have to run its
    /// command is an error instead: for callers that resolve untrusted text (the fuzz harness),
    /// where running commands is not acceptable.
    pub fn without_match_exec(mut self) -> Self {
        self.execs = Arc::new(ExecCache {
            disabled: true,
            ..ExecCache::default()
        });
        self
    }

    /// A configuration with no files (like `ssh -F none`).
    pub fn empty() -> SshConfig {
        SshConfig::default()
    }

    /// Loads the files OpenSSH would read: only `explicit` when given (`-F`; `none` reads
    /// nothing), else `~/.ssh/config` (when it exists) then `env.system_ssh_config` (when it
    /// exists).
    pub fn load(explicit: Option<&Path>, env: &LocalEnv) -> Result<SshConfig, InventoryError> {
        let mut cfg = SshConfig::default();
        match explicit {
            Some(p) if p == Path::new("none") => {}
            Some(p) => {
                let p = expand_tilde(&p.to_string_lossy(), env);
                cfg.entries.push(load_file(&p, true, false, env, 0)?);
            }
            None => {
                let user = env.home.join(".ssh/config");
                if user.exists() {
                    cfg.entries.push(load_file(&user, true, true, env, 0)?);
                }
                if env.system_ssh_config.exists() {
                    cfg.entries
                        .push(load_file(&env.system_ssh_config, false, false, env, 0)?);
                }
            }
        }
        Ok(cfg)
    }

    /// Adds command-line `-o` values (as `ssh -o`): they are applied before every file, so
    /// they beat every file, and the first `-o` of a keyword wins. Errors name the option.
    pub fn with_command_line(mut self, options: &[String]) -> Result<SshConfig, ParseError> {
        if !options.is_empty() {
            self.command_line = parse_command_line(options)?;
        }
        Ok(self)
    }

    /// Applies only the command-line `-o` values to `opts` (what is still unset).
    pub fn apply_command_line(&self, opts: &mut SshOptions) {
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.command_line {
            if let Setting::Unhonoured {
                keyword,
                warn: Some(message),
                accumulates,
            } = &e.setting
            {
                if *accumulates || seen.insert(*keyword) {
                    push_warning(&self.warnings, keyword, message, &e.pos);
                }
            }
            apply_setting(&e.setting, &e.pos, opts);
        }
    }

    /// Unhonoured keywords the command line sets: for every host, the first value of those.
    fn command_line_keywords(&self) -> std::collections::BTreeSet<&'static str> {
        self.command_line
            .iter()
            .filter_map(|e| match &e.setting {
                Setting::Unhonoured { keyword, .. } => Some(*keyword),
                _ => None,
            })
            .collect()
    }

    /// Lines applied to a host so far (by [`SshConfig::apply`]) that sortie does not honour
    /// although they change what `ssh` would do: one per line, in the order met.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies the configuration for `host_arg` (the host as given, which `Host` patterns are
    /// matched against) to `opts`, setting only what is still unset.
    ///
    /// As OpenSSH with `CanonicalizeHostname no`: one pass over the files, then, when a
    /// `Match final` was met, a second (final) pass where `Host` lines match the host name
    /// found by the first pass and `Match canonical`/`Match final` hold.
    pub fn apply(
        &self,
        host_arg: &str,
        opts: &mut SshOptions,
        env: &LocalEnv,
    ) -> Result<(), InventoryError> {
        let mut pass = Pass {
            host: host_arg,
            host_arg,
            final_pass: false,
            want_final: false,
            env,
            execs: &self.execs,
            seen: self.command_line_keywords(),
            warnings: &self.warnings,
        };
        for file in &self.entries {
            let mut active = true;
            eval(file, &mut active, false, &mut pass, opts)?;
        }
        if !pass.want_final {
            return Ok(());
        }
        let mut host = match &opts.hostname {
            Some(h) => {
                expand_hostname(&h.value, host_arg).map_err(|m| InventoryError::Resolve {
                    host: host_arg.into(),
                    origin: h.origin.clone(),
                    message: m,
                    help: "HostName only knows %h and %%".into(),
                })?
            }
            None => host_arg.to_string(),
        };
        if !is_ip(&host) {
            host = host.to_ascii_lowercase();
        }
        let origin = opts
            .hostname
            .as_ref()
            .map_or_else(|| "host argument".to_string(), |h| h.origin.clone());
        opts.hostname = Some(Sourced::new(host.replace('%', "%%"), origin));
        let mut pass = Pass {
            host: &host,
            final_pass: true,
            ..pass
        };
        for file in &self.entries {
            let mut active = true;
            eval(file, &mut active, false, &mut pass, opts)?;
        }
        Ok(())
    }
}

fn load_file(
    path: &Path,
    user_conf: bool,
    check_perm: bool,
    env: &LocalEnv,
    depth: usize,
) -> Result<Vec<Entry>, InventoryError> {
    let io = |source| InventoryError::Io {
        path: path.to_path_buf(),
        source,
    };
    if check_perm {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(path).map_err(io)?;
        if (md.uid() != 0 && md.uid() != env.uid) || md.mode() & 0o022 != 0 {
            return Err(InventoryError::BadPermissions {
                path: path.to_path_buf(),
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let file = Arc::new(SourceFile {
        path: path.to_path_buf(),
        text,
        option: false,
    });
    let sys_dir = env
        .system_ssh_config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/etc/ssh"));
    let mut loader = |pattern: &str, pos: &Pos| -> Result<Vec<Vec<Entry>>, LoadError> {
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(pos
                .error(
                    format!("Include nested too deeply (more than {MAX_INCLUDE_DEPTH} levels)"),
                    Some("check for an Include cycle".into()),
                )
                .into());
        }
        let full = if pattern.starts_with('~') {
            expand_tilde(pattern, env)
        } else if pattern.starts_with('/') {
            PathBuf::from(pattern)
        } else if user_conf {
            env.home.join(".ssh").join(pattern)
        } else {
            sys_dir.join(pattern)
        };
        let paths = glob::glob(&full.to_string_lossy())
            .map_err(|e| LoadError::from(pos.error(format!("bad Include pattern: {e}"), None)))?;
        let mut out = Vec::new();
        for p in paths.flatten() {
            out.push(load_file(&p, user_conf, true, env, depth + 1).map_err(LoadError::Other)?);
        }
        Ok(out)
    };
    Ok(parse_file(&file, &mut loader)?)
}

type Loader<'a> = dyn FnMut(&str, &Pos) -> Result<Vec<Vec<Entry>>, LoadError> + 'a;

struct Arg {
    text: String,
    offset: usize,
    len: usize,
}

fn parse_file(file: &Arc<SourceFile>, loader: &mut Loader<'_>) -> Result<Vec<Entry>, LoadError> {
    let mut entries = Vec::new();
    let mut line_start = 0;
    let text = &file.text;
    for raw_line in text.split_inclusive('\n') {
        let base = line_start;
        line_start += raw_line.len();
        let line = raw_line.trim_end_matches([' ', '\t', '\r', '\n', '\x0c']);
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        let body = &line[lead..];
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let kw_len = body.find([' ', '\t', '=', '"']).unwrap_or(body.len());
        let kw_pos = Pos {
            file: file.clone(),
            offset: base + lead,
            len: kw_len.max(1),
        };
        if kw_len == 0 {
            return Err(kw_pos
                .error(
                    "expected a keyword",
                    Some("lines look like `Keyword value`".into()),
                )
                .into());
        }
        let keyword = body[..kw_len].to_ascii_lowercase();
        let mut rest_off = kw_len;
        let after = &body[kw_len..];
        let ws = after.len() - after.trim_start_matches([' ', '\t']).len();
        rest_off += ws;
        if body[rest_off..].starts_with('=') {
            rest_off += 1;
            let a = &body[rest_off..];
            rest_off += a.len() - a.trim_start_matches([' ', '\t']).len();
        }
        let rest = &body[rest_off..];
        if rest.is_empty() {
            return Err(kw_pos
                .error(
                    format!("no argument after keyword \"{keyword}\""),
                    Some("give the keyword a value".into()),
                )
                .into());
        }
        let rest_base = base + lead + rest_off;
        let args = split_args(rest, rest_base).map_err(|off| {
            Pos {
                file: file.clone(),
                offset: off,
                len: 1,
            }
            .error(
                "invalid quotes: no closing quote",
                Some("close the quote or escape it with \\".into()),
            )
        })?;
        let setting = parse_setting(&keyword, &args, rest, &kw_pos, file, loader)?;
        if let Some(setting) = setting {
            entries.push(Entry {
                setting,
                pos: kw_pos,
            });
        }
    }
    Ok(entries)
}

/// OpenSSH's `argv_split` with comment termination: whitespace-separated words, `"`/`'`
/// quoting, `\` escapes for quotes, backslash and space. Returns the offset of an unclosed quote.
fn split_args(s: &str, base: usize) -> Result<Vec<Arg>, usize> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            i += 1;
            continue;
        }
        if b[i] == b'#' {
            break;
        }
        let start = i;
        let mut quote: Option<(u8, usize)> = None;
        let mut word: Vec<u8> = Vec::new();
        while i < b.len() {
            let c = b[i];
            if c == b'\\' && i + 1 < b.len() {
                let n = b[i + 1];
                if n == b'\'' || n == b'"' || n == b'\\' || (quote.is_none() && n == b' ') {
                    word.push(n);
                    i += 2;
                    continue;
                }
                word.push(c);
                i += 1;
            } else if quote.is_none() && (c == b' ' || c == b'\t') {
                break;
            } else if quote.is_none() && (c == b'"' || c == b'\'') {
                quote = Some((c, i));
                i += 1;
            } else if quote.is_some_and(|(q, _)| q == c) {
                quote = None;
                i += 1;
            } else {
                word.push(c);
                i += 1;
            }
        }
        if let Some((_, at)) = quote {
            return Err(base + at);
        }
        out.push(Arg {
            text: String::from_utf8_lossy(&word).into_owned(),
            offset: base + start,
            len: i - start,
        });
    }
    Ok(out)
}

fn parse_setting(
    keyword: &str,
    args: &[Arg],
    rest: &str,
    kw_pos: &Pos,
    file: &Arc<SourceFile>,
    loader: &mut Loader<'_>,
) -> Result<Option<Setting>, LoadError> {
    let at = |a: &Arg| Pos {
        file: file.clone(),
        offset: a.offset,
        len: a.len.max(1),
    };
    let missing = || -> LoadError {
        kw_pos
            .error(
                format!("missing argument for \"{keyword}\""),
                Some("give the keyword a value".into()),
            )
            .into()
    };
    // Single-argument keywords: exactly one word, like OpenSSH's "extra arguments" check.
    let one = || -> Result<&Arg, LoadError> {
        match args {
            [] => Err(missing()),
            [a] => Ok(a),
            [_, extra, ..] => Err(at(extra)
                .error(
                    format!("keyword {keyword} extra arguments at end of line"),
                    Some("quote the value if it contains spaces".into()),
                )
                .into()),
        }
    };
    let flag = |a: &Arg| -> Result<bool, LoadError> {
        match a.text.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(at(a)
                .error(
                    format!("unsupported value \"{}\" for {keyword}", a.text),
                    Some("use yes or no".into()),
                )
                .into()),
        }
    };
    let time = |a: &Arg, allow_none: bool| -> Result<Option<u64>, LoadError> {
        if allow_none && a.text == "none" {
            return Ok(None);
        }
        parse_time(&a.text).map(Some).ok_or_else(|| {
            at(a)
                .error(
                    format!("invalid time value \"{}\" for {keyword}", a.text),
                    Some("use seconds or a time like 30s, 5m, 1h30m".into()),
                )
                .into()
        })
    };
    let list = |max: usize| -> Result<Vec<String>, LoadError> {
        let v: Vec<String> = args.iter().map(|a| a.text.clone()).collect();
        if v.is_empty() {
            return Err(missing());
        }
        for (i, a) in args.iter().enumerate() {
            if a.text.is_empty() {
                return Err(at(a)
                    .error(format!("empty argument for {keyword}"), None)
                    .into());
            }
            if a.text.eq_ignore_ascii_case("none") && (i > 0 || args.len() > 1) {
                return Err(at(a)
                    .error(
                        format!("keyword {keyword} \"none\" argument must appear alone"),
                        None,
                    )
                    .into());
            }
        }
        if v.len() > max {
            return Err(kw_pos
                .error(format!("too many {keyword} entries"), None)
                .into());
        }
        Ok(v)
    };
    let s = match keyword {
        "host" => {
            let mut pats = Vec::new();
            for a in args {
                if a.text.is_empty() || a.text == "!" {
                    return Err(at(a).error("empty host pattern", None).into());
                }
                match a.text.strip_prefix('!') {
                    Some(p) => pats.push((true, p.to_string())),
                    None => pats.push((false, a.text.clone())),
                }
            }
            if pats.is_empty() {
                return Err(missing());
            }
            Setting::Host(pats)
        }
        "match" => Setting::Match(parse_match(args, kw_pos, &at)?),
        "include" => {
            let mut files = Vec::new();
            for a in args {
                files.extend(loader(&a.text, &at(a))?);
            }
            if args.is_empty() {
                return Err(missing());
            }
            Setting::Include(files)
        }
        "hostname" => Setting::HostName(one()?.text.clone()),
        "user" => Setting::User(one()?.text.clone()),
        "hostkeyalias" => Setting::HostKeyAlias(one()?.text.clone()),
        "tag" => Setting::Tag(one()?.text.clone()),
        "port" => {
            let a = one()?;
            match a.text.parse::<u16>() {
                Ok(p) if p > 0 => Setting::Port(p),
                _ => {
                    return Err(at(a)
                        .error(
                            format!("Bad port '{}'", a.text),
                            Some("a port is a number from 1 to 65535".into()),
                        )
                        .into())
                }
            }
        }
        "identityfile" => Setting::IdentityFile(one()?.text.clone()),
        "certificatefile" => Setting::CertificateFile(one()?.text.clone()),
        "forwardagent" => match one()?.text.to_ascii_lowercase().as_str() {
            "yes" | "true" => Setting::ForwardAgent(true),
            "no" | "false" => Setting::ForwardAgent(false),
            // A socket path or an environment variable: warned about, not honoured.
            _ => match unhonoured(keyword, args) {
                Some(u) => u,
                None => return Ok(None),
            },
        },
        "identitiesonly" => Setting::IdentitiesOnly(flag(one()?)?),
        "hashknownhosts" => Setting::HashKnownHosts(flag(one()?)?),
        "proxyjump" => {
            let a = one()?;
            let hops = parse_proxy_jump(&a.text).map_err(|m| {
                LoadError::from(at(a).error(
                    format!("Invalid ProxyJump \"{}\": {m}", a.text),
                    Some("write hops as [user@]host[:port], comma-separated, or none".into()),
                ))
            })?;
            Setting::ProxyJump(hops)
        }
        "proxycommand" => Setting::ProxyCommand(rest.to_string()),
        "userknownhostsfile" => Setting::UserKnownHosts(list(16)?),
        "globalknownhostsfile" => Setting::GlobalKnownHosts(list(16)?),
        "stricthostkeychecking" => {
            let a = one()?;
            Setting::Strict(StrictHostKeyChecking::parse(&a.text).ok_or_else(|| {
                LoadError::from(at(a).error(
                    format!("unsupported StrictHostKeyChecking value \"{}\"", a.text),
                    Some("use yes, no, ask, accept-new or off".into()),
                ))
            })?)
        }
        "connecttimeout" => Setting::ConnectTimeout(time(one()?, true)?),
        "serveraliveinterval" => Setting::ServerAliveInterval(time(one()?, true)?),
        "serveralivecountmax" => {
            let a = one()?;
            match a.text.parse::<u32>() {
                Ok(n) if n <= i32::MAX as u32 => Setting::ServerAliveCountMax(n),
                _ => {
                    return Err(at(a)
                        .error(format!("integer value \"{}\" is invalid", a.text), None)
                        .into())
                }
            }
        }
        "canonicalizehostname" => {
            let a = one()?;
            match a.text.to_ascii_lowercase().as_str() {
                "no" | "false" | "none" => Setting::Canonicalize(None),
                "yes" | "true" | "always" => Setting::Canonicalize(Some(a.text.clone())),
                _ => {
                    return Err(at(a)
                        .error(
                            format!("unsupported CanonicalizeHostname value \"{}\"", a.text),
                            None,
                        )
                        .into())
                }
            }
        }
        _ => match unhonoured(keyword, args) {
            Some(u) => u,
            None => return Ok(None),
        },
    };
    Ok(Some(s))
}

/// Keywords sortie does not implement although they change what `ssh` would do, with the
/// values that change nothing for sortie (OpenSSH's default, or what sortie does anyway).
/// Listed in docs/inventory.md.
const UNHONOURED: &[(&str, &str, &[&str], &str)] = &[
    // (keyword, spelling, harmless values, what sortie does instead)
    (
        "requesttty",
        "RequestTTY",
        &["no", "auto", "false"],
        "sortie never allocates a pseudo-terminal",
    ),
    (
        "remotecommand",
        "RemoteCommand",
        &["none"],
        "sortie runs the command it is given, not RemoteCommand",
    ),
    (
        "localforward",
        "LocalForward",
        &[],
        "sortie opens no port forwarding",
    ),
    (
        "remoteforward",
        "RemoteForward",
        &[],
        "sortie opens no port forwarding",
    ),
    (
        "dynamicforward",
        "DynamicForward",
        &[],
        "sortie opens no port forwarding",
    ),
    (
        "controlmaster",
        "ControlMaster",
        &["no", "false"],
        "sortie makes its own connections and shares no control socket",
    ),
    (
        "controlpath",
        "ControlPath",
        &["none"],
        "sortie neither uses nor creates control sockets",
    ),
    (
        "controlpersist",
        "ControlPersist",
        &["no", "false"],
        "sortie keeps no master connection after the run",
    ),
    (
        "permitlocalcommand",
        "PermitLocalCommand",
        &["no", "false"],
        "sortie never runs LocalCommand",
    ),
    (
        "localcommand",
        "LocalCommand",
        &["none"],
        "sortie never runs LocalCommand",
    ),
    (
        "forwardx11",
        "ForwardX11",
        &["no", "false"],
        "sortie forwards no X11 connection",
    ),
    (
        "forwardx11trusted",
        "ForwardX11Trusted",
        &["no", "false"],
        "sortie forwards no X11 connection",
    ),
    (
        "forwardagent",
        "ForwardAgent",
        &["no", "false"],
        "sortie forwards only the agent of $SSH_AUTH_SOCK, with ForwardAgent yes or -A",
    ),
    (
        "tunnel",
        "Tunnel",
        &["no", "false"],
        "sortie opens no tun/tap tunnel",
    ),
    (
        "setenv",
        "SetEnv",
        &[],
        "sortie sends no environment variables",
    ),
    (
        "sendenv",
        "SendEnv",
        // Debian's and Ubuntu's /etc/ssh/ssh_config send the locale: a warning on every run of
        // every user there would be noise; the commands get the host's default locale.
        &["LANG LC_*", "LANG LC_* COLORTERM NO_COLOR"],
        "sortie sends no environment variables",
    ),
    (
        "identityagent",
        "IdentityAgent",
        &["SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"],
        "sortie uses the agent of $SSH_AUTH_SOCK",
    ),
    (
        "bindaddress",
        "BindAddress",
        &[],
        "sortie lets the system choose the local address",
    ),
    (
        "bindinterface",
        "BindInterface",
        &[],
        "sortie lets the system choose the local interface",
    ),
    (
        "addressfamily",
        "AddressFamily",
        &["any"],
        "sortie connects over any address family",
    ),
    (
        "ciphers",
        "Ciphers",
        &[],
        "sortie negotiates its own cipher list",
    ),
    ("macs", "MACs", &[], "sortie negotiates its own MAC list"),
    (
        "kexalgorithms",
        "KexAlgorithms",
        &[],
        "sortie negotiates its own key exchange list",
    ),
    (
        "hostkeyalgorithms",
        "HostKeyAlgorithms",
        &[],
        "sortie negotiates its own host key algorithm list",
    ),
    (
        "pubkeyacceptedalgorithms",
        "PubkeyAcceptedAlgorithms",
        &[],
        "sortie offers its own signature algorithms",
    ),
    (
        "casignaturealgorithms",
        "CASignatureAlgorithms",
        &[],
        "sortie applies its own CA signature algorithms",
    ),
    (
        "pubkeyauthentication",
        "PubkeyAuthentication",
        &["yes", "true", "unbound", "host-bound"],
        "sortie authenticates with public keys only",
    ),
    (
        "preferredauthentications",
        "PreferredAuthentications",
        &[],
        "sortie authenticates with public keys only",
    ),
    (
        "knownhostscommand",
        "KnownHostsCommand",
        &["none"],
        "sortie reads only the known_hosts files",
    ),
    (
        "revokedhostkeys",
        "RevokedHostKeys",
        &["none"],
        "sortie does not read a RevokedHostKeys file",
    ),
    (
        "verifyhostkeydns",
        "VerifyHostKeyDNS",
        &["no", "false"],
        "sortie does not look host keys up in DNS",
    ),
    (
        "sessiontype",
        "SessionType",
        &["default"],
        "sortie always runs a command",
    ),
    (
        "stdinnull",
        "StdinNull",
        &["no", "false"],
        "sortie decides the command's stdin itself",
    ),
    (
        "forkafterauthentication",
        "ForkAfterAuthentication",
        &["no", "false"],
        "sortie does not go to the background",
    ),
];

fn unhonoured(keyword: &str, args: &[Arg]) -> Option<Setting> {
    let (_, spelling, harmless, instead) = UNHONOURED.iter().find(|u| u.0 == keyword)?;
    let value: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
    let value = value.join(" ");
    let warn = (!harmless.iter().any(|h| h.eq_ignore_ascii_case(&value)))
        .then(|| format!("{spelling} {value} is not honoured: {instead}"));
    Some(Setting::Unhonoured {
        keyword: spelling,
        warn,
        accumulates: matches!(
            keyword,
            "localforward" | "remoteforward" | "dynamicforward" | "sendenv" | "setenv"
        ),
    })
}

/// Splits a Match attribute word written `criterion=value` (OpenSSH accepts both forms).
fn split_criterion(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (word, None),
    }
}

fn parse_match(
    args: &[Arg],
    kw_pos: &Pos,
    at: &dyn Fn(&Arg) -> Pos,
) -> Result<Vec<Crit>, LoadError> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut attributes = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (negate, word) = match a.text.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, a.text.as_str()),
        };
        let (name, inline) = split_criterion(word);
        let name_l = name.to_ascii_lowercase();
        if name_l == "all" && inline.is_none() {
            if attributes > 1 || i < args.len() {
                return Err(at(a)
                    .error(
                        format!(
                            "'{}' cannot be combined with other Match attributes",
                            a.text
                        ),
                        None,
                    )
                    .into());
            }
            out.push(Crit {
                negate,
                kind: Criterion::All,
                pos: at(a),
            });
            continue;
        }
        attributes += 1;
        if inline.is_none() && (name_l == "canonical" || name_l == "final") {
            let kind = if name_l == "final" {
                Criterion::Final
            } else {
                Criterion::Canonical
            };
            out.push(Crit {
                negate,
                kind,
                pos: at(a),
            });
            continue;
        }
        let value = criterion_value(name, inline, args, &mut i, &at(a))?;
        let kind = match name_l.as_str() {
            "host" => Criterion::Host(value),
            "originalhost" => Criterion::OriginalHost(value),
            "user" => Criterion::User(value),
            "localuser" => Criterion::LocalUser(value),
            "exec" => Criterion::Exec(value),
            "tagged" => Criterion::Tagged(value),
            "localnetwork" => Criterion::LocalNetwork(
                parse_cidr_list(&value).map_err(|m| LoadError::from(at(a).error(m, None)))?,
            ),
            _ => {
                return Err(at(a)
                    .error(
                        format!("unsupported Match attribute `{name}`"),
                        Some("OpenSSH knows all, host, originalhost, user, localuser, exec, canonical, final, localnetwork, tagged".into()),
                    )
                    .into())
            }
        };
        out.push(Crit {
            negate,
            kind,
            pos: at(a),
        });
    }
    if out.is_empty() {
        return Err(kw_pos
            .error("One or more attributes required for Match", None)
            .into());
    }
    Ok(out)
}

/// The value of Match criterion `name`: after its `=`, else the next word; only `tagged` may
/// be empty.
fn criterion_value(
    name: &str,
    inline: Option<&str>,
    args: &[Arg],
    i: &mut usize,
    pos: &Pos,
) -> Result<String, LoadError> {
    let tagged = name.eq_ignore_ascii_case("tagged");
    let value = match inline {
        Some(v) if !v.is_empty() || tagged => Some(v.to_string()),
        _ => match args.get(*i) {
            Some(v) if inline.is_none() || !v.text.is_empty() => {
                *i += 1;
                Some(v.text.clone())
            }
            _ => None,
        },
    };
    match value {
        Some(v) if !v.is_empty() || tagged => Ok(v),
        _ => Err(pos
            .error(format!("Missing Match criteria for {name}"), None)
            .into()),
    }
}

/// OpenSSH's `addr_match_cidr_list` syntax: comma-separated `addr[/len]`, no negation; a
/// network must have its host bits zero.
fn parse_cidr_list(list: &str) -> Result<Vec<(std::net::IpAddr, u8)>, String> {
    use std::net::IpAddr;
    let mut out = Vec::new();
    for entry in list.split(',') {
        if entry.is_empty() {
            return Err(format!("empty entry in localnetwork list \"{list}\""));
        }
        let (addr, len) = match entry.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (entry, None),
        };
        let invalid = || format!("Invalid network entry \"{entry}\" in Match localnetwork");
        let ip: IpAddr = addr.parse().map_err(|_| invalid())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l.parse::<u32>().map_err(|_| invalid())?,
        };
        let inconsistent = || format!("Inconsistent mask length for network \"{entry}\"");
        if len > max {
            return Err(inconsistent());
        }
        let len = len as u8;
        if ip_bits(ip) & !prefix_mask(ip, len) != 0 {
            return Err(inconsistent());
        }
        out.push((ip, len));
    }
    Ok(out)
}

fn ip_bits(ip: std::net::IpAddr) -> u128 {
    match ip {
        std::net::IpAddr::V4(a) => u32::from(a) as u128,
        std::net::IpAddr::V6(a) => u128::from(a),
    }
}

fn prefix_mask(ip: std::net::IpAddr, len: u8) -> u128 {
    let width = if ip.is_ipv4() { 32 } else { 128 };
    if len == 0 {
        return 0;
    }
    let ones = u128::MAX << (128 - u32::from(len));
    ones >> (128 - width)
}

fn cidr_contains(net: &(std::net::IpAddr, u8), ip: std::net::IpAddr) -> bool {
    net.0.is_ipv4() == ip.is_ipv4()
        && ip_bits(ip) & prefix_mask(ip, net.1) == ip_bits(net.0) & prefix_mask(ip, net.1)
}

/// Addresses of the local interfaces that are up (what `Match localnetwork` tests).
fn local_addresses() -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below with freeifaddrs; we only read it.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
    }
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_UP as u32 == 0 {
            continue;
        }
        // SAFETY: ifa_addr is non-null and its family says which sockaddr it is.
        unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))));
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                }
                _ => {}
            }
        }
    }
    // SAFETY: ifap came from a successful getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    out
}

/// OpenSSH `convtime`: `90`, `1m30s`, `2h`, units s m h d w (either case).
fn parse_time(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' | 'S' => 1,
            'm' | 'M' => 60,
            'h' | 'H' => 3600,
            'd' | 'D' => 86400,
            'w' | 'W' => 604800,
            _ => return None,
        };
        if num.is_empty() {
            return None;
        }
        total = total.checked_add(num.parse::<u64>().ok()?.checked_mul(mult)?)?;
        num.clear();
    }
    if !num.is_empty() {
        total = total.checked_add(num.parse().ok()?)?;
    }
    (total <= i32::MAX as u64).then_some(total)
}

/// What one evaluation pass over the files knows about the host.
struct Pass<'a> {
    /// What `Host` lines match: the host as given, or in the final pass the host name.
    host: &'a str,
    /// The host as given (`Match originalhost`, `%n`).
    host_arg: &'a str,
    /// The second pass OpenSSH makes after canonicalisation or for `Match final`.
    final_pass: bool,
    /// Set when a `Match final` (not negated) is met: a final pass is wanted.
    want_final: bool,
    env: &'a LocalEnv,
    execs: &'a ExecCache,
    /// Unhonoured keywords already given a value for this host (the first value wins).
    seen: std::collections::BTreeSet<&'static str>,
    warnings: &'a std::sync::Mutex<Vec<ConfigWarning>>,
}

fn eval(
    entries: &[Entry],
    active: &mut bool,
    never_match: bool,
    p: &mut Pass<'_>,
    o: &mut SshOptions,
) -> Result<(), InventoryError> {
    for e in entries {
        match &e.setting {
            Setting::Host(pats) => {
                *active = !never_match && host_matches(p.host, pats);
            }
            Setting::Match(crits) => {
                let r = eval_match(crits, p, o)?;
                *active = !never_match && r;
            }
            Setting::Include(files) => {
                let outer = *active;
                for f in files {
                    eval(f, active, never_match || !outer, p, o)?;
                    *active = outer;
                }
            }
            _ if !*active => {}
            Setting::Unhonoured {
                keyword,
                warn,
                accumulates,
            } => {
                let first = *accumulates || p.seen.insert(keyword);
                if let (true, Some(message)) = (first, warn) {
                    p.warn(keyword, message, &e.pos);
                }
            }
            s => apply_setting(s, &e.pos, o),
        }
    }
    Ok(())
}

impl Pass<'_> {
    fn warn(&self, keyword: &'static str, message: &str, pos: &Pos) {
        push_warning(self.warnings, keyword, message, pos);
    }
}

fn push_warning(
    warnings: &std::sync::Mutex<Vec<ConfigWarning>>,
    keyword: &'static str,
    message: &str,
    pos: &Pos,
) {
    let origin = pos.origin();
    let mut w = warnings.lock().unwrap_or_else(|e| e.into_inner());
    if !w.iter().any(|x| x.origin == origin) {
        w.push(ConfigWarning {
            origin,
            keyword,
            message: message.to_string(),
        });
    }
}

/// The host `Match host` and `%h` in `Match exec` see: in the first pass the HostName known
/// so far with `%h` expanded (not lower-cased), in the final pass the final host name.
fn match_host(p: &Pass<'_>, o: &SshOptions) -> Result<String, InventoryError> {
    match &o.hostname {
        Some(h) if p.final_pass => Ok(unescape_percent(&h.value)),
        Some(h) => expand_hostname(&h.value, p.host_arg).map_err(|m| InventoryError::Resolve {
            host: p.host_arg.into(),
            origin: h.origin.clone(),
            message: m,
            help: "HostName only knows %h and %%".into(),
        }),
        None => Ok(p.host_arg.to_string()),
    }
}

/// Evaluates one Match line as OpenSSH's `match_cfg_line`: every criterion must hold; `exec`
/// runs only when every criterion before it held.
fn eval_match(crits: &[Crit], p: &mut Pass<'_>, o: &SshOptions) -> Result<bool, InventoryError> {
    let host = match_host(p, o)?;
    let user = o.user.as_deref().unwrap_or(&p.env.user);
    let mut result = true;
    for c in crits {
        let r = match &c.kind {
            Criterion::All => {
                if result {
                    result = !c.negate;
                }
                continue;
            }
            Criterion::Canonical => p.final_pass,
            Criterion::Final => {
                p.want_final |= !c.negate;
                p.final_pass
            }
            Criterion::Host(list) => match_pattern_list(&host.to_ascii_lowercase(), list, true),
            Criterion::OriginalHost(list) => {
                match_pattern_list(&p.host_arg.to_ascii_lowercase(), list, true)
            }
            Criterion::User(list) => match_pattern_list(user, list, false),
            Criterion::LocalUser(list) => match_pattern_list(&p.env.user, list, false),
            Criterion::LocalNetwork(nets) => local_addresses()
                .into_iter()
                .any(|ip| nets.iter().any(|n| cidr_contains(n, ip))),
            Criterion::Tagged(list) => match o.tag.as_deref().unwrap_or("") {
                "" => list.is_empty(),
                tag => match_pattern_list(tag, list, false),
            },
            Criterion::Exec(cmd) => {
                if !result {
                    continue;
                }
                let cmd = expand_exec(cmd, &host, p, o).map_err(|m| InventoryError::Resolve {
                    host: p.host_arg.into(),
                    origin: c.pos.origin(),
                    message: m,
                    help: "Match exec knows %C %L %d %h %k %l %n %p %r %u %i %%".into(),
                })?;
                p.execs.run(p.host_arg, p.final_pass, &cmd, &c.pos)?
            }
        };
        if r == c.negate {
            result = false;
        }
    }
    Ok(result)
}

/// Expands the tokens of a `Match exec` command as OpenSSH 9.2 does.
fn expand_exec(cmd: &str, host: &str, p: &Pass<'_>, o: &SshOptions) -> Result<String, String> {
    let env = p.env;
    let port = o.port.unwrap_or(22).to_string();
    let user = o.user.clone().unwrap_or_else(|| env.user.clone());
    let short_local = env.hostname.split('.').next().unwrap_or("").to_string();
    percent_expand(cmd, &|c| {
        Some(match c {
            'C' => connection_hash(&env.hostname, host, &port, &user),
            'L' => short_local.clone(),
            'd' => env.home.to_string_lossy().into_owned(),
            'h' => host.to_string(),
            'k' => o.host_key_alias.clone().unwrap_or_else(|| host.to_string()),
            'l' => env.hostname.clone(),
            'n' => p.host_arg.to_string(),
            'p' => port.clone(),
            'r' => user.clone(),
            'u' => env.user.clone(),
            'i' => env.uid.to_string(),
            _ => return None,
        })
    })
}

/// OpenSSH 9.2's `%C`: the SHA-1 of local host name, host name, port and remote user, in hex.
pub fn connection_hash(local: &str, host: &str, port: &str, user: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    for part in [local, host, port, user] {
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Results of `Match exec` commands, so each runs once per host (and pass), however often
/// sortie resolves that host.
#[derive(Debug, Default)]
struct ExecCache {
    results: std::sync::Mutex<std::collections::HashMap<(String, bool, String), bool>>,
    /// Set by [`SshConfig::without_match_exec`]: a `Match exec` that must run is an error.
    disabled: bool,
}

impl ExecCache {
    /// Runs `cmd` as OpenSSH's `execute_in_shell`: `$SHELL -c CMD` (or `/bin/sh`), stdin and
    /// stdout on /dev/null, stderr inherited; true when it exits 0; an error when it cannot be
    /// started or dies from a signal.
    fn run(
        &self,
        host_arg: &str,
        final_pass: bool,
        cmd: &str,
        pos: &Pos,
    ) -> Result<bool, InventoryError> {
        use std::process::{Command, Stdio};
        let key = (host_arg.to_string(), final_pass, cmd.to_string());
        let mut cache = self.results.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache.get(&key) {
            return Ok(*r);
        }
        let fail = |message: String| InventoryError::Resolve {
            host: host_arg.into(),
            origin: pos.origin(),
            message,
            help: "fix the Match exec command or its shell ($SHELL)".into(),
        };
        if self.disabled {
            return Err(fail(format!(
                "Match exec: commands are not run here ('{cmd}')"
            )));
        }
        let shell = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        let status = Command::new(&shell)
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| {
                fail(format!(
                    "Match exec: cannot run shell \"{}\": {e}",
                    Path::new(&shell).display()
                ))
            })?;
        let Some(code) = status.code() else {
            return Err(fail(format!(
                "Match exec: command '{cmd}' exited abnormally ({status})"
            )));
        };
        cache.insert(key, code == 0);
        Ok(code == 0)
    }
}

fn apply_setting(s: &Setting, pos: &Pos, o: &mut SshOptions) {
    fn set<T: Clone>(slot: &mut Option<T>, v: &T) {
        if slot.is_none() {
            *slot = Some(v.clone());
        }
    }
    match s {
        Setting::HostName(v) => {
            if o.hostname.is_none() {
                o.hostname = Some(Sourced::new(v.clone(), pos.origin()));
            }
        }
        Setting::User(v) => set(&mut o.user, v),
        Setting::Port(v) => set(&mut o.port, v),
        Setting::IdentityFile(v) => {
            if !o.identity_files.iter().any(|f| &f.value == v) {
                o.identity_files.push(Sourced::new(v.clone(), pos.origin()));
            }
        }
        Setting::CertificateFile(v) => {
            if !o.certificate_files.iter().any(|f| &f.value == v) {
                o.certificate_files
                    .push(Sourced::new(v.clone(), pos.origin()));
            }
        }
        Setting::ForwardAgent(v) => set(&mut o.forward_agent, v),
        Setting::IdentitiesOnly(v) => set(&mut o.identities_only, v),
        Setting::ProxyJump(hops) => {
            if o.proxy_command.is_none() && o.proxy_jump.is_none() {
                o.proxy_jump = Some(hops.clone());
            }
        }
        Setting::ProxyCommand(c) => {
            if o.proxy_jump.is_none() {
                set(&mut o.proxy_command, c);
            }
        }
        Setting::UserKnownHosts(v) => {
            if o.user_known_hosts_files.is_none() {
                o.user_known_hosts_files = Some(Sourced::new(v.clone(), pos.origin()));
            }
        }
        Setting::GlobalKnownHosts(v) => set(&mut o.global_known_hosts_files, v),
        Setting::Strict(v) => set(&mut o.strict_host_key_checking, v),
        Setting::ConnectTimeout(v) => {
            // `none` means unset, so a later line may still set it (as in OpenSSH).
            if o.connect_timeout.is_none() {
                o.connect_timeout = *v;
                o.connect_timeout_none |= v.is_none();
            }
        }
        Setting::ServerAliveInterval(v) => {
            if o.server_alive_interval.is_none() {
                o.server_alive_interval = *v;
            }
        }
        Setting::ServerAliveCountMax(v) => set(&mut o.server_alive_count_max, v),
        Setting::HostKeyAlias(v) => set(&mut o.host_key_alias, v),
        Setting::HashKnownHosts(v) => set(&mut o.hash_known_hosts, v),
        Setting::Tag(v) => set(&mut o.tag, v),
        Setting::Canonicalize(v) => {
            if o.canonicalize.is_none() {
                o.canonicalize = Some(v.as_ref().map(|t| format!("{t} ({})", pos.origin())));
            }
        }
        Setting::Host(_) | Setting::Match(_) | Setting::Include(_) | Setting::Unhonoured { .. } => {
        }
    }
}

fn host_matches(host: &str, pats: &[(bool, String)]) -> bool {
    let mut matched = false;
    for (neg, p) in pats {
        if glob_match(host.as_bytes(), p.as_bytes()) {
            if *neg {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// OpenSSH `match_pattern_list` (the one matcher, shared with known_hosts): comma-separated
/// patterns, `!` negates, a negated match wins; `lower` lower-cases the patterns (for host
/// names, whose value the caller lower-cases), as OpenSSH's `match_hostname`.
fn match_pattern_list(s: &str, list: &str, lower: bool) -> bool {
    use sortie_knownhosts::pattern::{self, ListMatch};
    let list = if lower {
        std::borrow::Cow::Owned(list.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(list)
    };
    pattern::match_pattern_list(s, &list) == ListMatch::Positive
}

/// Undoes the `%%` escaping of a host name stored for the final pass.
fn unescape_percent(v: &str) -> String {
    v.replace("%%", "%")
}

/// Expands `%h` and `%%` in a HostName.
fn expand_hostname(v: &str, host_arg: &str) -> Result<String, String> {
    percent_expand(v, &|c| match c {
        'h' => Some(host_arg.to_string()),
        _ => None,
    })
}

fn percent_expand(s: &str, token: &dyn Fn(char) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('%') => out.push('%'),
            Some(t) => match token(t) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("unknown or unsupported %-token `%{t}` in `{s}`")),
            },
            None => {
                return Err(format!(
                    "`%` at the end of `{s}`; write %% for a percent sign"
                ))
            }
        }
    }
    Ok(out)
}

fn dollar_expand(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in `{s}`"))?;
        let name = &after[..end];
        let val = std::env::var(name)
            .map_err(|_| format!("environment variable ${{{name}}} in `{s}` has no value"))?;
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `~`, `~/x` and `~user/x` expansion with the password-database home.
pub fn expand_tilde(s: &str, env: &LocalEnv) -> PathBuf {
    let Some(rest) = s.strip_prefix('~') else {
        return PathBuf::from(s);
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let home = if user.is_empty() {
        Some(env.home.clone())
    } else {
        home_of(user)
    };
    match home {
        Some(h) if tail.is_empty() => h,
        Some(h) => h.join(tail),
        None => PathBuf::from(s),
    }
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

impl SshOptions {
    /// Applies OpenSSH's built-in defaults and expansions (as `ssh` does after reading its
    /// configuration) for `host_arg`.
    pub fn finish(self, host_arg: &str, env: &LocalEnv) -> Result<Effective, InventoryError> {
        let fail = |origin: &str, message: String, help: &str| InventoryError::Resolve {
            host: host_arg.to_string(),
            origin: origin.to_string(),
            message,
            help: help.to_string(),
        };
        if let Some(Some(v)) = &self.canonicalize {
            return Err(fail(
                v,
                format!("CanonicalizeHostname {v} is not supported by sortie"),
                "set CanonicalizeHostname no for the hosts sortie uses",
            ));
        }
        let mut hostname = match &self.hostname {
            Some(h) => expand_hostname(&h.value, host_arg)
                .map_err(|m| fail(&h.origin, m, "HostName only knows %h and %%"))?,
            None => host_arg.to_string(),
        };
        if !is_ip(&hostname) {
            hostname = hostname.to_ascii_lowercase();
        }
        let user = self.user.clone().unwrap_or_else(|| env.user.clone());
        let port = self.port.unwrap_or(22);
        let short_local = env.hostname.split('.').next().unwrap_or("").to_string();
        let alias = self
            .host_key_alias
            .clone()
            .unwrap_or_else(|| host_arg.to_string());
        let conn_hash = connection_hash(&env.hostname, &hostname, &port.to_string(), &user);
        let token = |c: char| -> Option<String> {
            Some(match c {
                'C' => conn_hash.clone(),
                'd' => env.home.to_string_lossy().into_owned(),
                'u' => env.user.clone(),
                'h' => hostname.clone(),
                'r' => user.clone(),
                'n' => host_arg.to_string(),
                'p' => port.to_string(),
                'l' => env.hostname.clone(),
                'L' => short_local.clone(),
                'i' => env.uid.to_string(),
                'k' => alias.clone(),
                _ => return None,
            })
        };
        let expand_file = |raw: &str, origin: &str| -> Result<PathBuf, InventoryError> {
            let t = expand_tilde(raw, env);
            let p = percent_expand(&t.to_string_lossy(), &token).map_err(|m| {
                fail(
                    origin,
                    m,
                    "supported tokens are %C %d %u %h %r %n %p %l %L %i %k %%",
                )
            })?;
            let p =
                dollar_expand(&p).map_err(|m| fail(origin, m, "set the variable or remove it"))?;
            Ok(PathBuf::from(p))
        };
        let mut identity_files = Vec::new();
        if self.identity_files.is_empty() {
            for f in DEFAULT_IDENTITY_FILES {
                identity_files.push(expand_file(f, "built-in default")?);
            }
        } else {
            for f in &self.identity_files {
                if f.value.eq_ignore_ascii_case("none") {
                    continue;
                }
                let p = expand_file(&f.value, &f.origin)?;
                if !identity_files.contains(&p) {
                    identity_files.push(p);
                }
            }
        }
        let mut certificate_files = Vec::new();
        for f in &self.certificate_files {
            if f.value.eq_ignore_ascii_case("none") {
                continue;
            }
            let p = expand_file(&f.value, &f.origin)?;
            if !certificate_files.contains(&p) {
                certificate_files.push(p);
            }
        }
        let user_known_hosts_files = match &self.user_known_hosts_files {
            None => DEFAULT_USER_KNOWN_HOSTS
                .iter()
                .map(|f| expand_file(f, "built-in default"))
                .collect::<Result<_, _>>()?,
            Some(v) if v.value.len() == 1 && v.value[0].eq_ignore_ascii_case("none") => Vec::new(),
            Some(v) => v
                .value
                .iter()
                .map(|f| expand_file(f, &v.origin))
                .collect::<Result<_, _>>()?,
        };
        let global_known_hosts_files = match &self.global_known_hosts_files {
            None => DEFAULT_GLOBAL_KNOWN_HOSTS
                .iter()
                .map(PathBuf::from)
                .collect(),
            Some(v) if v.len() == 1 && v[0].eq_ignore_ascii_case("none") => Vec::new(),
            Some(v) => v.iter().map(PathBuf::from).collect(),
        };
        let proxy_command = self
            .proxy_command
            .clone()
            .filter(|c| !c.eq_ignore_ascii_case("none"));
        Ok(Effective {
            hostname,
            user: user.clone(),
            port,
            identity_files,
            identities_only: self.identities_only.unwrap_or(false),
            certificate_files,
            forward_agent: self.forward_agent.unwrap_or(false),
            proxy_jump: self.proxy_jump.clone().unwrap_or_default(),
            proxy_command,
            user_known_hosts_files,
            global_known_hosts_files,
            strict_host_key_checking: self
                .strict_host_key_checking
                .unwrap_or(StrictHostKeyChecking::Ask),
            connect_timeout: self.connect_timeout.map(Duration::from_secs),
            connect_timeout_none: self.connect_timeout.is_none() && self.connect_timeout_none,
            server_alive_interval: self.server_alive_interval.map(Duration::from_secs),
            server_alive_count_max: self.server_alive_count_max.unwrap_or(3),
            host_key_alias: self.host_key_alias.clone(),
            hash_known_hosts: self.hash_known_hosts.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> LocalEnv {
        LocalEnv {
            user: "me".into(),
            home: "/home/me".into(),
            uid: 1000,
            hostname: "box.example".into(),
            cwd: "/".into(),
            system_ssh_config: "/nonexistent/ssh_config".into(),
        }
    }

    fn resolve(text: &str, host: &str) -> Result<Effective, InventoryError> {
        let cfg = parse_str(text, Path::new("/cfg")).map_err(InventoryError::from)?;
        let mut o = SshOptions::default();
        cfg.apply(host, &mut o, &env())?;
        o.finish(host, &env())
    }

    #[test]
    fn glob_and_lists() {
        assert!(glob_match(b"web01", b"web*"));
        assert!(glob_match(b"web01", b"w?b0*1"));
        assert!(!glob_match(b"web01", b"web"));
        assert!(glob_match(b"", b"*"));
        assert!(glob_match(b"abcabd", b"*abd"));
        assert!(match_pattern_list("a.example", "*.example,!b.*", true));
        assert!(!match_pattern_list("b.example", "*.example,!b.*", true));
    }

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let e = resolve(
            "Host web*\n  User=alice\n  IdentityFile ~/k1\nHost *\n  User bob\n  IdentityFile \"/k 2\"\n  Port 2222\n",
            "web1",
        )
        .unwrap();
        assert_eq!(e.user, "alice");
        assert_eq!(e.port, 2222);
        assert_eq!(
            e.identity_files,
            [PathBuf::from("/home/me/k1"), PathBuf::from("/k 2")]
        );
    }

    #[test]
    fn certificate_files_accumulate_and_forward_agent_first_value_wins() {
        let e = resolve(
            "Host web*\n  CertificateFile ~/c1\n  ForwardAgent yes\nHost *\n  \
             CertificateFile /c/%h\n  CertificateFile none\n  ForwardAgent no\n",
            "web1",
        )
        .unwrap();
        assert_eq!(
            e.certificate_files,
            [PathBuf::from("/home/me/c1"), PathBuf::from("/c/web1")]
        );
        assert!(e.forward_agent);
        let e = resolve("Host *\n  ForwardAgent no\n", "x").unwrap();
        assert!(!e.forward_agent && e.certificate_files.is_empty());
        // A socket path is not honoured: a warning, and no forwarding.
        let cfg = parse_str("ForwardAgent /tmp/agent.sock\n", Path::new("/cfg")).unwrap();
        let mut o = SshOptions::default();
        cfg.apply("x", &mut o, &env()).unwrap();
        assert_eq!(o.forward_agent, None);
        assert!(cfg.warnings().iter().any(|w| w
            .to_string()
            .contains("ForwardAgent /tmp/agent.sock is not honoured")));
    }

    #[test]
    fn tokens_in_identity_files_and_hostname() {
        let e = resolve(
            "Host Web1\n  HostName %h.EXAMPLE\n  IdentityFile %d/%u/%h/%r/%n/%p/%%\n",
            "Web1",
        )
        .unwrap();
        assert_eq!(e.hostname, "web1.example");
        assert_eq!(
            e.identity_files,
            [PathBuf::from("/home/me/me/web1.example/me/Web1/22/%")]
        );
        let err = resolve("IdentityFile %Z\n", "x").unwrap_err().to_string();
        assert!(err.contains("%Z") && err.contains("/cfg:1:1"), "{err}");
        // %C: sha1 of local host name, host name, port, user (OpenSSH 9.2).
        let e = resolve("Host b\n  Port 2200\n  IdentityFile /k/%C\n", "b").unwrap();
        let c = connection_hash("box.example", "b", "2200", "me");
        assert_eq!(e.identity_files, [PathBuf::from(format!("/k/{c}"))]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse_str("Host a\n  Port abc\n", Path::new("/cfg")).unwrap_err();
        assert_eq!((e.line, e.column), (2, 8));
        assert_eq!(e.to_string(), "/cfg:2:8: Bad port 'abc'");
        let e = parse_str("User \"bob\n", Path::new("/cfg")).unwrap_err();
        assert_eq!((e.line, e.column), (1, 6));
        let e = parse_str("Port 22 23\n", Path::new("/cfg")).unwrap_err();
        assert_eq!((e.line, e.column), (1, 9));
        let e = parse_str("Port\n", Path::new("/cfg")).unwrap_err();
        assert!(e.message.contains("no argument"));
        let e = parse_str("Match foo bar\n", Path::new("/cfg")).unwrap_err();
        assert!(e.message.contains("unsupported Match attribute"));
        let e = parse_str("Match host\n", Path::new("/cfg")).unwrap_err();
        assert!(e.message.contains("Missing Match criteria"));
        let e = parse_str("Match all host x\n", Path::new("/cfg")).unwrap_err();
        assert!(e.message.contains("cannot be combined"));
        assert!(parse_str("Frobnicate yes\n", Path::new("/cfg")).is_ok());
    }

    #[test]
    fn match_exec_runs_only_when_it_can_decide() {
        // A prior false criterion skips the command (it would fail the run if it ran).
        let e = resolve("Match host other exec \"exit 1\"\n  User x\n", "h").unwrap();
        assert_eq!(e.user, "me");
        let e = resolve("Match exec \"true\"\n  User x\n", "h").unwrap();
        assert_eq!(e.user, "x");
        let e = resolve("Match !exec \"false\" host=h\n  User y\n", "h").unwrap();
        assert_eq!(e.user, "y");
        let err = resolve("CanonicalizeHostname yes\n", "h").unwrap_err();
        assert!(err.to_string().contains("CanonicalizeHostname"), "{err}");
    }

    #[test]
    fn only_a_positive_final_asks_for_a_final_pass() {
        // OpenSSH >= 10.1 (readconf.c: "Match final" without negation); 9.2 also re-parsed
        // for `!final`.
        let text = "Host a\n  HostName B\nHost b\n  Port 2\nMatch !final\n  User u\n";
        let e = resolve(text, "a").unwrap();
        assert_eq!((e.user.as_str(), e.port), ("u", 22));
        let text = "Host a\n  HostName B\nHost b\n  Port 2\nMatch final\n  User f\n";
        let e = resolve(text, "a").unwrap();
        assert_eq!(
            (e.user.as_str(), e.port, e.hostname.as_str()),
            ("f", 2, "b")
        );
    }

    #[test]
    fn connection_hash_is_openssh_9_2_percent_c() {
        // printf 'vmb.example2200viaeq' | sha1sum
        assert_eq!(
            connection_hash("vm", "b.example", "2200", "viaeq"),
            "54239a7a4462fffce8703848093f049a88c33e49"
        );
    }

    #[test]
    fn proxy_jump_forms() {
        assert_eq!(parse_proxy_jump("none").unwrap(), []);
        let hops = parse_proxy_jump("ssh://u@j1:99,u2@[::1]:22,j3").unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0].to_string(), "u@j1:99");
        assert_eq!(hops[1].host, "::1");
        assert_eq!(hops[1].to_string(), "u2@[::1]:22");
        assert!(parse_proxy_jump("a,,b").is_err());
        assert!(parse_proxy_jump("a:0").is_err());
    }

    #[test]
    fn time_values() {
        assert_eq!(parse_time("90"), Some(90));
        assert_eq!(parse_time("1m30s"), Some(90));
        assert_eq!(parse_time("1h"), Some(3600));
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("m"), None);
    }
}
