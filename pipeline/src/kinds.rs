//! The error taxonomy, checked across the crates: every error of the image layer and the
//! pipeline answers with a kind listed once in [`rendition_image::kinds::KINDS`], every
//! listed kind is produced somewhere, and composites answer as their sources.

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::cdn::CdnError;
    use crate::event::EventError;
    use crate::job::JobError;
    use crate::message::MessageError;
    use crate::naming::NameError;
    use crate::ondemand::OnDemandError;
    use crate::store::StoreError;
    use crate::url::UrlError;
    use rendition_image::kinds::*;
    use rendition_image::render::{RenderError, Unsupported};
    use rendition_image::sniff::SniffError;
    use rendition_image::spec::{Format, SpecError};
    use rendition_image::vips::VipsError;

    fn store_errors() -> Vec<StoreError> {
        vec![
            StoreError::NotFound { key: "k".into() },
            StoreError::TooLarge {
                key: "k".into(),
                limit: 1,
            },
            StoreError::InvalidKey {
                key: "k".into(),
                reason: "r",
            },
            StoreError::Unavailable("down".into()),
            StoreError::Other("denied".into()),
        ]
    }

    fn cdn_errors() -> Vec<CdnError> {
        vec![
            CdnError::Unavailable("throttled".into()),
            CdnError::Refused("denied".into()),
        ]
    }

    fn render_errors() -> Vec<RenderError> {
        let vips = || VipsError::new("op", "bad");
        vec![
            SniffError::Empty.into(),
            RenderError::Unsupported(Unsupported::TooManyFrames {
                frames: 2,
                limit: 1,
            }),
            RenderError::Unsupported(Unsupported::Variant {
                variant: "v".into(),
                reason: "r".into(),
            }),
            RenderError::InputTooLarge { bytes: 2, limit: 1 },
            RenderError::TooManyPixels {
                width: 1,
                height: 1,
                pixels: 1,
                limit: 0,
            },
            RenderError::AnimationTooLarge {
                width: 1,
                height: 1,
                frames: 2,
                pixels: 2,
                limit: 1,
            },
            RenderError::OutputTooLarge {
                variant: "v".into(),
                width: 1,
                height: 1,
                limit: 0,
            },
            RenderError::IntermediateTooLarge {
                variant: "v".into(),
                width: 1,
                height: 1,
                bytes: 3,
                limit: 0,
            },
            RenderError::DecodedTooLarge {
                width: 1,
                height: 1,
                bands: 1,
                sample_bytes: 1,
                frames: 1,
                bytes: 1,
                limit: 0,
            },
            RenderError::TooManyScans { scans: 2, limit: 1 },
            RenderError::DecoderCrashed { reason: "r".into() },
            RenderError::OverMemoryBudget {
                limit_mb: 1,
                reason: "r".into(),
            },
            RenderError::OverTimeBudget { reason: "r".into() },
            RenderError::Unavailable("r".into()),
            RenderError::Header(vips()),
            RenderError::Decode(vips()),
            RenderError::Encode {
                format: Format::Webp,
                source: vips(),
            },
            RenderError::Init(vips()),
        ]
    }

    fn name_errors() -> Vec<NameError> {
        vec![
            NameError::NotASource {
                key: "k".into(),
                prefix: "p/".into(),
            },
            NameError::NotDerived {
                key: "k".into(),
                prefix: "p/".into(),
            },
            NameError::Malformed {
                key: "k".into(),
                reason: "r",
            },
            NameError::Spec {
                key: "k".into(),
                source: SpecError::Empty,
            },
            NameError::TooLong { len: 2000 },
        ]
    }

    fn url_errors() -> Vec<UrlError> {
        let mut out: Vec<UrlError> = name_errors().into_iter().map(UrlError::from).collect();
        out.extend([
            UrlError::BadPath("p"),
            UrlError::BadQuery("q"),
            UrlError::ParameterSmuggling("x".into()),
            UrlError::UnknownPreset("x".into()),
            UrlError::SpecsDisabled,
            UrlError::MissingSignature,
            UrlError::BadSignature,
            UrlError::Expired { exp: 1 },
        ]);
        out
    }

    fn event_errors() -> Vec<EventError> {
        vec![
            EventError::Empty,
            EventError::NotJson {
                context: "c",
                reason: "r".into(),
            },
            EventError::NotAnObject {
                context: "c",
                found: "array",
            },
            EventError::UnknownEnvelope { fields: "f".into() },
            EventError::NestedEnvelope,
            EventError::UnsupportedSnsType { kind: "k".into() },
            EventError::UnsupportedSource { name: "n".into() },
            EventError::MissingField { field: "f" },
            EventError::InvalidField {
                field: "f",
                reason: "r".into(),
            },
            EventError::InvalidKeyEncoding { key: "k".into() },
            EventError::InvalidKey {
                key: "k".into(),
                reason: "r",
            },
        ]
    }

    fn job_errors() -> Vec<JobError> {
        let mut out = vec![
            JobError::MissingSource { key: "k".into() },
            JobError::Crashed("c".into()),
            JobError::UnknownPreset("p".into()),
        ];
        out.extend(name_errors().into_iter().map(JobError::from));
        out.extend(store_errors().into_iter().map(JobError::from));
        out.extend(render_errors().into_iter().map(JobError::from));
        out
    }

    fn on_demand_errors() -> Vec<OnDemandError> {
        let mut out = vec![
            OnDemandError::SourceMissing { key: "k".into() },
            OnDemandError::Stale { key: "k".into() },
            OnDemandError::WrongExtension {
                requested: "a".into(),
                actual: "b".into(),
            },
            OnDemandError::Crashed("c".into()),
            OnDemandError::Busy { in_flight: 1 },
            OnDemandError::Superseded {
                location: "/derived/a.jpg/x/thumb.00000000.webp".into(),
            },
        ];
        out.extend(url_errors().into_iter().map(OnDemandError::from));
        out.extend(store_errors().into_iter().map(OnDemandError::from));
        out.extend(render_errors().into_iter().map(OnDemandError::from));
        out
    }

    fn message_errors() -> Vec<MessageError> {
        let mut out = vec![MessageError::WrongBucket {
            got: "a".into(),
            expected: "b".into(),
        }];
        out.extend(event_errors().into_iter().map(MessageError::from));
        out.extend(job_errors().into_iter().map(|source| MessageError::Job {
            key: "k".into(),
            source,
        }));
        out.extend(
            store_errors()
                .into_iter()
                .map(|source| MessageError::Remove {
                    key: "k".into(),
                    source,
                }),
        );
        out.extend(
            cdn_errors()
                .into_iter()
                .map(|source| MessageError::Invalidate {
                    key: "k".into(),
                    source,
                }),
        );
        out
    }

    fn every_error() -> Vec<Box<dyn Classified>> {
        fn boxed<E: Classified + 'static>(v: Vec<E>) -> Vec<Box<dyn Classified>> {
            v.into_iter().map(|e| Box::new(e) as _).collect()
        }
        [
            boxed(store_errors()),
            boxed(cdn_errors()),
            boxed(render_errors()),
            boxed(name_errors()),
            boxed(url_errors()),
            boxed(event_errors()),
            boxed(job_errors()),
            boxed(on_demand_errors()),
            boxed(message_errors()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    #[test]
    fn every_kind_is_listed_once() {
        let mut seen = BTreeSet::new();
        for (kind, meaning) in KINDS {
            assert!(seen.insert(*kind), "{kind} is listed twice");
            assert!(!meaning.is_empty(), "{kind}");
            assert!(
                kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{kind}"
            );
        }
        let produced: BTreeSet<&str> = every_error().iter().map(|e| e.kind()).collect();
        for kind in &produced {
            assert!(is_known(kind), "{kind} is not in KINDS");
        }
        // Kinds of errors outside this crate (the worker's contact sheet and `rendition
        // html`, the Lambda).
        let elsewhere = [
            "manifest_missing",
            "preset_not_made",
            "no_ladder",
            "mixed_shapes",
            "unknown_event",
            "malformed_event",
            "events_unavailable",
            crate::respond::METHOD_NOT_ALLOWED,
            crate::respond::BAD_REQUEST,
            crate::respond::RENDER_IN_PROGRESS,
        ];
        for (kind, _) in KINDS {
            assert!(
                produced.contains(kind) || elsewhere.contains(kind),
                "{kind} is listed but no error has it"
            );
        }
    }

    #[test]
    fn the_readme_table_lists_every_kind() {
        let readme = include_str!("../../docs/errors.md");
        for (kind, meaning) in KINDS {
            let row = format!("| `{kind}` | {meaning} |");
            assert!(readme.contains(&row), "docs/errors.md lacks the row {row}");
        }
    }

    #[test]
    fn composites_answer_as_their_sources() {
        fn answer(e: &dyn Classified) -> (&'static str, bool, u16) {
            (e.kind(), e.is_retryable(), e.status())
        }
        let wrapped: Vec<(Box<dyn Classified>, Box<dyn Classified>)> = store_errors()
            .into_iter()
            .zip(store_errors())
            .map(|(a, b)| (Box::new(a) as _, Box::new(JobError::from(b)) as _))
            .chain(render_errors().into_iter().map(|e| {
                (
                    Box::new(e.clone()) as _,
                    Box::new(OnDemandError::from(e)) as _,
                )
            }))
            .chain(event_errors().into_iter().map(|e| {
                (
                    Box::new(e.clone()) as _,
                    Box::new(MessageError::from(e)) as _,
                )
            }))
            .chain(cdn_errors().into_iter().map(|e| {
                (
                    Box::new(e.clone()) as _,
                    Box::new(MessageError::Invalidate {
                        key: "k".into(),
                        source: e,
                    }) as _,
                )
            }))
            .collect();
        for (source, composite) in &wrapped {
            assert_eq!(
                answer(composite.as_ref()),
                answer(source.as_ref()),
                "{source}"
            );
        }
        let missing = StoreError::NotFound { key: "k".into() };
        assert_eq!(missing.kind(), "not_found");
        assert_eq!(missing.status(), 404);
        assert_eq!(
            JobError::MissingSource { key: "k".into() }.kind(),
            MISSING_SOURCE
        );
        let outage = StoreError::Unavailable("down".into());
        assert!(outage.is_retryable());
        assert_eq!(outage.status(), 503);
        for e in every_error() {
            // `superseded` is the one redirect: the URL's version is gone, not wrong.
            if e.kind() == "superseded" {
                assert_eq!(e.status(), 302);
                continue;
            }
            assert!((400..600).contains(&e.status()), "{e}: {}", e.status());
        }
    }
}
