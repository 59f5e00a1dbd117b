//! CloudWatch metrics as log lines: the embedded metric format (EMF). Each HTTP request and
//! each eager job (a storage event, an SQS record) writes one JSON line to stdout, which
//! Lambda ships to CloudWatch Logs; CloudWatch extracts the metrics from it, so the function
//! needs no `PutMetricData` call, permission or network round trip.
//!
//! Namespace `Rendition`, dimensions `[Function, Outcome]` and `[Function]`:
//!
//! | metric | unit | value |
//! | --- | --- | --- |
//! | `RenderMs` | Milliseconds | wall time of the request or job (for `Outcome=rendered`: lookup, source read, render, store) |
//! | `Bytes` | Bytes | the derivative's size (HTTP); the derivatives listed in the manifests of the sources rendered (jobs) |
//! | `ColdStart` | Count | 1 on the first line of the process, else 0: the sum counts cold starts |
//!
//! `Function` is `on-demand` (HTTP) or `eager` (storage and SQS triggers). `Outcome` is
//! `rendered`, `stored` (answered from storage), `redirected` (`/latest/`),
//! `client_error`, `server_error` (by the response's status) for HTTP, and `done`,
//! `retry`, `dead_letter` (the core's disposition) for jobs: few values, as each
//! combination is a CloudWatch metric. The error kind (`Kind`) and HTTP status (`Status`)
//! are plain members of the line: searchable in Logs Insights, not dimensions. An
//! invocation that fails as a whole (an unknown payload, a malformed SQS batch) is one
//! `eager` line with the disposition its Lambda error type names.
//!
//! Tracing logs go to stderr; EMF lines go to stdout, each written whole with one write, so
//! a line is never wrapped in a tracing event nor cut by another line.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Rendition";

/// Which path of the function a line measures (the `Function` dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// HTTP requests: the on-demand path.
    OnDemand,
    /// Storage events and SQS records: the eager job.
    Eager,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::OnDemand => "on-demand",
            Function::Eager => "eager",
        }
    }
}

/// One request's or job's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement<'a> {
    pub function: Function,
    /// The `Outcome` dimension: one of a few stable snake_case words (see the module doc).
    pub outcome: &'a str,
    /// The error kind of a failure ([`rendition_image::kinds::KINDS`]).
    pub kind: Option<&'a str>,
    /// The HTTP status of a request.
    pub status: Option<u16>,
    pub elapsed: Duration,
    pub bytes: u64,
}

/// The EMF line (no newline) for `m`, taken at `timestamp_ms` (Unix epoch, milliseconds).
pub fn line(m: &Measurement<'_>, timestamp_ms: u64, cold_start: bool) -> String {
    let render_ms = (m.elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function", "Outcome"], ["Function"]],
                "Metrics": [
                    {"Name": "RenderMs", "Unit": "Milliseconds"},
                    {"Name": "Bytes", "Unit": "Bytes"},
                    {"Name": "ColdStart", "Unit": "Count"},
                ],
            }],
        }),
    );
    root.insert("Function".into(), json!(m.function.as_str()));
    root.insert("Outcome".into(), json!(m.outcome));
    root.insert("RenderMs".into(), json!(render_ms));
    root.insert("Bytes".into(), json!(m.bytes));
    root.insert("ColdStart".into(), json!(u8::from(cold_start)));
    if let Some(kind) = m.kind {
        root.insert("Kind".into(), json!(kind));
    }
    if let Some(status) = m.status {
        root.insert("Status".into(), json!(status));
    }
    Value::Object(root).to_string()
}

/// Where finished lines go: stdout in production, a buffer in tests.
type Sink = Box<dyn Fn(&str) + Send + Sync>;

/// Writes the EMF lines of one process, marking the first as its cold start.
pub struct Emitter {
    cold: AtomicBool,
    sink: Sink,
}

impl Emitter {
    /// Lines to stdout.
    pub fn stdout() -> Emitter {
        Emitter::to(write_stdout)
    }

    /// Lines to `sink` (one call per line, without its newline).
    pub fn to(sink: impl Fn(&str) + Send + Sync + 'static) -> Emitter {
        Emitter {
            cold: AtomicBool::new(true),
            sink: Box::new(sink),
        }
    }

    /// Writes the line of `m`, stamped now.
    pub fn emit(&self, m: &Measurement<'_>) {
        let cold_start = self.cold.swap(false, Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (self.sink)(&line(m, now_ms, cold_start));
    }
}

/// One write of the whole line and its newline under stdout's lock: nothing else can come
/// between them. A failed write loses a metric, never the invocation.
fn write_stdout(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        tracing::warn!("could not write a metrics line to stdout");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An emitter whose lines land in the returned buffer.
    pub(crate) fn capture() -> (Emitter, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let emitter = Emitter::to(move |l| sink.lock().unwrap().push(l.to_string()));
        (emitter, lines)
    }

    /// The lines written so far, parsed and checked ([`parse`]); the buffer is emptied.
    pub(crate) fn take(lines: &Mutex<Vec<String>>) -> Vec<Value> {
        lines.lock().unwrap().drain(..).map(|l| parse(&l)).collect()
    }

    /// Checks `line` against the EMF specification's rules for one document: an object whose
    /// `_aws` has a numeric `Timestamp` and metric directives; every dimension and metric
    /// named there is a root member, dimensions strings, metrics numbers.
    pub(crate) fn parse(line: &str) -> Value {
        let v: Value = serde_json::from_str(line).expect("an EMF line is one JSON object");
        assert!(!line.contains('\n'), "{line}");
        let aws = &v["_aws"];
        assert!(aws["Timestamp"].is_u64(), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert!(!directives.is_empty());
        for d in directives {
            assert_eq!(d["Namespace"], NAMESPACE);
            for set in d["Dimensions"].as_array().expect("dimension sets") {
                let set = set.as_array().expect("a dimension set");
                assert!(!set.is_empty() && set.len() <= 30, "{line}");
                for name in set {
                    let value = v[name.as_str().expect("a dimension name")].as_str();
                    let value = value.unwrap_or_else(|| panic!("dimension {name}: {line}"));
                    assert!(
                        !value.trim().is_empty() && value.is_ascii() && value.len() <= 1024,
                        "{line}"
                    );
                }
            }
            for metric in d["Metrics"].as_array().expect("metrics") {
                let name = metric["Name"].as_str().expect("a metric name");
                assert!(v[name].is_number(), "metric {name}: {line}");
            }
        }
        v
    }

    #[test]
    fn a_line_is_an_emf_document() {
        let m = Measurement {
            function: Function::OnDemand,
            outcome: "client_error",
            kind: Some("source_missing"),
            status: Some(404),
            elapsed: Duration::from_micros(12_345_678),
            bytes: 0,
        };
        let v = parse(&line(&m, 1_767_225_600_123, true));
        assert_eq!(v["_aws"]["Timestamp"], 1_767_225_600_123u64);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Outcome"], ["Function"]])
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([
                {"Name": "RenderMs", "Unit": "Milliseconds"},
                {"Name": "Bytes", "Unit": "Bytes"},
                {"Name": "ColdStart", "Unit": "Count"},
            ])
        );
        assert_eq!(v["Function"], "on-demand");
        assert_eq!(v["Outcome"], "client_error");
        assert_eq!(v["RenderMs"], 12_345.678);
        assert_eq!(v["Bytes"], 0);
        assert_eq!(v["ColdStart"], 1);
        assert_eq!(v["Kind"], "source_missing");
        assert_eq!(v["Status"], 404);

        let job = Measurement {
            function: Function::Eager,
            outcome: "done",
            kind: None,
            status: None,
            elapsed: Duration::from_millis(3),
            bytes: 4096,
        };
        let v = parse(&line(&job, 1, false));
        assert_eq!(v["Function"], "eager");
        assert_eq!(v["ColdStart"], 0);
        assert_eq!(v["Bytes"], 4096);
        assert!(v.get("Kind").is_none() && v.get("Status").is_none(), "{v}");
    }

    #[test]
    fn only_the_first_line_of_a_process_is_its_cold_start() {
        let (emitter, lines) = capture();
        let m = Measurement {
            function: Function::Eager,
            outcome: "done",
            kind: None,
            status: None,
            elapsed: Duration::ZERO,
            bytes: 0,
        };
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        for _ in 0..3 {
            emitter.emit(&m);
        }
        let lines = take(&lines);
        let cold: Vec<_> = lines.iter().map(|l| l["ColdStart"].clone()).collect();
        assert_eq!(cold, [json!(1), json!(0), json!(0)]);
        let stamped = lines[0]["_aws"]["Timestamp"].as_u64().unwrap();
        assert!(stamped >= before && stamped < before + 60_000, "{stamped}");
    }
}
