//! `--redirect-http`: the one bit of HTTP httpd-tls speaks. Every request on the plain
//! listener gets a 301 to the same host and path over https (RFC 9110 §15.4.2), the usual
//! port-80 job; a request without a usable Host gets a 400.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest request head read before answering.
const MAX_HEAD: usize = 8 * 1024;

/// Answers one connection and closes it.
pub async fn serve(mut stream: TcpStream, https_port: u16, read_timeout: Duration) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let read = tokio::time::timeout(read_timeout, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() || head.is_empty() {
        return;
    }
    let response = match location(&head, https_port) {
        Some(url) => {
            let body = format!("<a href=\"{url}\">Moved Permanently</a>\n");
            format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {url}\r\n\
                 Content-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        None => {
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        }
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The https:// URL for a request head, or `None` when it has no valid Host or target.
pub fn location(head: &[u8], https_port: u16) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let (_method, target) = (request.next()?, request.next()?);
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    let host = lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("host").then(|| value.trim())
    })?;
    let valid = |c: char| c.is_ascii_alphanumeric() || "-.[]:_".contains(c);
    if host.is_empty() || !host.chars().all(valid) {
        return None;
    }
    // Drop the plain port (host:80, [::1]:8080); keep the brackets of an IPv6 literal.
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    Some(format!("https://{name}{port}{target}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let table: &[(&str, u16, Option<&str>)] = &[
            (
                "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
                443,
                Some("https://example.com/a?b=1"),
            ),
            (
                "GET / HTTP/1.1\r\nhost: example.com:80\r\n\r\n",
                8443,
                Some("https://example.com:8443/"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
                443,
                Some("https://[::1]/"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n",
                443,
                Some("https://[::1]/"),
            ),
            ("GET / HTTP/1.1\r\n\r\n", 443, None),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 443, None),
            ("GET / HTTP/1.1\r\nHost: evil\"><\r\n\r\n", 443, None),
            ("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 443, None),
            ("garbage", 443, None),
        ];
        for (head, port, want) in table {
            assert_eq!(
                location(head.as_bytes(), *port).as_deref(),
                *want,
                "{head:?}"
            );
        }
    }
}
