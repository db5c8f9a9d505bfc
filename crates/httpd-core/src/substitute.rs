//! `Substitute "s|pattern|replacement|flags"` (mod_substitute) on text/html responses:
//! every match replaced (`i` ignore case, `n` the pattern is a literal string). The body is
//! gathered up to [`MAX_BUFFER`]; a larger body is passed through unchanged rather than
//! held in memory (mod_substitute's SubstituteMaxLineLength plays the same role).

use std::io;

use bytes::{Bytes, BytesMut};
use http::header;
use http::Response;
use http_body_util::BodyExt;

use crate::body::Body;

pub const MAX_BUFFER: usize = 4 << 20;

#[derive(Debug)]
pub struct Rule {
    re: fancy_regex::Regex,
    replacement: String,
    literal: bool,
}

impl Rule {
    /// Parses `s<d>pattern<d>replacement<d>flags` with any delimiter `<d>`.
    pub fn parse(s: &str) -> Result<Rule, String> {
        let bad = || format!("bad Substitute expression {s:?}");
        let mut chars = s.chars();
        if chars.next() != Some('s') {
            return Err(bad());
        }
        let d = chars.next().ok_or_else(bad)?;
        let parts: Vec<&str> = chars.as_str().split(d).collect();
        let [pattern, replacement, flags] = parts[..] else {
            return Err(bad());
        };
        let literal = flags.contains('n');
        let mut re = if literal {
            fancy_regex::escape(pattern).into_owned()
        } else {
            pattern.to_string()
        };
        if flags.contains('i') {
            re = format!("(?i){re}");
        }
        let re =
            httpd_conftest::validate::compile_regex(&re).map_err(|e| format!("{}: {e}", bad()))?;
        Ok(Rule {
            re,
            replacement: replacement.to_string(),
            literal,
        })
    }

    pub fn apply(&self, text: &str) -> String {
        if self.literal {
            let rep = self.replacement.as_str();
            self.re
                .replace_all(text, fancy_regex::NoExpand(rep))
                .into_owned()
        } else {
            self.re
                .replace_all(text, self.replacement.as_str())
                .into_owned()
        }
    }
}

/// Whether a response is one Substitute edits: text/html, not compressed, not a range.
pub fn applies(resp: &Response<Body>) -> bool {
    let h = resp.headers();
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"))
        && !h.contains_key(header::CONTENT_ENCODING)
        && !h.contains_key(header::CONTENT_RANGE)
}

/// Applies `rules` to the body of `resp` (async: the body may be a stream).
pub async fn filter(resp: Response<Body>, rules: &[std::sync::Arc<Rule>]) -> Response<Body> {
    if rules.is_empty() || !applies(&resp) {
        return resp;
    }
    let (mut parts, mut body) = resp.into_parts();
    let done = body.take_on_done();
    let mut buf = BytesMut::new();
    let mut rest: Option<Body> = None;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                tracing::error!(error = %e, "Substitute: reading the response failed");
                let mut b = Body::full(buf.freeze());
                if let Some(d) = done {
                    b.on_done(d);
                }
                return Response::from_parts(parts, b);
            }
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
                if buf.len() > MAX_BUFFER {
                    rest = Some(body);
                    break;
                }
            }
        }
    }
    let mut out = match rest {
        Some(rest) => {
            // Too big to edit: what was read, then the rest, unchanged.
            let head = http_body_util::Full::new(buf.freeze()).map_err(|e| match e {});
            let chained = StreamChain {
                head: Some(head),
                rest,
            };
            Body::stream(Box::pin(chained))
        }
        None => {
            let text = String::from_utf8_lossy(&buf).into_owned();
            let edited = rules.iter().fold(text, |t, r| r.apply(&t));
            parts.headers.remove(header::ETAG);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, edited.len().into());
            Body::full(Bytes::from(edited))
        }
    };
    if let Some(d) = done {
        out.on_done(d);
    }
    Response::from_parts(parts, out)
}

/// The bytes already read followed by the rest of the original body.
struct StreamChain<H> {
    head: Option<H>,
    rest: Body,
}

impl<H> http_body::Body for StreamChain<H>
where
    H: http_body::Body<Data = Bytes, Error = io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        if let Some(h) = self.head.as_mut() {
            match std::pin::Pin::new(h).poll_frame(cx) {
                std::task::Poll::Ready(None) => self.head = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_table() {
        let cases = [
            (
                "s|</body>|<script src=\"/lr.js\"></script></body>|",
                "<p>x</p></body>",
                "<p>x</p><script src=\"/lr.js\"></script></body>",
            ),
            ("s/a(b)/<$1>/", "abab", "<b><b>"),
            ("s/HELLO/bye/i", "hello Hello", "bye bye"),
            ("s/a.c/x/n", "abc a.c", "abc x"),
        ];
        for (rule, input, want) in cases {
            assert_eq!(Rule::parse(rule).unwrap().apply(input), want, "{rule}");
        }
        assert!(Rule::parse("x/a/b/").is_err());
        assert!(Rule::parse("s/a/b").is_err());
    }
}
