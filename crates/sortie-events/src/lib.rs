//! The event stream: the spine between sortie's runner and its reporters.
//!
//! The runner (the only part that schedules and owns state) emits [`Event`]s in order; every
//! reporter (live terminal lines, grouped output, per-host files, JSON Lines, the summary)
//! consumes them and never asks the runner anything. Counts that a display needs travel inside
//! the events ([`Counts`]), so displays stay stateless and a recorded stream can be replayed
//! through any reporter, which is how reporters are snapshot-tested without a network.
//!
//! Two streams share these conventions: [`Event`] (`exec`, `run`, `put`, `get`) and
//! [`launch::LaunchEvent`] (`launch`, recorded to `events.jsonl`). In JSON, every event has an
//! `"event"` field naming its kind in snake_case; durations are integer milliseconds in fields
//! whose name ends in `_ms`; output bytes are lossy UTF-8 strings.
//!
//! This crate owns only data types and their JSON form; it does no I/O.

#![warn(missing_docs)]

pub mod launch;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which output stream of a remote process a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Why a host could not be used: the connection-level failures of the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFailure {
    /// TCP, banner or key exchange did not complete (refused, timed out, no route, DNS).
    Unreachable,
    /// Every authentication method was refused, or no usable key/agent was found.
    AuthFailed,
    /// The host key did not match, was revoked, or is unknown under strict checking.
    HostKeyRefused,
    /// The connection was lost after it had been established.
    ConnectionLost,
}

impl ConnectFailure {
    /// Human label used by the summary.
    pub fn label(self) -> &'static str {
        match self {
            ConnectFailure::Unreachable => "unreachable",
            ConnectFailure::AuthFailed => "auth failed",
            ConnectFailure::HostKeyRefused => "host key refused",
            ConnectFailure::ConnectionLost => "connection lost",
        }
    }
}

/// How one command (a job) on one host ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Exited with status 0.
    Ok,
    /// Exited with a non-zero status.
    Exited {
        /// The exit status.
        code: u32,
    },
    /// Killed by a signal (name without `SIG`, e.g. `TERM`).
    Signaled {
        /// Signal name without the `SIG` prefix.
        signal: String,
        /// Whether the process dumped core.
        core_dumped: bool,
    },
    /// Ran longer than `--timeout` and was ended by sortie.
    TimedOut,
    /// The channel closed without an exit status: never counted as success.
    NoExitStatus,
    /// The host could not be used, or was lost while the command ran.
    ConnectFailed {
        /// What went wrong.
        failure: ConnectFailure,
        /// Details for a person (reason, fingerprint, file:line of a recorded key...).
        message: String,
    },
    /// The run was interrupted (Ctrl-C) and sortie ended the command.
    Interrupted,
    /// A file transfer (`put`, `get`) reached the host but some files failed (named in the
    /// host's output).
    TransferFailed {
        /// Files that failed (0 when the transfer could not start at all).
        files: u64,
    },
}

impl Outcome {
    /// True only for a clean exit with status 0.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// The summary bucket this outcome belongs to, in display order.
    pub fn bucket(&self) -> Bucket {
        match self {
            Outcome::Ok => Bucket::Ok,
            Outcome::Exited { .. } => Bucket::ExitedNonZero,
            Outcome::Signaled { .. } => Bucket::Signaled,
            Outcome::TimedOut => Bucket::TimedOut,
            Outcome::NoExitStatus => Bucket::NoExitStatus,
            Outcome::Interrupted => Bucket::Interrupted,
            Outcome::TransferFailed { .. } => Bucket::TransferFailed,
            Outcome::ConnectFailed { failure, .. } => match failure {
                ConnectFailure::Unreachable => Bucket::Unreachable,
                ConnectFailure::AuthFailed => Bucket::AuthFailed,
                ConnectFailure::HostKeyRefused => Bucket::HostKeyRefused,
                ConnectFailure::ConnectionLost => Bucket::ConnectionLost,
            },
        }
    }
}

/// Summary buckets, in the order the summary prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Exit status 0.
    Ok,
    /// Exit status other than 0.
    ExitedNonZero,
    /// A file transfer failed for some files.
    TransferFailed,
    /// Killed by a signal.
    Signaled,
    /// Ended by `--timeout`.
    TimedOut,
    /// Could not connect.
    Unreachable,
    /// Authentication refused.
    AuthFailed,
    /// Host key refused.
    HostKeyRefused,
    /// Connection lost during the command.
    ConnectionLost,
    /// Channel closed without an exit status.
    NoExitStatus,
    /// Ended because the run was interrupted.
    Interrupted,
}

impl Bucket {
    /// Human label used by the summary.
    pub fn label(self) -> &'static str {
        match self {
            Bucket::Ok => "ok",
            Bucket::ExitedNonZero => "exited non-zero",
            Bucket::TransferFailed => "transfer failed",
            Bucket::Signaled => "killed by signal",
            Bucket::TimedOut => "timed out",
            Bucket::Unreachable => "unreachable",
            Bucket::AuthFailed => "auth failed",
            Bucket::HostKeyRefused => "host key refused",
            Bucket::ConnectionLost => "connection lost",
            Bucket::NoExitStatus => "no exit status",
            Bucket::Interrupted => "interrupted",
        }
    }
}

/// Aggregate counts that travel with progress events, so displays need no state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Hosts (or jobs) not started yet.
    pub pending: usize,
    /// Connecting (TCP, key exchange, auth).
    pub connecting: usize,
    /// Command running.
    pub running: usize,
    /// Finished with success.
    pub done: usize,
    /// Finished with any other outcome.
    pub failed: usize,
}

/// One event of a run, in the order the runner emitted it.
///
/// `host` is the host's label (as selected, e.g. `web03`); `job` is the 1-based job number
/// (`exec` uses one job per host, numbered in selection order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run begins.
    RunStarted {
        /// Number of hosts selected.
        hosts: usize,
        /// Number of jobs to run.
        jobs: usize,
        /// The command or template, as the user wrote it.
        command: String,
    },
    /// Connection set-up to a host began.
    HostConnecting {
        /// Host label.
        host: String,
    },
    /// The host is connected and authenticated.
    HostConnected {
        /// Host label.
        host: String,
        /// Time from the start of the connection attempt (`elapsed_ms` in JSON).
        #[serde(rename = "elapsed_ms", with = "millis")]
        elapsed: Duration,
    },
    /// The host could not be used, or its connection was lost.
    HostFailed {
        /// Host label.
        host: String,
        /// What went wrong.
        failure: ConnectFailure,
        /// Details for a person.
        message: String,
    },
    /// A command started on a host.
    JobStarted {
        /// Host label.
        host: String,
        /// 1-based job number.
        job: u64,
        /// The command as rendered (without secret environment values).
        command: String,
    },
    /// One line of output (without its newline). `partial` is true for a last line that
    /// had no newline, flushed when the stream ended.
    Output {
        /// Host label.
        host: String,
        /// 1-based job number.
        job: u64,
        /// Which stream.
        stream: Stream,
        /// The line's bytes (lossy UTF-8 in JSON).
        #[serde(with = "lossy")]
        line: Vec<u8>,
        /// The line had no trailing newline.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        partial: bool,
    },
    /// A command finished (or could not run) on a host.
    JobFinished {
        /// Host label.
        host: String,
        /// 1-based job number.
        job: u64,
        /// How it ended.
        outcome: Outcome,
        /// Time from start to end (zero when it never started; `elapsed_ms` in JSON).
        #[serde(rename = "elapsed_ms", with = "millis")]
        elapsed: Duration,
    },
    /// Counts changed.
    Progress {
        /// Current counts.
        counts: Counts,
    },
    /// The run is being cancelled (first Ctrl-C, or an error policy).
    RunCancelling {
        /// Why.
        reason: String,
    },
    /// The run ended.
    RunFinished {
        /// Final counts.
        counts: Counts,
        /// Wall time of the run (`elapsed_ms` in JSON).
        #[serde(rename = "elapsed_ms", with = "millis")]
        elapsed: Duration,
        /// True when the run was interrupted.
        interrupted: bool,
    },
}

impl Event {
    /// Serialises the event as one JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }
}

/// Durations as integer milliseconds in JSON (the convention of both streams).
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Output bytes as a (lossy) UTF-8 string in JSON.
mod lossy {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_event() {
        let ev = Event::JobFinished {
            host: "web01".into(),
            job: 3,
            outcome: Outcome::Signaled {
                signal: "TERM".into(),
                core_dumped: false,
            },
            elapsed: Duration::from_millis(1500),
        };
        let line = ev.to_json_line();
        assert_eq!(
            line,
            r#"{"event":"job_finished","host":"web01","job":3,"outcome":{"kind":"signaled","signal":"TERM","core_dumped":false},"elapsed_ms":1500}"#
        );
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn output_line_is_lossy_utf8_and_partial_only_when_set() {
        let ev = Event::Output {
            host: "h".into(),
            job: 1,
            stream: Stream::Stderr,
            line: b"caf\xc3\xa9 \xff".to_vec(),
            partial: false,
        };
        assert_eq!(
            ev.to_json_line(),
            r#"{"event":"output","host":"h","job":1,"stream":"stderr","line":"café �"}"#
        );
    }
}
