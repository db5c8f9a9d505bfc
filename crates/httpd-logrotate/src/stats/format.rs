//! Log formats: Apache `LogFormat` strings compiled to a token list, the named formats
//! (common, combined, vcombined), JSON lines, and auto-detection.
//!
//! A compiled format is matched left to right: a literal must appear as written, a field
//! runs up to the first byte of the literal after it. A field inside double quotes ends at
//! the first quote not escaped by a backslash, which is how Apache escapes `"` in `%r` and
//! in request headers (mod_log_config, "Format Notes").

use std::borrow::Cow;

use super::error::StatsError;
use super::record::{self, Record};

/// Apache's `common` format.
pub const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
/// Apache's `combined` format.
pub const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
/// Debian's `vhost_combined` (GoAccess's VCOMBINED): the virtual host and port first.
pub const VCOMBINED: &str = r#"%v:%p %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
/// `vcombined` without the port, as Apache's own docs write it.
const VCOMBINED_NOPORT: &str = r#"%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
/// `combined` followed by the time taken in microseconds.
const COMBINED_D: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D"#;
/// `combined` followed by the time taken in seconds.
const COMBINED_T: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %T"#;

/// What a `%` directive contributes to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Client,
    User,
    Time,
    Request,
    Method,
    UrlPath,
    Query,
    Protocol,
    Status,
    Bytes,
    Referer,
    UserAgent,
    VHost,
    DurationUs,
    DurationMs,
    DurationS,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(Vec<u8>),
    Field(Field),
}

/// A compiled Apache `LogFormat`.
#[derive(Debug, Clone)]
pub struct LogFormat {
    tokens: Vec<Token>,
    has_latency: bool,
}

/// The format of an input: a compiled LogFormat or JSON lines.
#[derive(Debug, Clone)]
pub enum Format {
    Apache { name: String, format: LogFormat },
    Json,
}

impl Format {
    /// Resolves `--format`: a name or a LogFormat string.
    pub fn from_arg(arg: &str) -> Result<Format, StatsError> {
        let (name, spec) = match arg {
            "common" | "clf" => ("common", COMMON),
            "combined" => ("combined", COMBINED),
            "vcombined" | "vhost_combined" => ("vcombined", VCOMBINED),
            "json" => return Ok(Format::Json),
            other => ("custom", other),
        };
        Ok(Format::Apache {
            name: name.to_string(),
            format: LogFormat::compile(spec)?,
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Format::Apache { name, .. } => name,
            Format::Json => "json",
        }
    }

    /// Parses one line (without its newline). `None`: the line does not fit the format.
    pub fn parse<'a>(&self, line: &'a str) -> Option<Record<'a>> {
        match self {
            Format::Apache { format, .. } => format.parse(line),
            Format::Json => record::from_json(line),
        }
    }

    /// Picks the format that parses the most of `sample` (complete lines); ties go to the
    /// more specific format, listed first.
    pub fn detect(sample: &[u8]) -> Format {
        let candidates: Vec<Format> = [
            ("vcombined", VCOMBINED),
            ("vcombined", VCOMBINED_NOPORT),
            ("combined+%D", COMBINED_D),
            ("combined+%T", COMBINED_T),
            ("combined", COMBINED),
            ("common", COMMON),
        ]
        .iter()
        .map(|(name, spec)| Format::Apache {
            name: name.to_string(),
            format: LogFormat::compile(spec).expect("built-in formats compile"),
        })
        .chain(std::iter::once(Format::Json))
        .collect();
        let text = String::from_utf8_lossy(sample);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(200)
            .collect();
        // Nothing parses: combined, the most common format, so the lines count as invalid.
        let combined = candidates
            .iter()
            .position(|f| f.name() == "combined")
            .expect("combined is a candidate");
        let mut best = (combined, 0usize);
        for (i, format) in candidates.iter().enumerate() {
            let ok = lines.iter().filter(|l| format.parse(l).is_some()).count();
            if ok > best.1 {
                best = (i, ok);
            }
        }
        candidates
            .into_iter()
            .nth(best.0)
            .expect("index from the same list")
    }

    /// Whether records carry a request duration.
    pub fn has_latency(&self) -> bool {
        match self {
            Format::Apache { format, .. } => format.has_latency,
            Format::Json => true,
        }
    }
}

impl LogFormat {
    /// Compiles a LogFormat string as written in an Apache config (`\"` is a quote).
    pub fn compile(spec: &str) -> Result<LogFormat, StatsError> {
        let err = |reason: &str| StatsError::Format {
            format: spec.to_string(),
            reason: reason.to_string(),
        };
        let mut tokens: Vec<Token> = Vec::new();
        let mut lit = Vec::new();
        let bytes = spec.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if i + 1 < bytes.len() => {
                    lit.push(match bytes[i + 1] {
                        b'n' => b'\n',
                        b't' => b'\t',
                        c => c,
                    });
                    i += 2;
                }
                b'%' => {
                    i += 1;
                    if bytes.get(i) == Some(&b'%') {
                        lit.push(b'%');
                        i += 1;
                        continue;
                    }
                    // Status-code conditions and the `<`/`>` original/final markers.
                    while i < bytes.len()
                        && matches!(bytes[i], b'<' | b'>' | b'!' | b',' | b'0'..=b'9')
                    {
                        i += 1;
                    }
                    let mut arg = "";
                    if bytes.get(i) == Some(&b'{') {
                        let close = spec[i..].find('}').ok_or_else(|| err("unclosed %{"))?;
                        arg = &spec[i + 1..i + close];
                        i += close + 1;
                    }
                    let letter = *bytes.get(i).ok_or_else(|| err("format ends after %"))?;
                    i += 1;
                    let field = field_of(letter, arg)
                        .ok_or_else(|| err(&format!("unknown directive %{}", letter as char)))?;
                    if !lit.is_empty() {
                        tokens.push(Token::Lit(std::mem::take(&mut lit)));
                    } else if matches!(tokens.last(), Some(Token::Field(_))) {
                        return Err(err("two directives with nothing between them"));
                    }
                    tokens.push(Token::Field(field));
                }
                c => {
                    lit.push(c);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Lit(lit));
        }
        let fields: Vec<Field> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Field(f) => Some(*f),
                Token::Lit(_) => None,
            })
            .collect();
        if !fields.contains(&Field::Status) {
            return Err(err("no status directive (%s or %>s)"));
        }
        if !fields.contains(&Field::Request) && !fields.contains(&Field::UrlPath) {
            return Err(err("no request directive (%r or %U)"));
        }
        let has_latency = fields
            .iter()
            .any(|f| matches!(f, Field::DurationUs | Field::DurationMs | Field::DurationS));
        Ok(LogFormat {
            tokens,
            has_latency,
        })
    }

    /// Matches one line against the tokens.
    pub fn parse<'a>(&self, line: &'a str) -> Option<Record<'a>> {
        let b = line.as_bytes();
        let mut pos = 0;
        let mut rec = Record::default();
        for (i, tok) in self.tokens.iter().enumerate() {
            match tok {
                Token::Lit(l) => {
                    // A byte loop: literals are a few bytes, and a memcmp call per
                    // literal showed up as the top cost in profiles.
                    let rest = &b[pos..];
                    if rest.len() < l.len() || l.iter().zip(rest).any(|(x, y)| x != y) {
                        return None;
                    }
                    pos += l.len();
                }
                Token::Field(Field::Time) => {
                    if b.get(pos) != Some(&b'[') {
                        return None;
                    }
                    let end = pos + memchr::memchr(b']', &b[pos..])?;
                    let (secs, offset) = record::parse_clf_time(&line[pos + 1..end])?;
                    rec.time = Some(secs);
                    rec.offset = offset;
                    pos = end + 1;
                }
                Token::Field(field) => {
                    let end = match self.tokens.get(i + 1) {
                        Some(Token::Lit(next)) if next[0] == b'"' => pos + quoted_end(&b[pos..])?,
                        Some(Token::Lit(next)) => pos + memchr::memchr(next[0], &b[pos..])?,
                        _ => b.len(),
                    };
                    rec.set(*field, &line[pos..end])?;
                    pos = end;
                }
            }
        }
        if pos != b.len() {
            return None;
        }
        Some(rec)
    }
}

/// The offset of the first `"` not escaped by a backslash.
fn quoted_end(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', &b[from..])?;
        if b[at] == b'\\' {
            from = at + 2;
            if from > b.len() {
                return None;
            }
        } else {
            return Some(at);
        }
    }
}

/// Undoes Apache's `\"` and `\\` escapes (other `\xhh` escapes are kept as written).
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The field a directive stands for (mod_log_config's table); `None` for an unknown letter.
fn field_of(letter: u8, arg: &str) -> Option<Field> {
    Some(match letter {
        b'h' | b'a' => Field::Client,
        b'u' => Field::User,
        b't' if arg.is_empty() => Field::Time,
        b'r' => Field::Request,
        b'm' => Field::Method,
        b'U' => Field::UrlPath,
        b'q' => Field::Query,
        b'H' => Field::Protocol,
        b's' => Field::Status,
        b'b' | b'B' | b'O' => Field::Bytes,
        b'i' if arg.eq_ignore_ascii_case("referer") => Field::Referer,
        b'i' if arg.eq_ignore_ascii_case("user-agent") => Field::UserAgent,
        b'i' if arg.eq_ignore_ascii_case("host") => Field::VHost,
        b'v' | b'V' => Field::VHost,
        b'D' => Field::DurationUs,
        b'T' => match arg {
            "" | "s" => Field::DurationS,
            "ms" => Field::DurationMs,
            "us" => Field::DurationUs,
            _ => return None,
        },
        b'A' | b'C' | b'e' | b'f' | b'k' | b'l' | b'L' | b'n' | b'o' | b'p' | b'P' | b'R'
        | b'X' | b'I' | b'S' | b'i' | b't' | b'^' => Field::Skip,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_formats_parse_their_lines() {
        let cases: &[(&str, &str, &str, u16, u64)] = &[
            (
                "common",
                r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
                "/apache_pb.gif",
                200,
                2326,
            ),
            (
                "combined",
                r#"::1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 404 - "http://x/" "Mozilla \"q\" 5""#,
                "/a",
                404,
                0,
            ),
            (
                "vcombined",
                r#"example.com:443 10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "POST /p HTTP/2.0" 201 5 "-" "-""#,
                "/p",
                201,
                5,
            ),
        ];
        for (name, line, path, status, bytes) in cases {
            let f = Format::from_arg(name).unwrap();
            let r = f.parse(line).unwrap_or_else(|| panic!("{name}: {line}"));
            assert_eq!(
                (&*r.path, r.status, r.bytes),
                (*path, *status, *bytes),
                "{name}"
            );
        }
    }

    #[test]
    fn escaped_quotes_and_latency() {
        let f =
            Format::from_arg(r#"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %D"#)
                .unwrap();
        let r = f
            .parse(r#"1.2.3.4 - - [01/Mar/2025:00:00:01 +0100] "GET / HTTP/1.1" 200 10 "-" "a \"b\" \\c" 1234"#)
            .unwrap();
        assert_eq!(r.user_agent, "a \"b\" \\c");
        assert_eq!(r.latency_us, Some(1234));
        assert_eq!(r.time, Some(1740783601));
        assert_eq!(r.offset, 3600);
    }

    #[test]
    fn rejects() {
        let f = Format::from_arg("combined").unwrap();
        for line in [
            "",
            "garbage",
            r#"1.2.3.4 - - [01/Mar/2025:00:00:01 +0000] "GET / HTTP/1.1" abc 10 "-" "-""#,
            r#"1.2.3.4 - - [01/Mar/2025:00:00:01 +0000] "GET / HTTP/1.1" 200 10"#,
            r#"1.2.3.4 - - [01/Foo/2025:00:00:01 +0000] "GET / HTTP/1.1" 200 10 "-" "-""#,
        ] {
            assert!(f.parse(line).is_none(), "{line}");
        }
        for bad in ["%h %", "%h%u %s %r", "%h %Z %s %r", "%h %t"] {
            assert!(LogFormat::compile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detection() {
        let cases: &[(&str, &str)] = &[
            (
                r#"1.2.3.4 - - [01/Mar/2025:00:00:01 +0000] "GET / HTTP/1.1" 200 10"#,
                "common",
            ),
            (
                r#"1.2.3.4 - - [01/Mar/2025:00:00:01 +0000] "GET / HTTP/1.1" 200 10 "-" "x""#,
                "combined",
            ),
            (
                r#"1.2.3.4 - - [01/Mar/2025:00:00:01 +0000] "GET / HTTP/1.1" 200 10 "-" "x" 17"#,
                "combined+%D",
            ),
            (
                r#"h:80 1.2.3.4 - - [01/Mar/2025:00:00:01 +0000] "GET / HTTP/1.1" 200 10 "-" "x""#,
                "vcombined",
            ),
            (
                r#"{"status":200,"uri":"/","remote_addr":"1.2.3.4"}"#,
                "json",
            ),
        ];
        for (line, name) in cases {
            assert_eq!(Format::detect(line.as_bytes()).name(), *name, "{line}");
        }
    }
}
