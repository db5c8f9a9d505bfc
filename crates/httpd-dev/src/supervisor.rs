//! Child processes: httpd-core and the user's app, each in its own process group so that
//! CONTROL-C reaches httpd-dev only and httpd-dev stops each whole group (TERM, then KILL).
//! Every group is spawned through [`guard::spawn`], so the guard stops it if httpd-dev is
//! killed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::errorpage::{self, AppState};
use crate::guard;
use crate::livereload::Hub;
use crate::sys;

const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const TAIL_LINES: usize = 30;
/// How long to wait for the app's output pipes to drain once its group is gone.
const READERS_GRACE: Duration = Duration::from_secs(1);

/// A binary found next to our own executable first, then on PATH (DESIGN.md).
pub fn find_binary(name: &'static str) -> Result<PathBuf, Error> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join(name)));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    on_path(name).ok_or(Error::MissingBinary(name))
}

/// Where `name` is on PATH (or `name` itself when it is a path).
pub fn on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Stops process groups together: TERM to each, then KILL after `STOP_TIMEOUT`, or as soon
/// as `hurry()` says so (a second CONTROL-C, or shutdown during a restart); reaps every
/// child. The KILL goes to the whole group, so what a leader left behind goes too.
pub fn stop_groups(children: &mut [&mut Child], hurry: &dyn Fn() -> bool) {
    for c in children.iter() {
        sys::kill_group(c.id(), libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline && !hurry() {
        if children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(Some(_))))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in children.iter_mut() {
        sys::kill_group(c.id(), libc::SIGKILL);
        let _ = c.wait();
    }
    // KILL is delivered asynchronously: wait (briefly) until no live process is left in
    // the groups, so that "stopped" means gone. What the leaders left behind is reaped by
    // init, so it may linger as a zombie (dead) for a while; that does not count.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && children.iter().any(|c| sys::group_alive(c.id())) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for c in children.iter() {
        // A group still alive stays on the guard's list: it is KILLed again at exit.
        if !sys::group_alive(c.id()) {
            guard::reaped(c);
        }
    }
}

/// Stops one process group (TERM, then KILL after a timeout).
pub fn stop_group(child: &mut Child) {
    stop_groups(&mut [child], &|| false);
}

/// Starts httpd-core on `conf` and waits for `READY=1` on our notify socket.
pub fn start_core(core: &Path, conf: &Path, state: &Path) -> Result<Child, Error> {
    let sock_path = state.join("notify.sock");
    let sock =
        UnixDatagram::bind(&sock_path).map_err(Error::io("cannot create the notify socket"))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(Error::io("notify socket"))?;
    let mut child = guard::spawn(
        Command::new(core)
            .arg("-f")
            .arg(conf)
            .env("NOTIFY_SOCKET", &sock_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0),
    )
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
            gone(&child);
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
    let mut child = guard::spawn(
        Command::new(tls)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--backend")
            .arg(core.to_string())
            .args(["--self-signed", "localhost", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0),
    )
    .map_err(Error::io(format!("cannot start {}", tls.display())))?;
    let probe = match listen.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], listen.port())),
        _ => listen,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            gone(&child);
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

/// For a reaped leader: kills what it left in its group, and tells the guard.
fn gone(child: &Child) {
    sys::kill_group(child.id(), libc::SIGKILL);
    guard::reaped(child);
}

pub fn describe(st: std::process::ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => st.to_string(),
    }
}

/// How a start of the app ended its wait for the port.
enum Up {
    Listening,
    /// The app exited before it listened.
    Exited,
    /// A newer start or a shutdown superseded this one, or the app never listened in time.
    Gone,
}

/// The user's app: `sh -c CMD` with `PORT` set, in its own process group. Restarts run on
/// a restarter thread, so the main loop keeps taking file events and CONTROL-C while an
/// app stops slowly or starts slowly; requests that arrive meanwhile coalesce.
pub struct App {
    pub command: String,
    pub port: u16,
    pub dir: PathBuf,
    pub www: PathBuf,
    pub hub: Hub,
    child: Mutex<Option<Child>>,
    /// Bumped by every start, restart request and stop: waits of older starts give up.
    generation: AtomicU64,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Set once when httpd-dev stops: no new start, and a stop in progress skips the TERM
    /// grace period.
    closing: AtomicBool,
    restarts: Mutex<Option<mpsc::Sender<()>>>,
    restarter: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    pub fn new(command: String, port: u16, dir: PathBuf, www: PathBuf, hub: Hub) -> Arc<App> {
        let (tx, rx) = mpsc::channel();
        let app = Arc::new(App {
            command,
            port,
            dir,
            www,
            hub,
            child: Mutex::new(None),
            generation: AtomicU64::new(0),
            tail: Arc::default(),
            closing: AtomicBool::new(false),
            restarts: Mutex::new(Some(tx)),
            restarter: Mutex::new(None),
        });
        let me = Arc::clone(&app);
        *lock(&app.restarter) = Some(std::thread::spawn(move || me.restarter(rx)));
        app
    }

    fn page(&self, state: &AppState) {
        let html = errorpage::render(&self.command, state);
        let _ = std::fs::write(self.www.join("502.html"), html);
    }

    /// Starts the app and, on a thread, waits for its port (then reloads browsers) and for
    /// its exit (then shows the error page). Returns the exit status when the app ended
    /// before its port opened and `wait_first` is set (start-up failures).
    pub fn start(self: &Arc<Self>, wait_first: bool) -> Result<Option<String>, Error> {
        let gen = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.tail).clear();
        self.page(&AppState::Starting);
        let mut slot = lock(&self.child);
        // Checked under the lock `close` takes: either close sees this child, or this
        // start sees `closing` and spawns nothing.
        if self.closing.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut child = guard::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(&self.command)
                .env("PORT", self.port.to_string())
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0),
        )
        .map_err(Error::io("cannot run sh -c for the app"))?;
        let out: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        // The readers hold `done`; it disconnects when both pipes are at EOF.
        let (done, readers_done) = mpsc::channel::<()>();
        for (i, pipe) in out.into_iter().enumerate() {
            let tail = Arc::clone(&self.tail);
            let done = done.clone();
            std::thread::spawn(move || {
                let _done = done;
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if i == 0 {
                        println!("{line}");
                    } else {
                        eprintln!("{line}");
                    }
                    let mut t = lock(&tail);
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        let pid = child.id();
        *slot = Some(child);
        drop(slot);
        match self.wait_up(gen) {
            Up::Exited if wait_first => {
                let st = self.reap(gen);
                let _ = readers_done.recv_timeout(READERS_GRACE);
                if let Some(status) = &st {
                    self.crashed(status);
                }
                return Ok(st);
            }
            Up::Listening => self.hub.send("reload", "app"),
            Up::Exited | Up::Gone => {}
        }
        let me = Arc::clone(self);
        std::thread::spawn(move || me.watch_exit(gen, pid, readers_done));
        Ok(None)
    }

    /// Polls the app's port until it accepts, the app exits, or this start is superseded.
    fn wait_up(&self, gen: u64) -> Up {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && self.generation.load(Ordering::SeqCst) == gen {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Up::Listening;
            }
            if let Some(c) = lock(&self.child).as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return Up::Exited;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Up::Gone
    }

    /// Reaps the exited app of generation `gen` and kills what it left in its group; its
    /// status, or None if superseded.
    fn reap(&self, gen: u64) -> Option<String> {
        let mut g = lock(&self.child);
        if self.generation.load(Ordering::SeqCst) != gen {
            return None;
        }
        let mut c = g.take()?;
        let st = c.wait().ok()?;
        gone(&c);
        Some(describe(st))
    }

    /// Blocks (no polling) until the app of generation `gen` exits; unless it was stopped
    /// on purpose, shows the crash page and reloads browsers.
    fn watch_exit(&self, gen: u64, pid: u32, readers_done: mpsc::Receiver<()>) {
        sys::wait_exited(pid);
        let Some(status) = self.reap(gen) else {
            return;
        };
        // The group is gone, so the pipes reach EOF; the last lines are in the tail then.
        let _ = readers_done.recv_timeout(READERS_GRACE);
        eprintln!("httpd-dev: the app stopped ({status}); waiting for a change to restart it");
        self.crashed(&status);
        self.hub.send("reload", "app");
    }

    /// The error page for an app that exited: its status and the last lines it wrote.
    fn crashed(&self, status: &str) {
        let tail: Vec<String> = lock(&self.tail).iter().cloned().collect();
        self.page(&AppState::Crashed {
            status,
            tail: &tail,
        });
    }

    /// Asks for a restart (a watched source changed) and returns at once.
    pub fn restart(&self) {
        // A start still waiting for the port gives up, so edits in a row coalesce.
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(tx) = lock(&self.restarts).as_ref() {
            let _ = tx.send(());
        }
    }

    fn restarter(self: Arc<Self>, rx: mpsc::Receiver<()>) {
        while rx.recv().is_ok() {
            while rx.try_recv().is_ok() {}
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            self.generation.fetch_add(1, Ordering::SeqCst);
            let old = lock(&self.child).take();
            if let Some(mut c) = old {
                stop_groups(&mut [&mut c], &|| self.closing.load(Ordering::SeqCst));
            }
            if let Err(e) = self.start(false) {
                eprintln!("httpd-dev: error: {e}");
            }
        }
    }

    /// Begins the final stop: no start from now on, a restart in progress hurries. Returns
    /// the running app for the caller to stop together with the other process groups;
    /// then call [`App::join`].
    pub fn close(&self) -> Option<Child> {
        self.closing.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.restarts).take();
        lock(&self.child).take()
    }

    /// Waits for the restarter, which kills the app it was stopping at once after `close`.
    pub fn join(&self) {
        let h = lock(&self.restarter).take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    /// Stops the app for good (error paths at start-up).
    pub fn stop(&self) {
        if let Some(mut c) = self.close() {
            stop_group(&mut c);
        }
        self.join();
    }
}
