//! The notifications table: conditions that fail, batches left partly unprocessed, throttling,
//! items that do not parse or are too large.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ProvisionedThroughputExceededException,
};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use aws_smithy_mocks::mock;
use chrono::{TimeZone, Utc};
use herald_adapters::DynamoNotificationStore;
use herald_core::ids::{NotificationId, OrgId};
use herald_core::model::Provider;
use herald_core::ports::DeliveryStore;
use herald_core::ports::{ClaimOutcome, Created, NotificationStore};

use crate::common::{Item, TABLE, TOO_LARGE, dynamo, item, meta, notification, quick};

fn store(client: Client) -> DynamoNotificationStore {
    DynamoNotificationStore::new(client, TABLE).with_backoff(quick())
}

fn org() -> OrgId {
    OrgId::parse("org_acme").unwrap()
}

fn id(value: &str) -> NotificationId {
    NotificationId::parse(value).unwrap()
}

fn condition_failed(old: Option<Item>) -> ConditionalCheckFailedException {
    ConditionalCheckFailedException::builder()
        .set_item(old)
        .message("The conditional request failed")
        .meta(meta(
            "ConditionalCheckFailedException",
            "The conditional request failed",
        ))
        .build()
}

/// A batch read's answer: these items found, these keys left for another try.
fn batch_get_answer(found: Vec<Item>, unprocessed: Vec<Item>) -> BatchGetItemOutput {
    let mut out = BatchGetItemOutput::builder().responses(TABLE, found);
    if !unprocessed.is_empty() {
        out = out.unprocessed_keys(
            TABLE,
            KeysAndAttributes::builder()
                .set_keys(Some(unprocessed))
                .build()
                .unwrap(),
        );
    }
    out.build()
}

fn keys_asked(input: &aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput) -> usize {
    input
        .request_items()
        .and_then(|r| r.get(TABLE))
        .map_or(0, |k| k.keys().len())
}

#[tokio::test]
async fn creating_a_notification_that_exists_returns_the_stored_one() {
    let stored = notification("ntf_1");
    let old = item(&stored);
    let put = mock!(Client::put_item)
        .match_requests(|r| r.condition_expression() == Some("attribute_not_exists(pk)"))
        .then_error(move || {
            PutItemError::ConditionalCheckFailedException(condition_failed(Some(old.clone())))
        });
    let created = store(dynamo(&[&put]))
        .create(&notification("ntf_1"))
        .await
        .unwrap();
    match created {
        Created::Existing(n) => assert_eq!(*n, stored),
        Created::New => panic!("a failed condition is not a new notification"),
    }
}

#[tokio::test]
async fn creating_a_notification_that_exists_reads_it_when_the_old_item_is_not_returned() {
    let stored = notification("ntf_1");
    let old = item(&stored);
    let put = mock!(Client::put_item)
        .then_error(|| PutItemError::ConditionalCheckFailedException(condition_failed(None)));
    let get = mock!(Client::get_item)
        .match_requests(|r| r.consistent_read() == Some(true))
        .then_output(move || GetItemOutput::builder().set_item(Some(old.clone())).build());
    let created = store(dynamo(&[&put, &get]))
        .create(&notification("ntf_1"))
        .await
        .unwrap();
    assert!(matches!(created, Created::Existing(n) if *n == stored));
}

#[tokio::test]
async fn a_claim_whose_condition_fails_returns_the_notification_as_it_stands() {
    let mut held = notification("ntf_1");
    held.status = herald_core::model::Status::Sent;
    let old = item(&held);
    let update = mock!(Client::update_item)
        .then_error(|| UpdateItemError::ConditionalCheckFailedException(condition_failed(None)));
    let get = mock!(Client::get_item)
        .then_output(move || GetItemOutput::builder().set_item(Some(old.clone())).build());
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap();
    let outcome = store(dynamo(&[&update, &get]))
        .claim(
            &org(),
            &id("ntf_1"),
            "token",
            now,
            now + chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, ClaimOutcome::NotClaimable(n) if *n == held));
}

#[tokio::test]
async fn a_claim_of_a_notification_that_is_gone_finds_nothing() {
    let update = mock!(Client::update_item)
        .then_error(|| UpdateItemError::ConditionalCheckFailedException(condition_failed(None)));
    let get = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap();
    let outcome = store(dynamo(&[&update, &get]))
        .claim(&org(), &id("ntf_1"), "token", now, now)
        .await
        .unwrap();
    assert!(matches!(outcome, ClaimOutcome::NotFound));
}

#[tokio::test]
async fn settling_by_a_dispatcher_whose_claim_was_taken_changes_nothing() {
    let update = mock!(Client::update_item)
        .match_requests(|r| {
            r.condition_expression()
                .is_some_and(|c| c.starts_with("#claim.#token = :token"))
        })
        .then_error(|| UpdateItemError::ConditionalCheckFailedException(condition_failed(None)));
    let settled = store(dynamo(&[&update]))
        .settle(&notification("ntf_1"), "an old token")
        .await
        .unwrap();
    assert!(!settled);
}

#[tokio::test]
async fn keys_a_batch_read_left_unprocessed_are_asked_for_again() {
    let (one, two) = (notification("ntf_1"), notification("ntf_2"));
    let (first, second) = (item(&one), item(&two));
    let left = std::collections::HashMap::from([("pk".to_string(), second["pk"].clone())]);
    let partly = mock!(Client::batch_get_item)
        .match_requests(|r| keys_asked(r) == 2)
        .then_output(move || batch_get_answer(vec![first.clone()], vec![left.clone()]));
    let rest = mock!(Client::batch_get_item)
        .match_requests(|r| keys_asked(r) == 1)
        .then_output(move || batch_get_answer(vec![second.clone()], vec![]));
    let mut found = store(dynamo(&[&partly, &rest]))
        .get_many(&org(), &[id("ntf_1"), id("ntf_2")])
        .await
        .unwrap();
    found.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(found, vec![one, two]);
}

#[tokio::test]
async fn keys_that_stay_unprocessed_fail_the_read_and_say_so() {
    let key = item(&notification("ntf_1"));
    let key = std::collections::HashMap::from([("pk".to_string(), key["pk"].clone())]);
    let never = mock!(Client::batch_get_item)
        .sequence()
        .output(move || batch_get_answer(vec![], vec![key.clone()]))
        .repeatedly()
        .build();
    let err = store(dynamo(&[&never]))
        .get_many(&org(), &[id("ntf_1")])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("BatchGetItem"), "{err}");
    assert!(
        err.contains("1 of 1 stayed unprocessed after 5 attempts"),
        "{err}"
    );
    assert_eq!(never.num_calls(), 5);
}

#[tokio::test]
async fn writes_a_batch_left_unprocessed_are_sent_again() {
    fn marker(pk: &str) -> WriteRequest {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .item("pk", AttributeValue::S(pk.into()))
                    .build()
                    .unwrap(),
            )
            .build()
    }
    fn writes(r: &aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput) -> usize {
        r.request_items()
            .and_then(|i| i.get(TABLE))
            .map_or(0, Vec::len)
    }
    let partly = mock!(Client::batch_write_item)
        .match_requests(|r| writes(r) == 2)
        .then_output(|| {
            BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, vec![marker("W#org_acme#ses#e2")])
                .build()
        });
    let rest = mock!(Client::batch_write_item)
        .match_requests(|r| writes(r) == 1)
        .then_output(|| BatchWriteItemOutput::builder().build());
    let client = dynamo(&[&partly, &rest]);
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap();
    store(client)
        .mark_seen(&org(), Provider::Ses, &["e1".into(), "e2".into()], at)
        .await
        .unwrap();
    assert_eq!(partly.num_calls(), 1);
    assert_eq!(rest.num_calls(), 1);
}

#[tokio::test]
async fn a_throttled_call_is_a_port_error_with_the_services_code() {
    let throttled = mock!(Client::get_item).then_error(|| {
        GetItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message(
                    "The level of configured provisioned throughput for the table was exceeded",
                )
                .meta(meta(
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded",
                ))
                .build(),
        )
    });
    let err = store(dynamo(&[&throttled]))
        .get(&org(), &id("ntf_1"))
        .await
        .unwrap_err();
    assert_eq!(err.operation, "dynamodb GetItem notification");
    let text = err.to_string();
    assert!(
        text.contains("ProvisionedThroughputExceededException"),
        "{text}"
    );
    assert!(text.contains("provisioned throughput"), "{text}");
}

#[tokio::test]
async fn an_item_that_does_not_parse_is_a_port_error() {
    let mut broken = item(&notification("ntf_1"));
    broken.insert("status".into(), AttributeValue::N("3".into()));
    broken.remove("created_at");
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(broken.clone()))
            .build()
    });
    let err = store(dynamo(&[&get]))
        .get(&org(), &id("ntf_1"))
        .await
        .unwrap_err();
    assert_eq!(err.operation, "deserialize notification");
}

#[tokio::test]
async fn an_item_over_400_kb_is_refused_with_the_services_reason() {
    let put = mock!(Client::put_item)
        .then_error(|| PutItemError::generic(meta("ValidationException", TOO_LARGE)));
    let mut n = notification("ntf_1");
    n.body = "x".repeat(400 * 1024);
    let err = store(dynamo(&[&put]))
        .create(&n)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ValidationException"), "{err}");
    assert!(err.contains(TOO_LARGE), "{err}");
}

#[tokio::test]
async fn notifications_over_400_kb_written_together_are_refused_with_the_services_reason() {
    let transact = mock!(Client::transact_write_items)
        .then_error(|| TransactWriteItemsError::generic(meta("ValidationException", TOO_LARGE)));
    let (one, mut two) = (notification("ntf_1"), notification("ntf_2"));
    two.body = "x".repeat(400 * 1024);
    let err = store(dynamo(&[&transact]))
        .create_all(&[one, two])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ValidationException"), "{err}");
    assert!(err.contains(TOO_LARGE), "{err}");
}
