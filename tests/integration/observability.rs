//! What operators see: `rendition serve`'s Prometheus metrics on `/metrics`, scraped from
//! the real binary after a known mix of requests (a miss, a hit, concurrent requests for
//! one new derivative, a 404). The Lambda's CloudWatch EMF lines are tested in
//! `lambda/src/emf.rs` and `lambda/src/http.rs`.

use crate::harness::*;
use crate::serve::{env_keys, start, url_of};

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every `rendition_serve_requests_total` series, as `(labels, value)`, sorted.
fn requests_by_status(text: &str) -> Vec<(String, f64)> {
    let mut series: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("rendition_serve_requests_total"))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    series
}

fn path_of(url: &str) -> String {
    url.strip_prefix("http://")
        .map_or(url.to_string(), |u| u[u.find('/').unwrap()..].to_string())
}

#[tokio::test]
async fn serve_exports_requests_renders_coalesced_waits_and_hits() {
    let env = env_keys();
    let s = start(&env).await;
    std::fs::write(
        s.bucket.join("originals/card.jpg"),
        encode_jpeg(&quadrants(800, 600), 90),
    )
    .unwrap();
    // Large, so its render is still running when the concurrent requests arrive (a PNG:
    // no shrink-on-load, every pixel is decoded).
    std::fs::write(
        s.bucket.join("originals/big.png"),
        encode_png(&quadrants(6000, 4000)),
    )
    .unwrap();
    let url = |source: &str, preset: &str| {
        path_of(&url_of(
            s.tmp.path(),
            &s.bucket,
            source,
            &["--preset", preset],
            &env,
        ))
    };
    let (thumb, md) = (
        url("originals/card.jpg", "thumb"),
        url("originals/big.png", "md"),
    );

    // Before any request: the series exist, at zero.
    let scrape = get(&s.addr, "/metrics", &[]).await;
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(scrape.header("x-content-type-options"), Some("nosniff"));
    let text = String::from_utf8(scrape.body).unwrap();
    for (series, want) in [
        ("rendition_serve_render_seconds_count", 0.0),
        ("rendition_serve_coalesced_waits_total", 0.0),
        ("rendition_serve_cache_hits_total", 0.0),
        ("rendition_serve_renders_in_flight", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }
    assert!(requests_by_status(&text).is_empty(), "{text}");

    // A miss (rendered), then a hit (from storage).
    assert_eq!(get(&s.addr, &thumb, &[]).await.status, 200);
    assert_eq!(get(&s.addr, &thumb, &[]).await.status, 200);
    // Five concurrent requests for one new derivative: one render.
    let requests = (0..5).map(|_| {
        let (addr, path) = (s.addr.clone(), md.clone());
        tokio::spawn(async move { get(&addr, &path, &[]).await })
    });
    for r in futures::future::join_all(requests).await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    // A derivative of a source that does not exist: 404 after a storage lookup, no render.
    let missing = thumb.replace("/card.jpg/", "/none.jpg/");
    let r = get(&s.addr, &missing, &[]).await;
    assert_eq!(
        r.status,
        404,
        "{missing}: {}",
        String::from_utf8_lossy(&r.body)
    );

    let text = String::from_utf8(get(&s.addr, "/metrics", &[]).await.body).unwrap();
    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    // Status is the only label; scrapes are not counted.
    assert_eq!(
        requests_by_status(&text),
        [
            ("{status=\"200\"}".to_string(), 7.0),
            ("{status=\"404\"}".to_string(), 1.0)
        ],
        "{text}"
    );
    // Two renders (the thumb, the shared md); the failed lookup is not one.
    assert_eq!(value("rendition_serve_render_seconds_count"), 2.0);
    assert!(value("rendition_serve_render_seconds_sum") > 0.0, "{text}");
    assert_eq!(value("rendition_serve_renders_in_flight"), 0.0);
    // Of the four concurrent requests that did not start the render, each either joined it
    // (a coalesced wait) or, had it come after the render was stored, was a cache hit.
    // At least one joined: the 6000 × 4000 decode takes far longer than five connects.
    let coalesced = value("rendition_serve_coalesced_waits_total");
    let hits = value("rendition_serve_cache_hits_total");
    assert!(coalesced >= 1.0, "{text}");
    assert_eq!(coalesced + (hits - 1.0), 4.0, "{text}");
    // The derivative was rendered once, whatever the mix.
    let again = get(&s.addr, &md, &[]).await;
    assert_eq!(again.status, 200);
    let text = String::from_utf8(get(&s.addr, "/metrics", &[]).await.body).unwrap();
    assert_eq!(
        sample(&text, "rendition_serve_cache_hits_total"),
        Some(hits + 1.0)
    );
    assert_eq!(
        sample(&text, "rendition_serve_render_seconds_count"),
        Some(2.0)
    );
}
