//! `rendition serve --local DIR` as a user runs it: the real binary on a free loopback
//! port, URLs made by `rendition url`, plain HTTP/1.1 requests.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(120);

pub(crate) struct Http {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Http {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 GET (also used by the contact sheet tests).
pub(crate) async fn get(addr: &str, target: &str, extra: &[(&str, &str)]) -> Http {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn env_keys() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RENDITION__URLS__SIGNING_KEYS", "[\"rendition-test-signing-key-0123456789abcdef\", \"rendition-old-signing-key-0123456789abcdefgh\"]"),
        ("RENDITION__URLS__SCHEME", "http"),
    ]
}

/// `rendition url …` with the same configuration as the server.
fn url_of(
    cwd: &Path,
    bucket: &Path,
    source: &str,
    variant: &[&str],
    env: &[(&str, &str)],
) -> String {
    let mut cmd = std::process::Command::new(rendition_bin());
    cmd.current_dir(cwd)
        .arg("url")
        .arg(source)
        .args(variant)
        .arg("--local")
        .arg(bucket);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "rendition url: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(crate) struct Server {
    pub(crate) app: Running,
    pub(crate) addr: String,
    pub(crate) bucket: std::path::PathBuf,
    pub(crate) tmp: tempfile::TempDir,
}

/// `rendition serve` on a free loopback port over an empty folder bucket (also used by
/// the contact sheet tests).
pub(crate) async fn start(env: &[(&str, &str)]) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(bucket.join("originals")).unwrap();
    let mut app = Running::spawn(
        tmp.path(),
        &[
            "serve",
            "--local",
            bucket.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ],
        env,
    );
    let started = app
        .wait_for(WAIT, "the listening address", |v| {
            field(v, "message") == Some("serving derivatives")
        })
        .await;
    let addr = field(&started, "addr").unwrap().to_string();
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
    let unknown = preset.replace("/thumb.webp", "/nosuchpreset.webp");
    assert_eq!(get(&s.addr, &unknown, &[]).await.status, 404);
    let stale = preset.replace(
        &preset[preset.len() - 47..preset.len() - 11],
        "00000000-0000-4000-8000-000000000000",
    );
    assert_eq!(get(&s.addr, &stale, &[]).await.status, 404, "{stale}");
    let wrong_ext = preset.replace("thumb.webp", "thumb.png");
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
