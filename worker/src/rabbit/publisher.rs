//! Publishing jobs straight to the work queue (`rendition backfill --queue rabbitmq`).

use super::*;

/// Publishes job documents straight to the work queue (`rendition backfill`): one
/// connection and a confirming channel; declares the topology first, so it works before
/// any worker ran.
pub struct JobPublisher {
    connection: Connection,
    channel: Channel,
    queue: ShortString,
}

impl JobPublisher {
    pub async fn connect(settings: &RabbitSettings) -> Result<JobPublisher, RabbitError> {
        let names = Names::new(settings)?;
        let connection = connect(&settings.url, "rendition-backfill").await?;
        let channel = confirming_channel(&connection).await?;
        declare(&channel, &names).await?;
        Ok(JobPublisher {
            connection,
            channel,
            queue: names.queue,
        })
    }

    /// Publishes one job document (JSON), persistent and mandatory, and waits for the
    /// broker's confirm.
    pub async fn publish(&self, body: &[u8]) -> Result<(), RabbitError> {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_type("rendition.job".into());
        publish(&self.channel, &"".into(), &self.queue, body, props, true).await
    }

    pub async fn close(self) {
        let _ = self.channel.close(REPLY_SUCCESS, "done".into()).await;
        let _ = self.connection.close(REPLY_SUCCESS, "done".into()).await;
    }
}
