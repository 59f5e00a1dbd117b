//! Request coalescing: concurrent requests for the same missing derivative share one
//! render, which runs in its own task so a waiter that gives up cancels nothing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use rendition_pipeline::ondemand::{Derivative, OnDemandError};

pub(super) type Rendered = Result<Arc<Derivative>, Arc<OnDemandError>>;

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
pub(super) struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    pub(super) fn enter(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
