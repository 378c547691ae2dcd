//! The circuit breakers' store: a failure counted while another dispatcher wrote first is
//! counted again on what that one wrote; a probe someone else took is not taken twice.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_smithy_mocks::mock;
use chrono::{DateTime, Utc};
use herald_adapters::DynamoBreakers;
use herald_core::breaker::BreakerPolicy;
use herald_core::ids::OrgId;
use herald_core::model::DeliveryService;
use herald_core::ports::Breakers;

use crate::common::{TABLE, dynamo};

fn org() -> OrgId {
    OrgId::parse("org_acme").unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-24T10:00:30Z".parse().unwrap()
}

/// A stored breaker at `version` with `failures` counted since 10:00:00.
fn stored(version: u64, failures: u32) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".into(), AttributeValue::S("B#org_acme#ses".into())),
        ("version".into(), AttributeValue::N(version.to_string())),
        ("failures".into(), AttributeValue::N(failures.to_string())),
        (
            "window_start".into(),
            AttributeValue::S("2026-11-24T10:00:00.000Z".into()),
        ),
    ])
}

fn n(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item[name].as_n().unwrap().clone()
}

#[tokio::test]
async fn a_failure_that_lost_the_race_is_counted_on_the_winners_state() {
    let read_first = mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(stored(3, 3)))
            .build()
    });
    let lost = mock!(Client::put_item)
        .match_requests(|r| {
            r.condition_expression() == Some("version = :read")
                && r.item().is_some_and(|i| n(i, "failures") == "4")
        })
        .then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    let read_again = mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(stored(4, 4)))
            .build()
    });
    let won = mock!(Client::put_item)
        .match_requests(|r| {
            r.expression_attribute_values()
                .is_some_and(|v| v[":read"] == AttributeValue::N("4".into()))
                && r.item()
                    .is_some_and(|i| n(i, "failures") == "5" && n(i, "version") == "5")
        })
        .then_output(|| PutItemOutput::builder().build());
    let store = DynamoBreakers::new(dynamo(&[&read_first, &lost, &read_again, &won]), TABLE);
    let recorded = store
        .failure(
            &org(),
            DeliveryService::Ses,
            now(),
            &BreakerPolicy::default(),
        )
        .await
        .unwrap();
    assert!(recorded.opened, "the fifth failure in the window opens it");
    assert_eq!(recorded.state.failures, 5);
    assert_eq!(won.num_calls(), 1);
}

#[tokio::test]
async fn a_probe_another_dispatcher_holds_is_not_taken() {
    let taken = mock!(Client::update_item)
        .match_requests(|r| {
            r.condition_expression()
                .is_some_and(|c| c.contains("probe_until <= :now"))
        })
        .then_error(|| {
            UpdateItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    let store = DynamoBreakers::new(dynamo(&[&taken]), TABLE);
    let probe = store
        .take_probe(
            &org(),
            DeliveryService::Ses,
            now(),
            now() + chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
    assert_eq!(probe, None);
}
