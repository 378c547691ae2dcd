//! The dispatch function: SQS batches of notification ids in, sends out. Each record succeeds
//! or fails alone (`ReportBatchItemFailures`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use herald_adapters::config::{self, ConfigError};
use herald_adapters::emf::EmfMeter;
use herald_adapters::{
    DynamoBreakers, DynamoDirectory, DynamoNotificationStore, DynamoRateLimiter, DynamoViews,
    SecretsManagerSettings, SendGridSender, SendgridEmail, SesEmail, SesEmailSender,
    SnsPushEndpoints, SnsSmsSender, SqsDispatchQueue, TwilioSender, TwilioSms, TwilioWhatsapp,
};
use herald_core::breaker::{BreakerBoard, BreakerPolicy};
use herald_core::dispatch::{DEFAULT_LEASE, DispatchService, Senders};
use herald_core::model::{Channel, DeliveryService};
use herald_core::ports::{
    Clock, Directory, DispatchMessage, NoMeter, ProviderSettings, SystemClock,
};
use herald_core::providers::PushApplications;
use herald_core::push::PushSender;
use herald_core::rate_limit::RateLimits;
use herald_core::retry::RetryPolicy;
use herald_core::routing::Routing;
use lambda_runtime::{Error, LambdaEvent};
use tracing::{error, warn};

#[derive(Debug, Clone)]
pub struct Config {
    pub notifications_table: String,
    /// Consent is checked again here, as each notification leaves.
    pub directory_table: String,
    pub dispatch_queue_url: String,
    pub retry: RetryPolicy,
    pub ses_configuration_set: Option<String>,
    pub sms_sender_id: Option<String>,
    pub providers: ProvidersConfig,
    /// A push's badge is the customer's unread count in the feed.
    pub views_table: String,
    /// The deployment's SNS platform applications for organizations without their own
    /// (`HERALD_DEFAULT_FCM_APP_ARN`, `HERALD_DEFAULT_APNS_APP_ARN`).
    pub push_defaults: PushApplications,
    /// When a provider's circuit breaker opens and how long it cools
    /// (`HERALD_BREAKER_FAILURES`, `HERALD_BREAKER_COOLING_SECONDS`).
    pub breaker: BreakerPolicy,
    /// The CloudWatch namespace the metrics are written in (`HERALD_METRICS_NAMESPACE`,
    /// default `Herald`); none: not written.
    pub metrics_namespace: Option<String>,
}

/// Where organizations' provider settings live and where the HTTP providers are.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    /// Secrets are named `<prefix>/<org>`.
    pub secrets_prefix: String,
    pub sendgrid_base_url: String,
    pub twilio_base_url: String,
    /// The webhooks' public base URL, for Twilio's status callbacks.
    pub public_base_url: Option<String>,
    /// How long an organization's settings are trusted before they are read again.
    pub settings_ttl: Duration,
    /// The providers of each channel, in order, for organizations that set no routing
    /// (`HERALD_DEFAULT_ROUTING`, `email=sendgrid,ses;sms=twilio,sns`; the built-in one when
    /// unset).
    pub routing: Routing,
    /// The rate limits of each channel for organizations that set none of their own
    /// (`HERALD_DEFAULT_RATE_LIMITS`, `sms=5/s,10000/d;email=100/s`; none when unset).
    pub rate_limits: RateLimits,
}

impl ProvidersConfig {
    pub fn from_env() -> Result<ProvidersConfig, ConfigError> {
        Ok(ProvidersConfig {
            secrets_prefix: config::required("HERALD_PROVIDER_SECRETS_PREFIX")?,
            sendgrid_base_url: config::optional("HERALD_SENDGRID_BASE_URL")
                .unwrap_or_else(|| herald_adapters::sendgrid::DEFAULT_BASE_URL.into()),
            twilio_base_url: config::optional("HERALD_TWILIO_BASE_URL")
                .unwrap_or_else(|| herald_adapters::twilio::DEFAULT_BASE_URL.into()),
            public_base_url: config::optional("HERALD_PUBLIC_BASE_URL"),
            settings_ttl: config::parsed(
                "HERALD_PROVIDER_SETTINGS_TTL_SECONDS",
                herald_adapters::secrets::CACHE_TTL,
                |s: &str| s.parse::<u64>().map(Duration::from_secs),
            )?,
            routing: config::default_routing()?,
            rate_limits: config::default_rate_limits()?,
        })
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let defaults = RetryPolicy::default();
        let seconds = |s: &str| s.parse::<u64>().map(Duration::from_secs);
        let retry = RetryPolicy::new(
            config::parsed(
                "HERALD_RETRY_MAX_ATTEMPTS",
                defaults.max_attempts,
                str::parse,
            )?,
            config::parsed("HERALD_RETRY_BASE_SECONDS", defaults.base, seconds)?,
            config::parsed("HERALD_RETRY_FACTOR", defaults.factor, str::parse)?,
            config::parsed("HERALD_RETRY_CAP_SECONDS", defaults.cap, seconds)?,
        )
        .map_err(|e| ConfigError::Invalid {
            name: "HERALD_RETRY_*",
            message: e.to_string(),
        })?;
        let breaker_defaults = BreakerPolicy::default();
        let breaker = BreakerPolicy {
            failures_to_open: config::parsed(
                "HERALD_BREAKER_FAILURES",
                breaker_defaults.failures_to_open,
                |s: &str| s.parse::<u32>().map(|n| n.max(1)),
            )?,
            cooling: config::parsed(
                "HERALD_BREAKER_COOLING_SECONDS",
                breaker_defaults.cooling,
                seconds,
            )?,
            ..breaker_defaults
        };
        Ok(Config {
            notifications_table: config::required("HERALD_NOTIFICATIONS_TABLE")?,
            directory_table: config::required("HERALD_DIRECTORY_TABLE")?,
            dispatch_queue_url: config::required("HERALD_DISPATCH_QUEUE_URL")?,
            retry,
            ses_configuration_set: config::optional("HERALD_SES_CONFIGURATION_SET"),
            sms_sender_id: config::optional("HERALD_SMS_SENDER_ID"),
            providers: ProvidersConfig::from_env()?,
            views_table: config::required("HERALD_VIEWS_TABLE")?,
            push_defaults: PushApplications {
                fcm: config::optional("HERALD_DEFAULT_FCM_APP_ARN"),
                apns: config::optional("HERALD_DEFAULT_APNS_APP_ARN"),
            },
            breaker,
            metrics_namespace: Some(herald_adapters::emf::namespace_from_env()),
        })
    }
}

/// Builds the service with its clients; once per cold start.
pub fn service(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> DispatchService {
    let settings: Arc<dyn ProviderSettings> = Arc::new(
        SecretsManagerSettings::new(
            aws_sdk_secretsmanager::Client::new(aws),
            &config.providers.secrets_prefix,
        )
        .with_ttl(config.providers.settings_ttl),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let dynamo_breakers = dynamo.clone();
    let dynamo_limits = dynamo.clone();
    let directory: Arc<dyn Directory> = Arc::new(DynamoDirectory::new(
        dynamo.clone(),
        &config.directory_table,
    ));
    DispatchService {
        store: Arc::new(DynamoNotificationStore::new(
            dynamo.clone(),
            &config.notifications_table,
        )),
        directory: directory.clone(),
        queue: Arc::new(SqsDispatchQueue::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dispatch_queue_url,
        )),
        senders: senders(
            config,
            aws,
            &settings,
            directory.clone(),
            dynamo,
            clock.clone(),
        ),
        settings,
        routing: config.providers.routing.clone(),
        breakers: BreakerBoard::new(
            Arc::new(DynamoBreakers::new(
                dynamo_breakers,
                &config.directory_table,
            )),
            config.breaker,
        ),
        limits: config.providers.rate_limits.clone(),
        meter: match &config.metrics_namespace {
            Some(namespace) => Arc::new(EmfMeter::stdout(namespace)),
            None => Arc::new(NoMeter),
        },
        rate_limiter: Arc::new(DynamoRateLimiter::new(
            dynamo_limits,
            &config.directory_table,
        )),
        clock,
        chance: Arc::new(herald_core::ports::SystemChance),
        policy: config.retry.clone(),
        lease: DEFAULT_LEASE,
    }
}

/// A sender for each provider on each channel it serves.
fn senders(
    config: &Config,
    aws: &aws_config::SdkConfig,
    settings: &Arc<dyn ProviderSettings>,
    directory: Arc<dyn Directory>,
    dynamo: aws_sdk_dynamodb::Client,
    clock: Arc<dyn Clock>,
) -> Senders {
    let http = herald_adapters::http_client();
    let sns = aws_sdk_sns::Client::new(aws);
    let twilio = || {
        TwilioSender::new(
            http.clone(),
            &config.providers.twilio_base_url,
            config.providers.public_base_url.clone(),
        )
    };
    Senders::new()
        .with(
            Channel::Email,
            DeliveryService::Ses,
            Arc::new(SesEmail {
                ses: SesEmailSender::new(
                    aws_sdk_sesv2::Client::new(aws),
                    config.ses_configuration_set.clone(),
                ),
                settings: settings.clone(),
            }),
        )
        .with(
            Channel::Email,
            DeliveryService::Sendgrid,
            Arc::new(SendgridEmail {
                sendgrid: SendGridSender::new(http.clone(), &config.providers.sendgrid_base_url),
                settings: settings.clone(),
            }),
        )
        .with(
            Channel::Sms,
            DeliveryService::Sns,
            Arc::new(SnsSmsSender::new(sns.clone(), config.sms_sender_id.clone())),
        )
        .with(
            Channel::Sms,
            DeliveryService::Twilio,
            Arc::new(TwilioSms {
                twilio: twilio(),
                settings: settings.clone(),
            }),
        )
        .with(
            Channel::Whatsapp,
            DeliveryService::Twilio,
            Arc::new(TwilioWhatsapp {
                twilio: twilio(),
                settings: settings.clone(),
            }),
        )
        .with(
            Channel::Push,
            DeliveryService::Sns,
            Arc::new(PushSender {
                endpoints: Arc::new(SnsPushEndpoints::new(sns)),
                directory,
                views: Arc::new(DynamoViews::new(dynamo, &config.views_table)),
                settings: settings.clone(),
                defaults: config.push_defaults.clone(),
                clock,
            }),
        )
}

pub async fn service_from_env() -> Result<DispatchService, Error> {
    let config = Config::from_env()?;
    let aws = config::aws().await?;
    Ok(service(&config, &aws, Arc::new(SystemClock)))
}

/// The Lambda handler: the batch's well-formed records are dispatched together (one directory
/// read for all their recipients, sends concurrently); the failed ones are reported, each alone.
pub async fn handle(
    service: &DispatchService,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let records = &event.payload.records;
    let mut failed: Vec<&SqsMessage> = Vec::new();
    let mut messages = Vec::with_capacity(records.len());
    let mut dispatched = Vec::with_capacity(records.len());
    for record in records {
        match serde_json::from_str::<DispatchMessage>(record.body.as_deref().unwrap_or_default()) {
            Ok(m) => {
                messages.push(m);
                dispatched.push(record);
            }
            Err(e) => {
                // Reported failed so SQS moves it to the dead-letter queue after its receives.
                let message_id = record.message_id.as_deref().unwrap_or_default();
                warn!(message_id, reason = %e, "malformed dispatch message");
                failed.push(record);
            }
        }
    }
    match AssertUnwindSafe(service.dispatch_batch(&messages))
        .catch_unwind()
        .await
    {
        Ok(results) => {
            for ((record, message), result) in dispatched.into_iter().zip(&messages).zip(results) {
                if let Err(e) = result {
                    let message_id = record.message_id.as_deref().unwrap_or_default();
                    error!(message_id, notification_id = %message.notification_id, error = %e, "dispatch failed");
                    failed.push(record);
                }
            }
        }
        Err(_) => {
            error!("dispatch panicked; the batch is released for another attempt");
            failed.extend(dispatched);
        }
    }
    Ok(herald_adapters::sqs::batch_response(failed))
}
