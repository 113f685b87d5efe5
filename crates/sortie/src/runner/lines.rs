//! Splits a byte stream into whole lines, keeping memory bounded.

/// Longest line kept in memory before it is handed on in pieces (each marked partial).
pub const MAX_LINE: usize = 1 << 20;

/// Accumulates output bytes and yields whole lines (without the newline).
///
/// A line longer than `MAX_LINE` is emitted in pieces, so a process that prints without
/// newlines cannot make sortie's memory grow without bound; nothing is dropped.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(line, partial)` for each complete line (partial = false) and for
    /// each over-long piece (partial = true).
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(Vec<u8>, bool)) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.buf);
            line.extend_from_slice(&data[..nl]);
            emit(line, false);
            data = &data[nl + 1..];
        }
        self.buf.extend_from_slice(data);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            emit(std::mem::replace(&mut self.buf, rest), true);
        }
    }

    /// Returns the last line if it had no newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l, p| out.push((l, p)));
        }
        if let Some(l) = s.finish() {
            out.push((l, true));
        }
        out
    }

    #[test]
    fn lines_split_across_chunks_and_last_partial_kept() {
        let out = collect(&[b"ab", b"c\nde", b"\n\nf"]);
        assert_eq!(
            out,
            vec![
                (b"abc".to_vec(), false),
                (b"de".to_vec(), false),
                (b"".to_vec(), false),
                (b"f".to_vec(), true)
            ]
        );
    }

    #[test]
    fn overlong_line_is_emitted_in_pieces_without_loss() {
        let big = vec![b'x'; MAX_LINE * 2 + 10];
        let out = collect(&[&big, b"\n"]);
        assert_eq!(out.len(), 3);
        assert!(out[0].1 && out[1].1 && !out[2].1);
        let total: usize = out.iter().map(|(l, _)| l.len()).sum();
        assert_eq!(total, big.len());
    }
}
