//! HTTP triggers: a Lambda Function URL request or an API Gateway HTTP API request
//! (payload format 2.0), answered with the on-demand path.
//!
//! - `GET`/`HEAD` only (else 405). The URL is the derivative URL: path = `/` + derivative
//!   key, signature in the query (see `rendition_pipeline::url`).
//! - Status, headers and body: `rendition_pipeline::respond`, the same answers as
//!   `rendition serve` (200 with `ETag`, `Content-Type` and `Cache-Control: public,
//!   max-age=31536000, immutable`; `If-None-Match` → 304 by weak comparison; errors as
//!   `{"error": kind, "message": …}` with the status of `OnDemandError::status()`, 5xx
//!   messages generic, 503 with `Retry-After`, never a Lambda error, which a Function URL
//!   would turn into a bare 502). This file only converts shapes, and sizes:
//! - a response that would not fit Lambda's 6 MB response limit (base64 plus headers,
//!   counted conservatively against [`MAX_RESPONSE_BYTES`]) → 302 to the derivative's URL
//!   from `UrlGenerator::for_key`: the CDN (`urls.hosts`) serves it from the bucket, where
//!   it is stored by then. Without `urls.hosts` the `Location` is relative, which works
//!   behind a CDN whose first origin is the bucket (the CDN's host resolves it).
//! - API Gateway with a named stage puts the stage in `rawPath` (`/prod/derived/…`); it is
//!   removed. (Custom-domain base-path mappings are not: map the API at the root.)
//! - Every request writes one metrics line ([`crate::emf`], `Function=on-demand`): its
//!   outcome ([`Served`]), status, error kind, time and bytes.

use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use rendition_pipeline::ondemand::{Derivative, OnDemandError};
use rendition_pipeline::respond::{self, Body as Content, Outcome, Response};
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::app::App;
use crate::emf::{Function, Measurement};

/// Largest serialized response sent inline. Lambda refuses responses over 6 MB (6,291,456
/// bytes, the JSON envelope included); this leaves room for the envelope and headers.
pub const MAX_RESPONSE_BYTES: usize = 5_500_000;

/// Which front door sent the request (the response shapes differ slightly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    FunctionUrl,
    ApiGateway,
}

/// What the handler needs from either request shape.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: Source,
    pub method: String,
    /// Raw (percent-encoded) path, stage removed.
    pub path: String,
    /// Raw query string without `?`; `None` when empty.
    pub query: Option<String>,
    pub headers: HeaderMap,
}

/// Reads a Function URL or API Gateway HTTP API 2.0 request with the typed events of
/// `aws_lambda_events`. Function URL domains are `<id>.lambda-url.<region>.on.aws`.
pub fn parse(event: Value) -> Result<Request, (Source, String)> {
    let function_url = event
        .pointer("/requestContext/domainName")
        .and_then(Value::as_str)
        .is_some_and(|d| d.contains(".lambda-url."));
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    if function_url {
        let source = Source::FunctionUrl;
        let req: LambdaFunctionUrlRequest =
            serde_json::from_value(event).map_err(|e| (source, e.to_string()))?;
        let http = req.request_context.http;
        Ok(Request {
            source,
            method: http.method.unwrap_or_default(),
            path: non_empty(req.raw_path)
                .or(http.path)
                .ok_or((source, "no rawPath".to_string()))?,
            query: non_empty(req.raw_query_string),
            headers: req.headers,
        })
    } else {
        let source = Source::ApiGateway;
        let req: ApiGatewayV2httpRequest =
            serde_json::from_value(event).map_err(|e| (source, e.to_string()))?;
        let ctx = req.request_context;
        let path = non_empty(req.raw_path)
            .or(ctx.http.path)
            .ok_or((source, "no rawPath".to_string()))?;
        Ok(Request {
            source,
            method: ctx.http.method.as_str().to_string(),
            path: strip_stage(path, ctx.stage.as_deref()),
            query: non_empty(req.raw_query_string),
            headers: req.headers,
        })
    }
}

/// `/prod/derived/…` → `/derived/…` for stage `prod`; the `$default` stage is not in paths.
fn strip_stage(path: String, stage: Option<&str>) -> String {
    match stage {
        Some(stage) if !stage.is_empty() && stage != "$default" => {
            match path
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(stage))
                .filter(|rest| rest.starts_with('/'))
            {
                Some(rest) => rest.to_string(),
                None => path,
            }
        }
        _ => path,
    }
}

/// The responder's answer in the shape of its front door.
fn to_value(answer: &Response, source: Source) -> Value {
    let status = i64::from(answer.status.as_u16());
    let headers = answer.headers.clone();
    let b64 = matches!(answer.body, Content::Bytes(_));
    let out = match source {
        Source::FunctionUrl => {
            let mut r = LambdaFunctionUrlResponse::default();
            r.status_code = status;
            r.headers = headers;
            r.is_base64_encoded = b64;
            r.body = match &answer.body {
                Content::Empty => None,
                Content::Json(text) => Some(text.clone()),
                Content::Bytes(bytes) => Some(STANDARD.encode(bytes)),
            };
            serde_json::to_value(r)
        }
        Source::ApiGateway => {
            let mut r = ApiGatewayV2httpResponse::default();
            r.status_code = status;
            r.headers = headers;
            r.is_base64_encoded = b64;
            r.body = match &answer.body {
                Content::Empty => None,
                Content::Json(text) => Some(Body::Text(text.clone())),
                Content::Bytes(bytes) => Some(Body::Binary(bytes.to_vec())),
            };
            serde_json::to_value(r)
        }
    };
    out.unwrap_or_else(|e| {
        error!(error = %e, "response did not serialize");
        json!({
            "statusCode": 500,
            "headers": {"x-content-type-options": "nosniff"},
            "body": "{\"error\":\"crashed\"}"
        })
    })
}

/// What a request was answered with, for its metrics line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A derivative rendered (and stored) by this request, of this many bytes.
    Rendered(u64),
    /// A derivative that was already stored, of this many bytes.
    Stored(u64),
    /// A `/latest/` redirect.
    Redirected,
    /// An error of this kind.
    Failed(&'static str),
}

impl Served {
    fn of(d: &Derivative) -> Served {
        let bytes = d.body.len() as u64;
        if d.rendered {
            Served::Rendered(bytes)
        } else {
            Served::Stored(bytes)
        }
    }

    /// The `Outcome` dimension; a failure is classed by the status it was answered with.
    pub fn outcome(self, status: StatusCode) -> &'static str {
        match self {
            Served::Rendered(_) => "rendered",
            Served::Stored(_) => "stored",
            Served::Redirected => "redirected",
            Served::Failed(_) if status.is_server_error() => "server_error",
            Served::Failed(_) => "client_error",
        }
    }
}

/// Handles one HTTP request; always a response, never a Lambda error.
pub async fn handle(app: &App, event: Value, now_unix: u64) -> Value {
    let started = Instant::now();
    let request = match parse(event) {
        Ok(request) => request,
        Err((source, reason)) => {
            warn!(reason = %reason, "malformed HTTP event");
            let response = respond::bad_request(&format!("malformed HTTP event: {reason}"));
            measure(
                app,
                started,
                &response,
                Served::Failed(respond::BAD_REQUEST),
            );
            return to_value(&response, source);
        }
    };
    let (response, served) = answer(app, &request, now_unix).await;
    info!(
        method = %request.method,
        path = %request.path,
        status = response.status.as_u16(),
        "request"
    );
    measure(app, started, &response, served);
    to_value(&response, request.source)
}

/// Writes the request's metrics line.
fn measure(app: &App, started: Instant, response: &Response, served: Served) {
    let (kind, bytes) = match served {
        Served::Rendered(bytes) | Served::Stored(bytes) => (None, bytes),
        Served::Redirected => (None, 0),
        Served::Failed(kind) => (Some(kind), 0),
    };
    app.emf.emit(&Measurement {
        function: Function::OnDemand,
        outcome: served.outcome(response.status),
        kind,
        status: Some(response.status.as_u16()),
        elapsed: started.elapsed(),
        bytes,
    });
}

/// The response to a parsed request, and what it was.
pub async fn answer(app: &App, req: &Request, now_unix: u64) -> (Response, Served) {
    let parts =
        respond::Request::from_headers(&req.method, &req.path, req.query.as_deref(), &req.headers);
    if let Some(refused) = respond::method_refused(&parts) {
        return (refused, Served::Failed(respond::METHOD_NOT_ALLOWED));
    }
    if let Some(latest) = app.ondemand.latest_for_path(parts.path, now_unix).await {
        let served = match &latest {
            Ok(_) => Served::Redirected,
            Err(e) => Served::Failed(e.kind()),
        };
        return (respond::respond(&parts, Outcome::latest(&latest)), served);
    }
    let d = match app
        .ondemand
        .get(parts.path, parts.query, parts.accepts(), now_unix)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            return (
                respond::respond(&parts, Outcome::Failed(&e)),
                Served::Failed(e.kind()),
            )
        }
    };
    let found = respond::respond(&parts, Outcome::Found(&d));
    if response_size(found.body.len(), &found.headers) <= MAX_RESPONSE_BYTES {
        return (found, Served::of(&d));
    }
    // Too large to send from here: it is stored by now, so its URL serves it.
    match app.urls.for_key(&d.key, now_unix) {
        Ok(location) => {
            info!(key = %d.key, bytes = d.body.len(), "over the response limit: redirecting");
            let redirect = respond::respond(
                &parts,
                Outcome::Redirect {
                    location: &location,
                },
            );
            (redirect, Served::of(&d))
        }
        Err(e) => {
            let e = OnDemandError::Crashed(format!("no URL for oversized {:?}: {e}", d.key));
            let kind = e.kind();
            (
                respond::respond(&parts, Outcome::Failed(&e)),
                Served::Failed(kind),
            )
        }
    }
}

/// An upper bound of the serialized response: base64 body, headers, JSON envelope.
pub fn response_size(body_len: usize, headers: &HeaderMap) -> usize {
    let base64 = body_len.div_ceil(3) * 4;
    let headers: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 8)
        .sum();
    base64 + headers + 256
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use rendition_pipeline::config::Settings;
    use rendition_pipeline::store::FsStore;

    const GUID: &str = "984c96da-5462-511e-9377-0079ce0a525e";

    fn app(dir: &std::path::Path) -> App {
        let settings = Settings::default();
        let renderer =
            rendition_image::renderer::Renderer::in_process(&settings.limits, &settings.render);
        App::new(
            settings,
            Arc::new(FsStore::new(dir).unwrap()),
            "local",
            renderer,
        )
    }

    fn function_url(method: &str, path: &str, query: &str) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": {"host": "abc.lambda-url.eu-west-1.on.aws"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc",
                "domainName": "abc.lambda-url.eu-west-1.on.aws", "domainPrefix": "abc",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "requestId": "r", "routeKey": "$default", "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390u64
            },
            "isBase64Encoded": false
        })
    }

    #[tokio::test]
    async fn fm_auto_negotiates_from_accept_or_the_cdn_header_and_varies() {
        use base64::Engine as _;
        use rendition_image::spec::Format;
        use rendition_pipeline::config::Preset;
        use rendition_pipeline::naming::{SourceNames, Variant};
        use rendition_pipeline::store::BlobStore as _;

        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.presets.insert(
            "any".into(),
            Preset {
                spec: "w=120,fm=auto".parse().unwrap(),
                eager: false,
                formats: vec![],
            },
        );
        let store = Arc::new(FsStore::new(dir.path()).unwrap());
        let key = "originals/cat.jpg";
        store
            .put(
                key,
                bytes::Bytes::from_static(include_bytes!(
                    "../../fuzz/seeds/decode_boundary/orient6.jpg"
                )),
                Default::default(),
            )
            .await
            .unwrap();
        let version = store
            .head(key)
            .await
            .unwrap()
            .unwrap()
            .version()
            .to_string();
        let path = format!(
            "/{}",
            SourceNames::of(&settings.storage, "local", key, &version)
                .unwrap()
                .derivative_key(
                    &Variant::preset("any", settings.presets["any"].negotiated_hash()),
                    "auto"
                )
                .unwrap()
        );
        let renderer =
            rendition_image::renderer::Renderer::in_process(&settings.limits, &settings.render);
        let app = App::new(settings, store, "local", renderer);
        for (headers, want) in [
            (json!({"accept": "image/avif,image/webp,*/*"}), "image/avif"),
            (json!({"accept": "image/webp,*/*;q=0.8"}), "image/webp"),
            (json!({"accept": "*/*"}), "image/jpeg"),
            (
                json!({"accept": "*/*", "x-rendition-format": "webp"}),
                "image/webp",
            ),
        ] {
            let mut event = function_url("GET", &path, "");
            for (name, value) in headers.as_object().unwrap() {
                event["headers"][name] = value.clone();
            }
            let reply = handle(&app, event, 0).await;
            assert_eq!(reply["statusCode"], 200, "{reply}");
            assert_eq!(reply["headers"]["content-type"], want, "{headers}");
            assert_eq!(reply["headers"]["vary"], rendition_pipeline::respond::VARY);
            let body = base64::engine::general_purpose::STANDARD
                .decode(reply["body"].as_str().unwrap())
                .unwrap();
            let sniffed = rendition_image::sniff::sniff(&body).unwrap();
            assert_eq!(format!("image/{}", sniffed.as_str()), want);
        }
        let stored: Vec<String> = std::fs::read_dir(
            dir.path()
                .join(path.trim_start_matches('/'))
                .parent()
                .unwrap(),
        )
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
        let any = &app.settings.presets["any"];
        let want: Vec<String> = [
            (Format::Avif, "avif"),
            (Format::Auto, "jpg"),
            (Format::Webp, "webp"),
        ]
        .iter()
        .map(|(f, ext)| format!("any.{}.{ext}", any.hash_in(*f)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
        assert_eq!(stored, want);

        // `/latest/{source}/{preset}`: a short-lived redirect to the current URL.
        let latest = handle(
            &app,
            function_url("GET", "/latest/originals/cat.jpg/any", ""),
            0,
        )
        .await;
        assert_eq!(latest["statusCode"], 302, "{latest}");
        assert_eq!(latest["headers"]["location"], path.as_str());
        assert_eq!(latest["headers"]["cache-control"], "public, max-age=60");
        let missing = handle(
            &app,
            function_url("GET", "/latest/originals/no.jpg/any", ""),
            0,
        )
        .await;
        assert_eq!(missing["statusCode"], 404, "{missing}");
    }

    #[test]
    fn stages_are_removed_from_api_gateway_paths() {
        let p = |path: &str, stage: Option<&str>| strip_stage(path.to_string(), stage);
        assert_eq!(p("/prod/derived/a", Some("prod")), "/derived/a");
        assert_eq!(p("/derived/a", Some("$default")), "/derived/a");
        assert_eq!(p("/derived/a", None), "/derived/a");
        assert_eq!(p("/production/a", Some("prod")), "/production/a");
        assert_eq!(p("/prod", Some("prod")), "/prod");
    }

    #[test]
    fn response_size_counts_base64_and_headers() {
        let h = HeaderMap::new();
        assert!(response_size(3 * 1024 * 1024, &h) < MAX_RESPONSE_BYTES);
        assert!(response_size(4_200_000, &h) > MAX_RESPONSE_BYTES);
        assert!(response_size(4_200_000, &h) < 6 * 1024 * 1024);
    }

    #[tokio::test]
    async fn bad_requests_are_4xx_responses() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let status = |v: &Value| v["statusCode"].as_i64().unwrap();
        let body =
            |v: &Value| -> Value { serde_json::from_str(v["body"].as_str().unwrap()).unwrap() };

        let post = handle(&app, function_url("POST", "/derived/a.jpg", ""), 0).await;
        assert_eq!(status(&post), 405);
        assert_eq!(post["headers"]["allow"], "GET, HEAD");
        assert_eq!(post["headers"]["x-content-type-options"], "nosniff");
        assert_eq!(body(&post)["error"], "method_not_allowed");

        let bad = handle(&app, function_url("GET", "/derived/a.jpg/x", ""), 0).await;
        assert_eq!(status(&bad), 400, "{bad}");
        assert_eq!(bad["headers"]["content-type"], "application/json");

        let thumb = app.settings.presets["thumb"].hash_in(rendition_image::spec::Format::Webp);
        let path = format!("/derived/nope.jpg/{GUID}/thumb.{thumb}.webp");
        let missing = handle(&app, function_url("GET", &path, ""), 0).await;
        assert_eq!(status(&missing), 404, "{missing}");
        assert_eq!(body(&missing)["error"], "source_missing");
        assert_eq!(missing["headers"]["cache-control"], "no-store");
        // HEAD: the same status and headers, no body.
        let head = handle(&app, function_url("HEAD", &path, ""), 0).await;
        assert_eq!(status(&head), 404, "{head}");
        assert_eq!(head["headers"], missing["headers"]);
        assert!(head["body"].is_null(), "{head}");

        let spec = format!("/derived/nope.jpg/{GUID}/w=10,fm=webp.webp");
        let unsigned = handle(&app, function_url("GET", &spec, ""), 0).await;
        assert_eq!(status(&unsigned), 403, "{unsigned}");

        // Shaped like HTTP, but not a valid request event.
        let broken = json!({"requestContext": {"http": {"method": "GET"}, "domainName": "x.lambda-url.a.on.aws"}});
        let broken = handle(&app, broken, 0).await;
        assert_eq!(status(&broken), 400, "{broken}");
        for reply in [&bad, &missing, &unsigned, &broken] {
            assert_eq!(reply["headers"]["x-content-type-options"], "nosniff");
        }
    }

    #[tokio::test]
    async fn every_request_writes_one_emf_line() {
        use base64::Engine as _;
        use rendition_image::spec::Format;
        use rendition_pipeline::naming::{SourceNames, Variant};

        let dir = tempfile::tempdir().unwrap();
        let mut app = app(dir.path());
        let (emitter, lines) = crate::emf::tests::capture();
        app.emf = emitter;
        let key = "originals/cat.jpg";
        let store = app.engine.store();
        store
            .put(
                key,
                bytes::Bytes::from_static(include_bytes!(
                    "../../fuzz/seeds/decode_boundary/orient6.jpg"
                )),
                Default::default(),
            )
            .await
            .unwrap();
        let version = store
            .head(key)
            .await
            .unwrap()
            .unwrap()
            .version()
            .to_string();
        let path = format!(
            "/{}",
            SourceNames::of(&app.settings.storage, "local", key, &version)
                .unwrap()
                .derivative_key(
                    &Variant::preset("thumb", app.settings.presets["thumb"].hash_in(Format::Webp)),
                    "webp"
                )
                .unwrap()
        );
        let emf = || crate::emf::tests::take(&lines);

        // A miss: rendered, stored, the process's first line.
        let rendered = handle(&app, function_url("GET", &path, ""), 0).await;
        assert_eq!(rendered["statusCode"], 200, "{rendered}");
        let body = base64::engine::general_purpose::STANDARD
            .decode(rendered["body"].as_str().unwrap())
            .unwrap();
        let [line] = emf().try_into().expect("one line per request");
        assert_eq!(line["Function"], "on-demand");
        assert_eq!(line["Outcome"], "rendered");
        assert_eq!(line["Status"], 200);
        assert_eq!(line["Bytes"], body.len() as u64);
        assert_eq!(line["ColdStart"], 1);
        assert!(line["RenderMs"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line.get("Kind").is_none(), "{line}");

        // A hit, then a conditional hit: the same bytes, from storage.
        let stored = handle(&app, function_url("GET", &path, ""), 0).await;
        let etag = stored["headers"]["etag"].as_str().unwrap().to_string();
        let mut conditional = function_url("GET", &path, "");
        conditional["headers"]["if-none-match"] = json!(etag);
        let not_modified = handle(&app, conditional, 0).await;
        assert_eq!(not_modified["statusCode"], 304, "{not_modified}");
        let [hit, revalidated] = emf().try_into().expect("one line per request");
        for (line, status) in [(&hit, 200), (&revalidated, 304)] {
            assert_eq!(line["Outcome"], "stored", "{line}");
            assert_eq!(line["Status"], status, "{line}");
            assert_eq!(line["Bytes"], body.len() as u64, "{line}");
            assert_eq!(line["ColdStart"], 0, "{line}");
        }

        // A redirect and refusals: classed by status, the kind beside it.
        let thumb = app.settings.presets["thumb"].hash_in(rendition_image::spec::Format::Webp);
        let missing = format!("/derived/nope.jpg/{GUID}/thumb.{thumb}.webp");
        let broken = json!({"requestContext": {"http": {"method": "GET"}, "domainName": "x.lambda-url.a.on.aws"}});
        for event in [
            function_url("GET", "/latest/originals/cat.jpg/thumb", ""),
            function_url("GET", &missing, ""),
            function_url("POST", &path, ""),
            broken,
        ] {
            handle(&app, event, 0).await;
        }
        let got: Vec<_> = emf()
            .iter()
            .map(|l| {
                assert_eq!(l["Function"], "on-demand");
                assert_eq!(l["ColdStart"], 0);
                (
                    l["Outcome"].as_str().unwrap().to_string(),
                    l["Status"].as_u64().unwrap(),
                    l["Kind"].as_str().map(str::to_string),
                    l["Bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        let want = |outcome: &str, status, kind: Option<&str>| {
            (outcome.to_string(), status, kind.map(str::to_string), 0)
        };
        assert_eq!(
            got,
            [
                want("redirected", 302, None),
                want("client_error", 404, Some("source_missing")),
                want("client_error", 405, Some("method_not_allowed")),
                want("client_error", 400, Some("bad_request")),
            ]
        );
    }
}
