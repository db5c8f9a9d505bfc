//! httpd-dev: the one-command development server, built on httpd-core.
//!
//! - [`addrport`]: Django's `[ADDR:]PORT` forms.
//! - [`confgen`]: the Apache-syntax config written for httpd-core (generic directives only).
//! - [`supervisor`]: httpd-core and the app, each in its own process group; readiness via
//!   the systemd notify protocol; stop = TERM then KILL.
//! - [`watcher`]: native or polled file events, filtered and debounced.
//! - [`livereload`]: the event stream browsers listen to, and the injected script.
//! - [`errorpage`]: the 502 page for an app that is starting or crashed.
//! - [`console`]: the banner and the per-request lines.
//! - [`browser`]: opening the URL in a browser (`--open`).
//! - [`guard`]: the small process that stops those groups if httpd-dev is killed.

pub mod addrport;
pub mod browser;
pub mod confgen;
pub mod console;
pub mod error;
pub mod errorpage;
pub mod guard;
pub mod livereload;
mod supervisor;
mod sys;
pub mod watcher;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};

pub use error::Error;

/// The one-command development server: serves DIR through httpd-core, reloads browsers when
/// files change, and runs and restarts your app (files first, then the app).
#[derive(Parser, Debug)]
#[command(name = "httpd-dev", version)]
pub struct Args {
    /// The directory to serve (default: the current directory).
    #[arg(value_name = "DIR")]
    pub dir: Option<String>,
    /// [ADDR:]PORT to listen on (default 127.0.0.1:8000): 8001, 0:8000, [::1]:8000.
    #[arg(value_name = "[ADDR:]PORT")]
    pub addrport: Option<String>,
    /// Run this app (via sh -c, with PORT set) for requests that are not files under DIR.
    #[arg(long, value_name = "CMD")]
    pub app: Option<String>,
    /// Restart the app when files under PATH change (repeatable; default the current directory).
    #[arg(long, value_name = "PATH")]
    pub watch: Vec<PathBuf>,
    /// Do not watch files (no live reload, no app restarts).
    #[arg(long)]
    pub noreload: bool,
    /// Poll the file system instead of using native events.
    #[arg(long)]
    pub poll: bool,
    /// Serve HTTPS through httpd-tls with a throwaway self-signed certificate.
    #[arg(long)]
    pub https: bool,
    /// Open the URL in a browser ($BROWSER, else xdg-open or open) once serving.
    #[arg(long)]
    pub open: bool,
}

enum Event {
    Changed(Vec<PathBuf>),
    Signal,
}

fn abs(p: &Path) -> Result<PathBuf, Error> {
    std::fs::canonicalize(p).map_err(|_| Error::MissingDir(p.to_path_buf()))
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(Error::io("cannot find a free port"))?;
    Ok(l.local_addr()
        .map_err(Error::io("cannot find a free port"))?
        .port())
}

/// A private directory for the generated config, the FIFO and the pages; removed on drop.
struct StateDir(PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: Args) -> Result<(), Error> {
    // DIR and ADDRPORT are both optional: a lone `8001` is an addrport, as in runserver.
    let (dir, addrport) = match (args.dir, args.addrport) {
        (Some(d), None) if addrport::looks_like(&d) && !Path::new(&d).is_dir() => (None, Some(d)),
        other => other,
    };
    let root = abs(Path::new(dir.as_deref().unwrap_or(".")))?;
    if !root.is_dir() {
        return Err(Error::NotADirectory(root));
    }
    let listen = match &addrport {
        Some(a) => addrport::parse(a)?,
        None => addrport::DEFAULT,
    };
    // Probe the port ourselves so "in use" is one clear message, not core's start failure.
    drop(TcpListener::bind(listen).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => Error::PortInUse(listen),
        _ => Error::Io {
            what: format!("cannot listen on {listen}"),
            source: e,
        },
    })?);
    let core = supervisor::find_binary("httpd-core")?;
    // With --https, httpd-tls takes the address and core listens on a private loopback port.
    let tls = if args.https {
        Some(supervisor::find_binary("httpd-tls")?)
    } else {
        None
    };
    let core_listen = match tls {
        Some(_) => std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        None => listen,
    };

    let state = StateDir(std::env::temp_dir().join(format!("httpd-dev-{}", std::process::id())));
    let www = state.0.join("www");
    std::fs::create_dir_all(&www).map_err(Error::io("cannot create the state directory"))?;
    let fifo = state.0.join("access.fifo");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err(Error::Io {
            what: format!("cannot create {}", fifo.display()),
            source: std::io::Error::other("mkfifo failed"),
        });
    }

    // Before the first long-lived child: from now on even a SIGKILL of httpd-dev stops them.
    guard::start()?;
    guard::remove_at_exit(&state.0);
    let (hub, events) = livereload::Hub::start(listen.ip())?;
    std::fs::write(www.join("livereload.js"), livereload::script(events.port()))
        .map_err(Error::io("cannot write the live-reload script"))?;

    let app_port = match &args.app {
        Some(_) => Some(free_port()?),
        None => None,
    };
    let plan = confgen::Plan {
        listen: core_listen,
        proxy_protocol: tls.is_some(),
        root: &root,
        state: &state.0,
        access_log: &fifo,
        app_port,
        inject: !args.noreload,
    };
    let conf = state.0.join("httpd.conf");
    std::fs::write(&conf, confgen::render(&plan)).map_err(Error::io("cannot write the config"))?;
    let check = Command::new(&core).arg("-t").arg("-f").arg(&conf).output();
    let check = match check {
        Ok(o) if o.status.success() => "Syntax OK".to_string(),
        Ok(o) => format!("errors\n{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("not run ({e})"),
    };

    let cwd = std::env::current_dir().map_err(Error::io("cannot read the current directory"))?;
    let app = match (&args.app, app_port) {
        (Some(cmd), Some(port)) => {
            let app =
                supervisor::App::new(cmd.clone(), port, cwd.clone(), www.clone(), hub.clone());
            if let Some(status) = app.start(true)? {
                if status == "exit status 127" {
                    return Err(Error::AppNotFound(cmd.clone()));
                }
                eprintln!("httpd-dev: the app exited at start ({status}); its error page is shown until a change restarts it");
            }
            Some(app)
        }
        _ => None,
    };

    console::follow_access_log(fifo.clone());
    let mut core_child = match supervisor::start_core(&core, &conf, &state.0) {
        Ok(c) => c,
        Err(e) => {
            if let Some(a) = &app {
                a.stop();
            }
            return Err(e);
        }
    };

    let mut tls_child = match &tls {
        Some(tls) => match supervisor::start_tls(tls, listen, core_listen) {
            Ok(c) => Some(c),
            Err(e) => {
                if let Some(a) = &app {
                    a.stop();
                }
                supervisor::stop_group(&mut core_child);
                return Err(e);
            }
        },
        None => None,
    };

    let (tx, rx) = mpsc::channel();
    let mut watched: Vec<PathBuf> = vec![root.clone()];
    let app_watch: Vec<PathBuf> = if args.app.is_some() {
        if args.watch.is_empty() {
            vec![cwd.clone()]
        } else {
            args.watch
                .iter()
                .map(|p| abs(p))
                .collect::<Result<_, _>>()?
        }
    } else {
        Vec::new()
    };
    for p in &app_watch {
        if !watched.iter().any(|w| p.starts_with(w)) {
            watched.push(p.clone());
        }
    }
    let _watch_handle = if args.noreload {
        None
    } else {
        let (h, batches) = watcher::watch(&watched, args.poll)?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for b in batches {
                let _ = tx.send(Event::Changed(b));
            }
        });
        Some(h)
    };
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(Error::io("cannot install signal handlers"))?;
    // The first CONTROL-C stops gracefully (TERM, then KILL after a timeout); a second one
    // while that runs stops at once.
    let interrupts = Arc::new(AtomicUsize::new(0));
    {
        let tx = tx.clone();
        let interrupts = Arc::clone(&interrupts);
        std::thread::spawn(move || {
            for _ in signals.forever() {
                if interrupts.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = tx.send(Event::Signal);
                }
            }
        });
    }

    let how = if args.poll {
        "polling"
    } else {
        "native events"
    };
    println!(
        "httpd-dev {} (httpd-core {})",
        env!("CARGO_PKG_VERSION"),
        core.display()
    );
    if args.noreload {
        println!("Not watching files (--noreload)");
    } else {
        let list: Vec<String> = watched.iter().map(|p| p.display().to_string()).collect();
        println!("Watching {} for changes ({how})", list.join(", "));
    }
    println!("Configuration check: {check}");
    if let (Some(cmd), Some(port)) = (&args.app, app_port) {
        println!("App: {cmd} (PORT={port}), for requests that are not files");
    }
    if !listen.ip().is_loopback() {
        println!("Notice: listening on {listen}, reachable from other machines");
    }
    let host = match listen.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{}/", listen.port());
    println!("Serving {} at {url}", root.display());
    println!("Quit the server with CONTROL-C.");
    if std::env::var_os("HTTPD_DEV_HIDE_WARNING").is_none_or(|v| v != "1") {
        println!(
            "WARNING: This is a development server. Do not use it in a production deployment."
        );
    }
    if args.open {
        match browser::open(&url) {
            Some(program) => println!("Opened {url} with {program}"),
            None => {
                eprintln!("httpd-dev: no browser to open {url} (set BROWSER, or install xdg-utils)")
            }
        }
    }

    for ev in rx {
        match ev {
            Event::Signal => break,
            Event::Changed(paths) => {
                // A static file under DIR reloads browsers only, unless DIR itself is a watched source.
                let restart = app.is_some()
                    && paths.iter().any(|p| {
                        app_watch.iter().any(|w| {
                            p.starts_with(w) && (w.starts_with(&root) || !p.starts_with(&root))
                        })
                    });
                let shown: Vec<String> = paths
                    .iter()
                    .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
                    .collect();
                println!("Changed: {}", shown.join(", "));
                if let (true, Some(a)) = (restart, &app) {
                    // Browsers reload when the new app answers (App::start).
                    println!("Restarting the app");
                    a.restart();
                    continue;
                }
                let css = paths
                    .iter()
                    .all(|p| p.extension().is_some_and(|e| e == "css"));
                hub.send(if css { "css" } else { "reload" }, &shown.join(" "));
            }
        }
    }
    println!("Stopping");
    // Every group at once: the app (unless a restart holds it: that one hurries now),
    // httpd-tls and core.
    let mut app_child = app.as_ref().and_then(|a| a.close());
    let mut children: Vec<&mut std::process::Child> = vec![&mut core_child];
    children.extend(tls_child.as_mut());
    children.extend(app_child.as_mut());
    supervisor::stop_groups(&mut children, &|| interrupts.load(Ordering::SeqCst) > 1);
    if let Some(a) = &app {
        a.join();
    }
    guard::finish();
    Ok(())
}
