//! The bus's part: events put on it with PutEvents, and what its rule delivered to the intake
//! queue handed to intake in SQS batches, as the queue's event source mapping does.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::Message;
use herald_core::ids::OrgId;
use herald_core::record::IntakeRecord;
use serde_json::Value;
use tracing::warn;

use super::{LocalStack, sqs_event};
use crate::error::LocalError;
use crate::requests::Component;

/// An event put on the bus, or refused by it.
pub(super) enum Put {
    Accepted {
        event_id: String,
        detail_type: String,
        org: Option<OrgId>,
    },
    Refused {
        detail_type: String,
        reason: String,
    },
}

/// How many times an empty receive is tolerated while events are still expected.
const EMPTY_RECEIVES: usize = 20;

/// The most receives (of up to ten events each) one pass over the intake queue makes.
const INTAKE_RECEIVES: usize = 50;

/// A message the bus rule delivered to the intake queue, and the id of the event it holds.
struct Delivered {
    event_id: Option<String>,
    message: Message,
}

impl LocalStack {
    pub(super) async fn put_events(&self, events: &[Value]) -> Result<Vec<Put>, LocalError> {
        let mut puts: Vec<Option<Put>> = events.iter().map(|_| None).collect();
        // Chunks of ten, the PutEvents limit.
        for (chunk_index, chunk) in events.chunks(10).enumerate() {
            let mut entries = Vec::new();
            let mut positions = Vec::new();
            for (offset, event) in chunk.iter().enumerate() {
                let position = chunk_index * 10 + offset;
                match entry(event, &self.stack.names.bus()) {
                    Ok(e) => {
                        entries.push(e);
                        positions.push(position);
                    }
                    Err(reason) => {
                        puts[position] = Some(Put::Refused {
                            detail_type: detail_type_of(event),
                            reason: reason.to_string(),
                        });
                    }
                }
            }
            if entries.is_empty() {
                continue;
            }
            let out = self
                .events
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| LocalError::aws("PutEvents", e))?;
            let mut results = out.entries.unwrap_or_default().into_iter();

            for position in positions {
                let event = &events[position];
                let result = results.next();
                let accepted = result.as_ref().and_then(|r| r.event_id.clone());
                // every event but Herald's own life-cycle events is the intake rule's to deliver
                if accepted.is_some()
                    && event.get("source").and_then(Value::as_str) != Some("herald")
                {
                    self.requests.delivered_by_rule(1);
                }
                puts[position] = Some(match accepted {
                    Some(event_id) => Put::Accepted {
                        event_id,
                        detail_type: detail_type_of(event),
                        org: event
                            .pointer("/detail/organization_id")
                            .and_then(Value::as_str)
                            .and_then(|o| OrgId::parse(o).ok()),
                    },
                    None => Put::Refused {
                        detail_type: detail_type_of(event),
                        reason: format!(
                            "the bus refused the event: {}",
                            result
                                .and_then(|r| r.error_message.or(r.error_code))
                                .unwrap_or_default()
                        ),
                    },
                });
            }
        }
        Ok(puts.into_iter().flatten().collect())
    }

    /// Receives what the bus rule delivered and hands each event to intake, in the order
    /// the events were put (and whatever else the feed held, after them).
    pub(super) async fn pump_intake(
        &self,
        puts: &[Put],
    ) -> Result<HashMap<String, IntakeRecord>, LocalError> {
        let order: HashMap<&str, usize> = puts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Put::Accepted { event_id, .. } => Some((event_id.as_str(), i)),
                Put::Refused { .. } => None,
            })
            .collect();
        // each expected event once, in the order it was put; anything else in the order seen
        let mut expected: BTreeMap<usize, Delivered> = BTreeMap::new();
        let mut others: Vec<Delivered> = Vec::new();
        // copies of an event received again (its message became visible again while the
        // rest were still being received): taken off the feed, not handed over twice
        let mut copies: Vec<String> = Vec::new();
        let mut empty = 0;
        while expected.len() < order.len() && empty < EMPTY_RECEIVES {
            let messages = self.receive_intake().await?;
            if messages.is_empty() {
                empty += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            for d in messages {
                match d.event_id.as_deref().and_then(|id| order.get(id)).copied() {
                    Some(i) if expected.contains_key(&i) => {
                        copies.extend(d.message.receipt_handle);
                    }
                    Some(i) => {
                        expected.insert(i, d);
                    }
                    None => others.push(d),
                }
            }
        }
        self.delete(&self.stack.intake_queue_url, copies).await?;
        let delivered = expected.into_values().chain(others).collect();
        self.hand_to_intake(delivered).await
    }

    /// Hands whatever the bus rule delivered to intake, as the rule's target does in AWS:
    /// every message the intake queue shows, in the order received. Returns how many events
    /// intake took.
    pub async fn pump_intake_queue(&self) -> Result<usize, LocalError> {
        let mut handled = 0;
        for _ in 0..INTAKE_RECEIVES {
            let delivered = self.receive_intake().await?;
            if delivered.is_empty() {
                break;
            }
            handled += self.hand_to_intake(delivered).await?.len();
        }
        Ok(handled)
    }

    /// Up to ten messages from the intake queue, with the ids of their events.
    async fn receive_intake(&self) -> Result<Vec<Delivered>, LocalError> {
        let messages = self.receive(&self.stack.intake_queue_url).await?;
        Ok(messages
            .into_iter()
            .map(|message| {
                let body = message.body.as_deref().unwrap_or_default();
                let event_id = serde_json::from_str::<EventBridgeEvent<Value>>(body)
                    .ok()
                    .and_then(|e| e.id);
                Delivered { event_id, message }
            })
            .collect())
    }

    /// Hands the messages to intake in batches of ten, in their order, as the queue's event
    /// source mapping does, and deletes those it did not report failed; a failed one stays,
    /// for Lambda to hand over again.
    async fn hand_to_intake(
        &self,
        delivered: Vec<Delivered>,
    ) -> Result<HashMap<String, IntakeRecord>, LocalError> {
        let mut records = HashMap::new();
        let messages: Vec<Message> = delivered.into_iter().map(|d| d.message).collect();
        for batch in messages.chunks(10) {
            self.requests.invoked(Component::Intake);
            let event = sqs_event(batch);
            let handled = herald_intake::handle_messages(&self.intake, &event.records).await;
            let failed = herald_adapters::sqs::failed_message_ids(&handled.response);
            if !failed.is_empty() {
                warn!(failed = failed.len(), "intake reported events failed");
            }
            let done = batch
                .iter()
                .filter(|m| !failed.contains(&m.message_id.as_deref().unwrap_or_default()))
                .filter_map(|m| m.receipt_handle.clone())
                .collect();
            records.extend(handled.records.into_iter().map(|r| (r.event_id.clone(), r)));
            self.delete(&self.stack.intake_queue_url, done).await?;
        }
        Ok(records)
    }
}

/// Why a value is not an event envelope as in events/ (the event is reported refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an EventBridge event: {0} is missing")]
    Missing(&'static str),
    #[error("time is not RFC 3339")]
    Time,
}

/// A PutEvents entry from an event envelope as in events/, or why it cannot be one.
fn entry(event: &Value, bus: &str) -> Result<PutEventsRequestEntry, EnvelopeError> {
    let field = |name: &str| {
        event
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let detail_type = field("detail-type").ok_or(EnvelopeError::Missing("detail-type"))?;
    let source = field("source").ok_or(EnvelopeError::Missing("source"))?;
    let detail = event
        .get("detail")
        .ok_or(EnvelopeError::Missing("detail"))?;
    let mut builder = PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(source)
        .detail_type(detail_type)
        .detail(detail.to_string());
    if let Some(time) = field("time") {
        let parsed = chrono::DateTime::parse_from_rfc3339(time).map_err(|_| EnvelopeError::Time)?;
        builder = builder.time(aws_smithy_types::DateTime::from_millis(
            parsed.timestamp_millis(),
        ));
    }
    Ok(builder.build())
}

fn detail_type_of(event: &Value) -> String {
    event
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
