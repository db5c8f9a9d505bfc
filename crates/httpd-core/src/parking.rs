//! Parked connections: kept-alive HTTP/1.1 connections idle between requests, and new
//! ones that have sent nothing yet, held as data rather than as tasks.
//!
//! A connection idle for a moment gives up hyper's state and buffers
//! ([`crate::connection`]), then its task and its registration with tokio's reactor too
//! (a new connection silent for that moment has no hyper state yet, and gives up the rest):
//! its socket goes to the parking lot's own poller (an epoll instance through mio, itself
//! one descriptor in tokio's reactor), and what it needs to go on ([`Idle`]) to a slot of
//! a table. One task, [`Parking::run`], waits for all of them:
//! - a parked socket turns readable (a request, or the client closing): the connection
//!   goes back to tokio in a new task ([`Idle::resume`]);
//! - the earliest deadline passes (KeepAliveTimeout; for a new connection, the
//!   `RequestReadTimeout header=` wait for its first bytes): the connections due are closed;
//! - the server stops: every parked connection is closed.
//!
//! When MaxRequestWorkers connections are open, a new one takes the place of the parked
//! connection nearest its deadline ([`Parking::evict`]) rather than being turned away.
//!
//! A reload closes them too ([`Parking::close_all`]), as Apache's and nginx's graceful
//! restarts close idle keep-alive connections: their next request gets the new
//! configuration on a new connection.
//!
//! A parked connection then costs its slot (144 bytes: [`Idle`] keeps no allocation of
//! its own) and its deadline (16 bytes in a B-tree). Waiting in a task of its own cost
//! about 1,400 bytes: the task, its future with a timer and a stop waiter, tokio's
//! registration of the socket (256 bytes, cache-line aligned), the connection's context;
//! nginx keeps an idle connection in about 500.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mio::unix::SourceFd;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::connection::Idle;
use crate::listener::{StdStream, Stream};
use crate::sys::Poller;

/// The parking lot of a server (one per [`crate::server::ServerState`]).
pub struct Parking {
    /// Readable when a parked socket is.
    poller: AsyncFd<Poller>,
    registry: mio::Registry,
    lot: Mutex<Lot>,
    /// A deadline earlier than all others was added: [`Parking::run`] sleeps until it.
    earlier: Notify,
    /// Deadlines are milliseconds since this instant.
    epoch: Instant,
}

struct Lot {
    slots: Vec<Option<Slot>>,
    /// Empty slots, by index.
    free: Vec<u32>,
    /// (deadline, slot), the earliest first.
    deadlines: BTreeSet<(u64, u32)>,
    /// The server stopped: connections that go idle now are closed, not parked.
    stopped: bool,
}

struct Slot {
    socket: StdStream,
    conn: Idle,
    deadline: u64,
}

impl Lot {
    fn take(&mut self, i: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(i as usize)?.take()?;
        self.deadlines.remove(&(slot.deadline, i));
        self.free.push(i);
        if self.free.len() == self.slots.len() {
            // Empty: the table goes, so a burst of idle connections does not leave its
            // size resident.
            self.slots = Vec::new();
            self.free = Vec::new();
        }
        Some(slot)
    }
}

/// How many ready sockets [`Parking::run`] takes per poll.
const EVENTS: usize = 256;

impl Parking {
    /// Creates the poller and registers it with tokio (inside the runtime).
    pub fn new() -> io::Result<Parking> {
        let (poller, registry) = Poller::new()?;
        Ok(Parking {
            poller,
            registry,
            lot: Mutex::new(Lot {
                slots: Vec::new(),
                free: Vec::new(),
                deadlines: BTreeSet::new(),
                stopped: false,
            }),
            earlier: Notify::new(),
            epoch: Instant::now(),
        })
    }

    /// Holds `conn` and its socket until the client sends something (or closes), when it
    /// is served again in a new task; until `left` has passed (KeepAliveTimeout), or the
    /// server stops, when it is closed.
    pub fn park(&self, socket: Stream, conn: Idle, left: Duration) {
        let socket = match socket.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "an idle connection could not be parked; closed");
                return;
            }
        };
        let deadline = self.millis(Instant::now() + left);
        let mut lot = lock(&self.lot);
        if lot.stopped {
            drop(lot);
            return;
        }
        let i = match lot.free.pop() {
            Some(i) => i,
            None => {
                lot.slots.push(None);
                (lot.slots.len() - 1) as u32
            }
        };
        let fd = socket.as_raw_fd();
        let token = mio::Token(i as usize);
        if let Err(e) = self
            .registry
            .register(&mut SourceFd(&fd), token, mio::Interest::READABLE)
        {
            lot.free.push(i);
            drop(lot);
            tracing::debug!(error = %e, "an idle connection could not be parked; closed");
            return;
        }
        let earliest = lot.deadlines.first().is_none_or(|&(d, _)| deadline < d);
        lot.deadlines.insert((deadline, i));
        lot.slots[i as usize] = Some(Slot {
            socket,
            conn,
            deadline,
        });
        drop(lot);
        if earliest {
            self.earlier.notify_one();
        }
    }

    /// The parking lot's task, for as long as the server runs: wakes parked connections
    /// and closes them at their deadline. When `stop` turns, closes all of them and returns.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let resume_stop = stop.clone();
        let mut events = mio::Events::with_capacity(EVENTS);
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        loop {
            let next = lock(&self.lot).deadlines.first().map(|&(d, _)| d);
            if let Some(d) = next {
                sleep.as_mut().reset(self.epoch + Duration::from_millis(d));
            }
            tokio::select! {
                ready = self.poller.readable() => match ready {
                    Ok(mut guard) => {
                        if !self.wake(&mut events, &resume_stop) {
                            guard.clear_ready();
                        }
                    }
                    Err(e) => {
                        // Not expected from an epoll descriptor; the deadlines still close
                        // what is parked.
                        tracing::error!(error = %e, "idle connections' poller failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = &mut sleep, if next.is_some() => self.expire(),
                () = self.earlier.notified() => {}
                () = crate::server::stopped(&mut stop) => break,
            }
        }
        let closed = self.close_all(true);
        tracing::debug!(connections = closed, "stopping: idle connections closed");
    }

    /// Closes every parked connection (a reload: their next request would be served with
    /// the old configuration); with `stop`, also those that go idle from now on.
    pub fn close_all(&self, stop: bool) -> usize {
        let slots = {
            let mut lot = lock(&self.lot);
            lot.stopped |= stop;
            lot.deadlines = BTreeSet::new();
            lot.free = Vec::new();
            std::mem::take(&mut lot.slots)
        };
        slots.iter().flatten().count()
    }

    /// Serves again the parked connections whose sockets turned readable; false when
    /// there were none.
    fn wake(&self, events: &mut mio::Events, stop: &watch::Receiver<bool>) -> bool {
        match self.poller.get_ref().poll(events) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
            Err(e) => {
                tracing::error!(error = %e, "idle connections' poller failed");
                return false;
            }
        }
        for event in events.iter() {
            let Some(slot) = lock(&self.lot).take(event.token().0 as u32) else {
                continue;
            };
            let fd = slot.socket.as_raw_fd();
            let _ = self.registry.deregister(&mut SourceFd(&fd));
            match slot.socket.into_tokio() {
                Ok(stream) => slot.conn.resume(stream, stop.clone()),
                Err(e) => {
                    tracing::debug!(error = %e, "a parked connection could not be resumed; closed")
                }
            }
        }
        !events.is_empty()
    }

    /// Closes the parked connection nearest its deadline, to make room for a new one when
    /// MaxRequestWorkers connections are open (nginx reuses its idle keep-alive and
    /// not-yet-requested connections so, and Apache's event MPM closes kept-alive ones):
    /// false when none is parked. Its client sees the connection close between requests,
    /// as at KeepAliveTimeout.
    pub fn evict(&self) -> bool {
        let mut lot = lock(&self.lot);
        let Some(&(_, i)) = lot.deadlines.first() else {
            return false;
        };
        let closed = lot.take(i);
        drop(lot);
        if closed.is_some() {
            tracing::debug!("MaxRequestWorkers reached: an idle connection closed for a new one");
        }
        closed.is_some()
    }

    /// Closes the connections whose KeepAliveTimeout has passed.
    fn expire(&self) {
        let now = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64;
        let mut due = Vec::new();
        {
            let mut lot = lock(&self.lot);
            while let Some(&(d, i)) = lot.deadlines.first() {
                if d > now {
                    break;
                }
                due.extend(lot.take(i));
            }
        }
        tracing::trace!(
            connections = due.len(),
            "KeepAliveTimeout: idle connections closed"
        );
    }

    /// `t` in milliseconds since the epoch, rounded up (a deadline is never early).
    fn millis(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        (d.as_nanos().div_ceil(1_000_000)) as u64
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
