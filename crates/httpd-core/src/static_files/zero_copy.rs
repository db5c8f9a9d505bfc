//! Cached file bodies sent with sendfile(2) instead of copied from memory.
//!
//! hyper writes a response as a head and the body's `Bytes`; it cannot send a file. A large
//! cached body is registered here with the open file it was read from, and the
//! connection's writer ([`crate::connection::TimedIo`]) looks each large slice it is asked
//! to write up: a slice inside a registered body is sent from the file at the same
//! offset, so the kernel takes the file's pages instead of copying the bytes from user
//! memory (bench/static.sh, 100 KiB file: a writev of 100 KiB per response, where nginx
//! sends the file). The head before it goes out with MSG_MORE, so head and body still
//! leave in full segments.
//!
//! The bytes are the same as long as the file is: an entry is trusted for the cache's TTL
//! (one second) like the copy in memory, and a file that was replaced (a new inode) is
//! still sent from the old one. One rewritten in place within that second may be sent as
//! it is now (nginx's open_file_cache with sendfile does the same); one that became
//! shorter ends the file early, and the rest comes from the copy in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Bodies at least this large are registered: for a smaller one, a second syscall for
/// the head costs more than the copy it saves.
pub const MIN_BODY: usize = 64 * 1024;
/// Slices to write smaller than this are not looked up (the rest of a body after a short
/// write, or a small response): copying them is cheap, and most writes stay lock-free.
const MIN_SLICE: usize = 16 * 1024;

struct Span {
    len: usize,
    file: Arc<File>,
    id: u64,
}

/// Start address of a registered body → the body's length and its file.
static SPANS: Mutex<BTreeMap<usize, Span>> = Mutex::new(BTreeMap::new());
static COUNT: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registered body; unregistered when dropped (with the cache entry holding it). It
/// holds a clone of the body, released only after the span is removed: were the memory
/// freed first (the entry's own `body` field is dropped before this one), another
/// response written from the same addresses in between would be sent from the file.
pub struct Registration {
    start: usize,
    id: u64,
    _body: Bytes,
}

/// Registers `body`, read whole from `file`, when it is large enough.
pub fn register(body: &Bytes, file: Arc<File>) -> Option<Registration> {
    if body.len() < MIN_BODY {
        return None;
    }
    let start = body.as_ptr() as usize;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = Span {
        len: body.len(),
        file,
        id,
    };
    let mut spans = SPANS.lock().unwrap_or_else(|e| e.into_inner());
    if spans.insert(start, span).is_none() {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
    Some(Registration {
        start,
        id,
        _body: body.clone(),
    })
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut spans = SPANS.lock().unwrap_or_else(|e| e.into_inner());
        // A refreshed entry re-registers the same body: only our own registration goes.
        if spans.get(&self.start).is_some_and(|s| s.id == self.id) {
            spans.remove(&self.start);
            COUNT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The file and offset that hold `buf`, when `buf` lies inside a registered body.
pub fn find(buf: &[u8]) -> Option<(Arc<File>, u64)> {
    if buf.len() < MIN_SLICE || COUNT.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let at = buf.as_ptr() as usize;
    let spans = SPANS.lock().unwrap_or_else(|e| e.into_inner());
    let (&start, span) = spans.range(..=at).next_back()?;
    (at + buf.len() <= start + span.len).then(|| (Arc::clone(&span.file), (at - start) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_of_a_registered_body_are_found_until_it_is_dropped() {
        let file = Arc::new(File::open("/dev/null").unwrap());
        let body = Bytes::from(vec![7u8; MIN_BODY + 100]);
        let small = Bytes::from(vec![7u8; MIN_BODY - 1]);
        assert!(register(&small, Arc::clone(&file)).is_none());
        let reg = register(&body, Arc::clone(&file)).unwrap();
        assert_eq!(find(&body).map(|f| f.1), Some(0));
        assert_eq!(find(&body[100..]).map(|f| f.1), Some(100));
        assert!(
            find(&body[..MIN_SLICE - 1]).is_none(),
            "small slices are copied"
        );
        let other = vec![7u8; MIN_BODY];
        assert!(find(&other).is_none());
        // Re-registered (a refreshed entry), then the old registration dropped: kept.
        let again = register(&body, Arc::clone(&file)).unwrap();
        drop(reg);
        assert!(find(&body).is_some());
        drop(again);
        assert!(find(&body).is_none());
    }
}
