//! Drives the real handlers from the real event sources: events go onto the bus with
//! PutEvents, the bus rule delivers them to a queue, and from there they are handed to intake
//! as EventBridge events; the dispatch queue is drained through dispatch in SQS batches.

use std::sync::Arc;

use crate::stream::StreamReader;
use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use std::collections::VecDeque;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use chrono::{DateTime, Utc};
use herald_adapters::DynamoNotificationStore;
use herald_adapters::DynamoViews;
use herald_core::dispatch::DispatchService;
use herald_core::ids::EmailAddress;
use herald_core::intake::IntakeService;
use herald_core::lifecycle_events::LifecycleSelection;
use herald_core::ports::{DispatchMessage, ManualClock, NotificationStore};
use herald_core::retry::RetryPolicy;
use herald_core::scheduler::{SchedulerService, SweepConfig};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use tracing::{info, warn};

use crate::emulator::{Emulator, REGION};
use crate::error::LocalError;
use crate::requests::{Component, RequestLog};
use crate::stack::{DEFAULT_SENDER, Stack};
use crate::stand_ins::StandIns;

mod bus;
mod report;

pub use bus::EnvelopeError;
pub use report::{
    EventReport, FeedsRead, LogReport, NotificationReport, PublishedEvent, TickReport,
    notification_report,
};

/// How long a received intake queue message stays hidden from the next receive.
const INTAKE_HIDDEN_SECONDS: i32 = 300;
/// How long a received dispatch message waits hidden for its turn.
const DISPATCH_HIDDEN_SECONDS: i32 = 300;

/// The most stream records one projector invocation gets (template.yaml's BatchSize).
const STREAM_BATCH: usize = 100;

pub struct LocalStack {
    pub emulator: Emulator,
    pub aws: SdkConfig,
    pub stack: Stack,
    pub intake: IntakeService,
    pub dispatch: DispatchService,
    pub scheduler: SchedulerService,
    /// The projector's views (the projector writes through them).
    pub views: DynamoViews,
    /// The same views read by the local stack's reports (its requests are not the projector's).
    report_views: DynamoViews,
    /// The projector: the views, the stage's bus, and the open connections when served.
    pub projector: herald_projector::Projector,
    pub options: Options,
    pub store: DynamoNotificationStore,
    /// The handlers' clock: the system's, or the time a `tick --at` runs at.
    pub clock: Arc<ManualClock>,
    /// SendGrid and Twilio as the local stack plays them, when it does: their callbacks are
    /// delivered after each dispatch.
    pub providers: Option<StandIns>,
    /// Every AWS request the functions (and the local plumbing) made, by who made it.
    pub requests: RequestLog,
    /// The embedded-metric-format documents dispatch and the projector wrote, as they would
    /// log them.
    pub metrics: Arc<std::sync::Mutex<Vec<u8>>>,
    /// The dispatch queue as its event source mapping reads it (its requests are billed).
    dispatch_queue: aws_sdk_sqs::Client,
    /// The intake queue as its event source mapping reads it (its requests are billed).
    intake_queue: aws_sdk_sqs::Client,
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
    /// The deployment's push platform applications, for organizations without their own.
    pub push_defaults: herald_core::providers::PushApplications,
    /// Faults injected into dispatch's AWS requests (`herald-local chaos`); none by default.
    pub dispatch_faults: Option<crate::faults::Faults>,
    /// The life-cycle events the projector publishes (`HERALD_LIFECYCLE_EVENTS`; all by default).
    pub lifecycle_events: LifecycleSelection,
    /// When dispatch's circuit breakers open, and for how long.
    pub breaker: herald_core::breaker::BreakerPolicy,
    /// The deployment's rate limits (none by default).
    pub rate_limits: herald_core::rate_limit::RateLimits,
    /// Where the WebSocket API's connections are posted to (`HERALD_WEBSOCKET_ENDPOINT`; the
    /// served stack's own): the projector tells them of their feeds' changes.
    pub websocket_endpoint: Option<String>,
}

impl Options {
    /// Where the stage's connections are posted to, when they are.
    pub fn realtime(
        &self,
        names: &crate::stack::Names,
    ) -> Option<herald_adapters::websocket::RealtimeConfig> {
        Some(herald_adapters::websocket::RealtimeConfig {
            connections_table: names.connections_table(),
            websocket_endpoint: self.websocket_endpoint.clone()?,
        })
    }
}

/// A setting from the environment, when set and not empty.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Default for Options {
    fn default() -> Self {
        let env = setting;
        Options {
            retry: RetryPolicy::default(),
            sendgrid_base_url: env("HERALD_SENDGRID_BASE_URL")
                .unwrap_or_else(|| herald_adapters::sendgrid::DEFAULT_BASE_URL.into()),
            twilio_base_url: env("HERALD_TWILIO_BASE_URL")
                .unwrap_or_else(|| herald_adapters::twilio::DEFAULT_BASE_URL.into()),
            public_base_url: env("HERALD_PUBLIC_BASE_URL"),
            settings_ttl: herald_adapters::secrets::CACHE_TTL,
            push_defaults: herald_core::providers::PushApplications::default(),
            dispatch_faults: None,
            lifecycle_events: LifecycleSelection::all(),
            breaker: herald_core::breaker::BreakerPolicy::default(),
            rate_limits: Default::default(),
            websocket_endpoint: env("HERALD_WEBSOCKET_ENDPOINT"),
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
            routing: herald_core::routing::Routing::builtin(),
            rate_limits: options.rate_limits.clone(),
        },
        views_table: stack.names.views_table(),
        push_defaults: options.push_defaults.clone(),
        breaker: options.breaker,
        // the local stack keeps its dispatcher's metrics itself (`LocalStack::metrics`)
        metrics_namespace: None,
    }
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
            EmailAddress::parse(DEFAULT_SENDER).map_err(|e| LocalError::handler("intake", e))?;
        let intake_config = herald_intake::Config {
            notifications_table: stack.names.notifications_table(),
            directory_table: stack.names.directory_table(),
            templates_table: stack.names.templates_table(),
            dispatch_queue_url: stack.dispatch_queue_url.clone(),
            default_sender,
            provider_secrets_prefix: stack.names.provider_secrets_prefix(),
            settings_ttl: options.settings_ttl,
            push_defaults: options.push_defaults.clone(),
        };
        // each function's requests are counted apart (crate::requests)
        let requests = RequestLog::default();
        let counted = |component| emulator.counted_config(component, &requests);
        let intake = herald_intake::service(
            &intake_config,
            &counted(Component::Intake).await,
            clock.clone(),
        )
        .map_err(|e| LocalError::handler("intake", e))?;
        let dispatch_config = dispatch_config(&stack, &options);
        let dispatch_aws = emulator
            .counted_config_with(
                Component::Dispatch,
                &requests,
                options.dispatch_faults.clone(),
            )
            .await;
        let mut dispatch = herald_dispatch::service(&dispatch_config, &dispatch_aws, clock.clone());
        // the metrics the functions would log, kept to read back
        let metrics = Arc::new(std::sync::Mutex::new(Vec::new()));
        let meter = Arc::new(herald_adapters::emf::EmfMeter::buffer(
            &format!("Herald/{stage}"),
            metrics.clone(),
        ));
        dispatch.meter = meter.clone();
        let scheduler_config = herald_scheduler::Config {
            notifications_table: stack.names.notifications_table(),
            dispatch_queue_url: stack.dispatch_queue_url.clone(),
            sweep: SweepConfig::default(),
        };
        let scheduler = herald_scheduler::service(
            &scheduler_config,
            &counted(Component::Scheduler).await,
            clock.clone(),
        );
        let projector_config = herald_projector::Config {
            views_table: stack.names.views_table(),
            event_bus: stack.names.bus(),
            lifecycle_events: options.lifecycle_events.clone(),
            metrics_namespace: format!("Herald/{stage}"),
            realtime: options.realtime(&stack.names),
        };
        let projector_aws = counted(Component::Projector).await;
        let views = herald_projector::views(&projector_config, &projector_aws);
        let projector = herald_projector::Projector {
            views: Arc::new(views.clone()),
            bus: Arc::new(herald_projector::publisher(
                &projector_config,
                &projector_aws,
            )),
            publishing: options.lifecycle_events.clone(),
            meter: meter.clone(),
            realtime: projector_config
                .realtime
                .as_ref()
                .map(|r| r.realtime(&projector_aws)),
        };
        let dispatch_queue = aws_sdk_sqs::Client::new(&counted(Component::DispatchQueue).await);
        let intake_queue = aws_sdk_sqs::Client::new(&counted(Component::IntakeQueue).await);
        let local = counted(Component::Local).await;
        let report_views = herald_projector::views(&projector_config, &local);
        Ok(LocalStack {
            metrics,
            report_views,
            options,
            requests,
            dispatch_queue,
            intake_queue,
            providers: None,
            stream: StreamReader::new(&local, stack.names.notifications_table()),
            scheduler,
            views,
            projector,
            clock,
            store: DynamoNotificationStore::new(
                aws_sdk_dynamodb::Client::new(&local),
                stack.names.notifications_table(),
            ),
            sqs: aws_sdk_sqs::Client::new(&local),
            events: aws_sdk_eventbridge::Client::new(&local),
            emulator,
            aws,
            stack,
            intake,
            dispatch,
        })
    }

    /// The environment that points a function (`cargo lambda watch`) at this stack.
    pub fn function_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", self.emulator.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "local".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "local".to_string()),
            (
                "HERALD_NOTIFICATIONS_TABLE",
                self.stack.names.notifications_table(),
            ),
            ("HERALD_DIRECTORY_TABLE", self.stack.names.directory_table()),
            ("HERALD_TEMPLATES_TABLE", self.stack.names.templates_table()),
            // not read by a function: where to put events (`aws events put-events`)
            ("HERALD_EVENT_BUS_NAME", self.stack.names.bus()),
            (
                "HERALD_DISPATCH_QUEUE_URL",
                self.stack.dispatch_queue_url.clone(),
            ),
            ("HERALD_DEFAULT_SENDER", DEFAULT_SENDER.to_string()),
            ("HERALD_VIEWS_TABLE", self.stack.names.views_table()),
            ("HERALD_EVENT_BUS", self.stack.names.bus()),
            (
                "HERALD_PROVIDER_SECRETS_PREFIX",
                self.stack.names.provider_secrets_prefix(),
            ),
            (
                "HERALD_SENDGRID_BASE_URL",
                self.options.sendgrid_base_url.clone(),
            ),
            (
                "HERALD_TWILIO_BASE_URL",
                self.options.twilio_base_url.clone(),
            ),
        ];
        if let Some(base) = &self.options.public_base_url {
            env.push(("HERALD_PUBLIC_BASE_URL", base.clone()));
        }
        env
    }

    /// Puts the events on the bus, runs them through intake and dispatch to the end, and
    /// reports each, in order.
    pub async fn run(&self, events: &[Value]) -> Result<Vec<EventReport>, LocalError> {
        let puts = self.put_events(events).await?;
        let records = self.pump_intake(&puts).await?;
        self.drain_dispatch().await?;
        self.hear_from_providers().await;
        self.tick(None).await?;
        let mut reports = self.report(&puts, &records).await?;
        let published = self.drain_published().await?;
        for report in &mut reports {
            report.published = published
                .iter()
                .filter(|p| {
                    report
                        .notifications
                        .iter()
                        .any(|n| n.id == p.notification_id)
                })
                .cloned()
                .collect();
        }
        Ok(reports)
    }

    /// Takes what reached the local stack's queue on `source: herald`: the life-cycle events
    /// Herald published, in the order they arrived.
    pub async fn drain_published(&self) -> Result<Vec<PublishedEvent>, LocalError> {
        let mut published = Vec::new();
        loop {
            let messages = self.receive(&self.stack.published_url).await?;
            if messages.is_empty() {
                return Ok(published);
            }
            let mut receipts = Vec::new();
            for m in messages {
                receipts.extend(m.receipt_handle.clone());
                match m.body.as_deref().map(PublishedEvent::from_envelope) {
                    Some(Ok(event)) => published.push(event),
                    _ => warn!(
                        message_id = ?m.message_id,
                        "a message on the published queue is not a life-cycle event"
                    ),
                }
            }
            self.delete(&self.stack.published_url, receipts).await?;
        }
    }

    /// The scheduler's sweep, the dispatch that follows it and the projection of what
    /// changed, as if the clock read `at` (now when `None`). The emulator's schedules never
    /// fire, so the local stack ticks the scheduler itself.
    pub async fn tick(&self, at: Option<DateTime<Utc>>) -> Result<TickReport, LocalError> {
        self.clock.set(at);
        let result = async {
            self.requests.invoked(Component::Scheduler);
            let sweep = self.scheduler.sweep().await?;
            let handled = self.drain_dispatch().await?;
            self.hear_from_providers().await;
            self.project().await?;
            let sent = self.emulator.sent().await?;
            let feeds = FeedsRead::default();
            let mut notifications = Vec::new();
            for m in handled {
                if let Some(n) = self.store.get(&m.org_id, &m.notification_id).await? {
                    notifications.push(self.notification_report(&n, &sent, &feeds).await?);
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

    /// The providers' callbacks about what dispatch just sent, when the stand-ins play the
    /// providers: posted to the webhooks now that the sends are recorded.
    pub async fn hear_from_providers(&self) {
        if let Some(providers) = &self.providers {
            let delivery = providers.deliver_callbacks().await;
            if delivery.pending + delivery.abandoned > 0 {
                warn!(?delivery, "provider callbacks the webhooks did not take");
            }
        }
    }

    /// Hands the stream records written since the last call to the projector.
    pub async fn project(&self) -> Result<usize, LocalError> {
        let mut event = self.stream.read().await?;
        let records = std::mem::take(&mut event.records);
        let count = records.len();
        // the event source mapping's batches (template.yaml: BatchSize 100)
        for chunk in records.chunks(STREAM_BATCH) {
            let mut batch = event.clone();
            batch.records = chunk.to_vec();
            self.requests.invoked(Component::Projector);
            let response = herald_projector::handle(
                &self.projector,
                LambdaEvent::new(batch, Context::default()),
            )
            .await
            .map_err(|e| LocalError::handler("projector", e))?;
            if !response.batch_item_failures.is_empty() {
                warn!(
                    count = response.batch_item_failures.len(),
                    "stream records the projector could not project"
                );
            }
        }
        Ok(count)
    }

    /// Hands the dispatch queue to dispatch in batches of ten until no message is visible.
    /// Returns the messages handled, in order.
    ///
    /// The dispatch queue is a fair queue in AWS: its messages are grouped by organization,
    /// and when one organization has a backlog SQS hands out the others' messages first. The
    /// emulator's queue is plain, so this plays that part: it takes every visible message and
    /// hands them over taking each organization in turn.
    pub async fn drain_dispatch(&self) -> Result<Vec<DispatchMessage>, LocalError> {
        let mut handled = Vec::new();
        loop {
            let visible = self.receive_all(&self.stack.dispatch_queue_url).await?;
            if visible.is_empty() {
                return Ok(handled);
            }
            for batch in fair_order(visible).chunks(10) {
                self.dispatch_batch(batch).await?;
                handled.extend(
                    batch
                        .iter()
                        .filter_map(|m| serde_json::from_str(m.body.as_deref()?).ok()),
                );
            }
        }
    }

    /// One dispatch invocation with these messages; deletes those it did not report failed.
    async fn dispatch_batch(&self, messages: &[Message]) -> Result<(), LocalError> {
        let event = sqs_event(messages);
        self.requests.invoked(Component::Dispatch);
        let response =
            herald_dispatch::handle(&self.dispatch, LambdaEvent::new(event, Context::default()))
                .await
                .map_err(|e| LocalError::handler("dispatch", e))?;
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
        self.delete(&self.stack.dispatch_queue_url, done).await
    }

    /// Every visible message of the queue, with its group, hidden while it is handed over.
    async fn receive_all(&self, queue_url: &str) -> Result<Vec<Message>, LocalError> {
        let mut all = Vec::new();
        loop {
            let out = self
                .queue_client(queue_url)
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(DISPATCH_HIDDEN_SECONDS)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(|e| LocalError::aws("ReceiveMessage", e))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(all);
            }
            all.extend(messages);
        }
    }

    /// The client that reads a queue: the intake or dispatch queue's event source, or the
    /// local stack's.
    fn queue_client(&self, queue_url: &str) -> &aws_sdk_sqs::Client {
        if queue_url == self.stack.dispatch_queue_url {
            &self.dispatch_queue
        } else if queue_url == self.stack.intake_queue_url {
            &self.intake_queue
        } else {
            &self.sqs
        }
    }

    /// Up to ten visible messages, without waiting (the emulator serves one request at a
    /// time, so a long poll would hold it).
    async fn receive(
        &self,
        queue_url: &str,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, LocalError> {
        // the intake queue's messages stay hidden while a long run gathers the rest before
        // handing them over in order (the queue's own 30 seconds would bring them back)
        let hidden_for =
            (queue_url == self.stack.intake_queue_url).then_some(INTAKE_HIDDEN_SECONDS);
        let out = self
            .queue_client(queue_url)
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .set_visibility_timeout(hidden_for)
            .send()
            .await
            .map_err(|e| LocalError::aws("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn delete(&self, queue_url: &str, receipts: Vec<String>) -> Result<(), LocalError> {
        delete_messages(self.queue_client(queue_url), queue_url, receipts).await
    }
}

/// Messages in the order a fair queue hands them out: a message of each group in turn, each
/// group's in the order received (messages without a group form one group).
pub(crate) fn fair_order(messages: Vec<Message>) -> Vec<Message> {
    let mut groups: Vec<(Option<String>, VecDeque<Message>)> = Vec::new();
    for m in messages {
        let group = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
            .cloned();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, queue)) => queue.push_back(m),
            None => groups.push((group, VecDeque::from([m]))),
        }
    }
    let mut ordered = Vec::new();
    while groups.iter().any(|(_, q)| !q.is_empty()) {
        for (_, queue) in &mut groups {
            ordered.extend(queue.pop_front());
        }
    }
    ordered
}

/// An SQS event of these received messages, as the event source mapping hands them over.
pub(crate) fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for m in messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.md5_of_body = m.md5_of_body.clone();
        record.event_source = Some("aws:sqs".into());
        record.aws_region = Some(REGION.into());
        event.records.push(record);
    }
    event
}

/// Deletes these messages, ten a request, as the event source mapping does after a clean
/// answer.
pub(crate) async fn delete_messages(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: Vec<String>,
) -> Result<(), LocalError> {
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
            .map_err(|e| LocalError::aws("DeleteMessageBatch", e))?;
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| LocalError::aws("DeleteMessageBatch", e))?;
    }
    Ok(())
}
