//! The projector against the emulator: the stream read through dynamodbstreams, the views
//! written to the views table.

use std::collections::BTreeMap;

use herald_core::ids::{CustomerId, NotificationId};
use herald_core::model::Status;
use herald_core::ports::NotificationStore;
use herald_core::ports::Views;
use herald_e2e::Harness;
use herald_local::stream::StreamReader;
use lambda_runtime::LambdaEvent;
use serde_json::json;

/// Everything the views hold for this test's organization, to compare before and after.
async fn snapshot(h: &Harness, ids: &[NotificationId], customers: &[&str]) -> String {
    let org = h.org_id();
    let mut out = Vec::new();
    for id in ids {
        out.push(format!("{:?}", h.local.views.log(&org, id).await.unwrap()));
    }
    for c in customers {
        let c = CustomerId::parse(*c).unwrap();
        out.push(format!(
            "{:?}",
            h.local.views.feed(&org, &c, 100).await.unwrap()
        ));
        out.push(format!(
            "{:?}",
            h.local.views.unread(&org, &c).await.unwrap()
        ));
    }
    out.push(format!(
        "{:?}",
        h.local
            .views
            .stats(&org, chrono::Utc::now().date_naive())
            .await
            .unwrap()
    ));
    out.push(format!(
        "{:?}",
        h.local.views.dead_letters(&org, 100).await.unwrap()
    ));
    out.join("\n")
}

#[tokio::test]
async fn the_views_hold_every_transition_the_feed_and_the_counts_and_replays_change_nothing() {
    // one attempt: SES's refusal of an unverified sender fails the notification at once
    let h = Harness::with(herald_local::Options {
        retry: herald_core::retry::RetryPolicy::new(
            1,
            std::time::Duration::from_secs(300),
            6,
            std::time::Duration::from_secs(7200),
        )
        .unwrap(),
        ..Default::default()
    })
    .await;
    // the organization's own domain, which SES has not verified
    h.own_identity("unverified.example").await;
    let (a, b) = (h.email("a"), h.email("b"));
    h.run(&[
        h.event("OrganizationSettingsChanged", "admin", json!({"operations_email": h.email("ops")})),
        h.contact("cus_a", &a, Some("+14155550131"), "en").await,
        h.event(
            "NotificationPreferencesChanged",
            "customers",
            json!({"customer_id": "cus_a", "channels": {"email": true, "sms": true, "in_app": true}, "unsubscribed": []}),
        ),
        h.contact("cus_b", &b, None, "en").await,
    ])
    .await;
    let reports = h
        .run(&[
            h.order_created("cus_a", "ord_1"),
            h.order_created("cus_b", "ord_2"),
            h.event(
                "RefundIssued",
                "payments",
                json!({"customer_id": "cus_a", "refund_id": "ref_1", "order_id": "ord_1", "amount": "5", "currency": "USD"}),
            ),
            h.event(
                "ReminderDue",
                "reminders",
                json!({"customer_id": "cus_a", "reminder_id": "rem_1", "severity": "low", "title": "Hi", "body": "There"}),
            ),
            h.event(
                "ChargebackOpened",
                "payments",
                json!({"chargeback_id": "cb_1", "order_id": "ord_1", "amount": "5", "currency": "USD", "reason": "fraud"}),
            ),
            // its sender is not verified: refused, and with one attempt, failed
            h.event("OrganizationSettingsChanged", "admin", json!({"sender_email": "x@unverified.example"})),
            h.order_created("cus_b", "ord_3"),
        ])
        .await;
    let org = h.org_id();
    let mut all = Vec::new();
    for r in &reports {
        for n in &r.notifications {
            all.push(
                h.local
                    .store
                    .get(&org, &NotificationId::parse(n.id.as_str()).unwrap())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
    }
    assert_eq!(
        all.len(),
        7,
        "order a, order b, refund email+sms, reminder in-app, chargeback, order b again"
    );

    // the log: every transition of every notification, in order
    for n in &all {
        let log: Vec<String> = h
            .local
            .views
            .log(&org, &n.id)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.event)
            .collect();
        let end = n.status.as_str().to_string();
        assert_eq!(
            log,
            vec!["created".to_string(), "sending".into(), end],
            "{}",
            n.id
        );
    }
    // the feed: exactly the customer-facing ones that were sent, newest first, all unread
    for customer in ["cus_a", "cus_b"] {
        let c = CustomerId::parse(customer).unwrap();
        let feed = h.local.views.feed(&org, &c, 100).await.unwrap();
        let mut expected: Vec<_> = all
            .iter()
            .filter(|n| !n.internal && n.recipient.label() == customer && n.sent_at.is_some())
            .map(|n| (n.created_at, n.id.clone(), n.status))
            .collect();
        expected.sort_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
        let shown: Vec<_> = feed
            .iter()
            .map(|e| (e.created_at, e.notification_id.clone(), e.status))
            .collect();
        assert_eq!(shown, expected, "{customer}'s feed");
        assert_eq!(
            h.local.views.unread(&org, &c).await.unwrap(),
            expected.len() as u64
        );
    }
    assert!(
        all.iter().any(|n| n.internal),
        "the chargeback exists but is in no feed"
    );
    // the statistics equal what was sent, delivered and failed
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for n in &all {
        *expected
            .entry((
                n.notification_type.to_string(),
                n.channel.to_string(),
                n.status.as_str().to_string(),
            ))
            .or_default() += 1;
    }
    let stats = h
        .local
        .views
        .stats(&org, chrono::Utc::now().date_naive())
        .await
        .unwrap();
    let counted: BTreeMap<(String, String, String), u64> = stats
        .iter()
        .map(|s| {
            (
                (
                    s.key.notification_type.clone(),
                    s.key.channel.to_string(),
                    s.key.outcome.as_str().to_string(),
                ),
                s.count,
            )
        })
        .collect();
    assert_eq!(counted, expected);
    assert_eq!(all.iter().filter(|n| n.status == Status::Failed).count(), 1);
    assert_eq!(h.local.views.dead_letters(&org, 10).await.unwrap().len(), 1);

    // replaying every stream record from the start changes nothing
    let ids: Vec<_> = all.iter().map(|n| n.id.clone()).collect();
    let before = snapshot(&h, &ids, &["cus_a", "cus_b"]).await;
    let replay = StreamReader::new(&h.local.aws, h.local.stack.names.notifications_table())
        .read()
        .await
        .unwrap();
    assert!(replay.records.len() > 20);
    for _ in 0..2 {
        let response = herald_projector::handle(
            &h.local.projector,
            LambdaEvent::new(replay.clone(), Default::default()),
        )
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(snapshot(&h, &ids, &["cus_a", "cus_b"]).await, before);
}

#[tokio::test]
async fn a_malformed_stream_record_fails_alone() {
    let h = Harness::new().await;
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/projector/stream-batch.json")).unwrap();
    let records = event["Records"].as_array_mut().unwrap();
    let mut bad = records[0].clone();
    bad["dynamodb"]["NewImage"]["status"] = json!({"S": "exploded"});
    bad["dynamodb"]["SequenceNumber"] = json!("999");
    records.insert(1, bad);
    let event: aws_lambda_events::dynamodb::Event = serde_json::from_value(event).unwrap();
    let response = herald_projector::handle(
        &h.local.projector,
        LambdaEvent::new(event.clone(), Default::default()),
    )
    .await
    .unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![Some("999".to_string())]);
    // the good records were projected
    let first = &event.records[0].change.new_image;
    let n: herald_core::model::Notification = serde_dynamo::from_item(first.clone()).unwrap();
    let log = h.local.views.log(&n.org_id, &n.id).await.unwrap();
    assert!(!log.is_empty());
}

/// Many orders for one customer in one run: the feed entries are plain puts (no counter to
/// collide on, no transaction), every batch goes through and the unread count is exact.
#[tokio::test]
async fn a_burst_of_notifications_for_one_customer_is_projected_without_collisions() {
    const ORDERS: usize = 60;
    let h = Harness::new().await;
    let email = h.email("burst");
    h.run(&[h.contact("cus_burst", &email, None, "en").await])
        .await;
    let orders: Vec<_> = (0..ORDERS)
        .map(|i| h.order_created("cus_burst", &format!("ord_burst_{i}")))
        .collect();
    let reports = h.run(&orders).await;
    assert!(reports.iter().all(|r| r.outcome == "notified"));
    let customer = CustomerId::parse("cus_burst").unwrap();
    assert_eq!(
        h.local.views.unread(&h.org_id(), &customer).await.unwrap(),
        ORDERS as u64,
        "one unread per order"
    );
    let feed = h
        .local
        .views
        .feed(&h.org_id(), &customer, 1000)
        .await
        .unwrap();
    assert_eq!(feed.len(), ORDERS);
    assert!(feed.iter().all(|e| e.status == Status::Sent), "{feed:?}");
    // no transaction writes the feed: its entries go with the batch's other puts
    let projector = |operation: &str| {
        h.local
            .requests
            .requests()
            .into_iter()
            .filter(|r| {
                r.component == herald_local::requests::Component::Projector
                    && r.operation == operation
                    && r.writes
                        .iter()
                        .any(|w| w.key.get("pk").is_some_and(|pk| pk.contains("FEED#")))
            })
            .count()
    };
    assert_eq!(projector("TransactWriteItems"), 0);
    assert!(projector("BatchWriteItem") > 0);
}

/// The unread count is counted over the customer's newest entries when asked: read and
/// withdrawn entries are not counted, and neither are those beyond the newest thousand.
#[tokio::test]
async fn the_unread_count_looks_at_the_newest_thousand_entries_and_counts_the_unread() {
    use herald_core::ports::UNREAD_WINDOW;
    use herald_core::projection::{FeedEntry, ViewWrite};
    let h = Harness::new().await;
    let customer = CustomerId::parse("cus_many").unwrap();
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    let entry = |i: usize, status: Status| {
        let at = start + chrono::Duration::seconds(i as i64);
        ViewWrite::FeedCreate(FeedEntry {
            org_id: h.org_id(),
            customer_id: customer.clone(),
            notification_id: NotificationId::parse(format!("ntf_{i:032x}")).unwrap(),
            notification_type: "order_confirmation".into(),
            channel: herald_core::model::Channel::InApp,
            title: None,
            body: "Your order".into(),
            status,
            read: false,
            created_at: at,
            updated_at: at,
        })
    };
    let total = UNREAD_WINDOW + 5;
    let writes: Vec<ViewWrite> = (0..total)
        .map(|i| {
            entry(
                i,
                if i == total - 1 {
                    Status::Skipped
                } else {
                    Status::Sent
                },
            )
        })
        .collect();
    for chunk in writes.chunks(100) {
        h.local.views.apply(chunk).await.unwrap();
    }
    // the newest is withdrawn (never sent): of the newest thousand, 999 are unread
    let views = &h.local.views;
    assert_eq!(views.unread(&h.org_id(), &customer).await.unwrap(), 999);
    let newest_sent = match &writes[total - 2] {
        ViewWrite::FeedCreate(e) => e.clone(),
        _ => unreachable!(),
    };
    assert!(
        views
            .mark_read(
                &h.org_id(),
                &customer,
                newest_sent.created_at,
                &newest_sent.notification_id
            )
            .await
            .unwrap()
    );
    assert_eq!(views.unread(&h.org_id(), &customer).await.unwrap(), 998);
    // a replay of a read entry's creation leaves it read
    views.apply(&writes[total - 2..total - 1]).await.unwrap();
    assert_eq!(views.unread(&h.org_id(), &customer).await.unwrap(), 998);
}

/// The audit log keeps one item per notification and stream batch; a batch retried with other
/// bounds repeats entries in a second item, and the log shows each entry once, in order.
#[tokio::test]
async fn log_entries_written_again_by_a_batch_with_other_bounds_show_once() {
    use herald_core::projection::{LogEntry, ViewWrite};
    let h = Harness::new().await;
    let id = NotificationId::parse("ntf_0123456789abcdef0123456789abcdef").unwrap();
    let entry = |revision: u32, event: &str| {
        ViewWrite::Log(LogEntry {
            org_id: h.org_id(),
            notification_id: id.clone(),
            at: chrono::Utc::now(),
            event: event.to_string(),
            revision,
            attempt: 1,
            reason: None,
            next_attempt_at: None,
        })
    };
    h.local
        .views
        .apply(&[entry(1, "created"), entry(2, "sending")])
        .await
        .unwrap();
    // the retry starts at the second record and reaches further
    h.local
        .views
        .apply(&[entry(2, "sending"), entry(3, "sent")])
        .await
        .unwrap();
    let events: Vec<String> = h
        .local
        .views
        .log(&h.org_id(), &id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["created", "sending", "sent"]);
}
