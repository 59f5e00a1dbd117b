//! `event::parse_message` on arbitrary message bodies (every envelope: S3 records, SNS
//! in SQS and in Lambda, EventBridge, MinIO, job documents, the S3 test event).
//!
//! Properties, beyond "never panics":
//! - every job obeys the prefix rules (under the source prefix, not under the derived
//!   prefix, not a folder marker) and names a bucket and a key;
//! - every job, written as a job document (what `rendition backfill` enqueues), parses
//!   back to exactly that job;
//! - every error is permanent and has a kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_pipeline::config::StorageSettings;
use rendition_pipeline::event::{parse_message, IgnoreReason};

fuzz_target!(|body: &[u8]| {
    let storage = StorageSettings::default();
    match parse_message(body, &storage) {
        Ok(parsed) => {
            for job in &parsed.jobs {
                assert!(!job.bucket.is_empty(), "job without a bucket: {job:?}");
                assert!(job.key.starts_with(&storage.source_prefix), "{job:?}");
                assert!(!job.key.starts_with(&storage.derived_prefix), "{job:?}");
                assert!(
                    !job.key.ends_with('/'),
                    "folder marker became a job: {job:?}"
                );

                let document = serde_json::to_vec(job).expect("a job serializes");
                let again = parse_message(&document, &storage)
                    .unwrap_or_else(|e| panic!("job document {job:?} does not parse: {e}"));
                assert!(again.ignored.is_empty(), "{job:?} → {again:?}");
                assert_eq!(
                    again.jobs,
                    std::slice::from_ref(job),
                    "job document round trip"
                );
            }
            for ignored in &parsed.ignored {
                let _ = ignored.reason.as_str();
                match ignored.reason {
                    IgnoreReason::DerivedKey => {
                        assert!(ignored.subject.starts_with(&storage.derived_prefix))
                    }
                    IgnoreReason::OutsideSourcePrefix => {
                        assert!(!ignored.subject.starts_with(&storage.source_prefix))
                    }
                    IgnoreReason::FolderMarker => assert!(ignored.subject.ends_with('/')),
                    IgnoreReason::TestEvent | IgnoreReason::UnsupportedEventName => {}
                }
            }
        }
        Err(e) => {
            assert!(!e.is_retryable(), "event errors are permanent: {e:?}");
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
        }
    }
});
