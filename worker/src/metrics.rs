//! Prometheus metrics, served as text on `/metrics`: a queue worker's ([`Metrics`]: jobs
//! by outcome, job seconds, jobs in flight, retries, dead-lettered messages, on the ops
//! port) and `rendition serve`'s ([`ServeMetrics`]: requests by status, render seconds,
//! coalesced waits, cache hits, renders in flight, on the serve listener itself).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `Content-Type` of the Prometheus text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus text exposition of `registry`.
fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `rendered`, `already_done`, `ignored`, `removed`, `retry`, `dead_lettered`.
    pub outcome: String,
}

/// Cheap to clone; all clones update the same series.
#[derive(Clone)]
pub struct Metrics {
    pub jobs: Family<OutcomeLabels, Counter>,
    pub job_seconds: Histogram,
    pub in_flight: Gauge,
    pub retries: Counter,
    pub dead_lettered: Counter,
    registry: std::sync::Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rendition");
        let jobs = Family::<OutcomeLabels, Counter>::default();
        registry.register("jobs", "Queue messages handled, by outcome", jobs.clone());
        let job_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "job_seconds",
            "Seconds to handle one message (fetch, render, store)",
            job_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("in_flight", "Messages being handled now", in_flight.clone());
        let retries = Counter::default();
        registry.register(
            "retries",
            "Messages scheduled for another attempt",
            retries.clone(),
        );
        let dead_lettered = Counter::default();
        registry.register(
            "dead_lettered",
            "Messages sent to the dead-letter queue",
            dead_lettered.clone(),
        );
        Metrics {
            jobs,
            job_seconds,
            in_flight,
            retries,
            dead_lettered,
            registry: std::sync::Arc::new(registry),
        }
    }

    pub fn outcome(&self, outcome: &str) {
        self.jobs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        encode(&self.registry)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The response's HTTP status code: the only label, so the series stay few whatever
    /// the paths requested.
    pub status: u16,
}

/// `rendition serve`'s metrics (`rendition_serve_*`). Cheap to clone; all clones update
/// the same series.
#[derive(Clone)]
pub struct ServeMetrics {
    /// Responses by status, `/metrics` scrapes excepted.
    pub requests: Family<StatusLabels, Counter>,
    /// Seconds to make a missing derivative (source read, render, store), once per render
    /// however many requests waited for it; renders that failed are not observed.
    pub render_seconds: Histogram,
    /// Requests that joined a render (or storage lookup) already in flight for the same
    /// derivative instead of starting their own.
    pub coalesced_waits: Counter,
    /// Requests answered with a derivative that was already stored (no render).
    pub cache_hits: Counter,
    /// Distinct derivatives being looked up or rendered now (coalesced requests count
    /// once; those waiting for a render slot included).
    pub renders_in_flight: Gauge,
    /// Connections closed at once because `serve.max_connections` were open.
    pub connections_rejected: Counter,
    registry: std::sync::Arc<Registry>,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServeMetrics {
    pub fn new() -> ServeMetrics {
        let mut registry = Registry::with_prefix("rendition_serve");
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP responses by status (/metrics excepted)",
            requests.clone(),
        );
        let render_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "render_seconds",
            "Seconds to make a missing derivative (read, render, store), once per render",
            render_seconds.clone(),
        );
        let coalesced_waits = Counter::default();
        registry.register(
            "coalesced_waits",
            "Requests that joined a render already in flight for the same derivative",
            coalesced_waits.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "cache_hits",
            "Requests answered from storage without a render",
            cache_hits.clone(),
        );
        let renders_in_flight = Gauge::default();
        registry.register(
            "renders_in_flight",
            "Derivatives being looked up or rendered now",
            renders_in_flight.clone(),
        );
        let connections_rejected = Counter::default();
        registry.register(
            "connections_rejected",
            "Connections closed at once because serve.max_connections were open",
            connections_rejected.clone(),
        );
        ServeMetrics {
            requests,
            render_seconds,
            coalesced_waits,
            cache_hits,
            renders_in_flight,
            connections_rejected,
            registry: std::sync::Arc::new(registry),
        }
    }

    /// Counts one response with this status.
    pub fn response(&self, status: u16) {
        self.requests.get_or_create(&StatusLabels { status }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_metrics_are_named_and_labelled_by_status_only() {
        let m = ServeMetrics::new();
        m.response(200);
        m.response(200);
        m.response(404);
        m.render_seconds.observe(0.25);
        m.coalesced_waits.inc();
        m.renders_in_flight.inc();
        let text = m.render();
        for line in [
            "rendition_serve_requests_total{status=\"200\"} 2",
            "rendition_serve_requests_total{status=\"404\"} 1",
            "rendition_serve_render_seconds_count 1",
            "rendition_serve_render_seconds_sum 0.25",
            "rendition_serve_coalesced_waits_total 1",
            "rendition_serve_cache_hits_total 0",
            "rendition_serve_renders_in_flight 1",
            "rendition_serve_connections_rejected_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(text.contains("# TYPE rendition_serve_render_seconds histogram"));
    }
}
