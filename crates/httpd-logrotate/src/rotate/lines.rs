//! Line assembly: raw stdin chunks in, whole lines out.
//!
//! A read from a pipe ends wherever the writer happened to be, so the partial last line of
//! each chunk is carried over to the next. Lines longer than `--max-line` are cut into
//! pieces, each but the last followed by [`MARKER`]; the carry never grows past
//! `--max-line`, so memory stays bounded whatever the input.

use memchr::{memchr, memchr_iter, memrchr};

/// Ends every piece of a split line except the last (before its newline).
pub const MARKER: &[u8] = b" [continued]";

/// Turns chunks into whole lines.
#[derive(Debug)]
pub struct LineSplitter {
    carry: Vec<u8>,
    max_line: usize,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter {
            carry: Vec::with_capacity(max_line.min(1 << 16)),
            max_line,
        }
    }

    /// Appends to `out` the whole lines that `chunk` completes (each ending in `\n`).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let max = self.max_line;
        // Fast path: in a chunk no longer than `max`, only the first line (which continues
        // the carry) can be too long, so the lines between need no scan.
        if chunk.len() <= max {
            match (memchr(b'\n', chunk), memrchr(b'\n', chunk)) {
                (Some(first), Some(last)) if self.carry.len() + first <= max => {
                    out.extend_from_slice(&self.carry);
                    self.carry.clear();
                    out.extend_from_slice(&chunk[..=last]);
                    self.carry.extend_from_slice(&chunk[last + 1..]);
                    return;
                }
                (None, _) if self.carry.len() + chunk.len() <= max => {
                    self.carry.extend_from_slice(chunk);
                    return;
                }
                _ => {}
            }
        }
        let mut run_start = 0; // start of a run of ordinary lines not yet copied
        let mut line_start = 0;
        for nl in memchr_iter(b'\n', chunk) {
            if !self.carry.is_empty() {
                self.carry.extend_from_slice(&chunk[line_start..nl]);
                let line = std::mem::take(&mut self.carry);
                emit(&line, max, out);
                self.carry = line;
                self.carry.clear();
                run_start = nl + 1;
            } else if nl - line_start > max {
                out.extend_from_slice(&chunk[run_start..line_start]);
                emit(&chunk[line_start..nl], max, out);
                run_start = nl + 1;
            }
            line_start = nl + 1;
        }
        out.extend_from_slice(&chunk[run_start..line_start]);
        self.carry.extend_from_slice(&chunk[line_start..]);
        // Keep the carry bounded: cut full pieces off a line that is still growing.
        if self.carry.len() > max {
            let cut = pieces(&self.carry, max, out);
            self.carry.drain(..cut);
        }
    }

    /// Appends the final partial line, if any, with the newline it lacked.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.carry.is_empty() {
            emit(&self.carry, self.max_line, out);
            self.carry.clear();
        }
    }

    /// Bytes of a partial line held back.
    pub fn carried(&self) -> usize {
        self.carry.len()
    }
}

/// Writes `line` (without its newline) as one or more lines of at most `max` bytes.
fn emit(line: &[u8], max: usize, out: &mut Vec<u8>) {
    let cut = pieces(line, max, out);
    out.extend_from_slice(&line[cut..]);
    out.push(b'\n');
}

/// Writes full pieces while more than `max` bytes remain; returns the bytes consumed.
/// A cut never falls inside a UTF-8 sequence when it can be avoided.
fn pieces(line: &[u8], max: usize, out: &mut Vec<u8>) -> usize {
    let mut start = 0;
    while line.len() - start > max {
        let mut cut = start + max;
        let mut back = 0;
        while back < 3 && cut > start + 1 && (line[cut] & 0xC0) == 0x80 {
            cut -= 1;
            back += 1;
        }
        if (line[cut] & 0xC0) == 0x80 {
            cut = start + max; // not UTF-8: cut at the limit
        }
        out.extend_from_slice(&line[start..cut]);
        out.extend_from_slice(MARKER);
        out.push(b'\n');
        start = cut;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str], max: usize) -> String {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c.as_bytes(), &mut out);
            assert!(s.carried() <= max);
        }
        s.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn assembles_lines() {
        let m = 20;
        for (chunks, want) in [
            (&["a\nb\n"][..], "a\nb\n"),
            (&["a\nb"], "a\nb\n"),
            (&["ab", "c\nd", "e\n"], "abc\nde\n"),
            (&["", "x", "", "y\n"], "xy\n"),
            (&["\n\n"], "\n\n"),
            (&[], ""),
        ] {
            assert_eq!(run(chunks, m), want, "{chunks:?}");
        }
    }

    #[test]
    fn splits_long_lines_with_marker() {
        let c = " [continued]";
        for (chunks, max, want) in [
            (
                &["0123456789abcdefghij\n"][..],
                16,
                format!("0123456789abcdef{c}\nghij\n"),
            ),
            // The same line arriving in pieces, and without its final newline.
            (
                &["01234567", "89abcdefgh", "ij"],
                16,
                format!("0123456789abcdef{c}\nghij\n"),
            ),
            (
                &["short\n0123456789abcdefghij\nend\n"],
                16,
                format!("short\n0123456789abcdef{c}\nghij\nend\n"),
            ),
            (
                &["0123456789abcdef\n"],
                16,
                "0123456789abcdef\n".to_string(),
            ),
            // A carry that a short chunk makes too long, and one it does not.
            (
                &["0123456789", "abcdefghij\nk\n"],
                16,
                format!("0123456789abcdef{c}\nghij\nk\n"),
            ),
            (
                &["0123456789", "abcdef\nk\n"],
                16,
                "0123456789abcdef\nk\n".to_string(),
            ),
            (
                &[&"x".repeat(40), "\n"],
                16,
                format!(
                    "{}{c}\n{}{c}\n{}\n",
                    "x".repeat(16),
                    "x".repeat(16),
                    "x".repeat(8)
                ),
            ),
        ] {
            assert_eq!(run(chunks, max), want, "{chunks:?}");
        }
    }

    #[test]
    fn never_cuts_inside_utf8() {
        // 15 ASCII bytes then a 2-byte 'é': a cut at 16 would split it.
        let line = format!("{}é{}\n", "a".repeat(15), "b".repeat(10));
        let out = run(&[&line], 16);
        assert!(std::str::from_utf8(out.as_bytes()).is_ok());
        assert!(
            out.starts_with(&format!("{} [continued]\né", "a".repeat(15))),
            "{out}"
        );
    }
}
