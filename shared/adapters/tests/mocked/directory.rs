//! The directory table: versioned writes that lose a race, records that do not parse, keyed
//! reads left partly unprocessed.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_smithy_mocks::mock;
use herald_adapters::DynamoDirectory;
use herald_core::directory::CustomerRecord;
use herald_core::ids::{CustomerId, OrgId};
use herald_core::ports::{Directory, Write};

use crate::common::{TABLE, dynamo};

fn org() -> OrgId {
    OrgId::parse("org_acme").unwrap()
}

fn customer() -> CustomerId {
    CustomerId::parse("cus_carol").unwrap()
}

fn pk(value: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), AttributeValue::S(value.into()))])
}

#[tokio::test]
async fn a_versioned_write_that_lost_a_race_is_a_conflict() {
    let put = mock!(Client::put_item)
        .match_requests(|r| r.condition_expression() == Some("version = :expected"))
        .then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    let written = DynamoDirectory::new(dynamo(&[&put]), TABLE)
        .put_customer(&org(), &customer(), &CustomerRecord::default(), Some(3))
        .await
        .unwrap();
    assert_eq!(written, Write::Conflict);
}

#[tokio::test]
async fn a_record_without_its_version_is_a_port_error() {
    let get = mock!(Client::get_item).then_output(|| {
        let mut item = pk("C#org_acme#cus_carol");
        item.insert("record".into(), AttributeValue::M(HashMap::new()));
        GetItemOutput::builder().set_item(Some(item)).build()
    });
    let err = DynamoDirectory::new(dynamo(&[&get]), TABLE)
        .get_customer(&org(), &customer())
        .await
        .unwrap_err();
    assert_eq!(err.operation, "deserialize directory record");
}

#[tokio::test]
async fn keys_a_keyed_read_left_unprocessed_are_asked_for_again() {
    let partly = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses(TABLE, vec![])
            .unprocessed_keys(
                TABLE,
                KeysAndAttributes::builder()
                    .keys(pk("S#org_acme#email#carol@example.com"))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let rest = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses(TABLE, vec![pk("S#org_acme#email#carol@example.com")])
            .build()
    });
    let key: herald_core::consent::SuppressionKey = serde_json::from_value(serde_json::json!({
        "channel": "email",
        "address": "carol@example.com"
    }))
    .unwrap();
    let suppressed = DynamoDirectory::new(dynamo(&[&partly, &rest]), TABLE)
        .suppressed(&org(), std::slice::from_ref(&key))
        .await
        .unwrap();
    assert!(suppressed.contains(&key));
}
