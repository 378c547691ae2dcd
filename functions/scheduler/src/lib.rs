//! The scheduler function: on an EventBridge schedule (every minute), enqueues the
//! notifications that have come due.

use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use herald_adapters::config::{self, ConfigError};
use herald_adapters::{DynamoNotificationStore, SqsDispatchQueue};
use herald_core::ports::Meter;
use herald_core::ports::{Clock, SystemClock};
use herald_core::scheduler::{SchedulerService, SweepConfig, SweepReport};
use herald_core::telemetry::{Measure, Metric};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Config {
    pub notifications_table: String,
    pub dispatch_queue_url: String,
    pub sweep: SweepConfig,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let defaults = SweepConfig::default();
        Ok(Config {
            notifications_table: config::required("HERALD_NOTIFICATIONS_TABLE")?,
            dispatch_queue_url: config::required("HERALD_DISPATCH_QUEUE_URL")?,
            sweep: SweepConfig {
                budget: config::parsed("HERALD_SWEEP_BUDGET", defaults.budget, str::parse)?,
                ..defaults
            },
        })
    }
}

/// Builds the service with its clients; once per cold start.
pub fn service(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> SchedulerService {
    SchedulerService {
        index: Arc::new(DynamoNotificationStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            &config.notifications_table,
        )),
        queue: Arc::new(SqsDispatchQueue::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dispatch_queue_url,
        )),
        clock,
        config: config.sweep.clone(),
    }
}

pub async fn service_from_env() -> Result<SchedulerService, Error> {
    let config = Config::from_env()?;
    let aws = config::aws().await?;
    Ok(service(&config, &aws, Arc::new(SystemClock)))
}

/// The Lambda handler. The schedule's event carries nothing Herald needs: the clock decides
/// what is due. A sweep that ran out of budget leaves the rest to the next tick and says so.
/// How late it was is measured (`SchedulerLag`, seconds): the alarm on a sweep falling behind.
pub async fn handle(
    service: &SchedulerService,
    meter: &dyn Meter,
    _event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<SweepReport, Error> {
    let report = service.sweep().await?;
    // seconds of lag: exact in an f64
    meter.record(vec![Measure::of(
        Metric::SchedulerLag,
        report.lag_seconds.max(0) as f64,
    )]);
    Ok(report)
}
