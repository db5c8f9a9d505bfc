//! The access log: Apache's LogFormat language, compiled once and rendered per request,
//! and the sinks lines go to (a file opened for append, or a `|command` the server starts
//! and restarts). Each line is written with a single write, so lines are never split or
//! interleaved (a pipe write of at most PIPE_BUF bytes is atomic).
//!
//! Supported: `%%` `%a` `%A` `%b` `%B` `%D` `%h` `%H` `%I` `%l` `%m` `%O` `%p` `%P` `%q`
//! `%r` `%s` `%>s` `%<s` `%t` `%{fmt}t` `%T` `%{ms|us|s}T` `%u` `%U` `%v` `%V` `%X`
//! `%{Name}i` `%{Name}o` `%{Name}e` (always `-`); `%{…}C` (a cookie). The nickname
//! `json` writes one JSON object per line instead.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::error::Error;

/// One compiled LogFormat.
#[derive(Clone, Debug)]
pub struct Format {
    items: Vec<Item>,
    json: bool,
    /// Request headers the format reads, lowercase, in the order of `Entry::req_headers`.
    pub req_headers: Vec<String>,
    pub resp_headers: Vec<String>,
}

#[derive(Clone, Debug)]
enum Item {
    Lit(String),
    Field(char, Option<String>),
}

/// Everything a log line can say about one request, captured when it completes.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub start: Option<SystemTime>,
    /// The request line; None for a request that could not be parsed (`%r` is `-`).
    pub request_line: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub protocol: String,
    pub status: u16,
    pub body_bytes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
    pub user: Option<String>,
    pub server_name: String,
    pub host_header: Option<String>,
    /// (lowercase name, value) of the headers the formats read.
    pub req_headers: Vec<(String, Option<String>)>,
    pub resp_headers: Vec<(String, Option<String>)>,
    pub keep_alive: bool,
}

impl Format {
    /// Compiles a LogFormat string (or the `json` nickname's marker).
    pub fn compile(spec: &str) -> Format {
        let mut f = Format {
            items: Vec::new(),
            json: spec == "json",
            req_headers: Vec::new(),
            resp_headers: Vec::new(),
        };
        if f.json {
            f.req_headers = vec!["referer".into(), "user-agent".into()];
            return f;
        }
        let mut lit = String::new();
        let mut chars = spec.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => lit.push('\n'),
                    Some('t') => lit.push('\t'),
                    Some(o) => lit.push(o),
                    None => lit.push('\\'),
                }
                continue;
            }
            if c != '%' {
                lit.push(c);
                continue;
            }
            // Modifiers: status lists (`%400,501{User-agent}i`), `!`, `<`, `>` (no internal
            // redirects change the status here, so `%<s` and `%>s` agree).
            while let Some(&m) = chars.peek() {
                match m {
                    '<' | '>' | '!' | ',' | '0'..='9' => {
                        chars.next();
                    }
                    _ => break,
                }
            }
            let mut param = None;
            if chars.peek() == Some(&'{') {
                chars.next();
                let mut p = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    p.push(c);
                }
                param = Some(p);
            }
            let Some(code) = chars.next() else {
                lit.push('%');
                break;
            };
            if code == '%' {
                lit.push('%');
                continue;
            }
            if !lit.is_empty() {
                f.items.push(Item::Lit(std::mem::take(&mut lit)));
            }
            match (code, &param) {
                ('i', Some(p)) => f.req_headers.push(p.to_ascii_lowercase()),
                ('o', Some(p)) => f.resp_headers.push(p.to_ascii_lowercase()),
                ('C', Some(_)) if !f.req_headers.iter().any(|h| h == "cookie") => {
                    f.req_headers.push("cookie".into());
                }
                _ => {}
            }
            f.items.push(Item::Field(code, param));
        }
        if !lit.is_empty() {
            f.items.push(Item::Lit(lit));
        }
        f
    }

    /// Renders one line (with its trailing newline).
    pub fn render(&self, e: &Entry) -> String {
        if self.json {
            return render_json(e);
        }
        let mut out = String::with_capacity(160);
        for item in &self.items {
            match item {
                Item::Lit(s) => out.push_str(s),
                Item::Field(code, param) => self.field(&mut out, *code, param.as_deref(), e),
            }
        }
        out.push('\n');
        out
    }

    fn field(&self, out: &mut String, code: char, param: Option<&str>, e: &Entry) {
        let dash = |out: &mut String| out.push('-');
        match code {
            'h' | 'a' => match e.remote {
                Some(a) => {
                    let _ = write!(out, "{}", a.ip());
                }
                None => out.push_str("unix"),
            },
            'A' => match e.local {
                Some(a) => {
                    let _ = write!(out, "{}", a.ip());
                }
                None => dash(out),
            },
            'p' => match e.local {
                Some(a) => {
                    let _ = write!(out, "{}", a.port());
                }
                None => dash(out),
            },
            'P' => {
                let _ = write!(out, "{}", std::process::id());
            }
            'l' => dash(out),
            'u' => match &e.user {
                Some(u) => escape_into(out, u),
                None => dash(out),
            },
            't' => {
                let t = e.start.unwrap_or_else(SystemTime::now);
                let dt: chrono::DateTime<chrono::Local> = t.into();
                match param {
                    None => {
                        let _ = write!(out, "{}", dt.format("[%d/%b/%Y:%H:%M:%S %z]"));
                    }
                    Some(p) => {
                        let p = p.trim_start_matches("begin:").trim_start_matches("end:");
                        match p {
                            "sec" => {
                                let _ = write!(out, "{}", dt.timestamp());
                            }
                            "msec" => {
                                let _ = write!(out, "{}", dt.timestamp_millis());
                            }
                            "usec" => {
                                let _ = write!(out, "{}", dt.timestamp_micros());
                            }
                            _ => {
                                let items: Vec<_> = chrono::format::StrftimeItems::new(p).collect();
                                if items
                                    .iter()
                                    .any(|i| matches!(i, chrono::format::Item::Error))
                                {
                                    dash(out);
                                } else {
                                    let _ =
                                        write!(out, "{}", dt.format_with_items(items.into_iter()));
                                }
                            }
                        }
                    }
                }
            }
            'r' => match &e.request_line {
                Some(r) => escape_into(out, r),
                None => dash(out),
            },
            's' => {
                let _ = write!(out, "{}", e.status);
            }
            'b' => {
                if e.body_bytes == 0 {
                    dash(out)
                } else {
                    let _ = write!(out, "{}", e.body_bytes);
                }
            }
            'B' => {
                let _ = write!(out, "{}", e.body_bytes);
            }
            'I' => {
                let _ = write!(out, "{}", e.bytes_in);
            }
            'O' => {
                let _ = write!(out, "{}", e.bytes_out);
            }
            'D' => {
                let _ = write!(out, "{}", e.duration.as_micros());
            }
            'T' => {
                let v = match param {
                    Some("ms") => e.duration.as_millis(),
                    Some("us") => e.duration.as_micros(),
                    _ => e.duration.as_secs() as u128,
                };
                let _ = write!(out, "{v}");
            }
            'm' => {
                if e.method.is_empty() {
                    dash(out)
                } else {
                    escape_into(out, &e.method)
                }
            }
            'U' => {
                if e.path.is_empty() {
                    dash(out)
                } else {
                    escape_into(out, &e.path)
                }
            }
            'q' => {
                if let Some(q) = &e.query {
                    out.push('?');
                    escape_into(out, q);
                }
            }
            'H' => {
                if e.protocol.is_empty() {
                    dash(out)
                } else {
                    out.push_str(&e.protocol)
                }
            }
            'v' => out.push_str(if e.server_name.is_empty() {
                "-"
            } else {
                &e.server_name
            }),
            'V' => match &e.host_header {
                Some(h) => escape_into(out, h),
                None => out.push_str(if e.server_name.is_empty() {
                    "-"
                } else {
                    &e.server_name
                }),
            },
            'X' => out.push(if e.keep_alive { '+' } else { '-' }),
            'i' | 'o' => {
                let p = param.unwrap_or("").to_ascii_lowercase();
                let v = lookup(
                    if code == 'i' {
                        &e.req_headers
                    } else {
                        &e.resp_headers
                    },
                    &p,
                );
                match v {
                    Some(v) => escape_into(out, v),
                    None => dash(out),
                }
            }
            'C' => {
                let name = param.unwrap_or("");
                let cookie = lookup(&e.req_headers, "cookie").and_then(|c| {
                    c.split(';').find_map(|kv| {
                        let (k, v) = kv.trim().split_once('=')?;
                        (k == name).then_some(v)
                    })
                });
                match cookie {
                    Some(v) => escape_into(out, v),
                    None => dash(out),
                }
            }
            _ => dash(out),
        }
    }
}

fn lookup<'e>(headers: &'e [(String, Option<String>)], name: &str) -> Option<&'e str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// Apache's escaping of logged request data: `"` and `\` backslashed, control and
/// non-ASCII bytes as `\xhh`, so a log line can never be split or forged.
fn escape_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

fn render_json(e: &Entry) -> String {
    let t = e.start.unwrap_or_else(SystemTime::now);
    let dt: chrono::DateTime<chrono::Local> = t.into();
    let v = serde_json::json!({
        "time": dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "remote": e.remote.map(|a| a.ip().to_string()).unwrap_or_else(|| "unix".into()),
        "vhost": e.server_name,
        "host": e.host_header,
        "method": if e.method.is_empty() { None } else { Some(&e.method) },
        "request": e.request_line,
        "path": if e.path.is_empty() { None } else { Some(&e.path) },
        "query": e.query,
        "protocol": e.protocol,
        "status": e.status,
        "bytes": e.body_bytes,
        "bytes_out": e.bytes_out,
        "duration_us": e.duration.as_micros() as u64,
        "referer": lookup(&e.req_headers, "referer"),
        "user_agent": lookup(&e.req_headers, "user-agent"),
        "user": e.user,
    });
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// Where lines go.
pub enum Sink {
    File {
        path: PathBuf,
        file: Mutex<File>,
    },
    Pipe {
        command: String,
        child: Mutex<Option<(Child, ChildStdin)>>,
    },
}

impl Sink {
    pub fn file(path: PathBuf) -> Result<Sink, Error> {
        let file = open_append(&path).map_err(|source| Error::Log {
            target: path.display().to_string(),
            source,
        })?;
        Ok(Sink::File {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn pipe(command: String) -> Result<Sink, Error> {
        let child = spawn_logger(&command).map_err(|source| Error::Log {
            target: format!("|{command}"),
            source,
        })?;
        Ok(Sink::Pipe {
            command,
            child: Mutex::new(Some(child)),
        })
    }

    /// Writes one whole line. A piped logger that died is restarted and the line written
    /// to the new one.
    pub fn write_line(&self, line: &str) {
        match self {
            Sink::File { path, file } => {
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = f.write_all(line.as_bytes()) {
                    tracing::error!(path = %path.display(), error = %e, "cannot write access log");
                }
            }
            Sink::Pipe { command, child } => {
                let mut guard = child.lock().unwrap_or_else(|e| e.into_inner());
                for attempt in 0..2 {
                    if guard.is_none() {
                        match spawn_logger(command) {
                            Ok(c) => *guard = Some(c),
                            Err(e) => {
                                tracing::error!(command = %command, error = %e, "cannot restart piped logger");
                                return;
                            }
                        }
                    }
                    let Some((_, stdin)) = guard.as_mut() else {
                        return;
                    };
                    match stdin.write_all(line.as_bytes()) {
                        Ok(()) => return,
                        Err(e) => {
                            if let Some((mut c, stdin)) = guard.take() {
                                drop(stdin);
                                let _ = c.kill();
                                let _ = c.wait();
                            }
                            if attempt == 0 {
                                tracing::warn!(command = %command, error = %e, "piped logger died; restarting it");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The target this sink writes to, as the site builder keys it (`file:PATH`,
    /// `pipe:COMMAND`).
    pub fn key(&self) -> String {
        match self {
            Sink::File { path, .. } => format!("file:{}", path.display()),
            Sink::Pipe { command, .. } => format!("pipe:{command}"),
        }
    }

    /// USR1: reopen a log file (logrotate moved it away).
    pub fn reopen(&self) {
        if let Sink::File { path, file } = self {
            match open_append(path) {
                Ok(f) => *file.lock().unwrap_or_else(|e| e.into_inner()) = f,
                Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot reopen log"),
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::Pipe { child, .. } = self {
            if let Some((mut c, stdin)) = child.get_mut().unwrap_or_else(|e| e.into_inner()).take()
            {
                // EOF tells the logger to finish; reap it without blocking the server.
                drop(stdin);
                std::thread::spawn(move || {
                    let _ = c.wait();
                });
            }
        }
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn spawn_logger(command: &str) -> io::Result<(Child, ChildStdin)> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    // Started before root is given up: as the User already (see crate::privileges).
    crate::privileges::apply_to(&mut cmd);
    let mut child = cmd.spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    Ok((child, stdin))
}

/// A format and where its lines go (one `CustomLog`).
pub struct AccessLog {
    pub format: Format,
    pub sink: std::sync::Arc<Sink>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            remote: Some("192.0.2.7:5555".parse().unwrap()),
            local: Some("127.0.0.1:8080".parse().unwrap()),
            start: None,
            request_line: Some("GET /a\"b?x=1 HTTP/1.1".into()),
            method: "GET".into(),
            path: "/a\"b".into(),
            query: Some("x=1".into()),
            protocol: "HTTP/1.1".into(),
            status: 200,
            body_bytes: 0,
            bytes_in: 80,
            bytes_out: 150,
            duration: Duration::from_micros(1234),
            user: None,
            server_name: "example.com".into(),
            host_header: Some("www.example.com".into()),
            req_headers: vec![
                ("referer".into(), Some("http://ref/".into())),
                ("user-agent".into(), Some("curl/8\x01".into())),
            ],
            resp_headers: vec![("content-type".into(), Some("text/html".into()))],
            keep_alive: true,
        }
    }

    #[test]
    fn byte_for_byte() {
        let cases = [
            (
                "%h %l %u \"%r\" %>s %b",
                "192.0.2.7 - - \"GET /a\\\"b?x=1 HTTP/1.1\" 200 -\n",
            ),
            (
                "%a %A %p %B %D %T %{ms}T",
                "192.0.2.7 127.0.0.1 8080 0 1234 0 1\n",
            ),
            (
                "%m %U%q %H %v %V %X",
                "GET /a\\\"b?x=1 HTTP/1.1 example.com www.example.com +\n",
            ),
            (
                "\"%{Referer}i\" \"%{User-Agent}i\" %{Content-Type}o %{X-None}i",
                "\"http://ref/\" \"curl/8\\x01\" text/html -\n",
            ),
            ("%I %O 100%%", "80 150 100%\n"),
            (
                "%{%Y}t",
                &format!("{}\n", chrono::Local::now().format("%Y")),
            ),
        ];
        for (spec, want) in cases {
            let f = Format::compile(spec);
            assert_eq!(f.render(&entry()), want, "{spec}");
        }
    }

    #[test]
    fn malformed_request_is_dash() {
        let f = Format::compile("%h \"%r\" %>s %b");
        let mut e = entry();
        e.request_line = None;
        e.status = 400;
        e.body_bytes = 11;
        assert_eq!(f.render(&e), "192.0.2.7 \"-\" 400 11\n");
    }

    #[test]
    fn common_time_shape() {
        let f = Format::compile("%t");
        let line = f.render(&entry());
        let re = regex::Regex::new(r"^\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]\n$")
            .unwrap();
        assert!(re.is_match(&line), "{line}");
    }

    #[test]
    fn json_escapes() {
        let f = Format::compile("json");
        let mut e = entry();
        e.req_headers = vec![("referer".into(), Some("r\"\n".into()))];
        let line = f.render(&e);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["referer"], "r\"\n");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_us"], 1234);
    }
}
