//! Child processes: httpd-core and the user's app, each in its own process group so that
//! CONTROL-C reaches httpd-dev only and httpd-dev stops each whole group (TERM, then KILL).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::errorpage::{self, AppState};
use crate::livereload::Hub;
use crate::sys;

const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const TAIL_LINES: usize = 30;

/// A binary found next to our own executable first, then on PATH (DESIGN.md).
pub fn find_binary(name: &'static str) -> Result<PathBuf, Error> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join(name)));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(Error::MissingBinary(name))
}

/// Stops a process group: TERM, then KILL after a timeout; reaps `child`.
pub fn stop_group(child: &mut Child) {
    let pgid = child.id();
    sys::kill_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whatever the group leader left behind (or the leader itself) goes now.
    sys::kill_group(pgid, libc::SIGKILL);
    let _ = child.wait();
}

/// Starts httpd-core on `conf` and waits for `READY=1` on our notify socket.
pub fn start_core(core: &Path, conf: &Path, state: &Path) -> Result<Child, Error> {
    let sock_path = state.join("notify.sock");
    let sock =
        UnixDatagram::bind(&sock_path).map_err(Error::io("cannot create the notify socket"))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(Error::io("notify socket"))?;
    let mut child = Command::new(core)
        .arg("-f")
        .arg(conf)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(Error::io(format!("cannot start {}", core.display())))?;
    if let Some(err) = child.stderr.take() {
        // Core's own messages (errors, reloads) pass through; its start-up chatter does not.
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let quiet = [
                    "listening on",
                    ": ready (",
                    "stopping (graceful)",
                    ": stopped",
                    "embedded default",
                ];
                if !quiet.iter().any(|q| line.contains(q)) {
                    eprintln!("{line}");
                }
            }
        });
    }
    let mut buf = [0u8; 256];
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(Error::CoreFailed(describe(st)));
        }
        if let Ok(n) = sock.recv(&mut buf) {
            if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") {
                return Ok(child);
            }
        }
    }
}

/// Starts httpd-tls on `listen` in front of core and waits until it accepts.
pub fn start_tls(tls: &Path, listen: SocketAddr, core: SocketAddr) -> Result<Child, Error> {
    let mut child = Command::new(tls)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--backend")
        .arg(core.to_string())
        .args(["--self-signed", "localhost", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(Error::io(format!("cannot start {}", tls.display())))?;
    let probe = match listen.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], listen.port())),
        _ => listen,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(Error::CoreFailed(format!("httpd-tls: {}", describe(st))));
        }
        if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            stop_group(&mut child);
            return Err(Error::CoreFailed(
                "httpd-tls did not start listening".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn describe(st: std::process::ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => st.to_string(),
    }
}

/// The user's app: `sh -c CMD` with `PORT` set, restarted on demand.
pub struct App {
    pub command: String,
    pub port: u16,
    pub dir: PathBuf,
    pub www: PathBuf,
    pub details: bool,
    pub hub: Hub,
    child: Mutex<Option<Child>>,
    generation: AtomicU64,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl App {
    pub fn new(
        command: String,
        port: u16,
        dir: PathBuf,
        www: PathBuf,
        details: bool,
        hub: Hub,
    ) -> Arc<App> {
        Arc::new(App {
            command,
            port,
            dir,
            www,
            details,
            hub,
            child: Mutex::new(None),
            generation: AtomicU64::new(0),
            tail: Arc::default(),
        })
    }

    fn page(&self, state: &AppState) {
        let html = errorpage::render(&self.command, state, self.details);
        let _ = std::fs::write(self.www.join("502.html"), html);
    }

    /// Starts the app and, on a thread, waits for its port (then reloads browsers) and for
    /// its exit (then shows the error page). Returns the exit status when the app ended
    /// before its port opened and `wait_first` is set (start-up failures).
    pub fn start(self: &Arc<Self>, wait_first: bool) -> Result<Option<String>, Error> {
        let gen = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.tail.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.page(&AppState::Starting);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .env("PORT", self.port.to_string())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(Error::io("cannot run sh -c for the app"))?;
        let out: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        let mut readers = Vec::new();
        for (i, pipe) in out.into_iter().enumerate() {
            let tail = Arc::clone(&self.tail);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if i == 0 {
                        println!("{line}");
                    } else {
                        eprintln!("{line}");
                    }
                    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }));
        }
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let up = self.wait_up(gen);
        if !up && wait_first {
            let st = self.reap(gen);
            for r in readers {
                let _ = r.join();
            }
            return Ok(st);
        }
        if up {
            self.hub.send("reload", "app");
        }
        let me = Arc::clone(self);
        std::thread::spawn(move || me.watch_exit(gen, readers));
        Ok(None)
    }

    /// Polls the app's port until it accepts, the app exits, or this start is superseded.
    fn wait_up(&self, gen: u64) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && self.generation.load(Ordering::SeqCst) == gen {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = g.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return false;
                }
            }
            drop(g);
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Reaps the exited app of generation `gen`; its status, or None if superseded.
    fn reap(&self, gen: u64) -> Option<String> {
        let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != gen {
            return None;
        }
        let mut c = g.take()?;
        let st = c.wait().ok()?;
        sys::kill_group(c.id(), libc::SIGKILL);
        Some(describe(st))
    }

    fn watch_exit(&self, gen: u64, readers: Vec<std::thread::JoinHandle<()>>) {
        loop {
            {
                let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
                if self.generation.load(Ordering::SeqCst) != gen {
                    return;
                }
                match g.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(None)) => {}
                    _ => break,
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for r in readers {
            let _ = r.join();
        }
        if let Some(status) = self.reap(gen) {
            eprintln!("httpd-dev: the app stopped ({status}); waiting for a change to restart it");
            let tail: Vec<String> = self
                .tail
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect();
            self.page(&AppState::Crashed {
                status: &status,
                tail: &tail,
            });
            self.hub.send("reload", "app");
        }
    }

    /// Stops the app's whole process group (TERM, then KILL).
    pub fn stop(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut c) = child {
            stop_group(&mut c);
        }
    }

    /// Stop, then start again (a watched source changed).
    pub fn restart(self: &Arc<Self>) -> Result<(), Error> {
        self.stop();
        self.start(false).map(|_| ())
    }
}
