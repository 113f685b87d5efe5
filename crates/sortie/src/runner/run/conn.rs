//! The connection a job of `sortie run` sees: a lease of its host's [`HostPool`], plus what
//! the executor must learn from it (was a channel refused, did the command start), and a stop
//! that still works when the job's own connection has no channel left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::runner::pool::{HostPool, Lease};
use crate::transport::{ByteStream, Command, Connection, Process, SpawnError, StopSequence};

/// How long a stop keeps looking for a channel before giving up (the channel's own watchdog
/// still ends the process when its channel closes).
const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// The pooled connection of one job attempt.
pub(crate) struct JobConn {
    inner: Arc<dyn Connection>,
    pool: Arc<HostPool>,
    /// The server refused the job's channel.
    pub refused: AtomicBool,
    /// The job's command started.
    pub spawned: AtomicBool,
}

impl JobConn {
    /// The connection of `lease`, lent by `pool`.
    pub(crate) fn new(lease: &Lease, pool: Arc<HostPool>) -> Self {
        JobConn {
            inner: lease.conn().clone(),
            pool,
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
    /// another connection to the same host, else through a connection opened for the purpose
    /// (outside the pool, unannounced: it is not one of the run's connections).
    async fn stop(&self, pgid: u32, sequence: &StopSequence) -> Result<(), SpawnError> {
        let deadline = Instant::now() + STOP_PATIENCE;
        let mut own: Option<Arc<dyn Connection>> = None;
        let result = loop {
            match self.inner.stop(pgid, sequence).await {
                Err(SpawnError::ChannelRefused(_)) => {}
                other => break other,
            }
            let mut done = None;
            for c in self.pool.connections() {
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
                own = self.pool.transport().connect(&self.pool.target).await.ok();
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
