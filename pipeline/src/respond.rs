//! The one answer to an on-demand request, whatever front door it came through
//! (`rendition serve`, a Lambda Function URL, API Gateway): status, headers and body from
//! the request's shape-free parts and the outcome. The front doors only convert shapes.
//!
//! - `GET` and `HEAD` only; anything else is 405 with `Allow: GET, HEAD`
//!   ([`method_refused`] says so before any work is done).
//! - 200: the bytes, with `ETag`, `Content-Type`, `Content-Length` and
//!   `Cache-Control` = [`IMMUTABLE`]. `HEAD` gets the same headers and no body.
//! - `If-None-Match` (RFC 9110 §13.1.2): weak comparison against every listed entity-tag
//!   of every field line, `*` matches any derivative → 304 with `ETag` and
//!   `Cache-Control`, no body.
//! - `/latest/{source}/{preset}`: 302 to the current URL, `Cache-Control: public,
//!   max-age=60`.
//! - A preset URL of a superseded spec whose object is gone
//!   ([`OnDemandError::Superseded`]): 302 to the current version's URL, `no-store`.
//! - Errors: the status of [`OnDemandError::status`], `Cache-Control: no-store`, a JSON
//!   body `{"error": kind, "message": …}` with [`OnDemandError::kind`]; the message of a
//!   5xx is a generic text (the error itself is logged here, never sent); 503 carries
//!   `Retry-After`.
//! - `X-Content-Type-Options: nosniff` on every response: browsers must not guess another
//!   type than `Content-Type` (an error body sniffed as HTML would run on this origin).
//! - An `fm=auto` derivative (its format negotiated from `Accept` or the CDN's
//!   [`FORMAT_HEADER`]) carries `Vary: Accept, X-Rendition-Format` on its 200 and 304.
//!
//! Pure but for one log line per error (5xx with the error the body leaves out): no I/O,
//! no clock.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use tracing::{error, info};

use crate::negotiate::{Accepts, FORMAT_HEADER};
use crate::ondemand::{Derivative, OnDemandError};
use crate::store::IMMUTABLE;
use rendition_image::text::truncate;

/// How long a `/latest/…` redirect may be cached: short, since a replaced source or an
/// edited preset moves it.
pub const LATEST_MAX_AGE_SECS: u32 = 60;
const LATEST_CACHE_CONTROL: &str = "public, max-age=60";

/// What a negotiated (`fm=auto`) answer varies on: `Accept`, and the CDN's normalised
/// header, which wins when a request carries it (a cache in front of `serve` that is not
/// the CloudFront Function must not serve one client's choice to another).
pub const VARY: &str = "Accept, X-Rendition-Format";

/// Seconds a client should wait after a 503.
pub const RETRY_AFTER_SECS: &str = "2";

/// The methods answered; the value of `Allow` on a 405.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// The `error` of the answers that are no [`OnDemandError`]: a method other than `GET` or
/// `HEAD` (405), a request its front door could not read (400), a waiter that stopped
/// waiting for a render still in progress (504).
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
pub const BAD_REQUEST: &str = "bad_request";
pub const RENDER_IN_PROGRESS: &str = "render_in_progress";

/// What the answer depends on in a request, whatever its shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// As sent (methods are case-sensitive: `get` is not `GET`).
    pub method: &'a str,
    /// Raw (percent-encoded) path.
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: Option<&'a str>,
    /// Every `If-None-Match` field line, in order (each a comma-separated list).
    pub if_none_match: Vec<&'a str>,
    /// Every `Accept` field line, in order: an `fm=auto` variant's format is negotiated
    /// from them ([`crate::negotiate`]).
    pub accept: Vec<&'a str>,
    /// The CDN's normalised format ([`FORMAT_HEADER`]), when present: it wins over
    /// `Accept`.
    pub format_header: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The parts of a request from its method, target and headers (field lines that are not
    /// visible ASCII are ignored).
    pub fn from_headers(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> Self {
        let lines = |name: HeaderName| -> Vec<&'a str> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        Request {
            method,
            path,
            query,
            if_none_match: lines(header::IF_NONE_MATCH),
            accept: lines(header::ACCEPT),
            format_header: lines(HeaderName::from_static(FORMAT_HEADER))
                .first()
                .copied(),
        }
    }

    /// What the client takes, for `fm=auto`.
    pub fn accepts(&self) -> Accepts {
        Accepts::from_request(&self.accept, self.format_header)
    }

    /// `GET` or `HEAD`.
    pub fn method_allowed(&self) -> bool {
        matches!(self.method, "GET" | "HEAD")
    }

    fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// How the request ended, as far as the front door knows.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The derivative (stored, or rendered just now).
    Found(&'a Derivative),
    /// The derivative is stored but not sent from here: 302 to `location`, its URL.
    Redirect {
        location: &'a str,
    },
    /// `/latest/{source}/{preset}`: 302 to the current immutable URL, cached for
    /// [`LATEST_MAX_AGE_SECS`] only (a replaced source gets a new one).
    Latest {
        location: &'a str,
    },
    Failed(&'a OnDemandError),
    /// The front door stopped waiting for a render that carries on (`rendition serve`).
    GaveUp,
}

impl<'a> Outcome<'a> {
    /// The outcome of a `/latest/…` request.
    pub fn latest(result: &'a Result<String, OnDemandError>) -> Outcome<'a> {
        match result {
            Ok(location) => Outcome::Latest { location },
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// A response before it is shaped for its front door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No content (`HEAD`, 304, 302).
    Empty,
    /// An error body (`application/json`).
    Json(String),
    /// A derivative's bytes.
    Bytes(Bytes),
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::Json(text) => text.len(),
            Body::Bytes(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The 405 for a method other than `GET` or `HEAD`, decided before any work is done;
/// `None` for `GET` and `HEAD`.
pub fn method_refused(req: &Request) -> Option<Response> {
    if req.method_allowed() {
        return None;
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    let message = format!(
        "{:?} is not allowed: use GET or HEAD",
        truncate(req.method, 64)
    );
    Some(error(
        StatusCode::METHOD_NOT_ALLOWED,
        headers,
        METHOD_NOT_ALLOWED,
        &message,
        false,
    ))
}

/// The answer to `req` once it ended in `outcome`.
pub fn respond(req: &Request, outcome: Outcome<'_>) -> Response {
    if let Some(refused) = method_refused(req) {
        return refused;
    }
    let head = req.is_head();
    match outcome {
        Outcome::Found(d) => found(req, d, head),
        // Never cached: the URL itself is what is served from storage.
        Outcome::Redirect { location } => redirect(req, location, "no-store", head),
        Outcome::Latest { location } => redirect(req, location, LATEST_CACHE_CONTROL, head),
        // Not a failure: the URL's version is not stored, the current one is elsewhere.
        // Never cached: during a rolling deploy an instance with the old presets would
        // redirect the new URL back, and a cached pair of redirects would loop at the CDN.
        Outcome::Failed(OnDemandError::Superseded { location }) => {
            redirect(req, location, "no-store", head)
        }
        Outcome::Failed(e) => failed(req, e, head),
        Outcome::GaveUp => error(
            StatusCode::GATEWAY_TIMEOUT,
            HeaderMap::new(),
            RENDER_IN_PROGRESS,
            "render still in progress; try again",
            head,
        ),
    }
}

/// A 302 to `location` with `cache_control`; a location that cannot be a header is ours
/// to fix (500).
fn redirect(req: &Request, location: &str, cache_control: &'static str, head: bool) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => {
            let mut headers = HeaderMap::new();
            headers.insert(header::LOCATION, location);
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            );
            finish(StatusCode::FOUND, headers, Body::Empty, head)
        }
        Err(e) => {
            let crashed = OnDemandError::Crashed(format!(
                "derivative URL {:?} is not a header value: {e}",
                truncate(location, 512)
            ));
            failed(req, &crashed, head)
        }
    }
}

/// The 400 for a request its front door could not read (no method or path to answer).
pub fn bad_request(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        HeaderMap::new(),
        BAD_REQUEST,
        message,
        false,
    )
}

fn found(req: &Request, d: &Derivative, head: bool) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if d.vary {
        headers.insert(header::VARY, HeaderValue::from_static(VARY));
    }
    if let Some(etag) = HeaderValue::from_str(&d.etag)
        .ok()
        .filter(|_| !d.etag.is_empty())
    {
        headers.insert(header::ETAG, etag);
    }
    if none_match(&req.if_none_match, &d.etag) {
        return finish(StatusCode::NOT_MODIFIED, headers, Body::Empty, head);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&d.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    finish(StatusCode::OK, headers, Body::Bytes(d.body.clone()), head)
}

fn failed(req: &Request, e: &OnDemandError, head: bool) -> Response {
    let code = e.status();
    let kind = e.kind();
    let message = match code {
        503 if kind == "storage_unavailable" => {
            "storage is unavailable; try again shortly".to_string()
        }
        503 => "temporarily unavailable; try again shortly".to_string(),
        502 => "storage refused the request".to_string(),
        500.. => "internal error".to_string(),
        _ => e.to_string(),
    };
    if code >= 500 {
        // The only place this error is seen: the body says less.
        let path = truncate(req.path, 512);
        error!(status = code, kind, path = %path, error = %e, "on-demand request failed");
    } else {
        info!(status = code, kind, error = %e, "request refused");
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, HeaderMap::new(), kind, &message, head)
}

/// An error response: `{"error": kind, "message": …}`, never cached, `Retry-After` on 503.
fn error(
    status: StatusCode,
    mut headers: HeaderMap,
    kind: &str,
    message: &str,
    head: bool,
) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    let body = serde_json::json!({ "error": kind, "message": message }).to_string();
    finish(status, headers, Body::Json(body), head)
}

/// The headers every response has; no body for `HEAD` (its `Content-Length` is the one a
/// `GET` would have) nor for 304 (no `Content-Length` either).
fn finish(status: StatusCode, mut headers: HeaderMap, body: Body, head: bool) -> Response {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status != StatusCode::NOT_MODIFIED {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let body = if head || status == StatusCode::NOT_MODIFIED {
        Body::Empty
    } else {
        body
    };
    Response {
        status,
        headers,
        body,
    }
}

/// Whether the `If-None-Match` field lines match a derivative tagged `etag`: `*` matches
/// any; otherwise one of the listed entity-tags does, compared weakly (`W/"x"` and `"x"`
/// match each other). An empty `etag` matches no listed tag.
pub fn none_match(fields: &[&str], etag: &str) -> bool {
    let ours = opaque(etag);
    fields
        .iter()
        .any(|field| list_matches(field, (!ours.is_empty()).then_some(ours)))
}

/// An entity-tag without its weakness indicator.
fn opaque(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// One field line: `*`, or a comma-separated list of entity-tags (an opaque tag may itself
/// hold commas). A malformed member is skipped up to the next comma.
fn list_matches(field: &str, ours: Option<&str>) -> bool {
    let mut rest = field;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        if rest.starts_with('*') {
            return true;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        if let Some(inner) = tag.strip_prefix('"') {
            let Some(end) = inner.find('"') else {
                return false;
            };
            if ours == Some(&tag[..end + 2]) {
                return true;
            }
            rest = &inner[end + 1..];
        } else {
            match rest.find(',') {
                Some(comma) => rest = &rest[comma + 1..],
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::url::UrlError;
    use rendition_image::render::RenderError;

    const TAG: &str = "\"0123abcd\"";

    fn derivative(etag: &str) -> Derivative {
        Derivative {
            key: "derived/a.jpg/984c96da-5462-511e-9377-0079ce0a525e/thumb.webp".into(),
            body: Bytes::from_static(b"RIFF....WEBP"),
            content_type: "image/webp".into(),
            etag: etag.into(),
            rendered: false,
            vary: false,
        }
    }

    fn request<'a>(method: &'a str, if_none_match: &[&'a str]) -> Request<'a> {
        Request {
            method,
            path: "/derived/a.jpg/984c96da-5462-511e-9377-0079ce0a525e/thumb.webp",
            query: None,
            if_none_match: if_none_match.to_vec(),
            accept: vec!["image/avif,image/webp,*/*"],
            format_header: None,
        }
    }

    #[test]
    fn a_negotiated_derivative_varies_on_accept_and_others_do_not() {
        let plain = derivative(TAG);
        let auto = Derivative {
            vary: true,
            ..derivative(TAG)
        };
        let get = request("GET", &[]);
        let cached = request("GET", &[TAG]);
        assert_eq!(
            header(&respond(&get, Outcome::Found(&auto)), "vary"),
            Some(VARY)
        );
        let not_modified = respond(&cached, Outcome::Found(&auto));
        assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
        assert_eq!(header(&not_modified, "vary"), Some(VARY));
        assert_eq!(header(&respond(&get, Outcome::Found(&plain)), "vary"), None);
    }

    #[test]
    fn the_cdn_header_is_read_from_the_request() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(FORMAT_HEADER, HeaderValue::from_static("webp"));
        let req = Request::from_headers("GET", "/x", None, &headers);
        assert_eq!(req.format_header, Some("webp"));
        assert_eq!(req.accepts().as_header(), "webp");
        headers.remove(FORMAT_HEADER);
        let req = Request::from_headers("GET", "/x", None, &headers);
        assert_eq!(req.accepts().as_header(), "jpeg");
    }

    fn header<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
        r.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(r: &Response) -> serde_json::Value {
        match &r.body {
            Body::Json(text) => serde_json::from_str(text).unwrap(),
            other => panic!("not a JSON body: {other:?}"),
        }
    }

    #[test]
    fn if_none_match_is_weak_over_every_tag() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], TAG, false),
            (&["\"0123abcd\""], TAG, true),
            (&["W/\"0123abcd\""], TAG, true),
            (&["\"0123abcd\""], "W/\"0123abcd\"", true),
            (&["W/\"0123abcd\""], "W/\"0123abcd\"", true),
            (&["\"0123abc\""], TAG, false),
            (&["0123abcd"], TAG, false),
            (&["\"x\", W/\"0123abcd\""], TAG, true),
            (&["\"x\",\"y\""], TAG, false),
            (&["\"x\"", "\"y\" , \"0123abcd\""], TAG, true),
            // Commas belong to an opaque tag; a malformed member is skipped.
            (&["\"a,b\""], "\"a,b\"", true),
            (&["\"a,b\""], "\"b\"", false),
            (&["junk, \"0123abcd\""], TAG, true),
            (&["\"unterminated"], TAG, false),
            (&["*"], TAG, true),
            (&[" * "], "", true),
            (&["\"\""], "", false),
            (&["\"0123abcd\""], "", false),
        ];
        for (fields, etag, want) in cases {
            assert_eq!(none_match(fields, etag), *want, "{fields:?} vs {etag:?}");
        }
    }

    #[test]
    fn derivatives_200_304_and_head() {
        let d = derivative(TAG);
        let len = d.body.len().to_string();
        struct Case<'a> {
            method: &'a str,
            if_none_match: &'a [&'a str],
            status: u16,
            body: bool,
            content: bool,
        }
        let cases = [
            Case {
                method: "GET",
                if_none_match: &[],
                status: 200,
                body: true,
                content: true,
            },
            Case {
                method: "HEAD",
                if_none_match: &[],
                status: 200,
                body: false,
                content: true,
            },
            Case {
                method: "GET",
                if_none_match: &["W/\"0123abcd\""],
                status: 304,
                body: false,
                content: false,
            },
            Case {
                method: "HEAD",
                if_none_match: &["\"other\", \"0123abcd\""],
                status: 304,
                body: false,
                content: false,
            },
            Case {
                method: "GET",
                if_none_match: &["*"],
                status: 304,
                body: false,
                content: false,
            },
            Case {
                method: "GET",
                if_none_match: &["\"other\""],
                status: 200,
                body: true,
                content: true,
            },
        ];
        for case in cases {
            let what = format!("{} {:?}", case.method, case.if_none_match);
            let r = respond(
                &request(case.method, case.if_none_match),
                Outcome::Found(&d),
            );
            assert_eq!(r.status.as_u16(), case.status, "{what}");
            assert_eq!(header(&r, "etag"), Some(TAG), "{what}");
            assert_eq!(header(&r, "cache-control"), Some(IMMUTABLE), "{what}");
            assert_eq!(
                header(&r, "x-content-type-options"),
                Some("nosniff"),
                "{what}"
            );
            let body = if case.body {
                Body::Bytes(d.body.clone())
            } else {
                Body::Empty
            };
            assert_eq!(r.body, body, "{what}");
            let (content_type, content_length) = if case.content {
                (Some("image/webp"), Some(len.as_str()))
            } else {
                (None, None)
            };
            assert_eq!(header(&r, "content-type"), content_type, "{what}");
            assert_eq!(header(&r, "content-length"), content_length, "{what}");
            assert_eq!(header(&r, "retry-after"), None, "{what}");
        }
    }

    #[test]
    fn odd_stored_values_fall_back() {
        let mut d = derivative("");
        d.content_type = "image/webp\n".into();
        let r = respond(&request("GET", &["\"\""]), Outcome::Found(&d));
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(header(&r, "etag"), None);
        assert_eq!(header(&r, "content-type"), Some("application/octet-stream"));
    }

    #[test]
    fn methods_other_than_get_and_head_are_405() {
        let d = derivative(TAG);
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "get", ""] {
            let req = request(method, &["*"]);
            let early = method_refused(&req).expect("refused");
            assert_eq!(respond(&req, Outcome::Found(&d)), early, "{method}");
            assert_eq!(early.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(header(&early, "allow"), Some("GET, HEAD"));
            assert_eq!(header(&early, "cache-control"), Some("no-store"));
            assert_eq!(header(&early, "x-content-type-options"), Some("nosniff"));
            let body = json(&early);
            assert_eq!(body["error"], "method_not_allowed");
            assert_eq!(
                body["message"],
                format!("{method:?} is not allowed: use GET or HEAD")
            );
        }
        for method in ["GET", "HEAD"] {
            assert_eq!(method_refused(&request(method, &[])), None);
        }
    }

    #[test]
    fn errors_by_class() {
        let key = || "originals/a.jpg".to_string();
        // (error, status, kind, message: `None` = the error's own text)
        let cases: Vec<(OnDemandError, u16, &str, Option<&str>)> = vec![
            (UrlError::BadQuery("x").into(), 400, "bad_query", None),
            (UrlError::BadSignature.into(), 403, "bad_signature", None),
            (
                OnDemandError::SourceMissing { key: key() },
                404,
                "source_missing",
                None,
            ),
            (OnDemandError::Stale { key: key() }, 404, "stale_url", None),
            (
                RenderError::InputTooLarge { bytes: 9, limit: 1 }.into(),
                422,
                "input_too_large",
                None,
            ),
            (
                StoreError::TooLarge {
                    key: key(),
                    limit: 1,
                }
                .into(),
                422,
                "input_too_large",
                None,
            ),
            (
                OnDemandError::Crashed("secret detail".into()),
                500,
                "crashed",
                Some("internal error"),
            ),
            (
                StoreError::Other("secret detail".into()).into(),
                502,
                "storage_error",
                Some("storage refused the request"),
            ),
            (
                StoreError::Unavailable("secret detail".into()).into(),
                503,
                "storage_unavailable",
                Some("storage is unavailable; try again shortly"),
            ),
            (
                OnDemandError::Busy { in_flight: 2 },
                503,
                "busy",
                Some("temporarily unavailable; try again shortly"),
            ),
        ];
        for (e, status, kind, hidden) in &cases {
            for method in ["GET", "HEAD"] {
                let what = format!("{method} {e}");
                let r = respond(&request(method, &["*"]), Outcome::Failed(e));
                assert_eq!(r.status.as_u16(), *status, "{what}");
                assert_eq!(header(&r, "content-type"), Some("application/json"));
                assert_eq!(header(&r, "cache-control"), Some("no-store"), "{what}");
                assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
                assert_eq!(header(&r, "etag"), None, "{what}");
                let retry_after = (*status == 503).then_some(RETRY_AFTER_SECS);
                assert_eq!(header(&r, "retry-after"), retry_after, "{what}");
                let get = respond(&request("GET", &[]), Outcome::Failed(e));
                assert_eq!(
                    header(&r, "content-length"),
                    Some(get.body.len().to_string().as_str()),
                    "{what}"
                );
                if method == "HEAD" {
                    assert_eq!(r.body, Body::Empty, "{what}");
                    continue;
                }
                let body = json(&r);
                assert_eq!(body["error"], *kind, "{what}");
                let message = hidden.map_or_else(|| e.to_string(), str::to_string);
                assert_eq!(body["message"], message, "{what}");
                assert!(!body.to_string().contains("secret"), "{what}: {body}");
            }
        }
    }

    #[test]
    fn gave_up_waiting_is_504() {
        let r = respond(&request("GET", &[]), Outcome::GaveUp);
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(header(&r, "retry-after"), None);
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(json(&r)["error"], "render_in_progress");
    }

    #[test]
    fn redirects_are_302_never_cached() {
        let location = "https://img.example.test/derived/a.png?sig=x";
        let r = respond(&request("GET", &[]), Outcome::Redirect { location });
        assert_eq!(r.status, StatusCode::FOUND);
        assert_eq!(header(&r, "location"), Some(location));
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&r, "content-length"), Some("0"));
        assert_eq!(r.body, Body::Empty);
        let broken = Outcome::Redirect { location: "/a\nb" };
        let r = respond(&request("GET", &[]), broken);
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json(&r)["error"], "crashed");
        assert_eq!(json(&r)["message"], "internal error");
        assert_eq!(header(&r, "location"), None);
    }

    #[test]
    fn latest_redirects_are_302_cached_briefly() {
        let location = "/derived/a.jpg/984c96da-5462-511e-9377-0079ce0a525e/thumb.webp";
        let r = respond(&request("GET", &[]), Outcome::Latest { location });
        assert_eq!(r.status, StatusCode::FOUND);
        assert_eq!(header(&r, "location"), Some(location));
        assert_eq!(
            header(&r, "cache-control"),
            Some(format!("public, max-age={LATEST_MAX_AGE_SECS}").as_str())
        );
    }

    #[test]
    fn superseded_versions_redirect_to_the_current_one() {
        let location = "/derived/a.jpg/984c96da-5462-511e-9377-0079ce0a525e/thumb.a3134a7c.webp";
        let e = OnDemandError::Superseded {
            location: location.into(),
        };
        for method in ["GET", "HEAD"] {
            let r = respond(&request(method, &[]), Outcome::Failed(&e));
            assert_eq!(r.status, StatusCode::FOUND);
            assert_eq!(header(&r, "location"), Some(location));
            // Not cached: two configurations side by side must not cache a loop.
            assert_eq!(header(&r, "cache-control"), Some("no-store"));
            assert_eq!(r.body, Body::Empty);
        }
    }

    #[test]
    fn unreadable_requests_are_400() {
        let r = bad_request("malformed HTTP event: no rawPath");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(json(&r)["error"], "bad_request");
        assert_eq!(json(&r)["message"], "malformed HTTP event: no rawPath");
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    }

    #[test]
    fn parts_come_from_every_field_line() {
        let mut headers = HeaderMap::new();
        headers.append(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\""));
        headers.append(header::IF_NONE_MATCH, HeaderValue::from_static("W/\"b\""));
        headers.append(header::ACCEPT, HeaderValue::from_static("image/avif"));
        headers.append(
            header::IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\"\xff\"").unwrap(),
        );
        let req = Request::from_headers("HEAD", "/p", Some("sig=x"), &headers);
        assert_eq!(req.if_none_match, ["\"a\"", "W/\"b\""]);
        assert_eq!(req.accept, ["image/avif"]);
        assert_eq!((req.path, req.query), ("/p", Some("sig=x")));
        let r = respond(&req, Outcome::Found(&derivative("\"b\"")));
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    }
}
