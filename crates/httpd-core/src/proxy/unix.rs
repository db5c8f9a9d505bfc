//! The connector for `ProxyPass /x unix:/path/app.sock|http://localhost/`: every
//! connection goes to the socket, whatever the URL's authority (which only fills Host).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

#[derive(Clone)]
pub struct UnixConnector {
    path: Arc<PathBuf>,
    timeout: Duration,
}

impl UnixConnector {
    pub fn new(path: PathBuf, timeout: Duration) -> UnixConnector {
        UnixConnector {
            path: Arc::new(path),
            timeout,
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<UnixStream>>> + Send>>;

impl tower_service::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Connecting {
        let path = Arc::clone(&self.path);
        let timeout = self.timeout;
        Box::pin(async move {
            let s = tokio::time::timeout(timeout, UnixStream::connect(&*path))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            Ok(TokioIo::new(s))
        })
    }
}
