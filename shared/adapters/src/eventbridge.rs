//! Herald's life-cycle events on its EventBridge bus (`source: herald`).

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use herald_core::lifecycle_events::{LifecycleEvent, SOURCE};
use herald_core::ports::{EventPublisher, PortError};
use tracing::warn;

use crate::backoff::{Backoff, Round};
use crate::errors::aws;

/// The most entries one PutEvents takes.
const BATCH_LIMIT: usize = 10;

#[derive(Clone, Debug)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
    backoff: Backoff,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgePublisher {
            client,
            bus: bus.into(),
            backoff: Backoff::default(),
        }
    }

    /// How entries EventBridge refused are put again.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        EventBridgePublisher { backoff, ..self }
    }

    fn entry(&self, event: &LifecycleEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(event.detail_type())
            .detail(event.detail_json())
            .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(
                event.detail.at.timestamp_millis(),
            ))
            .build()
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[LifecycleEvent]) -> Result<Vec<usize>, PortError> {
        const OP: &str = "eventbridge PutEvents";
        let mut failed = Vec::new();
        let indexed: Vec<(usize, PutEventsRequestEntry)> = events
            .iter()
            .enumerate()
            .map(|(i, e)| (i, self.entry(e)))
            .collect();
        for chunk in indexed.chunks(BATCH_LIMIT) {
            let last = self
                .backoff
                .leaving_undone(chunk.to_vec(), |pending| async move {
                    let out = self
                        .client
                        .put_events()
                        .set_entries(Some(pending.iter().map(|(_, e)| e.clone()).collect()))
                        .send()
                        .await
                        .map_err(|e| aws(OP, e))?;
                    if out.failed_entry_count == 0 {
                        return Ok(Round::<_, ()>::new(Vec::new(), Vec::new()));
                    }
                    // the answer's entries are in the order of the request's
                    let answers = out.entries.unwrap_or_default();
                    let mut codes = Vec::new();
                    let left: Vec<(usize, PutEventsRequestEntry)> = pending
                        .into_iter()
                        .enumerate()
                        .filter_map(|(position, entry)| {
                            // an entry the answer does not account for is taken as failed
                            match answers.get(position).map(|a| a.error_code()) {
                                Some(None) => None,
                                Some(Some(code)) => {
                                    codes.push(code.to_string());
                                    Some(entry)
                                }
                                None => Some(entry),
                            }
                        })
                        .collect();
                    Ok(Round::new(Vec::new(), left).because(codes.join(", ")))
                })
                .await?;
            if !last.left.is_empty() {
                warn!(
                    failed = last.left.len(),
                    codes = last.why.as_deref().unwrap_or_default(),
                    "EventBridge refused entries after every attempt"
                );
            }
            failed.extend(last.left.into_iter().map(|(i, _)| i));
        }
        Ok(failed)
    }
}
