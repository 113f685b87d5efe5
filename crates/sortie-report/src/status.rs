//! The live status line: one aggregate line (`connecting 3 · running 12 · done 40 · failed 2`)
//! drawn on stderr with a spinner, only when stderr is a terminal.
//!
//! It is an `indicatif` spinner; every other reporter writes through a sink that suspends it
//! around each write, so streamed lines are never garbled. It is cleared when the run finishes
//! so the summary stands alone. Counts come from [`Event::Progress`]; this module keeps no
//! tally of its own.

use crate::Reporter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sortie_events::{Counts, Event};
use std::io;
use std::time::Duration;

/// Draws the status line from `Progress` events.
pub struct StatusReporter {
    bar: ProgressBar,
    cancelling: Option<String>,
}

/// The status line's text for some counts; zero counts (other than running) are left out.
pub fn status_message(counts: &Counts) -> String {
    let mut parts = Vec::new();
    if counts.pending > 0 {
        parts.push(format!("pending {}", counts.pending));
    }
    if counts.connecting > 0 {
        parts.push(format!("connecting {}", counts.connecting));
    }
    parts.push(format!("running {}", counts.running));
    parts.push(format!("done {}", counts.done));
    if counts.failed > 0 {
        parts.push(format!("failed {}", counts.failed));
    }
    parts.join(" · ")
}

impl StatusReporter {
    /// A spinner on stderr (hidden by indicatif itself if stderr is no terminal).
    pub(crate) fn stderr() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
            bar.set_style(style);
        }
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        StatusReporter {
            bar,
            cancelling: None,
        }
    }

    /// A handle other reporters use to step around the line.
    pub(crate) fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }
}

impl Reporter for StatusReporter {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::Progress { counts } => {
                let msg = status_message(counts);
                match &self.cancelling {
                    Some(why) => self.bar.set_message(format!("cancelling ({why}) · {msg}")),
                    None => self.bar.set_message(msg),
                }
            }
            Event::RunCancelling { reason } => {
                self.cancelling = Some(reason.clone());
                self.bar.set_message(format!("cancelling ({reason})"));
            }
            Event::RunFinished { .. } => self.bar.finish_and_clear(),
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.bar.finish_and_clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shows_nonzero_counts() {
        let c = Counts {
            pending: 0,
            connecting: 3,
            running: 12,
            done: 40,
            failed: 2,
        };
        assert_eq!(
            status_message(&c),
            "connecting 3 · running 12 · done 40 · failed 2"
        );
        assert_eq!(status_message(&Counts::default()), "running 0 · done 0");
    }
}
