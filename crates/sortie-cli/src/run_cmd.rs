//! `sortie run`: job sources and template from the command line, the run scheduler, reporters.

use std::path::Path;

use sortie::runner::run::{run as run_jobs, Halt, Resume, RunOptions, Spread};
use sortie::transport::StopSequence;
use sortie_plan::Context;
use sortie_plan::{JobSet, JobSource, Template};
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
    let (command, groups) = split_sources(&args.template);
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
        select::transports(),
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
    let table: [(bool, &str, &str); 19] = [
        (p.pipe, "--pipe", "--pipe (splitting standard input among jobs) is not supported"),
        (p.x, "-x", "GNU parallel's -x (--xargs) packs many arguments into one command, which sortie does not do; sortie's --exclude HOSTS has no short form in run"),
        (p.xargs, "-X", "packing many arguments into one command is not supported: give one job per value"),
        (p.m, "-m", "packing many arguments into one command is not supported: give one job per value"),
        (p.i.is_some(), "-i", "GNU parallel's -i (replace string) is not supported: use {}; sortie's --inventory FILE has no short form in run"),
        (p.l.is_some(), "-l", "GNU parallel's -l (--max-lines) is not supported; sortie's --user USER has no short form in run"),
        (p.p, "-p", "GNU parallel's -p (--interactive) is not supported; sortie's --port PORT has no short form in run"),
        (p.t, "-t", "GNU parallel's -t (print each command on stderr) is not supported: --json shows each command in its job_started event; sortie's --timeout DURATION has no short form in run"),
        (p.n.is_some(), "-n", "-n/--max-args is not supported: -N N gives each job the next N values as {1}..{N}"),
        (p.q, "-q", "-q (--quote) is not supported: sortie joins the command words with spaces for the shell, as parallel does without -q; quote the command yourself"),
        (p.null, "-0", "NUL-separated input (-0/--null) is not supported: one job per line"),
        (p.d.is_some(), "-d", "another delimiter (-d/--delimiter) is not supported: one job per line"),
        (p.e.is_some(), "-E", "an end-of-file string (-E) is not supported: end the input where the jobs end"),
        (p.big_i.is_some(), "-I", "another replacement string (-I) is not supported: use {}"),
        (p.sshlogin.is_some(), "-S", "hosts are given with -H HOSTS (comma-separated [user@]host[:port]), -g GROUP or an inventory; jobs per host with -j N"),
        (p.u, "-u", "--ungroup is not supported: use --line-buffer for live output, prefixed by host/seq"),
        (p.arg_sep.is_some(), "--arg-sep", "another separator than ::: is not supported"),
        (p.arg_file_sep.is_some(), "--arg-file-sep", "another separator than :::: is not supported"),
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

/// `-N n`: one source of one column, grouped `n` values per job.
fn group_sources(sources: Vec<JobSource>, n: usize) -> miette::Result<Vec<JobSource>> {
    match <[JobSource; 1]>::try_from(sources) {
        Ok([source]) if source.width() == 1 => {
            Ok(vec![source.group_rows(n).map_err(miette::Report::new)?])
        }
        _ => Err(miette::miette!(
            code = "sortie::run::parallel_option",
            help = "-N groups the values of one source: give one source of one column, or link sources with :::+ instead",
            "option -N: only one input source of one column is supported"
        )),
    }
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

/// GNU parallel's input-source separators: how the words after each one are read, and whether
/// the group is linked to the source before it (`:::+`, `::::+`).
const SEPARATORS: [(&str, bool, bool); 4] = [
    (":::", false, false),
    (":::+", false, true),
    ("::::", true, false),
    ("::::+", true, true),
];

/// One group of words after a separator.
struct Group {
    /// The separator as written.
    sep: &'static str,
    /// `::::`: the words are files (`-` = standard input), one source each.
    files: bool,
    /// `:::+`, `::::+`: linked to the source before.
    linked: bool,
    words: Vec<String>,
}

/// Splits `COMMAND... ::: a b :::+ c d :::: FILE` into the command words and the groups.
fn split_sources(words: &[String]) -> (Vec<String>, Vec<Group>) {
    let mut command = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for word in words {
        if let Some(&(sep, files, linked)) = SEPARATORS.iter().find(|(s, ..)| s == word) {
            groups.push(Group {
                sep,
                files,
                linked,
                words: Vec::new(),
            });
        } else if let Some(group) = groups.last_mut() {
            group.words.push(word.clone());
        } else {
            command.push(word.clone());
        }
    }
    (command, groups)
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
        ordered.push((i, JobSource::arg_file("-a", p).map_err(err)?));
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
                .map(|f| JobSource::arg_file(group.sep, Path::new(f)));
            files.collect::<Result<Vec<_>, _>>().map_err(err)?
        } else {
            vec![JobSource::list(group.words)]
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
        let stdin = JobSource::stdin_as_parallel().map_err(err)?;
        sources.push(stdin.split_columns(sep.as_deref(), header).map_err(err)?);
    }
    if let Some(n) = args.group {
        sources = group_sources(sources, n as usize)?;
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
