//! Serving files: [`decide`] maps a request to an [`Outcome`] (no I/O beyond looking at
//! the filesystem), [`respond`] turns the outcome into a response.
//!
//! RFC 9110: validators (§8.8: a strong ETag from size and modification time, and
//! Last-Modified), preconditions in the order of §13.2.2, ranges (§14), 405 with Allow
//! (§15.5.6).

pub mod cache;
pub mod listing;
pub mod range;
pub mod zero_copy;

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::{Body, Part};
use crate::pipeline::Mapped;
use crate::resolve;
use crate::site::Effective;
use range::RangeDecision;

/// Files up to this size are read into memory in one go (one read syscall), and
/// compressed in one go when gzip is applied on the fly (larger ones stream).
const SMALL_FILE: u64 = 64 * 1024;
/// The gzip level for on-the-fly compression.
const GZIP_LEVEL: flate2::Compression = flate2::Compression::new(5);

/// Methods a static resource answers.
pub const ALLOW: &str = "GET, HEAD, OPTIONS";
pub const ALLOW_WITH_TRACE: &str = "GET, HEAD, OPTIONS, TRACE";

/// What the static handler needs to know about a request.
pub struct StaticRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The normalized, decoded path (see [`resolve::normalize`]).
    pub url_path: &'a str,
    /// The path as the client sent it (still encoded), for redirects.
    pub raw_path: &'a str,
    pub query: Option<&'a str>,
    /// Where the URL lives on disk, and the root it must stay in.
    pub mapped: Mapped<'a>,
    pub eff: &'a Effective,
    pub max_ranges: usize,
    /// The host's small-file cache (None: do not cache, as for error documents).
    pub cache: Option<&'a cache::FileCache>,
}

/// The validators of a file.
#[derive(Debug, Clone)]
pub struct Validators {
    pub etag: String,
    pub last_modified: SystemTime,
}

/// A file to send.
#[derive(Debug)]
pub struct FileOutcome {
    pub file: File,
    pub len: u64,
    pub content_type: String,
    pub validators: Validators,
    pub ranges: Option<Vec<(u64, u64)>>,
    /// The Content-Encoding of what is sent (a precompressed sibling, or gzip now).
    pub encoding: Option<&'static str>,
    /// Compress the file with gzip as it is sent.
    pub gzip_now: bool,
    /// The resource has encoded variants: `Vary: Accept-Encoding`.
    pub vary: bool,
}

/// The decision for one request.
pub enum Outcome {
    File(FileOutcome),
    /// A small file from the cache, whole or in ranges.
    Cached {
        entry: std::sync::Arc<cache::Cached>,
        ranges: Option<Vec<(u64, u64)>>,
    },
    NotModified(Validators),
    PreconditionFailed,
    RangeNotSatisfiable {
        len: u64,
    },
    /// DirectorySlash: 301 to this location.
    Redirect(String),
    Listing {
        url_path: String,
        entries: Vec<listing::Entry>,
        json: bool,
    },
    /// OPTIONS on a resource.
    Options,
    MethodNotAllowed,
    Forbidden,
    NotFound,
    BadRequest,
}

/// An opened file or directory, or why not.
enum Opened {
    /// The bool says the kernel checked containment (the result may be cached).
    Ok(File, std::fs::Metadata, bool),
    /// No such path (ENOENT, ENOTDIR): may be cached, as no rule about symlinks or
    /// access decided it.
    Missing,
    NotFound,
    Forbidden,
}

/// Opens `rel` under the request's root, applying the symlink rule: with a root handle the
/// kernel refuses any escape (openat2 RESOLVE_BENEATH) in one syscall; when it refuses,
/// or there is no handle, the canonical path decides (a symlink leaving the root only
/// with `Options FollowSymLinks`).
fn open_checked(r: &StaticRequest, fs_path: &Path, rel: &str) -> Opened {
    if let Some(fd) = r.mapped.root_fd {
        match crate::sys::open_beneath(fd, rel) {
            Ok(f) => {
                return match f.metadata() {
                    Ok(m) => Opened::Ok(f, m, true),
                    Err(_) => Opened::NotFound,
                }
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => return Opened::Missing,
                Some(libc::ENAMETOOLONG) => return Opened::NotFound,
                Some(libc::EACCES) | Some(libc::EPERM) => return Opened::Forbidden,
                // EXDEV/ELOOP (the path leaves the root, or an absolute symlink), ENOSYS:
                // decide by the canonical path below.
                _ => {}
            },
        }
    }
    let meta = match std::fs::metadata(fs_path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Opened::Forbidden,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Opened::Missing
        }
        Err(_) => return Opened::NotFound,
    };
    if fs_path != r.mapped.canonical_root
        && !r.eff.options.follow_symlinks
        && resolve::escapes_root(r.mapped.canonical_root, fs_path)
    {
        return Opened::Forbidden;
    }
    match File::open(fs_path) {
        Ok(f) => Opened::Ok(f, meta, false),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Opened::Forbidden,
        Err(_) => Opened::NotFound,
    }
}

/// Maps the request to an outcome. The security rules of [`resolve`] have already
/// produced the mapped path; here the symlink rule is applied and the file's state decided.
pub fn decide(r: &StaticRequest) -> Outcome {
    if resolve::is_denied_dotfile(r.url_path) {
        return Outcome::NotFound;
    }
    let cache = r.cache.zip(root_id(r));
    match cache.and_then(|(c, root)| c.get(root, r.mapped.rel)) {
        Some(cache::Hit::Missing) => return Outcome::NotFound,
        Some(cache::Hit::File(entry)) => {
            if let Some(o) = from_cache(r, entry) {
                return o;
            }
        }
        None => {}
    }
    let (file, meta, checked) = match open_checked(r, r.mapped.fs_path(), r.mapped.rel) {
        Opened::Ok(f, m, c) => (f, m, c),
        Opened::Missing => {
            if let Some((c, root)) = cache {
                c.put_missing(root, r.mapped.rel);
            }
            return Outcome::NotFound;
        }
        Opened::NotFound => return Outcome::NotFound,
        Opened::Forbidden => return Outcome::Forbidden,
    };
    let method_ok = matches!(*r.method, Method::GET | Method::HEAD);
    if meta.is_dir() {
        drop(file);
        if !r.url_path.ends_with('/') {
            if !r.eff.directory_slash {
                return Outcome::NotFound;
            }
            if !method_ok {
                return non_get(r.method);
            }
            let mut loc = format!("{}/", r.raw_path);
            if let Some(q) = r.query {
                loc.push('?');
                loc.push_str(q);
            }
            return Outcome::Redirect(loc);
        }
        for index in &r.eff.directory_index {
            if index.contains('/') || index.starts_with('.') {
                continue;
            }
            let candidate = r.mapped.fs_path().join(index);
            let rel = if r.mapped.rel.is_empty() {
                index.clone()
            } else {
                format!("{}/{index}", r.mapped.rel)
            };
            if let Opened::Ok(f, m, checked) = open_checked(r, &candidate, &rel) {
                if m.is_file() {
                    return file_outcome(r, &candidate, &rel, f, m, checked);
                }
            }
        }
        if !r.eff.options.indexes {
            return Outcome::Forbidden;
        }
        if !method_ok {
            return non_get(r.method);
        }
        return match listing::read(r.mapped.fs_path()) {
            Ok(entries) => Outcome::Listing {
                url_path: r.url_path.to_string(),
                entries,
                json: listing::wants_json(
                    r.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
                ),
            },
            Err(_) => Outcome::Forbidden,
        };
    }
    if !meta.is_file() {
        return Outcome::NotFound;
    }
    if r.url_path.ends_with('/') {
        // `/file.html/` names a directory that does not exist.
        return Outcome::NotFound;
    }
    file_outcome(r, r.mapped.fs_path(), r.mapped.rel, file, meta, checked)
}

fn root_id(r: &StaticRequest) -> Option<usize> {
    r.mapped.root_fd.map(|fd| fd as *const _ as usize)
}

/// A fresh cache entry answers a plain GET/HEAD of a file, with preconditions and ranges
/// applied; None to take the uncached path.
fn from_cache(r: &StaticRequest, entry: Arc<cache::Cached>) -> Option<Outcome> {
    if r.url_path.ends_with('/') || !matches!(*r.method, Method::GET | Method::HEAD) {
        return None;
    }
    if !has_conditionals(r.headers) {
        // No Accept-Encoding, precondition or Range: the whole entry (most requests).
        return Some(Outcome::Cached {
            entry,
            ranges: None,
        });
    }
    if entry.compressible && r.headers.contains_key(header::ACCEPT_ENCODING) {
        return None;
    }
    if let Some(o) = preconditions(r.headers, &entry.validators) {
        return Some(o);
    }
    let len = entry.body.len() as u64;
    let ranges = match r.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) if *r.method == Method::GET && if_range_holds(r.headers, &entry.validators) => {
            match range::decide(h, len, r.max_ranges) {
                RangeDecision::Full => None,
                RangeDecision::Ranges(v) => Some(v),
                RangeDecision::Unsatisfiable => return Some(Outcome::RangeNotSatisfiable { len }),
            }
        }
        _ => None,
    };
    Some(Outcome::Cached { entry, ranges })
}

/// Whether a request has a header that can change a cached answer: Accept-Encoding, a
/// precondition, Range or If-Range. One pass over the names (no hashing): requests have
/// few headers, and most have none of these.
fn has_conditionals(h: &HeaderMap) -> bool {
    h.keys().any(|k| {
        [
            header::ACCEPT_ENCODING,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::RANGE,
            header::IF_RANGE,
        ]
        .contains(k)
    })
}

fn non_get(method: &Method) -> Outcome {
    if method == Method::OPTIONS {
        Outcome::Options
    } else {
        Outcome::MethodNotAllowed
    }
}

fn file_outcome(
    r: &StaticRequest,
    path: &Path,
    rel: &str,
    file: File,
    meta: std::fs::Metadata,
    checked: bool,
) -> Outcome {
    if !matches!(*r.method, Method::GET | Method::HEAD) {
        return non_get(r.method);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut content_type = r.eff.mime_for(&name);
    if let Some(cs) = &r.eff.default_charset {
        if (content_type.starts_with("text/") || content_type == "application/javascript")
            && !content_type.contains("charset")
        {
            content_type = format!("{content_type}; charset={cs}");
        }
    }
    // Content coding: a precompressed sibling (`file.br`, `file.zst`, `file.gz`) when the
    // client accepts it, else gzip on the fly for small text (RFC 9110 §8.4, §12.5.3).
    let (mut file, mut meta) = (file, meta);
    let compressible = is_compressible(&content_type);
    let mut encoding = None;
    let mut gzip_now = false;
    if compressible {
        if let Some(accept) = header_str(r.headers, header::ACCEPT_ENCODING) {
            for (coding, ext) in [("br", "br"), ("zstd", "zst"), ("gzip", "gz")] {
                if !accepts_coding(accept, coding) {
                    continue;
                }
                let sibling = path.with_file_name(format!("{name}.{ext}"));
                if let Opened::Ok(f, m, _) = open_checked(r, &sibling, &format!("{rel}.{ext}")) {
                    if m.is_file() {
                        (file, meta, encoding) = (f, m, Some(coding));
                        break;
                    }
                }
            }
            // Not for range requests: a range of the compressed stream is meaningless to
            // the client, and of the identity one needs the identity encoding.
            if encoding.is_none()
                && accepts_coding(accept, "gzip")
                && meta.len() >= 256
                && !r.headers.contains_key(header::RANGE)
            {
                gzip_now = true;
                encoding = Some("gzip");
            }
        }
    }
    let len = meta.len();
    let last_modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let mut etag = etag_for(len, last_modified);
    if let Some(coding) = encoding {
        // Each representation has its own validator.
        etag.insert_str(etag.len() - 1, &format!("-{coding}"));
    }
    let validators = Validators {
        etag,
        last_modified,
    };
    if let Some(o) = preconditions(r.headers, &validators) {
        return o;
    }
    let ranges = match r.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) if *r.method == Method::GET && if_range_holds(r.headers, &validators) => {
            match range::decide(h, len, r.max_ranges) {
                RangeDecision::Full => None,
                RangeDecision::Ranges(v) => Some(v),
                RangeDecision::Unsatisfiable => return Outcome::RangeNotSatisfiable { len },
            }
        }
        _ => None,
    };
    if let (Some(cache), Some(root), None, true) = (r.cache, root_id(r), encoding, checked) {
        // An expired entry of an unchanged file is refreshed without reading it again.
        let body = cache
            .unchanged_body(root, rel, &validators.etag)
            .or_else(|| {
                cache.admit(root, rel, len).then(|| {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; len as usize];
                    file.read_exact_at(&mut buf, 0)
                        .ok()
                        .map(|()| Bytes::from(buf))
                })?
            });
        if let Some(c) = body
            .and_then(|b| cache::Cached::new(b, validators.clone(), &content_type, compressible))
        {
            let entry = cache.put(root, rel, c.with_file(file));
            return Outcome::Cached { entry, ranges };
        }
    }
    Outcome::File(FileOutcome {
        file,
        len,
        content_type,
        validators,
        ranges,
        encoding,
        gzip_now,
        vary: compressible,
    })
}

/// Types worth compressing: text, and the structured text formats served as application/*.
fn is_compressible(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim();
    t.starts_with("text/")
        || matches!(
            t,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/xhtml+xml"
                | "application/wasm"
                | "image/svg+xml"
                | "application/manifest+json"
        )
}

/// Whether an Accept-Encoding value accepts `coding` (q=0 refuses; `*` accepts).
fn accepts_coding(accept: &str, coding: &str) -> bool {
    let mut star = false;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q > 0.0;
        }
        if name == "*" {
            star = q > 0.0;
        }
    }
    star
}

/// A strong validator from size and modification time in nanoseconds: it changes whenever
/// the content can have changed (a same-size rewrite changes the mtime).
fn etag_for(len: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{nanos:x}-{len:x}\"")
}

/// Whether an If-Match / If-None-Match list contains `etag` (`*` matches any).
fn etag_list_matches(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',').map(str::trim).any(|t| {
        if t == "*" {
            return true;
        }
        if weak {
            t.trim_start_matches("W/") == etag
        } else {
            t == etag
        }
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RFC 9110 §13.2.2, steps 1–4.
fn preconditions(headers: &HeaderMap, v: &Validators) -> Option<Outcome> {
    if let Some(im) = header_str(headers, header::IF_MATCH) {
        // Strong comparison (§13.1.1).
        if !etag_list_matches(im, &v.etag, false) {
            return Some(Outcome::PreconditionFailed);
        }
    } else if let Some(ius) = header_str(headers, header::IF_UNMODIFIED_SINCE) {
        if let Ok(date) = httpdate::parse_http_date(ius) {
            if secs(v.last_modified) > secs(date) {
                return Some(Outcome::PreconditionFailed);
            }
        }
    }
    if let Some(inm) = header_str(headers, header::IF_NONE_MATCH) {
        // Weak comparison (§13.1.2); only GET/HEAD reach here.
        if etag_list_matches(inm, &v.etag, true) {
            return Some(Outcome::NotModified(v.clone()));
        }
    } else if let Some(ims) = header_str(headers, header::IF_MODIFIED_SINCE) {
        if let Ok(date) = httpdate::parse_http_date(ims) {
            if secs(v.last_modified) <= secs(date) {
                return Some(Outcome::NotModified(v.clone()));
            }
        }
    }
    None
}

/// If-Range (§13.1.5): the range applies only if the validator still matches (strong
/// ETag comparison, or an exact date).
fn if_range_holds(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(ir) = header_str(headers, header::IF_RANGE) else {
        return true;
    };
    let ir = ir.trim();
    if ir.starts_with('"') {
        return ir == v.etag;
    }
    if ir.starts_with("W/") {
        return false;
    }
    httpdate::parse_http_date(ir).is_ok_and(|d| secs(d) == secs(v.last_modified))
}

fn validator_headers(h: &mut HeaderMap, v: &Validators) {
    if let Ok(e) = HeaderValue::from_str(&v.etag) {
        h.insert(header::ETAG, e);
    }
    if let Ok(lm) = HeaderValue::from_str(&httpdate::fmt_http_date(v.last_modified)) {
        h.insert(header::LAST_MODIFIED, lm);
    }
}

/// A unique-enough multipart boundary (not secret: it only must not occur in the file,
/// which a random-looking 20-hex-digit string practically never does).
fn boundary() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:016x}{:04x}",
        t ^ 0x9e37_79b9_7f4a_7c15,
        N.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

/// Turns an outcome into a response. `trace` says whether TRACE is in Allow.
pub fn respond(outcome: Outcome, trace: bool) -> Response<Body> {
    let allow = if trace { ALLOW_WITH_TRACE } else { ALLOW };
    match outcome {
        Outcome::File(f) => file_response(f),
        Outcome::Cached { entry, ranges } => cached_response(&entry, ranges),
        Outcome::NotModified(v) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            validator_headers(resp.headers_mut(), &v);
            resp
        }
        Outcome::PreconditionFailed => crate::error_page::builtin(StatusCode::PRECONDITION_FAILED),
        Outcome::RangeNotSatisfiable { len } => {
            let mut resp = crate::error_page::builtin(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            resp
        }
        Outcome::Redirect(loc) => {
            let mut resp = crate::error_page::builtin(StatusCode::MOVED_PERMANENTLY);
            if let Ok(v) = HeaderValue::from_str(&loc) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Outcome::Listing {
            url_path,
            entries,
            json,
        } => {
            let (body, ct) = if json {
                (
                    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into()),
                    "application/json",
                )
            } else {
                (
                    listing::html(&url_path, &entries),
                    "text/html; charset=utf-8",
                )
            };
            let mut resp = Response::new(Body::full(body));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            resp.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            resp
        }
        Outcome::Options => {
            let mut resp = Response::new(Body::empty());
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            resp
        }
        Outcome::MethodNotAllowed => {
            let mut resp = crate::error_page::builtin(StatusCode::METHOD_NOT_ALLOWED);
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            resp
        }
        Outcome::Forbidden => crate::error_page::builtin(StatusCode::FORBIDDEN),
        Outcome::NotFound => crate::error_page::builtin(StatusCode::NOT_FOUND),
        Outcome::BadRequest => crate::error_page::builtin(StatusCode::BAD_REQUEST),
    }
}

fn cached_response(c: &cache::Cached, ranges: Option<Vec<(u64, u64)>>) -> Response<Body> {
    let len = c.body.len() as u64;
    let mut resp = Response::new(Body::empty());
    // Room for these and the pipeline's (Server, perhaps Connection) without growing.
    *resp.headers_mut() = HeaderMap::with_capacity(10);
    let h = resp.headers_mut();
    h.insert(header::ETAG, c.etag.clone());
    h.insert(header::LAST_MODIFIED, c.last_modified.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if c.compressible {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    match ranges {
        None => {
            h.insert(header::CONTENT_TYPE, c.content_type.clone());
            h.insert(header::CONTENT_LENGTH, c.content_length.clone());
            *resp.body_mut() = Body::full(c.body.clone());
        }
        Some(ranges) if ranges.len() == 1 => {
            let (a, b) = ranges[0];
            h.insert(header::CONTENT_TYPE, c.content_type.clone());
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(b - a + 1));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            *resp.body_mut() = Body::full(c.body.slice(a as usize..=b as usize));
        }
        Some(ranges) => {
            let ct = c
                .content_type
                .to_str()
                .unwrap_or("application/octet-stream");
            let (parts, total, boundary) = multipart(&ranges, len, ct, |a, b| {
                Part::Bytes(c.body.slice(a as usize..=b as usize))
            });
            if let Ok(v) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            *resp.body_mut() = Body::parts(parts);
        }
    }
    resp
}

/// The parts of a multipart/byteranges body (RFC 9110 §14.6), its length and boundary.
fn multipart(
    ranges: &[(u64, u64)],
    len: u64,
    content_type: &str,
    mut part: impl FnMut(u64, u64) -> Part,
) -> (VecDeque<Part>, u64, String) {
    let boundary = boundary();
    let mut parts = VecDeque::new();
    let mut total = 0u64;
    for (i, (a, b)) in ranges.iter().enumerate() {
        let head = format!(
            "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {a}-{b}/{len}\r\n\r\n",
            if i == 0 { "" } else { "\r\n" },
        );
        total += head.len() as u64 + (b - a + 1);
        parts.push_back(Part::Bytes(Bytes::from(head)));
        parts.push_back(part(*a, *b));
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    total += tail.len() as u64;
    parts.push_back(Part::Bytes(Bytes::from(tail)));
    (parts, total, boundary)
}

fn file_response(f: FileOutcome) -> Response<Body> {
    let ct = HeaderValue::from_str(&f.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    validator_headers(h, &f.validators);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if f.vary {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Some(coding) = f.encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    if f.gzip_now {
        if f.len > SMALL_FILE {
            // Streamed: the compressed length is known only at the end.
            h.insert(header::CONTENT_TYPE, ct);
            let gz = crate::body::GzipFile::new(Arc::new(f.file), f.len, GZIP_LEVEL);
            *resp.body_mut() = Body::stream(Box::pin(gz));
            return resp;
        }
        if let Some(gz) = gzip_file(&f.file, f.len) {
            h.insert(header::CONTENT_TYPE, ct);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(gz.len()));
            *resp.body_mut() = Body::full(gz);
            return resp;
        }
        h.remove(header::CONTENT_ENCODING);
    }
    match f.ranges {
        None => {
            h.insert(header::CONTENT_TYPE, ct);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(f.len));
            *resp.body_mut() = whole_file(f.file, f.len);
        }
        Some(ranges) if ranges.len() == 1 => {
            let (a, b) = ranges[0];
            h.insert(header::CONTENT_TYPE, ct);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(b - a + 1));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{}", f.len)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            *resp.body_mut() = Body::file(Arc::new(f.file), a, b - a + 1);
        }
        Some(ranges) => {
            let file = Arc::new(f.file);
            let (parts, total, boundary) =
                multipart(&ranges, f.len, &f.content_type, |a, b| Part::File {
                    file: Arc::clone(&file),
                    offset: a,
                    len: b - a + 1,
                });
            if let Ok(v) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            *resp.body_mut() = Body::parts(parts);
        }
    }
    resp
}

/// Gzips a small file in memory (so the response has a Content-Length).
fn gzip_file(file: &File, len: u64) -> Option<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).ok()?;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), GZIP_LEVEL);
    enc.write_all(&buf).ok()?;
    enc.finish().ok()
}

/// A whole file: small ones read now in one syscall, large ones streamed.
fn whole_file(file: File, len: u64) -> Body {
    if len <= SMALL_FILE {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len as usize];
        if file.read_exact_at(&mut buf, 0).is_ok() {
            return Body::full(buf);
        }
    }
    Body::file(Arc::new(file), 0, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators {
            etag: "\"abc-1\"".into(),
            last_modified: UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
        }
    }

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, val) in pairs {
            h.insert(*k, HeaderValue::from_str(val).unwrap());
        }
        h
    }

    #[test]
    fn precondition_table() {
        let lm = httpdate::fmt_http_date(v().last_modified);
        let earlier = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(5));
        let cases: Vec<(HeaderMap, &str)> = vec![
            (hm(&[]), "none"),
            (hm(&[("if-none-match", "\"abc-1\"")]), "304"),
            (hm(&[("if-none-match", "W/\"abc-1\"")]), "304"),
            (hm(&[("if-none-match", "\"zzz\", \"abc-1\"")]), "304"),
            (hm(&[("if-none-match", "*")]), "304"),
            (hm(&[("if-none-match", "\"zzz\"")]), "none"),
            (hm(&[("if-modified-since", &lm)]), "304"),
            (hm(&[("if-modified-since", &earlier)]), "none"),
            (
                hm(&[("if-none-match", "\"zzz\""), ("if-modified-since", &lm)]),
                "none",
            ),
            (hm(&[("if-match", "\"abc-1\"")]), "none"),
            (hm(&[("if-match", "W/\"abc-1\"")]), "412"),
            (hm(&[("if-match", "\"zzz\"")]), "412"),
            (hm(&[("if-unmodified-since", &earlier)]), "412"),
            (hm(&[("if-unmodified-since", &lm)]), "none"),
        ];
        for (h, want) in cases {
            let got = match preconditions(&h, &v()) {
                None => "none",
                Some(Outcome::NotModified(_)) => "304",
                Some(Outcome::PreconditionFailed) => "412",
                Some(_) => panic!("unexpected outcome for {h:?}"),
            };
            assert_eq!(got, want, "{h:?}");
        }
    }

    /// A cache hit skips preconditions and ranges only for requests without any of the
    /// headers that change the answer.
    #[test]
    fn conditional_headers_are_noticed() {
        assert!(!has_conditionals(&hm(&[])));
        assert!(!has_conditionals(&hm(&[
            ("host", "x"),
            ("user-agent", "wrk")
        ])));
        for name in [
            "accept-encoding",
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
            "range",
            "if-range",
        ] {
            assert!(
                has_conditionals(&hm(&[("host", "x"), (name, "v")])),
                "{name}"
            );
        }
    }

    #[test]
    fn accept_encoding_table() {
        let cases = [
            ("gzip", "gzip", true),
            ("gzip;q=0", "gzip", false),
            ("br, gzip;q=0.5", "gzip", true),
            ("*", "br", true),
            ("*;q=0, gzip", "br", false),
            ("identity", "gzip", false),
            ("GZIP", "gzip", true),
        ];
        for (h, c, want) in cases {
            assert_eq!(accepts_coding(h, c), want, "{h} / {c}");
        }
    }

    #[test]
    fn if_range_table() {
        let lm = httpdate::fmt_http_date(v().last_modified);
        assert!(if_range_holds(&hm(&[("if-range", "\"abc-1\"")]), &v()));
        assert!(!if_range_holds(&hm(&[("if-range", "\"old\"")]), &v()));
        assert!(!if_range_holds(&hm(&[("if-range", "W/\"abc-1\"")]), &v()));
        assert!(if_range_holds(&hm(&[("if-range", &lm)]), &v()));
        assert!(!if_range_holds(
            &hm(&[("if-range", "Thu, 01 Jan 1970 00:00:05 GMT")]),
            &v()
        ));
    }
}
