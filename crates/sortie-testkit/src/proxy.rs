//! A misbehaving TCP proxy to put in front of a fixture sshd: slow links, stalls, servers that
//! accept and never speak, and servers that stop during the key exchange.
//!
//! Owns its listening socket, the connections it accepted and the threads that pump them
//! (plain `std` threads: a test proxy carries a handful of connections). It only connects to
//! the upstream address it was given, and it stops everything when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How a slow link behaves (see [`Behavior::Slow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slowness {
    /// Delay added before each chunk is passed on, in both directions.
    pub latency: Duration,
    /// Largest chunk passed on at once (bytes); with `latency` it bounds the throughput.
    pub chunk: usize,
    /// Every this often (zero: never), the link stalls completely ...
    pub stall_every: Duration,
    /// ... for this long.
    pub stall_for: Duration,
}

impl Default for Slowness {
    /// 50 ms per 16 KiB chunk, and a 1.5 s stall every 2 s.
    fn default() -> Self {
        Slowness {
            latency: Duration::from_millis(50),
            chunk: 16 * 1024,
            stall_every: Duration::from_secs(2),
            stall_for: Duration::from_millis(1500),
        }
    }
}

/// What the proxy does with each connection it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Passes bytes on unchanged.
    Forward,
    /// Passes bytes on with added latency per chunk and periodic stalls.
    Slow(Slowness),
    /// Accepts the TCP connection and never sends a byte (no SSH banner): the upstream is not
    /// even contacted. The connection stays open until the client gives up.
    Silent,
    /// Passes on the first line in each direction (the SSH identification banners), then
    /// nothing more, keeping the connection open: a server that stalls in key exchange.
    StallAfterBanner,
}

/// A running proxy. Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    forwarded: AtomicU64,
    streams: Mutex<Vec<TcpStream>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks a free one) and relays each accepted connection to
    /// `upstream` according to `behavior`.
    pub fn start(listen: SocketAddr, upstream: SocketAddr, behavior: Behavior) -> Result<Proxy> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error::io(format!("proxy: binding {listen}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("proxy: reading the bound address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("proxy: non-blocking listener", e))?;
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name(format!("proxy-{addr}"))
            .spawn(move || accept_loop(listener, upstream, behavior, &s))
            .map_err(|e| Error::io("proxy: spawning the accept thread", e))?;
        Ok(Proxy {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Bytes passed on so far, both directions together.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }

    /// Closes every open connection (both ends), as when a middlebox resets them; the proxy
    /// keeps accepting new ones.
    pub fn cut(&self) {
        let streams = std::mem::take(&mut *lock(&self.shared.streams));
        for s in streams {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.cut();
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let pumps = std::mem::take(&mut *lock(&self.shared.pumps));
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, behavior: Behavior, s: &Arc<Shared>) {
    while !s.stop.load(Ordering::Relaxed) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        s.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        remember(s, &client);
        if behavior == Behavior::Silent {
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = server.set_nodelay(true);
        remember(s, &server);
        for (from, to) in [(&client, &server), (&server, &client)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let s2 = Arc::clone(s);
            if let Ok(h) = std::thread::Builder::new()
                .name("proxy-pump".to_owned())
                .spawn(move || pump(from, to, behavior, &s2))
            {
                lock(&s.pumps).push(h);
            }
        }
    }
}

fn remember(s: &Shared, stream: &TcpStream) {
    if let Ok(c) = stream.try_clone() {
        lock(&s.streams).push(c);
    }
}

/// Copies `from` to `to` until either end closes, shaped by `behavior`.
fn pump(mut from: TcpStream, mut to: TcpStream, behavior: Behavior, s: &Shared) {
    let chunk = match behavior {
        Behavior::Slow(sl) => sl.chunk.max(1),
        _ => 64 * 1024,
    };
    let mut buf = vec![0u8; chunk];
    let mut last_stall = Instant::now();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if s.stop.load(Ordering::Relaxed) {
            break;
        }
        let mut data = &buf[..n];
        let mut hold_after = false;
        match behavior {
            Behavior::Forward | Behavior::Silent => {}
            Behavior::Slow(sl) => {
                if !sl.stall_every.is_zero() && last_stall.elapsed() >= sl.stall_every {
                    sleep_unless_stopped(sl.stall_for, s);
                    last_stall = Instant::now();
                }
                sleep_unless_stopped(sl.latency, s);
            }
            Behavior::StallAfterBanner => {
                if let Some(i) = data.iter().position(|b| *b == b'\n') {
                    data = &data[..=i];
                    hold_after = true;
                }
            }
        }
        if to.write_all(data).is_err() {
            break;
        }
        s.forwarded.fetch_add(data.len() as u64, Ordering::Relaxed);
        if hold_after {
            // Keep the connection open and silent until the proxy is dropped or cut.
            while !s.stop.load(Ordering::Relaxed) {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn sleep_unless_stopped(d: Duration, s: &Shared) {
    let end = Instant::now() + d;
    while !s.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.write_all(b"SSH-2.0-echo\r\n").unwrap();
            let mut buf = [0u8; 1024];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 || c.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        (addr, t)
    }

    fn read_some(c: &mut TcpStream, want: usize, within: Duration) -> Vec<u8> {
        c.set_read_timeout(Some(within)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while out.len() < want {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    }

    #[test]
    fn forwards_and_slows() {
        let (up, _t) = echo_server();
        let slow = Slowness {
            latency: Duration::from_millis(200),
            chunk: 4,
            stall_every: Duration::ZERO,
            stall_for: Duration::ZERO,
        };
        let p = Proxy::start("127.0.0.1:0".parse().unwrap(), up, Behavior::Slow(slow)).unwrap();
        let mut c = TcpStream::connect(p.addr()).unwrap();
        let start = Instant::now();
        let banner = read_some(&mut c, 14, Duration::from_secs(5));
        assert_eq!(banner, b"SSH-2.0-echo\r\n");
        // 14 bytes in 4-byte chunks: 4 chunks, 200 ms each.
        assert!(
            start.elapsed() >= Duration::from_millis(700),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(p.accepted(), 1);
    }

    #[test]
    fn silent_sends_nothing_and_stall_after_banner_stops_after_one_line() {
        let (up, _t) = echo_server();
        let p = Proxy::start("127.0.0.1:0".parse().unwrap(), up, Behavior::Silent).unwrap();
        let mut c = TcpStream::connect(p.addr()).unwrap();
        assert!(read_some(&mut c, 1, Duration::from_millis(300)).is_empty());
        drop(p);

        let (up, _t) = echo_server();
        let p = Proxy::start(
            "127.0.0.1:0".parse().unwrap(),
            up,
            Behavior::StallAfterBanner,
        )
        .unwrap();
        let mut c = TcpStream::connect(p.addr()).unwrap();
        assert_eq!(
            read_some(&mut c, 14, Duration::from_secs(2)),
            b"SSH-2.0-echo\r\n"
        );
        c.write_all(b"SSH-2.0-client\r\nKEXINIT").unwrap();
        // The echo server answers the client banner (forwarded) but nothing more arrives.
        assert!(read_some(&mut c, 1, Duration::from_millis(300)).is_empty());
    }
}
