//! Connecting one host and announcing it: the one place that sends `HostConnecting`,
//! `HostConnected` and `HostFailed` around a connection attempt, for `exec`, `run` (its pools
//! open connections through [`Announced`]) and transfers. Owns nothing else: no fan-out
//! (callers hold their own permit), no retry, no scheduling, and it does not close the
//! connection it hands out.

use std::sync::Arc;

use sortie_events::{ConnectFailure, Event};
use tokio::sync::mpsc;
// Tokio's clock, so that tests with paused time see the elapsed time they arranged.
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::transport::{ConnectError, Connection, Target, Transport};

/// How a connection attempt ended.
pub(crate) enum Attempt {
    /// Connected and authenticated; `HostConnected` was sent.
    Up(Arc<dyn Connection>),
    /// The transport failed; `HostFailed` was sent with its failure and message.
    Failed(ConnectError),
    /// `cancel` fired first; `HostFailed` was sent as unreachable with the caller's message.
    Cancelled,
}

/// Sends `HostConnecting`, connects `target` unless `cancel` fires first, then sends
/// `HostConnected` or `HostFailed` (with `cancelled` as the message when cancelled). Events go
/// through `tx` as whatever message type the caller's queue carries.
pub(crate) async fn connect_announced<M: From<Event>>(
    transport: &dyn Transport,
    target: &Target,
    cancel: &CancellationToken,
    cancelled: &str,
    tx: &mpsc::Sender<M>,
) -> Attempt {
    let host = target.label.clone();
    let send = |ev: Event| tx.send(M::from(ev));
    let _ = send(Event::HostConnecting { host: host.clone() }).await;
    let started = Instant::now();
    let result = tokio::select! {
        r = transport.connect(target) => Some(r),
        _ = cancel.cancelled() => None,
    };
    match result {
        Some(Ok(conn)) => {
            let _ = send(Event::HostConnected {
                host,
                elapsed: started.elapsed(),
            })
            .await;
            Attempt::Up(conn)
        }
        Some(Err(e)) => {
            let _ = send(Event::HostFailed {
                host,
                failure: e.failure,
                message: e.message.clone(),
            })
            .await;
            Attempt::Failed(e)
        }
        None => {
            let _ = send(Event::HostFailed {
                host,
                failure: ConnectFailure::Unreachable,
                message: cancelled.to_string(),
            })
            .await;
            Attempt::Cancelled
        }
    }
}

/// Opens a pool's connections with [`connect_announced`]: every attempt is announced through
/// `tx`, and an attempt cut short by cancellation fails with the message `cancelled`.
pub(crate) struct Announced<M> {
    /// Where the events go.
    pub tx: mpsc::Sender<M>,
    /// The `HostFailed` message of an attempt cut short.
    pub cancelled: &'static str,
}

#[async_trait::async_trait]
impl<M: From<Event> + Send + 'static> super::pool::Opener for Announced<M> {
    async fn open(
        &self,
        transport: &dyn Transport,
        target: &Target,
        cancel: &CancellationToken,
    ) -> Attempt {
        connect_announced(transport, target, cancel, self.cancelled, &self.tx).await
    }
}
