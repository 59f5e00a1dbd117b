//! The life of a derivative around its immutable URL: `/latest/{source key}/{preset}`
//! resolves the current one for applications that know only the source key.

use crate::harness::*;
use crate::serve::{env_keys, start, url_of};

#[tokio::test]
async fn latest_redirects_to_the_current_url_and_follows_a_replaced_source() {
    let env = env_keys();
    let server = start(&env).await;
    let (cwd, bucket, addr) = (server.tmp.path(), &server.bucket, &server.addr);
    let source = bucket.join("originals/big cat.jpg");
    std::fs::write(&source, encode_jpeg(&quadrants(800, 600), 90)).unwrap();

    let latest = "/latest/originals/big%20cat.jpg/thumb";
    let r = get(addr, latest, &[]).await;
    assert_eq!(r.status, 302, "{}", r.error_kind());
    let first = url_of(
        cwd,
        bucket,
        "originals/big cat.jpg",
        &["--preset", "thumb"],
        &env,
    );
    assert_eq!(r.header("location"), Some(first.as_str()));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    let image = get(addr, first.as_bytes(), &[]).await;
    assert_eq!(image.status, 200);
    assert_eq!(decode(&image.body).dimensions(), (160, 160));

    // A replaced source has a new GUID: the same /latest path now leads to its URL, and
    // the old URL keeps its stored bytes (it never returns other ones).
    std::fs::write(&source, encode_jpeg(&quadrants(400, 300), 90)).unwrap();
    let r = get(addr, latest, &[]).await;
    let second = url_of(
        cwd,
        bucket,
        "originals/big cat.jpg",
        &["--preset", "thumb"],
        &env,
    );
    assert_ne!(first, second);
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some(second.as_str()))
    );
    let old = get(addr, first.as_bytes(), &[]).await;
    assert_eq!((old.status, &old.body), (200, &image.body));
    let new = get(addr, second.as_bytes(), &[]).await;
    assert_eq!(decode(&new.body).dimensions(), (160, 160));
    assert_ne!(new.body, image.body);

    for (path, status, kind) in [
        ("/latest/originals/nope.jpg/thumb", 404, "source_missing"),
        (
            "/latest/originals/big%20cat.jpg/nope",
            404,
            "unknown_preset",
        ),
        ("/latest/originals/big%20cat.jpg", 400, "bad_key"),
        ("/latest/thumb", 400, "bad_path"),
        ("/latest/originals/%zz.jpg/thumb", 400, "bad_path"),
    ] {
        let r = get(addr, path, &[]).await;
        assert_eq!(
            (r.status, r.error_kind().as_str()),
            (status, kind),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
    server.app.terminate();
}
