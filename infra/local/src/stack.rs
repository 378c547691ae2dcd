//! The resources of `infra/template.yaml`, stood up on the emulator under a stage name.
//! A test (`tests/tests/stack_matches_template.rs`) checks that the two agree.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use thiserror::Error;

/// A resource that could not be created, and the emulator's answer (with its code and message).
#[derive(Debug, Error)]
#[error("creating {resource}: {}", aws_sdk_sqs::error::DisplayErrorContext(.source.as_ref()))]
pub struct StackError {
    pub resource: String,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn failed(resource: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StackError {
    StackError {
        resource: resource.to_string(),
        source: e.into(),
    }
}

/// The dispatch queue's visibility timeout: six times the function timeout (template.yaml).
pub const DISPATCH_VISIBILITY_TIMEOUT: u32 = 180;
/// Receives before a poison dispatch message moves to the dead-letter queue.
pub const DISPATCH_MAX_RECEIVES: u32 = 5;
/// Receives before an event intake keeps failing on moves to the intake dead-letter queue.
pub const INTAKE_MAX_RECEIVES: u32 = 5;
/// The rule's pattern: every event on Herald's own bus goes to intake, except the life-cycle
/// events Herald publishes there itself (`source: herald`).
pub const INTAKE_PATTERN: &str = r#"{"source":[{"anything-but":"herald"}]}"#;
/// The local stack's own rule: Herald's life-cycle events, to a queue it reads after a run.
pub const PUBLISHED_PATTERN: &str = r#"{"source":["herald"]}"#;
/// The SES identity the default sender belongs to.
pub const SENDER_DOMAIN: &str = "herald.example";
pub const DEFAULT_SENDER: &str = "notifications@herald.example";
pub const DEAD_LETTERS_INDEX: &str = "dead_letters";
pub const DUE_INDEX: &str = herald_adapters::dynamo::DUE_INDEX;
pub const PROVIDER_MESSAGE_INDEX: &str = herald_adapters::dynamo::PROVIDER_MESSAGE_INDEX;

/// The names of one stage's resources, as template.yaml names them.
#[derive(Debug, Clone)]
pub struct Names {
    pub stage: String,
}

impl Names {
    pub fn new(stage: impl Into<String>) -> Self {
        Names {
            stage: stage.into(),
        }
    }
    pub fn bus(&self) -> String {
        format!("herald-{}", self.stage)
    }
    pub fn notifications_table(&self) -> String {
        format!("herald-{}-notifications", self.stage)
    }
    pub fn directory_table(&self) -> String {
        format!("herald-{}-directory", self.stage)
    }
    pub fn dispatch_queue(&self) -> String {
        format!("herald-{}-dispatch", self.stage)
    }
    pub fn dispatch_dlq(&self) -> String {
        format!("herald-{}-dispatch-dlq", self.stage)
    }
    pub fn intake_dlq(&self) -> String {
        format!("herald-{}-intake-dlq", self.stage)
    }
    pub fn views_table(&self) -> String {
        format!("herald-{}-views", self.stage)
    }
    pub fn templates_table(&self) -> String {
        format!("herald-{}-templates", self.stage)
    }
    /// The open WebSocket connections, by customer.
    pub fn connections_table(&self) -> String {
        format!("herald-{}-connections", self.stage)
    }
    pub fn projector_dlq(&self) -> String {
        format!("herald-{}-projector-dlq", self.stage)
    }
    /// Each organization's provider settings are the secret `<prefix>/<org>`.
    pub fn provider_secrets_prefix(&self) -> String {
        format!("herald/{}/providers", self.stage)
    }
    pub fn intake_rule(&self) -> String {
        format!("herald-{}-intake", self.stage)
    }
    /// The rule's target: the queue intake takes its events from, in batches.
    pub fn intake_queue(&self) -> String {
        format!("herald-{}-intake", self.stage)
    }
    /// Locally only: a consumer of Herald's life-cycle events, to show what was published.
    pub fn published_rule(&self) -> String {
        format!("herald-{}-published", self.stage)
    }
    pub fn published_queue(&self) -> String {
        format!("herald-{}-published", self.stage)
    }
}

/// A stage's resources on the emulator.
#[derive(Debug, Clone)]
pub struct Stack {
    pub names: Names,
    pub dispatch_queue_url: String,
    pub dispatch_dlq_url: String,
    /// The bus rule's target, intake's event source.
    pub intake_queue_url: String,
    /// Where the local stack's rule on `source: herald` delivers.
    pub published_url: String,
}

/// A rule on the bus with one queue as its target.
async fn route_to_queue(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    rule: &str,
    pattern: &str,
    queue_arn: String,
) -> Result<(), StackError> {
    events
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern)
        .send()
        .await
        .map_err(|e| failed(rule, e))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id(rule)
        .arn(queue_arn)
        .build()
        .map_err(|e| failed(rule, e))?;
    events
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| failed(rule, e))?;
    Ok(())
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StackError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| failed(name, e))
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StackError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| failed(name, e))
}

impl Stack {
    /// Creates the stage's resources; those that exist already are kept.
    pub async fn create(aws: &SdkConfig, stage: &str) -> Result<Stack, StackError> {
        let names = Names::new(stage);
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let events = aws_sdk_eventbridge::Client::new(aws);
        let ses = aws_sdk_sesv2::Client::new(aws);

        create_table(&dynamo, &names.notifications_table(), Table::Notifications).await?;
        create_table(&dynamo, &names.directory_table(), Table::Directory).await?;
        create_table(&dynamo, &names.views_table(), Table::Views).await?;
        create_table(&dynamo, &names.templates_table(), Table::Templates).await?;
        create_table(&dynamo, &names.connections_table(), Table::Connections).await?;

        let dispatch_dlq_url = create_queue(&sqs, &names.dispatch_dlq(), &[]).await?;
        let dlq_arn = queue_arn(&sqs, &dispatch_dlq_url).await?;
        let redrive =
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": DISPATCH_MAX_RECEIVES})
                .to_string();
        let dispatch_queue_url = create_queue(
            &sqs,
            &names.dispatch_queue(),
            &[
                (
                    QueueAttributeName::VisibilityTimeout,
                    DISPATCH_VISIBILITY_TIMEOUT.to_string(),
                ),
                (QueueAttributeName::RedrivePolicy, redrive),
            ],
        )
        .await?;
        let intake_dlq_url = create_queue(&sqs, &names.intake_dlq(), &[]).await?;
        let intake_dlq_arn = queue_arn(&sqs, &intake_dlq_url).await?;
        let redrive =
            json!({"deadLetterTargetArn": intake_dlq_arn, "maxReceiveCount": INTAKE_MAX_RECEIVES})
                .to_string();
        create_queue(&sqs, &names.projector_dlq(), &[]).await?;
        let intake_queue_url = create_queue(
            &sqs,
            &names.intake_queue(),
            &[(QueueAttributeName::RedrivePolicy, redrive)],
        )
        .await?;
        let intake_queue_arn = queue_arn(&sqs, &intake_queue_url).await?;

        let bus = names.bus();
        if let Err(e) = events.create_event_bus().name(&bus).send().await
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_resource_already_exists_exception())
        {
            return Err(failed(&bus, e));
        }
        route_to_queue(
            &events,
            &bus,
            &names.intake_rule(),
            INTAKE_PATTERN,
            intake_queue_arn,
        )
        .await?;
        let published_url = create_queue(&sqs, &names.published_queue(), &[]).await?;
        let published_arn = queue_arn(&sqs, &published_url).await?;
        route_to_queue(
            &events,
            &bus,
            &names.published_rule(),
            PUBLISHED_PATTERN,
            published_arn,
        )
        .await?;

        if let Err(e) = ses
            .create_email_identity()
            .email_identity(SENDER_DOMAIN)
            .send()
            .await
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_already_exists_exception())
        {
            return Err(failed(SENDER_DOMAIN, e));
        }
        Ok(Stack {
            names,
            dispatch_queue_url,
            dispatch_dlq_url,
            intake_queue_url,
            published_url,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Notifications,
    Directory,
    Views,
    Templates,
    Connections,
}

fn index(
    name: &str,
    hash: &str,
    range: &str,
    projection: ProjectionType,
) -> Result<GlobalSecondaryIndex, StackError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(projection).build())
        .build()
        .map_err(|e| failed(name, e))
}

fn hash_index(name: &str, hash: &str) -> Result<GlobalSecondaryIndex, StackError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|e| failed(name, e))
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    table: Table,
) -> Result<(), StackError> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("pk")?)
        .key_schema(key("pk", KeyType::Hash)?);
    match table {
        Table::Notifications => {
            request = request
                .attribute_definitions(string_attribute("dl_org")?)
                .attribute_definitions(string_attribute("failed_at")?)
                .attribute_definitions(string_attribute("due_shard")?)
                .attribute_definitions(string_attribute("sweep_at")?)
                .global_secondary_indexes(index(
                    DEAD_LETTERS_INDEX,
                    "dl_org",
                    "failed_at",
                    ProjectionType::All,
                )?)
                .global_secondary_indexes(index(
                    DUE_INDEX,
                    "due_shard",
                    "sweep_at",
                    ProjectionType::KeysOnly,
                )?)
                .attribute_definitions(string_attribute("provider_message_id")?)
                .global_secondary_indexes(hash_index(
                    PROVIDER_MESSAGE_INDEX,
                    "provider_message_id",
                )?)
                .stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(StreamViewType::NewAndOldImages)
                        .build()
                        .map_err(|e| failed(name, e))?,
                );
        }
        Table::Views | Table::Templates | Table::Connections => {
            request = request
                .attribute_definitions(string_attribute("sk")?)
                .key_schema(key("sk", KeyType::Range)?);
        }
        Table::Directory => {}
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(failed(name, e)),
    }
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, StackError> {
    let mut request = client.create_queue().queue_name(name);
    for (k, v) in attributes {
        request = request.attributes(k.clone(), v.clone());
    }
    let out = request.send().await.map_err(|e| failed(name, e))?;
    out.queue_url
        .ok_or_else(|| failed(name, "no queue URL returned"))
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, StackError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(url, e))?;
    out.attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| failed(url, "no queue ARN returned"))
}
