//! The proxy's HTTP/1.1 on a backend connection (RFC 9112), written for what a reverse
//! proxy needs and no more: the request head goes out as one buffer the caller built,
//! the request body is streamed with its framing (Content-Length or chunked) while the
//! response head is awaited; [`response`](super::response) parses that head and reads
//! the body.
//!
//! hyper's client did this before. Its dispatcher (a channel and a oneshot per request,
//! a connection state machine, a body channel) was about a third of a proxied request's
//! CPU; the exchange here is driven by the request's own task, as a plain function of
//! the bytes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::time::Instant;

use super::client::ClientError;
use super::response::{parse_head, Head};
use super::ReqBody;
use crate::listener::Stream;

/// What a read asks for at least: a head, or a small body, in one read.
pub(super) const READ_MIN: usize = 8 * 1024;

/// A connection to a backend and the bytes read from it but not yet used.
pub struct Conn {
    pub(super) io: Stream,
    pub(super) buf: BytesMut,
    started: Instant,
    /// The deadline of the request being sent (ProxyTimeout), reset for each one: a
    /// timer registered once per connection, whose later deadlines only move it forward
    /// (tokio extends a registered timer without touching its wheel), instead of a timer
    /// registered and removed for every request.
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Conn {
    pub fn new(io: Stream, now: Instant, deadline: Instant) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            started: now,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// A request starts on the connection at `now`, to be answered by `deadline`.
    pub fn begin(&mut self, now: Instant, deadline: Instant) {
        self.started = now;
        self.timer.as_mut().reset(deadline);
    }

    /// When the last request on the connection started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Reads what the backend sent into the buffer, asking for at least `want` bytes of
    /// room; `Ok(0)` at the end of the stream.
    pub(super) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
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
    pub(super) fn into_tunnel(self) -> (Stream, Bytes) {
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

    /// All of it has been written.
    pub(super) fn sent(&self) -> bool {
        self.ended && self.out.is_empty()
    }

    /// Sends what the body gives until it has ended (Ready(Ok)), the connection or the
    /// body has no more for now (Pending), or either fails.
    pub(super) fn poll_send(
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
        if let Some(up) = upload.as_mut().filter(|u| !u.sent()) {
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
