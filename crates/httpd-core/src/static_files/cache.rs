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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;

use super::Validators;

/// How long an entry is served without looking at the file again.
pub const TTL: Duration = Duration::from_secs(1);
/// Files larger than this are not cached.
pub const MAX_FILE: u64 = 1024 * 1024;
/// Total cached bytes; past it the cache is emptied and refilled by what is hot.
const MAX_TOTAL: usize = 64 * 1024 * 1024;

/// One cached file, with its response headers already formatted.
pub struct Cached {
    pub body: Bytes,
    pub validators: Validators,
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    pub content_type: HeaderValue,
    /// Compressible: a client that sends Accept-Encoding takes the uncached path, which
    /// looks for precompressed siblings.
    pub compressible: bool,
    filled: Instant,
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
            body,
            validators,
            compressible,
            filled: Instant::now(),
        })
    }
}

type Roots = HashMap<Box<str>, Arc<Cached>>;

#[derive(Default)]
pub struct FileCache {
    /// Root identity → relative path → entry.
    map: Mutex<HashMap<usize, Roots>>,
    bytes: AtomicUsize,
}

impl FileCache {
    /// A fresh entry for `rel` under the root identified by `root`.
    pub fn get(&self, root: usize, rel: &str) -> Option<Arc<Cached>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(&root)?.get(rel)?;
        (entry.filled.elapsed() < TTL).then(|| Arc::clone(entry))
    }

    pub fn put(&self, root: usize, rel: &str, entry: Cached) -> Arc<Cached> {
        let entry = Arc::new(entry);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let size = entry.body.len() + rel.len() + 256;
        if self.bytes.load(Ordering::Relaxed) + size > MAX_TOTAL {
            map.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
        if let Some(old) = map
            .entry(root)
            .or_default()
            .insert(Box::from(rel), Arc::clone(&entry))
        {
            self.bytes
                .fetch_sub(old.body.len() + rel.len() + 256, Ordering::Relaxed);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        entry
    }
}
