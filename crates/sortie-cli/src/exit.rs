//! Exit codes, documented in the README ("Exit codes").

use std::collections::BTreeMap;

use sortie::Bucket;

/// The process exit codes of `sortie`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// Every host (job) succeeded.
    Ok = 0,
    /// At least one command failed: non-zero exit, signal, timeout or no exit status.
    CommandFailed = 1,
    /// Bad input or usage; nothing was contacted.
    Usage = 2,
    /// At least one host could not be reached, authenticated, had its host key refused,
    /// or was lost during the run.
    HostFailed = 3,
    /// A launch threshold failed.
    #[allow(dead_code)]
    ThresholdFailed = 4,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl ExitCode {
    /// The code for a finished run: interrupted beats host failures beats command failures.
    pub fn for_run(interrupted: bool, buckets: &BTreeMap<Bucket, usize>) -> ExitCode {
        let any = |b: &[Bucket]| b.iter().any(|b| buckets.get(b).copied().unwrap_or(0) > 0);
        if interrupted || any(&[Bucket::Interrupted]) {
            ExitCode::Interrupted
        } else if any(&[
            Bucket::Unreachable,
            Bucket::AuthFailed,
            Bucket::HostKeyRefused,
            Bucket::ConnectionLost,
        ]) {
            ExitCode::HostFailed
        } else if any(&[
            Bucket::ExitedNonZero,
            Bucket::TransferFailed,
            Bucket::Signaled,
            Bucket::TimedOut,
            Bucket::NoExitStatus,
        ]) {
            ExitCode::CommandFailed
        } else {
            ExitCode::Ok
        }
    }
}
