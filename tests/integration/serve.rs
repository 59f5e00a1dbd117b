//! `rendition serve --local DIR` as a user runs it: the real binary on a free loopback
//! port, URLs made by `rendition url`, plain HTTP/1.1 requests.

use std::path::Path;
use std::time::Duration;

use rendition_image::spec::Format;
use rendition_pipeline::store::IMMUTABLE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(120);

pub(crate) fn env_keys() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RENDITION__URLS__SIGNING_KEYS", "[\"rendition-test-signing-key-0123456789abcdef\", \"rendition-old-signing-key-0123456789abcdefgh\"]"),
        ("RENDITION__URLS__SCHEME", "http"),
    ]
}

/// `rendition url …` with the same configuration as the server.
pub(crate) fn url_of(
    cwd: &Path,
    bucket: &Path,
    source: &str,
    variant: &[&str],
    env: &[(&str, &str)],
) -> String {
    let out = Spawn::rendition(cwd)
        .arg("url")
        .arg(source)
        .args(variant)
        .arg("--local")
        .arg(bucket)
        .envs(env.iter().copied())
        .output_blocking();
    assert!(
        out.status.success(),
        "rendition url: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `rendition serve` in a [`World`] of its own: its folder bucket and scratch folder.
pub(crate) struct Server {
    pub(crate) app: Running,
    pub(crate) addr: String,
    pub(crate) bucket: std::path::PathBuf,
    pub(crate) tmp: tempfile::TempDir,
}

/// `rendition serve` on a free loopback port over an empty folder bucket (also used by
/// the contact sheet tests).
pub(crate) async fn start(env: &[(&str, &str)]) -> Server {
    start_with_config(None, env).await
}

/// [`start`] with `config` as `./rendition.toml` (appended to the repository's own).
pub(crate) async fn start_with_config(config: Option<&str>, env: &[(&str, &str)]) -> Server {
    let world = World::local();
    let bucket = world.folder().to_path_buf();
    let mut spawn = world.rendition();
    if let Some(config) = config {
        spawn = spawn.config(config);
    }
    let mut app = spawn.serve(&bucket).envs(env.iter().copied()).start();
    let addr = app.serving_addr(WAIT).await;
    let World { tmp, .. } = world;
    Server {
        app,
        addr,
        bucket,
        tmp,
    }
}

fn renders(app: &Running) -> usize {
    app.seen
        .iter()
        .filter(|v| field(v, "message") == Some("rendered on demand"))
        .count()
}

#[tokio::test]
async fn twenty_concurrent_misses_render_once() {
    let env = env_keys();
    let mut s = start(&env).await;
    let (photo, _, _) = photos(".jpg", 4000).into_iter().next().unwrap();
    std::fs::copy(&photo, s.bucket.join("originals/big cat.jpg")).unwrap();
    let url = url_of(
        s.tmp.path(),
        &s.bucket,
        "originals/big cat.jpg",
        &["--preset", "md"],
        &env,
    );
    let path = url
        .strip_prefix("http://")
        .map_or(url.as_str(), |u| &u[u.find('/').unwrap()..]);

    let requests = (0..20).map(|_| {
        let (addr, path) = (s.addr.clone(), path.to_string());
        tokio::spawn(async move { get(&addr, &path, &[]).await })
    });
    let responses: Vec<Http> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for r in &responses {
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body, responses[0].body,
            "every waiter gets the same bytes"
        );
    }
    assert_eq!(responses[0].header("content-type"), Some("image/webp"));
    assert_eq!(
        responses[0].header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let img = decode(&responses[0].body);
    assert_eq!(img.width(), 640);

    // Exactly one render: wait for its log line, then make sure no second one follows
    // a request that can only be served from storage.
    s.app
        .wait_for(WAIT, "the render", |v| {
            field(v, "message") == Some("rendered on demand")
        })
        .await;
    let again = get(&s.addr, path, &[]).await;
    assert_eq!(again.body, responses[0].body);
    let etag = again.header("etag").unwrap().to_string();
    let not_modified = get(&s.addr, path, &[("If-None-Match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    // The log is read lazily: pull everything written so far by waiting for a later event.
    let _ = get(&s.addr, "/derived/nothing/here", &[]).await;
    assert_eq!(renders(&s.app), 1, "20 concurrent requests → one render");
}

#[tokio::test]
async fn signatures_presets_and_errors() {
    let env = env_keys();
    let s = start(&env).await;
    std::fs::write(
        s.bucket.join("originals/card.jpg"),
        encode_jpeg(&quadrants(800, 600), 90),
    )
    .unwrap();
    std::fs::write(
        s.bucket.join("originals/bomb.png"),
        png_bomb_header(30_000, 30_000),
    )
    .unwrap();
    std::fs::write(
        s.bucket.join("originals/broken.jpg"),
        b"\xFF\xD8\xFF\xE0 broken",
    )
    .unwrap();
    let spec = ["--spec", "w=200,h=200,fit=cover,fm=webp"];
    let signed = url_of(s.tmp.path(), &s.bucket, "originals/card.jpg", &spec, &env);
    let path_of = |u: &str| {
        u.strip_prefix("http://")
            .map_or(u.to_string(), |u| u[u.find('/').unwrap()..].to_string())
    };
    let signed = path_of(&signed);
    assert!(signed.contains("sig="), "{signed}");

    let ok = get(&s.addr, &signed, &[]).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(
        (decode(&ok.body).width(), decode(&ok.body).height()),
        (200, 200)
    );

    let (base, query) = signed.split_once('?').unwrap();
    let sig = query
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap();
    let mut forged = sig.to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let other_spec = base.replace("w=200,h=200", "w=201,h=200");
    let segs: Vec<&str> = base.rsplitn(3, '/').collect();
    let no_guid = format!("{}/not-a-guid/{}", segs[2], segs[0]);
    let cases: Vec<(String, u16)> = vec![
        (base.to_string(), 403),                                // unsigned spec
        (format!("{base}?sig={forged}"), 403),                  // forged
        (format!("{base}?sig={}", &sig[..sig.len() - 4]), 403), // truncated
        (format!("{other_spec}?{query}"), 403),                 // signature of another spec
        (format!("{base}?{query}&sig={sig}"), 400),             // duplicated parameter
        (format!("{base}?{query}&w=4000"), 400),                // smuggled parameter
        (no_guid, 400),                                         // not a derivative key
        (base.replace("card.jpg/", "nope.jpg/"), 403),          // unsigned for that path
    ];
    for (target, want) in cases {
        let r = get(&s.addr, &target, &[]).await;
        assert_eq!(
            r.status,
            want,
            "{target}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    // Presets need no signature; errors are 4xx, never 500.
    let preset = path_of(&url_of(
        s.tmp.path(),
        &s.bucket,
        "originals/card.jpg",
        &["--preset", "thumb"],
        &env,
    ));
    assert_eq!(get(&s.addr, &preset, &[]).await.status, 200);
    let thumb_file = format!("/{}", preset_file("thumb", Format::Webp));
    assert!(preset.ends_with(&thumb_file), "{preset}");
    let unknown = preset.replace(&thumb_file, "/nosuchpreset.webp");
    assert_eq!(get(&s.addr, &unknown, &[]).await.status, 404);
    let (folder, _) = preset
        .strip_suffix(&thumb_file)
        .unwrap()
        .rsplit_once('/')
        .unwrap();
    let stale = format!("{folder}/00000000-0000-4000-8000-000000000000{thumb_file}");
    assert_eq!(get(&s.addr, &stale, &[]).await.status, 404, "{stale}");
    let wrong_ext = preset.replace(".webp", ".png");
    assert_eq!(get(&s.addr, &wrong_ext, &[]).await.status, 404);

    let bomb = path_of(&url_of(
        s.tmp.path(),
        &s.bucket,
        "originals/bomb.png",
        &["--preset", "thumb"],
        &env,
    ));
    assert_eq!(get(&s.addr, &bomb, &[]).await.status, 422);
    // Five concurrent waiters on a failing render all get the real error.
    let broken = path_of(&url_of(
        s.tmp.path(),
        &s.bucket,
        "originals/broken.jpg",
        &["--preset", "sm"],
        &env,
    ));
    let waiters = (0..5).map(|_| {
        let (addr, p) = (s.addr.clone(), broken.clone());
        tokio::spawn(async move { get(&addr, &p, &[]).await })
    });
    for r in futures::future::join_all(waiters).await {
        let r = r.unwrap();
        assert_eq!(r.status, 422);
        assert!(
            String::from_utf8_lossy(&r.body).contains("corrupt"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }

    // Rotation: a URL signed with the old key still verifies while that key is listed.
    let old_only = [
        (
            "RENDITION__URLS__SIGNING_KEYS",
            "[\"rendition-old-signing-key-0123456789abcdefgh\"]",
        ),
        ("RENDITION__URLS__SCHEME", "http"),
    ];
    let by_old = path_of(&url_of(
        s.tmp.path(),
        &s.bucket,
        "originals/card.jpg",
        &["--spec", "w=120,fm=png"],
        &old_only,
    ));
    assert_eq!(get(&s.addr, &by_old, &[]).await.status, 200);
}

/// Reads from `stream` until the server closes it (EOF or an error; bytes before that are
/// ignored): how long after `since` that was, or `None` if it was still open at `deadline`.
async fn closed_by(stream: &mut TcpStream, since: Instant, deadline: Instant) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One response on a kept-alive connection (the body is `Content-Length` long).
async fn read_response(stream: &mut TcpStream) -> Http {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let mut http = parse_head(&raw[..split]).expect("a status line");
    let len: usize = http
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = raw[split + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed in the response body");
        body.extend_from_slice(&buf[..n]);
    }
    http.body = body;
    http
}

fn path_of(url: &str) -> String {
    url.strip_prefix("http://")
        .map_or(url.to_string(), |u| u[u.find('/').unwrap()..].to_string())
}

/// A small source and the path of its `thumb` derivative.
fn card_thumb(s: &Server, env: &[(&str, &str)]) -> String {
    std::fs::write(
        s.bucket.join("originals/card.jpg"),
        encode_jpeg(&quadrants(800, 600), 90),
    )
    .unwrap();
    path_of(&url_of(
        s.tmp.path(),
        &s.bucket,
        "originals/card.jpg",
        &["--preset", "thumb"],
        env,
    ))
}

#[tokio::test]
async fn idle_connections_are_closed_and_do_not_block_requests() {
    let env = [
        ("RENDITION__SERVE__HEADER_READ_TIMEOUT_SECS", "1"),
        ("RENDITION__SERVE__IDLE_TIMEOUT_SECS", "2"),
    ];
    let s = start(&env).await;
    // The open-file soft limit was raised to the hard limit before listening.
    let limit = s
        .app
        .seen
        .iter()
        .find(|v| field(v, "message") == Some("open-file limit"))
        .expect("the open-file limit is logged");
    assert_eq!(limit["soft"], limit["hard"], "{limit}");

    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(&s.addr).await.unwrap());
    }
    // 200 silent sockets do not keep a real request out.
    let answered = get(&s.addr, "/derived/nothing/here", &[]).await;
    assert_eq!(answered.status, 400);

    let deadline = Instant::now() + Duration::from_secs(6);
    let closed =
        futures::future::join_all(idle.iter_mut().map(|c| closed_by(c, opened, deadline))).await;
    for (i, after) in closed.iter().enumerate() {
        let after = after.unwrap_or_else(|| panic!("idle connection {i} still open after 6 s"));
        assert!(
            after >= Duration::from_millis(900),
            "idle connection {i} closed after {after:?}, before the header-read timeout"
        );
    }
}

#[tokio::test]
async fn a_stalled_request_line_is_closed_after_the_header_timeout() {
    let env = [
        ("RENDITION__SERVE__HEADER_READ_TIMEOUT_SECS", "1"),
        ("RENDITION__SERVE__IDLE_TIMEOUT_SECS", "30"),
    ];
    let s = start(&env).await;
    let mut slow = TcpStream::connect(&s.addr).await.unwrap();
    let since = Instant::now();
    slow.write_all(b"GET /derived/originals/ca").await.unwrap();
    let after = closed_by(&mut slow, since, since + Duration::from_secs(5))
        .await
        .expect("a half request line is closed by the header-read timeout");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn kept_alive_connections_are_closed_when_idle() {
    // The header-read timeout (10 s) is far off: only the idle timeout can close it soon.
    let mut env = env_keys();
    env.extend([
        ("RENDITION__SERVE__HEADER_READ_TIMEOUT_SECS", "10"),
        ("RENDITION__SERVE__IDLE_TIMEOUT_SECS", "1"),
    ]);
    let s = start(&env).await;
    let thumb = card_thumb(&s, &env);
    let mut conn = TcpStream::connect(&s.addr).await.unwrap();
    let req = format!("GET {thumb} HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    // A render (a miss) is a request in progress, however long it takes.
    conn.write_all(req.as_bytes()).await.unwrap();
    let first = read_response(&mut conn).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    // Kept alive: a second request on the same connection.
    conn.write_all(req.as_bytes()).await.unwrap();
    let second = read_response(&mut conn).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);

    let since = Instant::now();
    let after = closed_by(&mut conn, since, since + Duration::from_secs(5))
        .await
        .expect("an idle kept-alive connection is closed by the idle timeout");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let env = [
        ("RENDITION__SERVE__MAX_CONNECTIONS", "10"),
        ("RENDITION__SERVE__HEADER_READ_TIMEOUT_SECS", "3"),
        ("RENDITION__SERVE__IDLE_TIMEOUT_SECS", "3"),
    ];
    let s = start(&env).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(&s.addr).await.unwrap());
    }
    // Accepted in order: the 11th finds every slot taken.
    let mut over = TcpStream::connect(&s.addr).await.unwrap();
    let since = Instant::now();
    closed_by(&mut over, since, since + Duration::from_secs(1))
        .await
        .expect("the 11th connection is closed at once");
    // …while the 10 are still open (their header-read timeout is 3 s).
    let probe = Instant::now() + Duration::from_millis(100);
    let still_open =
        futures::future::join_all(held.iter_mut().map(|c| closed_by(c, since, probe))).await;
    assert!(still_open.iter().all(Option::is_none), "{still_open:?}");

    // Once the idle ones are closed, requests are answered again.
    let deadline = Instant::now() + Duration::from_secs(8);
    let closed =
        futures::future::join_all(held.iter_mut().map(|c| closed_by(c, since, deadline))).await;
    assert!(closed.iter().all(Option::is_some), "{closed:?}");
    // The server frees a slot just after the socket is closed: a few tries at most.
    let answer = eventually(
        Duration::from_secs(2),
        "an answer once the slots are free",
        || http(&s.addr, "GET", b"/derived/nothing/here", &[], &[]),
    )
    .await;
    assert_eq!(answer.status, 400);
}

#[tokio::test]
async fn every_response_says_nosniff() {
    let env = env_keys();
    let s = start(&env).await;
    let thumb = card_thumb(&s, &env);
    let ok = get(&s.addr, &thumb, &[]).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let etag = ok.header("etag").unwrap().to_string();
    let not_modified = get(&s.addr, &thumb, &[("If-None-Match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    let thumb_file = format!("/{}", preset_file("thumb", Format::Webp));
    let unknown = get(&s.addr, &thumb.replace(&thumb_file, "/nope.webp"), &[]).await;
    assert_eq!(unknown.status, 404);
    let bad = get(&s.addr, "/derived/nothing/here", &[]).await;
    assert_eq!(bad.status, 400);
    let no_sheet = get(&s.addr, "/sheet/originals/none.jpg", &[]).await;
    assert_eq!(no_sheet.status, 404);
    let post = request(&s.addr, "POST", &thumb, &[("Content-Length", "0")]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    for (what, r) in [
        ("200", &ok),
        ("304", &not_modified),
        ("404", &unknown),
        ("400", &bad),
        ("sheet 404", &no_sheet),
        ("405", &post),
    ] {
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{what}: {:?}",
            r.headers
        );
    }
}

/// The answers of `rendition_pipeline::respond`, the same as the Lambda's: `If-None-Match`
/// compared weakly over every listed tag, `HEAD` without a body, errors as JSON that is
/// never cached, 405 with a body too.
#[tokio::test]
async fn conditional_requests_head_and_errors_answer_as_the_lambda() {
    let env = env_keys();
    let s = start(&env).await;
    let thumb = card_thumb(&s, &env);
    let ok = get(&s.addr, &thumb, &[]).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let length = ok.body.len().to_string();
    assert_eq!(ok.header("content-length"), Some(length.as_str()));
    let etag = ok.header("etag").unwrap().to_string();
    for listed in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_string(),
    ] {
        let r = get(&s.addr, &thumb, &[("If-None-Match", &listed)]).await;
        assert_eq!(r.status, 304, "{listed}");
        assert!(r.body.is_empty(), "{listed}");
        assert_eq!(r.header("etag"), Some(etag.as_str()), "{listed}");
        assert_eq!(r.header("cache-control"), Some(IMMUTABLE), "{listed}");
    }
    let other = get(&s.addr, &thumb, &[("If-None-Match", "\"other\"")]).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, ok.body);

    let head = request(&s.addr, "HEAD", &thumb, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some(length.as_str()));
    assert_eq!(head.header("content-type"), Some("image/webp"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("cache-control"), Some(IMMUTABLE));

    let thumb_file = format!("/{}", preset_file("thumb", Format::Webp));
    assert!(thumb.ends_with(&thumb_file), "{thumb}");
    let unknown = thumb.replace(&thumb_file, "/nope.webp");
    let missing = get(&s.addr, &unknown, &[]).await;
    let post = request(&s.addr, "POST", &thumb, &[("Content-Length", "0")]).await;
    for (target, r, status, kind) in [
        (&unknown, missing, 404, "unknown_preset"),
        (&thumb, post, 405, "method_not_allowed"),
    ] {
        assert_eq!(r.status, status, "{target}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{target}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], kind, "{target}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let head_unknown = request(&s.addr, "HEAD", &unknown, &[]).await;
    assert_eq!(head_unknown.status, 404);
    assert!(head_unknown.body.is_empty());
}

#[tokio::test]
async fn shutdown_waits_at_most_the_grace_period() {
    let env = [
        ("RENDITION__WORKER__SHUTDOWN_GRACE_SECS", "1"),
        ("RENDITION__SERVE__HEADER_READ_TIMEOUT_SECS", "30"),
        ("RENDITION__SERVE__IDLE_TIMEOUT_SECS", "30"),
    ];
    let mut s = start(&env).await;
    let mut idle = TcpStream::connect(&s.addr).await.unwrap();
    // Half a request: graceful shutdown cannot finish it; only the grace period ends it.
    let mut stalled = TcpStream::connect(&s.addr).await.unwrap();
    stalled
        .write_all(b"GET /derived/x HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Answered, so both connections before it have been accepted.
    assert_eq!(get(&s.addr, "/derived/nothing/here", &[]).await.status, 400);

    let since = Instant::now();
    s.app.terminate();
    let idle_closed = closed_by(&mut idle, since, since + Duration::from_secs(1)).await;
    assert!(idle_closed.is_some(), "an idle connection closes at once");
    let status = tokio::time::timeout(Duration::from_secs(5), s.app.child.wait())
        .await
        .expect("the server exits within the grace period and a margin")
        .unwrap();
    assert!(status.success(), "{status}");
    let exited = since.elapsed();
    assert!(
        closed_by(&mut stalled, since, Instant::now() + Duration::from_secs(1))
            .await
            .is_some(),
        "the stalled connection is closed when the server exits"
    );
    s.app
        .wait_for(Duration::from_secs(5), "the end of the grace period", |v| {
            field(v, "message") == Some("grace period over: closing connections in flight")
        })
        .await;
    assert!(
        exited >= Duration::from_millis(900),
        "exited after {exited:?}"
    );
}
