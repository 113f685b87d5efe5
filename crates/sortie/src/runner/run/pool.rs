//! Connections to one host, shared by the jobs that run there.
//!
//! Jobs run as channels multiplexed over SSH connections. A server limits channels per
//! connection (OpenSSH `MaxSessions`, 10 by default), so a host may need several connections:
//! when a server refuses a channel the pool marks that connection full (keeping one channel
//! spare for the stop script that ends a job) and the job takes another connection, opened on
//! demand under the run's `fanout` bound. The pool knows nothing about scheduling; the
//! executor in [`super`] decides which job runs where.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use super::Msg;
use crate::runner::Attempt;
use crate::transport::{
    ByteStream, Command, Connection, Process, SpawnError, StopSequence, Target, Transport,
};

struct Slot {
    conn: Arc<dyn Connection>,
    /// Jobs holding this connection (spawning or running).
    active: usize,
    /// Channels of ours known open (spawned and not yet finished).
    open: usize,
    /// Channels the server allows on this connection, once it refused one: the fewest other
    /// jobs that held the connection when it refused. Jobs whose channel was accepted keep
    /// holding it while the refused ones let go, so the last refusal of a burst sees exactly
    /// the accepted ones; later refusals can only lower it.
    cap: Option<usize>,
}

impl Slot {
    /// Room for one more job, keeping one channel spare for the stop script that ends a job.
    fn has_room(&self) -> bool {
        !self.conn.is_closed()
            && self
                .cap
                .is_none_or(|c| self.active < c.saturating_sub(1).max(1))
    }

    fn new(conn: Arc<dyn Connection>, active: usize) -> Self {
        let cap = conn.channel_limit();
        Slot {
            conn,
            active,
            open: 0,
            cap,
        }
    }
}

#[derive(Default)]
struct Inner {
    slots: Vec<Slot>,
    /// The host is lost or the run ended: no connection is handed out or kept.
    closed: bool,
}

/// A connection lent to one job.
pub(crate) struct Lease {
    pub idx: usize,
    pub conn: Arc<dyn Connection>,
}

/// Why no connection could be lent.
pub(crate) enum AcquireError {
    /// The host is lost.
    Closed,
    /// The run is stopping.
    Cancelled,
    /// Opening another connection failed (its `HostFailed` was sent).
    Connect,
}

/// The connections to one host.
pub(crate) struct HostPool {
    pub index: usize,
    pub target: Target,
    /// Short critical sections only (never held across an await).
    inner: StdMutex<Inner>,
    /// Held while opening another connection, so a host opens one at a time while jobs on its
    /// existing connections carry on.
    opening: Mutex<()>,
}

impl HostPool {
    pub(crate) fn new(index: usize, target: Target) -> Self {
        HostPool {
            index,
            target,
            inner: StdMutex::new(Inner::default()),
            opening: Mutex::new(()),
        }
    }

    /// Adds an established connection (closed at once if the pool is closed).
    pub(crate) async fn add(&self, conn: Arc<dyn Connection>) {
        let closed = {
            let mut inner = self.inner.lock().unwrap();
            if !inner.closed {
                inner.slots.push(Slot::new(conn.clone(), 0));
            }
            inner.closed
        };
        if closed {
            conn.close().await;
        }
    }

    /// A lease on a connection with room, if any.
    fn lend(&self) -> Result<Option<Lease>, AcquireError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.closed {
            return Err(AcquireError::Closed);
        }
        Ok(inner
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.has_room())
            .map(|(idx, s)| {
                s.active += 1;
                Lease {
                    idx,
                    conn: s.conn.clone(),
                }
            }))
    }

    /// Lends a connection with room for one more channel, opening one when none has room.
    pub(crate) async fn acquire(
        &self,
        transport: &dyn Transport,
        fanout: &Semaphore,
        tx: &mpsc::Sender<Msg>,
        cancel: &CancellationToken,
    ) -> Result<Lease, AcquireError> {
        if let Some(l) = self.lend()? {
            return Ok(l);
        }
        let _opening = tokio::select! {
            g = self.opening.lock() => g,
            _ = cancel.cancelled() => return Err(AcquireError::Cancelled),
        };
        // Another job may have opened one (or jobs ended) while we waited.
        if let Some(l) = self.lend()? {
            return Ok(l);
        }
        let _permit = tokio::select! {
            p = fanout.acquire() => p.map_err(|_| AcquireError::Cancelled)?,
            _ = cancel.cancelled() => return Err(AcquireError::Cancelled),
        };
        let stopped = "the run stopped while connecting";
        let conn =
            match crate::runner::connect_announced(transport, &self.target, cancel, stopped, tx)
                .await
            {
                Attempt::Up(conn) => conn,
                Attempt::Failed(_) if !cancel.is_cancelled() => return Err(AcquireError::Connect),
                Attempt::Failed(_) | Attempt::Cancelled => return Err(AcquireError::Cancelled),
            };
        let idx = {
            let mut inner = self.inner.lock().unwrap();
            if inner.closed {
                None
            } else {
                inner.slots.push(Slot::new(conn.clone(), 1));
                Some(inner.slots.len() - 1)
            }
        };
        match idx {
            Some(idx) => Ok(Lease { idx, conn }),
            None => {
                conn.close().await;
                Err(AcquireError::Closed)
            }
        }
    }

    /// A job's channel opened on connection `idx`.
    pub(crate) async fn spawned(&self, idx: usize) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(s) = inner.slots.get_mut(idx) {
            s.open += 1;
        }
    }

    /// The job gives its connection back.
    pub(crate) async fn release(&self, lease: &Lease, spawned: bool) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(s) = inner.slots.get_mut(lease.idx) {
            s.active = s.active.saturating_sub(1);
            if spawned {
                s.open = s.open.saturating_sub(1);
            }
        }
    }

    /// The server refused a channel on connection `idx` (the caller still holds its lease);
    /// returns true when the caller was alone on it: the server refuses even one channel.
    pub(crate) async fn refused(&self, idx: usize) -> bool {
        let mut inner = self.inner.lock().unwrap();
        match inner.slots.get_mut(idx) {
            Some(s) => {
                let others = s.active.saturating_sub(1);
                s.cap = Some(s.cap.map_or(others, |c| c.min(others)));
                others == 0
            }
            None => true,
        }
    }

    /// Every live connection (to stop a process from any of them).
    pub(crate) async fn connections(&self) -> Vec<Arc<dyn Connection>> {
        let inner = self.inner.lock().unwrap();
        inner
            .slots
            .iter()
            .filter(|s| !s.conn.is_closed())
            .map(|s| s.conn.clone())
            .collect()
    }

    /// Closes the pool: lends nothing more and closes every connection.
    pub(crate) async fn close(&self) {
        let conns: Vec<_> = {
            let mut inner = self.inner.lock().unwrap();
            inner.closed = true;
            inner.slots.drain(..).map(|s| s.conn).collect()
        };
        for c in conns {
            c.close().await;
        }
    }
}

/// How long a stop keeps looking for a channel before giving up (the channel's own watchdog
/// still ends the process when its channel closes).
const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// The connection a job sees: the pooled connection, plus what the scheduler must learn from
/// it (was a channel refused, did the command start), and a stop that still works when the
/// job's own connection has no channel left.
pub(crate) struct JobConn {
    inner: Arc<dyn Connection>,
    pool: Arc<HostPool>,
    transport: Arc<dyn Transport>,
    idx: usize,
    pub refused: AtomicBool,
    pub spawned: AtomicBool,
}

impl JobConn {
    pub(crate) fn new(lease: &Lease, pool: Arc<HostPool>, transport: Arc<dyn Transport>) -> Self {
        JobConn {
            inner: lease.conn.clone(),
            pool,
            transport,
            idx: lease.idx,
            refused: AtomicBool::new(false),
            spawned: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl Connection for JobConn {
    async fn spawn(&self, command: &Command) -> Result<Process, SpawnError> {
        match self.inner.spawn(command).await {
            Ok(p) => {
                self.spawned.store(true, Ordering::Release);
                self.pool.spawned(self.idx).await;
                Ok(p)
            }
            Err(SpawnError::ChannelRefused(m)) => {
                self.refused.store(true, Ordering::Release);
                Err(SpawnError::ChannelRefused(m))
            }
            Err(e) => Err(e),
        }
    }

    /// Stops the group through the job's connection; when that one has no channel left, through
    /// another connection to the same host, else through a connection opened for the purpose.
    async fn stop(&self, pgid: u32, sequence: &StopSequence) -> Result<(), SpawnError> {
        let deadline = Instant::now() + STOP_PATIENCE;
        let mut own: Option<Arc<dyn Connection>> = None;
        let result = loop {
            match self.inner.stop(pgid, sequence).await {
                Err(SpawnError::ChannelRefused(_)) => {}
                other => break other,
            }
            let mut done = None;
            for c in self.pool.connections().await {
                match c.stop(pgid, sequence).await {
                    Err(SpawnError::ChannelRefused(_)) | Err(SpawnError::Lost(_)) => {}
                    other => {
                        done = Some(other);
                        break;
                    }
                }
            }
            if let Some(r) = done {
                break r;
            }
            if own.is_none() {
                own = self.transport.connect(&self.pool.target).await.ok();
            }
            if let Some(c) = &own {
                match c.stop(pgid, sequence).await {
                    Err(SpawnError::ChannelRefused(_)) => {}
                    other => break other,
                }
            }
            if Instant::now() >= deadline {
                break Err(SpawnError::ChannelRefused(
                    "no channel to stop the process".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Some(c) = own {
            c.close().await;
        }
        result
    }

    async fn signal(&self, pgid: u32, signal: &str) -> Result<(), SpawnError> {
        self.inner.signal(pgid, signal).await
    }

    async fn subsystem(&self, name: &str) -> Result<ByteStream, SpawnError> {
        self.inner.subsystem(name).await
    }

    async fn exec_stream(&self, command: &str) -> Result<ByteStream, SpawnError> {
        self.inner.exec_stream(command).await
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn channel_limit(&self) -> Option<usize> {
        self.inner.channel_limit()
    }

    async fn close(&self) {
        // The pool owns the connection; a job never closes it.
    }
}
