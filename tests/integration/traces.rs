//! Traces: one real job through the real `rendition worker --queue rabbitmq` binary (the
//! broker on loopback, moto's S3), exported over OTLP/HTTP (JSON) to a small receiver
//! here that decodes what arrives. The job's span tree — receive, fetch, render with its
//! decode and each encode, each put, acknowledge — continues the W3C trace of the
//! message's `traceparent` header and goes on in the `derivatives.ready` event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::harness::*;
use crate::rabbit::{minio_event_in, Broker};

/// Every OTLP/HTTP JSON body POSTed to `/v1/traces`, decoded.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    /// Listens on a free loopback port; answers `200 {}` to each request.
    async fn start() -> (Receiver, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver::default();
        let bodies = receiver.bodies.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let bodies = bodies.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    // Requests on one connection, one after the other.
                    loop {
                        let mut length = 0usize;
                        let mut path = String::new();
                        let mut line = String::new();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        path.push_str(line.split(' ').nth(1).unwrap_or(""));
                        loop {
                            line.clear();
                            read.read_line(&mut line).await.unwrap();
                            let header = line.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap();
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        read.read_exact(&mut body).await.unwrap();
                        assert_eq!(path, "/v1/traces");
                        bodies
                            .lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).expect("OTLP JSON"));
                        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        write.write_all(reply.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (receiver, format!("http://{addr}"))
    }

    /// Every span received, flattened.
    fn spans(&self) -> Vec<Span> {
        let bodies = self.bodies.lock().unwrap();
        let mut out = Vec::new();
        for body in bodies.iter() {
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        out.push(Span::of(span));
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace: String,
    id: String,
    parent: String,
    attributes: HashMap<String, String>,
    start: u64,
    end: u64,
}

impl Span {
    fn of(v: &serde_json::Value) -> Span {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let nanos = |k: &str| {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v[k].as_u64())
                .unwrap_or(0)
        };
        let attributes = v["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let value = &a["value"];
                let value = value["stringValue"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| value["intValue"].as_str().map(str::to_string))
                    .unwrap_or_else(|| value.to_string());
                (a["key"].as_str().unwrap().to_string(), value)
            })
            .collect();
        Span {
            name: text("name"),
            trace: text("traceId").to_lowercase(),
            id: text("spanId").to_lowercase(),
            parent: text("parentSpanId").to_lowercase(),
            attributes,
            start: nanos("startTimeUnixNano"),
            end: nanos("endTimeUnixNano"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_is_one_span_tree_that_continues_the_message_s_trace() {
    let (receiver, endpoint) = Receiver::start().await;
    let broker = Broker::new(3, 200).await;
    let mut world = World::s3().await;
    let key = "originals/traced.jpg";
    let jpeg = encode_jpeg(&quadrants(1200, 900), 85);
    world.bucket().put(key, jpeg.clone(), None).await;

    // The uploader's trace: a parent span id the worker must hang the job under.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(format!("00-{trace_id}-{parent_id}-01").as_str().into()),
    );
    broker
        .publish_with(
            &minio_event_in(&world.bucket().name, key, jpeg.len()),
            headers,
        )
        .await;

    world.add_vars(broker.vars());
    world.add_vars([("RENDITION__TELEMETRY__OTLP_ENDPOINT", endpoint.clone())]);
    let mut worker = world
        .rendition()
        .args(["worker", "--queue", "rabbitmq"])
        .start();

    // The completion event carries the job's trace on.
    let ready = broker.next_ready_message().await;
    let carried = ready
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("traceparent").cloned());
    let Some(AMQPValue::LongString(carried)) = carried else {
        panic!(
            "no traceparent on derivatives.ready: {:?}",
            ready.delivery.properties
        );
    };
    let carried = String::from_utf8_lossy(carried.as_bytes()).to_string();
    assert!(
        carried.starts_with(&format!("00-{trace_id}-")) && !carried.contains(parent_id),
        "{carried}"
    );

    // SIGTERM: the worker drains and flushes its exporter before it exits.
    worker.terminate();
    let status = tokio::time::timeout(Duration::from_secs(60), worker.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    let spans: Vec<Span> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace == trace_id)
        .collect();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let one = |name: &str| -> &Span {
        let found = named(name);
        assert_eq!(found.len(), 1, "one {name} span: {spans:#?}");
        found[0]
    };
    eprintln!("traces: {} spans of the trace", spans.len());
    let job = one("job");
    assert_eq!(
        job.parent, parent_id,
        "the job continues the message's trace"
    );
    assert_eq!(job.attributes.get("key").map(String::as_str), Some(key));
    assert_eq!(
        job.attributes.get("outcome").map(String::as_str),
        Some("done")
    );
    assert_eq!(
        job.attributes.get("queue").map(String::as_str),
        Some("rabbitmq")
    );
    assert!(
        carried.contains(&job.id),
        "the event's parent is the job: {carried}"
    );
    for name in ["receive", "fetch", "render", "acknowledge"] {
        let span = one(name);
        assert_eq!(span.parent, job.id, "{name} is a child of job");
        assert!(
            span.start >= job.start && span.end <= job.end,
            "{name} within job"
        );
    }
    let render = one("render");
    let decode = one("decode");
    assert_eq!(decode.parent, render.id, "decode is a child of render");
    // Which decoder made the pixels travels from the render helper onto the span: a
    // baseline JPEG whose largest eager variant needs most of it is libvips' own decode.
    assert_eq!(
        decode.attributes.get("decoder").map(String::as_str),
        Some("libvips")
    );
    let encodes = named("encode");
    let eager = ["lg", "md", "sm", "thumb", "xl"];
    assert_eq!(encodes.len(), eager.len(), "{encodes:#?}");
    for encode in &encodes {
        assert_eq!(encode.parent, render.id);
        assert!(encode.start >= decode.end, "encodes follow the decode");
        assert!(eager.contains(&encode.attributes["variant"].as_str()));
        assert_eq!(encode.attributes["format"], "webp");
    }
    // Each derivative and the manifest: one put each.
    let puts = named("put");
    assert_eq!(puts.len(), eager.len() + 1, "{puts:#?}");
    assert!(puts.iter().all(|p| p.parent == job.id));
    assert!(puts
        .iter()
        .any(|p| p.attributes["key"].ends_with("/manifest.json")));
    assert!(one("fetch").end <= render.start, "fetch, then render");
    broker.cleanup().await;
}

#[tokio::test]
async fn an_sqs_message_s_trace_goes_on_without_an_exporter() {
    use aws_sdk_sqs::types::MessageAttributeValue;
    // No OTLP endpoint: nothing is exported, but the ids still flow through the worker.
    let world = crate::sqs::SqsWorld::new().await;
    let mut worker = world.worker(&[]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let parent_id = "b7ad6b7169203331";
    let event = serde_json::json!({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": world.bucket().name}, "object": {"key": "originals/ghost.jpg"}}
    }]});
    world
        .sqs
        .send_message()
        .queue_url(&world.queue_url)
        .message_body(event.to_string())
        .message_attributes(
            "traceparent",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(format!("00-{trace_id}-{parent_id}-01"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // A missing source is dead-lettered: the DLQ message continues the same trace, as a
    // child of the job's span (not of the uploader's).
    let (_, attrs) = world.dlq_message().await;
    assert_eq!(
        attrs.get("rendition-error-kind").map(String::as_str),
        Some("missing_source")
    );
    let carried = attrs
        .get("traceparent")
        .expect("a traceparent on the DLQ message");
    assert!(
        carried.starts_with(&format!("00-{trace_id}-")) && !carried.contains(parent_id),
        "{carried}"
    );
    worker.terminate();
    let _ = worker.child.wait().await;
}
