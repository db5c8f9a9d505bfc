//! The proxy's HTTP/1.1 on a backend connection (RFC 9112), written for what a reverse
//! proxy needs and no more: the request head goes out as one buffer the caller built,
//! the request body is streamed with its framing (Content-Length or chunked), the
//! response head is parsed with `httparse` into a `Response`, and the response body is
//! decoded by its framing (Content-Length, chunked, or until close) into a
//! [`ProxyBody`] that gives the connection back to its pool once read to its end.
//!
//! hyper's client did this before. Its dispatcher (a channel and a oneshot per request,
//! a connection state machine, a body channel) was about a third of a proxied request's
//! CPU; the exchange here is driven by the request's own task, as a plain function of
//! the bytes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWrite};

use super::client::{Client, ClientError};
use super::headers::{hop_bit, HOP_CONNECTION, HOP_UPGRADE};
use super::ReqBody;
use crate::listener::Stream;

/// Response header fields accepted, at most (hyper's default, and Apache's
/// LimitRequestFields).
const MAX_HEADERS: usize = 100;
/// A response head (or a chunked body's trailer section) larger than this is refused
/// (502), as nginx refuses one larger than its proxy_buffer_size.
const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 4096;
/// What a read asks for at least: a head, or a small body, in one read.
const READ_MIN: usize = 8 * 1024;
/// What a read of a large body asks for at most.
const READ_MAX: usize = 64 * 1024;

/// A connection to a backend and the bytes read from it but not yet used.
pub struct Conn {
    io: Stream,
    buf: BytesMut,
    /// The deadline of the request being sent (ProxyTimeout), reset for each one: a
    /// timer registered once per connection, whose later deadlines only move it forward
    /// (tokio extends a registered timer without touching its wheel), instead of a timer
    /// registered and removed for every request.
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Conn {
    pub fn new(io: Stream, deadline: tokio::time::Instant) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    pub fn set_deadline(&mut self, deadline: tokio::time::Instant) {
        self.timer.as_mut().reset(deadline);
    }

    /// Reads what the backend sent into the buffer, asking for at least `want` bytes of
    /// room; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < want / 4 {
            self.buf.reserve(want);
        }
        let read = std::pin::pin!(self.io.read_buf(&mut self.buf));
        read.poll(cx)
    }

    /// An idle connection the backend closed, or sent bytes on unasked: not usable. Its
    /// read readiness is all that is looked at unless the backend did something.
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> bool {
        !self.buf.is_empty() || self.poll_fill(cx, READ_MIN).is_ready()
    }

    /// Writes all of `bytes` from `*at` on.
    fn poll_write_all(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
        at: &mut usize,
    ) -> Poll<io::Result<()>> {
        while *at < bytes.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *at += n;
        }
        Poll::Ready(Ok(()))
    }

    /// The connection as a tunnel after a 101, and what the backend sent after the head
    /// (to be read first).
    fn into_tunnel(self) -> (Stream, Bytes) {
        (self.io, self.buf.freeze())
    }
}

/// How a request's body is delimited, declared in its head (RFC 9112 §6.2).
pub enum Declared {
    /// No body, and no field saying so (a GET).
    Nothing,
    Length(u64),
    Chunked,
}

/// The head of a request in origin form (RFC 9112 §3): the request line, Host, the
/// `fields` the caller wrote (each line ending in CRLF), the body's framing and the
/// empty line.
pub fn request_head(
    method: &http::Method,
    target: &str,
    host: Option<&[u8]>,
    fields: &[u8],
    declared: &Declared,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(method.as_str().len() + target.len() + fields.len() + 96);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(host);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(fields);
    match declared {
        Declared::Nothing => {}
        Declared::Length(n) => {
            head.extend_from_slice(b"content-length: ");
            head.extend_from_slice(n.to_string().as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        Declared::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The request body on its way to the backend, with its framing.
pub struct Upload {
    body: ReqBody,
    /// Content-Length framing: the bytes still to send; None: chunked.
    left: Option<u64>,
    /// Framed bytes not yet written.
    out: BytesMut,
    ended: bool,
    /// A frame has been taken from the body: it can no longer be sent again elsewhere.
    pub started: bool,
}

impl Upload {
    /// `length`: the body's Content-Length, which the head declared; None when the head
    /// declared `Transfer-Encoding: chunked`.
    pub fn new(body: ReqBody, length: Option<u64>) -> Upload {
        Upload {
            body,
            left: length,
            out: BytesMut::new(),
            ended: false,
            started: false,
        }
    }

    /// Sends what the body gives until it has ended (Ready(Ok)), the connection or the
    /// body has no more for now (Pending), or either fails.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Stream,
    ) -> Poll<Result<(), ClientError>> {
        loop {
            while !self.out.is_empty() {
                let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.out))
                    .map_err(ClientError::Io)?;
                if n == 0 {
                    return Poll::Ready(Err(ClientError::Io(io::ErrorKind::WriteZero.into())));
                }
                self.out.advance(n);
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            let frame = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(f)) => f,
                Some(Err(e)) => return Poll::Ready(Err(ClientError::Body(e))),
                None => {
                    self.ended = true;
                    match self.left {
                        // RFC 9112 §7.1: the last chunk, and no trailer section.
                        None => self.out.extend_from_slice(b"0\r\n\r\n"),
                        Some(0) => {}
                        Some(_) => {
                            return Poll::Ready(Err(ClientError::Invalid(
                                "the request body was shorter than its Content-Length",
                            )))
                        }
                    }
                    continue;
                }
            };
            self.started = true;
            // Trailers are not forwarded: `Trailer` is a hop-by-hop field here, as the
            // response's are.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            match &mut self.left {
                Some(left) => {
                    *left = left
                        .checked_sub(data.len() as u64)
                        .ok_or(ClientError::Invalid(
                            "the request body was longer than its Content-Length",
                        ))?;
                    self.out.extend_from_slice(&data);
                }
                None => {
                    self.out.reserve(data.len() + 20);
                    self.out
                        .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    self.out.extend_from_slice(&data);
                    self.out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

/// How a request ended without a response.
pub enum Failed {
    /// The pooled connection was found closed before anything was written: the request
    /// may go on another connection, whatever its method.
    Unused,
    /// Written, but the connection ended before a byte of the response: the backend
    /// closed it as the request arrived, or died handling it.
    NoAnswer,
    Error(ClientError),
}

/// What [`exchange`] is asked to do beyond sending the head.
pub struct Exchange<'a> {
    pub head: &'a [u8],
    /// The request's method is HEAD: the response has no body, whatever it declares.
    pub head_method: bool,
    pub upload: &'a mut Option<Upload>,
    /// A pooled connection, which the backend may have closed while it was idle.
    pub reused: bool,
}

/// Sends a request on `conn` and reads the response head, sending the body meanwhile
/// (a backend may answer before it has read all of it). The timer is `conn`'s.
pub async fn exchange(conn: &mut Conn, x: Exchange<'_>) -> Result<Head, Failed> {
    let mut at = 0;
    let mut checked = !x.reused;
    let wrote = std::future::poll_fn(|cx| {
        if !checked {
            checked = true;
            if conn.poll_gone(cx) {
                return Poll::Ready(Err(Failed::Unused));
            }
        }
        match conn.poll_write_all(cx, x.head, &mut at) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            // A pooled connection the backend has closed refuses the write: nothing
            // was taken.
            Poll::Ready(Err(_)) if x.reused => Poll::Ready(Err(Failed::Unused)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(Failed::Error(ClientError::Io(e)))),
            Poll::Pending if conn.timer.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(Failed::Error(ClientError::Timeout)))
            }
            Poll::Pending => Poll::Pending,
        }
    });
    wrote.await?;
    let upload = x.upload;
    std::future::poll_fn(|cx| {
        if let Some(up) = upload.as_mut().filter(|u| !u.ended || !u.out.is_empty()) {
            if let Poll::Ready(Err(e)) = up.poll_send(cx, &mut conn.io) {
                return Poll::Ready(Err(Failed::Error(e)));
            }
        }
        loop {
            match parse_head(&mut conn.buf, x.head_method) {
                Ok(Some(head)) => return Poll::Ready(Ok(head)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(Failed::Error(e))),
            }
            match conn.poll_fill(cx, READ_MIN) {
                Poll::Ready(Ok(0)) if conn.buf.is_empty() => {
                    return Poll::Ready(Err(Failed::NoAnswer));
                }
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Failed::Error(ClientError::Invalid(
                        "the connection ended in the response head",
                    ))));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) if conn.buf.is_empty() && reset(&e) => {
                    return Poll::Ready(Err(Failed::NoAnswer));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Failed::Error(ClientError::Io(e)))),
                Poll::Pending if conn.timer.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(Failed::Error(ClientError::Timeout)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

fn reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

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
fn parse_head(buf: &mut BytesMut, head_method: bool) -> Result<Option<Head>, ClientError> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut fields);
        let len = match parsed.parse(buf) {
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
pub fn response(
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
            upload: upload.filter(|u| !u.ended || !u.out.is_empty()),
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
