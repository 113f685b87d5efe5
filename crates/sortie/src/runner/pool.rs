//! The connections to one host, shared by everything that runs there: the jobs of `sortie run`,
//! the processes, control scripts and transfers of `sortie launch`.
//!
//! Work runs as channels multiplexed over SSH connections. A server limits channels per
//! connection (OpenSSH `MaxSessions`, 10 by default; a Dropbear may need a limit it does not
//! announce, see [`Connection::channel_limit`]), so a host may need several connections. The
//! pool lends a connection with room; when the server refuses a channel the borrower tells the
//! pool ([`HostPool::refused`]), which learns that connection's capacity, and takes another
//! one, opened on demand under the run's fan-out bound, one at a time per host. Long-lived work
//! leaves one channel spare on each connection for the control script that stops it.
//!
//! The pool owns the connections' bookkeeping and nothing else: it knows nothing about
//! scheduling, plans or reporters. How a connection is opened (announced with `HostConnecting`
//! / `HostConnected` / `HostFailed` for `run`, quietly for `launch`, which reports hosts its
//! own way) is the caller's [`Opener`].

use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use sortie_events::ConnectFailure;
use tokio::sync::{Mutex, MutexGuard, Semaphore};
use tokio_util::sync::CancellationToken;

use super::Attempt;
use crate::transport::{
    Command, ConnectError, Connection, Exit, Process, ProcessEvent, SpawnError, Target, Transport,
};

/// Tries of [`HostPool::spawn`] and [`HostPool::script`] when channels are refused, and
/// `launch`'s bound on a host's live connections ([`HostPool::with_max_connections`]): safety
/// bounds against a server refusing every channel.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// How a connection of the pool is opened.
#[async_trait]
pub(crate) trait Opener: Send + Sync {
    /// Connects `target` through `transport`, unless `cancel` fires first.
    async fn open(
        &self,
        transport: &dyn Transport,
        target: &Target,
        cancel: &CancellationToken,
    ) -> Attempt;
}

/// Opens connections without sending any event.
pub(crate) struct Quiet;

#[async_trait]
impl Opener for Quiet {
    async fn open(
        &self,
        transport: &dyn Transport,
        target: &Target,
        cancel: &CancellationToken,
    ) -> Attempt {
        tokio::select! {
            r = transport.connect(target) => match r {
                Ok(conn) => Attempt::Up(conn),
                Err(e) => Attempt::Failed(e),
            },
            _ = cancel.cancelled() => Attempt::Cancelled,
        }
    }
}

/// What a borrowed channel is for, which decides whether it may take a connection's spare
/// channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Usage {
    /// Long-lived work (a job, a process, a follower): leaves one channel spare.
    Process,
    /// A short control script or a transfer: may take the spare channel.
    Control,
}

impl Usage {
    /// Holders a connection of capacity `cap` takes for this use.
    fn limit(self, cap: usize) -> usize {
        match self {
            Usage::Process => cap.saturating_sub(1).max(1),
            Usage::Control => cap.max(1),
        }
    }
}

struct Slot {
    /// Names the slot for its leases (slots may be dropped, so positions move).
    id: u64,
    conn: Arc<dyn Connection>,
    /// Leases out on this connection (spawning, running, or running a script).
    active: usize,
    /// Channels the server allows on this connection: the transport's own limit, or, once it
    /// refused one, the fewest other holders when it refused. Holders whose channel was
    /// accepted keep holding it while the refused ones let go, so the last refusal of a burst
    /// sees exactly the accepted ones; later refusals can only lower it.
    cap: Option<usize>,
}

impl Slot {
    fn new(id: u64, conn: Arc<dyn Connection>, active: usize) -> Self {
        let cap = conn.channel_limit();
        Slot {
            id,
            conn,
            active,
            cap,
        }
    }

    /// Room for one more holder of kind `usage`.
    fn has_room(&self, usage: Usage) -> bool {
        !self.conn.is_closed() && self.cap.is_none_or(|c| self.active < usage.limit(c))
    }

    /// The server refused a channel to one of the holders: its capacity is at most the
    /// others. Returns true when that holder was alone (the server refuses even one channel).
    fn refused(&mut self) -> bool {
        let others = self.active.saturating_sub(1);
        self.cap = Some(self.cap.map_or(others, |c| c.min(others)));
        others == 0
    }
}

#[derive(Default)]
struct Inner {
    slots: Vec<Slot>,
    next_id: u64,
    /// Closed for good (the host is lost or the run ended): nothing is lent or kept.
    closed: bool,
    /// Marked down: nothing more is started on the host (scripts still run).
    down: bool,
}

impl Inner {
    /// Adds `conn` with `active` holders; `None` (and `conn` is the caller's to close) when
    /// the pool is closed.
    fn push(&mut self, conn: Arc<dyn Connection>, active: usize) -> Option<Lease> {
        if self.closed {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push(Slot::new(id, conn.clone(), active));
        Some(Lease { id, conn })
    }

    fn slot(&mut self, lease: &Lease) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == lease.id)
    }

    fn live(&self) -> usize {
        self.slots.iter().filter(|s| !s.conn.is_closed()).count()
    }
}

/// A connection lent to one holder: give it back with [`HostPool::release`].
pub(crate) struct Lease {
    id: u64,
    conn: Arc<dyn Connection>,
}

impl Lease {
    /// The lent connection.
    pub(crate) fn conn(&self) -> &Arc<dyn Connection> {
        &self.conn
    }
}

/// Why no connection could be lent.
#[derive(Debug)]
pub(crate) enum AcquireError {
    /// The pool is closed for good (the host is lost, or the run ended).
    Closed,
    /// `cancel` fired.
    Cancelled,
    /// Opening another connection failed (the opener reported it).
    Connect(ConnectError),
    /// The pool holds its most connections and none has room.
    Full,
}

impl From<AcquireError> for SpawnError {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::Closed => SpawnError::Lost("the host's connections are closed".into()),
            AcquireError::Cancelled => SpawnError::Lost("cancelled".into()),
            AcquireError::Connect(e) => SpawnError::Lost(e.message),
            AcquireError::Full => {
                SpawnError::ChannelRefused("no connection has a free channel".into())
            }
        }
    }
}

/// The connections to one host.
pub(crate) struct HostPool {
    /// The host's position in the run.
    pub index: usize,
    /// Where the connections go.
    pub target: Target,
    transport: Arc<dyn Transport>,
    /// The run's bound on connections being opened at once, over all hosts.
    fanout: Arc<Semaphore>,
    opener: Box<dyn Opener>,
    max_connections: usize,
    /// Short critical sections only (never held across an await).
    inner: StdMutex<Inner>,
    /// Held while opening a connection, so a host opens one at a time while work on its
    /// existing connections carries on.
    opening: Mutex<()>,
}

impl HostPool {
    /// An empty pool for host `index` at `target`; connections are opened by `opener` through
    /// `transport`, each under a permit of `fanout`. It opens as many connections as needed.
    pub(crate) fn new(
        index: usize,
        target: Target,
        transport: Arc<dyn Transport>,
        fanout: Arc<Semaphore>,
        opener: Box<dyn Opener>,
    ) -> Self {
        HostPool {
            index,
            target,
            transport,
            fanout,
            opener,
            max_connections: usize::MAX,
            inner: StdMutex::new(Inner::default()),
            opening: Mutex::new(()),
        }
    }

    /// The same pool, keeping at most `max` live connections.
    pub(crate) fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// The transport the pool connects through.
    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("pool lock")
    }

    async fn lock_opening(&self, cancel: &CancellationToken) -> Option<MutexGuard<'_, ()>> {
        tokio::select! {
            g = self.opening.lock() => Some(g),
            _ = cancel.cancelled() => None,
        }
    }

    /// Opens one connection: the only place the pool connects. Waits for a fan-out permit,
    /// then runs the opener. `None` when `cancel` fired before the attempt began (nothing was
    /// tried or reported).
    async fn open(&self, cancel: &CancellationToken) -> Option<Attempt> {
        let _permit = tokio::select! {
            p = self.fanout.acquire() => p.ok()?,
            _ = cancel.cancelled() => return None,
        };
        Some(
            self.opener
                .open(&*self.transport, &self.target, cancel)
                .await,
        )
    }

    /// Opens a connection and adds it, dropping the connections that were lost: the host's
    /// first connection, or a new one after every one was lost. `None` when `cancel` fired
    /// before the attempt began. A connection opened after the pool closed is closed.
    pub(crate) async fn connect(&self, cancel: &CancellationToken) -> Option<Attempt> {
        let _opening = self.lock_opening(cancel).await?;
        let attempt = self.open(cancel).await?;
        if let Attempt::Up(conn) = &attempt {
            let added = {
                let mut inner = self.inner();
                inner.slots.retain(|s| !s.conn.is_closed());
                inner.push(conn.clone(), 0)
            };
            if added.is_none() {
                conn.close().await;
            }
        }
        Some(attempt)
    }

    /// A lease on a connection with room for `usage`, if any.
    fn lend(&self, usage: Usage) -> Result<Option<Lease>, AcquireError> {
        let mut inner = self.inner();
        if inner.closed {
            return Err(AcquireError::Closed);
        }
        Ok(inner.slots.iter_mut().find(|s| s.has_room(usage)).map(|s| {
            s.active += 1;
            Lease {
                id: s.id,
                conn: s.conn.clone(),
            }
        }))
    }

    /// Lends a connection with room for one more channel of kind `usage`, opening one when
    /// none has room.
    pub(crate) async fn acquire(
        &self,
        usage: Usage,
        cancel: &CancellationToken,
    ) -> Result<Lease, AcquireError> {
        if let Some(l) = self.lend(usage)? {
            return Ok(l);
        }
        let Some(_opening) = self.lock_opening(cancel).await else {
            return Err(AcquireError::Cancelled);
        };
        // Another holder may have opened one (or let one go) while we waited.
        if let Some(l) = self.lend(usage)? {
            return Ok(l);
        }
        if self.inner().live() >= self.max_connections {
            return Err(AcquireError::Full);
        }
        let conn = match self.open(cancel).await {
            Some(Attempt::Up(conn)) => conn,
            Some(Attempt::Failed(e)) if !cancel.is_cancelled() => {
                return Err(AcquireError::Connect(e))
            }
            Some(Attempt::Failed(_) | Attempt::Cancelled) | None => {
                return Err(AcquireError::Cancelled)
            }
        };
        let lease = self.inner().push(conn.clone(), 1);
        match lease {
            Some(l) => Ok(l),
            None => {
                conn.close().await;
                Err(AcquireError::Closed)
            }
        }
    }

    /// The server refused a channel on the lease's connection (the caller still holds the
    /// lease): learns the connection's capacity. Returns true when the caller was alone on it:
    /// the server refuses even one channel.
    pub(crate) fn refused(&self, lease: &Lease) -> bool {
        self.inner().slot(lease).is_none_or(Slot::refused)
    }

    /// The holder gives its connection back.
    pub(crate) fn release(&self, lease: Lease) {
        if let Some(s) = self.inner().slot(&lease) {
            s.active = s.active.saturating_sub(1);
        }
    }

    /// Every live connection (to stop a process from any of them).
    pub(crate) fn connections(&self) -> Vec<Arc<dyn Connection>> {
        (self.inner().slots.iter())
            .filter(|s| !s.conn.is_closed())
            .map(|s| s.conn.clone())
            .collect()
    }

    /// A live connection of the host, if any (for a sampler, which holds it outside the
    /// bookkeeping).
    pub(crate) fn connection(&self) -> Option<Arc<dyn Connection>> {
        self.connections().into_iter().next()
    }

    /// Closes the pool for good: lends nothing more and closes every connection.
    pub(crate) async fn close(&self) {
        self.close_all(true).await;
    }

    /// Closes every connection; a later demand opens a new one.
    pub(crate) async fn disconnect(&self) {
        self.close_all(false).await;
    }

    async fn close_all(&self, for_good: bool) {
        let conns: Vec<_> = {
            let mut inner = self.inner();
            inner.closed |= for_good;
            inner.slots.drain(..).map(|s| s.conn).collect()
        };
        for c in conns {
            c.close().await;
        }
    }

    /// Marks the host down: nothing more is started on it ([`Self::spawn`], [`Self::channel`]).
    pub(crate) fn set_down(&self) {
        self.inner().down = true;
    }

    /// Whether the host is usable: not marked down, and a connection alive.
    pub(crate) fn is_up(&self) -> bool {
        let inner = self.inner();
        !inner.down && inner.slots.iter().any(|s| !s.conn.is_closed())
    }

    fn check_down(&self) -> Result<(), SpawnError> {
        if self.inner().down {
            return Err(SpawnError::Lost("host is down".into()));
        }
        Ok(())
    }

    /// Opens a connection and adds it, not cancellable (`launch`: the host's first connection,
    /// and the one after every connection was lost).
    pub(crate) async fn dial(&self) -> Result<(), ConnectError> {
        match self.connect(&CancellationToken::new()).await {
            Some(Attempt::Up(_)) => Ok(()),
            Some(Attempt::Failed(e)) => Err(e),
            Some(Attempt::Cancelled) | None => Err(ConnectError::new(
                ConnectFailure::Unreachable,
                "the fan-out bound is closed",
            )),
        }
    }

    /// Starts `command` on a connection with room for `usage`, on another connection (opened
    /// when needed) each time the server refuses the channel. Launch work is not cancellable:
    /// a stop must still reach the host after Ctrl-C.
    async fn spawn_on(
        &self,
        usage: Usage,
        command: &Command,
        check_down: bool,
    ) -> Result<Option<(Process, Lease)>, SpawnError> {
        let never = CancellationToken::new();
        for _ in 0..MAX_CONNECTIONS {
            if check_down {
                self.check_down()?;
            }
            let lease = self.acquire(usage, &never).await?;
            match lease.conn.spawn(command).await {
                Ok(p) => return Ok(Some((p, lease))),
                Err(SpawnError::ChannelRefused(_)) => {
                    self.refused(&lease);
                    self.release(lease);
                }
                Err(e) => {
                    self.release(lease);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Starts long-lived `command` (leaving a channel spare), on another connection each time
    /// the server refuses the channel; the lease goes back with [`Self::release`] when the
    /// process's channel closed.
    pub(crate) async fn spawn(&self, command: &Command) -> Result<(Process, Lease), SpawnError> {
        self.spawn_on(Usage::Process, command, true)
            .await?
            .ok_or_else(|| {
                SpawnError::ChannelRefused(format!(
                    "{}: the server refused channels on {MAX_CONNECTIONS} connections",
                    self.target.label
                ))
            })
    }

    /// One channel on any connection with room (opening one when none has), for a transfer;
    /// give it back with [`Self::release`].
    pub(crate) async fn channel(&self) -> Result<Lease, SpawnError> {
        self.check_down()?;
        Ok(self
            .acquire(Usage::Control, &CancellationToken::new())
            .await?)
    }

    /// Runs a control script on any connection with a free channel and returns its standard
    /// output (lines, for small outputs).
    pub(crate) async fn script(&self, script: String) -> Result<String, SpawnError> {
        let cmd = Command::new(script);
        let Some((process, lease)) = self.spawn_on(Usage::Control, &cmd, false).await? else {
            return Err(SpawnError::ChannelRefused("no free channel".into()));
        };
        let out = stdout_of(process).await;
        self.release(lease);
        out
    }
}

/// The standard output of `process` once it exited (a control script's few lines); an error
/// when its connection was lost.
pub(crate) async fn stdout_of(mut process: Process) -> Result<String, SpawnError> {
    let mut out = Vec::new();
    while let Some(ev) = process.events.recv().await {
        match ev {
            ProcessEvent::Stdout(b) => out.extend_from_slice(&b),
            ProcessEvent::Stderr(_) => {}
            ProcessEvent::Exit(Exit::Lost(m)) => return Err(SpawnError::Lost(m)),
            ProcessEvent::Exit(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests;
