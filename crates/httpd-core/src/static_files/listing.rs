//! `Options Indexes`: a directory listing in HTML (every name escaped) or, when the client
//! prefers it (`Accept: application/json`), in JSON.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// RFC 3339 is what scripts parse; seconds since the epoch is simpler and exact.
    pub mtime: u64,
}

/// Reads `dir`, skipping dotfiles (they would be refused anyway), sorted by name.
pub fn read(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        out.push(Entry {
            name,
            kind: if meta.is_dir() { "directory" } else { "file" },
            size: if meta.is_dir() { 0 } else { meta.len() },
            mtime: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML page for `url_path` (already decoded and normalized).
pub fn html(url_path: &str, entries: &[Entry]) -> String {
    let title = html_escape(url_path);
    let mut s = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body>\n<h1>Index of {title}</h1>\n<ul>\n"
    );
    if url_path != "/" {
        s.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for e in entries {
        let slash = if e.kind == "directory" { "/" } else { "" };
        let href: String = percent_encoding::utf8_percent_encode(&e.name, HREF_ESCAPE).to_string();
        s.push_str(&format!(
            "<li><a href=\"{}{slash}\">{}{slash}</a></li>\n",
            html_escape(&href),
            html_escape(&e.name)
        ));
    }
    s.push_str("</ul>\n</body></html>\n");
    s
}

const HREF_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\'')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Whether the client asked for JSON rather than HTML.
pub fn wants_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        let json = a.find("application/json");
        let html = a.find("text/html");
        match (json, html) {
            (Some(j), Some(h)) => j < h,
            (Some(_), None) => true,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        let entries = vec![Entry {
            name: "<script>alert(1)</script>&\"x".into(),
            kind: "file",
            size: 1,
            mtime: 0,
        }];
        let page = html("/a<b>/", &entries);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x"));
        assert!(page.contains("Index of /a&lt;b&gt;/"));
    }

    #[test]
    fn accept_table() {
        assert!(wants_json(Some("application/json")));
        assert!(!wants_json(Some("text/html,application/json")));
        assert!(wants_json(Some("application/json, text/html")));
        assert!(!wants_json(None));
    }
}
