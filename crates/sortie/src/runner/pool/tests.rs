//! The pool's one refusal rule and its spare channel, against an in-memory server that refuses
//! channels past its `MaxSessions`, under paused time.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::transport::ByteStream;

/// A server allowing `max_sessions` channels per connection; `limit` is what its connections
/// report as [`Connection::channel_limit`].
#[derive(Default)]
struct Server {
    max_sessions: usize,
    limit: Option<usize>,
    /// Channels open on each connection opened, in order.
    opens: StdMutex<Vec<Arc<AtomicUsize>>>,
}

impl Server {
    fn connections(&self) -> usize {
        self.opens.lock().unwrap().len()
    }

    /// Channels open on connection `i`.
    fn open(&self, i: usize) -> usize {
        self.opens.lock().unwrap()[i].load(Ordering::SeqCst)
    }

    /// A held process on connection `i` exits.
    fn end_one(&self, i: usize) {
        self.opens.lock().unwrap()[i].fetch_sub(1, Ordering::SeqCst);
    }
}

struct Conn {
    max_sessions: usize,
    limit: Option<usize>,
    /// Channels open on this connection; `hold` keeps one open until the test ends it.
    open: Arc<AtomicUsize>,
    held: StdMutex<Vec<mpsc::Sender<ProcessEvent>>>,
}

#[async_trait]
impl Transport for Server {
    async fn connect(&self, _target: &Target) -> Result<Arc<dyn Connection>, ConnectError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let open = Arc::<AtomicUsize>::default();
        self.opens.lock().unwrap().push(open.clone());
        Ok(Arc::new(Conn {
            max_sessions: self.max_sessions,
            limit: self.limit,
            open,
            held: StdMutex::default(),
        }))
    }
}

#[async_trait]
impl Connection for Conn {
    /// `hold` keeps its channel; anything else prints its command and exits.
    async fn spawn(&self, command: &Command) -> Result<Process, SpawnError> {
        let open = self.open.fetch_add(1, Ordering::SeqCst);
        if open >= self.max_sessions {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return Err(SpawnError::ChannelRefused(
                "administratively prohibited".into(),
            ));
        }
        let (tx, rx) = mpsc::channel(4);
        if command.command == "hold" {
            self.held.lock().unwrap().push(tx);
        } else {
            let out = Bytes::from(format!("{}\n", command.command));
            tx.send(ProcessEvent::Stdout(out)).await.unwrap();
            tx.send(ProcessEvent::Exit(Exit::Code(0))).await.unwrap();
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(Process {
            pgid: Some(1),
            events: rx,
        })
    }
    async fn stop(
        &self,
        _pgid: u32,
        _s: &crate::transport::StopSequence,
    ) -> Result<(), SpawnError> {
        Ok(())
    }
    async fn signal(&self, _pgid: u32, _signal: &str) -> Result<(), SpawnError> {
        Ok(())
    }
    async fn subsystem(&self, _name: &str) -> Result<ByteStream, SpawnError> {
        Err(SpawnError::Other("no".into()))
    }
    async fn exec_stream(&self, _command: &str) -> Result<ByteStream, SpawnError> {
        Err(SpawnError::Other("no".into()))
    }
    fn is_closed(&self) -> bool {
        false
    }
    fn channel_limit(&self) -> Option<usize> {
        self.limit
    }
    async fn close(&self) {}
}

fn target() -> Target {
    Target::named("a")
}

fn pool(server: Arc<Server>) -> HostPool {
    let fanout = Arc::new(Semaphore::new(4));
    HostPool::new(0, target(), server, fanout, Box::new(Quiet))
}

fn slot(active: usize, cap: Option<usize>) -> Slot {
    let conn: Arc<dyn Connection> = Arc::new(Conn {
        max_sessions: 0,
        limit: None,
        open: Arc::default(),
        held: StdMutex::default(),
    });
    Slot {
        id: 0,
        conn,
        active,
        cap,
    }
}

#[test]
fn a_refusal_caps_a_connection_at_the_other_holders_and_only_lowers_it() {
    // Five holders, one refused: the server took the four others.
    let mut s = slot(5, None);
    assert!(!s.refused());
    assert_eq!(s.cap, Some(4));
    // A later refusal seeing more holders (a burst still in flight) keeps the lower cap.
    s.active = 7;
    assert!(!s.refused());
    assert_eq!(s.cap, Some(4));
    s.active = 3;
    assert!(!s.refused());
    assert_eq!(s.cap, Some(2));
    // Alone and refused: the server refuses even one channel.
    s.active = 1;
    assert!(s.refused());
    assert_eq!(s.cap, Some(0));
}

#[test]
fn long_lived_work_leaves_one_channel_spare_for_control_scripts() {
    // Capacity 4: three processes, then only a control script.
    assert!(slot(2, Some(4)).has_room(Usage::Process));
    assert!(!slot(3, Some(4)).has_room(Usage::Process));
    assert!(slot(3, Some(4)).has_room(Usage::Control));
    assert!(!slot(4, Some(4)).has_room(Usage::Control));
    // However small the capacity, a connection nobody holds takes one holder of either kind.
    for cap in [0, 1, 2] {
        assert!(slot(0, Some(cap)).has_room(Usage::Process), "{cap}");
        assert!(slot(0, Some(cap)).has_room(Usage::Control), "{cap}");
        assert!(!slot(1, Some(cap)).has_room(Usage::Process), "{cap}");
    }
    assert!(slot(100, None).has_room(Usage::Process));
}

#[tokio::test(start_paused = true)]
async fn refused_processes_move_to_new_connections_and_scripts_use_the_spare_channel() {
    let server = Arc::new(Server {
        max_sessions: 3,
        ..Server::default()
    });
    let pool = pool(server.clone());
    pool.dial().await.unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.spawn(&Command::new("hold")).await.unwrap());
    }
    // The first connection took 3 and refused the 4th, which went to a new connection.
    assert_eq!(server.connections(), 2);
    assert_eq!((server.open(0), server.open(1)), (3, 1));
    // One process of the first connection ends: its channel is the spare, so the next process
    // goes to the second connection...
    let (_, first) = held.remove(0);
    server.end_one(0);
    pool.release(first);
    held.push(pool.spawn(&Command::new("hold")).await.unwrap());
    assert_eq!((server.open(0), server.open(1)), (2, 2));
    // ...and a control script takes the spare.
    let out = pool.script("echo".into()).await.unwrap();
    assert_eq!(out, "echo\n");
    assert_eq!(server.connections(), 2);
    for (_, lease) in held {
        pool.release(lease);
    }
}

#[tokio::test(start_paused = true)]
async fn a_transport_channel_limit_caps_connections_before_any_refusal() {
    let server = Arc::new(Server {
        max_sessions: 10,
        limit: Some(2),
        ..Server::default()
    });
    let pool = pool(server.clone());
    let never = CancellationToken::new();
    let a = pool.acquire(Usage::Process, &never).await.unwrap();
    let b = pool.acquire(Usage::Process, &never).await.unwrap();
    assert_eq!(server.connections(), 2);
    // The freed room is lent again rather than a third connection opened.
    pool.release(a);
    let c = pool.acquire(Usage::Process, &never).await.unwrap();
    assert_eq!(server.connections(), 2);
    pool.release(b);
    pool.release(c);
}

#[tokio::test(start_paused = true)]
async fn a_closed_pool_lends_nothing_but_a_disconnected_one_reconnects() {
    let server = Arc::new(Server {
        max_sessions: 10,
        ..Server::default()
    });
    let pool = pool(server.clone());
    let never = CancellationToken::new();
    pool.dial().await.unwrap();
    pool.disconnect().await;
    assert!(!pool.is_up());
    let lease = pool.acquire(Usage::Control, &never).await.unwrap();
    assert_eq!(server.connections(), 2);
    pool.release(lease);
    pool.close().await;
    assert!(matches!(
        pool.acquire(Usage::Control, &never).await,
        Err(AcquireError::Closed)
    ));
    assert!(pool.connection().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_pool_at_its_most_connections_refuses_instead_of_opening_more() {
    let server = Arc::new(Server {
        max_sessions: 10,
        limit: Some(1),
        ..Server::default()
    });
    let pool = pool(server.clone()).with_max_connections(2);
    let never = CancellationToken::new();
    let a = pool.acquire(Usage::Control, &never).await.unwrap();
    let b = pool.acquire(Usage::Control, &never).await.unwrap();
    assert!(matches!(
        pool.acquire(Usage::Control, &never).await,
        Err(AcquireError::Full)
    ));
    assert_eq!(server.connections(), 2);
    pool.release(a);
    pool.release(b);
}
