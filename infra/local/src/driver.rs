//! Drives the real handlers from the real event sources: events go onto the bus with
//! PutEvents, the bus rule delivers them to a queue, and from there they are handed to intake
//! as EventBridge events; the dispatch queue is drained through dispatch in SQS batches.

use std::collections::HashMap;
use std::sync::Arc;

use crate::stream::StreamReader;
use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use herald_adapters::DynamoNotificationStore;
use herald_adapters::DynamoViews;
use herald_core::dispatch::DispatchService;
use herald_core::ids::{EmailAddress, OrgId};
use herald_core::intake::IntakeService;
use herald_core::model::{Notification, Recipient};
use herald_core::ports::Views;
use herald_core::ports::{DispatchMessage, ManualClock, NotificationStore};
use herald_core::record::{ChannelSkip, IntakeRecord};
use herald_core::retry::RetryPolicy;
use herald_core::scheduler::{SchedulerService, SweepConfig, SweepReport};
use lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::emulator::{Emulator, REGION, Sent};
use crate::error::{LocalError, aws_error};
use crate::stack::{DEFAULT_SENDER, Stack};

/// One notification as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationReport {
    pub id: String,
    pub recipient: String,
    #[serde(rename = "type")]
    pub notification_type: String,
    pub channel: String,
    pub status: String,
    pub scheduled_for: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    pub provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The notification's history, from the projected audit log.
    pub log: Vec<LogReport>,
    /// Whether the customer's projected feed shows it.
    pub in_feed: bool,
}

/// What became of one event given to the local stack.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    pub event_id: String,
    pub detail_type: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub notifications: Vec<NotificationReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<ChannelSkip>,
}

/// An event put on the bus, or refused by it.
enum Put {
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

pub struct LocalStack {
    pub emulator: Emulator,
    pub aws: SdkConfig,
    pub stack: Stack,
    pub intake: IntakeService,
    pub dispatch: DispatchService,
    pub scheduler: SchedulerService,
    pub views: DynamoViews,
    pub options: Options,
    pub store: DynamoNotificationStore,
    /// The handlers' clock: the system's, or the time a `tick --at` runs at.
    pub clock: Arc<ManualClock>,
    stream: StreamReader,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
}

/// How the local stack's handlers are set up.
#[derive(Debug, Clone)]
pub struct Options {
    pub retry: RetryPolicy,
    /// Where SendGrid and Twilio are (`HERALD_SENDGRID_BASE_URL`, `HERALD_TWILIO_BASE_URL`;
    /// their public APIs by default).
    pub sendgrid_base_url: String,
    pub twilio_base_url: String,
    /// The public base URL of the webhooks, for Twilio's status callbacks.
    pub public_base_url: Option<String>,
    /// How long dispatch trusts the provider settings it read.
    pub settings_ttl: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Options {
            retry: RetryPolicy::default(),
            sendgrid_base_url: env("HERALD_SENDGRID_BASE_URL")
                .unwrap_or_else(|| herald_adapters::sendgrid::DEFAULT_BASE_URL.into()),
            twilio_base_url: env("HERALD_TWILIO_BASE_URL")
                .unwrap_or_else(|| herald_adapters::twilio::DEFAULT_BASE_URL.into()),
            public_base_url: env("HERALD_PUBLIC_BASE_URL"),
            settings_ttl: herald_adapters::secrets::CACHE_TTL,
        }
    }
}

/// The dispatch function's configuration for a stage and options.
pub fn dispatch_config(stack: &Stack, options: &Options) -> herald_dispatch::Config {
    herald_dispatch::Config {
        notifications_table: stack.names.notifications_table(),
        directory_table: stack.names.directory_table(),
        dispatch_queue_url: stack.dispatch_queue_url.clone(),
        retry: options.retry.clone(),
        ses_configuration_set: None,
        sms_sender_id: None,
        providers: herald_dispatch::ProvidersConfig {
            secrets_prefix: stack.names.provider_secrets_prefix(),
            sendgrid_base_url: options.sendgrid_base_url.clone(),
            twilio_base_url: options.twilio_base_url.clone(),
            public_base_url: options.public_base_url.clone(),
            settings_ttl: options.settings_ttl,
        },
    }
}

/// A log entry as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    pub at: String,
    pub event: String,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a tick did.
#[derive(Debug, Clone, Serialize)]
pub struct TickReport {
    #[serde(flatten)]
    pub sweep: SweepReport,
    pub notifications: Vec<NotificationReport>,
}

/// How many times an empty receive is tolerated while events are still expected.
const EMPTY_RECEIVES: usize = 20;
/// The most receives (of up to ten events each) one pass over the intake feed makes.
const FEED_RECEIVES: usize = 50;

/// An event the bus rule delivered to the intake feed, and its receipt there.
struct Delivered {
    event: EventBridgeEvent<Value>,
    receipt: String,
}

impl LocalStack {
    /// Stands a stage up on the emulator and builds the handlers against it.
    pub async fn start(emulator: Emulator, stage: &str) -> Result<LocalStack, LocalError> {
        Self::start_with(emulator, stage, Options::default()).await
    }

    pub async fn start_with(
        emulator: Emulator,
        stage: &str,
        options: Options,
    ) -> Result<LocalStack, LocalError> {
        let clock = Arc::new(ManualClock::default());
        let aws = emulator.aws_config().await;
        let stack = Stack::create(&aws, stage).await?;
        let default_sender =
            EmailAddress::parse(DEFAULT_SENDER).map_err(|e| LocalError::Handler(e.0))?;
        let intake_config = herald_intake::Config {
            notifications_table: stack.names.notifications_table(),
            directory_table: stack.names.directory_table(),
            dispatch_queue_url: stack.dispatch_queue_url.clone(),
            default_sender,
        };
        let intake = herald_intake::service(&intake_config, &aws, clock.clone())
            .map_err(|e| LocalError::Handler(e.to_string()))?;
        let dispatch_config = dispatch_config(&stack, &options);
        let dispatch = herald_dispatch::service(&dispatch_config, &aws, clock.clone());
        let scheduler_config = herald_scheduler::Config {
            notifications_table: stack.names.notifications_table(),
            dispatch_queue_url: stack.dispatch_queue_url.clone(),
            sweep: SweepConfig::default(),
        };
        let scheduler = herald_scheduler::service(&scheduler_config, &aws, clock.clone());
        let views = herald_projector::views(
            &herald_projector::Config {
                views_table: stack.names.views_table(),
            },
            &aws,
        );
        Ok(LocalStack {
            options,
            stream: StreamReader::new(&aws, stack.names.notifications_table()),
            scheduler,
            views,
            clock,
            store: DynamoNotificationStore::new(
                aws_sdk_dynamodb::Client::new(&aws),
                stack.names.notifications_table(),
            ),
            sqs: aws_sdk_sqs::Client::new(&aws),
            events: aws_sdk_eventbridge::Client::new(&aws),
            emulator,
            aws,
            stack,
            intake,
            dispatch,
        })
    }

    /// The environment that points a function (`cargo lambda watch`) at this stack.
    pub fn function_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.emulator.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "local".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "local".to_string()),
            (
                "HERALD_NOTIFICATIONS_TABLE",
                self.stack.names.notifications_table(),
            ),
            ("HERALD_DIRECTORY_TABLE", self.stack.names.directory_table()),
            // not read by a function: where to put events (`aws events put-events`)
            ("HERALD_EVENT_BUS_NAME", self.stack.names.bus()),
            (
                "HERALD_DISPATCH_QUEUE_URL",
                self.stack.dispatch_queue_url.clone(),
            ),
            ("HERALD_DEFAULT_SENDER", DEFAULT_SENDER.to_string()),
            ("HERALD_VIEWS_TABLE", self.stack.names.views_table()),
            (
                "HERALD_PROVIDER_SECRETS_PREFIX",
                self.stack.names.provider_secrets_prefix(),
            ),
        ]
    }

    /// Puts the events on the bus, runs them through intake and dispatch to the end, and
    /// reports each, in order.
    pub async fn run(&self, events: &[Value]) -> Result<Vec<EventReport>, LocalError> {
        let puts = self.put_events(events).await?;
        let records = self.pump_intake(&puts).await?;
        self.drain_dispatch().await?;
        self.tick(None).await?;
        self.report(&puts, &records).await
    }

    /// The scheduler's sweep, the dispatch that follows it and the projection of what
    /// changed, as if the clock read `at` (now when `None`). The emulator's schedules never
    /// fire, so the local stack ticks the scheduler itself.
    pub async fn tick(&self, at: Option<DateTime<Utc>>) -> Result<TickReport, LocalError> {
        self.clock.set(at);
        let result = async {
            let sweep = self
                .scheduler
                .sweep()
                .await
                .map_err(|e| LocalError::Aws(e.to_string()))?;
            let handled = self.drain_dispatch().await?;
            self.project().await?;
            let sent = self.emulator.sent().await?;
            let mut notifications = Vec::new();
            for m in handled {
                if let Some(n) = self
                    .store
                    .get(&m.org_id, &m.notification_id)
                    .await
                    .map_err(|e| LocalError::Aws(e.to_string()))?
                {
                    notifications.push(self.notification_report(&n, &sent).await?);
                }
            }
            Ok(TickReport {
                sweep,
                notifications,
            })
        }
        .await;
        self.clock.set(None);
        result
    }

    /// Hands the stream records written since the last call to the projector.
    pub async fn project(&self) -> Result<usize, LocalError> {
        let event = self.stream.read().await?;
        let count = event.records.len();
        if count > 0 {
            let response =
                herald_projector::handle(&self.views, LambdaEvent::new(event, Context::default()))
                    .await
                    .map_err(|e| LocalError::Handler(e.to_string()))?;
            if !response.batch_item_failures.is_empty() {
                warn!(
                    count = response.batch_item_failures.len(),
                    "stream records the projector could not project"
                );
            }
        }
        Ok(count)
    }

    async fn put_events(&self, events: &[Value]) -> Result<Vec<Put>, LocalError> {
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
                            reason,
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
                .map_err(|e| aws_error("PutEvents", e))?;
            let mut results = out.entries.unwrap_or_default().into_iter();
            for position in positions {
                let event = &events[position];
                let result = results.next();
                puts[position] = Some(match result.as_ref().and_then(|r| r.event_id.clone()) {
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
    async fn pump_intake(&self, puts: &[Put]) -> Result<HashMap<String, IntakeRecord>, LocalError> {
        let order: HashMap<&str, usize> = puts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Put::Accepted { event_id, .. } => Some((event_id.as_str(), i)),
                Put::Refused { .. } => None,
            })
            .collect();
        let mut delivered: Vec<(usize, Delivered)> = Vec::new();
        let mut empty = 0;
        let expected =
            |d: &[(usize, Delivered)]| d.iter().filter(|(i, _)| *i != usize::MAX).count();
        while expected(&delivered) < order.len() && empty < EMPTY_RECEIVES {
            let messages = self.receive_feed().await?;
            if messages.is_empty() {
                empty += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            for d in messages {
                let index = d
                    .event
                    .id
                    .as_deref()
                    .and_then(|id| order.get(id))
                    .copied()
                    .unwrap_or(usize::MAX);
                delivered.push((index, d));
            }
        }
        delivered.sort_by_key(|(i, _)| *i);
        self.hand_to_intake(delivered.into_iter().map(|(_, d)| d).collect())
            .await
    }

    /// Hands whatever the bus rule delivered to intake, as the rule's target does in AWS:
    /// every message the intake feed shows, in the order received. Returns how many events
    /// intake took.
    pub async fn pump_feed(&self) -> Result<usize, LocalError> {
        let mut handled = 0;
        for _ in 0..FEED_RECEIVES {
            let delivered = self.receive_feed().await?;
            if delivered.is_empty() {
                break;
            }
            handled += self.hand_to_intake(delivered).await?.len();
        }
        Ok(handled)
    }

    /// Up to ten events from the intake feed, with their receipts.
    async fn receive_feed(&self) -> Result<Vec<Delivered>, LocalError> {
        let messages = self.receive(&self.stack.intake_feed_url).await?;
        Ok(messages
            .into_iter()
            .filter_map(|m| {
                match serde_json::from_str::<EventBridgeEvent<Value>>(m.body.as_deref().unwrap_or_default()) {
                    Ok(event) => Some(Delivered {
                        event,
                        receipt: m.receipt_handle.unwrap_or_default(),
                    }),
                    Err(e) => {
                        warn!(error = %e, "the intake feed held something that is not an EventBridge event");
                        None
                    }
                }
            })
            .collect())
    }

    /// Hands the events to intake one by one, and takes those it handled off the feed; one
    /// that fails stays, as Lambda would retry it.
    async fn hand_to_intake(
        &self,
        delivered: Vec<Delivered>,
    ) -> Result<HashMap<String, IntakeRecord>, LocalError> {
        let mut records = HashMap::new();
        let mut done = Vec::new();
        for Delivered { event, receipt } in delivered {
            let id = event.id.clone().unwrap_or_default();
            match herald_intake::handle(&self.intake, LambdaEvent::new(event, Context::default()))
                .await
            {
                Ok(record) => {
                    records.insert(id, record);
                    done.push(receipt);
                }
                Err(e) => warn!(event_id = %id, error = %e, "intake failed"),
            }
        }
        self.delete(&self.stack.intake_feed_url, done).await?;
        Ok(records)
    }

    /// Hands the dispatch queue to dispatch in batches of ten until no message is visible.
    /// Returns the messages handled, in order.
    pub async fn drain_dispatch(&self) -> Result<Vec<DispatchMessage>, LocalError> {
        let mut handled = Vec::new();
        loop {
            let messages = self.receive(&self.stack.dispatch_queue_url).await?;
            if messages.is_empty() {
                return Ok(handled);
            }
            let mut event = SqsEvent::default();
            for m in &messages {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                record.md5_of_body = m.md5_of_body.clone();
                record.event_source = Some("aws:sqs".into());
                record.aws_region = Some(REGION.into());
                event.records.push(record);
            }
            let response = herald_dispatch::handle(
                &self.dispatch,
                LambdaEvent::new(event, Context::default()),
            )
            .await
            .map_err(|e| LocalError::Handler(e.to_string()))?;
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            if !failed.is_empty() {
                info!(
                    count = failed.len(),
                    "dispatch reported failed records; they stay on the queue"
                );
            }
            let done = messages
                .iter()
                .filter(|m| !failed.contains(&m.message_id.as_deref().unwrap_or_default()))
                .filter_map(|m| m.receipt_handle.clone())
                .collect();
            self.delete(&self.stack.dispatch_queue_url, done).await?;
            handled.extend(
                messages
                    .iter()
                    .filter_map(|m| serde_json::from_str(m.body.as_deref()?).ok()),
            );
        }
    }

    /// Up to ten visible messages, without waiting (the emulator serves one request at a
    /// time, so a long poll would hold it).
    async fn receive(
        &self,
        queue_url: &str,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, LocalError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(|e| aws_error("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn delete(&self, queue_url: &str, receipts: Vec<String>) -> Result<(), LocalError> {
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LocalError::Aws(e.to_string()))?;
            self.sqs
                .delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("DeleteMessageBatch", e))?;
        }
        Ok(())
    }

    async fn report(
        &self,
        puts: &[Put],
        records: &HashMap<String, IntakeRecord>,
    ) -> Result<Vec<EventReport>, LocalError> {
        let sent = self.emulator.sent().await?;
        let mut reports = Vec::with_capacity(puts.len());
        for put in puts {
            let report = match put {
                Put::Refused {
                    detail_type,
                    reason,
                } => EventReport {
                    event_id: String::new(),
                    detail_type: detail_type.clone(),
                    outcome: "rejected".into(),
                    reason: Some(reason.clone()),
                    notifications: Vec::new(),
                    skipped: Vec::new(),
                },
                Put::Accepted {
                    event_id,
                    detail_type,
                    org,
                } => {
                    let record = match records.get(event_id) {
                        Some(r) => Some(r.clone()),
                        None => self
                            .store
                            .get_intake(org.as_ref(), event_id)
                            .await
                            .map_err(|e| LocalError::Aws(e.to_string()))?,
                    };
                    match record {
                        None => EventReport {
                            event_id: event_id.clone(),
                            detail_type: detail_type.clone(),
                            outcome: "rejected".into(),
                            reason: Some("the bus did not deliver the event to intake".into()),
                            notifications: Vec::new(),
                            skipped: Vec::new(),
                        },
                        Some(record) => self.event_report(&record, &sent).await?,
                    }
                }
            };
            reports.push(report);
        }
        Ok(reports)
    }

    async fn event_report(
        &self,
        record: &IntakeRecord,
        sent: &Sent,
    ) -> Result<EventReport, LocalError> {
        let mut notifications = Vec::new();
        if let Some(org) = &record.org_id {
            for id in &record.notifications {
                if let Some(n) = self
                    .store
                    .get(org, id)
                    .await
                    .map_err(|e| LocalError::Aws(e.to_string()))?
                {
                    notifications.push(self.notification_report(&n, sent).await?);
                }
            }
        }
        Ok(EventReport {
            event_id: record.event_id.clone(),
            detail_type: record.detail_type.clone(),
            outcome: record.outcome.as_str().into(),
            reason: record.reason.clone(),
            notifications,
            skipped: record.skipped.clone(),
        })
    }
}

impl LocalStack {
    /// A notification with its log and whether its customer's feed shows it.
    pub async fn notification_report(
        &self,
        n: &Notification,
        sent: &Sent,
    ) -> Result<NotificationReport, LocalError> {
        let views_error = |e: herald_core::ports::PortError| LocalError::Aws(e.to_string());
        let log = self
            .views
            .log(&n.org_id, &n.id)
            .await
            .map_err(views_error)?;
        let in_feed = match &n.recipient {
            Recipient::Customer(c) => self
                .views
                .feed(&n.org_id, c, FEED_LOOKUP)
                .await
                .map_err(views_error)?
                .iter()
                .any(|e| e.notification_id == n.id),
            Recipient::Operations => false,
        };
        let mut report = notification_report(n, sent);
        report.log = log
            .into_iter()
            .map(|l| LogReport {
                at: herald_core::time::format(&l.at),
                event: l.event,
                attempt: l.attempt,
                reason: l.reason,
            })
            .collect();
        report.in_feed = in_feed;
        Ok(report)
    }
}

/// How far back a customer's feed is searched for a notification in a report.
const FEED_LOOKUP: usize = 500;

/// The report of a notification: content as the provider got it when it was sent.
pub fn notification_report(n: &Notification, sent: &Sent) -> NotificationReport {
    let (subject, body) = n
        .provider_message_id
        .as_deref()
        .and_then(|id| sent.content_of(id))
        .unwrap_or_else(|| (n.subject.clone(), n.body.clone()));
    NotificationReport {
        id: n.id.to_string(),
        recipient: match &n.recipient {
            Recipient::Customer(c) => c.to_string(),
            Recipient::Operations => "operations".into(),
        },
        notification_type: n.notification_type.to_string(),
        channel: n.channel.to_string(),
        status: n.status.to_string(),
        scheduled_for: n.scheduled_for.as_ref().map(herald_core::time::format),
        subject: subject.or_else(|| n.subject.clone()),
        body,
        provider_message_id: n.provider_message_id.clone(),
        error: n.last_error.clone(),
        log: Vec::new(),
        in_feed: false,
    }
}

/// A PutEvents entry from an event envelope as in events/, or why it cannot be one.
fn entry(event: &Value, bus: &str) -> Result<PutEventsRequestEntry, String> {
    let field = |name: &str| {
        event
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let detail_type =
        field("detail-type").ok_or("not an EventBridge event: detail-type is missing")?;
    let source = field("source").ok_or("not an EventBridge event: source is missing")?;
    let detail = event
        .get("detail")
        .ok_or("not an EventBridge event: detail is missing")?;
    let mut builder = PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(source)
        .detail_type(detail_type)
        .detail(detail.to_string());
    if let Some(time) = field("time") {
        let parsed = chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|_| format!("time {time:?} is not RFC 3339"))?;
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
