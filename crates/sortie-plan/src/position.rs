//! Byte offsets to 1-based line/column positions (private helper).
//!
//! Owns the one definition of "line" and "column" used by every error in this crate: lines are
//! separated by `\n` (a `\r` before it belongs to the line ending), and the column counts Unicode
//! scalar values from the start of the line, both starting at 1.

/// 1-based `(line, column)` of byte `offset` in `src`.
///
/// `offset` is clamped to the text and moved back to a character boundary, so this never panics.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Byte length of the character starting at `offset` (1 at the end of the text, so a label there
/// still shows a caret).
pub(crate) fn char_len_at(src: &str, offset: usize) -> usize {
    src.get(offset..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_unicode_columns() {
        let src = "ab\r\ncé,x\ny";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 1), (1, 2));
        // 'x' is after 'c', 'é' (2 bytes) and ','.
        let x = src.find('x').unwrap();
        assert_eq!(line_col(src, x), (2, 4));
        assert_eq!(line_col(src, src.len()), (3, 2));
        assert_eq!(line_col(src, 10_000), (3, 2));
    }
}
