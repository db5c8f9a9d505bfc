//! Serving files: [`decide`] maps a request to an [`Outcome`] (no I/O beyond looking at
//! the filesystem), [`respond`] turns the outcome into a response.
//!
//! RFC 9110: validators (§8.8: a strong ETag from size and modification time, and
//! Last-Modified), preconditions in the order of §13.2.2, ranges (§14), 405 with Allow
//! (§15.5.6).

pub mod listing;
pub mod range;

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

/// Files up to this size are read into memory in one go (one read syscall).
const SMALL_FILE: u64 = 64 * 1024;

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
}

/// The decision for one request.
#[derive(Debug)]
pub enum Outcome {
    File(FileOutcome),
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
    Ok(File, std::fs::Metadata),
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
                    Ok(m) => Opened::Ok(f, m),
                    Err(_) => Opened::NotFound,
                }
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG) => {
                    return Opened::NotFound
                }
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
        Err(_) => return Opened::NotFound,
    };
    if fs_path != r.mapped.canonical_root
        && !r.eff.options.follow_symlinks
        && resolve::escapes_root(r.mapped.canonical_root, fs_path)
    {
        return Opened::Forbidden;
    }
    match File::open(fs_path) {
        Ok(f) => Opened::Ok(f, meta),
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
    let (file, meta) = match open_checked(r, &r.mapped.fs_path, &r.mapped.rel) {
        Opened::Ok(f, m) => (f, m),
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
            let candidate = r.mapped.fs_path.join(index);
            let rel = if r.mapped.rel.is_empty() {
                index.clone()
            } else {
                format!("{}/{index}", r.mapped.rel)
            };
            if let Opened::Ok(f, m) = open_checked(r, &candidate, &rel) {
                if m.is_file() {
                    return file_outcome(r, &candidate, f, m);
                }
            }
        }
        if !r.eff.options.indexes {
            return Outcome::Forbidden;
        }
        if !method_ok {
            return non_get(r.method);
        }
        return match listing::read(&r.mapped.fs_path) {
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
    file_outcome(r, &r.mapped.fs_path, file, meta)
}

fn non_get(method: &Method) -> Outcome {
    if method == Method::OPTIONS {
        Outcome::Options
    } else {
        Outcome::MethodNotAllowed
    }
}

fn file_outcome(r: &StaticRequest, path: &Path, file: File, meta: std::fs::Metadata) -> Outcome {
    if !matches!(*r.method, Method::GET | Method::HEAD) {
        return non_get(r.method);
    }
    let len = meta.len();
    let last_modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let validators = Validators {
        etag: etag_for(len, last_modified),
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
    Outcome::File(FileOutcome {
        file,
        len,
        content_type,
        validators,
        ranges,
    })
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

fn file_response(f: FileOutcome) -> Response<Body> {
    let ct = HeaderValue::from_str(&f.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    validator_headers(h, &f.validators);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
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
            // multipart/byteranges (RFC 9110 §14.6).
            let boundary = boundary();
            let file = Arc::new(f.file);
            let mut parts = VecDeque::new();
            let mut total = 0u64;
            for (i, (a, b)) in ranges.iter().enumerate() {
                let head = format!(
                    "{}--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                    if i == 0 { "" } else { "\r\n" },
                    f.content_type,
                    f.len
                );
                total += head.len() as u64 + (b - a + 1);
                parts.push_back(Part::Bytes(Bytes::from(head)));
                parts.push_back(Part::File {
                    file: Arc::clone(&file),
                    offset: *a,
                    len: b - a + 1,
                });
            }
            let tail = format!("\r\n--{boundary}--\r\n");
            total += tail.len() as u64;
            parts.push_back(Part::Bytes(Bytes::from(tail)));
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
                Some(o) => panic!("unexpected {o:?}"),
            };
            assert_eq!(got, want, "{h:?}");
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
