//! Shared output sinks: a writer that several reporters may hold (the summary and the line
//! reporter both write to stderr) and that steps around the status line when one is drawn.
//!
//! This module owns only "write these bytes without garbling the status line"; it formats
//! nothing and decides nothing about colour.

use indicatif::ProgressBar;
use sortie_events::Stream;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Output lines as they arrived: stream and bytes (without newline).
pub(crate) type Lines = Vec<(Stream, Vec<u8>)>;

/// A cloneable handle to one output stream (stdout or stderr, or a test buffer).
#[derive(Clone)]
pub(crate) struct Sink {
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    bar: Option<ProgressBar>,
}

impl Sink {
    /// Wraps a writer; `bar` is the status line to hide while writing, if one is drawn.
    pub(crate) fn new(writer: Box<dyn Write + Send>, bar: Option<ProgressBar>) -> Self {
        Sink {
            writer: Arc::new(Mutex::new(writer)),
            bar,
        }
    }

    /// Writes all of `bytes` and flushes, so lines appear live and in order across streams.
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| io::Error::other("an output writer panicked earlier"))?;
        let mut put = || {
            w.write_all(bytes)?;
            w.flush()
        };
        match &self.bar {
            Some(bar) if !bar.is_finished() => bar.suspend(put),
            _ => put(),
        }
    }

    /// Flushes the writer.
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.writer
            .lock()
            .map_err(|_| io::Error::other("an output writer panicked earlier"))?
            .flush()
    }
}

/// An in-memory writer whose contents can be read back while a reporter still holds it.
///
/// Meant for tests (of this crate, of the CLI and of library users): pass
/// `Box::new(buf.clone())` as a writer, run events through, then call [`CaptureBuffer::contents`].
/// Passing clones of one buffer as both stdout and stderr shows the two merged as a terminal
/// would show them.
#[derive(Clone, Default, Debug)]
pub struct CaptureBuffer(Arc<Mutex<Vec<u8>>>);

impl CaptureBuffer {
    /// A new, empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as raw bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Everything written so far, as (lossy) UTF-8 text.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl Write for CaptureBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("capture buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
