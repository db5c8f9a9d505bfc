//! Drills against httpd-core: HTTP/2 abuse (rapid reset, CONTINUATION flood, oversized
//! header blocks, window starvation), slow clients (slow body, slow read) and many idle
//! connections. Each drill attacks one connection, then checks that the attack ended in a
//! refusal (GOAWAY, RST_STREAM, an error status or a closed connection), that a fresh,
//! well-behaved client is still served (HTTP/1.1 and HTTP/2), and that the server's memory
//! stayed bounded. Each prints what it tried and what was lost (which must be nothing).
//!
//! HTTP/2 frames are written by hand (RFC 9113 §4: a 9-byte header, then the payload;
//! HPACK literals without Huffman coding, RFC 7541 §6.2.2), so the drills can send what no
//! well-behaved client library would.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use httpd_blackbox::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
/// RST_STREAM / GOAWAY error code CANCEL.
const CANCEL: u32 = 0x8;

/// A running httpd-core with h2c enabled, a docroot holding `hello.txt` and a 4 MiB
/// `big.bin`, and `/cgi-bin/count.py`, a CGI script that reads its whole body.
struct Core {
    server: Server,
    addr: SocketAddr,
    _sb: Sandbox,
}

/// Starts the server with `extra` config lines, checks that a fresh client is served, and
/// returns it with its RSS in KiB.
fn start(extra: &str) -> (Core, u64) {
    let sb = Sandbox::new();
    sb.write("www/hello.txt", "hello, world\n");
    sb.write("www/big.bin", vec![b'x'; 4 << 20]);
    let cgi = sb.write(
        "cgi/count.py",
        "#!/usr/bin/env python3\nimport sys\ndata = sys.stdin.buffer.read()\n\
         print('Content-Type: text/plain')\nprint()\nprint(len(data))\n",
    );
    let chmod = Command::new("chmod").arg("755").arg(&cgi).status().unwrap();
    assert!(chmod.success());
    let conf = sb.write(
        "httpd.conf",
        format!(
            "Listen 127.0.0.1:0\nDocumentRoot \"{}\"\nScriptAlias /cgi-bin/ \"{}/\"\n\
             Protocols h2c http/1.1\n{extra}",
            sb.path().join("www").display(),
            sb.path().join("cgi").display()
        ),
    );
    let (server, addr) = start_core(sb.path(), &conf);
    let core = Core {
        server,
        addr,
        _sb: sb,
    };
    core.assert_healthy("before");
    let rss = core.rss_kib();
    (core, rss)
}

impl Core {
    /// The server's resident set size in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.pid()))
            .expect("server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    /// A fresh well-behaved client gets its file over HTTP/1.1 and over HTTP/2; panics with
    /// `when` otherwise.
    fn assert_healthy(&self, when: &str) {
        let r = raw_exchange(
            self.addr,
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        );
        assert!(
            r.starts_with("HTTP/1.1 200") && r.ends_with("hello, world\n"),
            "{when}: HTTP/1.1 client not served: {r:?}"
        );
        let mut c = H2::connect(self.addr);
        c.send(&frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &request_block("/hello.txt", &[]),
        ));
        let seen = c.read_until(Duration::from_secs(10), |s| s.ended(1));
        assert_eq!(
            seen.status.get(&1).map(String::as_str),
            Some("200"),
            "{when}: HTTP/2 client not served: {seen:?}"
        );
        assert_eq!(seen.data_bytes, 13, "{when}: HTTP/2 body: {seen:?}");
    }

    /// Checks that a fresh client is served and the memory bound (growth over `before`),
    /// and prints the drill's verdict line.
    fn report(&self, drill: &str, tried: &str, outcome: &str, before_kib: u64, bound_mib: u64) {
        self.assert_healthy(&format!("after {drill}"));
        let after = self.rss_kib();
        let grown = after.saturating_sub(before_kib);
        eprintln!(
            "drill {drill}: tried {tried}; server: {outcome}; RSS {before_kib} -> {after} KiB; \
             lost: 0 requests of the well-behaved clients"
        );
        assert!(
            grown < bound_mib << 10,
            "{drill}: RSS grew by {grown} KiB (bound {bound_mib} MiB)"
        );
    }
}

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame length");
    assert!(len < 1 << 24);
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits.
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// A literal header field without indexing, with a literal name.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    hpack_str(out, name);
    hpack_str(out, value);
}

/// The header block of `GET path` (static-table :method GET, :scheme http; literal
/// :path and :authority) plus `extra` fields.
fn request_block(path: &str, extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    hpack_int(&mut b, 0x00, 4, 4); // :path, literal without indexing, indexed name 4
    hpack_str(&mut b, path.as_bytes());
    hpack_int(&mut b, 0x00, 4, 1); // :authority
    hpack_str(&mut b, b"localhost");
    for (name, value) in extra {
        literal(&mut b, name, value);
    }
    b
}

/// What the server sent on one connection.
#[derive(Debug, Default)]
struct Seen {
    frames: usize,
    /// The GOAWAY error code, if one came.
    goaway: Option<u32>,
    /// Streams the server reset, with the error code.
    resets: Vec<(u32, u32)>,
    /// Response status per stream (decoded only when sent as a literal or a static index).
    status: std::collections::HashMap<u32, String>,
    /// Streams whose response ended (END_STREAM seen).
    finished: Vec<u32>,
    data_bytes: usize,
    pings: usize,
    /// The server closed the connection (EOF or reset).
    closed: bool,
}

impl Seen {
    fn ended(&self, stream: u32) -> bool {
        self.finished.contains(&stream) || self.resets.iter().any(|r| r.0 == stream)
    }

    fn refused(&self) -> bool {
        self.goaway.is_some() || self.closed
    }

    fn outcome(&self) -> String {
        let mut o = match self.goaway {
            Some(code) => format!("GOAWAY (error code {code:#x})"),
            None => "no GOAWAY".into(),
        };
        if !self.resets.is_empty() {
            o += &format!(", {} RST_STREAM", self.resets.len());
        }
        if self.closed {
            o += ", connection closed";
        }
        o + &format!(", {} frames in all", self.frames)
    }
}

/// The :status of a response header block, when hyper encoded it as a static-table index
/// (200, 204, 206, 304, 400, 404, 500) or as a literal with the :status name.
fn status_of(block: &[u8]) -> Option<String> {
    let first = *block.first()?;
    let indexed = [
        (0x88, "200"),
        (0x89, "204"),
        (0x8a, "206"),
        (0x8b, "304"),
        (0x8c, "400"),
        (0x8d, "404"),
        (0x8e, "500"),
    ];
    if let Some((_, s)) = indexed.iter().find(|(b, _)| *b == first) {
        return Some((*s).to_string());
    }
    // Literal with name index 8 (:status) in any of the literal forms.
    let idx = match first {
        0x48 => 8,
        0x08 | 0x18 => first & 0x0f,
        _ => return None,
    };
    (idx == 8 && block.len() >= 5 && block[1] == 3)
        .then(|| String::from_utf8_lossy(&block[2..5]).into_owned())
}

/// A raw HTTP/2 client connection: the writer half here, a reader thread filling `seen`.
struct H2 {
    stream: TcpStream,
    seen: Arc<Mutex<Seen>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl H2 {
    /// Connects, sends the preface and SETTINGS (with `settings` pairs), and starts reading.
    /// The reader ACKs the server's SETTINGS, and its PINGs when `answer_pings`.
    fn connect_with(addr: SocketAddr, settings: &[(u16, u32)], answer_pings: bool) -> H2 {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &payload));
        (&stream).write_all(&hello).expect("send preface");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = {
            let mut rd = stream.try_clone().unwrap();
            let mut wr = stream.try_clone().unwrap();
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || read_frames(&mut rd, &mut wr, &seen, answer_pings))
        };
        H2 {
            stream,
            seen,
            reader: Some(reader),
        }
    }

    fn connect(addr: SocketAddr) -> H2 {
        H2::connect_with(addr, &[], true)
    }

    /// Sends bytes; false once the server has closed the connection.
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Waits until `done` holds for what was seen, the connection closes, or `limit`.
    fn read_until(&self, limit: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + limit;
        loop {
            {
                let s = self.seen.lock().unwrap();
                if done(&s) || s.closed || Instant::now() > deadline {
                    return Seen {
                        frames: s.frames,
                        goaway: s.goaway,
                        resets: s.resets.clone(),
                        status: s.status.clone(),
                        finished: s.finished.clone(),
                        data_bytes: s.data_bytes,
                        pings: s.pings,
                        closed: s.closed,
                    };
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for H2 {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn read_frames(rd: &mut TcpStream, wr: &mut TcpStream, seen: &Mutex<Seen>, answer_pings: bool) {
    let mut head = [0u8; 9];
    let mut block: Vec<u8> = Vec::new();
    loop {
        if rd.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if rd.read_exact(&mut payload).is_err() {
            break;
        }
        let mut s = seen.lock().unwrap();
        s.frames += 1;
        match kind {
            DATA => {
                s.data_bytes += len;
                if flags & END_STREAM != 0 {
                    s.finished.push(id);
                }
            }
            HEADERS | CONTINUATION => {
                if kind == HEADERS {
                    block.clear();
                    // Skip padding and priority fields if flagged.
                    let mut p = &payload[..];
                    if flags & 0x8 != 0 && !p.is_empty() {
                        let pad = p[0] as usize;
                        p = &p[1..p.len().saturating_sub(pad)];
                    }
                    if flags & 0x20 != 0 && p.len() >= 5 {
                        p = &p[5..];
                    }
                    block.extend_from_slice(p);
                    if flags & END_STREAM != 0 {
                        s.finished.push(id);
                    }
                } else {
                    block.extend_from_slice(&payload);
                }
                if flags & END_HEADERS != 0 {
                    if let Some(st) = status_of(&block) {
                        s.status.entry(id).or_insert(st);
                    }
                }
            }
            RST_STREAM if len >= 4 => {
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                s.resets.push((id, code));
            }
            SETTINGS if flags & ACK == 0 => {
                drop(s);
                let _ = wr.write_all(&frame(SETTINGS, ACK, 0, &[]));
            }
            PING if flags & ACK == 0 => {
                s.pings += 1;
                drop(s);
                if answer_pings {
                    let _ = wr.write_all(&frame(PING, ACK, 0, &payload));
                }
            }
            GOAWAY if len >= 8 => {
                s.goaway = Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            _ => {}
        }
    }
    seen.lock().unwrap().closed = true;
}

#[test]
fn h2_rapid_reset_ends_in_goaway() {
    let (core, before) = start("");
    let mut c = H2::connect(core.addr);
    // CVE-2023-44487: open a stream and cancel it at once, as fast as the socket takes it.
    let mut batch = Vec::new();
    let (mut sent, total) = (0u32, 20_000u32);
    while sent < total {
        batch.clear();
        for _ in 0..500 {
            let id = 2 * sent + 1;
            batch.extend(frame(
                HEADERS,
                END_STREAM | END_HEADERS,
                id,
                &request_block("/hello.txt", &[]),
            ));
            batch.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
            sent += 1;
        }
        if !c.send(&batch) || c.seen.lock().unwrap().refused() {
            break;
        }
    }
    let seen = c.read_until(Duration::from_secs(10), Seen::refused);
    assert!(
        seen.refused(),
        "{sent} HEADERS+RST_STREAM pairs and the server never refused: {seen:?}"
    );
    core.report(
        "h2-rapid-reset",
        &format!("{sent} of {total} HEADERS+RST_STREAM pairs on one connection"),
        &seen.outcome(),
        before,
        64,
    );
}

#[test]
fn h2_continuation_flood_ends_in_goaway() {
    let (core, before) = start("");
    let mut c = H2::connect(core.addr);
    // A HEADERS frame without END_HEADERS, then CONTINUATION frames that never end, each
    // 16 KiB of small literal fields, up to 64 MiB.
    c.send(&frame(
        HEADERS,
        END_STREAM,
        1,
        &request_block("/hello.txt", &[]),
    ));
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 16_000 {
        literal(
            &mut fields,
            format!("x-flood-{i}").as_bytes(),
            b"aaaaaaaaaaaaaaaa",
        );
        i += 1;
    }
    let cont = frame(CONTINUATION, 0, 1, &fields);
    let (mut sent, limit) = (0usize, 64usize << 20);
    while sent < limit {
        if !c.send(&cont) || c.seen.lock().unwrap().refused() {
            break;
        }
        sent += cont.len();
    }
    let seen = c.read_until(Duration::from_secs(10), Seen::refused);
    assert!(
        seen.refused(),
        "{} KiB of CONTINUATION accepted without a refusal: {seen:?}",
        sent >> 10
    );
    assert!(sent < limit, "the whole 64 MiB flood was read: {seen:?}");
    core.report(
        "h2-continuation-flood",
        &format!(
            "endless CONTINUATION frames; {} KiB written before the server stopped reading",
            sent >> 10
        ),
        &seen.outcome(),
        before,
        32,
    );
}

#[test]
fn h2_oversized_header_block_is_refused() {
    let (core, before) = start("");
    let mut c = H2::connect(core.addr);
    // One complete request whose header block decodes to 1 MiB: 16 fields of 64 KiB,
    // split into 16 KiB frames (the default SETTINGS_MAX_FRAME_SIZE).
    let value = vec![b'v'; 64 << 10];
    let names: Vec<String> = (0..16).map(|i| format!("x-big-{i}")).collect();
    let fields: Vec<(&[u8], &[u8])> = names
        .iter()
        .map(|n| (n.as_bytes(), value.as_slice()))
        .collect();
    let block = request_block("/hello.txt", &fields);
    let chunks: Vec<&[u8]> = block.chunks(16 << 10).collect();
    let mut bytes = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() {
            END_HEADERS
        } else {
            0
        };
        bytes.extend(if i == 0 {
            frame(HEADERS, END_STREAM | last, 1, chunk)
        } else {
            frame(CONTINUATION, last, 1, chunk)
        });
    }
    c.send(&bytes);
    let seen = c.read_until(Duration::from_secs(10), |s| s.ended(1) || s.refused());
    let status = seen.status.get(&1).cloned();
    let refused =
        seen.refused() || seen.resets.iter().any(|r| r.0 == 1) || status.as_deref() == Some("431");
    assert!(
        refused,
        "a 1 MiB header block was not refused (status {status:?}): {seen:?}"
    );
    core.report(
        "h2-oversized-headers",
        &format!(
            "a {} KiB header block in {} frames",
            block.len() >> 10,
            chunks.len()
        ),
        &format!("status {status:?}; {}", seen.outcome()),
        before,
        32,
    );
}

#[test]
fn h2_window_starvation_is_bounded() {
    // The client opens 200 streams for a 4 MiB file with a flow-control window of 0, so the
    // server can send no DATA, and never answers PINGs: the server must keep the buffered
    // responses bounded and end the connection by itself. (It does so through its
    // keep-alive PING: 5 s interval + 20 s timeout, so this drill takes about 25 s; the
    // others run beside it.)
    let (core, before) = start("KeepAliveTimeout 1\n");
    let mut c = H2::connect_with(core.addr, &[(0x4, 0)], false);
    let mut bytes = Vec::new();
    let streams = 200u32;
    for n in 0..streams {
        bytes.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            2 * n + 1,
            &request_block("/big.bin", &[]),
        ));
    }
    assert!(c.send(&bytes), "the server refused the streams outright");
    // Give the server time to produce (and buffer) what it can, then check its health and
    // its memory while the starving connection is open.
    let opened = c.read_until(Duration::from_secs(3), |s| s.status.len() as u32 >= streams);
    core.assert_healthy("while starved");
    let during = core.rss_kib();
    let seen = c.read_until(Duration::from_secs(40), Seen::refused);
    assert_eq!(seen.data_bytes, 0, "DATA sent past a zero window: {seen:?}");
    assert!(
        seen.refused(),
        "a starved connection was kept for 40 s: {seen:?}"
    );
    core.report(
        "h2-window-starvation",
        &format!(
            "{streams} streams for a 4 MiB file with a zero window, PINGs unanswered \
             ({} response heads, RSS {during} KiB while starved)",
            opened.status.len()
        ),
        &seen.outcome(),
        before,
        128,
    );
}

/// A kept-open HTTP/1.1 connection with one request sent.
fn send_head(addr: SocketAddr, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).expect("send head");
    s
}

#[test]
fn slow_body_is_cut_off() {
    // The CGI script reads its whole body, which is trickled at one byte every 200 ms:
    // `RequestReadTimeout body=2,MinRate=500` (Apache's defence) must end the upload.
    let (core, before) = start("RequestReadTimeout header=2 body=2,MinRate=500\nTimeout 2\n");
    let mut s = send_head(
        core.addr,
        "POST /cgi-bin/count.py HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
    );
    let t = Instant::now();
    let mut sent = 0;
    while sent < 1000 && t.elapsed() < Duration::from_secs(30) {
        if s.write_all(b"a").is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
        if sent % 10 == 0 {
            // Probe without blocking: has the server answered or closed?
            s.set_nonblocking(true).unwrap();
            let mut probe = [0u8; 1];
            let r = s.peek(&mut probe);
            s.set_nonblocking(false).unwrap();
            if !matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                break;
            }
        }
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        sent < 1000,
        "a 1000-byte body trickled over {:?} was read to the end: {answer:?}",
        t.elapsed()
    );
    core.report(
        "slow-body",
        &format!(
            "a 1000-byte body at 5 bytes/s; {sent} bytes sent in {:.1} s",
            t.elapsed().as_secs_f64()
        ),
        &format!(
            "answered {:?} and closed",
            answer.lines().next().unwrap_or("nothing")
        ),
        before,
        32,
    );
}

#[test]
fn slow_read_is_cut_off() {
    // A client that asks for 4 MiB and never reads: once the socket buffers are full the
    // server's writes stall, and `Timeout 2` must end the connection.
    let (core, before) = start("Timeout 2\n");
    let mut s = send_head(core.addr, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_secs(1));
    core.assert_healthy("while a client does not read");
    // Wait past the write timeout, then drain: the server must have closed by now.
    std::thread::sleep(Duration::from_secs(5));
    let t = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(n) => got += n,
        }
        if t.elapsed() > Duration::from_secs(20) {
            break false;
        }
    };
    assert!(
        closed,
        "the connection is still open after 20 s of draining"
    );
    assert!(
        got < 4 << 20,
        "the whole 4 MiB arrived: the stalled write was never cut off"
    );
    core.report(
        "slow-read",
        "GET of a 4 MiB file, then no reads for 6 s",
        &format!("closed after {} KiB", got >> 10),
        before,
        32,
    );
}

/// Raises this process's soft open-file limit to its hard limit (children inherit it).
fn raise_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let hard = line.split_whitespace().nth(4).unwrap().to_string();
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={hard}:{hard}"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit failed");
    hard.parse().unwrap_or(u64::MAX)
}

#[test]
fn two_thousand_idle_connections_while_others_are_served() {
    let limit = raise_nofile();
    let idle = 2000usize.min(limit.saturating_sub(200) as usize / 2);
    let (core, before) = start("KeepAliveTimeout 60\n");
    let mut conns = Vec::with_capacity(idle);
    for i in 0..idle {
        let mut s = TcpStream::connect(core.addr)
            .unwrap_or_else(|e| panic!("connection {i} of {idle} refused: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        conns.push(s);
        if i % 500 == 499 {
            core.assert_healthy(&format!("with {} idle connections", i + 1));
        }
    }
    // Every idle connection got its answer and stays open.
    let mut buf = [0u8; 512];
    for (i, s) in conns.iter_mut().enumerate() {
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "idle connection {i} got {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    for _ in 0..20 {
        core.assert_healthy(&format!("with {idle} idle connections"));
    }
    // And they are still usable: a second request on every tenth.
    for (i, s) in conns.iter_mut().enumerate().step_by(10) {
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "idle connection {i} was dropped: {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    core.report(
        "idle-connections",
        &format!("{idle} kept-alive connections held open, 20 fresh clients in between"),
        &format!("all {idle} still open and answering"),
        before,
        128,
    );
}
