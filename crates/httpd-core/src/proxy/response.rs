//! The backend's response: its head parsed with `httparse` into a `Response` (hop-by-hop
//! fields left out, RFC 9110 §7.6.1), and its body decoded by its framing
//! (Content-Length, chunked, or until close: RFC 9112 §6.3, §7.1) into a [`ProxyBody`]
//! that gives the connection back to its pool once read to its end.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};
use http_body::{Frame, SizeHint};

use super::client::{Client, ClientError};
use super::headers::{hop_bit, HOP_CONNECTION, HOP_UPGRADE};
use super::wire::{Conn, Upload, READ_MIN};
use crate::listener::Stream;

/// Response header fields accepted, at most (hyper's default, and Apache's
/// LimitRequestFields).
const MAX_HEADERS: usize = 100;
/// A response head (or a chunked body's trailer section) larger than this is refused
/// (502), as nginx refuses one larger than its proxy_buffer_size.
const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 4096;
/// What a read of a large body asks for at most.
const READ_MAX: usize = 64 * 1024;

/// A parsed response head: the response to relay (its hop-by-hop fields removed) and
/// how its body is framed.
pub struct Head {
    response: Response<()>,
    framing: Framing,
    /// The connection may carry another request once the body has been read.
    keep_alive: bool,
}

/// Where each field of a head lies in it (name start, name length, value start, value
/// length), so the fields can be taken from the head's bytes once they are split off.
type Span = (u32, u32, u32, u32);

/// The response head at the front of `buf`, taken out of it; None until all of it has
/// come. Interim (1xx) responses other than 101 are skipped (RFC 9110 §15.2: a client
/// that did not ask for them ignores them).
pub(super) fn parse_head(
    buf: &mut BytesMut,
    head_method: bool,
) -> Result<Option<Head>, ClientError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Left uninitialized for httparse to fill (a hundred empty fields written first
        // were a tenth of the parse).
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err(ClientError::Invalid("the response head is too large"));
            }
            Err(_) => return Err(ClientError::Invalid("malformed response head")),
        };
        let code = parsed.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| ClientError::Invalid("malformed response status"))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            buf.advance(len);
            continue;
        }
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let base = buf.as_ptr() as usize;
        let mut spans: [Span; MAX_HEADERS] = [(0, 0, 0, 0); MAX_HEADERS];
        let n = parsed.headers.len();
        for (s, f) in spans.iter_mut().zip(parsed.headers.iter()) {
            // Offsets within a head of at most MAX_HEAD bytes.
            let at = |p: &[u8]| (p.as_ptr() as usize - base) as u32;
            *s = (
                at(f.name.as_bytes()),
                f.name.len() as u32,
                at(f.value),
                f.value.len() as u32,
            );
        }
        let bytes = buf.split_to(len).freeze();
        return head_of(status, version, &bytes, &spans[..n], head_method).map(Some);
    }
}

/// The response and its framing (RFC 9112 §6.3) from a head's fields.
fn head_of(
    status: StatusCode,
    version: Version,
    bytes: &Bytes,
    spans: &[Span],
    head_method: bool,
) -> Result<Head, ClientError> {
    let bad = ClientError::Invalid;
    let mut h = HeaderMap::with_capacity(spans.len());
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let (mut close, mut keep_alive) = (false, false);
    // Names the Connection field lists besides the hop-by-hop ones (rare).
    let mut named: Vec<HeaderValue> = Vec::new();
    for &(no, nl, vo, vl) in spans {
        let (no, nl, vo, vl) = (no as usize, nl as usize, vo as usize, vl as usize);
        let name = HeaderName::from_bytes(&bytes[no..no + nl])
            .map_err(|_| bad("malformed field name in the response"))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(vo..vo + vl))
            .map_err(|_| bad("malformed field value in the response"))?;
        let hop = hop_bit(name.as_str());
        if hop == 0 {
            if name == header::CONTENT_LENGTH {
                let n = content_length(&value).ok_or(bad("invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad("conflicting Content-Length fields"));
                }
                length = Some(n);
            }
            h.append(name, value);
            continue;
        }
        if hop == HOP_CONNECTION {
            let mut other = false;
            for t in value.to_str().unwrap_or("").split(',').map(str::trim) {
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                } else if !t.is_empty() && hop_bit(&t.to_ascii_lowercase()) == 0 {
                    other = true;
                }
            }
            if other {
                named.push(value);
            }
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding says whether the body is chunked (RFC 9112 §6.3).
            let last = value
                .to_str()
                .unwrap_or("")
                .rsplit(',')
                .next()
                .unwrap_or("");
            chunked = Some(last.trim().eq_ignore_ascii_case("chunked"));
        } else if hop == HOP_UPGRADE && status == StatusCode::SWITCHING_PROTOCOLS {
            h.append(name, value);
        }
    }
    for v in &named {
        for t in v.to_str().unwrap_or("").split(',').map(str::trim) {
            if let Ok(n) = HeaderName::from_bytes(t.as_bytes()) {
                h.remove(n);
            }
        }
    }
    let mut keep_alive = match version {
        Version::HTTP_10 => keep_alive && !close,
        _ => !close,
    };
    let no_body = head_method
        || status == StatusCode::SWITCHING_PROTOCOLS
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Done
    } else if let Some(chunked) = chunked {
        if version == Version::HTTP_10 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 response"));
        }
        // With a Transfer-Encoding, a Content-Length means nothing (RFC 9112 §6.3): it
        // is not relayed, and the connection is not trusted with another request.
        if length.is_some() {
            h.remove(header::CONTENT_LENGTH);
            keep_alive = false;
        }
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            keep_alive = false;
            Framing::Close
        }
    } else {
        match length {
            Some(0) => Framing::Done,
            Some(n) => Framing::Length(n),
            None => {
                keep_alive = false;
                Framing::Close
            }
        }
    };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = h;
    Ok(Head {
        response,
        framing,
        keep_alive: keep_alive && status != StatusCode::SWITCHING_PROTOCOLS,
    })
}

/// A Content-Length value: digits, or a list of the same number (RFC 9110 §8.6).
fn content_length(v: &HeaderValue) -> Option<u64> {
    let mut n = None;
    for part in v.as_bytes().split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = part.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        if n.is_some_and(|n| n != v) {
            return None;
        }
        n = Some(v);
    }
    n
}

/// How the rest of a response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Framing {
    /// Content-Length: the bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the backend closes the connection.
    Close,
    Done,
}

/// Where a chunked body's decoding is (RFC 9112 §7.1).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields (read and dropped) up to an empty line.
    Trailers,
}

/// One step of decoding a body from the bytes read so far.
#[derive(Debug, PartialEq)]
enum Step {
    Data(Bytes),
    End,
    /// More bytes are needed.
    More,
}

impl Framing {
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match self {
                Framing::Done => return Ok(Step::End),
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let k = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= k as u64;
                    if *left == 0 {
                        *self = match self {
                            Framing::Length(_) => Framing::Done,
                            _ => Framing::Chunked(Chunk::DataEnd),
                        };
                    }
                    return Ok(Step::Data(buf.split_to(k).freeze()));
                }
                Framing::Close => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Size) => {
                    if !buf.first().is_some_and(u8::is_ascii_hexdigit) {
                        if buf.is_empty() {
                            return Ok(Step::More);
                        }
                        return Err("malformed chunk size");
                    }
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buf.advance(used);
                            *self = Framing::Chunked(match size {
                                0 => Chunk::Trailers,
                                n => Chunk::Data(n),
                            });
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE => {
                            return Ok(Step::More);
                        }
                        _ => return Err("malformed chunk size"),
                    }
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("malformed chunk end");
                    }
                    buf.advance(2);
                    *self = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((used, _))) => {
                            buf.advance(used);
                            *self = Framing::Done;
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                            return Ok(Step::More);
                        }
                        _ => return Err("malformed trailer section"),
                    }
                }
            }
        }
    }

    /// How much a read should ask for.
    fn want(&self) -> usize {
        match self {
            Framing::Length(n) | Framing::Chunked(Chunk::Data(n)) => usize::try_from(*n)
                .unwrap_or(usize::MAX)
                .clamp(READ_MIN, READ_MAX),
            Framing::Close => READ_MAX,
            _ => READ_MIN,
        }
    }
}

/// A connection lent to a response body, and the pool it goes back to.
struct Lent {
    conn: Conn,
    /// The request body, if the backend answered before it had all of it.
    upload: Option<Upload>,
    home: Option<(Arc<Client>, Arc<str>)>,
    keep_alive: bool,
}

/// The backend's response body, read from the connection as the client takes it.
pub struct ProxyBody {
    framing: Framing,
    lent: Option<Lent>,
    /// After a 101: the connection, now the backend's end of a tunnel.
    switched: Option<Conn>,
}

/// The response for a parsed head. `home`: the pool the connection returns to when the
/// body has ended and the response allowed it (None: the connection is not reused).
pub fn of(
    conn: Conn,
    head: Head,
    upload: Option<Upload>,
    home: Option<(Arc<Client>, Arc<str>)>,
) -> Response<ProxyBody> {
    let Head {
        response,
        framing,
        keep_alive,
    } = head;
    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let mut body = ProxyBody {
        framing,
        lent: None,
        switched: None,
    };
    if switched {
        body.switched = Some(conn);
    } else {
        body.lent = Some(Lent {
            conn,
            upload: upload.filter(|u| !u.sent()),
            home,
            keep_alive,
        });
        if framing == Framing::Done {
            body.release();
        }
    }
    response.map(|()| body)
}

impl ProxyBody {
    /// The body has been read to its end: the connection goes back to its pool if the
    /// response allowed it, the whole request was sent, and nothing more was read.
    fn release(&mut self) {
        let Some(l) = self.lent.take() else { return };
        if let (true, None, true, Some((client, key))) =
            (l.keep_alive, &l.upload, l.conn.buf.is_empty(), l.home)
        {
            client.checkin(key, l.conn);
        }
    }

    /// After a 101 (Switching Protocols): the backend's connection, to be spliced to the
    /// client's, and the bytes already read from it.
    pub fn into_tunnel(mut self) -> Option<(Stream, Bytes)> {
        self.switched.take().map(Conn::into_tunnel)
    }
}

impl http_body::Body for ProxyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let Some(l) = this.lent.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(up) = &mut l.upload {
            match up.poll_send(cx, &mut l.conn.io) {
                Poll::Ready(Ok(())) => l.upload = None,
                Poll::Ready(Err(e)) => {
                    this.lent = None;
                    return Poll::Ready(Some(Err(io::Error::other(e))));
                }
                Poll::Pending => {}
            }
        }
        loop {
            let step = this.framing.step(&mut l.conn.buf);
            match step {
                Ok(Step::Data(b)) => {
                    if this.framing == Framing::Done {
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Ok(Step::End) => {
                    this.release();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(what) => {
                    this.lent = None;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        what,
                    ))));
                }
            }
            match ready!(l.conn.poll_fill(cx, this.framing.want())) {
                Ok(0) if this.framing == Framing::Close => {
                    this.framing = Framing::Done;
                    this.lent = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.lent = None;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the backend closed the connection in the response body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.lent = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn head(text: &str) -> Result<Option<Head>, ClientError> {
        parse_head(&mut BytesMut::from(text), false)
    }

    #[test]
    fn heads_and_their_framing() {
        // (status, framing, kept alive), None while the head is incomplete.
        type Want = Option<(u16, Framing, bool)>;
        let cases: [(&str, Want); 9] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
                Some((200, Framing::Length(5), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Some((200, Framing::Chunked(Chunk::Size), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                Some((200, Framing::Chunked(Chunk::Size), false)),
            ),
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                Some((200, Framing::Close, false)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                Some((200, Framing::Length(5), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                Some((200, Framing::Length(5), false)),
            ),
            (
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                Some((204, Framing::Done, true)),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                Some((304, Framing::Done, true)),
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5", None),
        ];
        for (text, want) in cases {
            let got = head(text)
                .unwrap_or_else(|e| panic!("{text:?}: {e}"))
                .map(|h| (h.response.status().as_u16(), h.framing, h.keep_alive));
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn bad_heads_are_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX Bad: a\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "garbage\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            assert!(head(text).is_err(), "{text:?}");
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert!(head(&huge).is_err());
    }

    #[test]
    fn hop_by_hop_fields_are_not_relayed() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\n\
             Keep-Alive: timeout=5\r\nContent-Length: 0\r\nX-Kept: 1\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        let mut names: Vec<&str> = h.response.headers().keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
    }

    fn decode(framing: Framing, wire: &[u8]) -> Result<(Vec<u8>, Framing), &'static str> {
        let mut f = framing;
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        // A byte at a time: every state must wait for what it needs.
        for &b in wire {
            buf.put_u8(b);
            while let Step::Data(d) = f.step(&mut buf)? {
                out.extend_from_slice(&d);
            }
        }
        Ok((out, f))
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\n";
        let (out, f) = decode(Framing::Chunked(Chunk::Size), wire).unwrap();
        assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz");
        assert_eq!(f, Framing::Done);
        let (out, f) = decode(Framing::Length(3), b"abc").unwrap();
        assert_eq!((out.as_slice(), f), (&b"abc"[..], Framing::Done));
        for bad in [
            &b"5\r\nhelloXX"[..],
            b"\r\n",
            b"zz\r\n",
            b"0\r\nbad field\r\n\r\n",
        ] {
            assert!(
                decode(Framing::Chunked(Chunk::Size), bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn content_length_values() {
        for (v, want) in [
            ("5", Some(5)),
            ("5, 5", Some(5)),
            ("", None),
            ("+5", None),
            ("5 5", None),
        ] {
            assert_eq!(content_length(&HeaderValue::from_static(v)), want, "{v:?}");
        }
    }
}
