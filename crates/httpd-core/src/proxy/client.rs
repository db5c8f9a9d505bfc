//! The proxy's HTTP/1.1 client: hyper's low-level `client::conn::http1` with a small
//! pool of idle keep-alive connections per rule (keyed by the backend's authority).
//!
//! A pooled connection is not a spawned task: the request's own task drives it, first
//! while the request is sent and the response head awaited, then from the response body
//! ([`ProxyBody`]) while the client reads it. Once the body has ended the connection goes
//! back to the pool. This saves hyper-util's legacy client costs on every request (a
//! spawned task per connection and the wake-ups between it and the request, a task per
//! response to return the connection, its pool's bookkeeping), which were about a tenth
//! of a proxied request's CPU.
//!
//! Upgrade requests (WebSocket) get a fresh connection of their own, spawned with
//! upgrades enabled, never pooled.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::ReqBody;
use crate::listener::Stream;

/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per rule, at most.
const MAX_IDLE: usize = 1024;

type Conn = http1::Connection<TokioIo<Stream>, ReqBody>;

/// A connection to a backend: its request sender and the connection state machine.
struct Pooled {
    sender: http1::SendRequest<ReqBody>,
    conn: Pin<Box<Conn>>,
    /// The deadline of the request being sent (ProxyTimeout), reset for each one: a
    /// timer registered once per connection, whose later deadlines only move it forward
    /// (tokio extends a registered timer without touching its wheel), instead of a timer
    /// registered and removed for every request.
    timer: Pin<Box<tokio::time::Sleep>>,
}

struct Idle {
    key: Arc<str>,
    since: Instant,
    pooled: Pooled,
}

/// Where a backend request goes: `http://host:port`, taken apart.
#[derive(Clone)]
pub struct Origin {
    /// The URL text up to its path (`http://host:port`), for a rule's fixed URL; empty
    /// otherwise.
    pub prefix: String,
    /// `host:port` as written: the pool's key.
    authority: Arc<str>,
    /// The host to connect to (an IPv6 address without its brackets).
    host: String,
    port: u16,
    /// The authority as the Host value to send (None when it is not a valid value).
    pub host_value: Option<http::HeaderValue>,
}

impl Origin {
    /// The origin of an absolute URI; an error for a URI this client cannot serve.
    pub fn of(uri: &Uri) -> Result<Origin, ClientError> {
        let Some(authority) = uri.authority() else {
            return Err(ClientError::Url("backend URL without a host"));
        };
        if uri.scheme_str() != Some("http") {
            return Err(ClientError::Url("only http:// backends are supported"));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Origin {
            prefix: String::new(),
            authority: Arc::from(authority.as_str()),
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            host_value: http::HeaderValue::from_str(authority.as_str()).ok(),
        })
    }

    /// For a rule's fixed target URL: its origin and the text a request's backend URL
    /// starts with (None when the URL cannot be parsed; requests then take it apart each
    /// time, and get that error).
    pub fn of_url(url: &str) -> Option<Origin> {
        let uri: Uri = url.parse().ok()?;
        let mut o = Origin::of(&uri).ok()?;
        let start = url.find("://")? + 3;
        let end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| start + i);
        if url[start..end] != *o.authority {
            return None;
        }
        o.prefix = url[..end].to_string();
        Some(o)
    }
}

/// One rule's client: where it connects and its idle connections.
pub struct Client {
    /// `unix:/path|http://...`: every connection goes to this socket.
    unix: Option<PathBuf>,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum ClientError {
    /// The connection could not be made (balancers try another member).
    Connect(io::Error),
    /// The URL cannot be served by this client.
    Url(&'static str),
    Http(hyper::Error),
    /// No response head before the deadline.
    Timeout,
}

impl ClientError {
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect(_))
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(_) => f.write_str("connect error"),
            ClientError::Url(what) => f.write_str(what),
            ClientError::Http(_) => f.write_str("backend exchange failed"),
            ClientError::Timeout => f.write_str("backend timed out"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(e) => Some(e),
            ClientError::Url(_) | ClientError::Timeout => None,
            ClientError::Http(e) => Some(e),
        }
    }
}

impl From<hyper::Error> for ClientError {
    fn from(e: hyper::Error) -> ClientError {
        ClientError::Http(e)
    }
}

impl Client {
    pub fn new(unix: Option<PathBuf>, connect_timeout: Duration) -> Arc<Client> {
        Arc::new(Client {
            unix,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` (its URI in origin form, its Host set by the caller) to `origin` and
    /// returns the response head, or [`ClientError::Timeout`] when it has not come by
    /// `deadline`. `upgrade`: the request asks to switch protocols, so it gets a
    /// connection of its own with upgrades enabled.
    pub async fn request(
        self: &Arc<Self>,
        origin: &Origin,
        mut req: Request<ReqBody>,
        upgrade: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Response<ProxyBody>, ClientError> {
        let (host, port) = (origin.host.as_str(), origin.port);
        let key = &origin.authority;

        if upgrade {
            // Boxed, as the new connections below: their futures are large and rare, and
            // the request's future (moved on every request) is only as big as its
            // largest state.
            let up = Box::pin(self.upgrade(host, port, req));
            return tokio::time::timeout_at(deadline, up)
                .await
                .unwrap_or(Err(ClientError::Timeout));
        }

        loop {
            let (mut pooled, fresh) = match self.checkout(key) {
                Some(mut p) => {
                    p.timer.as_mut().reset(deadline);
                    (p, false)
                }
                None => {
                    let open = Box::pin(self.open(host, port, deadline));
                    match tokio::time::timeout_at(deadline, open).await {
                        Ok(p) => (p?, true),
                        Err(_) => return Err(ClientError::Timeout),
                    }
                }
            };
            // An idle connection the backend closed shows up here: try the next one.
            let ready = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = pooled.conn.as_mut().poll(cx) {
                    return Poll::Ready(r.err().map(ClientError::Http).or(Some(closed())));
                }
                match pooled.sender.poll_ready(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(None),
                    Poll::Ready(Err(e)) => Poll::Ready(Some(ClientError::Http(e))),
                    Poll::Pending if pooled.timer.as_mut().poll(cx).is_ready() => {
                        Poll::Ready(Some(ClientError::Timeout))
                    }
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if let Some(e) = ready {
                if fresh || e.is_timeout() {
                    return Err(e);
                }
                continue;
            }
            let sent = pooled.sender.try_send_request(req);
            let mut sent = std::pin::pin!(sent);
            let mut alive = true;
            let res = std::future::poll_fn(|cx| {
                if alive && pooled.conn.as_mut().poll(cx).is_ready() {
                    alive = false;
                }
                match sent.as_mut().poll(cx) {
                    Poll::Ready(r) => Poll::Ready(Some(r)),
                    // The timer is polled only while waiting, as tokio's Timeout does.
                    Poll::Pending if pooled.timer.as_mut().poll(cx).is_ready() => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            let Some(res) = res else {
                return Err(ClientError::Timeout);
            };
            match res {
                Ok(resp) => {
                    let conn = alive.then(|| Keep {
                        pooled,
                        client: Arc::clone(self),
                        key: Arc::clone(key),
                    });
                    return Ok(resp.map(|b| ProxyBody { inner: b, conn }));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: a stale pooled connection; another one gets it.
                    Some(back) if !fresh => req = back,
                    _ => return Err(ClientError::Http(e.into_error())),
                },
            }
        }
    }

    /// A new pooled connection, its timer set to `deadline`.
    async fn open(
        &self,
        host: &str,
        port: u16,
        deadline: tokio::time::Instant,
    ) -> Result<Pooled, ClientError> {
        let io = self.connect(host, port).await?;
        // Flattened writes: a request head (and any body chunk) is copied into one buffer
        // and written with write(), cheaper per request than hyper's queue of buffers for
        // writev when, as for most proxied requests, there is only a head.
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(io))
            .await?;
        Ok(Pooled {
            sender,
            conn: Box::pin(conn),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        })
    }

    /// An upgrade request on a connection of its own, spawned with upgrades enabled.
    async fn upgrade(
        &self,
        host: &str,
        port: u16,
        req: Request<ReqBody>,
    ) -> Result<Response<ProxyBody>, ClientError> {
        let io = self.connect(host, port).await?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "backend connection ended");
            }
        });
        let resp = sender.send_request(req).await?;
        Ok(resp.map(|b| ProxyBody {
            inner: b,
            conn: None,
        }))
    }

    async fn connect(&self, host: &str, port: u16) -> Result<Stream, ClientError> {
        let connecting = async {
            match &self.unix {
                Some(path) => UnixStream::connect(path).await.map(Stream::Unix),
                None => {
                    let s = TcpStream::connect((host, port)).await?;
                    s.set_nodelay(true)?;
                    Ok(Stream::Tcp(s))
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(ClientError::Connect(e)),
            Err(_) => Err(ClientError::Connect(io::Error::new(
                io::ErrorKind::TimedOut,
                "connect timed out",
            ))),
        }
    }

    /// The most recently used idle connection to `key` (the freshest, the least likely to
    /// have been closed by the backend).
    fn checkout(&self, key: &str) -> Option<Pooled> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let i = idle.iter().rposition(|e| &*e.key == key)?;
        let e = idle.remove(i);
        if e.since.elapsed() > IDLE_TIMEOUT {
            // This was the newest for its key: every older one has expired too.
            let now = Instant::now();
            idle.retain(|e| now.duration_since(e.since) <= IDLE_TIMEOUT);
            return None;
        }
        Some(e.pooled)
    }

    fn checkin(&self, key: Arc<str>, pooled: Pooled) {
        if pooled.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            key,
            since: Instant::now(),
            pooled,
        });
    }
}

fn closed() -> ClientError {
    ClientError::Connect(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "backend closed the connection",
    ))
}

/// A connection lent to a response body, returned to its pool when the body has ended.
struct Keep {
    pooled: Pooled,
    client: Arc<Client>,
    key: Arc<str>,
}

/// The backend's response body; it drives the backend connection while it is read.
pub struct ProxyBody {
    inner: Incoming,
    conn: Option<Keep>,
}

impl ProxyBody {
    fn release(&mut self) {
        let Some(k) = self.conn.take() else { return };
        if k.pooled.sender.is_ready() {
            k.client.checkin(k.key, k.pooled);
            return;
        }
        // Not ready for another request yet (the request body is still being sent, as
        // when the backend answered before reading all of an upload): pooled only once it
        // is, by a task of its own, so no request waits behind it.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::debug!("backend connection not yet reusable when its response ended");
        rt.spawn(async move {
            let Keep {
                mut pooled,
                client,
                key,
            } = k;
            let ready = std::future::poll_fn(|cx| {
                if pooled.conn.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                pooled.sender.poll_ready(cx).map(|r| r.is_ok())
            });
            if let Ok(true) = tokio::time::timeout(IDLE_TIMEOUT, ready).await {
                client.checkin(key, pooled);
            }
        });
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
        let mut drove = false;
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(None) => {
                    this.release();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(f))) => {
                    if this.inner.is_end_stream() {
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(f)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::other(e))));
                }
                Poll::Pending => {}
            }
            let Some(k) = this.conn.as_mut().filter(|_| !drove) else {
                return Poll::Pending;
            };
            drove = true;
            if let Poll::Ready(r) = k.pooled.conn.as_mut().poll(cx) {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "backend connection failed");
                }
                // Gone: dropping it ends the body (with an error if it was cut short).
                this.conn = None;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A body with nothing to read (HEAD, 204, 304, Content-Length: 0) may be dropped
        // unread: its connection is still good. One dropped part-way through is not.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

/// An upgraded (tunnelled) backend connection that ends with a `TimedOut` error once no
/// byte has gone either way for `idle` (mod_proxy_wstunnel's idle timeout: ProxyTimeout
/// or the rule's `timeout=`). Every byte of the tunnel passes through here: what the
/// client sends is written to it, what the backend sends is read from it.
pub struct IdleTimeout<T> {
    io: T,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(io: T, idle: Duration) -> IdleTimeout<T> {
        IdleTimeout {
            io,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn active(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Pending I/O: an error once the tunnel has been idle too long.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "tunnel idle timeout")
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.active();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_of_a_fixed_url() {
        let o = Origin::of_url("http://127.0.0.1:8080/app/").unwrap();
        assert_eq!(o.prefix, "http://127.0.0.1:8080");
        assert_eq!(
            (&*o.authority, o.host.as_str(), o.port),
            ("127.0.0.1:8080", "127.0.0.1", 8080)
        );
        assert_eq!(o.host_value.unwrap(), "127.0.0.1:8080");
        let o = Origin::of_url("http://[::1]:81").unwrap();
        assert_eq!(
            (o.prefix.as_str(), o.host.as_str(), o.port),
            ("http://[::1]:81", "::1", 81)
        );
        let o = Origin::of_url("http://backend/").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("backend", 80));
        assert!(Origin::of_url("https://backend/").is_none());
        assert!(Origin::of_url("/no/host").is_none());
    }
}
