//! `rendition backfill`, the real binary, against S3 on moto with the real workers:
//! RabbitMQ (jobs published straight to the work queue) and SQS (`SendMessage`). A preset
//! added after the uploads (`og`, not eager) reaches every source's manifest; a dry run
//! enqueues nothing; a second run finds everything done; `--prefix` narrows the sources.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use rendition_pipeline::manifest::Manifest;

use crate::harness::{encode_jpeg, eventually, field, quadrants, Bucket, World};
use crate::rabbit::{minio_event_in, Broker};
use crate::sqs::SqsWorld;

const PRESET: &str = "og";
const EAGER: [&str; 5] = ["lg", "md", "sm", "thumb", "xl"];

/// Runs `rendition backfill ARGS` in `world` to the end; its exit code and stdout.
async fn backfill(world: &World, args: &[&str]) -> (i32, String) {
    let out = world
        .rendition()
        .arg("backfill")
        .args(args)
        .env("RENDITION__LOG__FORMAT", "json")
        .output()
        .await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.code().is_some(),
        "backfill killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), stdout)
}

/// The summary line's value of `name`.
fn count(stdout: &str, name: &str) -> usize {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("backfill: "))
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .parse()
        .unwrap()
}

/// The manifest's variant names, sorted.
fn names(m: &Manifest) -> Vec<&str> {
    let mut names: Vec<&str> = m.variants.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    names
}

fn jpeg(seed: u32) -> Vec<u8> {
    encode_jpeg(&quadrants(1600 + seed * 16, 1000), 85)
}

/// Polls until every manifest in `bucket` whose source key starts with `prefix` lists
/// `want`, and there are `n` of them.
async fn wait_listing(
    bucket: &Bucket,
    prefix: &str,
    n: usize,
    want: &[&str],
) -> HashMap<String, Manifest> {
    eventually(
        Duration::from_secs(60),
        &format!("{n} manifests under {prefix} listing {want:?}"),
        || async {
            let all = bucket.manifests().await;
            let chosen: HashMap<_, _> = all
                .into_iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .collect();
            (chosen.len() == n && chosen.values().all(|m| names(m) == want)).then_some(chosen)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_through_rabbitmq_adds_the_preset_to_every_source_once() {
    let broker = Broker::new(5, 200).await;
    let mut world = World::s3().await;
    world.add_vars(broker.vars());
    let (s3, bucket) = (world.bucket().s3.clone(), world.bucket().name.clone());
    let r = &broker.settings;
    let spawn = || {
        world
            .rendition()
            .args(["worker", "--queue", "rabbitmq"])
            .start()
    };

    // Three uploads the worker processes as usual (eager presets only)…
    for i in 0..3 {
        let key = format!("originals/photo {i}.jpg");
        let body = jpeg(i);
        let size = body.len();
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        broker
            .publish(&minio_event_in(&bucket, &key.replace(' ', "+"), size))
            .await;
    }
    // …and one whose event never came (no manifest at all).
    s3.put_object()
        .bucket(&bucket)
        .key("originals/unannounced.jpg")
        .body(ByteStream::from(jpeg(9)))
        .send()
        .await
        .unwrap();
    let mut worker = spawn();
    let before = wait_listing(world.bucket(), "originals/photo", 3, &EAGER).await;
    worker.terminate();
    assert!(worker.child.wait().await.unwrap().success());
    broker.assert_queues_empty().await;

    // A dry run lists and counts, and enqueues nothing.
    let (code, out) = backfill(&world, &["--preset", PRESET, "--dry-run"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        (
            count(&out, "sources"),
            count(&out, "done"),
            count(&out, "would_enqueue")
        ),
        (4, 0, 4),
        "{out}"
    );
    assert!(out.contains("missing: originals/unannounced.jpg"), "{out}");
    assert_eq!(broker.ready_count(&r.queue).await, 0, "dry run enqueued");

    // The real run enqueues one job per source (no worker is running: they wait).
    let (code, out) = backfill(&world, &["--preset", PRESET, "--queue", "rabbitmq"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "enqueued"), 4, "{out}");
    assert_eq!(broker.ready_count(&r.queue).await, 4);

    let mut worker = spawn();
    let with_og: Vec<&str> = {
        let mut v = EAGER.to_vec();
        v.push(PRESET);
        v.sort_unstable();
        v
    };
    let after = wait_listing(world.bucket(), "originals/photo", 3, &with_og).await;
    for (key, m) in &after {
        // The eager variants are the very same objects; og was added beside them.
        let old = &before[key];
        for v in &old.variants {
            let same = m.variants.iter().find(|n| n.name == v.name).unwrap();
            assert_eq!(same, v, "{key}: {} changed", v.name);
        }
        let og = m.variants.iter().find(|v| v.name == PRESET).unwrap();
        assert_eq!(
            (og.width, og.height, og.content_type.as_str()),
            (1200, 630, "image/jpeg")
        );
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&og.key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(og.bytes as i64));
    }
    // The source without a manifest got one listing just the backfilled preset.
    wait_listing(world.bucket(), "originals/unannounced", 1, &[PRESET]).await;

    // Everything is done now: a rerun enqueues nothing.
    let (code, out) = backfill(&world, &["--preset", PRESET, "--queue", "rabbitmq"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        (count(&out, "done"), count(&out, "enqueued")),
        (4, 0),
        "{out}"
    );

    // An unknown preset is refused before anything is sent.
    let (code, out) = backfill(&world, &["--preset", "nope", "--queue", "rabbitmq"]).await;
    assert_ne!(code, 0, "{out}");

    worker.terminate();
    assert!(worker.child.wait().await.unwrap().success());
    assert!(
        worker
            .seen
            .iter()
            .all(|v| field(v, "level") != Some("ERROR")),
        "{:#?}",
        worker.seen
    );
    broker.assert_queues_empty().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_through_sqs_follows_the_prefix_and_resumes() {
    let world = SqsWorld::new().await;
    for key in [
        "originals/a/one.jpg",
        "originals/a/two.jpg",
        "originals/b/three.jpg",
    ] {
        world.upload(key, jpeg(key.len() as u32)).await;
    }
    let mut worker = world.worker(&[]);
    world.wait_manifests(3).await;

    // Only originals/a/ (a prefix relative to the source prefix).
    let (code, out) = backfill(
        &world,
        &[
            "--preset", PRESET, "--prefix", "a/", "--queue", "sqs", "--rate", "20",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        (count(&out, "sources"), count(&out, "enqueued")),
        (2, 2),
        "{out}"
    );
    let mut with_og = EAGER.to_vec();
    with_og.push(PRESET);
    with_og.sort_unstable();
    wait_listing(world.bucket(), "originals/a/", 2, &with_og).await;
    let b = &world.manifests().await["originals/b/three.jpg"];
    assert_eq!(names(b), EAGER, "outside the prefix: untouched");

    // Resumed over the whole bucket: only what is missing is enqueued.
    let (code, out) = backfill(&world, &["--preset", PRESET, "--queue", "sqs"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        (
            count(&out, "sources"),
            count(&out, "done"),
            count(&out, "enqueued")
        ),
        (3, 2, 1),
        "{out}"
    );
    wait_listing(world.bucket(), "originals/", 3, &with_og).await;
    let (_, out) = backfill(&world, &["--preset", PRESET, "--queue", "sqs"]).await;
    assert_eq!(
        (count(&out, "done"), count(&out, "enqueued")),
        (3, 0),
        "{out}"
    );

    worker.terminate();
    assert!(worker.child.wait().await.unwrap().success());
    assert!(world.dlq_is_empty().await);
}
