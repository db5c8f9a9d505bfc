//! Small hot files in memory. Measured with wrk (bench/static.sh): serving a 1 KiB file
//! cost six syscalls per request (openat2, statx, pread, close around recv and writev),
//! and user-space formatting of the same validators each time. A cache hit costs neither:
//! the body and the ready-made header values are shared.
//!
//! Freshness: an entry is trusted for [`TTL`] after it was read, then revalidated by
//! reopening the file (nginx's `open_file_cache_valid`, at one second). Each entry's
//! trust ends somewhere in the last quarter of that second ([`trusted_until`]): entries
//! filled together (a burst of first requests for many files) would otherwise all be
//! reopened together a second later, and again every second after (shared/bench's
//! `files` row, 1,000 files: all reopened within 50 ms, once a second). Only files opened
//! through the kernel-checked path (openat2 RESOLVE_BENEATH) are cached, so the symlink
//! rule was enforced when the entry was filled. The cache belongs to one host of one
//! configuration, so a reload starts empty.
//!
//! A path that does not exist is remembered too (a negative entry, nginx's
//! `open_file_cache_errors`), under the same rule: trusted for up to [`TTL`] after the
//! open failed, then opened again. So a file created after a 404 is served within a second, as
//! a changed file is; until then its URL stays 404. Only "no such file" (ENOENT, ENOTDIR)
//! is remembered, by either way of opening (no symlink rule decided it), for at most
//! [`MAX_MISSING`] paths of up to [`MAX_MISSING_NAME`] bytes. On the 404 row of
//! bench/static.sh that open was the one syscall besides the socket's read and write.

use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;

use super::Validators;

/// How long an entry is served without looking at the file again.
pub const TTL: Duration = Duration::from_secs(1);
/// Files up to this size are cached when first served.
pub const MAX_FILE: u64 = 1024 * 1024;
/// Larger files up to this size are cached once they are hot: served again within
/// [`HOT_WINDOW`] of a first request. Streaming a file costs a pread copy of every byte
/// (hyper cannot sendfile); a cached one is written from memory (bench/static.sh, 10 MiB
/// file: 80 preads of 128 KiB per response, half of the server's system time).
pub const MAX_HOT: u64 = 16 * 1024 * 1024;
const HOT_WINDOW: Duration = Duration::from_secs(10);
/// Total cached bytes; past it the cache is emptied and refilled by what is hot.
const MAX_TOTAL: usize = 64 * 1024 * 1024;
/// Of which large files ([`MAX_FILE`] < size <= [`MAX_HOT`]) may hold this much; past it
/// the large entries alone are dropped, so big files never push small hot ones out.
const MAX_LARGE_TOTAL: usize = 32 * 1024 * 1024;
/// Bound on the first-request marks of large files.
const MAX_MARKS: usize = 4096;
/// Bound on the negative entries: past it they are all dropped, so one scan of the map
/// pays for this many insertions (a client asking for many made-up paths, at any rate,
/// costs a reopen at worst; dropping only the expired ones could scan at every insertion).
pub const MAX_MISSING: usize = 4096;
/// Longer paths are not remembered as missing.
pub const MAX_MISSING_NAME: usize = 256;

/// One cached file, with its response headers already formatted.
pub struct Cached {
    pub body: Bytes,
    pub validators: Validators,
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    pub content_type: HeaderValue,
    /// The body's length, as a header value.
    pub content_length: HeaderValue,
    /// Compressible: a client that sends Accept-Encoding takes the uncached path, which
    /// looks for precompressed siblings.
    pub compressible: bool,
    /// Served without looking at the file until then.
    fresh_until: Instant,
    /// A large body is sent from its file (see [`super::zero_copy`]).
    _zero_copy: Option<super::zero_copy::Registration>,
}

impl Cached {
    pub fn new(
        body: Bytes,
        validators: Validators,
        content_type: &str,
        compressible: bool,
    ) -> Option<Cached> {
        Some(Cached {
            etag: HeaderValue::from_str(&validators.etag).ok()?,
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(
                validators.last_modified,
            ))
            .ok()?,
            content_type: HeaderValue::from_str(content_type).ok()?,
            content_length: HeaderValue::from(body.len()),
            body,
            validators,
            compressible,
            fresh_until: trusted_until(),
            _zero_copy: None,
        })
    }

    /// The open file the body was read from, so a large body is sent from it.
    pub fn with_file(mut self, file: std::fs::File) -> Cached {
        self._zero_copy = super::zero_copy::register(&self.body, Arc::new(file));
        self
    }
}

/// What the cache knows about a path.
enum Entry {
    File(Arc<Cached>),
    /// The path did not exist a moment ago: trusted until this time.
    Missing(Instant),
}

impl Entry {
    fn fresh_until(&self) -> Instant {
        match self {
            Entry::File(c) => c.fresh_until,
            Entry::Missing(t) => *t,
        }
    }
}

/// Until when an entry filled now is trusted: [`TTL`] less up to a quarter of it, spread
/// evenly over consecutive fills (a Fibonacci hash of their count).
fn trusted_until() -> Instant {
    static FILLS: AtomicUsize = AtomicUsize::new(0);
    let n = FILLS.fetch_add(1, Ordering::Relaxed) as u32;
    let quarter = TTL / 4;
    let spread = (u64::from(n.wrapping_mul(0x9E37_79B9) >> 16) * quarter.as_nanos() as u64) >> 16;
    Instant::now() + TTL - Duration::from_nanos(spread)
}

/// A fresh entry, as [`FileCache::get`] finds it.
pub enum Hit {
    File(Arc<Cached>),
    /// The path does not exist (it did not a moment ago).
    Missing,
}

type Roots = HashMap<Box<str>, Entry>;

#[derive(Default)]
pub struct FileCache {
    /// Root identity → relative path → entry.
    map: Mutex<HashMap<usize, Roots>>,
    bytes: AtomicUsize,
    /// Bytes of large entries (included in `bytes`).
    large: AtomicUsize,
    /// Large files served once recently (root, path) → when.
    marks: Mutex<HashMap<(usize, Box<str>), Instant>>,
    /// Negative entries in `map`.
    missing: AtomicUsize,
}

fn entry_size(body_len: usize, rel: &str) -> usize {
    body_len + rel.len() + 256
}

fn is_large(body_len: usize) -> bool {
    body_len as u64 > MAX_FILE
}

impl FileCache {
    /// A fresh entry for `rel` under the root identified by `root`.
    pub fn get(&self, root: usize, rel: &str) -> Option<Hit> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(&root)?.get(rel)?;
        if Instant::now() >= entry.fresh_until() {
            return None;
        }
        Some(match entry {
            Entry::File(c) => Hit::File(Arc::clone(c)),
            Entry::Missing(_) => Hit::Missing,
        })
    }

    /// Remembers that `rel` does not exist under `root` (replacing what was known).
    pub fn put_missing(&self, root: usize, rel: &str) {
        if rel.len() > MAX_MISSING_NAME {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if self.missing.load(Ordering::Relaxed) >= MAX_MISSING {
            for roots in map.values_mut() {
                roots.retain(|_, e| matches!(e, Entry::File(_)));
            }
            self.missing.store(0, Ordering::Relaxed);
        }
        let old = map
            .entry(root)
            .or_default()
            .insert(Box::from(rel), Entry::Missing(trusted_until()));
        self.missing.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = old {
            self.forget(&old, rel);
        }
    }

    /// Whether a file of `len` bytes at `rel` should be read into the cache now: small
    /// ones always, large ones on their second request within [`HOT_WINDOW`].
    pub fn admit(&self, root: usize, rel: &str, len: u64) -> bool {
        if len <= MAX_FILE {
            return true;
        }
        if len > MAX_HOT {
            return false;
        }
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let key = (root, Box::from(rel));
        match marks.get(&key) {
            Some(t) if now.duration_since(*t) < HOT_WINDOW => {
                marks.remove(&key);
                true
            }
            _ => {
                if marks.len() >= MAX_MARKS {
                    marks.retain(|_, t| now.duration_since(*t) < HOT_WINDOW);
                    if marks.len() >= MAX_MARKS {
                        marks.clear();
                    }
                }
                marks.insert(key, now);
                false
            }
        }
    }

    /// The body of an entry, however old, if it still has these validators: an expired
    /// entry whose file has not changed is refreshed without reading the file again.
    pub fn unchanged_body(&self, root: usize, rel: &str, etag: &str) -> Option<Bytes> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&root)?.get(rel)? {
            Entry::File(c) => (c.validators.etag == etag).then(|| c.body.clone()),
            Entry::Missing(_) => None,
        }
    }

    pub fn put(&self, root: usize, rel: &str, entry: Cached) -> Arc<Cached> {
        let entry = Arc::new(entry);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let size = entry_size(entry.body.len(), rel);
        let large = is_large(entry.body.len());
        if let Some(old) = map.get_mut(&root).and_then(|r| r.remove(rel)) {
            self.forget(&old, rel);
        }
        if large && self.large.load(Ordering::Relaxed) + size > MAX_LARGE_TOTAL {
            for roots in map.values_mut() {
                roots.retain(|rel, e| {
                    let keep = !matches!(e, Entry::File(c) if is_large(c.body.len()));
                    if !keep {
                        self.forget(e, rel);
                    }
                    keep
                });
            }
        }
        if self.bytes.load(Ordering::Relaxed) + size > MAX_TOTAL {
            map.clear();
            self.bytes.store(0, Ordering::Relaxed);
            self.large.store(0, Ordering::Relaxed);
            self.missing.store(0, Ordering::Relaxed);
        }
        map.entry(root)
            .or_default()
            .insert(Box::from(rel), Entry::File(Arc::clone(&entry)));
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if large {
            self.large.fetch_add(size, Ordering::Relaxed);
        }
        entry
    }

    /// Takes a removed entry out of the counts.
    fn forget(&self, old: &Entry, rel: &str) {
        let old = match old {
            Entry::File(c) => c,
            Entry::Missing(_) => {
                self.missing.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        };
        let size = entry_size(old.body.len(), rel);
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        if is_large(old.body.len()) {
            self.large.fetch_sub(size, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(len: usize, etag: &str) -> Cached {
        let v = Validators {
            etag: etag.to_string(),
            last_modified: UNIX_EPOCH,
        };
        Cached::new(Bytes::from(vec![0u8; len]), v, "text/plain", false).unwrap()
    }

    #[test]
    fn large_files_are_admitted_on_their_second_request() {
        let c = FileCache::default();
        assert!(c.admit(1, "small", 10));
        assert!(!c.admit(1, "big", MAX_FILE + 1));
        assert!(!c.admit(2, "big", MAX_FILE + 1), "per root");
        assert!(c.admit(1, "big", MAX_FILE + 1));
        assert!(!c.admit(1, "huge", MAX_HOT + 1));
        assert!(!c.admit(1, "huge", MAX_HOT + 1));
    }

    #[test]
    fn large_entries_have_their_own_budget() {
        let c = FileCache::default();
        c.put(1, "small", entry(100, "\"s\""));
        let big = MAX_HOT as usize;
        c.put(1, "a", entry(big, "\"a\""));
        c.put(1, "b", entry(big, "\"b\""));
        assert!(
            c.get(1, "a").is_none(),
            "large entries dropped past their budget"
        );
        assert!(c.get(1, "b").is_some());
        assert!(c.get(1, "small").is_some(), "small entries kept");
        assert_eq!(
            c.bytes.load(Ordering::Relaxed),
            entry_size(100, "small") + entry_size(big, "b")
        );
        // Replacing an entry does not count it twice.
        c.put(1, "b", entry(big, "\"b2\""));
        assert_eq!(c.large.load(Ordering::Relaxed), entry_size(big, "b"));
        assert_eq!(
            c.unchanged_body(1, "b", "\"b2\"").map(|b| b.len()),
            Some(big)
        );
        assert!(c.unchanged_body(1, "b", "\"b\"").is_none());
    }

    fn is_missing(c: &FileCache, rel: &str) -> bool {
        matches!(c.get(1, rel), Some(Hit::Missing))
    }

    /// Backdates an entry as if it had been filled a whole TTL ago (it is stale).
    fn expire(c: &FileCache, rel: &str) {
        let mut map = c.map.lock().unwrap();
        match map.get_mut(&1).unwrap().get_mut(rel).unwrap() {
            Entry::Missing(t) => *t -= TTL,
            Entry::File(_) => panic!("{rel} is a file"),
        }
    }

    /// Entries filled together are trusted for between 3/4 of the TTL and all of it,
    /// spread over that quarter.
    #[test]
    fn entries_filled_together_go_stale_apart() {
        let start = Instant::now();
        let until: Vec<Duration> = (0..1000).map(|_| trusted_until() - start).collect();
        let took = start.elapsed();
        let (min, max) = (until.iter().min().unwrap(), until.iter().max().unwrap());
        assert!(*min >= TTL * 3 / 4 && *max <= TTL + took, "{min:?} {max:?}");
        assert!(*max - *min >= TTL / 5, "spread over {:?} only", *max - *min);
        let early = until.iter().filter(|&&d| d < TTL * 7 / 8).count();
        assert!(
            (350..=650).contains(&early),
            "{early} of 1000 in the first half of the spread"
        );
    }

    #[test]
    fn a_missing_path_is_trusted_for_the_ttl_then_looked_up_again() {
        let c = FileCache::default();
        c.put_missing(1, "gone.html");
        assert!(is_missing(&c, "gone.html"));
        assert!(c.get(2, "gone.html").is_none(), "per root");
        assert!(c.unchanged_body(1, "gone.html", "\"x\"").is_none());
        expire(&c, "gone.html");
        assert!(c.get(1, "gone.html").is_none(), "expired: opened again");
        // Still missing when opened again: remembered anew, counted once.
        c.put_missing(1, "gone.html");
        assert!(is_missing(&c, "gone.html"));
        assert_eq!(c.missing.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_file_that_appears_replaces_its_negative_entry_and_back() {
        let c = FileCache::default();
        c.put_missing(1, "new.html");
        expire(&c, "new.html");
        c.put(1, "new.html", entry(10, "\"n\""));
        assert!(matches!(c.get(1, "new.html"), Some(Hit::File(_))));
        assert_eq!(c.missing.load(Ordering::Relaxed), 0);
        assert_eq!(c.bytes.load(Ordering::Relaxed), entry_size(10, "new.html"));
        // Deleted: the negative entry takes the file's place and its bytes.
        c.put_missing(1, "new.html");
        assert!(is_missing(&c, "new.html"));
        assert_eq!(c.bytes.load(Ordering::Relaxed), 0);
        assert_eq!(c.missing.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn negative_entries_are_bounded() {
        let c = FileCache::default();
        c.put(1, "real", entry(10, "\"r\""));
        for i in 0..MAX_MISSING {
            c.put_missing(1, &format!("m{i}"));
        }
        assert_eq!(c.missing.load(Ordering::Relaxed), MAX_MISSING);
        assert!(is_missing(&c, "m0"));
        c.put_missing(1, "one-more");
        assert_eq!(
            c.missing.load(Ordering::Relaxed),
            1,
            "past the bound: all dropped"
        );
        assert!(c.get(1, "m0").is_none());
        assert!(is_missing(&c, "one-more"));
        assert!(matches!(c.get(1, "real"), Some(Hit::File(_))), "files stay");
        c.put_missing(1, &"x".repeat(MAX_MISSING_NAME + 1));
        assert_eq!(
            c.missing.load(Ordering::Relaxed),
            1,
            "long names are not kept"
        );
    }
}
