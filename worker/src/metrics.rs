//! Prometheus metrics of a worker: jobs by outcome, render seconds, jobs in flight,
//! retries and dead-lettered messages. Served as text on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
