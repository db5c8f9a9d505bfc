//! `RequestReadTimeout body=` for a request body on an HTTP/2 stream.
//!
//! On HTTP/1.1 the connection times body reads itself ([`crate::connection`]'s
//! `Phase::Body`): one request at a time, so a stalled read is that request's. An HTTP/2
//! connection carries many streams, and its reads cannot tell which one stalls, so each
//! body there gets its own clock: the pipeline puts a [`BodyTimer`] in the request's
//! extensions when a handler is about to read the body, the proxy reads the body through
//! a [`TimedBody`] and CGI through a [`BodyClock`], and when the clock fires the body
//! read fails and the pipeline answers 408, as on HTTP/1.1.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::site::ReadTimeout;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body timeout of one request (a request extension), and whether it fired.
#[derive(Clone, Debug)]
pub struct BodyTimer {
    limit: ReadTimeout,
    fired: Arc<AtomicBool>,
}

impl BodyTimer {
    pub fn new(limit: ReadTimeout) -> Self {
        BodyTimer {
            limit,
            fired: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a clock of this timer ran out (the body read failed because of it).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// A clock started now, when the handler starts reading the body.
    pub fn clock(&self) -> BodyClock {
        let start = Instant::now();
        let deadline = self.limit.deadline(start);
        BodyClock {
            limit: self.limit,
            start,
            deadline,
            sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            fired: Arc::clone(&self.fired),
        }
    }
}

/// A running body deadline: `RequestReadTimeout body=`'s initial limit, extended by
/// MinRate for each byte received.
pub struct BodyClock {
    limit: ReadTimeout,
    start: Instant,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    fired: Arc<AtomicBool>,
}

impl BodyClock {
    /// `bytes` more of the body arrived.
    pub fn received(&mut self, bytes: usize) {
        let (Some(deadline), Some(sleep)) = (self.deadline, self.sleep.as_mut()) else {
            return;
        };
        let later = self.limit.extended(deadline, self.start, bytes);
        if later != deadline {
            self.deadline = Some(later);
            sleep.as_mut().reset(later);
        }
    }

    /// The whole body arrived: nothing is timed any more.
    pub fn finished(&mut self) {
        self.deadline = None;
        self.sleep = None;
    }

    /// Ready once the deadline passed (and then marks the timer fired); never without a
    /// deadline.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.sleep.as_mut() else {
            return Poll::Pending;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.fired.store(true, Ordering::Release);
        self.finished();
        Poll::Ready(())
    }

    /// Resolves when `clock` runs out; never when there is none.
    pub async fn expired(clock: &mut Option<BodyClock>) {
        match clock {
            Some(c) => std::future::poll_fn(|cx| c.poll_expired(cx)).await,
            None => std::future::pending().await,
        }
    }
}

/// A request body read under a [`BodyClock`]: when the clock runs out before the body
/// ends, the next frame is an error.
pub struct TimedBody<B> {
    inner: B,
    clock: BodyClock,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, clock: BodyClock) -> Self {
        TimedBody { inner, clock }
    }
}

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.clock.received(data.len());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.clock.finished();
                Poll::Ready(None)
            }
            Poll::Pending => match this.clock.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(
                    "request body read timeout (RequestReadTimeout body=)".into(),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Duration;

    fn limit(initial: u64, max: u64, min_rate: u64) -> ReadTimeout {
        ReadTimeout {
            initial: Duration::from_secs(initial),
            max: Duration::from_secs(max),
            min_rate,
        }
    }

    type Frames = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>;

    /// A body whose frames arrive from a channel, as a slow client sends them.
    fn channel_body() -> (
        tokio::sync::mpsc::Sender<Bytes>,
        http_body_util::StreamBody<Frames>,
    ) {
        use futures_util::StreamExt;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(|b| Ok(Frame::data(b)))
            .boxed();
        (tx, http_body_util::StreamBody::new(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_at_the_deadline_and_marks_the_timer() {
        let timer = BodyTimer::new(limit(10, 0, 0));
        let (tx, inner) = channel_body();
        let mut body = TimedBody::new(inner, timer.clock());
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("RequestReadTimeout"), "{err}");
        assert!(timer.fired());
        // Paused time: the deadline is 10 s after the clock started, to the tick.
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn min_rate_extends_the_deadline_and_a_finished_body_is_never_timed_out() {
        // body=2,MinRate=100: 1,000 bytes buy 10 s more.
        let timer = BodyTimer::new(limit(2, 0, 100));
        let (tx, inner) = channel_body();
        let mut body = TimedBody::new(inner, timer.clock());
        tx.send(Bytes::from(vec![b'x'; 1000])).await.unwrap();
        body.frame().await.unwrap().unwrap();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(11)).await;
            tx.send(Bytes::from_static(b"late but in time"))
                .await
                .unwrap();
        });
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "late but in time");
        sender.await.unwrap();
        // The sender is gone: the body ends, and no deadline is left to fire.
        assert!(body.frame().await.is_none());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!timer.fired());
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_clock_resolves_and_none_never_does() {
        let timer = BodyTimer::new(limit(5, 0, 0));
        let mut clock = Some(timer.clock());
        BodyClock::expired(&mut clock).await;
        assert!(timer.fired());
        let mut none: Option<BodyClock> = None;
        let waited =
            tokio::time::timeout(Duration::from_secs(3600), BodyClock::expired(&mut none)).await;
        assert!(waited.is_err());
    }
}
