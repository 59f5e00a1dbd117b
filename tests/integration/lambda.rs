//! The Lambda function as Lambda runs it: the real `rendition-lambda` binary polling a
//! Lambda Runtime API on loopback (cargo-lambda's emulator, `--only-lambda-apis`, installed
//! from PyPI by `infra/local/services.sh cargo-lambda`), with S3 on moto. Invocations go
//! through the emulator's Invoke API (`POST /2015-03-31/functions/_/invocations`) with
//! payloads shaped as AWS documents them: Function URL, API Gateway HTTP API 2.0, S3 and
//! SQS events. The emulator answers a function error with HTTP 500 and
//! `{"errorType", "errorMessage"}` (real Lambda: 200 and `X-Amz-Function-Error`).
//!
//! Each test gets its own [`World`] (a bucket, and a scratch folder as the task root),
//! emulator (on a free port) and function process, started through the harness's
//! [`Spawn`]. The emulator, a tool rather than a binary under test, is started here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use image::{Rgb, RgbImage};
use rendition_aws::s3::S3Store;
use rendition_image::spec::Format;
use rendition_pipeline::config::Settings;
use rendition_pipeline::manifest::Manifest;
use rendition_pipeline::naming::{self, SourceId, Variant};
use rendition_pipeline::store::{BlobStore, IMMUTABLE};
use rendition_pipeline::url::{self, UrlGenerator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(120);
const SIGNING_KEY: &str = "rendition-lambda-test-key-0123456789abcdef";

// ---------------------------------------------------------------- the emulator

/// cargo-lambda, installed (or reused) by `infra/local/services.sh cargo-lambda`.
fn cargo_lambda() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("infra/local/services.sh"))
            .arg("cargo-lambda")
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .expect("run infra/local/services.sh cargo-lambda");
        assert!(
            out.status.success(),
            "services.sh cargo-lambda failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(stdout.lines().last().expect("prints the binary").trim())
    })
}

/// `cargo lambda watch --only-lambda-apis` on a free loopback port: the Runtime API at
/// `/.rt`, the Invoke API beside it.
struct Emulator {
    /// Held for `kill_on_drop`.
    _child: Child,
    port: u16,
}

impl Emulator {
    async fn start(cargo_lambda: &Path, log: &Path) -> Emulator {
        for _attempt in 0..5 {
            let port = free_port();
            let log_file = std::fs::File::create(log).unwrap();
            let mut child = Command::new(cargo_lambda)
                .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
                .args(["-P", &port.to_string(), "--timeout", "120"])
                // It reads the Cargo.toml of its working directory.
                .current_dir(repo_root())
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .kill_on_drop(true)
                .spawn()
                .expect("spawn cargo-lambda");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // lost the port to someone else, or failed: try another
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Emulator {
                        _child: child,
                        port,
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "cargo-lambda did not listen on {port}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!(
            "cargo-lambda did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// Standard base64 with padding (the test crate has no base64 dependency).
fn b64decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

// ---------------------------------------------------------------- the function

/// A running `rendition-lambda` attached to its own emulator, with its JSON logs (and
/// its CloudWatch EMF metric lines, which it prints on stdout).
pub(crate) struct Function {
    emulator: Emulator,
    app: Running,
    init_ms: f64,
}

/// What an invocation returned.
#[derive(Debug)]
pub(crate) enum Invoked {
    /// The handler's result.
    Ok(Value),
    /// A function error: `(errorType, errorMessage)`.
    Err(String, String),
}

impl Invoked {
    pub(crate) fn ok(self) -> Value {
        match self {
            Invoked::Ok(v) => v,
            Invoked::Err(t, m) => panic!("function error {t}: {m}"),
        }
    }
}

impl Function {
    pub(crate) async fn start(world: &World, extra: &[(&str, &str)]) -> Function {
        let function = Spawn::lambda(world.dir()).await;
        let cargo_lambda = tokio::task::spawn_blocking(cargo_lambda)
            .await
            .expect("installing cargo-lambda");
        let emulator = Emulator::start(cargo_lambda, &world.dir().join("emulator.log")).await;
        // With a scheme: lambda_runtime_api_client 1.1 cannot parse `127.0.0.1:PORT/.rt`.
        let runtime_api = format!("http://127.0.0.1:{}/.rt", emulator.port);
        let keys = format!("[\"{SIGNING_KEY}\"]");
        // The task root is the world's empty folder, so no rendition.toml is picked up;
        // hermetic: nothing from the developer's shell configures the function.
        let (app, started) = function
            .hermetic()
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", runtime_api.as_str()),
                ("AWS_LAMBDA_FUNCTION_NAME", "_"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ])
            .envs(world.vars())
            .env("RENDITION__URLS__SIGNING_KEYS", &keys)
            .envs(extra.iter().copied())
            .stdout_logs()
            .ready(WAIT, "the cold start log line", |v| {
                field(v, "message") == Some("cold start: initialised")
            })
            .await;
        let init_ms = started["init_ms"].as_f64().expect("init_ms is a number");
        Function {
            emulator,
            app,
            init_ms,
        }
    }

    /// Log lines seen so far (including any that arrived since the last look).
    fn logs(&mut self) -> &[Value] {
        self.app.logs()
    }

    /// Waits until at least `n` log lines satisfy `pred`.
    async fn wait_count(&mut self, what: &str, n: usize, pred: impl Fn(&Value) -> bool) {
        self.app.wait_count(WAIT, what, n, pred).await
    }

    pub(crate) async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.app.wait_for(WAIT, what, pred).await
    }

    pub(crate) async fn invoke(&self, payload: &Value) -> Invoked {
        let resp = http(
            &format!("127.0.0.1:{}", self.emulator.port),
            "POST",
            b"/2015-03-31/functions/_/invocations",
            &[("Content-Type", "application/json")],
            payload.to_string().as_bytes(),
        )
        .await
        .expect("the emulator answered the invocation");
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
            panic!(
                "invocation answered {} with non-JSON ({e}): {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            )
        });
        match resp.status {
            200 => Invoked::Ok(body),
            500 if body.get("errorType").is_some() => Invoked::Err(
                body["errorType"].as_str().unwrap().to_string(),
                body["errorMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            other => panic!("invocation answered {other}: {body}"),
        }
    }

    /// An HTTP request through a Function URL event.
    async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Http {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Http::from(
            self.invoke(&function_url_event("GET", path, query, headers))
                .await
                .ok(),
        )
    }
}

/// An HTTP response as a Function URL / API Gateway integration returns it.
#[derive(Debug)]
struct Http {
    status: u16,
    headers: serde_json::Map<String, Value>,
    body: Vec<u8>,
}

impl Http {
    fn from(v: Value) -> Http {
        let status = v["statusCode"].as_u64().expect("statusCode") as u16;
        let headers = v["headers"].as_object().cloned().unwrap_or_default();
        let body = match v["body"].as_str() {
            None => Vec::new(),
            Some(text) if v["isBase64Encoded"] == json!(true) => b64decode(text),
            Some(text) => text.as_bytes().to_vec(),
        };
        Http {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).expect("a JSON error body")
    }
}

// ---------------------------------------------------------------- event payloads

/// A Lambda Function URL request (payload 2.0), as in the Lambda developer guide.
fn function_url_event(method: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> Value {
    let mut h = json!({
        "host": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
        "user-agent": "rendition-tests",
        "accept": "image/webp,*/*",
        "x-forwarded-proto": "https",
    });
    for (k, v) in headers {
        h[k.to_ascii_lowercase()] = json!(v);
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnop",
            "domainName": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnop",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "rendition-tests"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64
        },
        "isBase64Encoded": false
    })
}

/// An API Gateway HTTP API request (payload format 2.0) on stage `stage`: API Gateway puts
/// a named stage at the start of `rawPath`.
fn api_gateway_event(method: &str, path: &str, query: &str, stage: &str) -> Value {
    let raw_path = if stage == "$default" {
        path.to_string()
    } else {
        format!("/{stage}{path}")
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {
            "accept": "*/*",
            "content-length": "0",
            "host": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "user-agent": "rendition-tests",
            "x-forwarded-for": "127.0.0.1",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "domainName": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "rendition-tests"
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": stage,
            "time": "21/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64
        },
        "isBase64Encoded": false
    })
}

/// One S3 event notification record (`key` form-encoded, as S3 sends it).
pub(crate) fn s3_record(bucket: &str, key: &str, size: u64, etag: &str) -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-21T10:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "rendition-uploads",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": format!("arn:aws:s3:::{bucket}")
            },
            "object": {
                "key": key.replace(' ', "+"),
                "size": size,
                "eTag": etag.trim_matches('"'),
                "sequencer": "0055AED6DCD90281E5"
            }
        }
    })
}

/// An SQS event (what an event source mapping delivers) with `(messageId, body)` records.
fn sqs_event(records: &[(&str, String)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795000000000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795000000001"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:rendition-jobs",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

// ---------------------------------------------------------------- the world

/// Where the function finds what it serves: the names it gives derivatives and manifests
/// of the current version of a source in the world's bucket.
trait Named {
    /// The derivative key of `variant` of the current version of `source`.
    async fn derivative_key(&self, source: &str, variant: Variant, ext: &str) -> String;
    async fn manifest(&self, source: &str) -> Option<Manifest>;
}

/// The current version's guid of `source` and its key relative to `originals/`.
async fn guid_of<'k>(bucket: &Bucket, source: &'k str) -> Option<(uuid::Uuid, &'k str)> {
    let store = S3Store::new(bucket.s3.clone(), bucket.name.clone());
    let meta = store.head(source).await.unwrap()?;
    let guid = naming::source_guid(&SourceId {
        bucket: bucket.name.clone(),
        key: source.to_string(),
        version: meta.version().to_string(),
    });
    Some((guid, naming::source_rel("originals/", source).unwrap()))
}

impl Named for World {
    async fn derivative_key(&self, source: &str, variant: Variant, ext: &str) -> String {
        let (guid, rel) = guid_of(self.bucket(), source).await.expect("source exists");
        naming::derivative_key("derived/", rel, guid, &variant, ext).unwrap()
    }

    async fn manifest(&self, source: &str) -> Option<Manifest> {
        let (guid, rel) = guid_of(self.bucket(), source).await?;
        let key = naming::manifest_key("derived/", rel, guid).unwrap();
        let (body, _) = self.bucket().object(&key).await?;
        Some(serde_json::from_slice(&body).expect("a manifest"))
    }
}

/// Settings matching the function's, for signing URLs in the tests.
fn signing_settings() -> Settings {
    let mut s = Settings::default();
    s.urls.signing_keys = vec![SIGNING_KEY.to_string()];
    s
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JPEG that decodes its header but not its pixels.
pub(crate) fn truncated_jpeg() -> Vec<u8> {
    let mut jpeg = encode_jpeg(&quadrants(640, 480), 90);
    jpeg.truncate(jpeg.len() / 3);
    jpeg
}

fn is_webp(b: &[u8]) -> bool {
    b.len() > 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP"
}

fn is_png(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn lambda_http_serves_renders_and_refuses() {
    let world = World::s3().await;
    let mut f = Function::start(&world, &[]).await;
    eprintln!("rendition-lambda cold start: init_ms = {:.1}", f.init_ms);
    assert!(f.init_ms > 0.0 && f.init_ms < 10_000.0, "{}", f.init_ms);

    let source = "originals/cat photo.jpg";
    world
        .bucket()
        .put(
            source,
            encode_jpeg(&quadrants(800, 600), 90),
            Some("image/jpeg"),
        )
        .await;
    let thumb = world
        .derivative_key(source, preset("thumb", Format::Webp), "webp")
        .await;
    let path = format!("/{}", url::encode_key(&thumb));
    assert!(path.contains("cat%20photo.jpg"), "{path}");
    let thumb_file = format!("/{}", preset_file("thumb", Format::Webp));
    assert!(path.ends_with(&thumb_file), "{path}");
    assert!(
        world.bucket().object(&thumb).await.is_none(),
        "not rendered yet"
    );

    // A preset miss: rendered, stored, returned.
    let first = f.get(&path, &[]).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert!(is_webp(&first.body), "WebP magic bytes");
    assert_eq!(first.header("content-type"), Some("image/webp"));
    assert_eq!(first.header("cache-control"), Some(IMMUTABLE));
    let etag = first.header("etag").expect("an ETag").to_string();
    let (stored, stored_etag) = world.bucket().object(&thumb).await.expect("stored in S3");
    assert_eq!(stored, first.body, "the response is what was stored");
    assert_eq!(stored_etag, etag);
    assert_eq!(decode(&first.body).dimensions(), (160, 160));
    // Its CloudWatch EMF line, on stdout: a render of that many bytes, on a cold start.
    let emf = f
        .wait_for("the miss's EMF line", |v| {
            v.get("_aws").is_some() && v["Outcome"] == "rendered"
        })
        .await;
    assert_eq!(emf["Function"], "on-demand");
    assert_eq!(emf["Bytes"].as_u64(), Some(first.body.len() as u64));
    assert_eq!(emf["ColdStart"].as_u64(), Some(1));
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Rendition"
    );

    // The same request again: the identical bytes, from S3 (one render only).
    let second = f.get(&path, &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    // Through API Gateway (named stage in the path), the same bytes.
    let via_apigw = Http::from(
        f.invoke(&api_gateway_event("GET", &path, "", "prod"))
            .await
            .ok(),
    );
    assert_eq!(via_apigw.status, 200, "{via_apigw:?}");
    assert_eq!(via_apigw.body, first.body);
    // Logs arrive in order: once the three requests' lines are in, so is every render's.
    f.wait_count("three request log lines", 3, |v| {
        field(v, "message") == Some("request")
    })
    .await;
    let renders = f
        .logs()
        .iter()
        .filter(|v| {
            field(v, "message") == Some("rendered on demand")
                && field(v, "key") == Some(thumb.as_str())
        })
        .count();
    assert_eq!(renders, 1, "rendered once, then served from S3");

    // Conditional GET and HEAD.
    let not_modified = f.get(&path, &[("If-None-Match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(not_modified.header("cache-control"), Some(IMMUTABLE));
    let weak_in_a_list = format!("\"something-else\", W/{etag}");
    let weak = f.get(&path, &[("If-None-Match", &weak_in_a_list)]).await;
    assert_eq!(weak.status, 304, "{weak:?}");
    let other_etag = f
        .get(&path, &[("If-None-Match", "\"something-else\"")])
        .await;
    assert_eq!(other_etag.status, 200);
    let head = Http::from(
        f.invoke(&function_url_event("HEAD", &path, "", &[]))
            .await
            .ok(),
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), Some("image/webp"));
    let length = first.body.len().to_string();
    assert_eq!(head.header("content-length"), Some(length.as_str()));
    assert_eq!(first.header("content-length"), Some(length.as_str()));

    // A signed spec: 200, stored; unsigned or forged: 403.
    let settings = signing_settings();
    let spec_key = world
        .derivative_key(
            source,
            Variant::Spec("w=200,fm=png".parse().unwrap()),
            "png",
        )
        .await;
    let signed = UrlGenerator::new(&settings)
        .for_key(&spec_key, now_unix())
        .unwrap();
    assert!(signed.contains("?sig="), "{signed}");
    let spec = f.get(&signed, &[]).await;
    assert_eq!(spec.status, 200, "{spec:?}");
    assert!(is_png(&spec.body));
    assert_eq!(spec.header("content-type"), Some("image/png"));
    assert_eq!(decode(&spec.body).width(), 200);
    assert_eq!(
        world.bucket().object(&spec_key).await.expect("stored").0,
        spec.body
    );

    let (spec_path, sig) = signed.split_once("?sig=").unwrap();
    let mut forged_sig = sig.to_string();
    let replacement = if forged_sig.starts_with('A') {
        "B"
    } else {
        "A"
    };
    forged_sig.replace_range(0..1, replacement);
    let forged_key = world
        .derivative_key(
            source,
            Variant::Spec("w=300,fm=png".parse().unwrap()),
            "png",
        )
        .await;
    let forged_path = format!("/{}", url::encode_key(&forged_key));
    for (url, status, kind) in [
        (spec_path.to_string(), 403, "missing_signature"),
        (
            format!("{spec_path}?sig={forged_sig}"),
            403,
            "bad_signature",
        ),
        // Someone else's valid signature on another spec.
        (format!("{forged_path}?sig={sig}"), 403, "bad_signature"),
        (path.replace(&thumb_file, "/thumb"), 400, "bad_key"),
        (format!("{path}x"), 404, "wrong_extension"),
        (
            path.replace(&thumb_file, "/w=abc,fm=webp.webp"),
            400,
            "bad_key",
        ),
        (
            path.replace(&thumb_file, "/fm=webp,w=320.webp"),
            400,
            "bad_key",
        ),
        (format!("{signed}&sig=again"), 400, "bad_query"),
        ("/derived/%zz/x".to_string(), 400, "bad_path"),
        (
            path.replace("cat%20photo.jpg", "no%20such%20photo.jpg"),
            404,
            "source_missing",
        ),
        (
            path.replace(&thumb_file, "/huge.webp"),
            404,
            "unknown_preset",
        ),
    ] {
        let resp = f.get(&url, &[]).await;
        assert_eq!(resp.status, status, "{url}: {resp:?}");
        let body = resp.json();
        assert_eq!(body["error"], kind, "{url}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(resp.header("cache-control"), Some("no-store"));
    }
    assert!(
        world.bucket().object(&forged_key).await.is_none(),
        "nothing rendered for refused URLs"
    );

    // Over a limit: a PNG declaring 30000×30000 pixels → 422, not a 500.
    world
        .bucket()
        .put(
            "originals/bomb.png",
            png_bomb_header(30_000, 30_000),
            Some("image/png"),
        )
        .await;
    let bomb = world
        .derivative_key("originals/bomb.png", preset("thumb", Format::Webp), "webp")
        .await;
    let resp = f.get(&format!("/{}", url::encode_key(&bomb)), &[]).await;
    assert_eq!(resp.status, 422, "{resp:?}");
    assert_eq!(resp.json()["error"], "too_many_pixels");
    // A corrupt source → 422 as well.
    world
        .bucket()
        .put("originals/broken.jpg", truncated_jpeg(), Some("image/jpeg"))
        .await;
    let broken = world
        .derivative_key("originals/broken.jpg", preset("sm", Format::Webp), "webp")
        .await;
    let resp = f.get(&format!("/{}", url::encode_key(&broken)), &[]).await;
    assert_eq!(resp.status, 422, "{resp:?}");

    // Methods other than GET/HEAD, and a malformed HTTP event.
    let post = Http::from(
        f.invoke(&function_url_event("POST", &path, "", &[]))
            .await
            .ok(),
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let mut malformed = function_url_event("GET", &path, "", &[]);
    malformed["requestContext"]["timeEpoch"] = json!("yesterday");
    let malformed = Http::from(f.invoke(&malformed).await.ok());
    assert_eq!(malformed.status, 400);

    assert!(
        f.app.child.try_wait().unwrap().is_none(),
        "the function is still running"
    );
}

#[tokio::test]
async fn lambda_http_redirects_responses_over_the_size_limit() {
    let world = World::s3().await;
    let f = Function::start(
        &world,
        &[("RENDITION__URLS__HOSTS", "[\"img.example.test\"]")],
    )
    .await;
    // Noise compresses to nothing: a 1400×1400 PNG of it is about 5.9 MB, 7.8 MB in base64.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise = RgbImage::from_fn(1400, 1400, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state.to_le_bytes();
        Rgb([b[0], b[1], b[2]])
    });
    let source = "originals/noise.png";
    world
        .bucket()
        .put(source, encode_png(&noise), Some("image/png"))
        .await;
    let key = world
        .derivative_key(source, Variant::Spec("fm=png".parse().unwrap()), "png")
        .await;
    let mut settings = signing_settings();
    settings.urls.hosts = vec!["img.example.test".into()];
    let signed = UrlGenerator::new(&settings)
        .for_key(&key, now_unix())
        .unwrap();
    let (path, query) = signed
        .strip_prefix("https://img.example.test")
        .unwrap()
        .split_once('?')
        .unwrap();
    let resp = Http::from(
        f.invoke(&function_url_event("GET", path, query, &[]))
            .await
            .ok(),
    );
    assert_eq!(resp.status, 302, "{:?}", resp.headers);
    assert!(resp.body.is_empty());
    let location = resp.header("location").expect("a Location");
    assert!(
        location.starts_with(&format!("https://img.example.test{path}?")),
        "{location}"
    );
    assert!(location.contains("sig="), "{location}");
    let (stored, _) = world
        .bucket()
        .object(&key)
        .await
        .expect("stored before redirecting");
    assert!(is_png(&stored));
    assert!(stored.len() > 4_200_000, "{} bytes", stored.len());
    // The redirect target verifies, and names the same derivative.
    let (loc_path, loc_query) = location
        .strip_prefix("https://img.example.test")
        .unwrap()
        .split_once('?')
        .unwrap();
    let verified = url::verify(&settings, loc_path, Some(loc_query), now_unix()).unwrap();
    assert_eq!(verified.key, key);
}

#[tokio::test]
async fn lambda_s3_trigger_renders_eager_presets() {
    let world = World::s3().await;
    let f = Function::start(&world, &[]).await;
    let (photo, w, h) = photos(".jpg", 2000).into_iter().next().unwrap();
    let source = "originals/holiday photo.jpg";
    let body = std::fs::read(&photo).unwrap();
    let size = body.len() as u64;
    let etag = world.bucket().put(source, body, Some("image/jpeg")).await;

    let event = json!({ "Records": [s3_record(&world.bucket().name, source, size, &etag)] });
    let out = f.invoke(&event).await.ok();
    assert_eq!(out["rendered"], 1, "{out}");
    assert_eq!(out["manifests"], json!([source]));
    let manifest = world.manifest(source).await.expect("a manifest in S3");
    assert_eq!((manifest.source.width, manifest.source.height), (w, h));
    let eager: Vec<String> = Settings::default()
        .eager_presets()
        .map(|(n, _)| n.to_string())
        .collect();
    let names: Vec<String> = manifest.variants.iter().map(|v| v.name.clone()).collect();
    assert_eq!(names, eager);
    for v in &manifest.variants {
        let (bytes, _) = world
            .bucket()
            .object(&v.key)
            .await
            .expect("the variant is stored");
        assert!(is_webp(&bytes), "{}", v.key);
        assert_eq!(bytes.len() as u64, v.bytes);
    }
    // The same event again (Lambda retries, S3 duplicates): nothing new.
    let before = world.bucket().keys("derived/").await;
    let again = f.invoke(&event).await.ok();
    assert_eq!(
        (again["rendered"].clone(), again["alreadyDone"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(world.bucket().keys("derived/").await, before);

    // A corrupt source: a permanent Lambda error (→ the on-failure destination).
    let bad = truncated_jpeg();
    let bad_len = bad.len() as u64;
    let bad_etag = world
        .bucket()
        .put("originals/broken.jpg", bad, Some("image/jpeg"))
        .await;
    let event = json!({ "Records": [s3_record(&world.bucket().name, "originals/broken.jpg", bad_len, &bad_etag)] });
    match f.invoke(&event).await {
        Invoked::Err(kind, message) => {
            assert_eq!(kind, "Rendition.Permanent.corrupt_image", "{message}");
            assert!(message.contains("originals/broken.jpg"), "{message}");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    assert!(world.manifest("originals/broken.jpg").await.is_none());
    // A source that does not exist, another bucket's event, and a payload of no trigger.
    let missing =
        json!({ "Records": [s3_record(&world.bucket().name, "originals/gone.jpg", 1, "x")] });
    let other_bucket = json!({ "Records": [s3_record("someone-else", source, size, &etag)] });
    for (event, kind) in [
        (missing, "Rendition.Permanent.missing_source"),
        (other_bucket, "Rendition.Permanent.wrong_bucket"),
        (
            json!({"hello": "world"}),
            "Rendition.Permanent.unknown_event",
        ),
        (json!([1, 2, 3]), "Rendition.Permanent.unknown_event"),
    ] {
        match f.invoke(&event).await {
            Invoked::Err(t, _) => assert_eq!(t, kind, "{event}"),
            other => panic!("{event}: expected {kind}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn lambda_sqs_batch_reports_only_the_failed_record() {
    let world = World::s3().await;
    let f = Function::start(&world, &[]).await;
    let good = encode_jpeg(&quadrants(1200, 900), 90);
    let (good_len, bad) = (good.len() as u64, truncated_jpeg());
    let bad_len = bad.len() as u64;
    let good_etag = world
        .bucket()
        .put("originals/good.jpg", good, Some("image/jpeg"))
        .await;
    let bad_etag = world
        .bucket()
        .put("originals/corrupt.jpg", bad, Some("image/jpeg"))
        .await;
    let body = |key: &str, len: u64, etag: &str| {
        json!({ "Records": [s3_record(&world.bucket().name, key, len, etag)] }).to_string()
    };
    let test_event = json!({
        "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-21T10:00:00.000Z",
        "Bucket": world.bucket().name, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"
    })
    .to_string();
    let good_id = "059f36b4-87a3-44ab-83d2-661975830a7d";
    let bad_id = "2e1424d4-f796-459a-8184-9c92662be6da";
    let test_id = "c80e8021-a70a-42c7-a470-796e1186f753";
    let event = sqs_event(&[
        (good_id, body("originals/good.jpg", good_len, &good_etag)),
        (bad_id, body("originals/corrupt.jpg", bad_len, &bad_etag)),
        (test_id, test_event),
    ]);
    let out = f.invoke(&event).await.ok();
    assert_eq!(
        out,
        json!({ "batchItemFailures": [{ "itemIdentifier": bad_id }] }),
        "only the corrupt record failed"
    );
    let manifest = world
        .manifest("originals/good.jpg")
        .await
        .expect("the good record rendered");
    assert_eq!((manifest.source.width, manifest.source.height), (1200, 900));
    assert!(world.manifest("originals/corrupt.jpg").await.is_none());

    // A record that is not an event at all also fails alone; an empty batch fails nothing.
    let out = f
        .invoke(&sqs_event(&[
            ("m-1", "not json".into()),
            ("m-2", body("originals/good.jpg", good_len, &good_etag)),
        ]))
        .await
        .ok();
    assert_eq!(
        out,
        json!({ "batchItemFailures": [{ "itemIdentifier": "m-1" }] })
    );
    // A record without a messageId cannot be reported: the batch fails as a whole.
    let mut no_id = sqs_event(&[("x", "{}".into())]);
    no_id["Records"][0]
        .as_object_mut()
        .unwrap()
        .remove("messageId");
    match f.invoke(&no_id).await {
        Invoked::Err(t, _) => assert_eq!(t, "Rendition.Permanent.malformed_event"),
        other => panic!("expected a function error, got {other:?}"),
    }
}

#[tokio::test]
async fn lambda_storage_outage_is_503_or_retryable() {
    let world = World::s3().await;
    // Nothing listens there: every S3 call fails to connect.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let f = Function::start(
        &world,
        &[
            ("RENDITION__S3__ENDPOINT", &dead),
            ("RENDITION__S3__TIMEOUT_SECS", "5"),
        ],
    )
    .await;
    let path = format!(
        "/derived/a.jpg/984c96da-5462-511e-9377-0079ce0a525e/{}",
        preset_file("thumb", Format::Webp)
    );
    let resp = f.get(&path, &[]).await;
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("retry-after"), Some("2"));
    assert_eq!(resp.json()["error"], "storage_unavailable");

    let s3 = json!({ "Records": [s3_record(&world.bucket().name, "originals/a.jpg", 10, "abc")] });
    match f.invoke(&s3).await {
        Invoked::Err(t, _) => assert_eq!(t, "Rendition.Retryable.storage_unavailable"),
        other => panic!("expected a retryable function error, got {other:?}"),
    }
    let sqs = sqs_event(&[("m-1", s3.to_string())]);
    let out = f.invoke(&sqs).await.ok();
    assert_eq!(
        out,
        json!({ "batchItemFailures": [{ "itemIdentifier": "m-1" }] })
    );
}
