//! From a request's URL path to a filesystem path under a root, securely.
//!
//! The rules, each one a known attack (CVE-2021-41773 and CVE-2021-42013 among them):
//! 1. The path is percent-decoded exactly once. A `%` left after decoding (`%252e` →
//!    `%2e`) is a literal character of a file name, never decoded again.
//! 2. An invalid escape (`%zz`, a truncated `%2`) is a 400.
//! 3. The decoded bytes must be valid UTF-8: overlong forms (`%c0%ae` for `.`) are invalid
//!    UTF-8 and therefore a 400, not a dot.
//! 4. NUL and backslash are refused (400): a NUL truncates C paths, a backslash is a
//!    separator on other systems and a classic traversal vector.
//! 5. Dot segments are resolved after decoding (so `%2e%2e` is `..`): `.` is dropped,
//!    `..` removes the previous segment, and a `..` that would climb above the root is a
//!    400. Empty segments (`//`) collapse.
//! 6. The filesystem path is built by pushing the remaining segments one by one onto the
//!    root; none can be empty, `.`, `..` or contain `/`, so the join can never be replaced
//!    by an absolute path or leave the root lexically.
//! 7. Dotfiles (any segment starting with `.`) are denied, except the first segment
//!    `.well-known` (RFC 8615).
//! 8. Symlinks: the canonical path must stay under the canonical root; one whose target
//!    leaves it is served only when `Options FollowSymLinks` applies (checked by the
//!    caller with [`escapes_root`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Why a URL path cannot be mapped.
#[derive(Debug, PartialEq, Eq)]
pub enum PathError {
    /// Malformed (bad escape, invalid UTF-8, NUL, backslash, climbing above the root): 400.
    BadRequest,
}

/// Decodes and normalizes an origin-form path (rules 1–5). Returns a path starting with
/// `/`, without empty or dot segments, keeping a trailing `/` if the request had one.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::BadRequest);
    }
    if is_plain(raw) {
        // Nothing to decode or resolve: the path is its own normal form.
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadRequest);
            };
            decoded.push((h * 16 + l) as u8);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::BadRequest)?;
    if text.contains(['\0', '\\']) {
        return Err(PathError::BadRequest);
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::BadRequest);
                }
            }
            s => segments.push(s),
        }
    }
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    let mut out = String::with_capacity(text.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether `raw` (starting with `/`) is already normal: no escape, NUL or backslash, and
/// no empty, `.` or `..` segment except the empty one after a trailing `/`. One pass over
/// the bytes, for the common request that [`normalize`] would rebuild unchanged.
fn is_plain(raw: &str) -> bool {
    let b = raw.as_bytes();
    // `seg` counts the bytes of the current segment; `dots` whether they are all dots.
    let (mut seg, mut dots) = (0usize, true);
    for &c in &b[1..] {
        match c {
            b'%' | b'\\' | 0 => return false,
            b'/' => {
                if seg == 0 || (dots && seg <= 2) {
                    return false;
                }
                (seg, dots) = (0, true);
            }
            _ => {
                seg += 1;
                dots &= c == b'.';
            }
        }
    }
    !(dots && (1..=2).contains(&seg))
}

/// Whether a normalized path names a dotfile that must not be served (rule 7).
pub fn is_denied_dotfile(normalized: &str) -> bool {
    if !normalized.contains("/.") {
        return false;
    }
    normalized
        .split('/')
        .filter(|s| !s.is_empty())
        .enumerate()
        .any(|(i, s)| s.starts_with('.') && !(i == 0 && s == ".well-known"))
}

/// Joins the normalized `rel` (as returned by [`normalize`], possibly with a prefix
/// removed) onto `root`, one segment at a time (rule 6).
pub fn join(root: &Path, rel: &str) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    // Built as bytes in one allocation; the same result as pushing each segment onto a
    // PathBuf (a separator between segments, none doubled after a root ending in `/`).
    let root = root.as_os_str().as_bytes();
    let mut path = Vec::with_capacity(root.len() + rel.len() + 1);
    path.extend_from_slice(root);
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            continue;
        }
        if !path.is_empty() && !path.ends_with(b"/") {
            path.push(b'/');
        }
        path.extend_from_slice(seg.as_bytes());
    }
    PathBuf::from(std::ffi::OsString::from_vec(path))
}

/// Whether `path` (which exists) resolves, through symlinks, outside `canonical_root`
/// (rule 8). A path that cannot be canonicalized counts as escaping.
pub fn escapes_root(canonical_root: &Path, path: &Path) -> bool {
    match std::fs::canonicalize(path) {
        Ok(real) => !real.starts_with(canonical_root),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/%2e%2e/b", "/b"),
            ("/%41", "/A"),
            // Double encoding stays literal: the file is named "%2e%2e".
            ("/%252e%252e/x", "/%2e%2e/x"),
            ("/caf%C3%A9", "/café"),
            ("/a/..", "/"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
        let bad = [
            "/..",
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/%2E%2E/etc/passwd",
            "/.%2e/.%2e/etc/passwd",
            "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd",
            "/icons/.%%32%65/.%%32%65/etc/passwd",
            "/a/%00.html",
            "/a\\..\\..\\etc\\passwd",
            "/a%5c..%5c..%5cetc",
            "/%c0%ae%c0%ae/etc/passwd",
            "/%e0%80%ae",
            "/%zz",
            "/%2",
            "relative",
            "/a/../../b",
        ];
        for raw in bad {
            assert_eq!(normalize(raw), Err(PathError::BadRequest), "{raw}");
        }
    }

    /// The one-pass check agrees with the full normalization: a path it calls plain is
    /// returned unchanged, and every other path takes the full route.
    #[test]
    fn plain_paths_are_their_own_normal_form() {
        let plain = [
            "/", "/a", "/a/", "/a/b.c", "/...", "/a/.../b", "/.x/y", "/a..", "/é",
        ];
        for raw in plain {
            assert!(is_plain(raw), "{raw}");
            assert_eq!(normalize(raw).as_deref(), Ok(raw), "{raw}");
        }
        let not_plain = [
            "//", "/a//b", "/.", "/..", "/a/.", "/a/..", "/./a", "/a/../b", "/%41", "/a\\b",
            "/a\0b", "/a/./",
        ];
        for raw in not_plain {
            assert!(!is_plain(raw), "{raw}");
        }
    }

    #[test]
    fn dotfiles() {
        assert!(is_denied_dotfile("/.git/config"));
        assert!(is_denied_dotfile("/a/.htaccess"));
        assert!(!is_denied_dotfile("/.well-known/acme-challenge/x"));
        assert!(is_denied_dotfile("/.well-known/.secret"));
        assert!(!is_denied_dotfile("/a/b.c"));
    }

    #[test]
    fn join_cannot_become_absolute() {
        let root = Path::new("/srv/www");
        assert_eq!(join(root, "/etc/passwd"), Path::new("/srv/www/etc/passwd"));
        assert_eq!(join(root, "/a//../b"), Path::new("/srv/www/a/b"));
        // The same as pushing the segments onto a PathBuf, whatever the root looks like.
        for (root, rel) in [
            ("/", "/a/b"),
            ("/srv/www/", "/a/"),
            ("/srv/www", ""),
            ("/srv/www", "/"),
            ("", "/a/b"),
            ("rel", "x"),
        ] {
            let mut want = Path::new(root).to_path_buf();
            for seg in rel.split('/').filter(|s| !s.is_empty()) {
                want.push(seg);
            }
            assert_eq!(join(Path::new(root), rel), want, "{root} + {rel}");
        }
    }
}
