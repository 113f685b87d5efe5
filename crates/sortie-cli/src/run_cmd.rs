//! `sortie run`: job sources and template from the command line, the run scheduler, reporters.

use std::path::Path;

use sortie::runner::run::{run as run_jobs, Halt, Resume, RunOptions, Spread};
use sortie::transport::StopSequence;
use sortie_plan::Context;
use sortie_plan::{Delimiting, JobSet, JobSource, Template};
use sortie_report::{Mode, PlainReporter, PrefixStyle, ReporterConfig, TagFn};

use crate::args::{self, ParallelOnly, RunArgs};
use crate::exec_cmd::drive;
use crate::exit::ExitCode;
use crate::select;

pub async fn run(
    args: RunArgs,
    matches: Option<&clap::ArgMatches>,
    signals: crate::signals::Interrupts,
) -> miette::Result<ExitCode> {
    // Everything the user wrote is checked before any host is contacted.
    refuse_parallel_only(&args.parallel_only)?;
    let (command, groups) = split_sources(&args)?;
    let jobs = job_set(&args, matches, groups)?;
    // No command: each job's values are the command, as in GNU parallel (`cat cmds | parallel`).
    let template_text = if command.is_empty() {
        "{==}".to_owned()
    } else {
        command.join(" ")
    };
    let template =
        Template::parse_as_parallel(&template_text, jobs.columns()).map_err(miette::Report::new)?;
    if args.group.is_some() {
        refuse_context_replace(&template)?;
    }
    refuse_max_args_forms(&args, &template)?;
    let options = run_options(&args)?;
    let mut targets = select::targets(&args.selection)?;
    if args.forward_agent {
        targets.iter_mut().for_each(|t| t.forward_agent = true);
    }
    let tag = tag_fn(&args, &jobs)?;
    let plain = args.plain || (!args.json && (args.keep_order || tag.is_some()));
    let mode = if args.json {
        Mode::Json
    } else if args.line_buffer {
        Mode::Line
    } else {
        Mode::PerJob
    };
    // Built before any job starts: an out-dir that cannot be created must stop the run here.
    let prefixed = if plain {
        None
    } else {
        Some(
            ReporterConfig::new(mode)
                .color(crate::color())
                .labels(targets.iter().map(|t| t.label.clone()))
                .prefix(PrefixStyle::HostJob)
                .build()
                .map_err(miette::Report::new)?,
        )
    };
    let cancel = sortie::CancellationToken::new();
    let handle = run_jobs(
        select::transports(args.max_handshakes),
        targets,
        jobs,
        template,
        options,
        cancel.clone(),
    )
    .map_err(miette::Report::new)?;
    select::on_interrupt(signals, cancel);
    if let Some(mut reporter) = prefixed {
        return Ok(drive(handle, &mut reporter).await);
    }
    let mut reporter =
        PlainReporter::new(std::io::stdout(), std::io::stderr(), args.keep_order, tag);
    let code = drive(handle, &mut reporter).await;
    // GNU parallel's exit status: the number of failed jobs, 101 for more than 100.
    let failed = reporter.failed();
    if code != ExitCode::Interrupted && failed > 0 {
        std::process::exit(failed.min(101) as i32);
    }
    Ok(code)
}

/// The scheduler's options from the command line.
fn run_options(args: &RunArgs) -> miette::Result<RunOptions> {
    // GNU parallel's `--joblog +FILE` appends.
    let (joblog, joblog_append) = match args.joblog.as_deref().map(Path::to_str) {
        Some(Some(p)) if p.starts_with('+') && p.len() > 1 => (Some(p[1..].into()), true),
        _ => (args.joblog.clone(), false),
    };
    let halt = args
        .halt
        .as_deref()
        .map(str::parse::<Halt>)
        .transpose()
        .map_err(miette::Report::new)?;
    let mut env = Vec::new();
    for file in &args.env_file {
        env.extend(read_env_file(file)?);
    }
    env.extend(args.env.iter().cloned());
    Ok(RunOptions {
        slots: args.slots.unwrap_or(1),
        jobs: args.jobs.map(|j| j as usize),
        rate: args.rate,
        delay: args.delay.unwrap_or_default(),
        spread: match args.spread {
            args::Spread::LeastLoaded => Spread::LeastLoaded,
            args::Spread::RoundRobin => Spread::RoundRobin,
        },
        fanout: args.fanout as usize,
        // GNU parallel counts tries in all: --retries 3 is one try and two reruns.
        retries: args.retries.saturating_sub(1),
        halt,
        timeout: args.timeout,
        stop: StopSequence {
            steps: vec![("TERM".into(), args.kill_grace)],
        },
        env,
        joblog: joblog.clone(),
        joblog_append,
        resume: if args.resume_failed {
            Resume::Failed
        } else if args.resume {
            Resume::All
        } else {
            Resume::No
        },
        results: args.results.clone(),
    })
}

/// The tag before each output line: `--tag` (the job's values joined by spaces) or
/// `--tagstring STR` (STR rendered for the job, values unquoted).
fn tag_fn(args: &RunArgs, jobs: &JobSet) -> miette::Result<Option<TagFn>> {
    let jobs = jobs.clone();
    if let Some(text) = &args.tagstring {
        let t = Template::parse_named("--tagstring", text, jobs.columns())
            .map_err(miette::Report::new)?;
        if t.placeholders()
            .any(|p| p.kind == sortie_plan::template::PlaceholderKind::Slot)
        {
            return Err(miette::miette!(
                help = "the tag is written when the job's output is printed, where the slot is not known; use {#} or {host}",
                "--tagstring: {{%}} and {{slot}} are not available in a tag"
            ));
        }
        let constant = t.appended_line().then(|| text.clone());
        let tag: TagFn = Box::new(move |seq, host| {
            if let Some(c) = &constant {
                return c.clone();
            }
            let values = jobs
                .get(seq - 1)
                .map(|j| j.values().to_vec())
                .unwrap_or_default();
            t.render_unquoted(&values, &Context { host, slot: 0, seq })
        });
        return Ok(Some(tag));
    }
    if !args.tag {
        return Ok(None);
    }
    Ok(Some(Box::new(move |seq, _| {
        jobs.get(seq - 1)
            .map(|j| j.values().join(" "))
            .unwrap_or_default()
    })))
}

/// Refuses GNU parallel options that sortie does not have or spells differently, naming the
/// option and what to write instead (docs/parallel.md), before anything runs.
fn refuse_parallel_only(p: &ParallelOnly) -> miette::Result<()> {
    let table: [(bool, &str, &str); 13] = [
        (p.pipe, "--pipe", "--pipe (splitting standard input among jobs) is not supported"),
        (p.x, "-x", "GNU parallel's -x (--exit when a command line is too long) is not supported; sortie's --exclude HOSTS has no short form in run"),
        (p.xargs, "-X", "-X fits as many values as the command line and the job slots allow, which depends on the slots of the whole fleet: give -n N (each job the next N values) or -N N"),
        (p.long_xargs, "--xargs", "--xargs fits as many values as the command line and the job slots allow, which depends on the slots of the whole fleet: give -n N (each job the next N values)"),
        (p.i.is_some(), "-i", "GNU parallel's -i (replace string) is not supported: use {}; sortie's --inventory FILE has no short form in run"),
        (p.l.is_some(), "-l", "GNU parallel's -l (--max-lines) is not supported; sortie's --user USER has no short form in run"),
        (p.p, "-p", "GNU parallel's -p (--interactive) is not supported; sortie's --port PORT has no short form in run"),
        (p.t, "-t", "GNU parallel's -t (print each command on stderr) is not supported: --json shows each command in its job_started event; sortie's --timeout DURATION has no short form in run"),
        (p.q, "-q", "-q (--quote) is not supported: sortie joins the command words with spaces for the shell, as parallel does without -q; quote the command yourself"),
        (p.big_i.is_some(), "-I", "another replacement string (-I) is not supported: use {}"),
        (p.sshlogin.is_some(), "-S", "hosts are given with -H HOSTS (comma-separated [user@]host[:port]), -g GROUP or an inventory; jobs per host with -j N"),
        (p.u, "-u", "--ungroup is not supported: use --line-buffer for live output, prefixed by host/seq"),
        (p.gnu_results.is_some(), "--results", "GNU parallel's --results layout (DIR/1/VALUE/stdout, .csv, .json) is not supported; --results-dir DIR writes DIR/<seq>/stdout, stderr and exit"),
    ];
    for (given, option, hint) in table {
        if given {
            return Err(miette::miette!(
                code = "sortie::run::parallel_option",
                help = hint,
                "option {option}: GNU parallel's meaning is not supported by sortie run, and sortie gives it no other meaning here"
            ));
        }
    }
    Ok(())
}

/// With `-N`, GNU parallel repeats `{}` and its path forms once per value with the word around
/// them (`[{}]` gives `[A] [B]`); sortie does not, so they are refused at their column.
fn refuse_context_replace(template: &Template) -> miette::Result<()> {
    let line = template.placeholders().find(|p| {
        p.kind == sortie_plan::template::PlaceholderKind::Line && p.span.is_some() && !p.raw
    });
    if let Some(span) = line.and_then(|p| p.span.clone()) {
        let text = template.text();
        let column = text[..span.start].chars().count() + 1;
        return Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "with -N, name the values by position: {1} {2} ...; or leave the command without placeholders to append them all",
            "command template:1:{column}: {} with -N repeats per value in GNU parallel, which sortie does not do",
            &text[span]
        ));
    }
    Ok(())
}

/// `-N n` / `-n n`: one source of one column, grouped `n` values per job (`-n`: the last job
/// takes what is left).
fn group_sources(
    sources: Vec<JobSource>,
    n: usize,
    option: &str,
) -> miette::Result<Vec<JobSource>> {
    match <[JobSource; 1]>::try_from(sources) {
        Ok([source]) if source.width() == 1 => {
            let grouped = if option == "-n" {
                source.group_values(n)
            } else {
                source.group_rows(n)
            };
            Ok(vec![grouped.map_err(miette::Report::new)?])
        }
        _ => Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "{option} groups the values of one source: give one source of one column, or link sources with :::+ instead",
            "option {option}: only one input source of one column is supported"
        )),
    }
}

/// `-m` without `-n` fits as many values as the slots allow; `-n N` with a placeholder counted
/// from the end (`{-1}`) would take the last job's own last value, which sortie does not do.
fn refuse_max_args_forms(args: &RunArgs, template: &Template) -> miette::Result<()> {
    if args.m && args.max_args.is_none() {
        return Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "-m fits as many values as the command line and the job slots allow, which depends on the slots of the whole fleet: give -n N (each job the next N values)",
            "option -m: not supported without -n"
        ));
    }
    if args.max_args.is_none() {
        return Ok(());
    }
    let text = template.text();
    let negative = template.placeholders().find_map(|p| {
        let span = p.span.clone()?;
        text[span.clone()].starts_with("{-").then_some(span)
    });
    if let Some(span) = negative {
        let column = text[..span.start].chars().count() + 1;
        return Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "with -n, name the values from the start: {1} {2} ...; GNU parallel counts {-1} from the end of each job's own values",
            "command template:1:{column}: {} with -n is not supported",
            &text[span]
        ));
    }
    Ok(())
}

/// `--colsep SEP` (a literal separator; `\t` is a tab) and `--header :`. Regular expressions,
/// which parallel takes, are refused rather than read literally.
fn columns_options(args: &RunArgs) -> miette::Result<(Option<String>, bool)> {
    let header = match args.header.as_deref() {
        None => false,
        Some(":") => true,
        Some(other) => {
            return Err(miette::miette!(
                code = "sortie::run::parallel_option",
                help = "write --header : (the first line of each source names its columns)",
                "option --header {other:?}: only `:` is supported"
            ))
        }
    };
    // With --header and no --colsep, parallel splits on tabs.
    let sep = (args.colsep.clone()).or_else(|| header.then(|| "\\t".to_owned()));
    let Some(sep) = &sep else {
        return Ok((None, header));
    };
    let literal = sep.replace("\\t", "\t");
    if sep.is_empty()
        || literal.contains([
            '\\', '.', '[', ']', '(', ')', '*', '+', '?', '{', '}', '|', '^', '$',
        ])
    {
        return Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "give a literal separator such as , or ; or \\t (tab); GNU parallel's regular expressions are not supported",
            "option -C/--colsep {sep:?}: not a literal separator"
        ));
    }
    Ok((Some(literal), header))
}

/// One group of words after a separator.
struct Group {
    /// The separator as written.
    sep: String,
    /// `::::`: the words are files (`-` = standard input), one source each.
    files: bool,
    /// `:::+`, `::::+`: linked to the source before.
    linked: bool,
    words: Vec<String>,
}

/// Splits `COMMAND... ::: a b :::+ c d :::: FILE` into the command words and the groups, with
/// GNU parallel's separators or those of `--arg-sep` / `--arg-file-sep` (then `:::` is a word
/// like any other, as in parallel).
fn split_sources(args: &RunArgs) -> miette::Result<(Vec<String>, Vec<Group>)> {
    let arg_sep = separator("--arg-sep", args.arg_sep.as_deref(), ":::")?;
    let file_sep = separator("--arg-file-sep", args.arg_file_sep.as_deref(), "::::")?;
    if arg_sep == file_sep {
        return Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "give --arg-sep and --arg-file-sep different strings",
            "option --arg-file-sep {file_sep:?}: the same as the separator of values"
        ));
    }
    // (separator, files, linked); parallel checks them in this order.
    let separators = [
        (arg_sep.clone(), false, false),
        (format!("{arg_sep}+"), false, true),
        (file_sep.clone(), true, false),
        (format!("{file_sep}+"), true, true),
    ];
    let mut command = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for word in &args.template {
        if let Some((sep, files, linked)) = separators.iter().find(|(s, ..)| s == word) {
            groups.push(Group {
                sep: sep.clone(),
                files: *files,
                linked: *linked,
                words: Vec::new(),
            });
        } else if let Some(group) = groups.last_mut() {
            group.words.push(word.clone());
        } else {
            command.push(word.clone());
        }
    }
    Ok((command, groups))
}

/// The separator of `--arg-sep` / `--arg-file-sep`, or parallel's default.
fn separator(option: &str, given: Option<&str>, default: &str) -> miette::Result<String> {
    match given {
        None => Ok(default.to_owned()),
        Some("") => Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "give a string that does not occur in the command, e.g. {option} ,,",
            "option {option}: the separator is empty"
        )),
        Some(s) => Ok(s.to_owned()),
    }
}

/// How the sources are cut into values: `-0`, `-d DELIM` (parallel's escapes), `-E EOF-STR`
/// (empty or `0` means none, as Perl's truth makes it in parallel).
fn delimiting(args: &RunArgs) -> miette::Result<Delimiting> {
    let refuse = |option: &str, why: &str, help: &str| {
        miette::miette!(
            code = "sortie::run::parallel_option",
            help = help.to_owned(),
            "option {option}: {why}"
        )
    };
    let given = args.null || args.delimiter.is_some() || args.eof.is_some();
    let own = [
        ("--args", args.args.is_empty()),
        ("--csv", args.csv.is_empty()),
        ("--range", args.range.is_empty()),
    ];
    if let Some((own, _)) = own.iter().find(|(_, empty)| given && !empty) {
        let option = if args.null {
            "-0"
        } else if args.delimiter.is_some() {
            "-d"
        } else {
            "-E"
        };
        return Err(refuse(option, &format!("applies to GNU parallel's sources, not to sortie's {own}"), "use -a FILE (or :::: FILE) for a file cut by -d/-0/-E; --args, --csv and --range read their files their own way"));
    }
    let mut how = Delimiting::default();
    if args.null {
        how.delimiter = "\0".into();
    }
    if let Some(d) = &args.delimiter {
        how.delimiter = unquote_printf(d).ok_or_else(|| refuse("-d", &format!("{d:?} is not a delimiter sortie can read"), "give one or more characters, or an escape \\n \\t \\r \\0 or octal \\NNN of an ASCII character; GNU parallel reads an empty delimiter as paragraphs, which sortie does not do"))?;
    }
    how.eof = args.eof.clone().filter(|e| !e.is_empty() && e != "0");
    Ok(how)
}

/// GNU parallel's `unquote_printf` for `-d`: `\t`, `\n`, `\r`, then octal `\NNN` and `\N`, in
/// that order. `None` for an empty result or an octal escape outside ASCII or with 8 or 9.
fn unquote_printf(text: &str) -> Option<String> {
    let text = text
        .replace("\\t", "\t")
        .replace("\\n", "\n")
        .replace("\\r", "\r");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take(3).take_while(u8::is_ascii_digit).count();
        let digits = if digits == 3 { 3 } else { digits.min(1) };
        if digits == 0 {
            out.push('\\');
            rest = after;
            continue;
        }
        let code = u32::from_str_radix(&after[..digits], 8)
            .ok()
            .filter(|c| *c < 128)?;
        out.push(char::from_u32(code)?);
        rest = &after[digits..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// The job sources in GNU parallel's order: the option sources in command-line order (`-a`,
/// `--args`, `--csv`, `--range`), then the groups after the command. Linked groups are zipped
/// to the source before them, `--link` zips everything; standard input when there is no source.
fn job_set(
    args: &RunArgs,
    matches: Option<&clap::ArgMatches>,
    groups: Vec<Group>,
) -> miette::Result<JobSet> {
    let index_of = |id: &str, n: usize| -> Vec<usize> {
        matches
            .and_then(|m| m.indices_of(id))
            .map(|i| i.collect())
            .unwrap_or_else(|| (0..n).collect())
    };
    let mut ordered: Vec<(usize, JobSource)> = Vec::new();
    let err = |e: sortie_plan::JobsError| miette::Report::new(e);
    let how = delimiting(args)?;
    for (i, p) in index_of("args", args.args.len())
        .into_iter()
        .zip(&args.args)
    {
        ordered.push((i, JobSource::args_path(p).map_err(err)?));
    }
    for (i, p) in index_of("arg_file", args.arg_file.len())
        .into_iter()
        .zip(&args.arg_file)
    {
        ordered.push((i, JobSource::arg_file("-a", p, &how).map_err(err)?));
    }
    for (i, p) in index_of("csv", args.csv.len()).into_iter().zip(&args.csv) {
        ordered.push((i, JobSource::csv_path(p).map_err(err)?));
    }
    for (i, r) in index_of("range", args.range.len())
        .into_iter()
        .zip(&args.range)
    {
        ordered.push((i, JobSource::range(r).map_err(err)?));
    }
    ordered.sort_by_key(|(i, _)| *i);
    // Chains of linked sources; a chain of one is a plain source of the product.
    let mut chains: Vec<Vec<JobSource>> = ordered.into_iter().map(|(_, s)| vec![s]).collect();
    for group in groups {
        if group.words.is_empty() {
            return Err(miette::miette!(
                help = "write the values after `{0}`, e.g. `{0} a b c`; GNU parallel runs the command once with an empty value here, which sortie refuses as a likely mistake",
                "empty `{}` group",
                group.sep
            ));
        }
        let sources = if group.files {
            let files = group
                .words
                .iter()
                .map(|f| JobSource::arg_file(&group.sep, Path::new(f), &how));
            files.collect::<Result<Vec<_>, _>>().map_err(err)?
        } else {
            vec![JobSource::list_as_parallel(&group.sep, &group.words, &how)]
        };
        match chains.last_mut() {
            Some(chain) if group.linked => chain.extend(sources),
            _ if group.linked => {
                return Err(miette::miette!(
                    help = "`{0}` links its values to the source before it: give one first, e.g. `::: a b {0} c d`",
                    "`{0}` has no source before it to link to",
                    group.sep
                ))
            }
            _ if group.files => chains.extend(sources.into_iter().map(|s| vec![s])),
            _ => chains.push(sources),
        }
    }
    let link = |chain: Vec<JobSource>, wrap: bool| -> miette::Result<JobSource> {
        if chain.len() == 1 {
            Ok(chain.into_iter().next().expect("one source"))
        } else {
            JobSource::link(chain, wrap).map_err(err)
        }
    };
    let (sep, header) = columns_options(args)?;
    for source in chains.iter_mut().flatten() {
        let taken = std::mem::replace(source, JobSource::list([""]));
        *source = taken.split_columns(sep.as_deref(), header).map_err(err)?;
    }
    let mut sources = chains
        .into_iter()
        .map(|c| link(c, false))
        .collect::<miette::Result<Vec<_>>>()?;
    if args.link && sources.len() > 1 {
        sources = vec![link(sources, true)?];
    }
    if sources.is_empty() {
        let stdin = JobSource::stdin_as_parallel(&how).map_err(err)?;
        sources.push(stdin.split_columns(sep.as_deref(), header).map_err(err)?);
    }
    if let Some(n) = args.group {
        sources = group_sources(sources, n as usize, "-N")?;
    }
    if let Some(n) = args.max_args {
        sources = group_sources(sources, n as usize, "-n")?;
    }
    JobSet::new(sources).map_err(err)
}

/// Reads `K=V` lines (`#` comments, blank lines, optional `export `).
fn read_env_file(path: &Path) -> miette::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| miette::miette!("cannot read --env-file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").unwrap_or(t);
        // The message names the place, never the value (it may be a secret).
        let pair = args::parse_env(t).map_err(|e| {
            let e = e.split(", got").next().unwrap_or(&e).to_string();
            miette::miette!(
                help = "write one K=V per line",
                "{}:{}:1: {e}",
                path.display(),
                n + 1
            )
        })?;
        out.push(pair);
    }
    Ok(out)
}
