//! One connection of `serve`: driven under the connection cap with header and idle
//! timeouts, finished gracefully at shutdown; and the open-file limit the cap needs.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Errors of one pending connection (it is gone; the listener is fine).
pub(super) fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// File descriptors besides connections: the listener, stdio, the runtime, render helpers'
/// pipes, sources being read.
const FD_RESERVE: libc::rlim_t = 64;

/// Raises the soft open-file limit to the hard limit: every connection holds a descriptor
/// and the usual soft default (1,024) is too close to `max_connections` plus what renders
/// need.
pub(super) fn raise_open_file_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(error = %io::Error::last_os_error(), "could not read the open-file limit");
        return;
    }
    let previous = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            warn!(error = %io::Error::last_os_error(), "could not raise the open-file limit");
        }
    }
    info!(
        soft = limit.rlim_cur,
        hard = limit.rlim_max,
        previous_soft = previous,
        "open-file limit"
    );
    let needed = (max_connections as libc::rlim_t).saturating_add(FD_RESERVE);
    if limit.rlim_cur < needed {
        warn!(
            soft = limit.rlim_cur,
            max_connections,
            "open-file limit is below serve.max_connections plus a reserve: accepts may fail with EMFILE"
        );
    }
}

/// Drives one connection until it ends, is idle for `idle`, or (after `stopped`) has
/// finished its request in flight. Holds `_permit` (its slot under the cap) until then.
pub(super) async fn connection(
    stream: TcpStream,
    http: Arc<http1::Builder>,
    app: Router,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let app = TowerToHyperService::new(app);
    let requests = Arc::clone(&activity);
    let service = service_fn(move |req| {
        // Counted from the parsed head to the response, so a long render is never idle.
        let busy = Busy::enter(&requests);
        let response = app.call(req);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = until_true(&mut stopped), if !stopping => {
                // Closes an idle connection now, or after the response in progress.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(activity.next_check(idle)) => {
                if activity.idle_for(idle) {
                    // No request in progress: nothing is lost by dropping the socket.
                    debug!("idle connection closed");
                    return;
                }
            }
        }
    }
}

async fn until_true(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once `run` is over.
    let _ = rx.wait_for(|&v| v).await;
}

/// When a connection last moved bytes or finished a request, and how many requests it
/// has in progress.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
    in_progress: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// When the connection could next be idle for `idle`.
    fn next_check(&self, idle: Duration) -> Instant {
        if self.in_progress.load(Ordering::Relaxed) > 0 {
            Instant::now() + idle
        } else {
            self.last() + idle
        }
    }

    fn idle_for(&self, idle: Duration) -> bool {
        self.in_progress.load(Ordering::Relaxed) == 0 && Instant::now() >= self.last() + idle
    }
}

/// A request in progress on its connection.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_progress.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The idle time starts when the response is ready, not when the request came.
        self.0.touch();
        self.0.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting each read or write that moves bytes in its [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
