//! The rate limits' buckets: a count that lost the race to another dispatcher is made again
//! on the bucket the failed condition returned; a bucket that is full as last seen costs no
//! call; a store that returns nothing on a failed condition is read.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_smithy_mocks::mock;
use chrono::{DateTime, Duration, Utc};
use herald_adapters::DynamoRateLimiter;
use herald_core::ids::OrgId;
use herald_core::model::Channel;
use herald_core::ports::RateLimiter;
use herald_core::rate_limit::ChannelLimit;

use crate::common::{TABLE, dynamo};

fn org() -> OrgId {
    OrgId::parse("org_acme").unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-24T10:00:30Z".parse().unwrap()
}

const FIVE_A_SECOND: ChannelLimit = ChannelLimit {
    per_second: Some(5),
    per_day: None,
};

/// A stored bucket at `version` whose arrival time runs `ahead_ms` past now.
fn stored(version: u64, ahead_ms: i64) -> HashMap<String, AttributeValue> {
    let tat = now() + Duration::milliseconds(ahead_ms);
    HashMap::from([
        ("pk".into(), AttributeValue::S("R#org_acme#sms".into())),
        ("version".into(), AttributeValue::N(version.to_string())),
        ("tat".into(), AttributeValue::S(tat.to_rfc3339())),
        ("day".into(), AttributeValue::S("2026-11-24".into())),
        ("used".into(), AttributeValue::N("40".into())),
    ])
}

fn lost_with(item: Option<HashMap<String, AttributeValue>>) -> PutItemError {
    PutItemError::ConditionalCheckFailedException(
        ConditionalCheckFailedException::builder()
            .set_item(item)
            .build(),
    )
}

fn n(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item[name].as_n().unwrap().clone()
}

#[tokio::test]
async fn a_count_that_lost_the_race_is_made_again_on_the_bucket_returned() {
    // nothing seen yet: counted as a new bucket, but another dispatcher's is there
    let lost = mock!(Client::put_item)
        .match_requests(|r| {
            r.condition_expression() == Some("attribute_not_exists(pk)")
                && r.return_values_on_condition_check_failure()
                    == Some(&aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
        })
        .then_error(|| lost_with(Some(stored(4, 600))));
    // 600 ms ahead of a bucket that tolerates 800: room for two
    let won = mock!(Client::put_item)
        .match_requests(|r| {
            r.expression_attribute_values()
                .is_some_and(|v| v[":read"] == AttributeValue::N("4".into()))
                && r.item()
                    .is_some_and(|i| n(i, "version") == "5" && n(i, "used") == "42")
        })
        .then_output(|| PutItemOutput::builder().build());
    let limiter = DynamoRateLimiter::new(dynamo(&[&lost, &won]), TABLE);
    let admission = limiter
        .take(&org(), Channel::Sms, 5, FIVE_A_SECOND, now())
        .await
        .unwrap();
    assert_eq!(admission.granted, 2);
    assert_eq!(won.num_calls(), 1);
    // the third message waits until the bucket has drained to its tolerance
    assert_eq!(admission.free_at(0), now() + Duration::milliseconds(200));
}

#[tokio::test]
async fn a_bucket_full_as_last_seen_costs_no_call() {
    let lost = mock!(Client::put_item).then_error(|| lost_with(Some(stored(9, 1000))));
    let limiter = DynamoRateLimiter::new(dynamo(&[&lost]), TABLE);
    let first = limiter
        .take(&org(), Channel::Sms, 3, FIVE_A_SECOND, now())
        .await
        .unwrap();
    assert_eq!(first.granted, 0, "the bucket returned is full");
    let again = limiter
        .take(&org(), Channel::Sms, 3, FIVE_A_SECOND, now())
        .await
        .unwrap();
    assert_eq!(again.granted, 0);
    assert_eq!(
        lost.num_calls(),
        1,
        "counts only grow: full here is full there"
    );
}

#[tokio::test]
async fn a_store_that_returns_nothing_on_a_failed_condition_is_read() {
    let lost = mock!(Client::put_item).then_error(|| lost_with(None));
    let read = mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(stored(2, 0)))
            .build()
    });
    let won = mock!(Client::put_item)
        .match_requests(|r| {
            r.expression_attribute_values()
                .is_some_and(|v| v[":read"] == AttributeValue::N("2".into()))
        })
        .then_output(|| PutItemOutput::builder().build());
    let limiter = DynamoRateLimiter::new(dynamo(&[&lost, &read, &won]), TABLE);
    let admission = limiter
        .take(&org(), Channel::Sms, 10, FIVE_A_SECOND, now())
        .await
        .unwrap();
    assert_eq!(admission.granted, 5);
    assert_eq!((read.num_calls(), won.num_calls()), (1, 1));
}
