//! Fuzz check for `httpd_core::proxy_protocol`: a header parses the same whether it
//! arrives whole or a few bytes at a time, nothing after it changes it, and what it says
//! matches its bytes (TCP4 is an IPv4 client, LOCAL has none, only commands LOCAL and
//! PROXY exist).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use httpd_core::proxy_protocol::{self, ProxyHeader};
use tokio::io::{AsyncRead, ReadBuf};

use super::block_on;

pub fn check(data: &[u8]) {
    let whole = proxy_protocol::parse(data);
    if let Ok(Some((header, used))) = &whole {
        let used = *used;
        assert!(
            used > 0 && used <= data.len(),
            "used {used} of {}",
            data.len()
        );
        // Nothing after the header changes it.
        let (alone, alone_used) = proxy_protocol::parse(&data[..used])
            .expect("the header alone parses")
            .expect("the header alone is complete");
        assert_eq!(
            (&alone.source, &alone.alpn, alone.ssl, alone_used),
            (&header.source, &header.alpn, header.ssl, used)
        );
        // No prefix decides early: a socket may deliver the header in any pieces.
        for cut in 0..used {
            assert!(
                matches!(proxy_protocol::parse(&data[..cut]), Ok(None)),
                "a prefix of {cut} bytes of a {used}-byte header was decided"
            );
        }
        check_meaning(&data[..used], header);
    }
    // The reader the connection uses, fed a few bytes at a time, agrees with `parse`.
    let step = data.len() % 7 + 1;
    let read = block_on(proxy_protocol::read(&mut Trickle { data, step }));
    match (&whole, &read) {
        (Ok(Some((h, used))), Ok(r)) => {
            assert_eq!((&r.source, &r.alpn, r.ssl), (&h.source, &h.alpn, h.ssl));
            // What was read past the header is handed on, in order.
            assert!(
                data[*used..].starts_with(&r.rest),
                "the bytes after the header"
            );
        }
        (Ok(None) | Err(_), Err(_)) => {}
        _ => panic!("parse said {whole:?}, read in pieces of {step} said {read:?}"),
    }
}

/// What the header says agrees with its bytes.
fn check_meaning(header_bytes: &[u8], h: &ProxyHeader) {
    if let Some(line) = header_bytes.strip_prefix(b"PROXY ") {
        let line = std::str::from_utf8(line).expect("a v1 header is ASCII");
        let proto = line.split([' ', '\r']).next().unwrap_or("");
        match proto {
            "TCP4" => assert!(h.source.is_some_and(|s| s.is_ipv4()), "{line:?}"),
            "TCP6" => assert!(h.source.is_some_and(|s| s.is_ipv6()), "{line:?}"),
            "UNKNOWN" => assert!(h.source.is_none(), "{line:?}"),
            other => panic!("v1 protocol {other:?} accepted"),
        }
        assert!(h.alpn.is_none() && !h.ssl);
        return;
    }
    let ver_cmd = header_bytes[12];
    assert_eq!(ver_cmd >> 4, 2, "v2 version");
    match ver_cmd & 0x0f {
        0 => assert!(h.source.is_none(), "LOCAL has no client"),
        1 => match header_bytes[13] >> 4 {
            1 => assert!(h.source.is_some_and(|s| s.is_ipv4())),
            2 => assert!(h.source.is_some_and(|s| s.is_ipv6())),
            _ => assert!(h.source.is_none()),
        },
        cmd => panic!("v2 command {cmd} accepted"),
    }
}

/// A reader that hands out at most `step` bytes per read, like a slow socket.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.step.min(this.data.len()).min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}
