//! `rendition serve --local DIR`: the on-demand path on loopback, over a folder bucket.
//! The same URLs as the CDN + Lambda deployment (path = `/` + derivative key; signed
//! specs in the query), with:
//! - request coalescing: concurrent requests for one missing derivative share one render
//!   and all get its bytes, or the same error; a waiter gives up after a timeout while the
//!   render carries on for the others;
//! - a bounded source cache, so several variants of one source read it once;
//! - status, headers and bodies decided by `rendition_pipeline::respond`, as in the Lambda
//!   (`If-None-Match` → 304, 405 with `Allow`, JSON errors with 5xx details kept in the log,
//!   503 with `Retry-After`, 504 for a waiter that gave up);
//! - `GET /sheet/{source key}`: the contact sheet of a source ([`crate::sheet`]), its
//!   variants linked by their derivative URLs.
//! - bounded load: at most `serve.max_connections` open connections (past it a new one is
//!   closed at once), request headers within `serve.header_read_timeout_secs`, idle
//!   connections closed after `serve.idle_timeout_secs`, and a shutdown that waits at most
//!   `worker.shutdown_grace_secs` for the connections in flight;
//! - `X-Content-Type-Options: nosniff` on every response, the contact sheets' included;
//! - `GET /metrics`: Prometheus text ([`ServeMetrics`]: responses by status, render
//!   seconds, coalesced waits, cache hits, renders in flight, rejected connections) on the
//!   serve listener itself, so `serve` and a worker on one host never contend for
//!   `worker.http_addr`. No derivative key is one segment long, so it names no derivative.
//!
//! Its section of the configuration, `[serve]` ([`ServeSettings`]), is defined here.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::{BoxFuture, FutureExt, Shared};
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rendition_pipeline::config::{ConfigError, Settings};
use rendition_pipeline::job::Engine;
use rendition_pipeline::ondemand::{Derivative, OnDemand, OnDemandError};
use rendition_pipeline::respond::{self, Outcome};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::app::WorkerSettings;
use crate::metrics::{self, ServeMetrics};

type Rendered = Result<Arc<Derivative>, Arc<OnDemandError>>;

/// Concurrent requests for the same key share one in-flight render.
#[derive(Clone, Default)]
pub struct Coalescer {
    inflight: Arc<Mutex<HashMap<String, Shared<BoxFuture<'static, Rendered>>>>>,
}

/// A request's share of a render: the render, and whether it was already in flight.
pub struct Joined {
    pub render: Shared<BoxFuture<'static, Rendered>>,
    /// True when another request started it (this one waits for theirs).
    pub waited: bool,
}

impl Coalescer {
    /// Joins the render of `key` in flight, or starts one with `make`. The render runs in
    /// its own task, so waiters that time out do not cancel it for the others.
    pub fn join<F>(&self, key: &str, make: impl FnOnce() -> F) -> Joined
    where
        F: Future<Output = Rendered> + Send + 'static,
    {
        let mut map = self.inflight.lock().expect("coalescer lock");
        if let Some(existing) = map.get(key) {
            return Joined {
                render: existing.clone(),
                waited: true,
            };
        }
        let task = tokio::spawn(make());
        let map_ref = Arc::clone(&self.inflight);
        let owned_key = key.to_string();
        let shared = async move {
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(Arc::new(OnDemandError::Crashed(e.to_string()))),
            };
            map_ref.lock().expect("coalescer lock").remove(&owned_key);
            outcome
        }
        .boxed()
        .shared();
        map.insert(key.to_string(), shared.clone());
        Joined {
            render: shared,
            waited: false,
        }
    }
}

/// A render in flight, counted in the gauge until it is dropped (finished, or its task
/// aborted at shutdown).
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn enter(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Clone)]
struct AppState {
    ondemand: OnDemand,
    /// Finds manifests for the contact sheets (same store and bucket as `ondemand`).
    engine: Engine,
    coalescer: Coalescer,
    wait: Duration,
    metrics: ServeMetrics,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// `[serve]`: its listener, connection limits, render slots and source cache. (The section's
// description in the schema is its field's doc, in `crate::settings::CliSections`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Listen address (loopback by default).
    pub addr: String,
    /// How long a request waits for a render before giving up (the render carries on).
    pub wait_timeout_secs: u64,
    /// Memory for recently used sources, so several variants of one source read it once.
    pub source_cache_bytes: u64,
    /// Renders (misses) at once (0 = number of CPUs). Misses of one derivative share a
    /// render.
    pub max_renders: usize,
    /// How long a miss may wait for a render slot before it is answered
    /// `503 Service Unavailable` with `Retry-After`, in milliseconds.
    pub render_queue_ms: u64,
    /// Open connections at most; past it new connections are closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this many seconds of the connection (or of
    /// the previous response), else the connection is closed.
    pub header_read_timeout_secs: u64,
    /// A connection with no request in progress is closed after this many seconds.
    pub idle_timeout_secs: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            addr: "127.0.0.1:8080".into(),
            wait_timeout_secs: 30,
            source_cache_bytes: 256 * 1024 * 1024,
            max_renders: 0,
            render_queue_ms: 2000,
            max_connections: 512,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
        }
    }
}

impl ServeSettings {
    /// Checks rules types cannot express; the wait is compared with the core's render
    /// deadline.
    pub fn validate(&self, core: &Settings) -> Result<(), ConfigError> {
        let deadline = core.render.deadline_secs;
        if self.wait_timeout_secs <= deadline {
            return Err(ConfigError::Rule(format!(
                "serve.wait_timeout_secs ({}) must be longer than render.deadline_secs ({deadline}): a render over its budget is answered with its error, not a timeout",
                self.wait_timeout_secs
            )));
        }
        if self.max_connections == 0
            || self.header_read_timeout_secs == 0
            || self.idle_timeout_secs == 0
        {
            return Err(ConfigError::Rule(
                "serve: max_connections, header_read_timeout_secs and idle_timeout_secs must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Renders at once: the configured value, or the number of CPUs.
    pub fn max_renders(&self) -> usize {
        match self.max_renders {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Connection limits and timeouts of `rendition serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long a request waits for a render (the render carries on for the others).
    pub wait: Duration,
    /// Open connections at most; past it a new connection is closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this long of the connection or of the
    /// previous response.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no bytes moving for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// After `shutdown`, how long connections may take to finish before `run` returns.
    pub grace: Duration,
}

impl ServeOptions {
    /// `serve.*` and `worker.shutdown_grace_secs`.
    pub fn from_settings(s: &ServeSettings, worker: &WorkerSettings) -> Self {
        ServeOptions {
            wait: Duration::from_secs(s.wait_timeout_secs),
            max_connections: s.max_connections,
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            grace: Duration::from_secs(worker.shutdown_grace_secs),
        }
    }
}

/// Serves until `shutdown` resolves, then lets open connections finish for at most
/// `options.grace` and returns (what is still in flight then is dropped). `engine` must
/// use the same store and bucket as `ondemand`: it finds the manifests of `/sheet/` pages.
pub async fn run(
    listener: TcpListener,
    ondemand: OnDemand,
    engine: Engine,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    raise_open_file_limit(options.max_connections);
    let metrics = ServeMetrics::new();
    let state = AppState {
        ondemand,
        engine,
        coalescer: Coalescer::default(),
        wait: options.wait,
        metrics: metrics.clone(),
    };
    let scraped = metrics.clone();
    let app = Router::new()
        .route("/sheet/{*source}", get(sheet))
        .fallback(handle)
        .with_state(state)
        // Layers (not `route_layer`), so the fallback's responses get them too. Counting
        // is layered before `/metrics` is added: scrapes are not counted.
        .layer(axum::middleware::map_response_with_state(
            metrics.clone(),
            count_response,
        ))
        .route(
            "/metrics",
            get(move || {
                let text = scraped.render();
                async move { ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text) }
            }),
        )
        .layer(axum::middleware::map_response(nosniff));

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let http = Arc::new(http);
    // One permit per open connection: the task holds it until its socket is closed.
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut conns = JoinSet::new();
    info!(
        addr = %listener.local_addr()?,
        max_connections = options.max_connections,
        header_read_timeout_secs = options.header_read_timeout.as_secs(),
        idle_timeout_secs = options.idle_timeout.as_secs(),
        "serving derivatives"
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections, so the set only holds open ones.
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        warn!(error = %e, "connection task panicked");
                    }
                }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        // EMFILE and the like: the pending connection stays queued, so
                        // retrying at once would spin.
                        warn!(error = %e, "accept failed; retrying shortly");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    metrics.connections_rejected.inc();
                    debug!(
                        peer = %peer,
                        max_connections = options.max_connections,
                        rejected_total = metrics.connections_rejected.get(),
                        "connection over the cap closed"
                    );
                    drop(stream);
                    continue;
                };
                conns.spawn(connection(
                    stream,
                    Arc::clone(&http),
                    app.clone(),
                    options.idle_timeout,
                    stopped.clone(),
                    permit,
                ));
            }
        }
    }
    drop(listener);
    stop.send_replace(true);
    info!(
        open_connections = conns.len(),
        grace_secs = options.grace.as_secs(),
        "shutdown: finishing open connections"
    );
    let drained = tokio::time::timeout(options.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open_connections = conns.len(),
            "grace period over: closing connections in flight"
        );
    }
    // Aborts what is left (their renders are dropped with them).
    conns.shutdown().await;
    Ok(())
}

/// Errors of one pending connection (it is gone; the listener is fine).
fn is_connection_error(e: &io::Error) -> bool {
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
fn raise_open_file_limit(max_connections: usize) {
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
async fn connection(
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

/// Browsers must not guess another type than `Content-Type` (a derivative or an error
/// body rendered as HTML would be a script injection on this origin). The responder says
/// so on every derivative answer; this covers `/sheet/` and axum's own rejections.
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Counts every response by status (`/metrics` is routed past this layer).
async fn count_response(State(metrics): State<ServeMetrics>, response: Response) -> Response {
    metrics.response(response.status().as_u16());
    response
}

/// The responder's answer as an axum response.
fn to_response(answer: respond::Response) -> Response {
    let body = match answer.body {
        respond::Body::Empty => Body::empty(),
        respond::Body::Json(text) => Body::from(text),
        respond::Body::Bytes(bytes) => Body::from(bytes),
    };
    let mut response = Response::new(body);
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}

/// `GET /sheet/{source key}`: the contact sheet, or 404 when the source or its manifest
/// is missing.
async fn sheet(State(state): State<AppState>, Path(source): Path<String>) -> Response {
    match crate::sheet::build(&state.engine, &source, crate::sheet::Images::Linked).await {
        Ok(sheet) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            sheet.html,
        )
            .into_response(),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                warn!(source = %source, error = %e, "contact sheet failed");
            }
            let body =
                serde_json::json!({ "error": e.kind(), "message": e.to_string() }).to_string();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let (method, uri, headers) = (req.method(), req.uri(), req.headers());
    let req = respond::Request::from_headers(method.as_str(), uri.path(), uri.query(), headers);
    if let Some(refused) = respond::method_refused(&req) {
        return to_response(refused);
    }
    if let Some(latest) = state.ondemand.latest_for_path(req.path, now_unix()).await {
        return to_response(respond::respond(&req, Outcome::latest(&latest)));
    }
    let verified = match state.ondemand.verify(req.path, req.query, now_unix()) {
        Ok(v) => v,
        Err(e) => return to_response(respond::respond(&req, Outcome::Failed(&e))),
    };
    let accepts = req.accepts();
    let target = match state.ondemand.target(&verified, accepts) {
        Ok(t) => t,
        Err(e) => return to_response(respond::respond(&req, Outcome::Failed(&e))),
    };
    let ondemand = state.ondemand.clone();
    let metrics = state.metrics.clone();
    // Requests that resolve to the same stored key share one render.
    let key = target.coalescing_key().to_string();
    let vary = target.vary;
    let joined = state.coalescer.join(&key, move || async move {
        let _in_flight = InFlight::enter(&metrics.renders_in_flight);
        let started = Instant::now();
        let made = ondemand.get_target(&verified, &target).await;
        if made.as_ref().is_ok_and(|d| d.rendered) {
            metrics
                .render_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        made.map(Arc::new).map_err(Arc::new)
    });
    if joined.waited {
        state.metrics.coalesced_waits.inc();
    }
    let answer = match tokio::time::timeout(state.wait, joined.render).await {
        Ok(Ok(d)) => {
            if !d.rendered {
                state.metrics.cache_hits.inc();
            }
            // Whether the answer varies is this request's own (`….auto` or a named
            // format), not that of the request whose render it joined.
            let d = d.as_ref().clone().varying(vary);
            respond::respond(&req, Outcome::Found(&d))
        }
        Ok(Err(e)) => respond::respond(&req, Outcome::Failed(&e)),
        Err(_) => {
            warn!(key = %key, "gave up waiting for a render");
            respond::respond(&req, Outcome::GaveUp)
        }
    };
    to_response(answer)
}
