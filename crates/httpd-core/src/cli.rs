//! The command line and the process lifecycle: read the config (or the embedded default),
//! bind, serve, and react to signals (HUP reload, TERM/INT graceful stop, USR1 reopen
//! logs) as DESIGN.md specifies.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use httpd_conftest::{LoadOptions, Loaded};
use tokio::signal::unix::{signal, SignalKind};

use crate::error::Error;
use crate::listener::Listener;
use crate::server::{self, ServerState};
use crate::site::{self, Site};

/// httpd-core: the web server. Runs in the foreground until TERM or INT.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    /// The configuration file (default: ./httpd.conf, else an embedded default that
    /// serves the current directory on 127.0.0.1:8080).
    #[arg(short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// ServerRoot: where relative paths in the configuration resolve.
    #[arg(short = 'd', value_name = "DIR")]
    pub server_root: Option<PathBuf>,
    /// Define NAME for <IfDefine NAME>.
    #[arg(short = 'D', value_name = "NAME")]
    pub defines: Vec<String>,
    /// A directive read before the configuration file (repeatable).
    #[arg(short = 'C', value_name = "DIRECTIVE")]
    pub directives: Vec<String>,
    /// Validate the configuration and exit (0 valid, 1 errors, 2 unreadable).
    #[arg(short = 't')]
    pub test: bool,
}

/// Where the configuration comes from.
#[derive(Clone, Debug)]
enum Source {
    File(PathBuf),
    Embedded(String),
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Embedded(_) => "<embedded default>".into(),
        }
    }
}

/// The embedded default: the current directory on 127.0.0.1:8080, listings on.
///
/// Keep-alive is longer than a config file's defaults (KeepAliveTimeout 5 s as Apache's,
/// MaxKeepAliveRequests 1,000 as nginx's keepalive_requests): nginx's 75 s, and no
/// request limit, as python's http.server, Django's runserver and Caddy have none. Idle
/// connections cost little here and give way to new ones at MaxRequestWorkers; closing
/// a busy connection every 1,000 requests made shared/bench's 100 KiB row about 5% slower
/// (each new connection's receive window starts small again on the client).
fn embedded_default(cwd: &Path) -> String {
    let dir = cwd
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "Listen 127.0.0.1:8080\nServerName localhost\nKeepAliveTimeout 75\nMaxKeepAliveRequests 0\n\
         DocumentRoot \"{dir}\"\n<Directory \"{dir}\">\n    Options Indexes\n    Require all granted\n</Directory>\n"
    )
}

fn load(source: &Source, opts: &LoadOptions) -> Result<Loaded, Error> {
    match source {
        Source::File(p) => httpd_conftest::load(p, opts).map_err(|e| Error::ConfigUnreadable {
            path: p.clone(),
            source: std::io::Error::other(e.to_string()),
        }),
        Source::Embedded(text) => Ok(httpd_conftest::load_str(text, "<embedded default>", opts)),
    }
}

/// Loads and validates the configuration, printing diagnostics to stderr (and, with
/// `to_error_log`, each error to the ErrorLog too: a failed reload is looked for there).
fn load_config(source: &Source, opts: &LoadOptions, to_error_log: bool) -> Result<Loaded, Error> {
    let loaded = load(source, opts)?;
    if to_error_log {
        for d in loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == httpd_conftest::Severity::Error)
        {
            tracing::error!(
                "{}:{}:{}: {}",
                d.file.display(),
                d.line,
                d.column,
                d.message
            );
        }
    }
    // The embedded default lists the directory on purpose (like `python3 -m http.server`),
    // so its own "Options Indexes on the DocumentRoot" warning is not the user's concern;
    // errors (from -C directives, say) are still shown.
    let quiet = matches!(source, Source::Embedded(_)) && !loaded.has_errors();
    if !loaded.diagnostics.is_empty() && !quiet {
        eprint!("{}", loaded.render());
    }
    if loaded.has_errors() {
        return Err(Error::ConfigInvalid {
            path: source.name(),
            count: loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == httpd_conftest::Severity::Error)
                .count(),
        });
    }
    Ok(loaded)
}

/// Loads and builds a site; `previous` is the running one on a reload (its open log files
/// stand in for ones the server, no longer root, may not reopen).
fn load_site(source: &Source, opts: &LoadOptions, previous: Option<&Site>) -> Result<Site, Error> {
    // On a reload, errors also go to an ErrorLog that is not stderr already.
    let to_error_log =
        previous.is_some_and(|p| !matches!(p.server.error_log, site::ErrorLogTarget::Stderr));
    let loaded = load_config(source, opts, to_error_log)?;
    site::build::build(&loaded.config, &source.name(), previous)
}

/// The whole program; main.rs only calls this.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let opts = LoadOptions {
        server_root: args.server_root.clone(),
        defines: args.defines.clone(),
        directives: args.directives.clone(),
        // `-t` checks and exits; a server keeps its config and reloads.
        exit_after: args.test,
    };
    let source = match &args.file {
        Some(f) => Source::File(f.clone()),
        None if Path::new("httpd.conf").exists() => Source::File(PathBuf::from("httpd.conf")),
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            Source::Embedded(embedded_default(&cwd))
        }
    };
    if args.test {
        return match load(&source, &opts) {
            Ok(l) => {
                if !l.diagnostics.is_empty() {
                    eprint!("{}", l.render());
                }
                if l.has_errors() {
                    ExitCode::from(1)
                } else {
                    println!("Syntax OK");
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                report(&e);
                ExitCode::from(2)
            }
        };
    }
    match run(source, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

fn report(e: &Error) {
    eprintln!("httpd-core: error: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        eprintln!("caused by: {s}");
        src = s.source();
    }
    match e {
        Error::Bind { .. } => {
            eprintln!("hint: another server may be using the address; change Listen")
        }
        Error::ConfigUnreadable { .. } => eprintln!("hint: pass the configuration with -f FILE"),
        _ => {}
    }
}

/// The ErrorLog file, shared by every tracing event and reopened on USR1.
#[derive(Clone)]
struct ErrorLogFile(Arc<std::sync::Mutex<std::fs::File>>);

static ERROR_LOG: std::sync::OnceLock<(PathBuf, ErrorLogFile)> = std::sync::OnceLock::new();

impl ErrorLogFile {
    fn reopen(&self, path: &Path) {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => *self.0.lock().unwrap_or_else(|e| e.into_inner()) = f,
            Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot reopen ErrorLog"),
        }
    }
}

/// `ErrorLog "|command"`: each event is queued for the piped logger like an access log
/// line, so a stuck logger never holds up the thread that logs.
#[derive(Clone)]
struct ErrorLogPipe(Arc<crate::access_log::Sink>);

impl std::io::Write for ErrorLogPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing's fmt layer writes one formatted event (a whole line) per call.
        self.0.write_line(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Write for ErrorLogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // One event is formatted into one buffer; writing it under the lock keeps lines whole.
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_tracing(site: &Site) {
    let level = match site.server.log_level.to_ascii_lowercase().as_str() {
        "trace1" | "trace2" | "trace3" | "trace4" | "trace5" | "trace6" | "trace7" | "trace8" => {
            "trace"
        }
        "debug" => "debug",
        "info" | "notice" => "info",
        "warn" => "warn",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HTTPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    // A file or piped ErrorLog gets plain text; one that cannot be opened or started is
    // reported on stderr, which then stands in for it.
    let writer: Option<Result<BoxMakeWriter, String>> = match &site.server.error_log {
        site::ErrorLogTarget::Stderr => None,
        site::ErrorLogTarget::File(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(|f| {
                    let handle = ErrorLogFile(Arc::new(std::sync::Mutex::new(f)));
                    let _ = ERROR_LOG.set((p.clone(), handle.clone()));
                    BoxMakeWriter::new(move || handle.clone())
                })
                .map_err(|e| format!("cannot open ErrorLog {}: {e}", p.display())),
        ),
        site::ErrorLogTarget::Pipe(cmd) => Some(
            crate::access_log::Sink::pipe(cmd.clone())
                .map(|sink| {
                    let sink = ErrorLogPipe(Arc::new(sink));
                    BoxMakeWriter::new(move || sink.clone())
                })
                .map_err(|e| format!("cannot start the piped ErrorLog: {e}")),
        ),
    };
    match writer {
        Some(Ok(writer)) => {
            let _ = builder.with_ansi(false).with_writer(writer).try_init();
        }
        Some(Err(why)) => {
            let _ = builder.with_writer(std::io::stderr).try_init();
            tracing::error!("{why}; using stderr");
        }
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
}

fn run(source: Source, opts: LoadOptions) -> Result<(), Error> {
    let loaded = load_config(&source, &opts, false)?;
    // Resolved before the site is built, so piped loggers start as the User already.
    let server = &loaded.config.server;
    let identity = crate::privileges::resolve(server.user.as_deref(), server.group.as_deref())?;
    crate::privileges::set_target(identity.clone());
    let site = site::build::build(&loaded.config, &source.name(), None)?;
    init_tracing(&site);
    crate::sys::raise_nofile_limit();
    // One CPU (as when pinned with taskset): a single-threaded runtime avoids the
    // cross-thread wake-ups of the work-stealing one.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cpus);
        b
    };
    let rt = builder.enable_all().build().map_err(|source| Error::Io {
        what: "cannot start the runtime".into(),
        source,
    })?;
    rt.block_on(serve(site, source, opts, identity))
}

async fn serve(
    site: Site,
    source: Source,
    opts: LoadOptions,
    identity: Option<crate::privileges::Identity>,
) -> Result<(), Error> {
    let mut listeners = Listener::from_systemd();
    if listeners.is_empty() {
        if site.listen.is_empty() {
            return Err(Error::Setting(format!(
                "{}: no Listen directive",
                source.name()
            )));
        }
        for l in &site.listen {
            listeners.push(Listener::bind(&l.addr, l.defer_accept)?);
        }
    }
    if let Source::Embedded(_) = source {
        eprintln!(
            "httpd-core: no -f and no ./httpd.conf: serving {} with the embedded default config",
            std::env::current_dir().unwrap_or_default().display()
        );
    }
    for l in &listeners {
        match l.local_addr() {
            site::ListenAddr::Tcp(a) => eprintln!("httpd-core: listening on http://{a}"),
            site::ListenAddr::Unix(p) => eprintln!("httpd-core: listening on unix:{}", p.display()),
        }
    }
    let pid_file = site.server.pid_file.clone();
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|source| Error::Io {
            what: format!("cannot write PidFile {}", p.display()),
            source,
        })?;
    }
    // Listeners bound, logs and piped loggers open, PidFile written: root is no longer
    // needed (mod_unixd's order). The PidFile may then outlive the server if its
    // directory is not writable by the User.
    if let Some(id) = &identity {
        crate::privileges::drop_to(id)?;
        eprintln!(
            "httpd-core: running as uid {} gid {}",
            nix::unistd::geteuid(),
            nix::unistd::getegid()
        );
    }
    let state = Arc::new(ServerState::new(site).map_err(|source| Error::Io {
        what: "cannot create the poller of idle connections".into(),
        source,
    })?);
    let io_err = |source| Error::Io {
        what: "cannot install signal handlers".into(),
        source,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(io_err)?;
    let mut term = signal(SignalKind::terminate()).map_err(io_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(io_err)?;
    eprintln!("httpd-core: ready (pid {})", std::process::id());
    crate::notify::send("READY=1");

    let state2 = Arc::clone(&state);
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    crate::notify::reloading();
                    let old = state2.site();
                    match load_site(&source, &opts, Some(&old)) {
                        Ok(new) => {
                            // ListenOn compares AcceptFilter too: it is set when binding.
                            if new.listen != old.listen {
                                tracing::warn!("Listen changes take effect only after a restart; the listeners are kept");
                            }
                            if (&new.server.user, &new.server.group) != (&old.server.user, &old.server.group) {
                                tracing::warn!("User/Group changes take effect only after a restart");
                            }
                            state2.swap(new);
                            eprintln!("httpd-core: configuration reloaded");
                        }
                        Err(e) => {
                            // Where the administrator looks: the ErrorLog, when it is not
                            // stderr already (Apache logs a failed graceful restart there).
                            if !matches!(old.server.error_log, site::ErrorLogTarget::Stderr) {
                                tracing::error!("reload failed, keeping the old configuration: {e}");
                            }
                            eprintln!("httpd-core: error: reload failed, keeping the old configuration: {e}");
                        }
                    }
                    crate::notify::send("READY=1");
                }
                _ = usr1.recv() => {
                    let site = state2.site();
                    for h in &site.hosts {
                        for l in &h.access_logs {
                            l.sink.reopen();
                        }
                    }
                    if let Some((path, handle)) = ERROR_LOG.get() {
                        handle.reopen(path);
                    }
                    eprintln!("httpd-core: log files reopened");
                }
            }
        }
        crate::notify::send("STOPPING=1");
        eprintln!("httpd-core: stopping (graceful)");
    };
    server::run(listeners, Arc::clone(&state), shutdown).await;
    // Lines still queued for piped loggers go into their pipes before the exit closes them.
    crate::access_log::drain_pipes(std::time::Duration::from_secs(5));
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    eprintln!("httpd-core: stopped");
    Ok(())
}
