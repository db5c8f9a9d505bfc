//! The accept loops and the server's shared state. [`run`] takes already-bound listeners
//! and a shutdown future (mini-redis style), so tests bind port 0 and never race.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::connection;
use crate::listener::{Listener, Stream};
use crate::parking::Parking;
use crate::site::Site;
use crate::status::Stats;

/// State that outlives configurations: the current site, counters, open connections.
pub struct ServerState {
    site: RwLock<Arc<Site>>,
    pub stats: Stats,
    pub started: Instant,
    pub open_conns: AtomicUsize,
    /// Requests being handled right now.
    pub busy: AtomicUsize,
    drained: Notify,
    /// Idle keep-alive connections.
    pub parking: Parking,
}

impl ServerState {
    /// Inside the runtime (the parking lot's poller registers with it).
    pub fn new(site: Site) -> std::io::Result<ServerState> {
        Ok(ServerState {
            site: RwLock::new(Arc::new(site)),
            stats: Stats::default(),
            started: Instant::now(),
            open_conns: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            drained: Notify::new(),
            parking: Parking::new()?,
        })
    }

    /// The configuration new connections use.
    pub fn site(&self) -> Arc<Site> {
        Arc::clone(&self.site.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Swaps in a new configuration. Connections serving a request finish it with the
    /// one they started with; idle ones are closed (parked ones here, the others when
    /// they go idle), so a client's next request gets the new one.
    pub fn swap(&self, site: Site) {
        *self.site.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(site);
        let closed = self.parking.close_all(false);
        tracing::debug!(connections = closed, "reload: idle connections closed");
    }
}

/// Completes when the stop flag turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// [`stopped`], for a `select!` next to a busy future (a connection): `select!` polls every
/// branch on every wake-up of the task, and polling the stop signal (a watch channel: a
/// lock and its waiter list) on each was a measurable part of a keep-alive request. This
/// one is polled only when its own waker has fired since, and on the first poll.
/// Nothing is allocated or registered until it is first polled.
pub fn stopped_quietly(stop: &mut watch::Receiver<bool>) -> impl Future<Output = ()> + Send + '_ {
    let mut stop = Some(stop);
    let mut armed = None;
    std::future::poll_fn(move |cx| {
        let armed = armed.get_or_insert_with(|| {
            let flag = Arc::new(WokenFlag {
                woken: AtomicBool::new(true),
                task: futures_util::task::AtomicWaker::new(),
            });
            let stop = stop.take().expect("taken once, on the first poll");
            WhenWoken {
                fut: Box::pin(stopped(stop)),
                waker: Waker::from(Arc::clone(&flag)),
                flag,
            }
        });
        Pin::new(armed).poll(cx)
    })
}

/// Set by the inner future's waker, which also wakes the task.
struct WokenFlag {
    woken: AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

struct WhenWoken<F> {
    fut: Pin<Box<F>>,
    flag: Arc<WokenFlag>,
    /// Wakes `flag`: the waker the inner future is polled with.
    waker: Waker,
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Registered before the flag is read: a wake-up in between still wakes the task.
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.fut
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

/// Counts a connection as open until it is dropped (with its task, or with its slot in
/// the parking lot).
pub struct ConnGuard(Arc<ServerState>);

impl ConnGuard {
    pub fn state(&self) -> &Arc<ServerState> {
        &self.0
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open_conns.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting, asks open connections to
/// finish, and waits for them up to GracefulShutdownTimeout.
pub async fn run(listeners: Vec<Listener>, state: Arc<ServerState>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let parking = {
        let (state, stop) = (Arc::clone(&state), stop_rx.clone());
        tokio::spawn(async move { state.parking.run(stop).await })
    };
    let mut loops = Vec::new();
    for l in listeners {
        loops.push(tokio::spawn(accept_loop(
            l,
            Arc::clone(&state),
            stop_rx.clone(),
        )));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    // Parked connections are closed at once; the others finish their request first.
    let _ = parking.await;
    let grace = state.site().server.graceful_shutdown_timeout;
    let drained = async {
        loop {
            let notified = state.drained.notified();
            if state.open_conns.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            open = state.open_conns.load(Ordering::Acquire),
            "GracefulShutdownTimeout reached; closing the remaining connections"
        );
    }
}

async fn accept_loop(listener: Listener, state: Arc<ServerState>, stop: watch::Receiver<bool>) {
    let local = match listener.local_addr() {
        crate::site::ListenAddr::Tcp(a) => Some(a),
        crate::site::ListenAddr::Unix(_) => None,
    };
    // One stop future for the whole loop: made anew for each connection, it was a lock
    // and a waiter list entry each time.
    let mut stop_rx = stop.clone();
    let stopping = stopped(&mut stop_rx);
    tokio::pin!(stopping);
    loop {
        let accepted = tokio::select! {
            biased;
            r = listener.accept() => r,
            _ = &mut stopping => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let site = state.site();
        let open = state.open_conns.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = ConnGuard(Arc::clone(&state));
        if open > site.server.max_request_workers && !state.parking.evict() {
            shed(stream);
            drop(guard);
            continue;
        }
        // Boxed: tokio moves a task's future when it spawns it and when it finishes
        // (about 2.5 KiB for a connection: callgrind counted seven copies per
        // connection, 2,000 instructions); a box is one copy.
        tokio::spawn(Box::pin(connection::serve(
            stream,
            peer,
            local,
            site,
            stop.clone(),
            guard,
        )));
    }
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

/// MaxRequestWorkers reached and no idle connection to close for this one: a short 503
/// and close, without waiting for the request.
fn shed(stream: Stream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n";
    let _ = match &stream {
        Stream::Tcp(s) => s.try_write(BUSY),
        Stream::Unix(s) => s.try_write(BUSY),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopped_quietly_completes_when_the_flag_turns() {
        let (tx, mut rx) = watch::channel(false);
        {
            let mut stop = std::pin::pin!(stopped_quietly(&mut rx));
            // Pending, and polled again without a wake-up it stays so.
            for _ in 0..3 {
                assert!(futures_util::poll!(stop.as_mut()).is_pending());
            }
            let waiter = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(true).unwrap();
                tx
            });
            tokio::time::timeout(Duration::from_secs(10), stop)
                .await
                .expect("the stop reached the waiting future");
            drop(waiter.await.unwrap());
        }
        // Already stopped: done at once.
        tokio::time::timeout(Duration::from_secs(10), stopped_quietly(&mut rx))
            .await
            .unwrap();
    }
}
