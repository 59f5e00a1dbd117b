//! What becomes of a job once it has run: done, tried again later, or dead-lettered.
//!
//! Decided once, by [`decide`], from the job's result, its attempt number and a
//! [`RetryPolicy`]; every edge only translates the [`Disposition`]:
//!
//! | edge | `Done` | `Retry` | `DeadLetter` |
//! | --- | --- | --- | --- |
//! | RabbitMQ | announce, ack | to `{queue}.retry.{attempt}` (its TTL is the delay), ack | to `{queue}.dlq`, ack |
//! | SQS | announce, delete | visible again after the delay | to the redrive DLQ, delete |
//! | Lambda, SQS batch | — | a batch item failure | a batch item failure (the queue's redrive dead-letters it) |
//! | Lambda, storage event | a summary | `Rendition.Retryable.<kind>` error | `Rendition.Permanent.<kind>` error |
//! | folder mode | failure record cleared | — (one attempt) | failure record |
//!
//! The failure's metadata (kind, reason, attempts, retryable) is built once, by
//! [`Failure::fields`]; RabbitMQ writes it as `x-rendition-*` headers, SQS as
//! `rendition-*` message attributes.

use std::fmt;
use std::time::Duration;

use rendition_image::kinds::Classified;
use rendition_image::text::truncate;

/// Longest failure reason, in bytes: what goes into a header, a message attribute, a
/// failure record or a Lambda error message.
pub const MAX_REASON_BYTES: usize = 1024;

/// How often, and how long after, a retryable failure is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `None`: no cap here, because the queue
    /// counts attempts out itself (an SQS redrive policy, Lambda's own retries).
    pub max_attempts: Option<u32>,
    /// Delay after the first failed attempt; it doubles with every attempt.
    pub base_delay: Duration,
    /// Upper bound of the delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// One attempt: every failure is final (the folder mode, where a changed file is the
    /// next attempt).
    pub const ONCE: RetryPolicy = RetryPolicy {
        max_attempts: Some(1),
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// Retries with no cap of their own: the queue counts attempts out.
    pub const fn uncapped(base_delay: Duration, max_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts: None,
            base_delay,
            max_delay,
        }
    }

    /// The delay after failed attempt `attempt` (1 = the first):
    /// `min(base_delay · 2^(attempt-1), max_delay)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Whether another attempt may follow attempt `attempt`.
    fn allows_another(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt < max)
    }
}

/// Why a job failed, as every edge reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error's stable kind ([`rendition_image::kinds::KINDS`]).
    pub kind: &'static str,
    /// The error's message, cut to [`MAX_REASON_BYTES`] on a character boundary.
    pub reason: String,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// Whether the error was of the retryable kind (true for a dead letter whose attempts
    /// ran out).
    pub retryable: bool,
}

/// One value of a failure's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Text(&'a str),
    Count(u32),
    Flag(bool),
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Text(s) => f.write_str(s),
            Field::Count(n) => write!(f, "{n}"),
            Field::Flag(b) => write!(f, "{b}"),
        }
    }
}

impl Failure {
    /// The metadata a retried or dead-lettered message carries, as (name, value): the
    /// kind, the reason, the attempts made and whether the error was retryable. Edges
    /// prefix the names (`x-rendition-error-kind`, `rendition-error-kind`).
    pub fn fields(&self) -> [(&'static str, Field<'_>); 4] {
        [
            ("error-kind", Field::Text(self.kind)),
            ("error", Field::Text(&self.reason)),
            ("attempts", Field::Count(self.attempts)),
            ("retryable", Field::Flag(self.retryable)),
        ]
    }
}

/// What becomes of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition<T> {
    /// It succeeded, with this result.
    Done(T),
    /// It failed, retryably, with attempts left: try again after `after`.
    Retry { after: Duration, failure: Failure },
    /// It failed for good (a permanent error, or the attempts ran out).
    DeadLetter(Failure),
}

impl<T> Disposition<T> {
    /// The failure, unless the job is done.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Disposition::Done(_) => None,
            Disposition::Retry { failure, .. } | Disposition::DeadLetter(failure) => Some(failure),
        }
    }
}

/// The one decision: `result` of attempt `attempt` (1 = the first; 0 counts as 1) under
/// `policy`. A retryable error with attempts left is retried after the policy's delay for
/// this attempt; anything else that failed is dead-lettered.
pub fn decide<T, E: Classified>(
    result: Result<T, E>,
    attempt: u32,
    policy: &RetryPolicy,
) -> Disposition<T> {
    let err = match result {
        Ok(value) => return Disposition::Done(value),
        Err(err) => err,
    };
    let attempt = attempt.max(1);
    let failure = Failure {
        kind: err.kind(),
        reason: truncate(&err.to_string(), MAX_REASON_BYTES).into_owned(),
        attempts: attempt,
        retryable: err.is_retryable(),
    };
    if failure.retryable && policy.allows_another(attempt) {
        Disposition::Retry {
            after: policy.delay(attempt),
            failure,
        }
    } else {
        Disposition::DeadLetter(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobError;
    use crate::store::StoreError;
    use rendition_image::render::RenderError;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: Some(4),
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(3),
    };

    fn outage() -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection reset".into()))
    }

    #[test]
    fn success_is_done() {
        let ok: Result<u8, StoreError> = Ok(7);
        assert_eq!(decide(ok, 9, &POLICY), Disposition::Done(7));
    }

    #[test]
    fn retryable_under_the_cap_is_retried_with_a_growing_delay() {
        let delays: Vec<Duration> = (1..4)
            .map(|attempt| match decide(outage(), attempt, &POLICY) {
                Disposition::Retry { after, failure } => {
                    assert_eq!(failure.kind, "storage_unavailable");
                    assert_eq!(failure.attempts, attempt);
                    assert!(failure.retryable);
                    after
                }
                other => panic!("attempt {attempt}: {other:?}"),
            })
            .collect();
        assert_eq!(delays, [1, 2, 3].map(Duration::from_secs));
        assert_eq!(POLICY.delay(200), Duration::from_secs(3));
        // Attempt 0 (no count known) is the first.
        assert!(matches!(
            decide(outage(), 0, &POLICY),
            Disposition::Retry { after, .. } if after == Duration::from_secs(1)
        ));
    }

    #[test]
    fn retryable_at_the_cap_is_dead_lettered_with_the_reason() {
        for attempt in [4, 5] {
            let d = decide(outage(), attempt, &POLICY);
            let Disposition::DeadLetter(failure) = d else {
                panic!("attempt {attempt}: {d:?}")
            };
            assert_eq!(
                failure,
                Failure {
                    kind: "storage_unavailable",
                    reason: "storage unavailable: connection reset".into(),
                    attempts: attempt,
                    retryable: true,
                }
            );
        }
        // The folder mode's policy: one attempt.
        assert!(matches!(
            decide(outage(), 1, &RetryPolicy::ONCE),
            Disposition::DeadLetter(Failure {
                retryable: true,
                ..
            })
        ));
        // No cap of its own: the queue counts the attempts.
        let uncapped = RetryPolicy::uncapped(Duration::from_secs(2), Duration::from_secs(60));
        assert!(matches!(
            decide(outage(), 1000, &uncapped),
            Disposition::Retry { after, .. } if after == Duration::from_secs(60)
        ));
    }

    #[test]
    fn permanent_is_dead_lettered_at_once() {
        let missing: Result<(), JobError> = Err(JobError::MissingSource {
            key: "originals/gone.jpg".into(),
        });
        let d = decide(missing, 1, &POLICY);
        let failure = d.failure().expect("a failure").clone();
        assert!(matches!(d, Disposition::DeadLetter(_)));
        assert_eq!(failure.kind, "missing_source");
        assert!(!failure.retryable);
        assert_eq!(failure.attempts, 1);
        assert!(failure.reason.contains("originals/gone.jpg"));
    }

    #[test]
    fn the_reason_is_cut_to_1024_bytes_on_a_character_boundary() {
        let long: Result<(), RenderError> = Err(RenderError::DecoderCrashed {
            reason: "é".repeat(2000),
        });
        let failure = decide(long, 1, &POLICY).failure().cloned().unwrap();
        assert!(failure.reason.len() <= MAX_REASON_BYTES);
        assert!(failure.reason.ends_with('…'));
        assert!(failure.reason.starts_with("decoder crashed: éé"));
    }

    #[test]
    fn fields_carry_the_failure() {
        let failure = Failure {
            kind: "corrupt_image",
            reason: "truncated".into(),
            attempts: 3,
            retryable: false,
        };
        let fields: Vec<(&str, String)> = failure
            .fields()
            .iter()
            .map(|(name, value)| (*name, value.to_string()))
            .collect();
        assert_eq!(
            fields,
            [
                ("error-kind", "corrupt_image".to_string()),
                ("error", "truncated".to_string()),
                ("attempts", "3".to_string()),
                ("retryable", "false".to_string()),
            ]
        );
    }
}
