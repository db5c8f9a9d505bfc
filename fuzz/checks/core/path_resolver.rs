//! Fuzz check for `httpd_core::resolve`: whatever path a client sends, the filesystem
//! path stays under the root (lexically: only plain components after it), the normalized
//! form has no empty or dot segments, and normalizing is stable (no second decoding).

use std::path::{Component, Path};

use httpd_core::resolve;

/// How many Alias-style prefix cuts of one path are tried (bounds the work per input).
const CUTS: usize = 16;

pub fn check(data: &[u8]) {
    // hyper hands the pipeline the path as a `&str`.
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let root = Path::new("/srv/www");
    // Rule 6 holds for any input, normalized or not.
    assert_under(root, &resolve::join(root, raw), raw);
    let Ok(norm) = resolve::normalize(raw) else {
        return;
    };
    assert!(norm.starts_with('/'), "{raw:?} -> {norm:?}");
    let segments: Vec<&str> = norm.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        assert!(
            (last || !seg.is_empty()) && *seg != "." && *seg != "..",
            "{raw:?} -> {norm:?}: segment {seg:?}"
        );
        assert!(!seg.contains(['\0', '\\']), "{raw:?} -> {norm:?}");
    }
    // Decoded exactly once: escaping the `%` the decoder consumes gives the same path.
    let escaped = norm.replace('%', "%25");
    let again = resolve::normalize(&escaped);
    assert_eq!(again.as_deref(), Ok(&*norm), "{raw:?} is not stable");
    assert_under(root, &resolve::join(root, &norm), raw);
    // An Alias strips a URL prefix and joins the rest onto its target.
    for (at, _) in norm.match_indices('/').take(CUTS) {
        assert_under(root, &resolve::join(root, &norm[at..]), raw);
    }
    // The kernel-checked open (openat beneath the root) gets the path without slashes.
    let rel = norm.trim_matches('/');
    assert!(
        Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{raw:?}: relative path {rel:?}"
    );
    // Rule 7: a dot segment other than a leading `.well-known` is never served.
    let dotted = segments
        .iter()
        .enumerate()
        .any(|(i, s)| s.starts_with('.') && !(i == 0 && *s == ".well-known"));
    assert_eq!(resolve::is_denied_dotfile(&norm), dotted, "{norm:?}");
}

fn assert_under(root: &Path, path: &Path, raw: &str) {
    let rest = path
        .strip_prefix(root)
        .unwrap_or_else(|_| panic!("{raw:?} left the root: {}", path.display()));
    assert!(
        rest.components().all(|c| matches!(c, Component::Normal(_))),
        "{raw:?} -> {}",
        path.display()
    );
}
