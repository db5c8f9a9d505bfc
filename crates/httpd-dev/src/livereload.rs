//! The live-reload event stream: a tiny Server-Sent Events listener of our own (core stays
//! generic: it only injects the script with `Substitute`). Browsers connect from the page
//! cross-origin, hence `Access-Control-Allow-Origin`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::error::Error;

/// The connected event-stream clients.
#[derive(Clone, Default)]
pub struct Hub {
    clients: Arc<Mutex<Vec<TcpStream>>>,
}

impl Hub {
    /// Binds the event listener on `ip` (port 0) and serves it on a thread.
    pub fn start(ip: std::net::IpAddr) -> Result<(Hub, SocketAddr), Error> {
        let listener = TcpListener::bind((ip, 0))
            .map_err(Error::io("cannot bind the live-reload listener"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("live-reload listener"))?;
        let hub = Hub::default();
        let h = hub.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let h = h.clone();
                std::thread::spawn(move || h.accept(conn));
            }
        });
        Ok((hub, addr))
    }

    fn accept(&self, mut conn: TcpStream) {
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let events = head.starts_with(b"GET /events");
        let resp: &[u8] = if events {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
              Access-Control-Allow-Origin: *\r\n\r\nretry: 500\n\n"
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        };
        if conn.write_all(resp).is_ok() && events {
            self.clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }

    /// Sends one event (`reload`, or `css` with the changed stylesheet path) to every
    /// client, dropping those that went away.
    pub fn send(&self, event: &str, data: &str) {
        let msg = format!("event: {event}\ndata: {data}\n\n");
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain_mut(|c| c.write_all(msg.as_bytes()).is_ok());
    }
}

/// The script injected into HTML pages: reload on `reload`, swap stylesheets on `css`.
pub fn script(events_port: u16) -> String {
    format!(
        r#"(function () {{
  var es = new EventSource(location.protocol.replace("https", "http") + "//" + location.hostname + ":{events_port}/events");
  // Tells tools (and the browser test) that changes will now reach this page.
  es.addEventListener("open", function () {{ window.__httpdDevLive = true; }});
  es.addEventListener("reload", function () {{ location.reload(); }});
  es.addEventListener("css", function (e) {{
    var links = document.querySelectorAll('link[rel="stylesheet"]');
    if (!links.length) {{ location.reload(); return; }}
    links.forEach(function (l) {{
      var u = new URL(l.href); u.searchParams.set("_r", Date.now()); l.href = u.toString();
    }});
  }});
}})();
"#
    )
}
