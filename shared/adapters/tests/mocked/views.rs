//! The views table: batch writes left partly unprocessed, feed entries as plain puts, a
//! batch's outcomes one item per counter, the day's counters counted over every shard with
//! each notification once, a feed entry too large to store.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_smithy_mocks::mock;
use chrono::{NaiveDate, TimeZone, Utc};
use herald_adapters::DynamoViews;
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::{Channel, Status};
use herald_core::ports::Views;
use herald_core::projection::{FeedEntry, StatEvent, StatKey, StatOutcome, ViewWrite};

use crate::common::{TABLE, TOO_LARGE, dynamo, meta, quick};

fn views(client: Client, table: &str) -> DynamoViews {
    DynamoViews::new(client, table).with_backoff(quick())
}

fn org() -> OrgId {
    OrgId::parse("org_acme").unwrap()
}

fn id(value: &str) -> NotificationId {
    NotificationId::parse(value).unwrap()
}

/// A dead letter's removal: a write of the batch.
fn forget(notification: &str) -> ViewWrite {
    ViewWrite::DeadLetterDelete {
        org_id: org(),
        notification_id: id(notification),
        failed_at: Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap(),
    }
}

fn delete_of(notification: &str) -> WriteRequest {
    let failed_at = "2026-11-23T17:00:00.000Z";
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .key("pk", AttributeValue::S("DL#org_acme".into()))
                .key(
                    "sk",
                    AttributeValue::S(format!("{failed_at}#{notification}")),
                )
                .build()
                .unwrap(),
        )
        .build()
}

fn writes(r: &BatchWriteItemInput) -> usize {
    r.request_items()
        .and_then(|i| i.get(TABLE))
        .map_or(0, Vec::len)
}

fn sent(notification: &str) -> ViewWrite {
    ViewWrite::Stat(StatEvent {
        key: StatKey {
            org_id: org(),
            day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            notification_type: "order_confirmation".into(),
            channel: Channel::Email,
            outcome: StatOutcome::Sent,
        },
        notification_id: id(notification),
        sms_segments: 0,
        latency_ms: Some(1200),
    })
}

#[tokio::test]
async fn writes_a_batch_left_unprocessed_are_sent_again() {
    let partly = mock!(Client::batch_write_item)
        .match_requests(|r| writes(r) == 2)
        .then_output(|| {
            BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, vec![delete_of("ntf_2")])
                .build()
        });
    let rest = mock!(Client::batch_write_item)
        .match_requests(|r| writes(r) == 1)
        .then_output(|| BatchWriteItemOutput::builder().build());
    views(dynamo(&[&partly, &rest]), TABLE)
        .apply(&[forget("ntf_1"), forget("ntf_2")])
        .await
        .unwrap();
    assert_eq!((partly.num_calls(), rest.num_calls()), (1, 1));
}

#[tokio::test]
async fn writes_that_stay_unprocessed_fail_the_batch() {
    let never = mock!(Client::batch_write_item)
        .sequence()
        .output(|| {
            BatchWriteItemOutput::builder()
                .unprocessed_items(TABLE, vec![delete_of("ntf_2")])
                .build()
        })
        .repeatedly()
        .build();
    let err = views(dynamo(&[&never]), TABLE)
        .apply(&[forget("ntf_1"), forget("ntf_2")])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("BatchWriteItem"), "{err}");
    assert!(
        err.contains("1 of 2 stayed unprocessed after 5 attempts"),
        "{err}"
    );
}

/// The outcome items a batch write puts: (sort key, the notifications each lists).
fn outcome_puts(r: &BatchWriteItemInput) -> Vec<(String, Vec<String>)> {
    r.request_items()
        .and_then(|i| i.get(TABLE))
        .into_iter()
        .flatten()
        .filter_map(|w| w.put_request())
        .filter_map(|p| {
            let sk = p.item().get("sk")?.as_s().ok()?.clone();
            let mut ids: Vec<String> = p
                .item()
                .get("outcomes")?
                .as_m()
                .ok()?
                .keys()
                .cloned()
                .collect();
            ids.sort();
            Some((sk, ids))
        })
        .collect()
}

#[tokio::test]
async fn a_batchs_outcomes_of_one_counter_are_one_item_named_by_its_notifications() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let written = mock!(Client::batch_write_item)
        .match_requests(move |r| {
            record.lock().unwrap().push(outcome_puts(r));
            // the dead letter's delete goes in the same request
            writes(r) == 2
        })
        .sequence()
        .output(|| BatchWriteItemOutput::builder().build())
        .repeatedly()
        .build();
    let views = views(dynamo(&[&written]), TABLE);
    let batch = [sent("ntf_1"), sent("ntf_2"), sent("ntf_1"), forget("ntf_9")];
    views.apply(&batch).await.unwrap();
    // replayed whole: the same item again
    views.apply(&batch).await.unwrap();
    // retried with other bounds: another item
    views
        .apply(&[sent("ntf_2"), forget("ntf_9")])
        .await
        .unwrap();
    assert_eq!(written.num_calls(), 3);
    let seen = seen.lock().unwrap();
    let ids = |call: usize| seen[call][0].1.clone();
    assert_eq!(seen[0].len(), 1, "{seen:?}");
    assert_eq!(ids(0), ["ntf_1", "ntf_2"]);
    assert!(seen[0][0].0.starts_with("order_confirmation#email#sent#"));
    assert_eq!(seen[1], seen[0]);
    assert_eq!(ids(2), ["ntf_2"]);
    assert_ne!(
        seen[2][0].0, seen[0][0].0,
        "a different batch never replaces an item"
    );
}

#[tokio::test]
async fn the_days_counters_count_each_notification_once_over_every_shard() {
    let outcomes = |ids: &[(&str, &str)]| {
        AttributeValue::M(
            ids.iter()
                .map(|(id, segments)| (id.to_string(), AttributeValue::N(segments.to_string())))
                .collect(),
        )
    };
    let item = |sk: &str, listed: AttributeValue| {
        std::collections::HashMap::from([
            ("sk".to_string(), AttributeValue::S(sk.into())),
            ("outcomes".to_string(), listed),
        ])
    };
    let shard = mock!(Client::query)
        .match_requests(|r| r.key_condition_expression() == Some("pk = :pk"))
        .sequence()
        .output(move || {
            aws_sdk_dynamodb::operation::query::QueryOutput::builder()
                // a batch, and the same batch retried with other bounds
                .items(item(
                    "reminder#sms#sent#aaaa",
                    outcomes(&[("ntf_1", "2"), ("ntf_2", "1")]),
                ))
                .items(item("reminder#sms#sent#bbbb", outcomes(&[("ntf_2", "1")])))
                .items(item(
                    "reminder#email#sent#cccc",
                    outcomes(&[("ntf_3", "0")]),
                ))
                // an item of one outcome, keyed by its notification
                .items(std::collections::HashMap::from([
                    (
                        "sk".to_string(),
                        AttributeValue::S("reminder#sms#sent#ntf_4".into()),
                    ),
                    ("segments".to_string(), AttributeValue::N("3".into())),
                ]))
                .build()
        })
        .output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build())
        .repeatedly()
        .build();
    let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let mut counts = views(dynamo(&[&shard]), TABLE)
        .stats(&org(), day)
        .await
        .unwrap();
    counts.sort_by_key(|c| c.key.channel.to_string());
    assert!(shard.num_calls() > 1, "a day is spread over shards");
    let summary: Vec<(Channel, u64, u64)> = counts
        .iter()
        .map(|c| (c.key.channel, c.count, c.sms_segments))
        .collect();
    assert_eq!(summary, [(Channel::Email, 1, 0), (Channel::Sms, 3, 6)]);
}

#[tokio::test]
async fn a_feed_entry_over_400_kb_is_refused_with_the_services_reason() {
    let none_yet =
        mock!(Client::batch_get_item).then_output(|| BatchGetItemOutput::builder().build());
    let put = mock!(Client::batch_write_item).then_error(|| {
        aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError::generic(meta(
            "ValidationException",
            TOO_LARGE,
        ))
    });
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap();
    let entry = FeedEntry {
        org_id: org(),
        customer_id: CustomerId::parse("cus_carol").unwrap(),
        notification_id: id("ntf_1"),
        notification_type: "order_confirmation".into(),
        channel: Channel::InApp,
        title: None,
        body: "x".repeat(400 * 1024),
        status: Status::Sent,
        read: false,
        created_at: at,
        updated_at: at,
    };
    let err = views(dynamo(&[&none_yet, &put]), TABLE)
        .apply(&[ViewWrite::FeedCreate(entry)])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ValidationException"), "{err}");
    assert!(err.contains(TOO_LARGE), "{err}");
}

/// A feed entry for carol, created at `minute` past five.
fn feed_entry(notification: &str, minute: u32, status: Status) -> FeedEntry {
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 17, minute, 0).unwrap();
    FeedEntry {
        org_id: org(),
        customer_id: CustomerId::parse("cus_carol").unwrap(),
        notification_id: id(notification),
        notification_type: "order_confirmation".into(),
        channel: Channel::Email,
        title: None,
        body: "Your order".into(),
        status,
        read: false,
        created_at: at,
        updated_at: at,
    }
}

/// The feed entries a batch write puts (their sort keys), and whether each is withdrawn.
fn feed_puts(r: &BatchWriteItemInput) -> Vec<(String, bool)> {
    r.request_items()
        .and_then(|i| i.get(TABLE))
        .into_iter()
        .flatten()
        .filter_map(|w| w.put_request())
        .filter(|p| {
            p.item()
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("FEED#"))
        })
        .map(|p| {
            let sk = p.item().get("sk").and_then(|v| v.as_s().ok()).cloned();
            let withdrawn = p.item().get("withdrawn") == Some(&AttributeValue::Bool(true))
                && p.item().get("read") == Some(&AttributeValue::Bool(true));
            (sk.unwrap_or_default(), withdrawn)
        })
        .collect()
}

fn none_exist() -> aws_smithy_mocks::Rule {
    mock!(Client::batch_get_item).then_output(|| BatchGetItemOutput::builder().build())
}

#[tokio::test]
async fn a_batchs_new_feed_entries_are_plain_puts_beside_its_other_writes_no_transaction() {
    let existing = none_exist();
    let written = mock!(Client::batch_write_item)
        .match_requests(|r| feed_puts(r).len() == 3 && writes(r) == 4)
        .then_output(|| BatchWriteItemOutput::builder().build());
    views(dynamo(&[&existing, &written]), TABLE)
        .apply(&[
            ViewWrite::FeedCreate(feed_entry("ntf_1", 1, Status::Sent)),
            ViewWrite::FeedCreate(feed_entry("ntf_2", 2, Status::Sent)),
            ViewWrite::FeedCreate(feed_entry("ntf_3", 3, Status::Pending)),
            forget("ntf_9"),
        ])
        .await
        .unwrap();
    assert_eq!((existing.num_calls(), written.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_withheld_entry_is_created_withdrawn_and_read() {
    let existing = none_exist();
    let written = mock!(Client::batch_write_item)
        .match_requests(|r| feed_puts(r) == [("2026-11-23T17:01:00.000Z#ntf_1".to_string(), true)])
        .then_output(|| BatchWriteItemOutput::builder().build());
    views(dynamo(&[&existing, &written]), TABLE)
        .apply(&[ViewWrite::FeedCreate(feed_entry(
            "ntf_1",
            1,
            Status::Skipped,
        ))])
        .await
        .unwrap();
    assert_eq!(written.num_calls(), 1);
}

#[tokio::test]
async fn an_entry_made_before_is_not_put_again_but_takes_its_status() {
    // a replay: ntf_1's entry exists (and may have been read since): only its status moves
    let existing = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses(
                TABLE,
                vec![
                    [
                        ("pk", "FEED#org_acme#cus_carol"),
                        ("sk", "2026-11-23T17:01:00.000Z#ntf_1"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), AttributeValue::S(v.into())))
                    .collect(),
                ],
            )
            .build()
    });
    let rest = mock!(Client::batch_write_item)
        .match_requests(|r| feed_puts(r) == [("2026-11-23T17:02:00.000Z#ntf_2".to_string(), false)])
        .then_output(|| BatchWriteItemOutput::builder().build());
    let status = mock!(Client::update_item)
        .match_requests(|r| {
            r.key().and_then(|k| k.get("sk"))
                == Some(&AttributeValue::S("2026-11-23T17:01:00.000Z#ntf_1".into()))
                && !r.update_expression().unwrap_or_default().contains("#read")
        })
        .then_output(|| {
            aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build()
        });
    views(dynamo(&[&existing, &rest, &status]), TABLE)
        .apply(&[
            ViewWrite::FeedCreate(feed_entry("ntf_1", 1, Status::Sent)),
            ViewWrite::FeedCreate(feed_entry("ntf_2", 2, Status::Sent)),
        ])
        .await
        .unwrap();
    assert_eq!(
        (existing.num_calls(), rest.num_calls(), status.num_calls()),
        (1, 1, 1)
    );
}
