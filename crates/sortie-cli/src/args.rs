//! Command-line arguments (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Start work on a fleet of Linux hosts over SSH, concurrently, from one machine.
#[derive(Parser, Debug)]
#[command(
    name = "sortie",
    version,
    about = "Start work on a fleet of Linux hosts over SSH, concurrently, from one machine",
    long_about = "Start work on a fleet of Linux hosts over SSH, concurrently, from one machine: \
                  one command on every host (exec), a list of jobs spread over hosts (run), \
                  files to and from hosts (put, get), and long-lived fleets of processes from a \
                  plan (launch). Host keys are verified, every line is labelled with its host, \
                  nothing is left running after Ctrl-C, SIGTERM or SIGHUP, and a summary says \
                  what happened on each host. Nothing is installed on the hosts.",
    after_help = "Examples:\n  \
        sortie exec -H 'web[01-20]' uptime\n  \
        sortie run -H 'web[1-4]' --slots 4 -- './job.sh {}' ::: a b c\n  \
        sortie launch plan.toml --dry-run\n\n\
        Exit codes: 0 ok, 1 a command failed, 2 bad input, 3 a host unreachable, 4 a launch \
        threshold failed, 130 interrupted.",
    propagate_version = true
)]
pub struct Cli {
    /// More diagnostics on stderr (-v, -vv, -vvv). SORTIE_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// When to colour output: auto (terminals, unless NO_COLOR is set), always (e.g. for
    /// `less -R`), never.
    #[arg(
        long = "color",
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        global = true
    )]
    pub color: Color,
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum Color {
    /// Colour on terminals, unless NO_COLOR is set to a non-empty value.
    #[default]
    Auto,
    /// Always colour, even into a pipe or a file.
    Always,
    /// Never colour.
    Never,
}

/// Option groups in `--help`.
const SELECTION: &str = "Selection";
const CONNECTION: &str = "Connection";
const OUTPUT: &str = "Output";
const BEHAVIOUR: &str = "Behaviour";

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one command on every selected host.
    #[command(after_help = "Examples:\n  \
        sortie exec -H 'web[01-20]' -x web07 uptime\n  \
        sortie exec -g masters --group -- 'systemctl is-active kvs-master'\n  \
        sortie exec -H ^hosts.txt --timeout 30s --json ./check.sh > events.jsonl\n\n\
        The command starts at the first word that is not an option (or after `--`); \
        everything from there on is the command, options included.")]
    Exec(ExecArgs),
    /// List the selected hosts, or print one host's effective settings (--resolved).
    #[command(after_help = "Examples:\n  \
        sortie hosts -H 'rack[1-2]-n[1-3]'\n  \
        sortie hosts -g masters\n  \
        sortie hosts --resolved web03        # compare with: ssh -G web03")]
    Hosts(HostsArgs),
    /// Spread a list of jobs over hosts, N slots per host (like GNU parallel -S).
    #[command(after_help = "Examples:\n  \
        sortie run -H 'web[1-4]' -j 4 -k gzip -9 ::: *.log      # GNU parallel's syntax\n  \
        sortie run -H 'web[1-4]' --slots 4 -- 'echo job {}' ::: a b c d\n  \
        sortie run -g viewers --slots 4 --csv channels.csv --joblog jobs.tsv -- './viewer {channel}'\n  \
        sortie run -H web1,web2 --range 1..100 --retries 3 -- './step.sh {}'\n\n\
        GNU parallel's options and replacement strings, and what sortie refuses: docs/parallel.md")]
    Run(Box<RunArgs>),
    /// Run a plan's fleet of long-lived processes: ramp-up, readiness, hold, clean stop, report.
    #[command(after_help = "Examples:\n  \
        sortie launch examples/local/plan.toml\n  \
        sortie launch plan.toml --dry-run\n  \
        sortie launch plan.toml --duration 30m --set roles.viewer.count=2\n\n\
        Ctrl-C, SIGTERM or SIGHUP stop every process with its role's stop sequence and write the \
        report; a second one kills at once.")]
    Launch(LaunchArgs),
    /// Print a launch's summary again and rewrite its report.json, from RUN_DIR/events.jsonl.
    #[command(after_help = "Examples:\n  \
        sortie report runs/local-demo-20260501-120000.123-3f9a0c\n\n\
        A run whose controller died (its events.jsonl ends early) is reported as far as it \
        went, and the summary says it did not finish.")]
    Report(ReportArgs),
    /// Take over a launch's fleet again (after --detach, or a controller that died): follow,
    /// hold, stop, report.
    #[command(after_help = "Examples:\n  \
        sortie launch plan.toml --duration 1h --detach\n  \
        sortie attach runs/kvs-20260501-120000.123-3f9a0c\n\n\
        Needs only the run directory: it records the plan, the hosts and the connection \
        settings. Ctrl-C then stops the fleet as during a launch.")]
    Attach(RunDirArgs),
    /// Print where a launch's processes are now, as their hosts see them.
    #[command(after_help = "Examples:\n  \
        sortie status runs/kvs-20260501-120000.123-3f9a0c")]
    Status(RunDirArgs),
    /// Stop a launch's fleet now (dependents first), collect and write the report.
    #[command(after_help = "Examples:\n  \
        sortie stop runs/kvs-20260501-120000.123-3f9a0c")]
    Stop(RunDirArgs),
    /// Copy local files and directories to every selected host.
    #[command(after_help = "Examples:\n  \
        sortie put -g all -r build/ /opt/kvs/\n  \
        sortie put -H 'cam[1-8]' --verify firmware.bin '/tmp/{host}.bin'")]
    Put(PutArgs),
    /// Copy files from every selected host into LOCAL_DIR/<host>/.
    #[command(after_help = "Examples:\n  \
        sortie get -g all '/opt/kvs/logs/*.log' ./logs\n  \
        sortie get -H 'web[1-3]' -r /var/log/app ./collected")]
    Get(GetArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    #[command(after_help = "Examples:\n  \
        sortie completions bash > ~/.local/share/bash-completion/completions/sortie\n  \
        sortie completions zsh > \"${fpath[1]}/_sortie\"\n  \
        sortie completions fish > ~/.config/fish/completions/sortie.fish")]
    Completions(CompletionsArgs),
    /// Print sortie's man page (roff) on stdout.
    #[command(after_help = "Examples:\n  \
        sortie man | man -l -\n  \
        sortie man > ~/.local/share/man/man1/sortie.1")]
    Man,
    /// Show the defaults from the config file and SORTIE_* variables, and where each comes from.
    #[command(after_help = "The config file is $SORTIE_CONFIG, else \
        $XDG_CONFIG_HOME/sortie/config.toml, else ~/.config/sortie/config.toml:\n\n  \
        fanout = 32\n  max_handshakes = 16\n  connect_timeout = \"5s\"\n  \
        host_key_checking = \"accept-new\"\n  \
        output = \"group\"          # exec: lines, group or json\n  \
        inventory = \"~/fleet.toml\"\n\n\
        Environment: SORTIE_FANOUT, SORTIE_MAX_HANDSHAKES, SORTIE_CONNECT_TIMEOUT, \
        SORTIE_HOST_KEY_CHECKING, SORTIE_OUTPUT, SORTIE_INVENTORY.\n\
        Precedence: command line > environment > inventory > ssh_config > config file > built-in.")]
    Config,
}

/// `sortie completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Host key policy on the command line.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum HostKeyChecking {
    /// Refuse unknown and changed host keys (default).
    Yes,
    /// Record unknown hosts' keys, refuse changed ones.
    AcceptNew,
    /// Accept any host key (insecure).
    No,
}

/// Which hosts, and how to reach them. Shared by every subcommand.
#[derive(Args, Debug, Clone, Default)]
pub struct Selection {
    /// Hosts: comma-separated `[user@]host[:port]`, ranges `web[01-20]`, `^FILE` (repeatable).
    #[arg(short = 'H', long = "hosts", value_name = "HOSTS", help_heading = SELECTION)]
    pub hosts: Vec<String>,
    /// Hosts to leave out, same syntax as -H (repeatable).
    #[arg(short = 'x', long = "exclude", value_name = "HOSTS", help_heading = SELECTION)]
    pub exclude: Vec<String>,
    /// Inventory group(s) to select (repeatable, or comma-separated).
    #[arg(
        short = 'g',
        long = "hostgroup",
        value_name = "GROUP",
        value_delimiter = ',', help_heading = SELECTION)]
    pub groups: Vec<String>,
    /// Inventory file [default: sortie.toml when it exists].
    #[arg(short = 'i', long = "inventory", value_name = "FILE", help_heading = SELECTION)]
    pub inventory: Option<PathBuf>,
    /// ssh_config file instead of ~/.ssh/config and /etc/ssh/ssh_config.
    #[arg(short = 'F', value_name = "FILE", help_heading = CONNECTION)]
    pub ssh_config: Option<PathBuf>,
    /// Remote user for every host.
    #[arg(short = 'l', long = "user", value_name = "USER", help_heading = CONNECTION)]
    pub user: Option<String>,
    /// Port for every host.
    #[arg(short = 'p', long = "port", value_name = "PORT", help_heading = CONNECTION)]
    pub port: Option<u16>,
    /// Identity file (repeatable); tried before those of the configuration.
    #[arg(long = "identity", value_name = "FILE", help_heading = CONNECTION)]
    pub identity: Vec<PathBuf>,
    /// known_hosts file(s) to use instead of the configured ones (repeatable).
    #[arg(long = "known-hosts", value_name = "FILE", help_heading = CONNECTION)]
    pub known_hosts: Vec<PathBuf>,
    /// Host key policy [default: yes, or StrictHostKeyChecking from ssh_config].
    #[arg(long = "host-key-checking", value_enum, value_name = "POLICY", help_heading = CONNECTION)]
    pub host_key_checking: Option<HostKeyChecking>,
    /// Connect timeout covering TCP, banner, key exchange and auth [default: 10s].
    #[arg(long = "connect-timeout", value_name = "DURATION", value_parser = parse_duration, help_heading = CONNECTION)]
    pub connect_timeout: Option<std::time::Duration>,
    /// An ssh_config option for this run, as `ssh -o` (repeatable): beats every ssh_config
    /// file, the inventory and `user@host:port`; the first -o of a keyword wins; -l, -p and
    /// the other options above beat it.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE", help_heading = CONNECTION)]
    pub ssh_options: Vec<String>,
    /// The config file's connection settings, which apply under ssh_config (set by
    /// [`crate::config`], not an option).
    #[arg(skip)]
    pub defaults: sortie_inventory::Defaults,
}

/// `sortie exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Forward the local agent ($SSH_AUTH_SOCK) to the commands, as `ssh -A` (beats
    /// `ForwardAgent no` in ssh_config). Only for hosts you trust: their root can use your keys.
    #[arg(short = 'A', long = "forward-agent", help_heading = CONNECTION)]
    pub forward_agent: bool,
    /// Hosts in flight at once.
    #[arg(short = 'f', long = "fanout", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub fanout: u32,
    /// Connections in TCP connect, key exchange and authentication at once, whatever the
    /// fan-out, so a large fan-out does not overflow a server's or a bastion's listener
    /// [default: 32].
    #[arg(long = "max-handshakes", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub max_handshakes: Option<u32>,
    /// Time limit per command (e.g. 30s, 5m); then the remote process group is ended.
    #[arg(short = 't', long = "timeout", value_name = "DURATION", value_parser = parse_duration, help_heading = BEHAVIOUR)]
    pub timeout: Option<std::time::Duration>,
    /// Grace between TERM and KILL when a command is ended.
    #[arg(long = "kill-grace", value_name = "DURATION", value_parser = parse_duration, default_value = "5s", help_heading = BEHAVIOUR)]
    pub kill_grace: std::time::Duration,
    /// Buffer per host and print identical outputs once under a folded host range.
    #[arg(long = "group", conflicts_with_all = ["out_dir", "json"], help_heading = OUTPUT)]
    pub group: bool,
    /// Write DIR/<host>.out and DIR/<host>.err instead of printing output.
    #[arg(long = "out-dir", value_name = "DIR", conflicts_with = "json", help_heading = OUTPUT)]
    pub out_dir: Option<PathBuf>,
    /// One JSON object per event on stdout (JSON Lines; see docs/json-events.md).
    #[arg(long = "json", help_heading = OUTPUT)]
    pub json: bool,
    /// Environment variable for the command, K=V (repeatable; values never logged).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env, help_heading = BEHAVIOUR)]
    pub env: Vec<(String, String)>,
    /// Do not give stdin to the commands (they read /dev/null). Without it, a stdin that is not
    /// a terminal is read (up to 64 MiB) and every host's command gets the same bytes.
    #[arg(long = "no-stdin", help_heading = BEHAVIOUR)]
    pub no_stdin: bool,
    /// The command: from the first word that is not an option (or after `--`) to the end,
    /// options included, as pdsh, clush and pssh take it.
    #[arg(required = true, trailing_var_arg = true, num_args = 1.., value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// How jobs are spread over hosts.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Spread {
    /// The host with the smallest share of its slots in use.
    LeastLoaded,
    /// The next host in turn.
    RoundRobin,
}

/// `sortie run`. Letters GNU parallel gives another meaning (`-x`, `-i`, `-l`, `-p`, `-t`) are
/// not sortie's short options here: the parallel spelling is refused with a hint
/// (docs/parallel.md).
#[derive(Args, Debug)]
#[command(
    mut_arg("exclude", |a| a.short(None)),
    mut_arg("inventory", |a| a.short(None)),
    mut_arg("user", |a| a.short(None)),
    mut_arg("port", |a| a.short(None))
)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Forward the local agent ($SSH_AUTH_SOCK) to the commands, as `ssh -A` (beats
    /// `ForwardAgent no` in ssh_config). Only for hosts you trust: their root can use your keys.
    #[arg(short = 'A', long = "forward-agent", help_heading = CONNECTION)]
    pub forward_agent: bool,
    /// One job per line of FILE (`-` = stdin), a trailing `\r` removed. Sources combine as a
    /// cartesian product, in the order given.
    #[arg(long = "args", value_name = "FILE", help_heading = BEHAVIOUR)]
    pub args: Vec<PathBuf>,
    /// GNU parallel's -a: one job per line of FILE (`-` = stdin), bytes kept (repeatable).
    #[arg(short = 'a', long = "arg-file", value_name = "FILE", help_heading = BEHAVIOUR)]
    pub arg_file: Vec<PathBuf>,
    /// Items of `:::` values, `::::`/`-a` files and standard input end with DELIM instead of a
    /// newline (GNU parallel's -d: `\n`, `\t`, `\r`, `\0` and octal `\NNN` escapes).
    #[arg(short = 'd', long = "delimiter", value_name = "DELIM", help_heading = BEHAVIOUR)]
    pub delimiter: Option<String>,
    /// Items end with NUL instead of a newline (GNU parallel's -0, same as -d '\0').
    #[arg(short = '0', long = "null", conflicts_with = "delimiter", help_heading = BEHAVIOUR)]
    pub null: bool,
    /// An item equal to EOF-STR ends its source, unread from there (GNU parallel's -E).
    #[arg(short = 'E', long = "eof", value_name = "EOF-STR", help_heading = BEHAVIOUR)]
    pub eof: Option<String>,
    /// Separator of the value groups instead of `:::` (and SEP+ instead of `:::+`).
    #[arg(long = "arg-sep", value_name = "SEP", help_heading = BEHAVIOUR)]
    pub arg_sep: Option<String>,
    /// Separator of the file groups instead of `::::` (and SEP+ instead of `::::+`).
    #[arg(long = "arg-file-sep", value_name = "SEP", help_heading = BEHAVIOUR)]
    pub arg_file_sep: Option<String>,
    /// Link the sources (GNU parallel's --link): job N takes row N of each, shorter ones
    /// starting over, instead of their cartesian product.
    #[arg(long = "link", visible_alias = "xapply", help_heading = BEHAVIOUR)]
    pub link: bool,
    /// One job per row of a CSV file (first line is the header: columns as {name}).
    #[arg(long = "csv", value_name = "FILE", help_heading = BEHAVIOUR)]
    pub csv: Vec<PathBuf>,
    /// One job per integer of A..B (inclusive; zero padding kept).
    #[arg(long = "range", value_name = "A..B", help_heading = BEHAVIOUR)]
    pub range: Vec<String>,
    /// Jobs at once per host (GNU parallel's -j/--jobs) [default: 1].
    #[arg(long = "slots", short = 'j', visible_alias = "jobs", value_name = "N",
          value_parser = parse_slots, help_heading = BEHAVIOUR)]
    pub slots: Option<u32>,
    /// Jobs in flight at once overall, over all hosts.
    #[arg(long = "max-in-flight", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..), help_heading = BEHAVIOUR)]
    pub jobs: Option<u64>,
    /// Job starts per second/minute, globally (e.g. 5/s, 100/m).
    #[arg(long = "rate", value_name = "R", value_parser = parse_rate, help_heading = BEHAVIOUR)]
    pub rate: Option<sortie_plan::Rate>,
    /// Minimum time between two job starts, globally.
    #[arg(long = "delay", value_name = "DURATION", value_parser = parse_duration, help_heading = BEHAVIOUR)]
    pub delay: Option<std::time::Duration>,
    /// How hosts are chosen for the next job.
    #[arg(long = "spread", value_enum, default_value = "least-loaded", help_heading = BEHAVIOUR)]
    pub spread: Spread,
    /// Connection set-ups in flight at once.
    #[arg(short = 'f', long = "fanout", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub fanout: u32,
    /// Connections in TCP connect, key exchange and authentication at once, whatever the
    /// fan-out, so a large fan-out does not overflow a server's or a bastion's listener
    /// [default: 32].
    #[arg(long = "max-handshakes", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub max_handshakes: Option<u32>,
    /// Tries of a job in all, as GNU parallel counts them (0 and 1: no rerun); reruns go to
    /// another host when there is one, and the last try's output is shown.
    #[arg(long = "retries", default_value_t = 0, value_name = "N", help_heading = BEHAVIOUR)]
    pub retries: u32,
    /// Stop early: `now` or `soon`, with `,fail=N` or `,fail=N%` (like GNU parallel).
    #[arg(long = "halt", value_name = "WHEN,fail=N", help_heading = BEHAVIOUR)]
    pub halt: Option<String>,
    /// Time limit per job; then its remote process group is ended.
    #[arg(long = "timeout", value_name = "DURATION", value_parser = parse_duration, help_heading = BEHAVIOUR)]
    pub timeout: Option<std::time::Duration>,
    /// Grace between TERM and KILL when a job is ended.
    #[arg(long = "kill-grace", value_name = "DURATION", value_parser = parse_duration, default_value = "5s", help_heading = BEHAVIOUR)]
    pub kill_grace: std::time::Duration,
    /// Environment variable for every job, K=V (repeatable; values never logged).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env, help_heading = BEHAVIOUR)]
    pub env: Vec<(String, String)>,
    /// Environment variables from a file of K=V lines (`#` comments; values never logged).
    #[arg(long = "env-file", value_name = "FILE", help_heading = BEHAVIOUR)]
    pub env_file: Vec<PathBuf>,
    /// Job log: one TSV row per finished job, like GNU parallel's --joblog (`+FILE` appends).
    #[arg(long = "joblog", value_name = "FILE", help_heading = OUTPUT)]
    pub joblog: Option<PathBuf>,
    /// Skip the jobs already in the job log.
    #[arg(long = "resume", conflicts_with = "resume_failed", requires = "joblog", help_heading = BEHAVIOUR)]
    pub resume: bool,
    /// Skip the jobs that succeeded in the job log; rerun failed and missing ones.
    #[arg(long = "resume-failed", requires = "joblog", help_heading = BEHAVIOUR)]
    pub resume_failed: bool,
    /// One directory per job, DIR/<seq>/ with stdout, stderr and exit (not GNU parallel's
    /// --results layout, hence the name).
    #[arg(long = "results-dir", value_name = "DIR", help_heading = OUTPUT)]
    pub results: Option<PathBuf>,
    /// Live lines prefixed `host/seq | ` instead of each job's output printed whole.
    #[arg(long = "line-buffer", conflicts_with = "json", help_heading = OUTPUT)]
    pub line_buffer: bool,
    /// One JSON object per event on stdout (JSON Lines).
    #[arg(long = "json", help_heading = OUTPUT)]
    pub json: bool,
    /// Print each job's output in the order of the jobs, not as they finish (GNU parallel's -k).
    #[arg(short = 'k', long = "keep-order", conflicts_with = "line_buffer", help_heading = OUTPUT)]
    pub keep_order: bool,
    /// Output as GNU parallel prints it: each job's bytes as they came, stdout to stdout and
    /// stderr to stderr, no `host/seq |` prefix, no summary.
    #[arg(long = "plain", conflicts_with_all = ["json", "line_buffer"], help_heading = OUTPUT)]
    pub plain: bool,
    /// Plain output with each line prefixed by the job's values and a tab (GNU parallel's --tag).
    #[arg(long = "tag", conflicts_with_all = ["json", "line_buffer"], help_heading = OUTPUT)]
    pub tag: bool,
    /// Plain output with each line prefixed by STR and a tab; STR takes {}, {1}, {.}, {#}, ...
    #[arg(long = "tagstring", value_name = "STR", conflicts_with_all = ["json", "line_buffer"], help_heading = OUTPUT)]
    pub tagstring: Option<String>,
    /// Split each input line (and ::: value) into columns {1}, {2}... on SEP, a literal string
    /// or `\t` (GNU parallel's --colsep; regular expressions are refused).
    #[arg(short = 'C', long = "colsep", value_name = "SEP", help_heading = BEHAVIOUR)]
    pub colsep: Option<String>,
    /// `--header :`: the first line of each source names its columns ({name}), as in GNU parallel.
    #[arg(long = "header", value_name = ":", help_heading = BEHAVIOUR)]
    pub header: Option<String>,
    /// Each job takes the next N values of the (single) source as {1}..{N} (GNU parallel's -N).
    #[arg(short = 'N', long = "max-replace-args", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = BEHAVIOUR)]
    pub group: Option<u32>,
    /// Each job takes the next N values of the (single) source, the last job what is left;
    /// `{}` is all of them, `{1}`..`{N}` one each (GNU parallel's -n/--max-args).
    #[arg(short = 'n', long = "max-args", value_name = "N", conflicts_with = "group",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = BEHAVIOUR)]
    pub max_args: Option<u32>,
    /// With -n: the same as -n alone (GNU parallel's -m); without -n it is refused.
    #[arg(short = 'm', help_heading = BEHAVIOUR)]
    pub m: bool,
    #[command(flatten)]
    pub parallel_only: ParallelOnly,
    /// The command, then its sources: `COMMAND ::: a b`, `:::: FILE`, `:::+` / `::::+` (linked);
    /// `--` before the command is optional. With no command, each job's values are the command.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub template: Vec<String>,
}

/// GNU parallel options whose letters mean something else in sortie, or that sortie does not
/// have: accepted by the parser only to be refused with a hint, never to do something else.
#[derive(Args, Debug, Default)]
pub struct ParallelOnly {
    #[arg(short = 'x', hide = true)]
    pub x: bool,
    #[arg(short = 'X', hide = true)]
    pub xargs: bool,
    #[arg(long = "xargs", hide = true)]
    pub long_xargs: bool,
    #[arg(short = 'i', hide = true, num_args = 0..=1, default_missing_value = "")]
    pub i: Option<String>,
    #[arg(short = 'l', hide = true, num_args = 0..=1, default_missing_value = "")]
    pub l: Option<String>,
    #[arg(short = 'p', hide = true)]
    pub p: bool,
    #[arg(short = 't', hide = true)]
    pub t: bool,
    #[arg(short = 'q', long = "quote", hide = true)]
    pub q: bool,
    #[arg(short = 'I', hide = true)]
    pub big_i: Option<String>,
    #[arg(short = 'S', long = "sshlogin", hide = true)]
    pub sshlogin: Option<String>,
    #[arg(short = 'u', long = "ungroup", hide = true)]
    pub u: bool,
    #[arg(long = "pipe", hide = true)]
    pub pipe: bool,
    #[arg(long = "results", alias = "res", hide = true)]
    pub gnu_results: Option<String>,
}

/// `-j N` / `--slots N`: a whole number of jobs per host. GNU parallel's forms relative to the
/// host's CPUs (`0`, `+N`, `-N`, `N%`) are refused: sortie does not read remote CPU counts.
fn parse_slots(s: &str) -> Result<u32, String> {
    let relative = "GNU parallel's forms relative to the CPU count (0, +N, -N, N%) are not supported: give a number of jobs per host, e.g. -j 4";
    if s.starts_with(['+', '-']) || s.ends_with('%') || s == "0" {
        return Err(relative.into());
    }
    s.parse::<u32>()
        .map_err(|_| format!("expected a whole number of jobs per host, got {s:?}"))
}

/// `sortie hosts`.
#[derive(Args, Debug)]
pub struct HostsArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Print the effective connection settings of HOST as `key value` lines, like `ssh -G`.
    #[arg(long = "resolved", value_name = "HOST")]
    pub resolved: Option<String>,
    /// Print the selection as one folded host expression (`rack[1-2]-n[1-3]`), like
    /// ClusterShell's `nodeset -f`.
    #[arg(long = "fold", conflicts_with = "resolved")]
    pub fold: bool,
}

/// How files travel, on the command line.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum TransferMethod {
    /// SFTP when the server offers it, else commands over an exec channel.
    #[default]
    Auto,
    /// SFTP only.
    Sftp,
    /// Commands over an exec channel (`cat`, `stat`, `mv`) only.
    Exec,
}

/// `sortie put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub common: TransferCommon,
    /// Skip files whose SHA-256 (computed on the host) matches, instead of size and mtime.
    #[arg(long = "checksum", help_heading = BEHAVIOUR)]
    pub checksum: bool,
    /// Check each written file's SHA-256 on the host before it replaces the real name.
    #[arg(long = "verify", help_heading = BEHAVIOUR)]
    pub verify: bool,
    /// LOCAL... REMOTE: local files (directories with -r), then the remote file or directory;
    /// REMOTE may use {host}, {tag:NAME} and a leading ~/ (the login directory).
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<String>,
}

/// Options `put` and `get` share.
#[derive(Args, Debug)]
pub struct TransferCommon {
    /// Copy directories recursively.
    #[arg(short = 'r', long = "recursive", help_heading = BEHAVIOUR)]
    pub recursive: bool,
    /// Transfer method.
    #[arg(long = "method", value_enum, default_value_t = TransferMethod::Auto, help_heading = BEHAVIOUR)]
    pub method: TransferMethod,
    /// Hosts in flight at once.
    #[arg(short = 'f', long = "fanout", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub fanout: u32,
    /// Connections in TCP connect, key exchange and authentication at once, whatever the
    /// fan-out, so a large fan-out does not overflow a server's or a bastion's listener
    /// [default: 32].
    #[arg(long = "max-handshakes", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub max_handshakes: Option<u32>,
    /// One JSON object per event on stdout (JSON Lines).
    #[arg(long = "json", help_heading = OUTPUT)]
    pub json: bool,
}

/// `sortie get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub common: TransferCommon,
    /// REMOTE... LOCAL_DIR: remote paths or globs ({host}, {tag:NAME} and a leading ~/
    /// allowed), then the local directory that receives one subdirectory per host.
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<String>,
}

/// `sortie launch`.
#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// The plan file (see docs/plan.md).
    #[arg(value_name = "PLAN.toml")]
    pub plan: PathBuf,
    /// Print the placement and start schedule; contact no host.
    #[arg(long = "dry-run", help_heading = BEHAVIOUR)]
    pub dry_run: bool,
    /// Hold time once every process is ready (overrides run.duration).
    #[arg(long = "duration", value_name = "DURATION", value_parser = parse_duration_text, help_heading = BEHAVIOUR)]
    pub duration: Option<String>,
    /// Override a plan value, KEY=VALUE (repeatable), e.g. --set roles.viewer.count=2.
    #[arg(long = "set", value_name = "KEY=VALUE", help_heading = BEHAVIOUR)]
    pub set: Vec<String>,
    /// Run directory for logs and report.json [default: the plan's run.run_dir].
    #[arg(long = "run-dir", value_name = "DIR", help_heading = BEHAVIOUR)]
    pub run_dir: Option<PathBuf>,
    /// One JSON object per event on stdout (JSON Lines).
    #[arg(long = "json", help_heading = OUTPUT)]
    pub json: bool,
    /// Time between resource samples of each host, 0 for none (overrides run.sample_interval).
    #[arg(long = "sample-interval", value_name = "DURATION", value_parser = parse_duration_text, help_heading = BEHAVIOUR)]
    pub sample_interval: Option<String>,
    /// Serve the live dashboard and /metrics (Prometheus) at ADDR:PORT, e.g. 127.0.0.1:8089.
    /// An address other than loopback needs --web-public and then requires the token printed
    /// at start.
    #[arg(long = "web", value_name = "ADDR:PORT", help_heading = OUTPUT)]
    pub web: Option<std::net::SocketAddr>,
    /// Allow --web on an address other than loopback (anyone who can reach it and holds the
    /// printed token sees the run).
    #[arg(long = "web-public", requires = "web", help_heading = OUTPUT)]
    pub web_public: bool,
    /// Connections being opened at once.
    #[arg(short = 'f', long = "fanout", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub fanout: u32,
    /// Connections in TCP connect, key exchange and authentication at once, whatever the
    /// fan-out, so a large fan-out does not overflow a server's or a bastion's listener
    /// [default: 32].
    #[arg(long = "max-handshakes", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = CONNECTION)]
    pub max_handshakes: Option<u32>,
    /// ssh_config file instead of ~/.ssh/config and /etc/ssh/ssh_config.
    #[arg(short = 'F', value_name = "FILE", help_heading = CONNECTION)]
    pub ssh_config: Option<PathBuf>,
    /// Remote user for every SSH host (beats the plan).
    #[arg(short = 'l', long = "user", value_name = "USER", help_heading = CONNECTION)]
    pub user: Option<String>,
    /// Port for every SSH host (beats the plan and ssh_config), as with exec.
    #[arg(short = 'p', long = "port", value_name = "PORT", help_heading = CONNECTION)]
    pub port: Option<u16>,
    /// Identity file (repeatable); tried before those of the plan and configuration.
    #[arg(long = "identity", value_name = "FILE", help_heading = CONNECTION)]
    pub identity: Vec<PathBuf>,
    /// known_hosts file(s) to use instead of the configured ones (repeatable).
    #[arg(long = "known-hosts", value_name = "FILE", help_heading = CONNECTION)]
    pub known_hosts: Vec<PathBuf>,
    /// Host key policy [default: yes, or StrictHostKeyChecking from ssh_config].
    #[arg(long = "host-key-checking", value_enum, value_name = "POLICY", help_heading = CONNECTION)]
    pub host_key_checking: Option<HostKeyChecking>,
    /// Connect timeout covering TCP, banner, key exchange and auth [default: 10s].
    #[arg(long = "connect-timeout", value_name = "DURATION", value_parser = parse_duration, help_heading = CONNECTION)]
    pub connect_timeout: Option<std::time::Duration>,
    /// An ssh_config option for this run, as `ssh -o` (repeatable): beats every ssh_config
    /// file, the inventory and `user@host:port`; the first -o of a keyword wins; -l, -p and
    /// the other options above beat it.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE", help_heading = CONNECTION)]
    pub ssh_options: Vec<String>,
    /// The config file's connection settings, which apply under ssh_config (set by
    /// [`crate::config`], not an option).
    #[arg(skip)]
    pub defaults: sortie_inventory::Defaults,
    /// Return once every process settled; the hosts hold the fleet for the rest of the
    /// duration (which --detach needs) and stop it by themselves. Then: sortie status, attach,
    /// stop RUN_DIR.
    #[arg(long = "detach", help_heading = BEHAVIOUR)]
    pub detach: bool,
    /// Where each host keeps the run's files: DIR/<run-id>/ [default: run.remote_dir, else
    /// ~/.sortie-runs].
    #[arg(long = "remote-dir", value_name = "DIR", help_heading = BEHAVIOUR)]
    pub remote_dir: Option<String>,
    /// Keep the hosts' remote directories (raw output of every process) after the run.
    #[arg(long = "keep-remote-dir", help_heading = BEHAVIOUR)]
    pub keep_remote_dir: bool,
    /// How long a lost host is dialled again while its processes run on [default:
    /// run.reconnect_window, else 60s].
    #[arg(long = "reconnect-window", value_name = "DURATION", value_parser = parse_duration, help_heading = BEHAVIOUR)]
    pub reconnect_window: Option<std::time::Duration>,
    /// How long the hosts' watchdogs let the fleet run without hearing from sortie [default:
    /// run.lease, else the reconnect window + 30s].
    #[arg(long = "lease", value_name = "DURATION", value_parser = parse_duration, help_heading = BEHAVIOUR)]
    pub lease: Option<std::time::Duration>,
}

/// `sortie attach`, `status`, `stop`.
#[derive(Args, Debug)]
pub struct RunDirArgs {
    /// A launch's run directory (it holds run.json and events.jsonl).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// One JSON object per event on stdout (JSON Lines).
    #[arg(long = "json", help_heading = OUTPUT)]
    pub json: bool,
    /// attach and stop: serve the live dashboard and /metrics at ADDR:PORT, as launch --web.
    #[arg(long = "web", value_name = "ADDR:PORT", help_heading = OUTPUT)]
    pub web: Option<std::net::SocketAddr>,
    /// Allow --web on an address other than loopback (then the printed token is required).
    #[arg(long = "web-public", requires = "web", help_heading = OUTPUT)]
    pub web_public: bool,
}

/// `sortie report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A launch's run directory (it holds events.jsonl).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Also write RUN_DIR/report.html (charts and the process table; opens with no network).
    #[arg(long = "html")]
    pub html: bool,
}

/// Checks a duration option and keeps its text (for `--set run.duration=...`).
pub fn parse_duration_text(s: &str) -> Result<String, String> {
    parse_duration(s).map(|_| s.trim().to_string())
}

/// Parses a duration option (`300ms`, `1.5s`, `2m`, `1h`, bare seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    sortie_plan::parse_duration(s).map_err(|e| e.to_string())
}

/// Parses a rate option (`5/s`, `100/m`).
pub fn parse_rate(s: &str) -> Result<sortie_plan::Rate, String> {
    sortie_plan::parse_rate(s).map_err(|e| e.to_string())
}

/// Parses `K=V` (K a shell variable name).
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected K=V, got `{s}`"))?;
    let valid = !k.is_empty()
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("`{k}` is not a valid variable name"));
    }
    Ok((k.to_string(), v.to_string()))
}
