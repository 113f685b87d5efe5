//! `sortie run`: job sources and template from the command line, the run scheduler, reporters.

use std::path::Path;

use sortie::runner::run::{run as run_jobs, Halt, Resume, RunOptions, Spread};
use sortie::transport::StopSequence;
use sortie_plan::{JobSet, JobSource, Template};
use sortie_report::{Mode, PrefixStyle, ReporterConfig};

use crate::args::{self, RunArgs};
use crate::exec_cmd::drive;
use crate::exit::ExitCode;
use crate::select;

pub async fn run(
    args: RunArgs,
    matches: Option<&clap::ArgMatches>,
    signals: crate::signals::Interrupts,
) -> miette::Result<ExitCode> {
    // Everything the user wrote is checked before any host is contacted.
    let (template_words, lists) = split_lists(&args.template);
    let jobs = job_set(&args, matches, lists)?;
    let template_text = template_words.join(" ");
    let template = Template::parse(&template_text, jobs.columns()).map_err(miette::Report::new)?;
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
    let targets = select::targets(&args.selection)?;

    let options = RunOptions {
        slots: args.slots,
        jobs: args.jobs.map(|j| j as usize),
        rate: args.rate,
        delay: args.delay.unwrap_or_default(),
        spread: match args.spread {
            args::Spread::LeastLoaded => Spread::LeastLoaded,
            args::Spread::RoundRobin => Spread::RoundRobin,
        },
        fanout: args.fanout as usize,
        retries: args.retries,
        halt,
        timeout: args.timeout,
        stop: StopSequence {
            steps: vec![("TERM".into(), args.kill_grace)],
        },
        env,
        joblog: args.joblog.clone(),
        resume: if args.resume_failed {
            Resume::Failed
        } else if args.resume {
            Resume::All
        } else {
            Resume::No
        },
        results: args.results.clone(),
    };
    let mode = if args.json {
        Mode::Json
    } else if args.line_buffer {
        Mode::Line
    } else {
        Mode::PerJob
    };
    let mut reporter = ReporterConfig::new(mode)
        .color(crate::color())
        .labels(targets.iter().map(|t| t.label.clone()))
        .prefix(PrefixStyle::HostJob)
        .build()
        .map_err(miette::Report::new)?;
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
    Ok(drive(handle, &mut reporter).await)
}

/// Splits `TEMPLATE... ::: a b ::: c d` into the template words and the literal lists.
fn split_lists(words: &[String]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut parts = words.split(|w| w == ":::");
    let template = parts.next().unwrap_or_default().to_vec();
    (template, parts.map(<[String]>::to_vec).collect())
}

/// The job sources in command-line order (as GNU parallel combines them), then `:::` lists;
/// standard input when there is no source at all.
fn job_set(
    args: &RunArgs,
    matches: Option<&clap::ArgMatches>,
    lists: Vec<Vec<String>>,
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
    let mut sources: Vec<JobSource> = ordered.into_iter().map(|(_, s)| s).collect();
    for list in lists {
        if list.is_empty() {
            return Err(miette::miette!(
                help = "write the values after `:::`, e.g. `::: a b c`",
                "empty `:::` list"
            ));
        }
        sources.push(JobSource::list(list));
    }
    if sources.is_empty() {
        sources.push(JobSource::stdin().map_err(err)?);
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
