//! The worker's operations endpoint: `/healthz` (the process answers), `/readyz`
//! (connected to the broker and the store), `/metrics` (Prometheus text).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Readiness flags, set by the consumer and the store probe.
#[derive(Clone, Default)]
pub struct Readiness {
    broker: Arc<AtomicBool>,
    store: Arc<AtomicBool>,
}

impl Readiness {
    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::SeqCst);
    }
    pub fn set_store(&self, up: bool) {
        self.store.store(up, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.broker.load(Ordering::SeqCst) && self.store.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    ready: Readiness,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, ready });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}
