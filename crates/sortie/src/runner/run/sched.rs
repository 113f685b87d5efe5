//! The pure, synchronous scheduling core of `run`.
//!
//! [`Scheduler`] decides which job starts next, on which host and slot, and when; it is told
//! what happened ("host up", "host lost", "job finished", "job could not start") and the current
//! time. It does no I/O, spawns nothing and never reads a clock, so rates, delays, halting and
//! retries are tested as plain logic. The executor in [`super`] drives it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::{Halt, HaltWhen, Spread};

/// What the scheduler wants the executor to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start job `seq` on host index `host`, in `slot` (1-based, for `{slot}`).
    Start(Assignment),
    /// Job `seq` can run nowhere (every host is lost): report it as failed.
    Abandon {
        /// The job.
        seq: u64,
    },
    /// Nothing may start before this instant (rate or delay); ask again then.
    WaitUntil(Instant),
    /// Nothing can start until something happens (a slot frees, a host connects).
    Wait,
    /// No job is pending or running: the run is over.
    Done,
}

/// One job placed on one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// 1-based job number.
    pub seq: u64,
    /// Index of the host in the target list.
    pub host: usize,
    /// 1-based slot on that host.
    pub slot: u32,
    /// 1 for the first attempt, 2 for the first rerun, ...
    pub attempt: u32,
}

/// How an attempt ended, as far as scheduling cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// Success.
    Ok,
    /// Any failure (non-zero exit, signal, timeout, lost connection...): may be retried.
    Failed,
    /// Ended by cancellation or `halt now`: never retried, never counted for halting.
    Interrupted,
}

/// What becomes of a finished attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The job is queued again (another attempt will be started).
    Retry,
    /// The job is finished for good. `halt` is set when this result made the run halt.
    Final {
        /// The halt policy just triggered, if any.
        halt: Option<HaltWhen>,
    },
}

/// Scheduling parameters (from [`super::RunOptions`]).
#[derive(Clone, Debug)]
pub struct SchedConfig {
    /// Jobs at once per host.
    pub slots: u32,
    /// Jobs at once overall.
    pub jobs: Option<usize>,
    /// Minimum time between two starts (the larger of rate interval and delay).
    pub interval: Duration,
    /// How hosts are chosen.
    pub spread: Spread,
    /// Reruns of a failed job.
    pub retries: u32,
    /// Halt policy.
    pub halt: Option<Halt>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostState {
    Connecting,
    Up,
    Lost,
}

#[derive(Debug)]
struct HostSlots {
    state: HostState,
    /// Jobs allowed at once (the configured slots, lowered when the host cannot take more).
    limit: u32,
    busy: BTreeSet<u32>,
}

impl HostSlots {
    fn has_room(&self) -> bool {
        self.state == HostState::Up && (self.busy.len() as u32) < self.limit
    }
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    /// Attempts already made.
    attempts: u32,
    /// Hosts where it already failed.
    tried: Vec<usize>,
}

#[derive(Debug)]
struct Running {
    host: usize,
    slot: u32,
    attempts: u32,
    tried: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stopping {
    Cancelled,
    Halted(HaltWhen),
}

/// The scheduling state of one run. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedConfig,
    hosts: Vec<HostSlots>,
    /// Next fresh job number and the last one.
    next_fresh: u64,
    last: u64,
    skip: HashSet<u64>,
    queued: VecDeque<Queued>,
    running: HashMap<u64, Running>,
    total: u64,
    failed: u64,
    not_before: Option<Instant>,
    stopping: Option<Stopping>,
    rr: usize,
}

impl Scheduler {
    /// A scheduler for jobs `1..=jobs` except those in `skip`, over `hosts` hosts that are all
    /// still connecting.
    pub fn new(hosts: usize, jobs: u64, skip: HashSet<u64>, cfg: SchedConfig) -> Self {
        let skipped = skip.iter().filter(|s| (1..=jobs).contains(*s)).count() as u64;
        Scheduler {
            hosts: (0..hosts)
                .map(|_| HostSlots {
                    state: HostState::Connecting,
                    limit: cfg.slots.max(1),
                    busy: BTreeSet::new(),
                })
                .collect(),
            cfg,
            next_fresh: 1,
            last: jobs,
            skip,
            queued: VecDeque::new(),
            running: HashMap::new(),
            total: jobs - skipped,
            failed: 0,
            not_before: None,
            stopping: None,
            rr: 0,
        }
    }

    /// Number of jobs this run will try (skipped ones excluded).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Jobs running on host `host`.
    pub fn running_on(&self, host: usize) -> usize {
        self.hosts.get(host).map_or(0, |h| h.busy.len())
    }

    /// Jobs finished for good with a failure.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// The host is connected and may take jobs.
    pub fn host_up(&mut self, host: usize) {
        if let Some(h) = self.hosts.get_mut(host) {
            if h.state == HostState::Connecting {
                h.state = HostState::Up;
            }
        }
    }

    /// The host cannot be used any more (connect failure or lost connection). Returns true the
    /// first time, so the executor reports it once. Its running jobs are not touched: each one
    /// is reported through [`Scheduler::finished`] or [`Scheduler::requeue`].
    pub fn host_lost(&mut self, host: usize) -> bool {
        match self.hosts.get_mut(host) {
            Some(h) if h.state != HostState::Lost => {
                h.state = HostState::Lost;
                true
            }
            _ => false,
        }
    }

    /// Lowers the number of jobs the host takes at once (it could not open another connection
    /// for more); at least 1.
    pub fn limit_host(&mut self, host: usize, limit: u32) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.limit = limit.clamp(1, h.limit);
        }
    }

    /// The first Ctrl-C: start nothing more; running jobs are being stopped by the executor.
    pub fn cancel(&mut self) {
        self.stopping = Some(Stopping::Cancelled);
    }

    /// Whether the run stopped starting jobs, and why: `Some(None)` = cancelled,
    /// `Some(Some(when))` = halted.
    pub fn stopping(&self) -> Option<Option<HaltWhen>> {
        self.stopping.map(|s| match s {
            Stopping::Cancelled => None,
            Stopping::Halted(w) => Some(w),
        })
    }

    /// True while some job still waits to be started.
    pub fn has_pending(&self) -> bool {
        !self.queued.is_empty() || self.peek_fresh().is_some()
    }

    fn peek_fresh(&self) -> Option<u64> {
        let mut s = self.next_fresh;
        while s <= self.last && self.skip.contains(&s) {
            s += 1;
        }
        (s <= self.last).then_some(s)
    }

    fn take_fresh(&mut self) -> Option<u64> {
        let s = self.peek_fresh()?;
        self.next_fresh = s + 1;
        Some(s)
    }

    /// What to do now.
    pub fn next(&mut self, now: Instant) -> Decision {
        if self.stopping.is_some() || !self.has_pending() {
            return if self.running.is_empty() {
                Decision::Done
            } else {
                Decision::Wait
            };
        }
        if self.hosts.iter().all(|h| h.state == HostState::Lost) {
            let seq = match self.queued.pop_front() {
                Some(q) => q.seq,
                None => self.take_fresh().expect("has_pending checked"),
            };
            return Decision::Abandon { seq };
        }
        if self
            .cfg
            .jobs
            .is_some_and(|j| self.running.len() >= j.max(1))
        {
            return Decision::Wait;
        }
        if let Some(t) = self.not_before {
            if now < t {
                return Decision::WaitUntil(t);
            }
        }
        // Reruns first, each on a host where it has not failed when one is still alive.
        for i in 0..self.queued.len() {
            let tried = std::mem::take(&mut self.queued[i].tried);
            let untried_alive = self
                .hosts
                .iter()
                .enumerate()
                .any(|(h, s)| s.state != HostState::Lost && !tried.contains(&h));
            let exclude: &[usize] = if untried_alive { &tried } else { &[] };
            let picked = self.pick(exclude);
            self.queued[i].tried = tried;
            if let Some(host) = picked {
                let q = self.queued.remove(i).expect("index in range");
                return self.start(now, q.seq, host, q.attempts, q.tried);
            }
        }
        if self.peek_fresh().is_none() {
            return Decision::Wait;
        }
        if let Some(host) = self.pick(&[]) {
            let seq = self.take_fresh().expect("peeked above");
            return self.start(now, seq, host, 0, Vec::new());
        }
        Decision::Wait
    }

    fn pick(&mut self, exclude: &[usize]) -> Option<usize> {
        let ok = |i: usize, h: &HostSlots| h.has_room() && !exclude.contains(&i);
        match self.cfg.spread {
            Spread::RoundRobin => {
                let n = self.hosts.len();
                let found = (0..n)
                    .map(|k| (self.rr + k) % n)
                    .find(|&i| ok(i, &self.hosts[i]))?;
                self.rr = (found + 1) % n;
                Some(found)
            }
            Spread::LeastLoaded => self
                .hosts
                .iter()
                .enumerate()
                .filter(|(i, h)| ok(*i, h))
                .min_by(|(_, a), (_, b)| {
                    // Compare busy/limit ratios without division, then absolute load.
                    let (ra, la) = (a.busy.len() as u64, u64::from(a.limit));
                    let (rb, lb) = (b.busy.len() as u64, u64::from(b.limit));
                    (ra * lb).cmp(&(rb * la)).then(ra.cmp(&rb))
                })
                .map(|(i, _)| i),
        }
    }

    fn start(
        &mut self,
        now: Instant,
        seq: u64,
        host: usize,
        attempts: u32,
        tried: Vec<usize>,
    ) -> Decision {
        let h = &mut self.hosts[host];
        let slot = (1..).find(|s| !h.busy.contains(s)).expect("a free slot");
        h.busy.insert(slot);
        self.running.insert(
            seq,
            Running {
                host,
                slot,
                attempts: attempts + 1,
                tried,
            },
        );
        if !self.cfg.interval.is_zero() {
            self.not_before = Some(now + self.cfg.interval);
        }
        Decision::Start(Assignment {
            seq,
            host,
            slot,
            attempt: attempts + 1,
        })
    }

    fn release(&mut self, seq: u64) -> Option<Running> {
        let r = self.running.remove(&seq)?;
        self.hosts[r.host].busy.remove(&r.slot);
        Some(r)
    }

    /// The attempt of job `seq` never started (the server refused a channel, the connection
    /// was gone before the command ran): free its slot and queue it again, first in line,
    /// without counting an attempt.
    pub fn requeue(&mut self, seq: u64) {
        if let Some(r) = self.release(seq) {
            self.queued.push_front(Queued {
                seq,
                attempts: r.attempts - 1,
                tried: r.tried,
            });
        }
    }

    /// Job `seq`'s attempt ended with `result`: retry it or finish it, and apply the halt
    /// policy. Unknown jobs are treated as final.
    pub fn finished(&mut self, seq: u64, result: AttemptResult) -> Verdict {
        let Some(mut r) = self.release(seq) else {
            return Verdict::Final { halt: None };
        };
        match result {
            AttemptResult::Failed if r.attempts <= self.cfg.retries && self.stopping.is_none() => {
                r.tried.push(r.host);
                self.queued.push_back(Queued {
                    seq,
                    attempts: r.attempts,
                    tried: r.tried,
                });
                Verdict::Retry
            }
            AttemptResult::Failed => {
                self.failed += 1;
                Verdict::Final {
                    halt: self.check_halt(),
                }
            }
            AttemptResult::Ok | AttemptResult::Interrupted => Verdict::Final { halt: None },
        }
    }

    /// Counts a job that never ran (abandoned) as failed, applying the halt policy.
    pub fn abandoned(&mut self) -> Option<HaltWhen> {
        self.failed += 1;
        self.check_halt()
    }

    fn check_halt(&mut self) -> Option<HaltWhen> {
        let halt = self.cfg.halt?;
        if matches!(self.stopping, Some(Stopping::Halted(_))) {
            // `soon` may still become `now` when failures keep coming (GNU parallel does not;
            // neither do we): one halt per run.
            return None;
        }
        if halt.fail.reached(self.failed, self.total) {
            if self.stopping.is_none() {
                self.stopping = Some(Stopping::Halted(halt.when));
            }
            return Some(halt.when);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::FailThreshold;
    use super::*;

    fn cfg() -> SchedConfig {
        SchedConfig {
            slots: 2,
            jobs: None,
            interval: Duration::ZERO,
            spread: Spread::LeastLoaded,
            retries: 0,
            halt: None,
        }
    }

    fn start(d: Decision) -> Assignment {
        match d {
            Decision::Start(a) => a,
            other => panic!("expected a start, got {other:?}"),
        }
    }

    #[test]
    fn nothing_starts_before_a_host_is_up_and_slots_bound_each_host() {
        let t = Instant::now();
        let mut s = Scheduler::new(2, 10, HashSet::new(), cfg());
        assert_eq!(s.next(t), Decision::Wait);
        s.host_up(0);
        let a = start(s.next(t));
        let b = start(s.next(t));
        assert_eq!((a.host, a.slot, b.host, b.slot), (0, 1, 0, 2));
        assert_eq!(s.next(t), Decision::Wait, "host 0 is full");
        s.host_up(1);
        let c = start(s.next(t));
        assert_eq!(c.host, 1);
        assert_eq!(
            s.finished(a.seq, AttemptResult::Ok),
            Verdict::Final { halt: None }
        );
        let d = start(s.next(t));
        assert_eq!(
            (d.host, d.slot),
            (0, 1),
            "least loaded host, lowest free slot"
        );
    }

    #[test]
    fn least_loaded_spreads_evenly_and_round_robin_cycles() {
        let t = Instant::now();
        let mut s = Scheduler::new(3, 6, HashSet::new(), cfg());
        (0..3).for_each(|h| s.host_up(h));
        let hosts: Vec<usize> = (0..6).map(|_| start(s.next(t)).host).collect();
        assert_eq!(hosts, [0, 1, 2, 0, 1, 2]);

        let mut c = cfg();
        c.spread = Spread::RoundRobin;
        c.slots = 5;
        let mut s = Scheduler::new(3, 10, HashSet::new(), c);
        (0..3).for_each(|h| s.host_up(h));
        let a = start(s.next(t));
        s.finished(a.seq, AttemptResult::Ok);
        // Host 0 is now the least loaded, but round robin moves on.
        let hosts: Vec<usize> = (0..4).map(|_| start(s.next(t)).host).collect();
        assert_eq!(hosts, [1, 2, 0, 1]);
    }

    #[test]
    fn jobs_limit_bounds_jobs_in_flight_overall() {
        let t = Instant::now();
        let mut c = cfg();
        c.jobs = Some(3);
        let mut s = Scheduler::new(4, 10, HashSet::new(), c);
        (0..4).for_each(|h| s.host_up(h));
        let started: Vec<_> = (0..3).map(|_| start(s.next(t))).collect();
        assert_eq!(s.next(t), Decision::Wait);
        s.finished(started[1].seq, AttemptResult::Ok);
        start(s.next(t));
        assert_eq!(s.next(t), Decision::Wait);
    }

    #[test]
    fn interval_spaces_starts_globally() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.interval = Duration::from_millis(200);
        c.slots = 10;
        let mut s = Scheduler::new(2, 5, HashSet::new(), c);
        s.host_up(0);
        s.host_up(1);
        start(s.next(t0));
        assert_eq!(
            s.next(t0 + Duration::from_millis(50)),
            Decision::WaitUntil(t0 + Duration::from_millis(200))
        );
        let t1 = t0 + Duration::from_millis(230);
        start(s.next(t1));
        assert_eq!(
            s.next(t1),
            Decision::WaitUntil(t1 + Duration::from_millis(200))
        );
    }

    #[test]
    fn a_failed_job_is_retried_on_another_host_when_there_is_one() {
        let t = Instant::now();
        let mut c = cfg();
        c.retries = 2;
        c.slots = 1;
        let mut s = Scheduler::new(2, 1, HashSet::new(), c);
        s.host_up(0);
        let a = start(s.next(t));
        assert_eq!(a.host, 0);
        assert_eq!(s.finished(1, AttemptResult::Failed), Verdict::Retry);
        // Host 1 is still connecting: the rerun waits for it rather than reuse host 0.
        assert_eq!(s.next(t), Decision::Wait);
        s.host_up(1);
        let b = start(s.next(t));
        assert_eq!((b.seq, b.host, b.attempt), (1, 1, 2));
        assert_eq!(s.finished(1, AttemptResult::Failed), Verdict::Retry);
        // Failed everywhere: any host will do.
        let c3 = start(s.next(t));
        assert_eq!(c3.attempt, 3);
        assert_eq!(
            s.finished(1, AttemptResult::Failed),
            Verdict::Final { halt: None },
            "2 reruns and no more"
        );
        assert_eq!(s.failed(), 1);
        assert_eq!(s.next(t), Decision::Done);
    }

    #[test]
    fn lost_host_is_not_used_again_and_requeued_job_keeps_its_attempts() {
        let t = Instant::now();
        let mut c = cfg();
        c.slots = 1;
        let mut s = Scheduler::new(2, 3, HashSet::new(), c);
        s.host_up(0);
        s.host_up(1);
        let a = start(s.next(t));
        let b = start(s.next(t));
        assert!(s.host_lost(a.host));
        assert!(!s.host_lost(a.host), "reported once");
        s.requeue(a.seq);
        assert_eq!(s.next(t), Decision::Wait, "host {} is full", b.host);
        s.finished(b.seq, AttemptResult::Ok);
        let again = start(s.next(t));
        assert_eq!((again.seq, again.host, again.attempt), (a.seq, b.host, 1));
    }

    #[test]
    fn with_every_host_lost_pending_jobs_are_abandoned_once_each() {
        let t = Instant::now();
        let mut s = Scheduler::new(1, 3, HashSet::new(), cfg());
        s.host_lost(0);
        let mut abandoned = Vec::new();
        loop {
            match s.next(t) {
                Decision::Abandon { seq } => abandoned.push(seq),
                Decision::Done => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(abandoned, [1, 2, 3]);
    }

    #[test]
    fn skipped_jobs_are_not_started_and_not_counted() {
        let t = Instant::now();
        let mut c = cfg();
        c.slots = 10;
        let mut s = Scheduler::new(1, 5, HashSet::from([2, 4, 9]), c);
        s.host_up(0);
        assert_eq!(s.total(), 3);
        let seqs: Vec<u64> = (0..3).map(|_| start(s.next(t)).seq).collect();
        assert_eq!(seqs, [1, 3, 5]);
        assert_eq!(s.next(t), Decision::Wait);
    }

    #[test]
    fn halt_soon_stops_starting_and_lets_running_jobs_finish() {
        let t = Instant::now();
        let mut c = cfg();
        c.slots = 3;
        c.halt = Some(Halt {
            when: HaltWhen::Soon,
            fail: FailThreshold::Count(1),
        });
        let mut s = Scheduler::new(1, 10, HashSet::new(), c);
        s.host_up(0);
        let a = start(s.next(t));
        let b = start(s.next(t));
        assert_eq!(
            s.finished(a.seq, AttemptResult::Failed),
            Verdict::Final {
                halt: Some(HaltWhen::Soon)
            }
        );
        assert_eq!(s.next(t), Decision::Wait, "job {} still runs", b.seq);
        assert_eq!(s.stopping(), Some(Some(HaltWhen::Soon)));
        s.finished(b.seq, AttemptResult::Ok);
        assert_eq!(s.next(t), Decision::Done);
    }

    #[test]
    fn halt_percentage_is_of_all_jobs_like_gnu_parallel() {
        // GNU parallel 20221122: `--halt soon,fail=20%` over 10 jobs halts at the 2nd failure.
        let t = Instant::now();
        let mut c = cfg();
        c.slots = 1;
        c.halt = Some(Halt {
            when: HaltWhen::Now,
            fail: FailThreshold::Percent(20.0),
        });
        let mut s = Scheduler::new(1, 10, HashSet::new(), c);
        s.host_up(0);
        let a = start(s.next(t));
        assert_eq!(
            s.finished(a.seq, AttemptResult::Failed),
            Verdict::Final { halt: None }
        );
        let b = start(s.next(t));
        assert_eq!(
            s.finished(b.seq, AttemptResult::Failed),
            Verdict::Final {
                halt: Some(HaltWhen::Now)
            }
        );
        assert_eq!(s.next(t), Decision::Done);
    }

    #[test]
    fn interrupted_jobs_are_neither_retried_nor_counted_as_failures() {
        let t = Instant::now();
        let mut c = cfg();
        c.retries = 3;
        let mut s = Scheduler::new(1, 2, HashSet::new(), c);
        s.host_up(0);
        let a = start(s.next(t));
        s.cancel();
        assert_eq!(
            s.finished(a.seq, AttemptResult::Interrupted),
            Verdict::Final { halt: None }
        );
        assert_eq!(s.failed(), 0);
        assert_eq!(s.next(t), Decision::Done, "job 2 never starts");
    }

    #[test]
    fn limit_host_lowers_concurrency_but_keeps_one() {
        let t = Instant::now();
        let mut c = cfg();
        c.slots = 4;
        let mut s = Scheduler::new(1, 10, HashSet::new(), c);
        s.host_up(0);
        let a = start(s.next(t));
        start(s.next(t));
        s.limit_host(0, 0);
        assert_eq!(s.next(t), Decision::Wait);
        s.finished(a.seq, AttemptResult::Ok);
        assert_eq!(s.next(t), Decision::Wait, "limit 1, one still running");
    }
}
