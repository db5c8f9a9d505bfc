//! Listening sockets: TCP (IPv4, IPv6), Unix domain sockets, and sockets inherited from
//! systemd (`LISTEN_FDS`, sd_listen_fds(3)).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::error::Error;
use crate::site::ListenAddr;

/// How long the kernel holds a connection that has sent nothing (TCP_DEFER_ACCEPT):
/// Apache's value.
const DEFER_ACCEPT_SECS: i32 = 30;

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A TCP or Unix socket connection: one accepted by a listener, or one to a proxy backend.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `addr`. A stale Unix socket file is removed first (as nginx does). With
    /// `defer_accept` (AcceptFilter), a TCP connection is handed over once its first
    /// bytes arrive, or after 30 s (Apache's value): the request is then read at once,
    /// without a wake-up for the connection and another for its bytes, and a client that
    /// connects and says nothing costs the kernel a half-open socket, not a connection.
    pub fn bind(addr: &ListenAddr, defer_accept: bool) -> Result<Listener, Error> {
        let err = |source| Error::Bind {
            addr: addr.to_string(),
            source,
        };
        match addr {
            ListenAddr::Tcp(a) => {
                let sock = if a.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(err)?;
                sock.set_reuseaddr(true).map_err(err)?;
                sock.bind(*a).map_err(err)?;
                if defer_accept {
                    if let Err(e) = crate::sys::defer_accept(&sock, DEFER_ACCEPT_SECS) {
                        tracing::warn!(%addr, error = %e, "AcceptFilter: TCP_DEFER_ACCEPT failed; connections are accepted at once");
                    }
                }
                Ok(Listener::Tcp(sock.listen(4096).map_err(err)?))
            }
            ListenAddr::Unix(p) => {
                if let Ok(meta) = std::fs::symlink_metadata(p) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        let _ = std::fs::remove_file(p);
                    }
                }
                Ok(Listener::Unix(
                    UnixListener::bind(p).map_err(err)?,
                    p.clone(),
                ))
            }
        }
    }

    /// The address actually bound (the real port when 0 was asked).
    pub fn local_addr(&self) -> ListenAddr {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => ListenAddr::Tcp(a),
                Err(_) => ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            },
            Listener::Unix(_, p) => ListenAddr::Unix(p.clone()),
        }
    }

    pub async fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Stream::Tcp(s), Some(peer)))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), None))
            }
        }
    }

    /// Takes the listening sockets systemd passed (sd_listen_fds(3): `LISTEN_PID` must be
    /// ours, the descriptors start at 3). The variables are then removed and the
    /// descriptors marked close-on-exec, so CGI scripts and piped loggers inherit neither.
    /// AcceptFilter does not apply to them: the socket unit's `DeferAcceptSec=` decides.
    pub fn from_systemd() -> Vec<Listener> {
        let ok_pid = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p == std::process::id());
        let n: i32 = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        if !ok_pid || !(1..=1024).contains(&n) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for fd in 3..3 + n {
            match crate::sys::listener_from_fd(fd) {
                Some(l) => out.push(l),
                None => tracing::warn!(
                    fd,
                    "LISTEN_FDS: descriptor is not a listening socket; skipped"
                ),
            }
        }
        out
    }
}

/// A [`Stream`] taken out of tokio (deregistered from its reactor): how a parked
/// connection's socket is held ([`crate::parking`]).
pub enum StdStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl std::os::fd::AsRawFd for StdStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            StdStream::Tcp(s) => s.as_raw_fd(),
            StdStream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl StdStream {
    /// Registers the socket with tokio again (it is still non-blocking).
    pub fn into_tokio(self) -> io::Result<Stream> {
        Ok(match self {
            StdStream::Tcp(s) => Stream::Tcp(TcpStream::from_std(s)?),
            StdStream::Unix(s) => Stream::Unix(UnixStream::from_std(s)?),
        })
    }
}

/// How much [`Stream::read_first`] reads: a typical request head in one syscall.
const FIRST_READ: usize = 2048;

impl Stream {
    /// Waits until bytes arrive and returns what is there, up to `FIRST_READ` bytes
    /// (empty: the peer closed). Through `poll_read`, which notes a short read as draining
    /// the socket, so hyper's next read waits for readiness instead of costing a syscall
    /// that finds nothing. The buffer is on the stack of each poll, not in the waiting
    /// future: a connection task that holds 2 KiB across its first wait is that much
    /// larger to allocate, and tokio moves the whole task future when it spawns and
    /// finishes it (callgrind: about 460 instructions per move).
    pub async fn read_first(&mut self) -> io::Result<bytes::Bytes> {
        std::future::poll_fn(|cx| {
            let mut first = [std::mem::MaybeUninit::<u8>::uninit(); FIRST_READ];
            let mut buf = ReadBuf::uninit(&mut first);
            match Pin::new(&mut *self).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(bytes::Bytes::copy_from_slice(buf.filled()))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Deregisters the socket from tokio, which frees its registration (about 256 bytes).
    pub fn into_std(self) -> io::Result<StdStream> {
        Ok(match self {
            Stream::Tcp(s) => StdStream::Tcp(s.into_std()?),
            Stream::Unix(s) => StdStream::Unix(s.into_std()?),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.local_addr().ok(),
            Stream::Unix(_) => None,
        }
    }

    /// sendfile(2): up to `len` bytes of `file` from `offset` (TCP; None on a Unix socket,
    /// which takes the ordinary write).
    pub fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &std::fs::File,
        offset: u64,
        len: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        use std::os::fd::AsRawFd;
        let Stream::Tcp(s) = self else { return None };
        let mut off = libc::off_t::try_from(offset).ok()?;
        Some(poll_tcp_write(s, cx, || {
            crate::sys::sendfile(s.as_raw_fd(), file, &mut off, len)
        }))
    }

    /// Holds partial segments back (TCP_CORK) or sends them (a no-op on a Unix socket).
    pub fn set_cork(&self, on: bool) {
        if let Stream::Tcp(s) = self {
            // Only segment sizes depend on it: a failure changes nothing else.
            let _ = socket2::SockRef::from(s).set_tcp_cork(on);
        }
    }

    /// Caps the bytes the kernel holds unsent (TCP_NOTSENT_LOWAT; a no-op on a Unix
    /// socket): the socket reports writable, and a write goes on, only while less than
    /// `bytes` wait to be sent.
    pub fn set_notsent_lowat(&self, bytes: u32) {
        if let Stream::Tcp(s) = self {
            // Only when data is handed over depends on it: a failure changes nothing else.
            let _ = socket2::SockRef::from(s).set_tcp_notsent_lowat(bytes);
        }
    }

    /// Turns Nagle's algorithm off (TCP_NODELAY; a no-op on a Unix socket): a response
    /// written in pieces (a streamed body, or a head before its sendfile'd body) must not
    /// have a small piece wait for the client's delayed ACK of the one before.
    pub fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// A vectored write with MSG_MORE: the kernel holds a partial segment back for what
    /// follows (a response head before its body is sent with sendfile). TCP only.
    pub fn poll_write_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        use std::os::fd::AsRawFd;
        let Stream::Tcp(s) = self else { return None };
        Some(poll_tcp_write(s, cx, || {
            crate::sys::send_more(s.as_raw_fd(), bufs)
        }))
    }
}

/// A non-blocking write syscall on a TCP socket, registered with tokio for writability
/// when the socket is full.
fn poll_tcp_write(
    s: &TcpStream,
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        match s.poll_write_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match s.try_io(tokio::io::Interest::WRITABLE, &mut op) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

/// What [`crate::connection::TimedIo`] writes to: the socket, for the zero-copy writes.
pub trait AsStream {
    fn as_stream(&self) -> &Stream;
}

impl AsStream for Stream {
    fn as_stream(&self) -> &Stream {
        self
    }
}

impl AsStream for &mut Stream {
    fn as_stream(&self) -> &Stream {
        self
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
