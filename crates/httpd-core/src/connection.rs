//! One client connection: timeouts that really fire, HTTP/1.1 or HTTP/2 through hyper,
//! graceful shutdown, and nginx's lingering close after an early refusal.
//!
//! Timeouts live in [`TimedIo`], the I/O object hyper reads and writes through. The
//! request pipeline tells it what the connection is doing ([`Phase`]) through
//! [`ConnShared`], and it arms the matching deadline:
//! - reading a request head: `RequestReadTimeout header=` (from the first byte, or from
//!   accept for the first request), extended by MinRate up to the maximum;
//! - between requests: `KeepAliveTimeout`;
//! - reading a request body (a handler says so): `RequestReadTimeout body=`;
//! - any write that stalls: `Timeout`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::listener::Stream;
use crate::server::ServerState;
use crate::site::{ConnConf, ReadTimeout, Site};

/// What a connection is doing, as far as read deadlines are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Reading a request head.
    Head = 0,
    /// Waiting for the next request on a kept-alive connection.
    Idle = 1,
    /// A handler is producing the response: no read deadline.
    Handling = 2,
    /// A handler is reading the request body.
    Body = 3,
    /// HTTP/2: streams come and go; hyper's keep-alive pings cover idleness.
    Multiplexed = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Head,
            1 => Phase::Idle,
            2 => Phase::Handling,
            3 => Phase::Body,
            _ => Phase::Multiplexed,
        }
    }
}

/// State shared between a connection's I/O object and its requests.
pub struct ConnShared {
    phase: AtomicU8,
    waker: AtomicWaker,
    /// Requests started on this connection.
    pub requests: AtomicU32,
    /// Close with a lingering close (an early 4xx left request bytes unread).
    pub linger: AtomicBool,
    /// `Content-Length` header lines seen in request heads not yet matched to a request;
    /// hyper drops a Content-Length that comes with Transfer-Encoding, so the pipeline
    /// uses this count to refuse such requests (RFC 9112 §6.1, request smuggling).
    pub content_length_lines: AtomicU32,
    /// The client's address (from the PROXY header when there is one).
    pub peer: Option<SocketAddr>,
    /// The address the connection arrived on.
    pub local: Option<SocketAddr>,
    /// The connection speaks HTTP/2.
    pub h2: AtomicBool,
    /// The connection came through TLS (the PROXY v2 header's SSL TLV from httpd-tls).
    pub https: bool,
    /// A proxied request was upgraded (101): the backend side, spliced to this connection
    /// once hyper hands it back ([`splice`]).
    tunnel: std::sync::Mutex<Option<Tunnel>>,
}

/// Either side of an upgraded connection.
pub trait TunnelIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> TunnelIo for T {}

/// The backend side of an upgraded request: resolves when the backend's connection is
/// handed over (None when that failed).
pub type Tunnel = Pin<Box<dyn Future<Output = Option<Box<dyn TunnelIo>>> + Send>>;

impl ConnShared {
    pub fn new(peer: Option<SocketAddr>, local: Option<SocketAddr>) -> ConnShared {
        ConnShared {
            phase: AtomicU8::new(Phase::Head as u8),
            waker: AtomicWaker::new(),
            requests: AtomicU32::new(0),
            linger: AtomicBool::new(false),
            content_length_lines: AtomicU32::new(0),
            peer,
            local,
            h2: AtomicBool::new(false),
            https: false,
            tunnel: std::sync::Mutex::new(None),
        }
    }

    /// After the 101 response, splice the client's connection to `backend`.
    pub fn set_tunnel(&self, backend: Tunnel) {
        *self.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = Some(backend);
    }

    fn take_tunnel(&self) -> Option<Tunnel> {
        self.tunnel.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `phase`, waking the reader when it must re-arm its deadline: a read hyper
    /// started while the response was being produced has none (Handling), and must get
    /// the keep-alive one (Idle) or the body one (Body). Entering Handling needs no wake.
    pub fn set_phase(&self, phase: Phase) {
        if self.phase() == Phase::Multiplexed {
            return;
        }
        self.phase.store(phase as u8, Ordering::Release);
        if phase != Phase::Handling {
            self.waker.wake();
        }
    }
}

/// The I/O object hyper uses: the stream, bytes already read (a PROXY header's leftover
/// or the sniffed start of the connection), and the deadlines.
pub struct TimedIo<S> {
    stream: S,
    prefix: Bytes,
    shared: Arc<ConnShared>,
    conf: ConnConf,
    seen: Phase,
    phase_start: Instant,
    deadline: Option<Instant>,
    read_sleep: Option<Pin<Box<Sleep>>>,
    write_sleep: Option<Pin<Box<Sleep>>>,
    write_armed: bool,
    /// The connection went idle and reported EOF to hyper to be parked.
    parked: bool,
    /// Spliced to an upgraded backend: shutting down really closes the write side.
    tunnel: bool,
}

/// How long a kept-alive connection may sit idle inside hyper (with its read and write
/// buffers, about 16 KiB) before it is parked as a bare socket (nginx frees its buffers
/// between requests too). Busy connections never wait this long.
const PARK_AFTER: Duration = Duration::from_millis(100);

impl<S: AsyncRead + AsyncWrite + Unpin> TimedIo<S> {
    pub fn new(stream: S, prefix: Bytes, shared: Arc<ConnShared>, conf: ConnConf) -> Self {
        let now = Instant::now();
        let seen = shared.phase();
        let mut io = TimedIo {
            stream,
            prefix,
            shared,
            conf,
            seen,
            phase_start: now,
            deadline: None,
            read_sleep: None,
            write_sleep: None,
            write_armed: false,
            parked: false,
            tunnel: false,
        };
        io.enter(seen, now);
        io
    }

    fn enter(&mut self, phase: Phase, now: Instant) {
        self.seen = phase;
        self.phase_start = now;
        let start = |t: ReadTimeout| (!t.initial.is_zero()).then(|| now + t.initial);
        self.deadline = match phase {
            Phase::Head => start(self.conf.read_timeout.header),
            Phase::Body => start(self.conf.read_timeout.body),
            // An idle connection is parked (see `parked`) well before KeepAliveTimeout.
            Phase::Idle => Some(
                now + self
                    .conf
                    .keep_alive_timeout
                    .clamp(Duration::from_millis(1), PARK_AFTER),
            ),
            Phase::Handling | Phase::Multiplexed => None,
        };
    }

    fn on_data(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.seen == Phase::Idle {
            self.shared
                .phase
                .store(Phase::Head as u8, Ordering::Release);
            self.enter(Phase::Head, now);
        }
        let limit = match self.seen {
            Phase::Head => {
                let n = count_content_length_lines(data);
                if n > 0 {
                    self.shared
                        .content_length_lines
                        .fetch_add(n, Ordering::AcqRel);
                }
                self.conf.read_timeout.header
            }
            Phase::Body => self.conf.read_timeout.body,
            _ => return,
        };
        // mod_reqtimeout's MinRate: each received byte extends the deadline, up to max.
        if let (Some(d), true) = (
            self.deadline,
            limit.min_rate > 0 && limit.max > limit.initial,
        ) {
            let ext = Duration::from_secs_f64(data.len() as f64 / limit.min_rate as f64);
            self.deadline = Some((d + ext).min(self.phase_start + limit.max));
        }
    }
}

/// Counts header lines named Content-Length (case-insensitive) in a chunk of a head.
fn count_content_length_lines(data: &[u8]) -> u32 {
    const NAME: &[u8] = b"content-length";
    let mut n = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            let rest = &data[i + 1..];
            if rest.len() >= NAME.len() && rest[..NAME.len()].eq_ignore_ascii_case(NAME) {
                n += 1;
            }
        }
    }
    n
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            let chunk = this.prefix.slice(..n);
            this.prefix.advance(n);
            this.on_data(&chunk);
            return Poll::Ready(Ok(()));
        }
        let phase = this.shared.phase();
        if phase != this.seen {
            this.enter(phase, Instant::now());
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.on_data(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.shared.waker.register(cx.waker());
                // The phase may have changed between the check above and the register.
                let phase = this.shared.phase();
                if phase != this.seen {
                    this.enter(phase, Instant::now());
                }
                if let Some(deadline) = this.deadline {
                    let sleep = this
                        .read_sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        if this.seen == Phase::Idle {
                            // Idle between requests: end hyper's connection as if the
                            // client had closed, so its buffers are freed; `serve` keeps
                            // the socket and waits for the next request without them.
                            this.parked = true;
                            return Poll::Ready(Ok(()));
                        }
                        return Poll::Ready(Err(timed_out("read timeout")));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TimedIo<S> {
    fn write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = Instant::now() + self.conf.timeout;
        if !self.write_armed {
            self.write_armed = true;
            match &mut self.write_sleep {
                Some(s) => s.as_mut().reset(deadline),
                None => self.write_sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match self.write_sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(timed_out("write timeout")),
            _ => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.write_pending(cx).map(Err),
            r => {
                this.write_armed = false;
                r
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.write_pending(cx).map(Err),
            r => {
                this.write_armed = false;
                r
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    /// Flushes only: the connection task closes the socket itself once hyper is done, after
    /// logging a refused request, so the client's EOF comes after the log line is written
    /// (and a lingering close can still follow).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.tunnel {
            return Pin::new(&mut this.stream).poll_shutdown(cx);
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one accepted connection until it closes or `stop` turns true.
pub async fn serve(
    mut stream: Stream,
    peer: Option<SocketAddr>,
    known_local: Option<SocketAddr>,
    site: Arc<Site>,
    state: Arc<ServerState>,
    mut stop: watch::Receiver<bool>,
) {
    // The listener's own address when it is a specific one saves a getsockname per
    // connection.
    let local = match known_local {
        Some(a) if !a.ip().is_unspecified() => Some(a),
        _ => stream.local_addr(),
    };
    let conf = site.conn_conf(local).clone();
    let mut prefix = Bytes::new();
    let mut peer = peer;
    let mut want_h2 = false;
    let mut https = false;
    if conf.proxy_protocol {
        let limit = conf.read_timeout.header.initial.max(Duration::from_secs(1));
        match tokio::time::timeout(limit, Box::pin(crate::proxy_protocol::read(&mut stream))).await
        {
            Ok(Ok(header)) => {
                if header.source.is_some() {
                    peer = header.source;
                }
                want_h2 = header.alpn.as_deref() == Some(b"h2".as_slice());
                https = header.ssl;
                prefix = header.rest;
            }
            Ok(Err(e)) => {
                tracing::info!(peer = ?peer, error = %e, "bad PROXY protocol header");
                return;
            }
            Err(_) => return,
        }
    }
    if conf.h2c && !want_h2 {
        // Sniff the HTTP/2 preface (prior knowledge, RFC 9113 §3.3).
        let mut buf = prefix.to_vec();
        let limit = conf.read_timeout.header.initial.max(Duration::from_secs(1));
        let sniff = async {
            while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&buf) {
                let mut chunk = [0u8; 64];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            io::Result::Ok(())
        };
        match tokio::time::timeout(limit, Box::pin(sniff)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        want_h2 = buf.starts_with(H2_PREFACE);
        prefix = Bytes::from(buf);
    }
    let shared = Arc::new(ConnShared {
        https,
        ..ConnShared::new(peer, local)
    });
    let ctx = Arc::new(crate::pipeline::ConnCtx {
        site: Arc::clone(&site),
        state: Arc::clone(&state),
        shared: Arc::clone(&shared),
    });

    if want_h2 {
        // Boxed: HTTP/2 state is large, and most connections are HTTP/1.1; the task of
        // every connection is as big as its largest state.
        Box::pin(serve_h2(stream, prefix, shared, conf, ctx, stop)).await;
        return;
    }

    let service = hyper::service::service_fn(move |req| {
        let ctx = Arc::clone(&ctx);
        // Boxed so the connection can be polled without shutdown (hyper wants an Unpin
        // future for that), which is how idle connections are parked.
        Box::pin(async move {
            Ok::<_, std::convert::Infallible>(crate::pipeline::handle(req, ctx).await)
        })
    });

    let server = &site.server;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(conf.keep_alive)
        .half_close(false)
        .header_read_timeout(None)
        .max_buf_size(
            (server.limit_request_line
                + server.limit_request_fields * (server.limit_request_field_size + 2)
                + 64)
                .clamp(16 * 1024, 1024 * 1024),
        );
    if server.limit_request_fields != 100 {
        builder.max_headers(server.limit_request_fields.max(1));
    }
    let mut prefix = prefix;
    if prefix.is_empty() {
        // Nothing is allocated for a connection until it sends something (nginx does the
        // same): a silent one costs its socket and this task, until the header timeout.
        let limit = conf.read_timeout.header.initial;
        let wait = async {
            if limit.is_zero() {
                stream.wait_data().await
            } else {
                tokio::time::timeout(limit, stream.wait_data())
                    .await
                    .unwrap_or_else(|_| Err(timed_out("no request")))
            }
        };
        tokio::select! {
            r = wait => if r.is_err() { return },
            _ = crate::server::stopped(&mut stop) => return,
        }
    }
    let result = loop {
        let io = TimedIo::new(&mut stream, prefix, Arc::clone(&shared), conf.clone());
        // Boxed: a parked connection's task then holds a pointer, not hyper's state.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), service.clone()));
        let result = tokio::select! {
            r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
            _ = crate::server::stopped(&mut stop) => {
                Pin::new(conn.as_mut()).graceful_shutdown();
                std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
            }
        };
        if result.is_err() {
            break result;
        }
        let parts = conn.into_parts();
        if let Some(backend) = shared.take_tunnel() {
            // A proxied upgrade: hyper wrote the 101 and handed the connection back.
            let rest = parts.read_buf.clone();
            drop(parts);
            Box::pin(splice(&mut stream, rest, backend, &shared, &conf)).await;
            break Ok(());
        }
        tracing::trace!(parked = parts.io.inner().parked, "hyper connection done");
        if !parts.io.inner().parked || *stop.borrow() {
            break Ok(());
        }
        tracing::trace!(peer = ?peer, "idle connection parked");
        // A slice of hyper's read buffer, even an empty one, keeps that whole buffer
        // (8 KiB or more) alive: keep a copy of what the client already sent, if anything.
        prefix = if parts.read_buf.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&parts.read_buf)
        };
        drop(parts);
        if prefix.is_empty() {
            // Parked: only the socket is held until the next request or the end of
            // KeepAliveTimeout.
            let left = conf.keep_alive_timeout.saturating_sub(PARK_AFTER);
            tokio::select! {
                r = stream.wait_data() => if r.is_err() { break Ok(()) },
                _ = tokio::time::sleep(left) => break Ok(()),
                _ = crate::server::stopped(&mut stop) => break Ok(()),
            }
        }
    };
    if let Err(e) = result {
        if e.is_parse() || e.is_parse_too_large() {
            let status = if e.is_parse_too_large() { 431 } else { 400 };
            crate::pipeline::log_malformed(&site, &state, &shared, status);
            shared.linger.store(true, Ordering::Release);
        } else {
            tracing::debug!(peer = ?peer, error = %e, "connection ended with an error");
        }
    }
    if shared.linger.load(Ordering::Acquire) {
        Box::pin(linger(&mut stream)).await;
    }
}

/// Copies bytes both ways between the client (after what hyper had already read) and an
/// upgraded backend until both sides are done. The connection task stays alive meanwhile,
/// so a graceful stop waits for it (up to GracefulShutdownTimeout) and a reload, which
/// leaves open connections on their configuration, never cuts it.
async fn splice(
    stream: &mut Stream,
    rest: Bytes,
    backend: Tunnel,
    shared: &Arc<ConnShared>,
    conf: &ConnConf,
) {
    let Some(mut backend) = backend.await else {
        return;
    };
    // No read deadline (either side may stay quiet); a stalled write still gets Timeout.
    shared.set_phase(Phase::Handling);
    let mut client = TimedIo::new(stream, rest, Arc::clone(shared), conf.clone());
    client.tunnel = true;
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
        Err(e) => tracing::debug!(error = %e, "upgraded connection ended"),
    }
}

/// An HTTP/2 connection (prior knowledge, or ALPN h2 from a PROXY header).
async fn serve_h2(
    stream: Stream,
    prefix: Bytes,
    shared: Arc<ConnShared>,
    conf: ConnConf,
    ctx: Arc<crate::pipeline::ConnCtx>,
    mut stop: watch::Receiver<bool>,
) {
    shared.h2.store(true, Ordering::Release);
    shared
        .phase
        .store(Phase::Multiplexed as u8, Ordering::Release);
    let service = hyper::service::service_fn(move |req| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, std::convert::Infallible>(crate::pipeline::handle(req, ctx).await) }
    });
    let io = TimedIo::new(stream, prefix, Arc::clone(&shared), conf.clone());
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .max_concurrent_streams(256)
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(conf.keep_alive_timeout.max(Duration::from_secs(5))))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = crate::server::stopped(&mut stop) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// nginx's lingering close: stop sending, then read and discard what the client still
/// sends for a short while, so it sees our response rather than a reset.
async fn linger(stream: &mut Stream) {
    let _ = stream.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    while total < 1 << 20 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_lines() {
        assert_eq!(
            count_content_length_lines(
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n"
            ),
            2
        );
        assert_eq!(
            count_content_length_lines(b"GET / HTTP/1.1\r\nX-Content-Length: 5\r\n"),
            0
        );
    }
}
