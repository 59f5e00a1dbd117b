//! What a queue worker does with one message: [`rendition_pipeline::message`], timed and
//! counted in the worker's metrics.

use std::time::Instant;

use rendition_pipeline::job::Engine;
pub use rendition_pipeline::message::{Handled, MessageError};

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Handler {
    engine: Engine,
    metrics: Metrics,
}

impl Handler {
    pub fn new(engine: Engine, metrics: Metrics) -> Handler {
        Handler { engine, metrics }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Handles one message body.
    pub async fn handle(&self, body: &[u8]) -> Result<Handled, MessageError> {
        let started = Instant::now();
        self.metrics.in_flight.inc();
        let result = rendition_pipeline::message::handle_message(&self.engine, body).await;
        self.metrics.in_flight.dec();
        self.metrics
            .job_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Ok(h) = &result {
            for _ in 0..h.rendered {
                self.metrics.outcome("rendered");
            }
            for _ in 0..h.already_done {
                self.metrics.outcome("already_done");
            }
            for _ in 0..h.removed {
                self.metrics.outcome("removed");
            }
            if h.rendered == 0 && h.already_done == 0 && h.removed == 0 {
                self.metrics.outcome("ignored");
            }
        }
        result
    }
}
