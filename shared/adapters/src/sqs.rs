//! The dispatch queue on SQS, and the answer functions give an SQS event source.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use herald_core::ports::{DispatchQueue, Enqueue, MAX_QUEUE_DELAY, PortError};

use crate::backoff::{Backoff, Round};
use crate::errors::aws;

/// The most entries one SendMessageBatch takes.
const BATCH_LIMIT: usize = 10;

#[derive(Clone, Debug)]
pub struct SqsDispatchQueue {
    client: Client,
    queue_url: String,
    backoff: Backoff,
}

impl SqsDispatchQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsDispatchQueue {
            client,
            queue_url: queue_url.into(),
            backoff: Backoff::default(),
        }
    }

    /// How entries SQS failed are sent again.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        SqsDispatchQueue { backoff, ..self }
    }
}

#[async_trait]
impl DispatchQueue for SqsDispatchQueue {
    async fn enqueue(&self, messages: &[Enqueue]) -> Result<(), PortError> {
        const OP: &str = "sqs SendMessageBatch";
        for chunk in messages.chunks(BATCH_LIMIT) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                let body = serde_json::to_string(&m.message).map_err(|e| PortError::new(OP, e))?;
                let delay = m.delay.min(MAX_QUEUE_DELAY).as_secs();
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        // the organization is the message group: on a fair queue one
                        // organization's backlog does not hold back the others'
                        .message_group_id(m.message.org_id.as_str())
                        .delay_seconds(i32::try_from(delay).unwrap_or(0))
                        .build()
                        .map_err(|e| PortError::new(OP, e))?,
                );
            }
            self.backoff
                .until_done(OP, entries, |pending| async move {
                    let out = self
                        .client
                        .send_message_batch()
                        .queue_url(&self.queue_url)
                        .set_entries(Some(pending.clone()))
                        .send()
                        .await
                        .map_err(|e| aws(OP, e))?;
                    let failed: Vec<&str> = out.failed.iter().map(|f| f.id.as_str()).collect();
                    let left: Vec<SendMessageBatchRequestEntry> = pending
                        .into_iter()
                        .filter(|e| failed.contains(&e.id.as_str()))
                        .collect();
                    let codes: Vec<&str> = out.failed.iter().map(|f| f.code.as_str()).collect();
                    Ok(Round::<_, ()>::new(Vec::new(), left).because(codes.join(", ")))
                })
                .await?;
        }
        Ok(())
    }
}

/// The answer to an SQS event source's batch: these messages failed, and Lambda hands them
/// over again (after the queue's last receive, to its dead-letter queue); the others are
/// deleted (`ReportBatchItemFailures`).
pub fn batch_response<'a>(
    failed: impl IntoIterator<Item = &'a aws_lambda_events::sqs::SqsMessage>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    for message in failed {
        let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
        failure.item_identifier = message.message_id.clone().unwrap_or_default();
        response.batch_item_failures.push(failure);
    }
    response
}

/// The messages an answer reports failed, by their ids: those Lambda hands over again.
pub fn failed_message_ids(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}
