//! The access log: Apache's LogFormat language, compiled once and rendered per request,
//! and the sinks lines go to (a file opened for append, or a `|command` the server starts
//! and restarts). A file gets each line in a single write, so lines are never split or
//! interleaved. A piped logger gets its lines through a bounded queue and one writer
//! thread ([`Sink::Pipe`]): requests never wait for a stopped logger; whole lines only.
//!
//! Supported: `%%` `%a` `%A` `%b` `%B` `%D` `%h` `%H` `%I` `%l` `%m` `%O` `%p` `%P` `%q`
//! `%r` `%s` `%>s` `%<s` `%t` `%{fmt}t` `%T` `%{ms|us|s}T` `%u` `%U` `%v` `%V` `%X`
//! `%{Name}i` `%{Name}o` `%{Name}e` (always `-`); `%{…}C` (a cookie). The nickname
//! `json` writes one JSON object per line instead.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

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
    /// A piped logger: request handlers only queue the line ([`PipeQueue::push`]); one
    /// writer thread per logger writes it, so a stopped or slow logger never holds up a
    /// request.
    Pipe {
        command: String,
        queue: Arc<PipeQueue>,
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

    /// Starts the logger `command` (the text after `CustomLog "|`, see [`LoggerCommand`])
    /// and the thread that feeds it.
    pub fn pipe(command: String) -> Result<Sink, Error> {
        let how = LoggerCommand::parse(&command).map_err(|msg| Error::Log {
            target: format!("|{command}"),
            source: io::Error::new(io::ErrorKind::InvalidInput, msg),
        })?;
        let child = spawn_logger(&how).map_err(|source| Error::Log {
            target: format!("|{command}"),
            source,
        })?;
        let queue = Arc::new(PipeQueue::default());
        live_queues().push(Arc::downgrade(&queue));
        let writer = PipeWriter {
            command: command.clone(),
            how,
            queue: Arc::clone(&queue),
            child: Some(child),
            started: Instant::now(),
        };
        std::thread::Builder::new()
            .name("piped-log".into())
            .spawn(move || writer.run())
            .map_err(|source| Error::Log {
                target: format!("|{command}"),
                source,
            })?;
        Ok(Sink::Pipe { command, queue })
    }

    /// Writes one whole line (a file), or queues it for the piped logger, never waiting
    /// for the logger (a full queue drops the line and counts it).
    pub fn write_line(&self, line: &str) {
        match self {
            Sink::File { path, file } => {
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = f.write_all(line.as_bytes()) {
                    tracing::error!(path = %path.display(), error = %e, "cannot write access log");
                }
            }
            Sink::Pipe { queue, .. } => queue.push(line),
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
        if let Sink::Pipe { queue, .. } = self {
            // The writer writes what is queued, then closes the pipe: EOF tells the logger
            // to finish (a reload starts a new one, as Apache does).
            queue.close();
        }
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// How a piped logger is started, by Apache 2.4's rules: `"|prog args"` and `"||prog
/// args"` run the program directly, its arguments split like `apr_tokenize_to_argv` (see
/// [`tokenize`]); `"|$command"` runs `/bin/sh -c command`. One difference: a command
/// without `$` that uses shell syntax (`;`, `&`, `|`, `<`, `>`, `` ` ``, `$`, `(`, `)`,
/// globs, a leading `VAR=`), which Apache would pass as literal arguments to the program,
/// still goes through the shell, so configurations written for that keep working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoggerCommand {
    Shell(String),
    Direct(Vec<String>),
}

impl LoggerCommand {
    /// `spec` is the target without its first `|`.
    pub fn parse(spec: &str) -> Result<LoggerCommand, String> {
        let (explicit, rest) = match spec.strip_prefix('|') {
            Some(r) => (true, r),
            None => (false, spec),
        };
        if let Some(cmd) = rest.strip_prefix('$') {
            let cmd = cmd.trim();
            if cmd.is_empty() {
                return Err("empty piped log command".into());
            }
            return Ok(LoggerCommand::Shell(cmd.to_string()));
        }
        let argv = tokenize(rest);
        if argv.is_empty() {
            return Err("empty piped log command".into());
        }
        if !explicit && uses_shell_syntax(rest, &argv[0]) {
            return Ok(LoggerCommand::Shell(rest.trim().to_string()));
        }
        Ok(LoggerCommand::Direct(argv))
    }
}

fn uses_shell_syntax(cmd: &str, program: &str) -> bool {
    cmd.contains([
        ';', '&', '|', '<', '>', '`', '$', '(', ')', '*', '?', '[', '\n',
    ]) || program.contains('=')
}

/// Splits a command line into arguments as APR's `apr_tokenize_to_argv` does (Apache's
/// piped logs use it): words separated by spaces and tabs; a word that starts with `"` or
/// `'` runs to the matching quote (a quote inside a word is literal); a backslash before
/// a space, tab or quote keeps it in the word; every unescaped backslash is then removed
/// (`\\` is one backslash).
pub fn tokenize(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() {
            return args;
        }
        let quote = match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                Some(q)
            }
            _ => None,
        };
        let start = i;
        while i < b.len() {
            let c = b[i];
            if c == b'\\' && matches!(b.get(i + 1), Some(b' ' | b'\t' | b'"' | b'\'')) {
                i += 2;
                continue;
            }
            let end = match quote {
                None => c == b' ' || c == b'\t',
                Some(q) => c == q,
            };
            if end {
                break;
            }
            i += 1;
        }
        let word = &s[start..i.min(b.len())];
        if i < b.len() {
            i += 1; // the separator or closing quote
        }
        let mut arg = String::with_capacity(word.len());
        let mut escaped = false;
        for c in word.chars() {
            if !escaped && c == '\\' {
                escaped = true;
            } else {
                escaped = false;
                arg.push(c);
            }
        }
        args.push(arg);
    }
}

fn spawn_logger(how: &LoggerCommand) -> io::Result<(Child, ChildStdin)> {
    let mut cmd = match how {
        LoggerCommand::Shell(c) => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(c);
            cmd
        }
        LoggerCommand::Direct(argv) => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            cmd
        }
    };
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    // Started before root is given up: as the User already (see crate::privileges).
    crate::privileges::apply_to(&mut cmd);
    let mut child = cmd.spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    Ok((child, stdin))
}

/// Bytes of lines a piped logger's queue holds (beyond the kernel's 64 KiB pipe buffer)
/// while the logger does not read; past that, new lines are dropped and counted.
pub const PIPE_QUEUE_BYTES: usize = 1 << 20;
/// Most bytes handed to one `write` of the pipe.
const PIPE_BATCH_BYTES: usize = 256 * 1024;
/// While lines are being dropped, how often the count is reported at the latest.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// The lines waiting for one piped logger.
#[derive(Default)]
pub struct PipeQueue {
    state: Mutex<QueueState>,
    /// Lines arrived, or the queue was closed.
    ready: Condvar,
    /// The writer has nothing left (for [`drain_pipes`]).
    idle: Condvar,
}

#[derive(Default)]
struct QueueState {
    lines: VecDeque<String>,
    bytes: usize,
    /// Lines dropped since the last report.
    dropped: u64,
    /// A batch taken off the queue is being written.
    writing: bool,
    /// The sink is gone: write what is left, then close the pipe.
    closed: bool,
    /// The writer sleeps on `ready` (a push wakes it only then: no system call per line
    /// while it is busy writing).
    waiting: bool,
    /// The writer thread has ended.
    done: bool,
}

impl PipeQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a line, or drops and counts it when the queue is full. Never blocks on the
    /// logger (only on the queue's lock, held for a push or a pop).
    pub fn push(&self, line: &str) {
        let mut st = self.lock();
        if st.bytes > 0 && st.bytes + line.len() > PIPE_QUEUE_BYTES {
            st.dropped += 1;
            return;
        }
        st.bytes += line.len();
        st.lines.push_back(line.to_string());
        let wake = st.waiting;
        drop(st);
        if wake {
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Waits until every queued line has been written (or `deadline`); whether it was.
    fn wait_idle(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        loop {
            if st.done || (st.lines.is_empty() && !st.writing) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .idle
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Every piped logger's queue (including those of sinks a reload replaced, until their
/// writer has finished), for [`drain_pipes`].
fn live_queues() -> std::sync::MutexGuard<'static, Vec<Weak<PipeQueue>>> {
    static QUEUES: Mutex<Vec<Weak<PipeQueue>>> = Mutex::new(Vec::new());
    let mut q = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    q.retain(|w| w.strong_count() > 0);
    q
}

/// At exit: waits up to `limit` for every piped logger's queue to be written into its
/// pipe (the logger then sees EOF when the process exits). Returns whether all were.
pub fn drain_pipes(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let queues: Vec<Arc<PipeQueue>> = live_queues().iter().filter_map(Weak::upgrade).collect();
    let mut all = true;
    for q in queues {
        if !q.wait_idle(deadline) {
            let st = q.lock();
            let n = st.lines.len() as u64 + st.dropped;
            drop(st);
            tracing::error!(
                "piped logger still not reading at exit: {n} access log line(s) not written"
            );
            all = false;
        }
    }
    all
}

/// The thread that feeds one piped logger: writes queued lines in batches, restarts the
/// logger when it died (resending the line it was writing), and reports dropped lines.
struct PipeWriter {
    command: String,
    how: LoggerCommand,
    queue: Arc<PipeQueue>,
    child: Option<(Child, ChildStdin)>,
    started: Instant,
}

impl PipeWriter {
    fn run(mut self) {
        let mut batch: Vec<String> = Vec::new();
        let mut last_report = Instant::now();
        loop {
            let mut st = self.queue.lock();
            st.writing = false;
            if st.dropped > 0 && (st.lines.is_empty() || last_report.elapsed() >= DROP_REPORT_EVERY)
            {
                let n = std::mem::take(&mut st.dropped);
                drop(st);
                last_report = Instant::now();
                tracing::error!(
                    "piped logger '{}' did not keep up: {n} access log line(s) dropped",
                    self.command
                );
                continue;
            }
            if st.lines.is_empty() {
                self.queue.idle.notify_all();
            }
            while st.lines.is_empty() && !st.closed {
                st.waiting = true;
                st = self.queue.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                st.waiting = false;
            }
            if st.lines.is_empty() {
                break;
            }
            let mut size = 0;
            while let Some(l) = st.lines.front() {
                if size > 0 && size + l.len() > PIPE_BATCH_BYTES {
                    break;
                }
                size += l.len();
                st.bytes -= l.len();
                batch.extend(st.lines.pop_front());
            }
            st.writing = true;
            drop(st);
            self.write_batch(&batch);
            batch.clear();
        }
        if let Some((mut c, stdin)) = self.child.take() {
            drop(stdin);
            let _ = c.wait();
        }
        let mut st = self.queue.lock();
        st.done = true;
        st.writing = false;
        drop(st);
        self.queue.idle.notify_all();
    }

    /// Writes `lines` in as few `write`s as possible. When the logger dies, it is
    /// restarted and writing resumes at the start of the line that failed (the lines
    /// before it were in the dead logger's pipe).
    fn write_batch(&mut self, lines: &[String]) {
        let mut buf = Vec::with_capacity(lines.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(lines.len());
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            ends.push(buf.len());
        }
        let mut pos = 0;
        let mut backoff = Duration::from_millis(100);
        while pos < buf.len() {
            if self.child.is_none() {
                match spawn_logger(&self.how) {
                    Ok(c) => {
                        self.child = Some(c);
                        self.started = Instant::now();
                    }
                    Err(e) => {
                        tracing::error!(command = %self.command, error = %e, "cannot restart piped logger");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let Some((_, stdin)) = self.child.as_mut() else {
                continue;
            };
            match stdin.write(&buf[pos..]) {
                Ok(0) => pos = buf.len(),
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let lived = self.started.elapsed();
                    if let Some((mut c, stdin)) = self.child.take() {
                        drop(stdin);
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    tracing::warn!(command = %self.command, error = %e, "piped logger died; restarting it");
                    // Back to the start of the line being written.
                    let i = ends.partition_point(|&end| end <= pos);
                    pos = if i == 0 { 0 } else { ends[i - 1] };
                    // A logger that dies at once is not restarted in a tight loop.
                    if lived < Duration::from_secs(1) {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

/// A format and where its lines go (one `CustomLog`).
pub struct AccessLog {
    pub format: Format,
    pub sink: Arc<Sink>,
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
    fn tokenize_like_apr() {
        let cases: &[(&str, &[&str])] = &[
            ("prog a  b\tc", &["prog", "a", "b", "c"]),
            ("  prog \"a b\" 'c d' e", &["prog", "a b", "c d", "e"]),
            // A quote inside a word is literal; a backslash keeps a space or a quote.
            ("prog x\"y a\\ b \\\\z", &["prog", "x\"y", "a b", "\\z"]),
            ("prog '' \"\"", &["prog", "", ""]),
            ("prog %Y-%m-%d 86400", &["prog", "%Y-%m-%d", "86400"]),
            ("", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(tokenize(line), *want, "{line:?}");
        }
    }

    #[test]
    fn logger_command_forms() {
        use LoggerCommand::*;
        let direct = |v: &[&str]| Direct(v.iter().map(|s| s.to_string()).collect());
        let cases = [
            (
                "/bin/rotatelogs /l/a.%Y 86400",
                direct(&["/bin/rotatelogs", "/l/a.%Y", "86400"]),
            ),
            ("|prog 'a b'", direct(&["prog", "a b"])),
            ("|prog a > b", direct(&["prog", "a", ">", "b"])),
            ("$prog a | tee b", Shell("prog a | tee b".into())),
            ("|$ prog", Shell("prog".into())),
            ("cat >> /tmp/x", Shell("cat >> /tmp/x".into())),
            ("LANG=C prog", Shell("LANG=C prog".into())),
        ];
        for (spec, want) in cases {
            assert_eq!(LoggerCommand::parse(spec), Ok(want), "{spec:?}");
        }
        assert!(LoggerCommand::parse("  ").is_err());
        assert!(LoggerCommand::parse("$").is_err());
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
