//! Fuzz check for `httpd_core::static_files::range::decide`: the ranges it grants lie in
//! the file, are sorted, merged (no overlap, no adjacency) and capped by MaxRanges, and
//! the answer does not depend on the order the client listed them in.

use httpd_core::static_files::range::{decide, RangeDecision};

/// Input: one byte picks the file size's scale, one its low byte, one MaxRanges (0 is
/// `none`, 255 `unlimited`), the rest is the header value.
pub fn check(data: &[u8]) {
    let [scale, low, cap, header @ ..] = data else {
        return;
    };
    let len = match scale % 4 {
        0 => u64::from(*low),
        1 => u64::from(*low) << 8 | 0xff,
        2 => (1u64 << 40) + u64::from(*low),
        _ => u64::MAX - u64::from(*low),
    };
    let max_ranges = match cap {
        255 => usize::MAX,
        n => usize::from(*n),
    };
    // The handler only sees values that are valid header text.
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let decision = decide(header, len, max_ranges);
    match &decision {
        RangeDecision::Ranges(ranges) => {
            assert!(!ranges.is_empty(), "{header:?}");
            assert!(ranges.len() <= max_ranges, "{header:?}: over MaxRanges");
            for &(first, last) in ranges {
                assert!(
                    first <= last && last < len,
                    "{header:?} of {len}: {ranges:?}"
                );
            }
            for pair in ranges.windows(2) {
                assert!(
                    pair[0].1.saturating_add(1) < pair[1].0,
                    "{header:?}: not sorted and merged: {ranges:?}"
                );
            }
            assert!(ranges.len() <= header.split(',').count(), "{header:?}");
        }
        RangeDecision::Unsatisfiable => {
            assert!(
                header.trim().starts_with("bytes=") && max_ranges > 0,
                "{header:?}"
            );
        }
        RangeDecision::Full => {}
    }
    // Order independence: the same items listed backwards give the same answer.
    if let Some(spec) = header.trim().strip_prefix("bytes=") {
        let reversed: Vec<&str> = spec.split(',').rev().collect();
        let again = decide(&format!("bytes={}", reversed.join(",")), len, max_ranges);
        assert_eq!(again, decision, "{header:?} reversed");
    }
}
