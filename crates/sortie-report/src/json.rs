//! JSON Lines mode (`--json`): one JSON object per event, one per line, on stdout.
//!
//! The format is [`Event::to_json_line`]'s, documented field by field in `docs/json-events.md`.
//! Each line is flushed as it is written so a consumer (`jq`, a dashboard) sees events live.
//! This module owns nothing but the writing.

use crate::sink::Sink;
use crate::Reporter;
use sortie_events::Event;
use std::io;

/// Writes every event as one JSON line.
pub struct JsonReporter {
    out: Sink,
}

impl JsonReporter {
    pub(crate) fn new(out: Sink) -> Self {
        JsonReporter { out }
    }
}

impl Reporter for JsonReporter {
    fn report(&mut self, event: &Event) -> io::Result<()> {
        let mut line = event.to_json_line();
        line.push('\n');
        self.out.write(line.as_bytes())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
