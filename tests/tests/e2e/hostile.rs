//! Careless and hostile input against the emulator: far-future times, oversized events, and
//! what must stay all-or-nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use herald_adapters::DynamoNotificationStore;
use herald_adapters::dynamo::{due_shard, notification_key};
use herald_core::ids::{NotificationId, OrgId};
use herald_core::model::{Notification, Status};
use herald_core::ports::{Created, NotificationStore};
use herald_e2e::{As, Harness};
use serde_json::json;

fn store(h: &Harness) -> DynamoNotificationStore {
    DynamoNotificationStore::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.notifications_table(),
    )
}

#[tokio::test]
async fn a_date_past_9999_is_refused_and_cannot_poison_the_sweep() {
    let h = Harness::new().await;
    let email = h.email("far");
    h.run(&[h.contact("cus_f", &email, None, "en").await]).await;
    let refused = h
        .run_one(h.event(
            "OrderDelivered",
            "ordering",
            json!({"customer_id": "cus_f", "order_id": "ord_far", "delivered_at": "9999-12-30T00:00:00Z"}),
        ))
        .await;
    assert_eq!(refused.outcome, "rejected");
    assert!(
        refused
            .reason
            .as_deref()
            .unwrap()
            .starts_with("detail.delivered_at must lie between"),
        "{refused:?}"
    );

    // An entry written before the bound existed: its time sorts before every real date.
    let delivered_at = Utc::now() - Duration::days(8);
    let good = h
        .run_one(h.event(
            "OrderDelivered",
            "ordering",
            json!({"customer_id": "cus_f", "order_id": "ord_ok", "delivered_at": delivered_at.to_rfc3339()}),
        ))
        .await;
    let good_id = NotificationId::parse(good.notifications[0].id.clone()).unwrap();
    let org = h.org_id();
    let dynamo = aws_sdk_dynamodb::Client::new(&h.local.aws);
    let poison = NotificationId::parse("ntf_poison").unwrap();
    dynamo
        .put_item()
        .table_name(h.local.stack.names.notifications_table())
        .item("pk", AttributeValue::S(notification_key(&org, &poison)))
        .item("kind", AttributeValue::S("notification".into()))
        .item(
            "sweep_at",
            AttributeValue::S("+10000-01-06T00:00:00.000Z".into()),
        )
        // in the same shard as the good one, ahead of it
        .item("due_shard", AttributeValue::S(due_shard(&good_id)))
        .send()
        .await
        .unwrap();

    let tick = h.local.tick(None).await.unwrap();
    assert_eq!(tick.sweep.unreadable, 1, "{tick:?}");
    let n = h.local.store.get(&org, &good_id).await.unwrap().unwrap();
    assert_eq!(n.status, Status::Sent, "the sweep went on past the poison");
    // set aside: the next sweep no longer meets it
    assert_eq!(h.local.tick(None).await.unwrap().sweep.unreadable, 0);
}

#[tokio::test]
async fn a_far_future_directory_time_is_refused_and_never_locks_the_customer() {
    let h = Harness::new().await;
    let mut future = h
        .contact("cus_t", &h.email("old"), Some("+14155550160"), "en")
        .await;
    future["time"] = json!("9999-12-31T00:00:00Z");
    let refused = h.run_one(future).await;
    assert_eq!(
        (refused.outcome.as_str(), refused.reason.as_deref()),
        (
            "rejected",
            Some("time is more than 5 minutes ahead of Herald's clock")
        )
    );

    // A record locked by such a stamp before the rule: the customer's own write still applies,
    // and so does the next directory event.
    let org = h.org_id();
    let customer = herald_core::ids::CustomerId::parse("cus_t").unwrap();
    let directory = herald_adapters::DynamoDirectory::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.directory_table(),
    );
    herald_core::directory_update::update_customer(
        &directory,
        &org,
        &customer,
        herald_core::directory::CustomerUpdate::Contact {
            email: Some(herald_core::ids::EmailAddress::parse(h.email("old")).unwrap()),
            phone: None,
            whatsapp: None,
            locale: None,
            timezone: None,
        },
        herald_core::directory::Origin::Event {
            at: "9999-12-31T00:00:00Z".parse().unwrap(),
            now: "9999-12-31T00:00:00Z".parse().unwrap(),
        },
    )
    .await
    .unwrap();
    let api = h.api();
    let mine = h.email("mine");
    let (status, body) = h
        .call(
            &api,
            "PUT",
            "/customers/cus_t/contact",
            As::Customer(&h.org, "cus_t"),
            Some(json!({"email": mine})),
        )
        .await;
    assert_eq!((status, body["email"].as_str()), (200, Some(mine.as_str())));
    // a later event still applies (EventBridge's `time` has whole seconds, and within the same
    // second the customer's own write wins)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = h.email("newer");
    h.run(&[h.contact("cus_t", &newer, None, "en").await]).await;
    let report = h.run_one(h.order_created("cus_t", "ord_t")).await;
    assert_eq!(report.notifications[0].status, "sent");
    assert_eq!(h.sent().await.emails_to(&newer).len(), 1);
}

#[tokio::test]
async fn a_reminder_too_large_to_store_is_rejected_by_field_and_leaves_nothing_pending() {
    let h = Harness::new().await;
    h.run(&[
        h.contact("cus_big", &h.email("big"), None, "en").await,
        h.preferences("cus_big", json!({"email": true, "in_app": true}), json!([])),
    ])
    .await;
    let report = h
        .run_one(h.event(
            "ReminderDue",
            "reminders",
            json!({"customer_id": "cus_big", "reminder_id": "rem_big", "severity": "high",
                   "title": "Big", "body": "x".repeat(215 * 1024)}),
        ))
        .await;
    assert_eq!(
        (report.outcome.as_str(), report.reason.as_deref()),
        (
            "rejected",
            Some("detail.body: must be at most 2000 characters")
        )
    );
    assert!(report.notifications.is_empty());
}

fn notification(h: &Harness, id: &str, body: String) -> Notification {
    let org = h.org_id();
    let now = Utc::now();
    serde_json::from_value(json!({
        "id": id, "org_id": org, "notification_type": "reminder",
        "recipient": {"kind": "customer", "id": "cus_x"}, "channel": "in_app",
        "address": {"kind": "feed"}, "locale": "en", "body": body, "internal": false,
        "critical": false, "status": "pending", "attempts": 0, "source_event_id": "evt",
        "business_key": "k", "created_at": herald_core::time::format(&now),
        "updated_at": herald_core::time::format(&now)
    }))
    .unwrap()
}

#[tokio::test]
async fn the_notifications_of_one_event_are_stored_all_or_none() {
    let h = Harness::new().await;
    let store = store(&h);
    let org: OrgId = h.org_id();
    let small = notification(&h, "ntf_small", "fits".into());
    let huge = notification(&h, "ntf_huge", "x".repeat(410 * 1024));
    assert!(store.create_all(&[small.clone(), huge]).await.is_err());
    assert!(
        store.get(&org, &small.id).await.unwrap().is_none(),
        "nothing of the event was stored"
    );

    // a redelivery after one of them was stored: the other is added, the first left alone
    let other = notification(&h, "ntf_other", "also fits".into());
    assert_eq!(store.create(&small).await.unwrap(), Created::New);
    let created = store
        .create_all(&[small.clone(), other.clone()])
        .await
        .unwrap();
    assert!(matches!(created[0], Created::Existing(_)), "{created:?}");
    assert_eq!(created[1], Created::New);
    assert!(store.get(&org, &other.id).await.unwrap().is_some());
}
