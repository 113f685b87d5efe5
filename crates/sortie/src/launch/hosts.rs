//! The connections of one host during a launch.
//!
//! Processes run as channels multiplexed over SSH connections. A server limits channels per
//! connection (OpenSSH `MaxSessions`, 10 by default), so a host running many processes needs
//! several connections: when the server refuses a channel, that connection is marked full and
//! another one is opened (under the run's connection fan-out). Control scripts (stop, kill,
//! survivor check) take any connection with a free channel, or a new one. This module knows
//! nothing about plans or scheduling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex, Semaphore};

use crate::runner::LineSplitter;
use crate::transport::{
    Command, ConnectError, Connection, Exit, Process, ProcessEvent, SpawnError, Target, Transport,
};

/// Connections opened for one host at most (a safety bound against a server refusing every
/// channel).
const MAX_CONNECTIONS: usize = 64;

struct Slot {
    conn: Arc<dyn Connection>,
    /// Our channels open on it (processes and scripts).
    open: usize,
    /// Channels it accepts, learnt from a refusal.
    cap: Option<usize>,
}

impl Slot {
    /// Room for one more long-lived process: one channel stays spare for control scripts once
    /// the capacity is known.
    fn room_for_process(&self) -> bool {
        !self.conn.is_closed() && self.cap.is_none_or(|c| self.open + 1 < c.max(2))
    }
}

/// The connections to one host.
pub(crate) struct HostPool {
    pub(crate) target: Target,
    transport: Arc<dyn Transport>,
    fanout: Arc<Semaphore>,
    slots: Mutex<Vec<Slot>>,
    down: AtomicBool,
}

/// A channel lent to a process or a transfer: give it back with [`HostPool::release`] when
/// it is closed.
pub(crate) struct Lease {
    conn: Arc<dyn Connection>,
}

impl Lease {
    /// The connection the channel belongs to.
    pub(crate) fn conn(&self) -> &Arc<dyn Connection> {
        &self.conn
    }
}

impl HostPool {
    pub(crate) fn new(
        target: Target,
        transport: Arc<dyn Transport>,
        fanout: Arc<Semaphore>,
    ) -> Self {
        HostPool {
            target,
            transport,
            fanout,
            slots: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
        }
    }

    async fn open(&self) -> Result<Arc<dyn Connection>, ConnectError> {
        let _permit = self.fanout.acquire().await;
        self.transport.connect(&self.target).await
    }

    /// Opens the first connection.
    pub(crate) async fn connect(&self) -> Result<(), ConnectError> {
        let conn = self.open().await?;
        self.slots.lock().await.push(Slot {
            conn,
            open: 0,
            cap: None,
        });
        Ok(())
    }

    /// Opens a new connection after every one was lost (the reconnect of a launch).
    pub(crate) async fn reconnect(&self) -> Result<(), ConnectError> {
        let conn = self.open().await?;
        let mut slots = self.slots.lock().await;
        slots.retain(|s| !s.conn.is_closed());
        slots.push(Slot {
            conn,
            open: 0,
            cap: None,
        });
        Ok(())
    }

    /// A live connection of the host, if any (for its sampler).
    pub(crate) async fn connection(&self) -> Option<Arc<dyn Connection>> {
        let slots = self.slots.lock().await;
        slots
            .iter()
            .find(|s| !s.conn.is_closed())
            .map(|s| s.conn.clone())
    }

    /// Marks the host down: nothing more is started on it.
    pub(crate) fn set_down(&self) {
        self.down.store(true, Ordering::Release);
    }

    /// Whether the host is usable (connected once, not marked down, a connection alive).
    pub(crate) async fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
            && self.slots.lock().await.iter().any(|s| !s.conn.is_closed())
    }

    /// Starts `command` on a connection with room, opening another when the server refuses
    /// more channels on every open one.
    pub(crate) async fn spawn(&self, command: &Command) -> Result<(Process, Lease), SpawnError> {
        for _ in 0..MAX_CONNECTIONS {
            if self.down.load(Ordering::Acquire) {
                return Err(SpawnError::Lost("host is down".into()));
            }
            let (idx, conn) = self.take_slot(true).await?;
            match conn.spawn(command).await {
                Ok(p) => return Ok((p, Lease { conn })),
                Err(SpawnError::ChannelRefused(_)) => {
                    let mut slots = self.slots.lock().await;
                    if let Some(s) = slots.get_mut(idx) {
                        s.open = s.open.saturating_sub(1);
                        // Our count includes requests still in flight, so it can only be an
                        // upper bound of what the server holds: keep the smallest seen.
                        s.cap = Some(s.cap.map_or(s.open, |c| c.min(s.open)).max(1));
                    }
                }
                Err(e) => {
                    self.give_back(&conn).await;
                    return Err(e);
                }
            }
        }
        Err(SpawnError::ChannelRefused(format!(
            "{}: the server refused channels on {MAX_CONNECTIONS} connections",
            self.target.label
        )))
    }

    /// A connection with room (for a process, or any free channel for a script), counted as
    /// one more channel open; opens a new connection when none has room.
    async fn take_slot(&self, process: bool) -> Result<(usize, Arc<dyn Connection>), SpawnError> {
        let mut slots = self.slots.lock().await;
        let pick = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                if process {
                    s.room_for_process()
                } else {
                    !s.conn.is_closed() && s.cap.is_none_or(|c| s.open < c)
                }
            })
            .min_by_key(|(_, s)| s.open)
            .map(|(i, _)| i);
        if let Some(i) = pick {
            slots[i].open += 1;
            return Ok((i, slots[i].conn.clone()));
        }
        if slots.len() >= MAX_CONNECTIONS {
            return Err(SpawnError::ChannelRefused(
                "no connection has a free channel".into(),
            ));
        }
        // Holding the lock while connecting: one host opens one extra connection at a time.
        let conn = self.open().await.map_err(|e| SpawnError::Lost(e.message))?;
        slots.push(Slot {
            conn: conn.clone(),
            open: 1,
            cap: None,
        });
        Ok((slots.len() - 1, conn))
    }

    /// One channel on any connection with room (opening one when none has), for a transfer.
    pub(crate) async fn channel(&self) -> Result<Lease, SpawnError> {
        if self.down.load(Ordering::Acquire) {
            return Err(SpawnError::Lost("host is down".into()));
        }
        let (_, conn) = self.take_slot(false).await?;
        Ok(Lease { conn })
    }

    async fn give_back(&self, conn: &Arc<dyn Connection>) {
        let mut slots = self.slots.lock().await;
        if let Some(s) = slots.iter_mut().find(|s| Arc::ptr_eq(&s.conn, conn)) {
            s.open = s.open.saturating_sub(1);
        }
    }

    /// A process's channel closed.
    pub(crate) async fn release(&self, lease: Lease) {
        self.give_back(&lease.conn).await;
    }

    /// Runs a control script on any connection with a free channel and returns its standard
    /// output (lines, for small outputs).
    pub(crate) async fn script(&self, script: String) -> Result<String, SpawnError> {
        let cmd = Command::new(script);
        for _ in 0..MAX_CONNECTIONS {
            let (idx, conn) = self.take_slot(false).await?;
            match conn.spawn(&cmd).await {
                Ok(mut p) => {
                    let mut out = Vec::new();
                    let mut lines = LineSplitter::default();
                    let mut exit = Exit::NoStatus;
                    while let Some(ev) = p.events.recv().await {
                        match ev {
                            ProcessEvent::Stdout(b) => lines.push(&b, |l, _| {
                                out.extend_from_slice(&l);
                                out.push(b'\n');
                            }),
                            ProcessEvent::Stderr(_) => {}
                            ProcessEvent::Exit(e) => {
                                exit = e;
                                break;
                            }
                        }
                    }
                    if let Some(l) = lines.finish() {
                        out.extend_from_slice(&l);
                    }
                    self.give_back(&conn).await;
                    if let Exit::Lost(m) = exit {
                        return Err(SpawnError::Lost(m));
                    }
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Err(SpawnError::ChannelRefused(_)) => {
                    let mut slots = self.slots.lock().await;
                    if let Some(s) = slots.get_mut(idx) {
                        s.open = s.open.saturating_sub(1);
                        // Our count includes requests still in flight, so it can only be an
                        // upper bound of what the server holds: keep the smallest seen.
                        s.cap = Some(s.cap.map_or(s.open, |c| c.min(s.open)).max(1));
                    }
                }
                Err(e) => {
                    self.give_back(&conn).await;
                    return Err(e);
                }
            }
        }
        Err(SpawnError::ChannelRefused("no free channel".into()))
    }

    /// Closes every connection.
    pub(crate) async fn close(&self) {
        let conns: Vec<_> = self.slots.lock().await.drain(..).map(|s| s.conn).collect();
        for c in conns {
            c.close().await;
        }
    }
}
