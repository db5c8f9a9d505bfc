//! httpd-tls: TLS termination in front of httpd-core (or any backend).
//!
//! Codemap:
//! - [`cli`]: the command line (`Args`) and its resolution into a [`config::Config`].
//! - [`config`]: the validated configuration and the rustls `ServerConfig` (Mozilla
//!   intermediate policy, resumption, client certificates).
//! - [`apache`]: `-f httpd.conf`: listeners and certificates from `<VirtualHost>` sections,
//!   through the shared config library.
//! - [`certs`]: PEM loading, the SNI certificate store, the reloadable resolver.
//! - [`server`]: listeners, the accept loops, one task per connection, signals (HUP
//!   reload, TERM drain).
//! - [`proxy_header`]: the PROXY protocol v1/v2 header the backend receives first.
//! - [`pump`]: bounded bidirectional copy with half-close and an idle timeout.
//! - [`redirect`]: the plain listener answering 301 to https.
//! - [`error`]: the error type and exit codes.
//!
//! Invariant: nothing a client sends can stop the server; per-connection errors are logged.

pub mod apache;
pub mod certs;
pub mod cli;
pub mod config;
pub mod error;
pub mod proxy_header;
pub mod pump;
pub mod redirect;
pub mod server;

pub use cli::Args;
pub use error::{Error, Result};

/// Runs httpd-tls for parsed arguments until SIGTERM/SIGINT.
pub fn run(args: &Args) -> Result<()> {
    init_logging();
    let config = match &args.config_file {
        Some(_) => apache::config_from_file(args)?,
        None => config::Config::from_args(args)?,
    };
    let provider = crate::config::provider();
    let store = certs::CertStore::load(&config.certs, &provider)?;
    // On one CPU (e.g. under `taskset -c 0`), a current-thread runtime avoids the
    // work-stealing scheduler's cross-thread wake-ups; otherwise one worker per CPU.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build().map_err(Error::Runtime)?;
    // With -f, SIGHUP reads the file again (certificates it names may have changed).
    let reread = || apache::config_from_file(args);
    let reread: Option<&dyn Fn() -> Result<config::Config>> =
        args.config_file.is_some().then_some(&reread as _);
    runtime.block_on(server::serve(config, store, reread))
}

fn init_logging() {
    use std::io::IsTerminal;
    // rustls logs client mistakes as warnings, one line per handshake (an IP address as
    // SNI name, which curl, wrk and ab all send for https://127.0.0.1/): noise a client
    // controls, so only its errors are shown unless HTTPD_TLS_LOG asks for more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("HTTPD_TLS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let color = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .try_init();
}
