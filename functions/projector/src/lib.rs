//! The projector function: the notifications table's stream in, the views (audit log,
//! customer feed, statistics, dead letters) and Herald's life-cycle events on its bus out. A
//! record that cannot be projected, or whose events the bus kept refusing, fails alone; the
//! rest of the batch is projected.

use std::sync::Arc;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use herald_adapters::config::{self, ConfigError};
use herald_adapters::emf::EmfMeter;
use herald_adapters::websocket::RealtimeConfig;
use herald_adapters::{DynamoViews, EventBridgePublisher};
use herald_core::lifecycle_events::{LifecycleSelection, lifecycle_events};
use herald_core::model::Notification;
use herald_core::ports::{EventPublisher, Meter, Views};
use herald_core::projection::{Change, project_batch};
use herald_core::realtime::{Broadcasted, Realtime, feed_events};
use herald_core::telemetry;
use lambda_runtime::{Error, LambdaEvent};
use thiserror::Error;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct Config {
    pub views_table: String,
    /// The bus Herald's life-cycle events go on.
    pub event_bus: String,
    /// Which of them it publishes (`HERALD_LIFECYCLE_EVENTS`: `all`, the default, `none`, or
    /// a list of detail-types).
    pub lifecycle_events: LifecycleSelection,
    /// The CloudWatch namespace of its metrics (`HERALD_METRICS_NAMESPACE`, default `Herald`).
    pub metrics_namespace: String,
    /// Where the customers' open WebSocket connections are; without it, nobody is told of
    /// their feed's changes.
    pub realtime: Option<RealtimeConfig>,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            views_table: config::required("HERALD_VIEWS_TABLE")?,
            event_bus: config::required("HERALD_EVENT_BUS")?,
            lifecycle_events: config::parsed(
                "HERALD_LIFECYCLE_EVENTS",
                LifecycleSelection::all(),
                str::parse,
            )?,
            metrics_namespace: herald_adapters::emf::namespace_from_env(),
            realtime: RealtimeConfig::from_env(),
        })
    }
}

pub fn views(config: &Config, aws: &aws_config::SdkConfig) -> DynamoViews {
    DynamoViews::new(aws_sdk_dynamodb::Client::new(aws), &config.views_table)
}

pub fn publisher(config: &Config, aws: &aws_config::SdkConfig) -> EventBridgePublisher {
    EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(aws), &config.event_bus)
}

/// Everything the projector works with, built once per cold start.
pub struct Projector {
    pub views: Arc<dyn Views>,
    pub bus: Arc<dyn EventPublisher>,
    /// The life-cycle events published on the bus.
    pub publishing: LifecycleSelection,
    pub meter: Arc<dyn Meter>,
    pub realtime: Option<Realtime>,
}

/// The projector as the environment configures it.
pub async fn from_env() -> Result<Projector, Error> {
    let config = Config::from_env()?;
    let aws = config::aws().await?;
    Ok(Projector {
        views: Arc::new(views(&config, &aws)),
        bus: Arc::new(publisher(&config, &aws)),
        publishing: config.lifecycle_events.clone(),
        meter: Arc::new(EmfMeter::stdout(&config.metrics_namespace)),
        realtime: config.realtime.as_ref().map(|r| r.realtime(&aws)),
    })
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

fn failure(sequence: Option<String>) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence;
    failure
}

/// The Lambda handler: the views first; then, at once, the feed changes to the customers'
/// open connections and the life-cycle events of every change that the deployment publishes
/// to the bus; then what the providers' reports did (delivered, bounced, complained) measured.
pub async fn handle(
    projector: &Projector,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let Projector {
        views,
        bus,
        publishing,
        meter,
        realtime,
    } = projector;
    let mut response = DynamoDbEventResponse::default();
    let mut changes = Vec::new();
    let mut sequences = Vec::new();
    for record in &event.payload.records {
        match change(record) {
            Ok(Some(c)) => {
                changes.push(c);
                sequences.push(record.change.sequence_number.clone());
            }
            Ok(None) => {}
            Err(reason) => {
                let sequence = record.change.sequence_number.clone();
                warn!(event_id = %record.event_id, sequence = ?sequence, %reason, "stream record cannot be projected");
                response.batch_item_failures.push(failure(sequence));
            }
        }
    }
    let writes = project_batch(&changes);
    // An infrastructure failure fails the batch: it is retried, and projecting is idempotent.
    views.apply(&writes).await?;

    let mut events = Vec::new();
    let mut origin = Vec::new();
    for (c, sequence) in changes.iter().zip(&sequences) {
        for e in lifecycle_events(c)
            .into_iter()
            .filter(|e| publishing.includes(e.kind))
        {
            events.push(e);
            origin.push(sequence);
        }
    }
    // A feed change reaches the connections at most once: a message lost to a failure is
    // made up for by the client, which reloads its feed when it reconnects.
    let broadcast = async {
        match realtime {
            Some(r) => r.broadcast(views.as_ref(), &feed_events(&changes)).await,
            None => Broadcasted::default(),
        }
    };
    // Entries the bus kept refusing fail their records alone: the stream brings them again,
    // their views change nothing the second time, and their events keep their ids.
    let (refused, broadcasted) = tokio::join!(bus.publish(&events), broadcast);
    let refused = refused?;
    let mut failed_records: Vec<&Option<String>> = refused
        .iter()
        .filter_map(|i| origin.get(*i).copied())
        .collect();
    failed_records.dedup();
    for sequence in failed_records {
        if !response
            .batch_item_failures
            .iter()
            .any(|f| &f.item_identifier == sequence)
        {
            warn!(sequence = ?sequence, "life-cycle events of a stream record were not published");
            response.batch_item_failures.push(failure(sequence.clone()));
        }
    }
    meter.record(
        changes
            .iter()
            .filter_map(|c| Some(telemetry::of_report(c.old.as_ref()?, c.new.as_ref()?)))
            .flatten()
            .collect(),
    );
    info!(
        records = event.payload.records.len(),
        writes = writes.len(),
        published = events.len() - refused.len(),
        posted = broadcasted.posted,
        gone = broadcasted.gone,
        not_posted = broadcasted.failed,
        failed = response.batch_item_failures.len(),
        "projected"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use herald_core::lifecycle_events::LifecycleEventKind;
    use herald_core::ports::NoMeter;
    use herald_core::testing::{MemoryEventPublisher, MemoryUnread};

    fn sample() -> LambdaEvent<Event> {
        let event: Event =
            serde_json::from_str(include_str!("../../../events/projector/stream-batch.json"))
                .unwrap();
        LambdaEvent::new(event, lambda_runtime::Context::default())
    }

    /// A projector on views that take every write and show nothing: these tests look at the
    /// bus.
    fn projector(bus: &Arc<MemoryEventPublisher>, publishing: LifecycleSelection) -> Projector {
        Projector {
            views: Arc::new(MemoryUnread::default()),
            bus: bus.clone(),
            publishing,
            meter: Arc::new(NoMeter),
            realtime: None,
        }
    }

    /// The sample batch handled by a deployment that publishes every life-cycle event.
    async fn publish_all(bus: &Arc<MemoryEventPublisher>) -> DynamoDbEventResponse {
        handle(&projector(bus, LifecycleSelection::all()), sample())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_publishes_each_changes_events_and_a_replay_the_same_ids() {
        let bus = MemoryEventPublisher::new();
        let response = publish_all(&bus).await;
        assert!(response.batch_item_failures.is_empty());
        let first = bus.published();
        let kinds: Vec<_> = first.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                LifecycleEventKind::NotificationCreated,
                LifecycleEventKind::NotificationSent
            ]
        );
        publish_all(&bus).await;
        let again = &bus.published()[2..];
        assert_eq!(again, &first[..]);
    }

    #[tokio::test]
    async fn events_the_bus_refuses_fail_only_their_record() {
        let bus = MemoryEventPublisher::new();
        publish_all(&bus).await;
        let sent = bus.published()[1].detail.event_id.clone();
        let bus = MemoryEventPublisher::new();
        bus.refuse(&sent);
        let response = publish_all(&bus).await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        // the third record (sending → sent) made it
        assert_eq!(failed, vec![Some("1100000000017454423013".to_string())]);
        assert_eq!(bus.published().len(), 1);
    }

    #[tokio::test]
    async fn a_deployment_publishes_only_the_events_it_selected() {
        let bus = MemoryEventPublisher::new();
        let sent_only: LifecycleSelection = "NotificationSent".parse().unwrap();
        let response = handle(&projector(&bus, sent_only), sample()).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        let kinds: Vec<_> = bus.published().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![LifecycleEventKind::NotificationSent]);
        let bus = MemoryEventPublisher::new();
        handle(&projector(&bus, LifecycleSelection::none()), sample())
            .await
            .unwrap();
        assert!(bus.published().is_empty());
    }

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
