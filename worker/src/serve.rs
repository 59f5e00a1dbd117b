//! `rendition serve --local DIR`: the on-demand path on loopback, over a folder bucket.
//! The same URLs as the CDN + Lambda deployment (path = `/` + derivative key; signed
//! specs in the query), with:
//! - request coalescing: concurrent requests for one missing derivative share one render
//!   and all get its bytes, or the same error; a waiter gives up after a timeout while the
//!   render carries on for the others;
//! - a bounded source cache, so several variants of one source read it once;
//! - `ETag` / `If-None-Match` → 304;
//! - `GET /sheet/{source key}`: the contact sheet of a source ([`crate::sheet`]), its
//!   variants linked by their derivative URLs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::{BoxFuture, FutureExt, Shared};
use rendition_core::job::Engine;
use rendition_core::ondemand::{Derivative, OnDemand, OnDemandError};
use tokio::net::TcpListener;
use tracing::{info, warn};

type Outcome = Result<Arc<Derivative>, Arc<OnDemandError>>;

/// Concurrent requests for the same key share one in-flight render.
#[derive(Clone, Default)]
pub struct Coalescer {
    inflight: Arc<Mutex<HashMap<String, Shared<BoxFuture<'static, Outcome>>>>>,
}

impl Coalescer {
    /// Joins the render of `key` in flight, or starts one with `make`. The render runs in
    /// its own task, so waiters that time out do not cancel it for the others.
    pub fn join<F>(
        &self,
        key: &str,
        make: impl FnOnce() -> F,
    ) -> Shared<BoxFuture<'static, Outcome>>
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let mut map = self.inflight.lock().expect("coalescer lock");
        if let Some(existing) = map.get(key) {
            return existing.clone();
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
        shared
    }
}

#[derive(Clone)]
struct AppState {
    ondemand: OnDemand,
    /// Finds manifests for the contact sheets (same store and bucket as `ondemand`).
    engine: Engine,
    coalescer: Coalescer,
    wait: Duration,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves until `shutdown` resolves. `engine` must use the same store and bucket as
/// `ondemand`: it finds the manifests of `/sheet/` pages.
pub async fn run(
    listener: TcpListener,
    ondemand: OnDemand,
    engine: Engine,
    wait: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState {
        ondemand,
        engine,
        coalescer: Coalescer::default(),
        wait,
    };
    let app = Router::new()
        .route("/sheet/{*source}", get(sheet))
        .fallback(handle)
        .with_state(state);
    info!(addr = %listener.local_addr()?, "serving derivatives");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn error_response(err: &OnDemandError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": err.kind(), "message": err.to_string() }).to_string();
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    resp
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

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

async fn handle(State(state): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let verified = match state.ondemand.verify(&path, query.as_deref(), now_unix()) {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    let ondemand = state.ondemand.clone();
    let key = verified.key.clone();
    let shared = state.coalescer.join(&key, move || async move {
        ondemand
            .get_verified(&verified)
            .await
            .map(Arc::new)
            .map_err(Arc::new)
    });
    let outcome = match tokio::time::timeout(state.wait, shared).await {
        Ok(outcome) => outcome,
        Err(_) => {
            warn!(key = %key, "gave up waiting for a render");
            return (
                StatusCode::GATEWAY_TIMEOUT,
                "render still in progress; try again\n",
            )
                .into_response();
        }
    };
    match outcome {
        Ok(d) => {
            if etag_matches(req.headers(), &d.etag) {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, d.etag.clone())])
                    .into_response();
            }
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, &d.content_type)
                .header(header::CACHE_CONTROL, rendition_core::store::IMMUTABLE)
                .header(header::ETAG, &d.etag)
                .header(header::CONTENT_LENGTH, d.body.len())
                .body(Body::from(d.body.clone()))
                .expect("valid response")
        }
        Err(e) => error_response(&e),
    }
}
