//! Listeners, accept loops, the per-connection task, and signals.
//!
//! A connection: (1) peek the first byte — a TLS connection opens with a handshake record
//! (0x16, RFC 8446 §5.1); anything else is answered with a short 400 if it looks like HTTP
//! and closed; (2) the handshake, bounded by `--handshake-timeout`; (3) connect to the
//! backend, bounded by `--backend-timeout` (down: log, close the client, keep serving);
//! (4) the PROXY header, then [`pump`](crate::pump) until both sides close or the idle
//! timeout. A semaphore caps open connections: at the cap the accept loop waits and new
//! clients queue in the kernel backlog.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::certs::{common_name, CertSource, CertStore, SniResolver};
use crate::config::{Backend, Config};
use crate::error::{Error, Result};
use crate::proxy_header::{self, ClientCert, ConnInfo};
use crate::pump::{pump, Outcome};

/// The most client bytes sent to the backend together with the PROXY header.
const FIRST_READ: usize = 4096;

/// How long open connections may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

struct Shared {
    config: Config,
    acceptor: TlsAcceptor,
    permits: Arc<Semaphore>,
}

/// Binds one listener with a deep backlog (the kernel queues clients while we are at
/// `--max-connections`).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let bind_err = |source| Error::Bind {
        addr: addr.to_string(),
        source,
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind_err)?;
    socket.set_reuseaddr(true).map_err(bind_err)?;
    socket.bind(addr).map_err(bind_err)?;
    socket.listen(4096).map_err(bind_err)
}

/// Serves until SIGTERM or SIGINT, then drains open connections (up to 10 s). `reread`
/// (with `-f`) builds the configuration again from the file on SIGHUP.
pub async fn serve(
    config: Config,
    store: CertStore,
    reread: Option<&dyn Fn() -> Result<Config>>,
) -> Result<()> {
    let names = store.names();
    let resolver = Arc::new(SniResolver::new(store));
    let tls = Arc::new(config.server_config(Arc::clone(&resolver))?);
    let listeners = config
        .listen
        .iter()
        .map(|a| bind(*a))
        .collect::<Result<Vec<_>>>()?;
    let redirect = config.redirect_http.map(bind).transpose()?;
    let bad_signal = |e| Error::Bind {
        addr: "signal handler".into(),
        source: e,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(bad_signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(bad_signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(bad_signal)?;

    let max = config.max_connections;
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls),
        permits: Arc::new(Semaphore::new(max)),
        config,
    });
    for (i, n) in names.iter().enumerate() {
        info!(certificate = i, names = %n.join(","), "loaded");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut https_port = 443;
    for listener in listeners {
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: "listener".into(),
            source,
        })?;
        https_port = addr.port();
        eprintln!(
            "httpd-tls: listening on {addr} (tls) -> {} (proxy protocol {:?})",
            shared.config.backend, shared.config.proxy_protocol
        );
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop_rx.clone()));
    }
    if let Some(listener) = redirect {
        if let Ok(addr) = listener.local_addr() {
            eprintln!("httpd-tls: listening on {addr} (http redirect to https port {https_port})");
        }
        tokio::spawn(redirect_loop(
            listener,
            Arc::clone(&shared),
            https_port,
            stop_rx,
        ));
    }
    eprintln!("httpd-tls: ready");

    // The certificate list the last successful (re)load used.
    let mut active = shared.config.certs.clone();
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&shared.config, &mut active, reread, &resolver),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let _ = stop_tx.send(true);
    let open = max - shared.permits.available_permits();
    info!(open, "stopping: no new connections, waiting for open ones");
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if timeout(DRAIN, shared.permits.acquire_many(all))
        .await
        .is_err()
    {
        warn!("drain timeout: closing remaining connections");
    }
    info!("stopped");
    Ok(())
}

/// SIGHUP: read the configuration file again (with `-f`), then load every certificate it
/// names; on any failure keep the old set. Only certificates change: listeners, the
/// backend and TLS settings stay as started (a restart applies them), as the log says.
fn reload(
    started: &Config,
    active: &mut Vec<CertSource>,
    reread: Option<&dyn Fn() -> Result<Config>>,
    resolver: &SniResolver,
) {
    let certs = match reread {
        None => active.clone(),
        Some(read) => match read() {
            Ok(new) => {
                warn_restart_only(started, &new);
                new.certs
            }
            Err(e) => {
                let mut message = error_chain(&e);
                if let Error::ConfFile { messages, .. } = &e {
                    message.push('\n');
                    message.push_str(messages.join("\n").trim_end());
                }
                error!(error = %message, "reload failed, keeping the old configuration and certificates");
                return;
            }
        },
    };
    let provider = crate::config::provider();
    match CertStore::load(&certs, &provider) {
        Ok(store) => {
            let count = store.len();
            resolver.replace(store);
            *active = certs;
            info!(certificates = count, "reloaded certificates");
        }
        Err(e) => {
            error!(error = %error_chain(&e), "reload failed, keeping the old certificates");
        }
    }
}

/// Logs the settings a reloaded file changed that only a restart applies.
fn warn_restart_only(started: &Config, new: &Config) {
    if new.listen != started.listen {
        warn!(
            started = ?started.listen,
            file = ?new.listen,
            "the listen addresses in the file differ; listeners are not changed by a reload (restart to apply)"
        );
    }
    if new.min_tls != started.min_tls || new.client_ca != started.client_ca {
        warn!("SSLProtocol/SSLVerifyClient changes take effect only after a restart");
    }
}

/// An error and its causes on one line.
fn error_chain(e: &Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn next_client(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    loop {
        let permit = tokio::select! {
            p = Arc::clone(permits).acquire_owned() => p.ok()?,
            _ = stop.changed() => return None,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return None,
        };
        match accepted {
            Ok((stream, peer)) => return Some((stream, peer, permit)),
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    while let Some((stream, peer, permit)) =
        next_client(&listener, &shared.permits, &mut stop).await
    {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            connection(&shared, stream, peer).await;
            drop(permit);
        });
    }
}

async fn redirect_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    https_port: u16,
    mut stop: watch::Receiver<bool>,
) {
    while let Some((stream, _, permit)) = next_client(&listener, &shared.permits, &mut stop).await {
        let read_timeout = shared.config.handshake_timeout;
        tokio::spawn(async move {
            crate::redirect::serve(stream, https_port, read_timeout).await;
            drop(permit);
        });
    }
}

async fn connection(shared: &Shared, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().ok();
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let mut first = [0u8; 1];
    match timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => return not_tls(tcp, peer, first[0]).await,
        Ok(_) => return,
        Err(_) => {
            debug!(client = %peer, "handshake timeout (no data)");
            return;
        }
    }
    let mut tls = match timeout_at(deadline, shared.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(client = %peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            debug!(client = %peer, "handshake timeout");
            return;
        }
    };
    let info = conn_info(&tls, peer, local);
    let header = proxy_header::encode(shared.config.proxy_protocol, &info);
    let limit = shared.config.backend_timeout;
    let result = match &shared.config.backend {
        Backend::Tcp(addr) => match timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(backend)) => {
                let _ = backend.set_nodelay(true);
                forward(shared, &mut tls, backend, &header, peer).await;
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".into()),
        },
        Backend::Unix(path) => match timeout(limit, UnixStream::connect(path)).await {
            Ok(Ok(backend)) => {
                forward(shared, &mut tls, backend, &header, peer).await;
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".into()),
        },
    };
    if let Err(e) = result {
        warn!(client = %peer, backend = %shared.config.backend, error = %e, "backend unavailable, closing the client connection");
        let _ = timeout(Duration::from_secs(1), tls.shutdown()).await;
    }
}

async fn forward<B>(
    shared: &Shared,
    tls: &mut TlsStream<TcpStream>,
    mut backend: B,
    header: &[u8],
    peer: SocketAddr,
) where
    B: AsyncRead + AsyncWrite + Unpin,
{
    if !header.is_empty() {
        // The header goes out in one segment with the client's first bytes when they are
        // already here (the usual case: a client sends its request right behind its
        // Finished), which saves the backend a read and a wake-up per connection; when
        // they are not, the header goes alone at once, so a backend that speaks first is
        // not kept waiting.
        let mut first = Vec::with_capacity(header.len() + FIRST_READ);
        first.extend_from_slice(header);
        first.resize(header.len() + FIRST_READ, 0);
        let mut read = ReadBuf::new(&mut first[header.len()..]);
        let ready = std::future::poll_fn(|cx| match Pin::new(&mut *tls).poll_read(cx, &mut read) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => Poll::Ready(Ok(())),
        })
        .await;
        if let Err(e) = ready {
            debug!(client = %peer, error = %e, "connection error");
            return;
        }
        let got = read.filled().len();
        first.truncate(header.len() + got);
        if let Err(e) = backend.write_all(&first).await {
            warn!(client = %peer, error = %e, "backend closed before the PROXY header");
            return;
        }
    }
    match pump(tls, &mut backend, shared.config.idle_timeout).await {
        Outcome::Done(up, down) => debug!(client = %peer, up, down, "closed"),
        Outcome::Idle => debug!(client = %peer, "idle timeout"),
        Outcome::Failed(e) => debug!(client = %peer, error = %e, "connection error"),
    }
}

fn conn_info(tls: &TlsStream<TcpStream>, peer: SocketAddr, local: Option<SocketAddr>) -> ConnInfo {
    let (_, conn) = tls.get_ref();
    ConnInfo {
        client: Some(peer),
        local,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        sni: conn.server_name().map(str::to_string),
        version: conn.protocol_version().map(proxy_header::version_name),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| proxy_header::openssl_cipher_name(s.suite())),
        // rustls hands out peer certificates only after its verifier accepted them.
        client_cert: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| ClientCert {
                common_name: webpki::EndEntityCert::try_from(c)
                    .ok()
                    .and_then(|e| common_name(e.subject())),
                verified: true,
            }),
    }
}

/// Plain HTTP (or garbage) on the TLS port: a readable 400 for HTTP, as nginx does, then
/// close after draining briefly so the client sees the answer rather than a reset.
async fn not_tls(mut tcp: TcpStream, peer: SocketAddr, first: u8) {
    debug!(client = %peer, "not a TLS client hello");
    if first.is_ascii_uppercase() {
        let body = "This port speaks TLS: use https:// instead of http://.\n";
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(response.as_bytes()).await;
    }
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = timeout(Duration::from_secs(1), async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
