//! The connections table against the SDK's mocks: a batch read DynamoDB leaves partly
//! unprocessed, and removing from a customer who has no item.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, InternalServerError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_smithy_mocks::mock;
use herald_adapters::DynamoConnections;
use herald_core::ids::{CustomerId, OrgId};
use herald_core::ports::Connections;
use herald_core::realtime::{ConnectionId, Listener};

use crate::common::{Item, TABLE, dynamo};

fn listener(customer: &str) -> Listener {
    Listener {
        org_id: OrgId::parse("org_acme").unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
    }
}

fn key(customer: &str) -> Item {
    HashMap::from([
        (
            "pk".into(),
            AttributeValue::S(format!("W#org_acme#{customer}")),
        ),
        ("sk".into(), AttributeValue::S("open".into())),
    ])
}

fn open(customer: &str, connection: &str) -> Item {
    let mut item = key(customer);
    let later = chrono::Utc::now().timestamp() + 3600;
    item.insert(
        format!("c#{connection}"),
        AttributeValue::N(later.to_string()),
    );
    item
}

#[tokio::test]
async fn customers_a_batch_read_left_unprocessed_are_asked_for_again() {
    let partly = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses(TABLE, vec![open("cus_a", "QUFB")])
            .unprocessed_keys(
                TABLE,
                KeysAndAttributes::builder()
                    .keys(key("cus_b"))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let rest = mock!(Client::batch_get_item)
        .match_requests(|r| {
            r.request_items()
                .and_then(|i| i.get(TABLE))
                .is_some_and(|k| k.keys() == [key("cus_b")])
        })
        .then_output(|| {
            BatchGetItemOutput::builder()
                .responses(TABLE, vec![open("cus_b", "QkJC")])
                .build()
        });
    let listening = DynamoConnections::new(dynamo(&[&partly, &rest]), TABLE)
        .listening(&[listener("cus_a"), listener("cus_b")])
        .await
        .unwrap();
    assert_eq!(
        listening[&listener("cus_b")],
        vec![ConnectionId::parse("QkJC").unwrap()]
    );
    assert_eq!(listening.len(), 2);
}

#[tokio::test]
async fn removing_from_a_customer_without_an_item_is_done_and_a_failure_is_not() {
    let absent = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let failing = mock!(Client::update_item).then_error(|| {
        UpdateItemError::InternalServerError(InternalServerError::builder().build())
    });
    let connections = DynamoConnections::new(dynamo(&[&absent, &failing]), TABLE);
    let id = ConnectionId::parse("QUFB").unwrap();
    connections.remove(&listener("cus_a"), &id).await.unwrap();
    let err = connections
        .remove(&listener("cus_a"), &id)
        .await
        .unwrap_err();
    assert_eq!(err.operation, "dynamodb UpdateItem remove connection");
}

#[tokio::test]
async fn a_connection_is_recorded_even_when_the_expired_ones_cannot_be_removed() {
    let recorded = mock!(Client::update_item)
        .match_requests(|r| r.update_expression().is_some_and(|e| e.starts_with("SET")))
        .then_output(|| {
            let mut before = key("cus_a");
            before.insert("c#T0xE".into(), AttributeValue::N("1".into()));
            aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder()
                .set_attributes(Some(before))
                .build()
        });
    let cleanup = mock!(Client::update_item)
        .match_requests(|r| {
            r.update_expression() == Some("REMOVE #c0")
                && r.expression_attribute_names()
                    .is_some_and(|n| n.get("#c0").map(String::as_str) == Some("c#T0xE"))
        })
        .then_error(|| {
            UpdateItemError::InternalServerError(InternalServerError::builder().build())
        });
    DynamoConnections::new(dynamo(&[&recorded, &cleanup]), TABLE)
        .add(&herald_core::realtime::Connection {
            id: ConnectionId::parse("TmV3").unwrap(),
            listener: listener("cus_a"),
            connected_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(
        cleanup.num_calls(),
        1,
        "the expired connection was asked to go"
    );
}
