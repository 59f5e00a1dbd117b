//! HTTP triggers: a Lambda Function URL request or an API Gateway HTTP API request
//! (payload format 2.0), answered with the on-demand path.
//!
//! - `GET`/`HEAD` only (else 405). The URL is the derivative URL: path = `/` + derivative
//!   key, signature in the query (see `rendition_core::url`).
//! - 200: the bytes, base64 (`isBase64Encoded: true`), with `Content-Type`,
//!   `Cache-Control: public, max-age=31536000, immutable` and `ETag`; `If-None-Match`
//!   with that ETag (or `*`) → 304.
//! - A response that would not fit Lambda's 6 MB response limit (base64 plus headers,
//!   counted conservatively against [`MAX_RESPONSE_BYTES`]) → 302 to the derivative's URL
//!   from `UrlGenerator::for_key`: the CDN (`urls.hosts`) serves it from the bucket, where
//!   it is stored by then. Without `urls.hosts` the `Location` is relative, which works
//!   behind a CDN whose first origin is the bucket (the CDN's host resolves it).
//! - Errors: the status of `OnDemandError::status()` with `{"error": kind, "message": …}`.
//!   Bad input is 4xx, never 500; storage outages are 503 responses with `Retry-After`
//!   (not Lambda errors, which a Function URL would turn into a bare 502).
//! - API Gateway with a named stage puts the stage in `rawPath` (`/prod/derived/…`); it is
//!   removed. (Custom-domain base-path mappings are not: map the API at the root.)

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{header, HeaderMap, HeaderValue};
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rendition_core::ondemand::{Derivative, OnDemandError};
use rendition_core::store::IMMUTABLE;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::app::App;

/// Largest serialized response sent inline. Lambda refuses responses over 6 MB (6,291,456
/// bytes, the JSON envelope included); this leaves room for the envelope and headers.
pub const MAX_RESPONSE_BYTES: usize = 5_500_000;

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "2";

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

/// A response before it is shaped for its front door.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

#[derive(Debug)]
pub enum ReplyBody {
    None,
    Json(String),
    Binary(bytes::Bytes),
}

impl Reply {
    fn to_value(&self, source: Source) -> Value {
        // Every response leaves through here: browsers must not guess another type than
        // `Content-Type` (an error body sniffed as HTML would run on this origin).
        let mut headers = self.headers.clone();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        let (body, b64) = match &self.body {
            ReplyBody::None => (None, false),
            ReplyBody::Json(text) => (Some(Body::Text(text.clone())), false),
            ReplyBody::Binary(bytes) => (Some(Body::Binary(bytes.to_vec())), true),
        };
        let out = match source {
            Source::FunctionUrl => {
                let mut r = LambdaFunctionUrlResponse::default();
                r.status_code = i64::from(self.status);
                r.headers = headers;
                r.is_base64_encoded = b64;
                r.body = match &self.body {
                    ReplyBody::None => None,
                    ReplyBody::Json(text) => Some(text.clone()),
                    ReplyBody::Binary(bytes) => Some(STANDARD.encode(bytes)),
                };
                serde_json::to_value(r)
            }
            Source::ApiGateway => {
                let mut r = ApiGatewayV2httpResponse::default();
                r.status_code = i64::from(self.status);
                r.headers = headers;
                r.is_base64_encoded = b64;
                r.body = body;
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
}

/// Handles one HTTP request; always a response, never a Lambda error.
pub async fn handle(app: &App, event: Value, now_unix: u64) -> Value {
    let request = match parse(event) {
        Ok(request) => request,
        Err((source, reason)) => {
            warn!(reason = %reason, "malformed HTTP event");
            let reply = error_reply(
                400,
                "bad_request",
                format!("malformed HTTP event: {reason}"),
            );
            return reply.to_value(source);
        }
    };
    let reply = respond(app, &request, now_unix).await;
    info!(
        method = %request.method,
        path = %request.path,
        status = reply.status,
        "request"
    );
    reply.to_value(request.source)
}

/// The response to a parsed request.
pub async fn respond(app: &App, req: &Request, now_unix: u64) -> Reply {
    let head = req.method == "HEAD";
    if !head && req.method != "GET" {
        let mut reply = error_reply(
            405,
            "method_not_allowed",
            format!("{:?} is not allowed: use GET or HEAD", req.method),
        );
        reply
            .headers
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    match app
        .ondemand
        .get(&req.path, req.query.as_deref(), now_unix)
        .await
    {
        Ok(d) => success(app, req, &d, head, now_unix),
        Err(e) => failure(&e),
    }
}

fn success(app: &App, req: &Request, d: &Derivative, head: bool, now_unix: u64) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Some(etag) = HeaderValue::from_str(&d.etag)
        .ok()
        .filter(|_| !d.etag.is_empty())
    {
        headers.insert(header::ETAG, etag);
    }
    if etag_matches(&req.headers, &d.etag) {
        return Reply {
            status: 304,
            headers,
            body: ReplyBody::None,
        };
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&d.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if head {
        return Reply {
            status: 200,
            headers,
            body: ReplyBody::None,
        };
    }
    if response_size(d.body.len(), &headers) > MAX_RESPONSE_BYTES {
        return redirect(app, d, now_unix);
    }
    Reply {
        status: 200,
        headers,
        body: ReplyBody::Binary(d.body.clone()),
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

/// 302 to the stored derivative's URL.
fn redirect(app: &App, d: &Derivative, now_unix: u64) -> Reply {
    match app.urls.for_key(&d.key, now_unix) {
        Ok(location) => match HeaderValue::from_str(&location) {
            Ok(value) => {
                info!(key = %d.key, bytes = d.body.len(), "over the response limit: redirecting");
                let mut headers = HeaderMap::new();
                headers.insert(header::LOCATION, value);
                // Never cache the redirect: the URL itself will be served from storage.
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Reply {
                    status: 302,
                    headers,
                    body: ReplyBody::None,
                }
            }
            Err(e) => {
                error!(key = %d.key, error = %e, "derivative URL is not a header value");
                error_reply(500, "crashed", "internal error".into())
            }
        },
        Err(e) => {
            error!(key = %d.key, error = %e, "no URL for an oversized derivative");
            error_reply(500, "crashed", "internal error".into())
        }
    }
}

/// `If-None-Match` holds `*` or the ETag (weak comparison, as RFC 9110 asks for it).
pub fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    if etag.is_empty() {
        return false;
    }
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = strip(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

fn error_reply(status: u16, kind: &str, message: String) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Reply {
        status,
        headers,
        body: ReplyBody::Json(json!({ "error": kind, "message": message }).to_string()),
    }
}

fn failure(e: &OnDemandError) -> Reply {
    let status = e.status();
    let kind = kind_of(e);
    let message = match status {
        503 if e.kind() == "storage_unavailable" => {
            "storage is unavailable; try again shortly".to_string()
        }
        503 => "temporarily unavailable; try again shortly".to_string(),
        502 => "storage refused the request".to_string(),
        s if s >= 500 => "internal error".to_string(),
        _ => e.to_string(),
    };
    if status >= 500 {
        error!(status, kind, error = %e, "on-demand request failed");
    } else {
        info!(status, kind, error = %e, "request refused");
    }
    let mut reply = error_reply(status, kind, message);
    if status == 503 {
        reply.headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    reply
}

/// Stable error kind of an on-demand failure (the `error` field of error bodies).
pub fn kind_of(e: &OnDemandError) -> &'static str {
    e.kind()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use rendition_core::config::Settings;
    use rendition_core::store::FsStore;

    const GUID: &str = "984c96da-5462-511e-9377-0079ce0a525e";

    fn app(dir: &std::path::Path) -> App {
        let settings = Settings::default();
        let renderer = rendition_core::renderer::Renderer::in_process(&settings);
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
    fn if_none_match() {
        let mut h = HeaderMap::new();
        assert!(!etag_matches(&h, "\"abc\""));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(etag_matches(&h, "\"abc\""));
        assert!(!etag_matches(&h, "\"ab\""));
        assert!(!etag_matches(&h, ""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(etag_matches(&h, "\"anything\""));
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

        let path = format!("/derived/nope.jpg/{GUID}/thumb.webp");
        let missing = handle(&app, function_url("GET", &path, ""), 0).await;
        assert_eq!(status(&missing), 404, "{missing}");
        assert_eq!(body(&missing)["error"], "source_missing");

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
}
