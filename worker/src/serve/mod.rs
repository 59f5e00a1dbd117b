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
//! # Layout
//! - this file: [`run`] (the router and the accept loop) and the request handlers;
//! - [`settings`]: `[serve]` ([`ServeSettings`]) and the options `run` takes;
//! - `coalesce`: one render shared by concurrent requests for one key;
//! - `conn`: one connection under the cap, its timeouts and the open-file limit.

mod coalesce;
mod conn;
pub mod settings;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use rendition_pipeline::job::Engine;
use rendition_pipeline::ondemand::OnDemand;
use rendition_pipeline::respond::{self, Outcome};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::metrics::{self, ServeMetrics};
use coalesce::InFlight;
pub use coalesce::{Coalescer, Joined};
use conn::{connection, is_connection_error, raise_open_file_limit};
pub use settings::{ServeOptions, ServeSettings};

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
