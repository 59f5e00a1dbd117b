//! The topology: queue and exchange names, the retry queues' delays, and declaring them.

use super::*;

/// The names of the topology, checked once.
pub(super) struct Names {
    pub(super) queue: ShortString,
    pub(super) dlq: ShortString,
    pub(super) uploads: ShortString,
    pub(super) events: ShortString,
    /// `{queue}.retry.{n}` and its delay in ms, for n = 1 … max_attempts - 1.
    pub(super) retries: Vec<(ShortString, u64)>,
    pub(super) delivery_limit: u32,
    /// What a failed delivery becomes; its delays are the retry queues' TTLs.
    pub(super) policy: RetryPolicy,
}

impl Names {
    pub(super) fn new(settings: &RabbitSettings) -> Result<Names, RabbitError> {
        let name = |what: &str, value: String| {
            if value.is_empty() {
                return Err(RabbitError::Settings(format!("rabbitmq.{what} is empty")));
            }
            ShortString::try_new(value).map_err(|e| {
                RabbitError::Settings(format!("rabbitmq.{what} is too long for AMQP: {e}"))
            })
        };
        if settings.max_attempts == 0 {
            return Err(RabbitError::Settings(
                "rabbitmq.max_attempts must be at least 1".into(),
            ));
        }
        let q = &settings.queue;
        let policy = retry_policy(settings);
        Ok(Names {
            queue: name("queue", q.clone())?,
            dlq: name("queue", format!("{q}.dlq"))?,
            uploads: name("uploads_exchange", settings.uploads_exchange.clone())?,
            events: name("events_exchange", settings.events_exchange.clone())?,
            retries: (1..settings.max_attempts)
                .map(|n| {
                    Ok((
                        name("queue", format!("{q}.retry.{n}"))?,
                        u64::try_from(policy.delay(n).as_millis()).unwrap_or(u64::MAX),
                    ))
                })
                .collect::<Result<_, RabbitError>>()?,
            delivery_limit: settings.delivery_limit,
            policy,
        })
    }

    /// The retry queue of a message that just failed attempt `attempt`.
    pub(super) fn retry_queue(&self, attempt: u32) -> Option<&ShortString> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        self.retries.get(index).map(|(name, _)| name)
    }
}

/// The retry policy of `rabbitmq.*`: `max_attempts` in all, the delay before attempt
/// `n + 1` being `min(retry_base_ms · 2^(n-1), retry_max_ms)`.
pub fn retry_policy(settings: &RabbitSettings) -> RetryPolicy {
    RetryPolicy {
        max_attempts: Some(settings.max_attempts),
        base_delay: Duration::from_millis(settings.retry_base_ms),
        max_delay: Duration::from_millis(settings.retry_max_ms),
    }
}

/// Declares the exchanges, queues and binding described in the module documentation.
/// Idempotent; fails (PRECONDITION_FAILED) if one exists with other arguments.
pub async fn declare_topology(
    channel: &Channel,
    settings: &RabbitSettings,
) -> Result<(), RabbitError> {
    declare(channel, &Names::new(settings)?).await
}

pub(super) async fn declare(channel: &Channel, names: &Names) -> Result<(), RabbitError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let queue = |what: &'static str, name: &ShortString, args: FieldTable| {
        let name = name.clone();
        async move {
            channel
                .queue_declare(name.clone(), durable, args)
                .await
                .map(drop)
                .map_err(|source| RabbitError::Declare {
                    what,
                    name: name.to_string(),
                    source,
                })
        }
    };
    let exchange = |name: &ShortString| {
        let name = name.clone();
        async move {
            channel
                .exchange_declare(
                    name.clone(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|source| RabbitError::Declare {
                    what: "exchange",
                    name: name.to_string(),
                    source,
                })
        }
    };
    let quorum = || {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        args
    };

    queue("dead-letter queue", &names.dlq, quorum()).await?;

    let mut work = quorum();
    if names.delivery_limit > 0 {
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(names.delivery_limit)),
        );
    }
    work.insert("x-dead-letter-exchange".into(), long_string(""));
    work.insert(
        "x-dead-letter-routing-key".into(),
        long_string(names.dlq.as_str()),
    );
    queue("work queue", &names.queue, work).await?;

    for (retry, delay_ms) in &names.retries {
        let mut args = FieldTable::default();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(*delay_ms).unwrap_or(i64::MAX)),
        );
        args.insert("x-dead-letter-exchange".into(), long_string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            long_string(names.queue.as_str()),
        );
        queue("retry queue", retry, args).await?;
    }

    exchange(&names.uploads).await?;
    channel
        .queue_bind(
            names.queue.clone(),
            names.uploads.clone(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| RabbitError::Declare {
            what: "binding to the uploads exchange of",
            name: names.queue.to_string(),
            source,
        })?;
    exchange(&names.events).await?;
    Ok(())
}
