//! Small hot files in memory. Measured with wrk (bench/static.sh): serving a 1 KiB file
//! cost six syscalls per request (openat2, statx, pread, close around recv and writev),
//! and user-space formatting of the same validators each time. A cache hit costs neither:
//! the body and the ready-made header values are shared.
//!
//! Freshness: an entry is trusted for [`TTL`] after it was read, then revalidated by
//! reopening the file (nginx's `open_file_cache_valid`, at one second). Only files opened
//! through the kernel-checked path (openat2 RESOLVE_BENEATH) are cached, so the symlink
//! rule was enforced when the entry was filled. The cache belongs to one host of one
//! configuration, so a reload starts empty.

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
    filled: Instant,
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
            filled: Instant::now(),
            _zero_copy: None,
        })
    }

    /// The open file the body was read from, so a large body is sent from it.
    pub fn with_file(mut self, file: std::fs::File) -> Cached {
        self._zero_copy = super::zero_copy::register(&self.body, Arc::new(file));
        self
    }
}

type Roots = HashMap<Box<str>, Arc<Cached>>;

#[derive(Default)]
pub struct FileCache {
    /// Root identity → relative path → entry.
    map: Mutex<HashMap<usize, Roots>>,
    bytes: AtomicUsize,
    /// Bytes of large entries (included in `bytes`).
    large: AtomicUsize,
    /// Large files served once recently (root, path) → when.
    marks: Mutex<HashMap<(usize, Box<str>), Instant>>,
}

fn entry_size(body_len: usize, rel: &str) -> usize {
    body_len + rel.len() + 256
}

fn is_large(body_len: usize) -> bool {
    body_len as u64 > MAX_FILE
}

impl FileCache {
    /// A fresh entry for `rel` under the root identified by `root`.
    pub fn get(&self, root: usize, rel: &str) -> Option<Arc<Cached>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(&root)?.get(rel)?;
        (entry.filled.elapsed() < TTL).then(|| Arc::clone(entry))
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
        let entry = map.get(&root)?.get(rel)?;
        (entry.validators.etag == etag).then(|| entry.body.clone())
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
                    let keep = !is_large(e.body.len());
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
        }
        map.entry(root)
            .or_default()
            .insert(Box::from(rel), Arc::clone(&entry));
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if large {
            self.large.fetch_add(size, Ordering::Relaxed);
        }
        entry
    }

    /// Takes a removed entry out of the byte counts.
    fn forget(&self, old: &Cached, rel: &str) {
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
}
