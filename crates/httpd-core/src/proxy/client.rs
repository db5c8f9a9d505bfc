//! The proxy's client: a small pool of idle keep-alive connections per rule (keyed by
//! the backend's authority), and the exchange of one request on one of them ([`wire`]
//! and [`response`] speak the HTTP/1.1).
//!
//! A pooled connection is not a spawned task: the request's own task drives it, first
//! while the request is sent and the response head awaited, then from the response body
//! ([`ProxyBody`]) while the client reads it. Once the body has ended the connection goes
//! back to the pool.
//!
//! Upgrade requests (WebSocket) get a fresh connection of their own, never pooled: after
//! a 101 it becomes the backend's end of the tunnel.
//!
//! [`wire`]: super::wire
//! [`response`]: super::response

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::{Response, Uri};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::response::{self, ProxyBody};
use super::wire::{self, Conn, Exchange, Failed, Upload};
use crate::listener::Stream;

/// A connection whose last request started longer ago than this is closed rather than
/// reused. Timed from the request's start, which the request read the clock for
/// anyway, rather than from its end: no clock read of the pool's own.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per rule, at most.
const MAX_IDLE: usize = 1024;

struct Idle {
    key: Arc<str>,
    /// Not reused from then on (its last request's start + IDLE_TIMEOUT).
    expires: Instant,
    conn: Conn,
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

/// A request ready to go: its whole head, the framing of its body included (see
/// [`wire::request_head`]), and the body.
pub struct Outgoing {
    pub head: Vec<u8>,
    /// A HEAD request: the response has no body, whatever it declares.
    pub head_method: bool,
    /// It may be sent again if a pooled connection ends without answering (RFC 9110
    /// §9.2.2).
    pub idempotent: bool,
    pub upload: Option<Upload>,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum ClientError {
    /// The connection could not be made (balancers try another member).
    Connect(io::Error),
    /// The URL cannot be served by this client.
    Url(&'static str),
    /// Reading from or writing to the backend failed.
    Io(io::Error),
    /// The backend's response (or the request body) broke HTTP/1.1's rules.
    Invalid(&'static str),
    /// The client's request body failed (cut short, or over LimitRequestBody).
    Body(Box<dyn std::error::Error + Send + Sync>),
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
            ClientError::Url(what) | ClientError::Invalid(what) => f.write_str(what),
            ClientError::Io(_) => f.write_str("backend exchange failed"),
            ClientError::Body(_) => f.write_str("reading the request body failed"),
            ClientError::Timeout => f.write_str("backend timed out"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(e) | ClientError::Io(e) => Some(e),
            ClientError::Body(e) => Some(&**e),
            ClientError::Url(_) | ClientError::Invalid(_) | ClientError::Timeout => None,
        }
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

    /// Sends `out` to `origin` and returns the response head, or
    /// [`ClientError::Timeout`] when it has not come by `deadline`. `now`: when the
    /// request started. `upgrade`: the request asks to switch protocols, so it gets a
    /// connection of its own.
    pub async fn request(
        self: &Arc<Self>,
        origin: &Origin,
        out: Outgoing,
        upgrade: bool,
        now: Instant,
        deadline: Instant,
    ) -> Result<Response<ProxyBody>, ClientError> {
        let key = &origin.authority;
        let Outgoing {
            head,
            head_method,
            idempotent,
            mut upload,
        } = out;
        loop {
            let pooled = if upgrade {
                None
            } else {
                self.checkout(key, now)
            };
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(mut c) => {
                    c.begin(now, deadline);
                    c
                }
                None => {
                    // Boxed: its future is large and rare, and the request's future (moved
                    // on every request) is only as big as its largest state.
                    let open = Box::pin(self.connect(&origin.host, origin.port));
                    match tokio::time::timeout_at(deadline, open).await {
                        Ok(io) => Conn::new(io?, now, deadline),
                        Err(_) => return Err(ClientError::Timeout),
                    }
                }
            };
            let x = Exchange {
                head: &head,
                head_method,
                upload: &mut upload,
                reused,
            };
            match wire::exchange(&mut conn, x).await {
                Ok(h) => {
                    let home = (!upgrade).then(|| (Arc::clone(self), Arc::clone(key)));
                    return Ok(response::of(conn, h, upload, home));
                }
                // A stale pooled connection: another one gets the request.
                Err(Failed::Unused) => {}
                Err(Failed::NoAnswer)
                    if reused && idempotent && upload.as_ref().is_none_or(|u| !u.started) => {}
                Err(Failed::NoAnswer) => {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the backend closed the connection without answering",
                    )))
                }
                Err(Failed::Error(e)) => return Err(e),
            }
        }
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
    fn checkout(&self, key: &str, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let i = idle.iter().rposition(|e| &*e.key == key)?;
        let e = idle.remove(i);
        if e.expires <= now {
            // This was the newest for its key: every older one has expired too.
            idle.retain(|e| e.expires > now);
            return None;
        }
        Some(e.conn)
    }

    pub(super) fn checkin(&self, key: Arc<str>, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            key,
            expires: conn.started() + IDLE_TIMEOUT,
            conn,
        });
    }
}

/// An upgraded (tunnelled) backend connection that ends with a `TimedOut` error once no
/// byte has gone either way for `idle` (mod_proxy_wstunnel's idle timeout: ProxyTimeout
/// or the rule's `timeout=`). Every byte of the tunnel passes through here: what the
/// client sends is written to it, what the backend sends is read from it (`early`
/// first: what the backend sent right after its 101, read with the head).
pub struct IdleTimeout<T> {
    io: T,
    early: Bytes,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(io: T, early: Bytes, idle: Duration) -> IdleTimeout<T> {
        IdleTimeout {
            io,
            early,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn active(&mut self) {
        let next = Instant::now() + self.idle;
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
        if !this.early.is_empty() {
            let k = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early.split_to(k));
            return Poll::Ready(Ok(()));
        }
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
