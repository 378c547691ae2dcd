//! The scheduler's sweep against the emulator: scheduled sends and long backoffs.

use chrono::{Duration, SubsecRound, Utc};
use herald_core::model::Status;
use herald_core::ports::NotificationStore;
use herald_core::ports::Views;
use herald_core::retry::RetryPolicy;
use herald_core::testing::FixedClock;
use herald_e2e::Harness;
use serde_json::json;

#[tokio::test]
async fn a_review_prompt_goes_out_at_its_time_once_even_with_overlapping_ticks() {
    let h = Harness::new().await;
    let email = h.email("rp");
    h.run(&[h.contact("cus_r", &email, None, "en").await]).await;
    let delivered_at = Utc::now() - Duration::days(1);
    let report = h
        .run_one(h.event(
            "OrderDelivered",
            "ordering",
            json!({"customer_id": "cus_r", "order_id": "ord_r", "delivered_at": delivered_at.to_rfc3339()}),
        ))
        .await;
    let due = delivered_at + Duration::days(7);
    assert_eq!(report.notifications[0].status, "pending");

    let before = h
        .local
        .tick(Some(due - Duration::minutes(1)))
        .await
        .unwrap();
    assert_eq!(before.sweep.enqueued, 0);
    assert!(
        h.sent().await.emails_to(&email).is_empty(),
        "nothing before its time"
    );

    // two sweeps at once, then the dispatch that follows them
    let after = due + Duration::seconds(30);
    let (a, b) = (h.scheduler_at(after), h.scheduler_at(after));
    let (ra, rb) = futures::join!(a.sweep(), b.sweep());
    assert!(ra.unwrap().enqueued + rb.unwrap().enqueued >= 1);
    let tick = h.local.tick(Some(after)).await.unwrap();
    assert!(
        tick.notifications.iter().any(|n| n.status == "sent"),
        "{tick:?}"
    );
    assert_eq!(h.sent().await.emails_to(&email).len(), 1);
    // and a later tick finds nothing more to do
    assert_eq!(
        h.local
            .tick(Some(after + Duration::minutes(1)))
            .await
            .unwrap()
            .sweep
            .enqueued,
        0
    );
    assert_eq!(h.sent().await.emails_to(&email).len(), 1);
}

fn two_hour_backoff(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: std::time::Duration::from_secs(7200),
        factor: 1,
        cap: std::time::Duration::from_secs(7200),
        jitter: 0.0,
    }
}

#[tokio::test]
async fn a_soft_failure_two_hours_out_is_sent_by_the_tick_after_two_hours() {
    let h = Harness::new().await;
    let email = h.email("soft");
    h.run(&[h.contact("cus_s", &email, None, "en").await]).await;
    let record = h.invoke_intake(&h.order_created("cus_s", "ord_s")).await;
    let id = record.notifications[0].clone();
    // stored times keep milliseconds
    let start = Utc::now().trunc_subsecs(3);
    let failing = h.dispatcher(
        h.unreachable_ses(),
        FixedClock::at(start),
        two_hour_backoff(3),
    );
    h.dispatch_with(&failing).await;
    let n = h.local.store.get(&h.org_id(), &id).await.unwrap().unwrap();
    assert_eq!(n.status, Status::Retrying);
    assert_eq!(n.next_retry_at, Some(start + Duration::hours(2)));
    assert_eq!(
        h.queue_depth().await,
        (0, 0),
        "two hours is beyond the queue's reach"
    );

    assert_eq!(
        h.local
            .tick(Some(start + Duration::minutes(119)))
            .await
            .unwrap()
            .sweep
            .enqueued,
        0
    );
    assert!(h.sent().await.emails_to(&email).is_empty());
    let tick = h
        .local
        .tick(Some(start + Duration::hours(2) + Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(tick.sweep.enqueued, 1);
    assert_eq!(h.sent().await.emails_to(&email).len(), 1);
    let n = h.local.store.get(&h.org_id(), &id).await.unwrap().unwrap();
    assert_eq!((n.status, n.attempts), (Status::Sent, 2));
}

#[tokio::test]
async fn after_the_last_attempt_it_is_failed_and_listed_among_the_dead_letters() {
    let h = Harness::new().await;
    h.run(&[h.contact("cus_f", &h.email("f"), None, "en").await])
        .await;
    let record = h.invoke_intake(&h.order_created("cus_f", "ord_f")).await;
    let id = record.notifications[0].clone();
    // stored times keep milliseconds
    let start = Utc::now().trunc_subsecs(3);
    h.dispatch_with(&h.dispatcher(
        h.unreachable_ses(),
        FixedClock::at(start),
        two_hour_backoff(2),
    ))
    .await;
    let later = start + Duration::hours(2);
    assert_eq!(h.scheduler_at(later).sweep().await.unwrap().enqueued, 1);
    h.dispatch_with(&h.dispatcher(
        h.unreachable_ses(),
        FixedClock::at(later),
        two_hour_backoff(2),
    ))
    .await;
    let n = h.local.store.get(&h.org_id(), &id).await.unwrap().unwrap();
    assert_eq!(n.status, Status::Failed);
    assert_eq!(
        n.last_error.as_deref(),
        Some("gave up after 2 attempts: SES could not be reached")
    );
    h.local.project().await.unwrap();
    let dead = h.local.views.dead_letters(&h.org_id(), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].notification_id, id);
    assert_eq!(dead[0].last_error, n.last_error);
    let log: Vec<String> = h
        .local
        .views
        .log(&h.org_id(), &id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.event)
        .collect();
    assert_eq!(
        log,
        vec!["created", "sending", "retrying", "sending", "failed"]
    );
}

#[tokio::test]
async fn an_opt_out_before_a_scheduled_send_withholds_it_and_it_never_reaches_the_feed() {
    let h = Harness::new().await;
    let email = h.email("optout");
    h.run(&[
        h.contact("cus_o", &email, None, "en").await,
        h.preferences("cus_o", json!({"email": true}), json!([])),
    ])
    .await;
    let delivered_at = Utc::now() - Duration::days(1);
    let report = h
        .run_one(h.event(
            "OrderDelivered",
            "ordering",
            json!({"customer_id": "cus_o", "order_id": "ord_o", "delivered_at": delivered_at.to_rfc3339()}),
        ))
        .await;
    // scheduled a week out: not sent, so not in the feed yet
    assert!(!report.notifications[0].in_feed);
    let customer = herald_core::ids::CustomerId::parse("cus_o").unwrap();
    let org = h.org_id();
    assert_eq!(h.local.views.unread(&org, &customer).await.unwrap(), 0);

    // then the customer unsubscribes from review prompts and turns email off
    h.run(&[h.preferences("cus_o", json!({"email": false}), json!(["review_prompt"]))])
        .await;
    let tick = h
        .local
        .tick(Some(
            delivered_at + Duration::days(7) + Duration::seconds(30),
        ))
        .await
        .unwrap();
    let n = &tick.notifications[0];
    assert_eq!(
        (n.status.as_str(), n.log.last().map(|l| l.event.as_str())),
        ("skipped", Some("skipped")),
        "{tick:?}"
    );
    assert!(h.sent().await.emails_to(&email).is_empty(), "nothing sent");
    // never sent, so not the customer's to see or count
    assert!(
        h.local
            .views
            .feed(&org, &customer, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.local.views.unread(&org, &customer).await.unwrap(), 0);
    let id = herald_core::ids::NotificationId::parse(n.id.clone()).unwrap();
    let stored = h.local.store.get(&org, &id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Skipped);
    assert_eq!(
        stored.note.as_deref(),
        Some("unsubscribed from review_prompt")
    );
    assert!(
        stored.failed_at.is_none(),
        "not a failure, not a dead letter"
    );
    assert!(
        h.local
            .views
            .dead_letters(&org, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
