//! Headless Chromium driven over the Chrome DevTools Protocol (a WebSocket, through the
//! `tungstenite` crate), for tests that use a page the way a person would. Debian's
//! chromium: no downloads, no npm.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// A headless Chromium in its own process group; the whole group is killed on drop.
pub struct Chromium {
    child: Child,
    profile: tempfile::TempDir,
}

/// Where Debian's chromium is, or None (the caller skips, saying why).
pub fn find() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

impl Chromium {
    pub fn launch(exe: &std::path::Path) -> Chromium {
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new(exe)
            .args(httpd_blackbox::CHROMIUM_HEADLESS)
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn chromium");
        Chromium { child, profile }
    }

    /// Connects to the browser endpoint Chromium writes to `DevToolsActivePort` (port 0
    /// means it picked a free one) and opens a page on `url` in a session of its own.
    pub fn open(&mut self, url: &str) -> Page {
        let file = self.profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let (port, path) = loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(p), Some(path)) = (lines.next(), lines.next()) {
                break (p.trim().to_string(), path.trim().to_string());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("chromium exited at start: {st}");
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no DevToolsActivePort"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect devtools");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("devtools websocket handshake");
        let mut page = Page {
            ws,
            next_id: 0,
            session: None,
        };
        let target = page.call("Target.createTarget", json!({ "url": url }));
        let target = target["targetId"].as_str().expect("targetId").to_string();
        let attached = page.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        page.session = Some(attached["sessionId"].as_str().expect("sessionId").into());
        page
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The browser, its zygotes, renderers and GPU/utility processes: one group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// One page (target) of the browser, in a flattened DevTools session.
pub struct Page {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
}

/// A socket call cut short by a signal (EINTR).
fn interrupted(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if e.kind() == std::io::ErrorKind::Interrupted)
}

impl Page {
    /// Sends one command and returns its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Sends one command: its result, or the protocol error.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        // A signal (a child process's exit) can interrupt a socket call: nothing is lost
        // (the message is queued, a partial frame stays buffered), so it is made again.
        let mut sent = self.ws.send(Message::text(msg.to_string()));
        while sent.as_ref().is_err_and(interrupted) {
            sent = self.ws.flush();
        }
        sent.expect("devtools send");
        loop {
            let m = match self.ws.read() {
                Err(e) if interrupted(&e) => continue,
                m => m.expect("devtools read"),
            };
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("devtools JSON");
            if v["id"] == json!(id) {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value (JSON); the
    /// protocol error instead while the page is between documents (a reload).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.try_call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        match r {
            Ok(r) => r["result"]["value"].clone(),
            Err(e) => e,
        }
    }

    /// Evaluates `condition` until it is `true`; panics after `limit`, showing the value of
    /// `show` then (what the page has instead).
    pub fn wait_for(&mut self, condition: &str, show: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.eval(condition) != json!(true) {
            if Instant::now() > deadline {
                panic!(
                    "not within {limit:?}: {condition}\n{show} = {}",
                    self.eval(show)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
