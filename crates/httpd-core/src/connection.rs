//! One client connection: timeouts that really fire, HTTP/1.1 or HTTP/2 through hyper,
//! graceful shutdown, and nginx's lingering close after an early refusal.
//!
//! Timeouts live in [`TimedIo`], the I/O object hyper reads and writes through. The
//! request pipeline tells it what the connection is doing ([`Phase`]) through
//! [`ConnShared`], and it arms the matching deadline:
//! - reading a request head: `RequestReadTimeout header=` (from the first byte, or from
//!   accept for the first request), extended by MinRate up to the maximum;
//! - between requests: `KeepAliveTimeout`;
//! - reading a request body: `RequestReadTimeout body=`, from when a handler starts
//!   reading it (it says so: [`Phase::Body`]) until its last byte has arrived ([`Framing`]
//!   tells), extended by MinRate (without a maximum when none is given, as Apache); when
//!   it fires, the body read fails, the handler stops and the pipeline answers 408;
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

use crate::listener::{AsStream, Stream};
use crate::server::ConnGuard;
use crate::site::{ConnConf, Site};

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
    /// A handler is reading the request body. The connection moves back to Handling by
    /// itself once the whole body has arrived.
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
    /// The response being written is the connection's last (HTTP/1.1), and its body is in
    /// memory: it is written with MSG_MORE, so its last partial segment leaves with the FIN
    /// of the close that follows instead of in a segment of its own (bench/static.sh's close
    /// row: 10 segments per connection against nginx's 9, whose TCP_NOPUSH does the same).
    pub last_response: AtomicBool,
    /// `Content-Length` header lines of each request head read and not yet matched to a
    /// request, in order (one entry per head, from [`Framing`]); hyper drops a
    /// Content-Length that comes with Transfer-Encoding, so the pipeline uses this to
    /// refuse such requests (RFC 9112 §6.1, request smuggling). Per head, so pipelined
    /// requests read together are each judged by their own lines.
    head_content_length_lines: std::sync::Mutex<std::collections::VecDeque<u32>>,
    /// The same, counted over raw bytes, once [`Framing`] has lost track of the stream
    /// (conservative: body bytes may count too).
    content_length_lines: AtomicU32,
    /// The client's address (from the PROXY header when there is one).
    pub peer: Option<SocketAddr>,
    /// The address the connection arrived on.
    pub local: Option<SocketAddr>,
    /// The connection speaks HTTP/2.
    pub h2: AtomicBool,
    /// The connection came through TLS (the PROXY v2 header's SSL TLV from httpd-tls).
    pub https: bool,
    /// `RequestReadTimeout body=` fired: the handler's body read failed because of it.
    pub body_timed_out: AtomicBool,
    /// The connection went idle, and its I/O object reported EOF to hyper so that it
    /// would be parked.
    parking: AtomicBool,
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
    /// The `Content-Length` lines of the next request's head (for the smuggling check).
    pub fn take_content_length_lines(&self) -> u32 {
        let next = self
            .head_content_length_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        next.unwrap_or_else(|| self.content_length_lines.swap(0, Ordering::AcqRel))
    }

    pub fn new(peer: Option<SocketAddr>, local: Option<SocketAddr>) -> ConnShared {
        ConnShared {
            phase: AtomicU8::new(Phase::Head as u8),
            waker: AtomicWaker::new(),
            requests: AtomicU32::new(0),
            linger: AtomicBool::new(false),
            last_response: AtomicBool::new(false),
            head_content_length_lines: Default::default(),
            content_length_lines: AtomicU32::new(0),
            peer,
            local,
            h2: AtomicBool::new(false),
            https: false,
            body_timed_out: AtomicBool::new(false),
            parking: AtomicBool::new(false),
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
    /// the body one (Body). Entering Handling needs no wake, nor does Idle: the response's
    /// end enters it inside the connection's own poll, and hyper then flushes, which arms
    /// the keep-alive deadline ([`TimedIo::arm_entered`]). A wake there cost a second poll
    /// of the connection per request (callgrind, keep-alive 404: 1,480 instructions).
    pub fn set_phase(&self, phase: Phase) {
        if self.phase() == Phase::Multiplexed {
            return;
        }
        self.phase.store(phase as u8, Ordering::Release);
        if !matches!(phase, Phase::Handling | Phase::Idle) {
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
    /// TCP_CORK is on while a body is sent with sendfile (see `poll_write_zero_copy`).
    corked: bool,
    /// Bytes sent with sendfile since the connection last waited ([`SENDFILE_TURN`]).
    turn: usize,
    /// TCP_NODELAY was set, at the first write that needed it ([`TimedIo::nodelay`]).
    nodelay: bool,
    /// Spliced to an upgraded backend: shutting down really closes the write side.
    tunnel: bool,
    /// Where the requests' bodies end.
    framing: Framing,
    /// `prefix` was read through an earlier TimedIo of this connection (parked): its
    /// bytes are not counted again.
    prefix_seen: bool,
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
            corked: false,
            turn: 0,
            nodelay: false,
            tunnel: false,
            framing: Framing::default(),
            prefix_seen: false,
        };
        io.enter(seen, now);
        io
    }

    fn enter(&mut self, phase: Phase, now: Instant) {
        let phase = if phase == Phase::Body && self.body_arrived() {
            self.end_body()
        } else if phase == Phase::Idle && self.framing.head_started() {
            // The next request's head began to arrive with the last one (pipelined):
            // hyper holds it, so the connection is reading a head, not idle (parking it
            // would end it as if the client had closed mid-head).
            let _ = self.shared.phase.compare_exchange(
                Phase::Idle as u8,
                Phase::Head as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            self.shared.phase()
        } else {
            phase
        };
        self.seen = phase;
        self.phase_start = now;
        self.deadline = match phase {
            Phase::Head => self.conf.read_timeout.header.deadline(now),
            Phase::Body => self.conf.read_timeout.body.deadline(now),
            // An idle connection is parked (see `ConnShared::parking`) well before KeepAliveTimeout.
            Phase::Idle => Some(
                now + self
                    .conf
                    .keep_alive_timeout
                    .clamp(Duration::from_millis(1), PARK_AFTER),
            ),
            Phase::Handling | Phase::Multiplexed => None,
        };
    }

    /// Whether the body of the request being handled has fully arrived.
    fn body_arrived(&self) -> bool {
        self.framing
            .arrived(self.shared.requests.load(Ordering::Acquire))
    }

    /// The body has arrived: back to Handling (unless the request is already done).
    fn end_body(&self) -> Phase {
        let _ = self.shared.phase.compare_exchange(
            Phase::Body as u8,
            Phase::Handling as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.shared.phase()
    }

    /// Bytes about to be handed to hyper; `seen` when an earlier TimedIo counted them.
    fn on_data(&mut self, data: &[u8], seen: bool) {
        if data.is_empty() {
            return;
        }
        if !seen && self.seen != Phase::Multiplexed {
            self.framing.feed(data);
            self.framing.publish(&self.shared);
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
                // Framing counts per head; raw counting is the fallback once it is lost.
                let n = if seen || self.framing.state != Frame::Lost {
                    0
                } else {
                    count_content_length_lines(data)
                };
                if n > 0 {
                    self.shared
                        .content_length_lines
                        .fetch_add(n, Ordering::AcqRel);
                }
                self.conf.read_timeout.header
            }
            Phase::Body if self.body_arrived() => {
                let phase = self.end_body();
                self.enter(phase, now);
                return;
            }
            Phase::Body => self.conf.read_timeout.body,
            _ => return,
        };
        // mod_reqtimeout's MinRate: each received byte extends the deadline.
        if let Some(d) = self.deadline {
            self.deadline = Some(limit.extended(d, self.phase_start, data.len()));
        }
    }
}

/// Follows the framing of HTTP/1.1 requests (RFC 9112 §6) over the bytes hyper reads,
/// just far enough to count the requests whose body has fully arrived: the body timeout
/// ends there, while the handler may still be busy (and hyper still reads, to notice a
/// client that goes away). hyper parses the requests; this only counts, and anything it
/// cannot follow turns the counting off for the rest of the connection ([`Frame::Lost`]:
/// every body then counts as arrived, so the body timeout never cuts a request short).
struct Framing {
    state: Frame,
    /// Requests whose body (perhaps empty) has fully arrived.
    complete: u32,
    /// The start of the current line (head, chunk size or trailer line).
    line: [u8; LINE_CAP],
    /// The current line's length so far (it may be longer than `line`).
    line_len: usize,
    /// Non-empty lines in the current head.
    lines: u32,
    /// The current head's Content-Length and chunked Transfer-Encoding.
    length: u64,
    chunked: bool,
    /// `Content-Length` lines in the current head, and those of heads ended since the
    /// last [`Framing::publish`].
    cl_lines: u32,
    ended_heads: Vec<u32>,
}

/// Enough of a line for `Content-Length: <20 digits>`, `Transfer-Encoding: gzip, chunked`
/// or a chunk size with a short extension.
const LINE_CAP: usize = 64;

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    #[default]
    Head,
    /// This many bytes of a Content-Length body are still to come.
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The line end after a chunk's data.
    ChunkEnd,
    Trailers,
    Lost,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            state: Frame::Head,
            complete: 0,
            line: [0; LINE_CAP],
            line_len: 0,
            lines: 0,
            length: 0,
            chunked: false,
            cl_lines: 0,
            ended_heads: Vec::new(),
        }
    }
}

/// [`Framing`] while its connection is parked: at a request boundary (the usual case,
/// kept in a few bytes) or anywhere else (kept whole).
enum ParkedFraming {
    AtRest { complete: u32, lost: bool },
    Busy(Box<Framing>),
}

impl ParkedFraming {
    fn resume(self) -> Framing {
        match self {
            ParkedFraming::AtRest { complete, lost } => Framing {
                state: if lost { Frame::Lost } else { Frame::Head },
                complete,
                ..Framing::default()
            },
            ParkedFraming::Busy(f) => *f,
        }
    }
}

impl Framing {
    /// For a parked connection: a few bytes when nothing but the count of complete
    /// requests (and whether the framing was lost) matters.
    fn park(self) -> ParkedFraming {
        let done = self.ended_heads.is_empty() && self.cl_lines == 0;
        let at_rest = done
            && (self.state == Frame::Lost
                || (self.state == Frame::Head
                    && self.line_len == 0
                    && self.lines == 0
                    && self.length == 0
                    && !self.chunked));
        if at_rest {
            ParkedFraming::AtRest {
                complete: self.complete,
                lost: self.state == Frame::Lost,
            }
        } else {
            ParkedFraming::Busy(Box::new(self))
        }
    }

    /// Hands the `Content-Length` line counts of the heads ended so far to the requests;
    /// once lost, what the current head had goes to the raw counter.
    fn publish(&mut self, shared: &ConnShared) {
        if !self.ended_heads.is_empty() {
            shared
                .head_content_length_lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(self.ended_heads.drain(..));
        }
        if self.state == Frame::Lost && self.cl_lines > 0 {
            shared
                .content_length_lines
                .fetch_add(std::mem::take(&mut self.cl_lines), Ordering::AcqRel);
        }
    }

    /// Part of a request head has arrived (not just blank lines between requests).
    fn head_started(&self) -> bool {
        self.state == Frame::Head && (self.lines > 0 || self.line_len > 0)
    }

    /// Whether the body of the `n`th request on the connection has fully arrived.
    fn arrived(&self, n: u32) -> bool {
        self.state == Frame::Lost || self.complete >= n
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                Frame::Lost => return,
                Frame::Body(n) | Frame::ChunkData(n) => {
                    let k = n.min(data.len() as u64);
                    data = &data[k as usize..];
                    let left = n - k;
                    self.state = match (self.state, left) {
                        (Frame::Body(_), 0) => {
                            self.complete += 1;
                            Frame::Head
                        }
                        (Frame::Body(_), l) => Frame::Body(l),
                        (_, 0) => Frame::ChunkEnd,
                        (_, l) => Frame::ChunkData(l),
                    };
                }
                _ => {
                    let (part, ended) = match find_lf(data) {
                        Some(i) => (&data[..i], true),
                        None => (data, false),
                    };
                    let at = self.line_len.min(LINE_CAP);
                    let k = (LINE_CAP - at).min(part.len());
                    self.line[at..at + k].copy_from_slice(&part[..k]);
                    self.line_len += part.len();
                    data = &data[part.len() + usize::from(ended)..];
                    if ended {
                        self.end_line();
                        self.line_len = 0;
                    }
                }
            }
        }
    }

    fn end_line(&mut self) {
        let len = self.line_len;
        let full = len <= LINE_CAP;
        let line = &self.line[..len.min(LINE_CAP)];
        let line = if full {
            line.strip_suffix(b"\r").unwrap_or(line)
        } else {
            line
        };
        let empty = line.is_empty();
        self.state = match self.state {
            Frame::Head if empty && self.lines == 0 => Frame::Head,
            Frame::Head if empty => {
                self.lines = 0;
                self.ended_heads.push(std::mem::take(&mut self.cl_lines));
                let (length, chunked) = (self.length, self.chunked);
                self.length = 0;
                self.chunked = false;
                if chunked {
                    Frame::ChunkSize
                } else if length > 0 {
                    Frame::Body(length)
                } else {
                    self.complete += 1;
                    Frame::Head
                }
            }
            Frame::Head => {
                self.lines += 1;
                if self.lines == 1 {
                    Frame::Head
                } else {
                    self.header_line(full)
                }
            }
            Frame::ChunkSize => {
                let end = line
                    .iter()
                    .position(|b| b";\t ".contains(b))
                    .unwrap_or(line.len());
                let size = std::str::from_utf8(&line[..end])
                    .ok()
                    .and_then(|s| u64::from_str_radix(s, 16).ok());
                match size {
                    Some(_) if !full => Frame::Lost,
                    Some(0) => Frame::Trailers,
                    Some(n) => Frame::ChunkData(n),
                    None => Frame::Lost,
                }
            }
            Frame::ChunkEnd if empty => Frame::ChunkSize,
            Frame::Trailers if empty => {
                self.complete += 1;
                Frame::Head
            }
            Frame::Trailers => Frame::Trailers,
            _ => Frame::Lost,
        };
    }

    /// A header line of a head: notes Content-Length and Transfer-Encoding.
    fn header_line(&mut self, full: bool) -> Frame {
        let line = &self.line[..self.line_len.min(LINE_CAP)];
        // Most header lines are neither: one byte tells.
        if !matches!(line.first().map(|b| b | 0x20), Some(b'c' | b't')) {
            return Frame::Head;
        }
        const CL: &[u8] = b"content-length";
        if line.len() >= CL.len() && line[..CL.len()].eq_ignore_ascii_case(CL) {
            self.cl_lines += 1;
        }
        let value = |name: &[u8]| {
            (line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name))
                .then(|| std::str::from_utf8(&line[name.len()..]).ok())
                .map(|v| v.map(|v| v.trim_end_matches('\r').trim()))
        };
        if let Some(v) = value(b"content-length:") {
            // hyper takes `5, 5` as 5; different values are refused before a handler runs.
            match v.and_then(|v| v.split(',').next()?.trim().parse().ok()) {
                Some(n) if full => self.length = n,
                _ => return Frame::Lost,
            }
        } else if let Some(v) = value(b"transfer-encoding:") {
            match v {
                Some(v) if full => {
                    self.chunked = v
                        .rsplit(',')
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
                }
                _ => return Frame::Lost,
            }
        }
        Frame::Head
    }
}

/// Counts header lines named Content-Length (case-insensitive) in a chunk of a head.
fn count_content_length_lines(data: &[u8]) -> u32 {
    const NAME: &[u8] = b"content-length";
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = find_lf(&data[at..]) {
        let rest = &data[at + i + 1..];
        if rest.len() >= NAME.len() && rest[..NAME.len()].eq_ignore_ascii_case(NAME) {
            n += 1;
        }
        at += i + 1;
    }
    n
}

/// The index of the first `\n` in `data`, eight bytes at a time (SWAR): every byte the
/// server reads passes through here twice (request framing and the Content-Length count),
/// and a byte-by-byte loop was 8% of the instructions of a small request (callgrind).
fn find_lf(data: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LF: u64 = LO * b'\n' as u64;
    let mut words = data.chunks_exact(8);
    let mut base = 0;
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().unwrap_or([0; 8])) ^ LF;
        // A zero byte of x is a `\n`; the lowest flagged byte is exact.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
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
            this.on_data(&chunk, this.prefix_seen);
            return Poll::Ready(Ok(()));
        }
        let phase = this.shared.phase();
        if phase != this.seen {
            this.enter(phase, Instant::now());
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = &buf.filled()[before..];
                this.on_data(filled, false);
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
                // A complete request head that the pipeline has not picked up yet (hyper
                // reads on to notice a client leaving) needs no header deadline: arming a
                // timer per connection cost a timer registration and a driver wake-up
                // (an eventfd write) for every Connection: close request.
                let head_done = this.seen == Phase::Head
                    && this.framing.state != Frame::Lost
                    && this.framing.complete > this.shared.requests.load(Ordering::Acquire);
                if let (Some(deadline), false) = (this.deadline, head_done) {
                    let mut fired = this.poll_read_sleep(cx, deadline);
                    if fired && this.seen == Phase::Idle && this.write_armed {
                        // The response's end was handed to hyper, not yet to the client
                        // (a large body to a slow reader): hyper is still writing, so the
                        // connection is not idle. Parking now would cut the response short.
                        let later = Instant::now() + PARK_AFTER;
                        this.deadline = Some(later);
                        fired = this.poll_read_sleep(cx, later);
                    }
                    if fired {
                        if this.seen == Phase::Idle {
                            // Idle between requests: end hyper's connection as if the
                            // client had closed, so its buffers are freed; `serve` keeps
                            // the socket and waits for the next request without them.
                            this.shared.parking.store(true, Ordering::Release);
                            return Poll::Ready(Ok(()));
                        }
                        if this.seen == Phase::Body {
                            this.shared.body_timed_out.store(true, Ordering::Release);
                            return Poll::Ready(Err(timed_out("request body read timeout")));
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
    /// Arms the read timer for `deadline` (this task is woken when it passes); whether it
    /// has passed.
    fn poll_read_sleep(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let sleep = self
            .read_sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // Re-arming a timer costs more than the rest of a small request's read path, and
        // the deadline moves at every request: a later deadline leaves the timer where it
        // is, and it is moved when it fires early.
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        let mut fired = sleep.as_mut().poll(cx).is_ready();
        if fired && sleep.deadline() < deadline {
            sleep.as_mut().reset(deadline);
            fired = sleep.as_mut().poll(cx).is_ready();
        }
        fired
    }

    /// A phase entered while hyper was writing (Idle, at the response's end) gets its read
    /// deadline armed now: the read hyper left pending was started without one, and
    /// nothing wakes this task until data comes. A deadline already past wakes it, so
    /// that hyper's next read sees it.
    fn arm_entered(&mut self, cx: &mut Context<'_>) {
        let phase = self.shared.phase();
        if phase == self.seen || phase == Phase::Multiplexed {
            return;
        }
        self.enter(phase, Instant::now());
        if let Some(deadline) = self.deadline {
            if self.poll_read_sleep(cx, deadline) {
                cx.waker().wake_by_ref();
            }
        }
    }

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

/// Bodies (or their rests) at least this large are sent corked: a smaller one usually
/// goes in one sendfile, and the two setsockopt calls would be for nothing (100 KiB row).
const CORK_BODY: usize = 512 * 1024;

/// How much of a large body the kernel may hold unsent (TCP_NOTSENT_LOWAT, set with the
/// cork and left on: it only decides when the socket asks for more). Without a cap,
/// sendfile fills the send buffer (up to tcp_wmem's 4 MiB) and the rest leaves whenever
/// the client's ACKs open its window. On loopback that is from the client's CPU while
/// our next sendfile sends from ours, so one connection's segments arrive out of order
/// and are sent again for nothing: shared/bench's 10 MiB row, 5 s, 2,719 spurious
/// retransmissions (DSACKs) and 2,260 out-of-order segments, nginx alike. With the cap
/// the socket asks for more only once less than this waits, so the rest stays with us
/// and leaves from our own sendfile calls: 24-48 retransmissions in 5 s and 1.4 times
/// the responses per second. It caps only what waits in the kernel, not what is in
/// flight, so a fast or distant client's window is filled as before.
const LARGE_BODY_UNSENT: u32 = 256 * 1024;

/// At most this much of a body is sent with sendfile before the connection lets the
/// others on its thread run, as nginx's sendfile_max_chunk does. A client that takes data
/// as fast as it comes had its whole 10 MiB body sent in one call of a few milliseconds
/// (on loopback one sendfile also does the client's receive work) while the other
/// connections waited: shared/bench's 10 MiB row, 3 rounds, p99 96-115 ms; with turns of
/// 512 KiB, 62-85 ms and slightly more responses per second (2 MiB, nginx's default
/// chunk: 87-127 ms).
const SENDFILE_TURN: usize = 512 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin + AsStream> TimedIo<S> {
    /// A large cached file body among `bufs` is sent from its file (see
    /// [`crate::static_files::zero_copy`]): what comes before it first, held back with
    /// MSG_MORE, then the body with sendfile. None: an ordinary write.
    ///
    /// A large body's socket is corked from its first sendfile to its last: each call sends
    /// what the socket buffer takes, and without the cork the end of each went out as a
    /// partial segment (bench/static.sh's 10 MiB row: 174 data segments per response
    /// against nginx's 165, whose TCP_NOPUSH does the same).
    fn poll_write_zero_copy(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        let (i, (file, offset)) = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| Some((i, crate::static_files::zero_copy::find(b)?)))?;
        let stream = self.stream.as_stream();
        if i > 0 {
            return stream.poll_write_more(cx, &bufs[..i]);
        }
        if !self.corked && bufs[0].len() >= CORK_BODY {
            stream.set_cork(true);
            stream.set_notsent_lowat(LARGE_BODY_UNSENT);
            self.corked = true;
        }
        if self.turn >= SENDFILE_TURN {
            self.turn = 0;
            // Woken once the runtime has looked for the other connections' events.
            let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
            return Some(Poll::Pending);
        }
        let len = bufs[0].len().min(SENDFILE_TURN - self.turn);
        match stream.poll_sendfile(cx, &file, offset, len)? {
            // The file is shorter than the cached copy: the rest from memory (the
            // ordinary write uncorks after it).
            Poll::Ready(Ok(0)) => None,
            Poll::Ready(Ok(n)) => {
                self.turn += n;
                if n == bufs[0].len() {
                    self.uncork();
                }
                Some(Poll::Ready(Ok(n)))
            }
            Poll::Pending => {
                self.turn = 0;
                Some(Poll::Pending)
            }
            r => Some(r),
        }
    }

    /// Sets TCP_NODELAY before the connection's first write, unless that write is the
    /// whole of its last response (written with MSG_MORE, and pushed out by the close
    /// that follows): nginx too sets it only on connections that go on, and a
    /// `Connection: close` request then costs one setsockopt less. A resumed (parked)
    /// connection sets it again, once.
    fn nodelay(&mut self) {
        if !self.nodelay && !self.shared.last_response.load(Ordering::Relaxed) {
            self.stream.as_stream().set_nodelay();
            self.nodelay = true;
        }
    }

    /// After an ordinary write: a body whose end was written from memory (a slice too
    /// small to look up) is sent now.
    fn uncork(&mut self) {
        if self.corked {
            self.stream.as_stream().set_cork(false);
            self.corked = false;
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + AsStream> AsyncWrite for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.nodelay();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.write_pending(cx).map(Err),
            r => {
                this.write_armed = false;
                this.uncork();
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
        this.nodelay();
        let r = match this.poll_write_zero_copy(cx, bufs) {
            Some(r) => r,
            None => {
                let more = if this.shared.last_response.load(Ordering::Relaxed) {
                    this.stream.as_stream().poll_write_more(cx, bufs)
                } else {
                    None
                };
                let r = more
                    .unwrap_or_else(|| Pin::new(&mut this.stream).poll_write_vectored(cx, bufs));
                if r.is_ready() {
                    this.uncork();
                }
                r
            }
        };
        match r {
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

    /// hyper flushes after writing each response, with its end already handed over.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.uncork();
        this.arm_entered(cx);
        Pin::new(&mut this.stream).poll_flush(cx)
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

/// An HTTP/1.1 connection between its first bytes and its end.
struct Conn {
    stream: Stream,
    stop: watch::Receiver<bool>,
    ctx: Arc<crate::pipeline::ConnCtx>,
    /// Where the requests' bodies end, kept across parking (None before the first).
    framing: Option<ParkedFraming>,
    /// Counts the connection as open (MaxRequestWorkers, server-status) while it lives.
    open: ConnGuard,
}

/// What an HTTP/1.1 connection keeps between requests, besides its socket: a parked
/// connection is this in the [`crate::parking`] lot. Its task ends; hyper's state, the
/// service, the configuration, the connection's context and [`ConnShared`] are dropped
/// and rebuilt when the next request arrives, in a new task.
pub struct Idle {
    site: Arc<Site>,
    shared: KeptShared,
    framing: Option<ParkedFraming>,
    open: ConnGuard,
}

/// What a parked connection keeps of its [`ConnShared`]: the rest is as it started by
/// then (no request running, no tunnel, no lingering close).
struct KeptShared {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    https: bool,
    requests: u32,
    content_length_lines: u32,
    /// Heads read but not yet matched to a request (usually none: no allocation).
    head_content_length_lines: Box<[u32]>,
}

impl ConnShared {
    fn park(&self) -> KeptShared {
        let mut heads = self
            .head_content_length_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        KeptShared {
            peer: self.peer,
            local: self.local,
            https: self.https,
            requests: self.requests.load(Ordering::Acquire),
            content_length_lines: self.content_length_lines.load(Ordering::Acquire),
            head_content_length_lines: heads.drain(..).collect(),
        }
    }

    /// A parked connection's, again: idle, waiting for the bytes that woke it.
    fn resume(kept: KeptShared) -> ConnShared {
        let shared = ConnShared {
            https: kept.https,
            requests: AtomicU32::new(kept.requests),
            content_length_lines: AtomicU32::new(kept.content_length_lines),
            head_content_length_lines: std::sync::Mutex::new(
                kept.head_content_length_lines.into_vec().into(),
            ),
            ..ConnShared::new(kept.peer, kept.local)
        };
        shared.phase.store(Phase::Idle as u8, Ordering::Release);
        shared
    }
}

impl Idle {
    /// Parks the connection of `ctx` (see [`crate::parking`]) until its next bytes, or
    /// for at most `left`: its socket and what it keeps of `ctx` wait there, without a
    /// task. For a new connection that has sent nothing yet (`framing` None), its first
    /// bytes are served as a kept-alive connection's next request is.
    fn park(
        stream: Stream,
        ctx: Arc<crate::pipeline::ConnCtx>,
        framing: Option<ParkedFraming>,
        open: ConnGuard,
        left: Duration,
    ) {
        let state = Arc::clone(&ctx.state);
        let idle = Idle {
            site: Arc::clone(&ctx.site),
            shared: ctx.shared.park(),
            framing,
            open,
        };
        drop(ctx);
        state.parking.park(stream, idle, left);
    }

    /// The client of a parked connection sent something (or closed): serves it in a new
    /// task.
    pub fn resume(self, stream: Stream, stop: watch::Receiver<bool>) {
        let Idle {
            site,
            shared,
            framing,
            open,
        } = self;
        let ctx = Arc::new(crate::pipeline::ConnCtx {
            site,
            state: Arc::clone(open.state()),
            shared: Arc::new(ConnShared::resume(shared)),
        });
        let conn = Conn {
            stream,
            stop,
            ctx,
            framing,
            open,
        };
        // Boxed: the task then holds a pointer (see `server::accept_loop`).
        tokio::spawn(Box::pin(serve_http1(conn, Bytes::new())));
    }
}

/// Serves one accepted connection until it closes, goes idle (it is then parked, and
/// served on from [`Idle::resume`]), or `stop` turns true.
///
/// Starting (PROXY header, HTTP/2 sniffing, the first read and its timer) is boxed and
/// dropped once the first bytes are in. Not an `async fn`: its arguments would stay in
/// the task all along.
pub fn serve(
    stream: Stream,
    peer: Option<SocketAddr>,
    known_local: Option<SocketAddr>,
    site: Arc<Site>,
    stop: watch::Receiver<bool>,
    open: ConnGuard,
) -> impl Future<Output = ()> + Send {
    let started = Box::pin(start(stream, peer, known_local, site, stop, open));
    async move {
        if let Some((conn, prefix)) = started.await {
            serve_http1(conn, prefix).await;
        }
    }
}

/// Serves HTTP/1.1 requests until the connection is over or idle: then it is parked.
async fn serve_http1(mut conn: Conn, prefix: Bytes) {
    let Some(left) = Box::pin(http1(&mut conn, prefix)).await else {
        return;
    };
    if !Arc::ptr_eq(&conn.ctx.site, &conn.ctx.state.site()) {
        // Reloaded since the connection started: closed, as those parked at the reload.
        return;
    }
    tracing::trace!(peer = ?conn.ctx.shared.peer, "idle connection parked");
    let Conn {
        stream,
        ctx,
        framing,
        open,
        ..
    } = conn;
    Idle::park(stream, ctx, framing, open, left);
}

/// A new connection up to its first bytes: the PROXY header, the HTTP/2 preface (an
/// HTTP/2 connection is served here), the first read. None: it is over.
async fn start(
    mut stream: Stream,
    peer: Option<SocketAddr>,
    known_local: Option<SocketAddr>,
    site: Arc<Site>,
    mut stop: watch::Receiver<bool>,
    open: ConnGuard,
) -> Option<(Conn, Bytes)> {
    // The listener's own address when it is a specific one saves a getsockname per
    // connection.
    let local = match known_local {
        Some(a) if !a.ip().is_unspecified() => Some(a),
        _ => stream.local_addr(),
    };
    let conf = site.conn_conf(local);
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
                return None;
            }
            Err(_) => return None,
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
            _ => return None,
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
        state: Arc::clone(open.state()),
        shared: Arc::clone(&shared),
    });

    if want_h2 {
        // Boxed: HTTP/2 state is large, and most connections are HTTP/1.1; the task of
        // every connection is as big as its largest state.
        Box::pin(serve_h2(stream, prefix, shared, conf.clone(), ctx, stop)).await;
        return None;
    }
    if prefix.is_empty() {
        // Nothing is allocated for a connection until it sends something (nginx does the
        // same): a silent one costs its socket and this task for a moment, then it is
        // parked until its first bytes or the header timeout, as an idle keep-alive
        // connection is (shared/bench/idle.py, 10,000 connections before their first
        // request: 1,259 bytes each in tasks; parked, 143-587 over runs, what the
        // allocator keeps of the peak still waiting their 100 ms; nginx 512).
        // The first bytes are read here rather than peeked at (one syscall instead of a
        // peek and hyper's read), and handed to hyper as a prefix. On a TCP listener with
        // AcceptFilter (the default) they are usually there already: the kernel holds a
        // silent connection until its first bytes or 30 s, so the wait below is for Unix
        // sockets, `AcceptFilter http none`, and clients silent for longer.
        let limit = conf.read_timeout.header.initial;
        // None: nothing came within PARK_AFTER (or within the limit, when it is shorter).
        let wait = async {
            if limit.is_zero() {
                Some(stream.read_first().await)
            } else {
                tokio::time::timeout(limit.min(PARK_AFTER), stream.read_first())
                    .await
                    .ok()
            }
        };
        prefix = tokio::select! {
            // The read first: bytes already there need no stop signal (nor its waiter list).
            biased;
            r = wait => match r {
                Some(Ok(first)) => first,
                Some(Err(_)) => return None,
                None if limit > PARK_AFTER => {
                    Idle::park(stream, ctx, None, open, limit - PARK_AFTER);
                    return None;
                }
                // The header limit passed without a byte.
                None => return None,
            },
            _ = crate::server::stopped(&mut stop) => return None,
        };
    }
    let conn = Conn {
        stream,
        stop,
        ctx,
        framing: None,
        open,
    };
    Some((conn, prefix))
}

/// hyper's HTTP/1.1 settings for a connection.
fn http1_builder(site: &Site, conf: &ConnConf) -> hyper::server::conn::http1::Builder {
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
    builder
}

/// Serves HTTP/1.1 requests through hyper, starting with the bytes in `prefix`, until
/// the connection is over (None) or goes idle and is parked (Some: how much longer it may
/// stay idle before KeepAliveTimeout).
async fn http1(conn: &mut Conn, mut prefix: Bytes) -> Option<Duration> {
    let Conn {
        stream,
        stop,
        ctx,
        framing: kept,
        ..
    } = conn;
    let (site, shared) = (&ctx.site, &ctx.shared);
    let conf = site.conn_conf(shared.local);
    let service_ctx = Arc::clone(ctx);
    let service = hyper::service::service_fn(move |req| {
        let ctx = Arc::clone(&service_ctx);
        // Boxed so the connection can be polled without shutdown (hyper wants an Unpin
        // future for that), which is how idle connections are parked.
        Box::pin(async move {
            Ok::<_, std::convert::Infallible>(crate::pipeline::handle(req, ctx).await)
        })
    });
    let builder = http1_builder(site, conf);
    // What an earlier hyper connection left: its bytes were counted already.
    let mut framing = kept.take().map(ParkedFraming::resume);
    let result = loop {
        let mut io = TimedIo::new(&mut *stream, prefix, Arc::clone(shared), conf.clone());
        if let Some(f) = framing.take() {
            io.framing = f;
            io.prefix_seen = true;
        }
        // Boxed: a parked connection's task then holds a pointer, not hyper's state.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), service.clone()));
        let result = tokio::select! {
            // The connection first: when it is done at once (a Connection: close request
            // read with the first bytes), the stop signal is never polled, so never
            // registered with.
            biased;
            r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
            _ = crate::server::stopped_quietly(stop) => {
                Pin::new(conn.as_mut()).graceful_shutdown();
                std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
            }
        };
        if result.is_err() {
            break result;
        }
        let tunnel = shared.take_tunnel();
        let parking = shared.parking.swap(false, Ordering::AcqRel);
        tracing::trace!(parking, "hyper connection done");
        if tunnel.is_none() && (!parking || *stop.borrow()) {
            // Over: nothing to take back from hyper (taking its parts apart cost 2,500
            // instructions per Connection: close request).
            break Ok(());
        }
        let parts = conn.into_parts();
        if let Some(backend) = tunnel {
            // A proxied upgrade: hyper wrote the 101 and handed the connection back.
            let rest = parts.read_buf.clone();
            drop(parts);
            Box::pin(splice(stream, rest, backend, shared, conf)).await;
            break Ok(());
        }
        // A slice of hyper's read buffer, even an empty one, keeps that whole buffer
        // (8 KiB or more) alive: keep a copy of what the client already sent, if anything.
        prefix = if parts.read_buf.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&parts.read_buf)
        };
        let mut parts = parts;
        let f = std::mem::take(&mut parts.io.inner_mut().framing);
        drop(parts);
        if prefix.is_empty() {
            // Parked: only the socket and `Idle` are held until the next request or the
            // end of KeepAliveTimeout. The task ends, and a waker of it would keep its
            // memory (a tokio task is freed with its last waker).
            drop(shared.waker.take());
            *kept = Some(f.park());
            return Some(conf.keep_alive_timeout.saturating_sub(PARK_AFTER));
        }
        framing = Some(f);
    };
    if let Err(e) = result {
        if e.is_parse() || e.is_parse_too_large() {
            let status = if e.is_parse_too_large() { 431 } else { 400 };
            crate::pipeline::log_malformed(site, &ctx.state, shared, status);
            shared.linger.store(true, Ordering::Release);
        } else {
            tracing::debug!(peer = ?shared.peer, error = %e, "connection ended with an error");
        }
    }
    if shared.linger.load(Ordering::Acquire) {
        Box::pin(linger(stream)).await;
    }
    None
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
        _ = crate::server::stopped_quietly(&mut stop) => conn.as_mut().graceful_shutdown(),
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
    fn find_lf_matches_a_byte_search() {
        let mut data = vec![b'a'; 40];
        assert_eq!(find_lf(&data), None);
        for i in 0..40 {
            data.fill(b'a');
            data[i] = b'\n';
            data[39 - (i % 3)] = b'\n';
            // Bytes around 0x0a and 0x8a must not be taken for it.
            data[(i + 1) % 40] = 0x0b;
            data[(i + 2) % 40] = 0x8a;
            data[i] = b'\n';
            for start in 0..4 {
                let want = data[start..].iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(&data[start..]), want, "{i} {start}");
            }
        }
    }

    /// TCP_NODELAY is set at a connection's first write, except when that write is its
    /// last response (the close pushes it out), and stays set.
    #[tokio::test]
    async fn nodelay_is_set_at_the_first_write_unless_it_is_the_last() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for last in [false, true] {
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let mut io = timed_io(server);
            io.shared.last_response.store(last, Ordering::Relaxed);
            let nodelay = |s: &Stream| tcp(s).nodelay().unwrap();
            assert!(!nodelay(&io.stream), "set before any write");
            io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            assert_eq!(nodelay(&io.stream), !last, "last response: {last}");
            let parts = [io::IoSlice::new(b"a"), io::IoSlice::new(b"b")];
            assert!(io.write_vectored(&parts).await.unwrap() > 0);
            assert_eq!(nodelay(&io.stream), !last, "last response: {last}");
        }
    }

    /// `body` registered as read from a temporary file holding the same bytes.
    fn registered(body: &Bytes) -> crate::static_files::zero_copy::Registration {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(body).unwrap();
        crate::static_files::zero_copy::register(body, Arc::new(file)).unwrap()
    }

    /// The TCP socket under a test's writer.
    fn tcp(s: &Stream) -> &tokio::net::TcpStream {
        match s {
            Stream::Tcp(t) => t,
            Stream::Unix(_) => unreachable!("the tests write to TCP sockets"),
        }
    }

    /// The connection's writer over an accepted socket, with the default settings.
    fn timed_io(server: tokio::net::TcpStream) -> TimedIo<Stream> {
        let shared = Arc::new(ConnShared::new(None, None));
        TimedIo::new(
            Stream::Tcp(server),
            Bytes::new(),
            shared,
            ConnConf::default(),
        )
    }

    /// A large body sent from its file leaves its socket with a cap on the bytes held
    /// unsent; a small response does not set it.
    #[tokio::test]
    async fn large_bodies_cap_what_the_kernel_holds_unsent() {
        use tokio::io::AsyncWriteExt;
        let lowat = |s: &Stream| socket2::SockRef::from(tcp(s)).tcp_notsent_lowat().unwrap();
        let body = Bytes::from(vec![b'x'; CORK_BODY]);
        let _registration = registered(&body);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut io = timed_io(server);
        let default = lowat(&io.stream);
        assert_ne!(default, LARGE_BODY_UNSENT);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(lowat(&io.stream), default, "a small response");
        let sent = io.write_vectored(&[io::IoSlice::new(&body)]).await.unwrap();
        assert!(sent > 0);
        assert_eq!(lowat(&io.stream), LARGE_BODY_UNSENT);
    }

    /// A body sent with sendfile to a client that keeps up is sent in turns: after
    /// SENDFILE_TURN bytes the write waits once (yields) before going on. Both socket
    /// buffers are large, so without turns one call takes more than a turn.
    #[tokio::test]
    async fn sendfile_takes_turns_with_the_other_connections() {
        use std::io::Read;
        let body = Bytes::from(
            (0..8 * SENDFILE_TURN + 100_000)
                .map(|i| i as u8)
                .collect::<Vec<_>>(),
        );
        let _registration = registered(&body);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let len = body.len();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let c =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            c.set_recv_buffer_size(16 << 20).unwrap();
            c.connect(&addr.into()).unwrap();
            let c = std::net::TcpStream::from(c);
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.take(len as u64).read_to_end(&mut got).unwrap();
            got
        });
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(16 << 20)
            .unwrap();
        let server = tokio::net::TcpStream::from_std(server).unwrap();
        let mut io = timed_io(server);
        let (mut sent, mut since_wait, mut most) = (0, 0, 0);
        while sent < len {
            let slice = [io::IoSlice::new(&body[sent..])];
            let r = std::future::poll_fn(|cx| {
                Poll::Ready(Pin::new(&mut io).poll_write_vectored(cx, &slice))
            })
            .await;
            match r {
                Poll::Ready(r) => {
                    let n = r.unwrap();
                    sent += n;
                    since_wait += n;
                    most = most.max(since_wait);
                }
                Poll::Pending => {
                    since_wait = 0;
                    tokio::task::yield_now().await;
                }
            }
        }
        assert!(most <= SENDFILE_TURN, "{most} bytes without a pause");
        assert!(reader.join().unwrap() == body, "the client got other bytes");
    }

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

    /// Feeds `data` in pieces of `step` bytes and returns the count of complete requests.
    fn complete_after(data: &[u8], step: usize) -> (u32, Frame) {
        let mut f = Framing::default();
        for piece in data.chunks(step) {
            f.feed(piece);
        }
        (f.complete, f.state)
    }

    #[test]
    fn framing_counts_bodies_whatever_the_read_sizes() {
        let cases: [(&[u8], u32); 6] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1),
            // Leading empty lines are not a request; LF-only lines are lines.
            (b"\r\nGET / HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\r\n\r\n", 2),
            (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", 0),
            (
                b"POST / HTTP/1.1\r\ncontent-length:5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
                2,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                  5;x=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
                1,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                0,
            ),
        ];
        for (data, want) in cases {
            for step in [1, 2, 7, data.len()] {
                let (n, state) = complete_after(data, step);
                assert_eq!(n, want, "{} by {step}", String::from_utf8_lossy(data));
                assert_ne!(state, Frame::Lost);
            }
        }
    }

    #[test]
    fn framing_gives_up_on_what_it_cannot_follow() {
        let long = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}5\r\n\r\n",
            " ".repeat(LINE_CAP)
        );
        for data in [
            long.as_bytes(),
            b"POST / HTTP/1.1\r\nContent-Length: five\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let mut f = Framing::default();
            f.feed(data);
            assert_eq!(f.state, Frame::Lost);
            // Lost: every body counts as arrived, the body timeout never fires.
            assert!(f.arrived(5));
        }
    }

    #[test]
    fn a_parked_connections_state_comes_back_on_resume() {
        let peer = Some(SocketAddr::from(([203, 0, 113, 9], 40000)));
        let local = Some(SocketAddr::from(([127, 0, 0, 1], 443)));
        for pending in [vec![], vec![1, 0]] {
            let shared = ConnShared {
                https: true,
                ..ConnShared::new(peer, local)
            };
            shared.requests.store(7, Ordering::Release);
            shared.content_length_lines.store(2, Ordering::Release);
            shared.set_phase(Phase::Idle);
            shared
                .head_content_length_lines
                .lock()
                .unwrap()
                .extend(&pending);
            let back = ConnShared::resume(shared.park());
            assert_eq!((back.peer, back.local, back.https), (peer, local, true));
            assert_eq!(back.requests.load(Ordering::Acquire), 7);
            assert_eq!(back.phase(), Phase::Idle);
            let heads: Vec<u32> = (0..pending.len())
                .map(|_| back.take_content_length_lines())
                .collect();
            assert_eq!(heads, pending);
            assert_eq!(back.take_content_length_lines(), 2, "then the raw count");
        }
    }

    #[test]
    fn content_length_lines_are_counted_per_head() {
        // A plain GET and a smuggling attempt read together: each head keeps its own
        // count, so the second is judged by its own Content-Length line.
        let data: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
            0\r\n\r\n\
            POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nx\ncontent-length: 1\r\n";
        for step in [1, 5, data.len()] {
            let shared = ConnShared::new(None, None);
            let mut f = Framing::default();
            for piece in data.chunks(step) {
                f.feed(piece);
                f.publish(&shared);
            }
            // Body bytes that look like a header line are not counted.
            let counts: Vec<u32> = (0..3).map(|_| shared.take_content_length_lines()).collect();
            assert_eq!(counts, [0, 1, 1], "by {step}");
        }
        // Once lost, the raw count stands in, conservatively.
        let shared = ConnShared::new(None, None);
        let mut f = Framing::default();
        f.feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: five\r\n");
        f.publish(&shared);
        assert_eq!(f.state, Frame::Lost);
        assert_eq!(shared.take_content_length_lines(), 2);
    }
}
