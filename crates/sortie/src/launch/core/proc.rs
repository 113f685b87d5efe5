//! One process of the launch as the core sees it: its identity, its attempts, and its state as
//! one enum whose variants carry what that state needs.

use tokio::time::Instant;

use sortie_events::launch::Ending;

/// Why a running attempt is on its way out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// sortie asked it to stop (end of run, interrupt, dependents first).
    Stopping,
    /// It failed (fail line, ready timeout, lost connection); it is being stopped and its
    /// exit decides whether it restarts. A failure stays the reason even when a stop follows.
    Failed(Ending),
}

/// An attempt that runs (or is being started) on its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Running {
    /// When sortie started it.
    pub started: Instant,
    /// Its process group on the host, once it runs.
    pub pgid: Option<u32>,
    /// Set once it is on its way out.
    pub closing: Option<Closing>,
}

impl Running {
    /// The failure of this attempt, if any.
    pub fn failure(&self) -> Option<&Ending> {
        match &self.closing {
            Some(Closing::Failed(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether it failed or was asked to stop.
    pub fn closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Marks it asked to stop (a failure stays the reason).
    pub fn request_stop(&mut self) {
        if self.closing.is_none() {
            self.closing = Some(Closing::Stopping);
        }
    }
}

/// Where a process is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PState {
    /// Waiting to start (dependency, rate, host, restart delay).
    Pending {
        /// Not before this instant (restart delay).
        not_before: Instant,
    },
    /// Started, not ready yet.
    Starting(Running),
    /// Printed its ready line (or has none) and runs.
    Ready(Running),
    /// Ended for good.
    Done {
        /// How.
        ending: Ending,
    },
}

/// One process of the plan.
#[derive(Clone, Debug)]
pub(crate) struct Proc {
    /// Index of its role.
    pub role: usize,
    /// Index of the host it is on now (changes when moved).
    pub host: usize,
    /// Attempts started.
    pub attempt: u32,
    /// Restarts so far.
    pub restarts: u32,
    /// Its state.
    pub state: PState,
}

impl Proc {
    /// The running attempt, in either running state.
    pub fn running(&self) -> Option<&Running> {
        match &self.state {
            PState::Starting(r) | PState::Ready(r) => Some(r),
            _ => None,
        }
    }

    /// The running attempt, mutably.
    pub fn running_mut(&mut self) -> Option<&mut Running> {
        match &mut self.state {
            PState::Starting(r) | PState::Ready(r) => Some(r),
            _ => None,
        }
    }

    /// Whether it is starting or ready.
    pub fn is_alive(&self) -> bool {
        self.running().is_some()
    }

    /// Whether it is waiting to start.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, PState::Pending { .. })
    }

    /// Whether it ended for good.
    pub fn is_done(&self) -> bool {
        matches!(self.state, PState::Done { .. })
    }

    /// The ending of a stopped attempt: its failure, else whether it had become ready.
    pub fn stopped_ending(&self) -> Option<Ending> {
        match &self.state {
            PState::Starting(r) => Some(r.failure().cloned().unwrap_or(Ending::StoppedBeforeReady)),
            PState::Ready(r) => Some(r.failure().cloned().unwrap_or(Ending::ReadyThenStopped)),
            _ => None,
        }
    }
}
