//! Helpers shared by the `run_*` integration tests: a fleet of fixture hosts as [`Target`]s,
//! an SSH transport without agent or prompts, and a run collected to the end.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use sortie::runner::run::{run, RunOptions};
use sortie::runner::RunResult;
use sortie::transport::ssh::{SshOptions, SshTransport};
use sortie::transport::{HostKeyChecking, Target, Transport, TransportKind};
use sortie::{CancellationToken, Event};
use sortie_plan::{JobSet, JobSource, Template};
use sortie_testkit::{hosts, KeyKind, Sshd};

/// Skips (with a visible reason) when sshd is not installed.
#[macro_export]
macro_rules! require_sshd {
    () => {
        if sortie_testkit::require_sshd().is_none() {
            eprintln!(
                "SKIP: OpenSSH sshd or ssh-keygen not installed; run tests need a fixture sshd"
            );
            return;
        }
    };
}

/// Targets for `n` loopback hosts of `sshd`, starting at loopback address index `first`,
/// labelled `{prefix}{i}`.
pub fn fleet(sshd: &Sshd, prefix: &str, first: usize, n: usize) -> Vec<Target> {
    let addrs: Vec<String> = hosts(first + n).split_off(first);
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let known = sshd.known_hosts_for(&refs).expect("known_hosts");
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Target {
            label: format!("{prefix}{}", i + 1),
            hostname: a.clone(),
            host_key_alias: None,
            hash_known_hosts: false,
            port: sshd.port(),
            user: sshd.user(),
            identity_files: vec![sshd.client_key(KeyKind::Ed25519)],
            identities_only: true,
            certificate_files: Vec::new(),
            forward_agent: false,
            jumps: vec![],
            proxy_command: None,
            known_hosts_files: vec![known.clone()],
            host_key_checking: HostKeyChecking::Yes,
            // Generous: these tests run on loaded CI machines where a handshake can take
            // seconds; what they check is behaviour, not speed.
            connect_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(5),
            keepalive_max: 3,
            kind: TransportKind::Ssh,
        })
        .collect()
}

/// An SSH transport that uses only the targets' identity files.
pub fn transport() -> Arc<dyn Transport> {
    Arc::new(SshTransport::new(SshOptions {
        passphrase_prompt: Arc::new(|_| None),
        agent_socket: None,
        ..SshOptions::default()
    }))
}

/// A job set from literal values.
pub fn values<S: AsRef<str>>(values: &[S]) -> JobSet {
    JobSet::new(vec![JobSource::list(
        values.iter().map(|v| v.as_ref().to_owned()),
    )])
    .unwrap()
}

/// A job set `1..=n`.
pub fn range(n: u64) -> JobSet {
    JobSet::new(vec![JobSource::range(&format!("1..{n}")).unwrap()]).unwrap()
}

/// Every event and the result of a run; `on_event` sees each event as it arrives.
pub async fn run_all(
    targets: Vec<Target>,
    jobs: JobSet,
    template: &str,
    options: RunOptions,
    cancel: CancellationToken,
    mut on_event: impl FnMut(&Event),
) -> (Vec<Event>, RunResult) {
    let template = Template::parse(template, jobs.columns()).expect("template");
    let mut handle = run(transport(), targets, jobs, template, options, cancel).expect("run");
    let mut events = Vec::new();
    while let Some(ev) = handle.events.recv().await {
        on_event(&ev);
        events.push(ev);
    }
    (events, handle.result.await.expect("run task"))
}

/// `(job, host, outcome)` of every `JobFinished`, by job.
pub fn finished(events: &[Event]) -> Vec<(u64, String, sortie::Outcome)> {
    let mut v: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::JobFinished {
                job, host, outcome, ..
            } => Some((*job, host.clone(), outcome.clone())),
            _ => None,
        })
        .collect();
    v.sort_by_key(|f| f.0);
    v
}

/// A shell snippet that counts this job on the host's counter while it sleeps `secs`,
/// recording the highest count in `DIR/{host}.max` (under `flock`, so it is exact).
pub fn counted(dir: &std::path::Path, secs: &str) -> String {
    let d = dir.display();
    format!(
        "c={d}/{{host}}; \
         flock $c.lock sh -c 'n=$(( $(cat '$c'.n 2>/dev/null || echo 0) + 1 )); echo $n > '$c'.n; \
         m=$(cat '$c'.max 2>/dev/null || echo 0); if [ $n -gt $m ]; then echo $n > '$c'.max.new; mv '$c'.max.new '$c'.max; fi'; \
         sleep {secs}; \
         flock $c.lock sh -c 'echo $(( $(cat '$c'.n) - 1 )) > '$c'.n'"
    )
}

/// Like [`counted`], but each job holds until its host has seen `k` jobs at once (or
/// `timeout` seconds passed): a run that cannot reach `k` concurrent jobs on a host is slow
/// and ends with a max below `k`, whatever the machine's speed. The max file is replaced by a
/// rename, so the unlocked polling never reads it half-written (an empty read used to end a
/// job's wait early).
pub fn counted_until(dir: &std::path::Path, k: u32, timeout: u32) -> String {
    let d = dir.display();
    let polls = timeout * 10;
    format!(
        "c={d}/{{host}}; \
         flock $c.lock sh -c 'n=$(( $(cat '$c'.n 2>/dev/null || echo 0) + 1 )); echo $n > '$c'.n; \
         m=$(cat '$c'.max 2>/dev/null || echo 0); if [ $n -gt $m ]; then echo $n > '$c'.max.new; mv '$c'.max.new '$c'.max; fi'; \
         i=0; while [ $(cat $c.max) -lt {k} ] && [ $i -lt {polls} ]; do sleep 0.1; i=$((i+1)); done; \
         flock $c.lock sh -c 'echo $(( $(cat '$c'.n) - 1 )) > '$c'.n'"
    )
}

/// Highest concurrent count recorded by [`counted`] per host label.
pub fn max_counts(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let host = name.strip_suffix(".max")?.to_owned();
            let n = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((host, n))
        })
        .collect();
    v.sort();
    v
}
