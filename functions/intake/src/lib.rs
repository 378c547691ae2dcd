//! The intake function: EventBridge events in, notifications out. The bus's rule puts the
//! events on the intake queue and Lambda hands them over in SQS batches, so a batch's events
//! share their reads and writes; each event succeeds or fails alone
//! (`ReportBatchItemFailures`).
//!
//! The handler is a library so that the local stack and the tests run exactly the code the
//! Lambda runs.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use herald_adapters::config::{self, ConfigError};
use herald_adapters::{
    DynamoDirectory, DynamoNotificationStore, DynamoTemplates, SecretsManagerSettings,
    SnsPushEndpoints, SqsDispatchQueue,
};
use herald_core::event::EventEnvelope;
use herald_core::ids::EmailAddress;
use herald_core::intake::{IntakeConfig, IntakeService};
use herald_core::ports::{Clock, SystemClock};
use herald_core::providers::PushApplications;
use herald_core::push::DeviceEndpoints;
use herald_core::record::IntakeRecord;
use herald_core::template::Catalog;
use herald_core::template::cache::OrgTemplateCache;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use tracing::{error, warn};

/// Where intake reads and writes.
#[derive(Debug, Clone)]
pub struct Config {
    pub notifications_table: String,
    pub directory_table: String,
    /// The organizations' own templates.
    pub templates_table: String,
    pub dispatch_queue_url: String,
    pub default_sender: EmailAddress,
    /// Organizations' provider settings (their push platform applications): `<prefix>/<org>`.
    pub provider_secrets_prefix: String,
    /// How long an organization's settings are trusted before they are read again.
    pub settings_ttl: std::time::Duration,
    /// The deployment's push platform applications, for organizations without their own.
    pub push_defaults: PushApplications,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            notifications_table: config::required("HERALD_NOTIFICATIONS_TABLE")?,
            directory_table: config::required("HERALD_DIRECTORY_TABLE")?,
            templates_table: config::required("HERALD_TEMPLATES_TABLE")?,
            dispatch_queue_url: config::required("HERALD_DISPATCH_QUEUE_URL")?,
            default_sender: EmailAddress::parse(config::required("HERALD_DEFAULT_SENDER")?)
                .map_err(|e| ConfigError::Invalid {
                    name: "HERALD_DEFAULT_SENDER",
                    message: e.0,
                })?,
            provider_secrets_prefix: config::required("HERALD_PROVIDER_SECRETS_PREFIX")?,
            settings_ttl: herald_adapters::secrets::CACHE_TTL,
            push_defaults: PushApplications {
                fcm: config::optional("HERALD_DEFAULT_FCM_APP_ARN"),
                apns: config::optional("HERALD_DEFAULT_APNS_APP_ARN"),
            },
        })
    }
}

/// Builds the service with its clients; once per cold start.
pub fn service(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<IntakeService, Error> {
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let catalog = Arc::new(Catalog::embedded()?);
    Ok(IntakeService {
        store: Arc::new(DynamoNotificationStore::new(
            dynamo.clone(),
            &config.notifications_table,
        )),
        directory: Arc::new(DynamoDirectory::new(
            dynamo.clone(),
            &config.directory_table,
        )),
        queue: Arc::new(SqsDispatchQueue::new(sqs, &config.dispatch_queue_url)),
        org_templates: Arc::new(OrgTemplateCache::new(
            Arc::new(DynamoTemplates::new(dynamo, &config.templates_table)),
            catalog.clone(),
            clock.clone(),
        )),
        catalog,
        clock,
        config: IntakeConfig {
            default_sender: config.default_sender.clone(),
        },
        device_endpoints: Some(Arc::new(DeviceEndpoints {
            endpoints: Arc::new(SnsPushEndpoints::new(aws_sdk_sns::Client::new(aws))),
            settings: Arc::new(
                SecretsManagerSettings::new(
                    aws_sdk_secretsmanager::Client::new(aws),
                    &config.provider_secrets_prefix,
                )
                .with_ttl(config.settings_ttl),
            ),
            defaults: config.push_defaults.clone(),
        })),
    })
}

/// The service as the Lambda builds it: configuration from the environment, the system clock.
pub async fn service_from_env() -> Result<IntakeService, Error> {
    let config = Config::from_env()?;
    let aws = config::aws().await?;
    service(&config, &aws, Arc::new(SystemClock))
}

/// Converts the Lambda's event into the core's envelope.
pub fn envelope(event: &EventBridgeEvent<Value>) -> EventEnvelope {
    EventEnvelope {
        id: event.id.clone().unwrap_or_default(),
        detail_type: event.detail_type.clone(),
        source: event.source.clone(),
        time: event.time,
        detail: event.detail.clone(),
    }
}

/// What became of an SQS batch of events: the answer to Lambda (the messages to hand over
/// again), and the record of each event handled.
#[derive(Debug, Default)]
pub struct Handled {
    pub response: SqsBatchResponse,
    pub records: Vec<IntakeRecord>,
}

/// Handles a batch of messages from the intake queue. A message that is not an EventBridge
/// event, or whose event failed on the infrastructure, is reported failed: Lambda hands it
/// over again, and after the queue's receives moves it to the dead-letter queue. A rejected
/// event is an outcome (recorded, not retried).
pub async fn handle_messages(service: &IntakeService, messages: &[SqsMessage]) -> Handled {
    let mut failed: Vec<&SqsMessage> = Vec::new();
    let mut envelopes = Vec::with_capacity(messages.len());
    let mut carried = Vec::with_capacity(messages.len());
    for message in messages {
        let body = message.body.as_deref().unwrap_or_default();
        match serde_json::from_str::<EventBridgeEvent<Value>>(body) {
            Ok(event) => {
                envelopes.push(envelope(&event));
                carried.push(message);
            }
            Err(e) => {
                let message_id = message.message_id.as_deref().unwrap_or_default();
                warn!(message_id, reason = %e, "the intake queue held something that is not an EventBridge event");
                failed.push(message);
            }
        }
    }
    let mut records = Vec::with_capacity(envelopes.len());
    match AssertUnwindSafe(service.handle_batch(&envelopes))
        .catch_unwind()
        .await
    {
        Ok(results) => {
            for ((message, envelope), result) in carried.into_iter().zip(&envelopes).zip(results) {
                match result {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        error!(event_id = %envelope.id, error = %e, "intake failed");
                        failed.push(message);
                    }
                }
            }
        }
        Err(_) => {
            error!("intake panicked; the batch is handed over again");
            failed.extend(carried);
        }
    }
    Handled {
        response: herald_adapters::sqs::batch_response(failed),
        records,
    }
}

/// The Lambda handler.
pub async fn handle(
    service: &IntakeService,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(handle_messages(service, &event.payload.records)
        .await
        .response)
}
