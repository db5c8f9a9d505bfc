//! Retention: which files of a series to delete under `--keep N` and `--max-total SIZE`.
//! Oldest first (by modification time, a compressed file keeps its original's); the
//! current file is never deleted.

use std::path::{Path, PathBuf};

use super::pattern::SeriesFile;

/// The files to delete so that at most `keep` files remain and the series takes at most
/// `max_total` bytes, never touching `current`.
pub fn select(
    mut files: Vec<SeriesFile>,
    current: Option<&Path>,
    keep: Option<u32>,
    max_total: Option<u64>,
) -> Vec<PathBuf> {
    files.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut count = files.len();
    let mut total: u64 = files.iter().map(|f| f.size).sum();
    let mut delete = Vec::new();
    for f in files {
        let too_many = keep.is_some_and(|k| count > k as usize);
        let too_big = max_total.is_some_and(|m| total > m);
        if !too_many && !too_big {
            break;
        }
        if Some(f.path.as_path()) == current {
            continue;
        }
        count -= 1;
        total -= f.size;
        delete.push(f.path);
    }
    delete
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn file(name: &str, size: u64, t: u64) -> SeriesFile {
        SeriesFile {
            path: PathBuf::from(name),
            size,
            modified: UNIX_EPOCH + Duration::from_secs(t),
        }
    }

    #[test]
    fn selects_oldest_first() {
        let files = vec![
            file("c", 10, 3),
            file("a", 10, 1),
            file("d", 10, 4),
            file("b", 10, 2),
        ];
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        for (keep, max_total, current, want) in [
            (None, None, "d", p(&[])),
            (Some(4), None, "d", p(&[])),
            (Some(2), None, "d", p(&["a", "b"])),
            (Some(1), None, "d", p(&["a", "b", "c"])),
            (None, Some(25), "d", p(&["a", "b"])),
            (None, Some(40), "d", p(&[])),
            (Some(3), Some(15), "d", p(&["a", "b", "c"])),
            // The current file is never deleted, even when it is the oldest.
            (Some(1), None, "a", p(&["b", "c", "d"])),
            (None, Some(5), "d", p(&["a", "b", "c"])),
        ] {
            let got = select(files.clone(), Some(Path::new(current)), keep, max_total);
            assert_eq!(got, want, "keep {keep:?} max_total {max_total:?}");
        }
    }
}
