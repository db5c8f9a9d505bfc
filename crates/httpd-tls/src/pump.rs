//! The bidirectional copy between the TLS client and the plaintext backend.
//!
//! `tokio::io::copy_bidirectional_with_sizes` does the copying: one fixed buffer per
//! direction (so memory per connection is bounded and a slow reader back-pressures the
//! writer), and an EOF on one side becomes a write shutdown on the other (a TLS
//! close_notify towards the client, a FIN towards the backend) while the other direction
//! keeps flowing. What it lacks is an idle timeout: [`Activity`] stamps every successful
//! read or write on the client side (all bytes in both directions pass there), and a
//! watchdog ends the connection when nothing moved for `idle`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Size of each direction's buffer: one full TLS record of plaintext.
pub const BUFFER: usize = 16 * 1024;

/// How a connection's copying ended.
#[derive(Debug)]
pub enum Outcome {
    /// Both directions reached EOF: (client → backend bytes, backend → client bytes).
    Done(u64, u64),
    /// Nothing moved for the idle timeout.
    Idle,
    Failed(io::Error),
}

/// Copies until both sides are done, an error, or `idle` without traffic.
pub async fn pump<C, B>(client: &mut C, backend: &mut B, idle: Duration) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let mut client = Activity {
        inner: client,
        start,
        last: &last,
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut client, backend, BUFFER, BUFFER);
    let watchdog = async {
        loop {
            let seen = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = start + seen + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        result = copy => match result {
            Ok((up, down)) => Outcome::Done(up, down),
            Err(e) => Outcome::Failed(e),
        },
        () = watchdog => Outcome::Idle,
    }
}

/// A stream wrapper that records the time of the last successful transfer.
struct Activity<'a, S> {
    inner: &'a mut S,
    start: Instant,
    last: &'a AtomicU64,
}

impl<S> Activity<'_, S> {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut *self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_and_propagates_half_close() {
        let (mut client, mut client_far) = tokio::io::duplex(64);
        let (mut backend, mut backend_far) = tokio::io::duplex(64);
        let task =
            tokio::spawn(
                async move { pump(&mut client, &mut backend, Duration::from_secs(5)).await },
            );
        client_far.write_all(b"request").await.unwrap();
        client_far.shutdown().await.unwrap();
        let mut got = Vec::new();
        backend_far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request", "client EOF reaches the backend as EOF");
        backend_far.write_all(b"response").await.unwrap();
        backend_far.shutdown().await.unwrap();
        let mut got = Vec::new();
        client_far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"response", "the other direction still flows");
        assert!(matches!(task.await.unwrap(), Outcome::Done(7, 8)));
    }

    #[tokio::test]
    async fn idle_timeout_ends_the_connection() {
        let (mut client, _client_far) = tokio::io::duplex(64);
        let (mut backend, _backend_far) = tokio::io::duplex(64);
        let outcome = pump(&mut client, &mut backend, Duration::from_millis(200)).await;
        assert!(matches!(outcome, Outcome::Idle), "{outcome:?}");
    }
}
