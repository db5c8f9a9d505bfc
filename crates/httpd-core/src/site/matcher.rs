//! How a section, Alias or Redirect pattern matches a URL path, a directory or a file name.

use regex::Regex;

/// A compiled pattern.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// A literal path prefix that matches at a segment boundary (`/docs` matches `/docs`,
    /// `/docs/` and `/docs/a`, not `/docsx`), or a literal file name for `<Files>`.
    Prefix(String),
    /// A shell wildcard (`*`, `?`, `[...]`), compiled; `*` does not cross `/`.
    Wildcard(Regex),
    /// A regular expression (the Match forms and `~`), unanchored as in Apache; PCRE-like
    /// (look-around allowed), as the config language compiles it.
    Regex(fancy_regex::Regex),
}

impl Matcher {
    /// A literal or wildcard pattern (wildcards are recognised as Apache does).
    pub fn literal(pattern: &str) -> Result<Matcher, regex::Error> {
        if pattern.contains(['*', '?', '[']) {
            Ok(Matcher::Wildcard(Regex::new(&wildcard_regex(pattern))?))
        } else {
            Ok(Matcher::Prefix(pattern.to_string()))
        }
    }

    pub fn regex(pattern: &str) -> Result<Matcher, String> {
        httpd_conftest::validate::compile_regex(pattern).map(Matcher::Regex)
    }

    pub fn is_regex(&self) -> bool {
        matches!(self, Matcher::Regex(_))
    }

    /// How specific a `<Directory>` is (Apache sorts them by path components).
    pub fn component_count(&self) -> usize {
        match self {
            Matcher::Prefix(p) => p.split('/').filter(|s| !s.is_empty()).count(),
            Matcher::Wildcard(r) => r.as_str().matches('/').count(),
            Matcher::Regex(r) => r.as_str().matches('/').count(),
        }
    }

    /// `<Directory>`: whether the directory `dir` is the pattern's directory or below it.
    pub fn matches_dir(&self, dir: &str) -> bool {
        match self {
            Matcher::Prefix(p) => prefix_at_boundary(dir, p),
            Matcher::Wildcard(r) => r.find(dir).is_some_and(|m| {
                m.start() == 0 && (m.end() == dir.len() || dir[m.end()..].starts_with('/'))
            }),
            Matcher::Regex(r) => {
                r.is_match(dir).unwrap_or(false) || r.is_match(&format!("{dir}/")).unwrap_or(false)
            }
        }
    }

    /// `<Files>`: whether the whole base name matches.
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            Matcher::Prefix(p) => p == name,
            Matcher::Wildcard(r) => r
                .find(name)
                .is_some_and(|m| m.start() == 0 && m.end() == name.len()),
            Matcher::Regex(r) => r.is_match(name).unwrap_or(false),
        }
    }

    /// `<Location>`, Alias, Redirect: whether the URL path matches.
    pub fn matches_url(&self, url: &str) -> bool {
        self.url_match_len(url).is_some()
    }

    /// For a prefix or wildcard: the length of `url` the pattern consumed. For a regex:
    /// Some(0) when it matches.
    pub fn url_match_len(&self, url: &str) -> Option<usize> {
        match self {
            Matcher::Prefix(p) => prefix_at_boundary(url, p).then_some(p.len()),
            Matcher::Wildcard(r) => r.find(url).and_then(|m| {
                (m.start() == 0 && (m.end() == url.len() || url[m.end()..].starts_with('/')))
                    .then_some(m.end())
            }),
            Matcher::Regex(r) => r.is_match(url).unwrap_or(false).then_some(0),
        }
    }

    /// For a regex: `template` with `$0`..`$9` replaced from the match in `url`.
    pub fn substitute(&self, url: &str, template: &str) -> Option<String> {
        let Matcher::Regex(r) = self else {
            return None;
        };
        let caps = r.captures(url).ok()??;
        let mut out = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' {
                if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    chars.next();
                    out.push_str(caps.get(d as usize).map_or("", |m| m.as_str()));
                    continue;
                }
            }
            out.push(c);
        }
        Some(out)
    }
}

/// `path` equals `prefix` or continues it at a `/` (a prefix ending in `/` matches any
/// continuation).
fn prefix_at_boundary(path: &str, prefix: &str) -> bool {
    let prefix_trim = prefix.trim_end_matches('/');
    if prefix.ends_with('/') && prefix.len() > 1 {
        return path.starts_with(prefix) || path == prefix_trim;
    }
    if prefix_trim.is_empty() {
        return path.starts_with('/');
    }
    path.strip_prefix(prefix_trim)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A shell wildcard as an (unanchored) regex: `*` and `?` do not match `/`.
fn wildcard_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                out.push('[');
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' {
                        out.push_str("\\\\");
                    } else {
                        out.push(c);
                    }
                }
                out.push(']');
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// Host name wildcard match (ServerAlias `*.example.com`), case already folded.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefix_table() {
        let cases = [
            ("/docs", "/docs", true),
            ("/docs", "/docs/", true),
            ("/docs", "/docs/a", true),
            ("/docs", "/docsx", false),
            ("/docs/", "/docs/a", true),
            ("/docs/", "/docs", true),
            ("/", "/anything", true),
        ];
        for (p, url, want) in cases {
            assert_eq!(
                Matcher::literal(p).unwrap().matches_url(url),
                want,
                "{p} ~ {url}"
            );
        }
    }

    #[test]
    fn wildcards() {
        let m = Matcher::literal("/srv/*/public").unwrap();
        assert!(m.matches_dir("/srv/a/public"));
        assert!(m.matches_dir("/srv/a/public/x"));
        assert!(!m.matches_dir("/srv/a/b/public"));
        let f = Matcher::literal("*.txt").unwrap();
        assert!(f.matches_name("a.txt"));
        assert!(!f.matches_name("a.txt.bak"));
        assert!(wildcard_match("*.example.com", "www.example.com"));
        assert!(!wildcard_match("*.example.com", "example.org"));
    }

    #[test]
    fn regex_substitution() {
        let m = Matcher::regex("^/old/(.*)$").unwrap();
        assert_eq!(
            m.substitute("/old/x/y", "/new/$1").as_deref(),
            Some("/new/x/y")
        );
    }
}
