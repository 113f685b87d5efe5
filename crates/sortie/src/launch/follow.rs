//! The controller's side of one host: follows the output and exits of every process the host's
//! supervisors run (see [`super::hostside`]) over one channel, and keeps following across a
//! lost connection.
//!
//! One task per host. It reads the follower's frames, appends each process's lines to its log
//! (time-stamped on arrival), matches the role's ready and fail patterns, keeps the readiness
//! deadlines, and tells the driver ([`super::engine`]) with [`Msg`]s. When the follower's
//! channel ends because the connection is gone, it says `HostDisconnected`, dials again with
//! backoff for the reconnect window, and starts a new follower from the offsets it holds: no
//! byte is lost or repeated. When the window passes it says `HostGone` and ends. It decides
//! nothing about the lifecycle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sortie_plan::launch::Role;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hostside::{self, FRAME};
use super::process::{check_line, Log, Msg};
use crate::runner::pool::HostPool;
use crate::runner::LineSplitter;
use crate::transport::{Command, ProcessEvent};

/// A new attempt for the follower to watch (sent before it is started).
pub(crate) struct Track {
    /// Its directory under `R/p` ([`hostside::proc_dir`]).
    pub dir: String,
    pub idx: usize,
    pub attempt: u32,
    pub role: Arc<Role>,
    pub log: Option<PathBuf>,
    pub secrets: Vec<String>,
    pub started: Instant,
    /// Already ready (an attempt taken over by `sortie attach`).
    pub ready: bool,
}

/// One frame of the follower's output.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// New bytes of `path` from `offset`.
    Data {
        path: String,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// The attempt in `dir` ended (`STATUS [SIGNAL]` or `dead`).
    Exit { dir: String, status: String },
    /// The follower could not run.
    Error(String),
}

/// Splits the follower's byte stream into frames, whatever the chunking.
#[derive(Default)]
pub(crate) struct FrameParser {
    buf: Vec<u8>,
}

impl FrameParser {
    /// Takes more bytes; returns the frames they complete.
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(data);
        let mut frames = Vec::new();
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            let head = String::from_utf8_lossy(&rest[..nl]).into_owned();
            let head = head
                .strip_prefix(FRAME as char)
                .unwrap_or(&head)
                .to_string();
            let mut words = head.splitn(4, ' ');
            match words.next() {
                Some("F") => {
                    let path = words.next().unwrap_or("").to_string();
                    let offset = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                    let len: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                    if rest.len() < nl + 1 + len {
                        break;
                    }
                    let bytes = rest[nl + 1..nl + 1 + len].to_vec();
                    frames.push(Frame::Data {
                        path,
                        offset,
                        bytes,
                    });
                    at += nl + 1 + len;
                    continue;
                }
                Some("X") => {
                    let (dir, status) = head[2..].split_once(' ').unwrap_or((&head[2..], ""));
                    frames.push(Frame::Exit {
                        dir: dir.to_string(),
                        status: status.trim().to_string(),
                    });
                }
                Some("E") => frames.push(Frame::Error(head[1..].trim().to_string())),
                _ => tracing::debug!("follower: unexpected line {head:?}"),
            }
            at += nl + 1;
        }
        self.buf.drain(..at);
        frames
    }
}

/// What the host task knows of one attempt.
struct Followed {
    idx: usize,
    attempt: u32,
    role: Arc<Role>,
    log: Log,
    splitters: [LineSplitter; 2],
    ready: bool,
    failed: bool,
    timed_out: bool,
    deadline: Option<Instant>,
}

/// The host task's state.
pub(crate) struct HostFollow {
    pub host: usize,
    pub pool: Arc<HostPool>,
    /// The remote directory (a shell word).
    pub dir: String,
    pub tx: mpsc::Sender<Msg>,
    pub tracks: mpsc::UnboundedReceiver<Track>,
    pub reconnect_window: Duration,
    /// Cancelled at the run's end: stop following.
    pub done: CancellationToken,
    followed: HashMap<String, Followed>,
    /// Bytes received per file (`DIR/out`, `DIR/err`), and `DIR/exit` once an exit came;
    /// shared with the driver, which keeps them in the run directory for `sortie attach`.
    offsets: Offsets,
}

/// A host's follower offsets.
pub(crate) type Offsets = Arc<std::sync::Mutex<HashMap<String, u64>>>;

impl HostFollow {
    pub(crate) fn new(
        host: usize,
        pool: Arc<HostPool>,
        side: &super::engine::HostSide,
        tx: mpsc::Sender<Msg>,
        tracks: mpsc::UnboundedReceiver<Track>,
        done: CancellationToken,
        offsets: Offsets,
    ) -> Self {
        HostFollow {
            host,
            pool,
            dir: side.dir.clone(),
            tx,
            tracks,
            reconnect_window: side.reconnect_window,
            done,
            followed: HashMap::new(),
            offsets,
        }
    }

    fn track(&mut self, t: Track) {
        let deadline = t
            .role
            .ready
            .as_ref()
            .map(|_| t.started + t.role.ready_timeout);
        let mut log = Log::open(t.log.as_ref(), t.secrets);
        let what = if t.ready {
            "following again"
        } else {
            "starting"
        };
        log.write(
            'S',
            &format!(
                "sortie: {what} attempt {} on {}",
                t.attempt, self.pool.target.label
            ),
        );
        log.flush();
        self.followed.insert(
            t.dir,
            Followed {
                idx: t.idx,
                attempt: t.attempt,
                ready: t.ready || t.role.ready.is_none(),
                role: t.role,
                log,
                splitters: Default::default(),
                failed: false,
                timed_out: false,
                deadline,
            },
        );
    }

    /// The earliest readiness deadline still pending.
    fn next_deadline(&self) -> Option<Instant> {
        (self.followed.values())
            .filter(|f| !f.ready && !f.failed && !f.timed_out)
            .filter_map(|f| f.deadline)
            .min()
    }

    async fn deadlines(&mut self, now: Instant) {
        for f in self.followed.values_mut() {
            if !f.ready && !f.failed && !f.timed_out && f.deadline.is_some_and(|d| d <= now) {
                f.timed_out = true;
                let (idx, attempt) = (f.idx, f.attempt);
                let _ = self.tx.send(Msg::ReadyTimeout { idx, attempt }).await;
            }
        }
    }

    async fn frame(&mut self, frame: Frame) {
        match frame {
            Frame::Data {
                path,
                offset,
                bytes,
            } => {
                {
                    let mut offsets = self.offsets.lock().expect("offsets");
                    let have = offsets.entry(path.clone()).or_insert(0);
                    if offset != *have {
                        tracing::warn!(
                            "{}: {path}: follower sent offset {offset}, expected {have}",
                            self.pool.target.label
                        );
                    }
                    *have = offset + bytes.len() as u64;
                }
                let Some((dir, stream)) = path.rsplit_once('/') else {
                    return;
                };
                let which = usize::from(stream == "err");
                if let Some(f) = self.followed.get_mut(dir) {
                    let mut lines = Vec::new();
                    f.splitters[which].push(&bytes, |l, _| lines.push(l));
                    for l in lines {
                        line(f, which, &l, &self.tx).await;
                    }
                    f.log.flush();
                }
            }
            Frame::Exit { dir, status } => {
                (self.offsets.lock().expect("offsets")).insert(format!("{dir}/exit"), 1);
                if let Some(mut f) = self.followed.remove(&dir) {
                    for which in 0..2 {
                        if let Some(l) = f.splitters[which].finish() {
                            line(&mut f, which, &l, &self.tx).await;
                        }
                    }
                    let exit = hostside::parse_exit(&status);
                    f.log.write(
                        'S',
                        &format!("sortie: ended ({})", super::event::ExitInfo::from(&exit)),
                    );
                    f.log.flush();
                    let (idx, attempt) = (f.idx, f.attempt);
                    let _ = self.tx.send(Msg::Exited { idx, attempt, exit }).await;
                }
            }
            Frame::Error(e) => tracing::warn!("{}: follower: {e}", self.pool.target.label),
        }
    }

    /// Runs one follower to its end; returns whether the run is done.
    async fn follow_once(&mut self) -> bool {
        let known: Vec<(String, u64)> = (self.offsets.lock().expect("offsets").iter())
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let script = hostside::follow_script(&self.dir, &known);
        let (mut process, lease) = match self.pool.spawn(&Command::new(script)).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("{}: follower: {e}", self.pool.target.label);
                return self.done.is_cancelled();
            }
        };
        let mut parser = FrameParser::default();
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.done.cancelled() => {
                    if let Some(pgid) = process.pgid {
                        let _ = lease.conn().signal(pgid, "TERM").await;
                    }
                    self.pool.release(lease);
                    return true;
                }
                Some(t) = self.tracks.recv() => self.track(t),
                ev = process.events.recv() => match ev {
                    Some(ProcessEvent::Stdout(b)) => {
                        for f in parser.push(&b) {
                            self.frame(f).await;
                        }
                    }
                    Some(ProcessEvent::Stderr(b)) => {
                        tracing::debug!("{}: follower: {}", self.pool.target.label, String::from_utf8_lossy(&b));
                    }
                    Some(ProcessEvent::Exit(_)) | None => break,
                },
                _ = sleep => self.deadlines(Instant::now()).await,
            }
        }
        self.pool.release(lease);
        self.done.is_cancelled()
    }

    /// Follows the host until the run is done or the host is gone for longer than the window.
    pub(crate) async fn run(mut self) {
        loop {
            if self.follow_once().await {
                return;
            }
            if self.pool.is_up() {
                // The follower ended but the connection lives (killed on the host?): again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let host = self.host;
            let lost_at = Instant::now();
            let message = "connection lost".to_string();
            let _ = self.tx.send(Msg::HostDisconnected { host, message }).await;
            match self.redial(lost_at).await {
                Some(true) => return,
                Some(false) => {
                    let elapsed = lost_at.elapsed();
                    let _ = self.tx.send(Msg::HostReconnected { host, elapsed }).await;
                }
                None => {
                    let message = format!(
                        "no connection for {} (the reconnect window)",
                        super::short_duration(self.reconnect_window)
                    );
                    let _ = self.tx.send(Msg::HostGone { host, message }).await;
                    return;
                }
            }
        }
    }

    /// Dials again with backoff until connected (`Some(false)`), the run is done
    /// (`Some(true)`) or the window passed (`None`). Keeps taking new tracks meanwhile.
    async fn redial(&mut self, lost_at: Instant) -> Option<bool> {
        let until = lost_at + self.reconnect_window;
        let mut pause = Duration::from_millis(250);
        loop {
            let wait =
                tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now())));
            tokio::select! {
                _ = self.done.cancelled() => return Some(true),
                Some(t) = self.tracks.recv() => { self.track(t); continue; }
                _ = wait => {}
            }
            let attempt = tokio::time::timeout(
                until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1)),
                self.pool.dial(),
            );
            match attempt.await {
                Ok(Ok(())) => return Some(false),
                Ok(Err(e)) => tracing::debug!("{}: redial: {e}", self.pool.target.label),
                Err(_) => {}
            }
            if Instant::now() >= until {
                return None;
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// Logs one line of attempt `f` and matches it against the role's patterns.
async fn line(f: &mut Followed, which: usize, l: &[u8], tx: &mpsc::Sender<Msg>) {
    let tag = if which == 0 { 'O' } else { 'E' };
    let text = f.log.redact(String::from_utf8_lossy(l).into_owned());
    f.log.write(tag, &text);
    check_line(
        &f.role,
        &text,
        &mut f.ready,
        &mut f.failed,
        f.timed_out,
        f.idx,
        f.attempt,
        tx,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_chunking() {
        let stream = b"\x02F 0/1.1/out 0 6\nhello\n\x02X 0/1.1 0 \n\x02F 0/1.1/err 3 2\n\x02F\x02X 0/2.1 dead\n";
        let whole = FrameParser::default().push(stream);
        assert_eq!(whole.len(), 4);
        assert_eq!(
            whole[2],
            Frame::Data {
                path: "0/1.1/err".into(),
                offset: 3,
                bytes: b"\x02F".to_vec()
            }
        );
        assert_eq!(
            whole[3],
            Frame::Exit {
                dir: "0/2.1".into(),
                status: "dead".into()
            }
        );
        for cut in 1..stream.len() {
            let mut p = FrameParser::default();
            let mut got = p.push(&stream[..cut]);
            got.extend(p.push(&stream[cut..]));
            assert_eq!(got, whole, "cut at {cut}");
        }
    }
}
