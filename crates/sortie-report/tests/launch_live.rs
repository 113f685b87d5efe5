//! The live table of `sortie launch`, as a person sees it in a terminal: every frame of a
//! recorded run (examples/local, `tests/data/local-demo.events.jsonl`) is drawn through a
//! terminal emulator (`vt100`) at 80 and 200 columns, and the final screen is compared with a
//! snapshot. What a user checks: one table on screen (no stale rows left by earlier frames, even
//! where long rows wrap), every role in it, and the notable events above it.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressDrawTarget, TermLike};
use sortie_report::launch::{read_record, LaunchEvent, LiveView};

const ROWS: u16 = 24;

/// A terminal of `cols` columns: indicatif writes to it as it would to a real one (through a
/// tty that turns `\n` into `\r\n`).
#[derive(Clone)]
struct Screen {
    vt: Arc<Mutex<vt100::Parser>>,
    cols: u16,
}

impl Screen {
    fn new(cols: u16) -> Self {
        Screen {
            vt: Arc::new(Mutex::new(vt100::Parser::new(nz(ROWS), nz(cols), 0))),
            cols,
        }
    }

    fn put(&self, s: &str) -> io::Result<()> {
        self.vt.lock().unwrap().process(s.as_bytes());
        Ok(())
    }

    /// The screen's rows as they are (a wrapped line takes several), trailing blanks cut.
    fn contents(&self) -> String {
        let vt = self.vt.lock().unwrap();
        let rows: Vec<String> = vt
            .screen()
            .rows(0, self.cols)
            .map(|r| r.trim_end().to_string())
            .collect();
        rows.join("\n").trim_end().to_string()
    }
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Screen({} columns)", self.cols)
    }
}

impl TermLike for Screen {
    fn width(&self) -> u16 {
        self.cols
    }
    fn height(&self) -> u16 {
        ROWS
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}A"))
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}B"))
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}C"))
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}D"))
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.put(&format!("{}\r\n", s.replace('\n', "\r\n")))
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.put(&s.replace('\n', "\r\n"))
    }
    fn clear_line(&self) -> io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

fn recorded() -> Vec<LaunchEvent> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/local-demo.events.jsonl"
    );
    let rec = read_record(path.as_ref()).unwrap();
    assert!(rec.unreadable.is_empty(), "{:?}", rec.unreadable);
    assert!(rec.finished());
    rec.events
}

/// Plays the recording through the live table at `cols` columns; returns the final screen.
fn play(cols: u16) -> String {
    let screen = Screen::new(cols);
    let target = ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 100);
    let mut view = LiveView::table(target);
    for ev in recorded() {
        view.event(&ev);
        if matches!(ev, LaunchEvent::Progress { .. }) {
            // Past the draw rate limit (100/s), so that every frame is drawn.
            std::thread::sleep(Duration::from_millis(12));
        }
    }
    view.finish();
    screen.contents()
}

/// Rows of the table on screen: its header (the phase line) and one row per role.
fn check_one_table(screen: &str) {
    let headers = screen
        .lines()
        .filter(|l| l.contains(" elapsed") && l.contains("starts/s"))
        .count();
    assert_eq!(headers, 1, "one table header, no stale frame:\n{screen}");
    for role in ["master", "viewer"] {
        let rows = screen
            .lines()
            .filter(|l| l.starts_with(&format!("  {role} ")))
            .count();
        assert_eq!(rows, 1, "one row for {role}:\n{screen}");
    }
}

#[test]
fn the_live_table_redraws_cleanly_at_80_columns_where_rows_wrap() {
    let screen = play(80);
    check_one_table(&screen);
    // the viewer row is longer than 80 columns: it wraps onto a second row
    let rows: Vec<&str> = screen.lines().collect();
    let viewer = rows
        .iter()
        .position(|l| l.starts_with("  viewer "))
        .unwrap();
    assert_eq!(rows[viewer].chars().count(), 80, "{screen}");
    assert!(rows[viewer + 1].contains("started 2"), "{screen}");
    insta::assert_snapshot!("live_table_80", redact(&screen));
}

#[test]
fn the_live_table_redraws_cleanly_at_200_columns() {
    let screen = play(200);
    check_one_table(&screen);
    insta::assert_snapshot!("live_table_200", redact(&screen));
}

/// Durations in the screen (`7.82s`, `850ms`, `2m05s`) as `<dur>`: the snapshot is about the
/// layout. (The recording is fixed, so they would not change; a new recording should not need
/// a new review for them.)
fn redact(screen: &str) -> String {
    let mut out = String::new();
    for word in screen.split_inclusive(' ') {
        let w = word.trim_end();
        let dur = !w.is_empty()
            && w.starts_with(|c: char| c.is_ascii_digit())
            && (w.ends_with("ms") || w.ends_with('s'))
            && w.trim_end_matches(['m', 's'])
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == 'm');
        if dur {
            out.push_str("<dur>");
            out.push_str(&word[w.len()..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

fn nz(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).expect("a terminal has rows and columns")
}

#[test]
fn the_live_table_shows_each_sampled_hosts_cpu_and_memory_under_the_roles() {
    let screen = Screen::new(120);
    let target = ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 100);
    let mut view = LiveView::table(target);
    let events = recorded();
    let first_progress = events
        .iter()
        .position(|e| matches!(e, LaunchEvent::Progress { .. }))
        .unwrap();
    for ev in &events[..first_progress] {
        view.event(ev);
    }
    view.event(&LaunchEvent::HostSample(
        sortie_events::launch::HostSample {
            host: "local1".into(),
            cpus: 2,
            cpu_user: 0.30,
            cpu_system: 0.13,
            load1: 1.5,
            mem_available_bytes: 3 << 30,
            mem_total_bytes: 8 << 30,
            ..Default::default()
        },
    ));
    std::thread::sleep(Duration::from_millis(12));
    view.event(&events[first_progress]);
    view.finish();
    let shown = screen.contents();
    let line = shown
        .lines()
        .find(|l| l.starts_with("  local1  cpu "))
        .unwrap_or_else(|| panic!("no host line:\n{shown}"));
    assert_eq!(
        line,
        "  local1  cpu 43% load 1.50 mem 3.0 GiB free of 8.0 GiB"
    );
}
