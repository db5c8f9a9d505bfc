//! `Range: bytes=...` (RFC 9110 §14.1.2 and §14.2), with Apache's MaxRanges cap and the
//! merging of overlapping or adjacent ranges, so `bytes=0-,0-,0-…` cannot amplify a
//! response.

/// What a Range header asks of a representation of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeDecision {
    /// No usable Range header (absent, not `bytes=`, malformed, or over MaxRanges): 200.
    Full,
    /// Sorted, merged, inclusive `(first, last)` byte positions: 206.
    Ranges(Vec<(u64, u64)>),
    /// Syntactically fine but nothing satisfiable: 416 with `bytes */len`.
    Unsatisfiable,
}

/// Decides a Range header value for a representation of `len` bytes. `max_ranges` is
/// Apache's MaxRanges: 0 is `none` (ranges ignored), `usize::MAX` is `unlimited`; more
/// ranges than it and the full representation is sent, as Apache does.
pub fn decide(header: &str, len: u64, max_ranges: usize) -> RangeDecision {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeDecision::Full;
    };
    if max_ranges == 0 {
        return RangeDecision::Full;
    }
    let mut ranges = Vec::new();
    let mut count = 0usize;
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        count += 1;
        let Some((a, b)) = item.split_once('-') else {
            return RangeDecision::Full;
        };
        let (a, b) = (a.trim(), b.trim());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if a.is_empty() {
            // Suffix range: the last N bytes.
            if !digits(b) {
                return RangeDecision::Full;
            }
            let n: u64 = b.parse().unwrap_or(u64::MAX);
            if n > 0 && len > 0 {
                ranges.push((len.saturating_sub(n), len - 1));
            }
        } else {
            if !digits(a) || !(b.is_empty() || digits(b)) {
                return RangeDecision::Full;
            }
            let first: u64 = a.parse().unwrap_or(u64::MAX);
            let last: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().unwrap_or(u64::MAX)
            };
            if last < first {
                return RangeDecision::Full;
            }
            if first < len {
                ranges.push((first, last.min(len - 1)));
            }
        }
    }
    if count == 0 {
        return RangeDecision::Full;
    }
    if count > max_ranges {
        return RangeDecision::Full;
    }
    if ranges.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some((_, last)) if a <= last.saturating_add(1) => *last = (*last).max(b),
            _ => merged.push((a, b)),
        }
    }
    RangeDecision::Ranges(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeDecision::*;

    #[test]
    fn table() {
        let cases: &[(&str, u64, RangeDecision)] = &[
            ("bytes=0-0", 10, Ranges(vec![(0, 0)])),
            ("bytes=2-5", 10, Ranges(vec![(2, 5)])),
            ("bytes=5-", 10, Ranges(vec![(5, 9)])),
            ("bytes=-3", 10, Ranges(vec![(7, 9)])),
            ("bytes=-30", 10, Ranges(vec![(0, 9)])),
            ("bytes=0-100", 10, Ranges(vec![(0, 9)])),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-1,4-5", 10, Ranges(vec![(0, 1), (4, 5)])),
            ("bytes=0-5,3-8", 10, Ranges(vec![(0, 8)])),
            ("bytes=0-1,2-3", 10, Ranges(vec![(0, 3)])),
            ("bytes=0-,0-,0-,0-", 10, Ranges(vec![(0, 9)])),
            ("bytes=5-2", 10, Full),
            ("bytes=a-b", 10, Full),
            ("items=0-1", 10, Full),
            ("bytes=", 10, Full),
            ("bytes=0-0", 0, Unsatisfiable),
        ];
        for (h, len, want) in cases {
            assert_eq!(&decide(h, *len, 200), want, "{h} of {len}");
        }
    }

    #[test]
    fn max_ranges_cap() {
        let many = format!("bytes={}", vec!["0-0"; 201].join(","));
        assert_eq!(decide(&many, 10, 200), Full);
        let ok = format!("bytes={}", vec!["0-0"; 200].join(","));
        assert_eq!(decide(&ok, 10, 200), Ranges(vec![(0, 0)]));
        // `none` ignores every Range header; `unlimited` takes any count.
        assert_eq!(decide("bytes=0-0", 10, 0), Full);
        assert_eq!(decide(&many, 10, usize::MAX), Ranges(vec![(0, 0)]));
        assert_eq!(decide("bytes=0-1,4-5", 10, 1), Full);
    }
}
