//! The projector function: the notifications table's stream in, the views (audit log,
//! customer feed, statistics, dead letters) out. A record that cannot be projected fails
//! alone; the rest of the batch is projected.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use herald_adapters::DynamoViews;
use herald_adapters::config::{self, ConfigError};
use herald_core::model::Notification;
use herald_core::ports::Views;
use herald_core::projection::{Change, project_batch};
use lambda_runtime::{Error, LambdaEvent};
use thiserror::Error;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct Config {
    pub views_table: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            views_table: config::required("HERALD_VIEWS_TABLE")?,
        })
    }
}

pub fn views(config: &Config, aws: &aws_config::SdkConfig) -> DynamoViews {
    DynamoViews::new(aws_sdk_dynamodb::Client::new(aws), &config.views_table)
}

pub async fn views_from_env() -> Result<DynamoViews, Error> {
    let config = Config::from_env()?;
    Ok(views(&config, &config::aws().await))
}

fn kind(image: &serde_dynamo::Item) -> Option<&str> {
    match image.get("kind") {
        Some(serde_dynamo::AttributeValue::S(k)) => Some(k.as_str()),
        _ => None,
    }
}

/// Why a stream record cannot be projected (it fails alone; the rest of the batch goes on).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("the record has no image (the stream must carry NEW_AND_OLD_IMAGES)")]
    NoImage,
    #[error("the {image} image is not a notification: {reason}")]
    Unreadable { image: &'static str, reason: String },
}

fn image(
    item: &serde_dynamo::Item,
    which: &'static str,
) -> Result<Option<Notification>, RecordError> {
    if item.is_empty() {
        return Ok(None);
    }
    serde_dynamo::from_item(item.clone())
        .map(Some)
        .map_err(|e| RecordError::Unreadable {
            image: which,
            reason: without_values(&e.to_string()),
        })
}

/// A deserializer's message with the values it quotes taken out (`invalid type: string "…"`
/// would put an address in the log); the field names and expectations stay.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…");
                quoted = true;
            }
            ('"', true) => {
                out.push('"');
                quoted = false;
            }
            (_, false) => out.push(c),
            (_, true) => {}
        }
    }
    out
}

/// The change a stream record describes; `Ok(None)` for records that are not notifications
/// (intake records live in the same table).
pub fn change(record: &EventRecord) -> Result<Option<Change>, RecordError> {
    let images = [&record.change.new_image, &record.change.old_image];
    let kinds: Vec<Option<&str>> = images
        .iter()
        .filter(|i| !i.is_empty())
        .map(|i| kind(i))
        .collect();
    if kinds.is_empty() {
        return Err(RecordError::NoImage);
    }
    if kinds.iter().all(|k| *k != Some("notification")) {
        return Ok(None);
    }
    let new = image(&record.change.new_image, "new")?;
    let old = image(&record.change.old_image, "old")?;
    Ok(Some(Change { old, new }))
}

/// The Lambda handler.
pub async fn handle<V: Views>(
    views: &V,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let mut response = DynamoDbEventResponse::default();
    let mut changes = Vec::new();
    for record in &event.payload.records {
        match change(record) {
            Ok(Some(c)) => changes.push(c),
            Ok(None) => {}
            Err(reason) => {
                let sequence = record.change.sequence_number.clone();
                warn!(event_id = %record.event_id, sequence = ?sequence, %reason, "stream record cannot be projected");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = sequence;
                response.batch_item_failures.push(failure);
            }
        }
    }
    let writes = project_batch(&changes);
    // An infrastructure failure fails the batch: it is retried, and projecting is idempotent.
    views.apply(&writes).await?;
    info!(
        records = event.payload.records.len(),
        writes = writes.len(),
        failed = response.batch_item_failures.len(),
        "projected"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_a_deserializer_quotes_are_left_out_of_the_reason() {
        assert_eq!(
            without_values(r#"invalid type: string "carol@example.com", expected u32"#),
            r#"invalid type: string "…", expected u32"#
        );
        assert_eq!(
            without_values("missing field `status`"),
            "missing field `status`"
        );
    }

    #[test]
    fn a_record_without_images_is_named() {
        let record = EventRecord::default();
        assert_eq!(change(&record).unwrap_err(), RecordError::NoImage);
    }
}
