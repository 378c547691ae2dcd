use std::collections::HashMap;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{Rule, RuleMode, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use herald_adapters::Backoff;
use herald_core::model::Notification;
use serde_json::json;

pub type Item = HashMap<String, AttributeValue>;

pub const TABLE: &str = "herald-test";

/// A DynamoDB client that answers with these rules, in order; the SDK's own retries are off,
/// so what a test sees is what the adapter does.
pub fn dynamo(rules: &[&Rule]) -> aws_sdk_dynamodb::Client {
    mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, rules, |c| c
        .retry_config(RetryConfig::disabled()))
}

pub fn sqs(rules: &[&Rule]) -> aws_sdk_sqs::Client {
    mock_client!(aws_sdk_sqs, RuleMode::Sequential, rules, |c| c
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()))
}

/// A stored notification, as the intake writes it.
pub fn notification(id: &str) -> Notification {
    serde_json::from_value(json!({
        "id": id,
        "org_id": "org_acme",
        "notification_type": "order_confirmation",
        "recipient": {"kind": "customer", "id": "cus_carol"},
        "channel": "email",
        "address": {"kind": "email", "to": "carol@example.com"},
        "sender": "notifications@herald.example",
        "locale": "en",
        "subject": "Your order ord_1001 is confirmed",
        "body": "Thank you for your order!",
        "internal": false,
        "critical": false,
        "status": "pending",
        "revision": 0,
        "attempts": 0,
        "source_event_id": "93d0f7ad-9728-4b79-b800-41d28666e895",
        "business_key": "ord_1001",
        "created_at": "2026-11-23T16:03:48.187Z",
        "updated_at": "2026-11-23T16:03:48.187Z"
    }))
    .unwrap()
}

/// The notification's item, as the table holds it.
pub fn item(n: &Notification) -> Item {
    let mut item: Item = serde_dynamo::to_item(n).unwrap();
    item.insert(
        "pk".into(),
        AttributeValue::S(format!("N#{}#{}", n.org_id, n.id)),
    );
    item
}

/// The metadata DynamoDB sends with an error: its code and message.
pub fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

pub const TOO_LARGE: &str = "Item size has exceeded the maximum allowed size";

/// Retries that wait at most a few milliseconds, drawn from a fixed seed.
pub fn quick() -> Backoff {
    Backoff::new(
        5,
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(4),
    )
    .seeded(7)
}
