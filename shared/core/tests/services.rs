#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Unit tests of the intake and dispatch services on in-memory ports.

use std::time::Duration;

use serde_json::json;

use herald_core::consent::SuppressionKey;
use herald_core::dispatch::{DispatchError, DispatchOutcome, Skip};
use herald_core::event::EventEnvelope;
use herald_core::ids::{EmailAddress, OrgId};
use herald_core::model::{Address, Channel, Status};
use herald_core::ports::{Directory, DispatchMessage, SendError};
use herald_core::record::Outcome;
use herald_core::testing::{Script, ScriptedSender};

mod common;

use common::{ORG, World, at, order, refund};

#[tokio::test]
async fn no_preferences_means_email_only() {
    let mut w = World::new();
    w.contact("cus_carol", "en-US").await;
    let r = w.event("RefundIssued", refund("cus_carol")).await;
    assert_eq!(r.outcome, Outcome::Notified);
    let all = w.notifications();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].channel, Channel::Email);
    w.drain().await;
    assert_eq!(w.email.calls(), 1);
    assert_eq!(w.sms.calls(), 0);
}

#[tokio::test]
async fn unsubscribed_customers_get_nothing_and_the_skip_is_recorded() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences(
        "cus_a",
        json!({"email": true}),
        json!(["order_confirmation"]),
    )
    .await;
    let r = w.event("OrderCreated", order("cus_a", "ord_1")).await;
    assert_eq!(r.outcome, Outcome::Skipped);
    assert_eq!(
        r.reason.as_deref(),
        Some("unsubscribed from order_confirmation")
    );
    assert!(w.notifications().is_empty());
    assert_eq!(w.store.intake.lock().unwrap()[&r.event_id], r);
}

#[tokio::test]
async fn all_channels_disabled_is_skipped_with_no_enabled_channels() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"email": false, "sms": false}), json!([]))
        .await;
    let r = w.event("RefundIssued", refund("cus_a")).await;
    assert_eq!(
        (r.outcome, r.reason.as_deref()),
        (Outcome::Skipped, Some("no enabled channels"))
    );
    assert!(w.notifications().is_empty());
}

#[tokio::test]
async fn refund_goes_by_email_and_sms_in_the_customers_language() {
    let mut w = World::new();
    w.contact("cus_b", "fr-CA").await;
    w.preferences("cus_b", json!({"email": true, "sms": true}), json!([]))
        .await;
    let r = w.event("RefundIssued", refund("cus_b")).await;
    assert_eq!(r.notifications.len(), 2);
    let outcomes = w.drain().await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, DispatchOutcome::Sent { .. })),
        "{outcomes:?}"
    );
    let email = &w.email.sent.lock().unwrap()[0];
    assert!(email.body.contains("25,00\u{a0}€"), "{}", email.body);
    assert!(email.subject.as_deref().unwrap().contains("ref_1") || email.body.contains("ord_9"));
    let sms = &w.sms.sent.lock().unwrap()[0];
    assert!(sms.body.contains("25,00"), "{}", sms.body);
    assert!(
        w.notifications()
            .iter()
            .all(|n| n.status == Status::Sent && n.provider_message_id.is_some())
    );
    // the third event of the test: its time is kept, the latency counts from it
    assert!(
        w.notifications()
            .iter()
            .all(|n| n.event_at == Some(at("2026-11-20T10:00:03Z")))
    );
}

#[tokio::test]
async fn the_same_order_delivered_three_times_or_published_twice_notifies_once() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    for _ in 0..3 {
        w.event_with_id("evt-same", "OrderCreated", order("cus_a", "ord_1"))
            .await;
    }
    w.event_with_id("evt-republished", "OrderCreated", order("cus_a", "ord_1"))
        .await;
    assert_eq!(w.notifications().len(), 1);
    w.drain().await;
    assert_eq!(w.email.calls(), 1);
    // after the send, a late redelivery enqueues nothing
    w.event_with_id("evt-same", "OrderCreated", order("cus_a", "ord_1"))
        .await;
    assert!(w.queue.take().is_empty());
}

#[tokio::test]
async fn a_missing_template_variable_rejects_the_event_naming_it() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    let r = w
        .event(
            "NotificationRequested",
            json!({"customer_id": "cus_a", "idempotency_key": "k1", "notification_type": "order_confirmation",
                   "context": {"order_id": "o1", "currency": "USD", "items": [], "created_at": "2026-11-20T09:00:00Z"}}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Rejected);
    assert!(
        r.reason.as_deref().unwrap().contains("grand_total"),
        "{:?}",
        r.reason
    );
    assert!(w.notifications().is_empty());
    assert!(w.queue.take().is_empty());
}

#[tokio::test]
async fn malformed_events_are_rejected_and_write_nothing_else() {
    let mut w = World::new();
    let mut bad = order("cus_a", "ord_1");
    bad["grand_total"] = json!(true);
    let r = w.event("OrderCreated", bad).await;
    assert_eq!(r.outcome, Outcome::Rejected);
    assert!(r.reason.as_deref().unwrap().contains("grand_total"));
    let r = w.event("InvoicePainted", json!({})).await;
    assert_eq!(
        r.reason.as_deref(),
        Some("unknown detail-type \"InvoicePainted\"")
    );
    assert!(w.notifications().is_empty());
    assert_eq!(w.store.intake.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn scheduled_notifications_are_stored_but_not_sent() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    let r = w
        .event("OrderDelivered", json!({"customer_id": "cus_a", "order_id": "ord_1", "delivered_at": "2026-11-20T12:00:00Z"}))
        .await;
    assert_eq!(r.outcome, Outcome::Notified);
    let n = &w.notifications()[0];
    assert_eq!(n.scheduled_for, Some(at("2026-11-27T12:00:00Z")));
    assert!(
        w.queue.take().is_empty(),
        "scheduled notifications are not enqueued"
    );
    // even a stray message for it sends nothing before its time
    let outcome = w
        .dispatcher()
        .dispatch(&DispatchMessage {
            org_id: n.org_id.clone(),
            notification_id: n.id.clone(),
        })
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            DispatchOutcome::Skipped(Skip::NotDue {
                requeued: false,
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(w.email.calls(), 0);
}

#[tokio::test]
async fn internal_notifications_go_to_the_operations_contact() {
    let mut w = World::new();
    // the organization registered its own sending domain
    let domain = herald_core::identity::SenderIdentity::parse("herald.example").unwrap();
    let org = OrgId::parse(ORG).unwrap();
    w.directory
        .claim_identity(&org, &domain, chrono::Utc::now())
        .await
        .unwrap();
    w.event(
        "OrganizationSettingsChanged",
        json!({"operations_email": "ops@acme.example", "sender_email": "billing@herald.example"}),
    )
    .await;
    let r = w
        .event(
            "ChargebackOpened",
            json!({"chargeback_id": "cb_1", "order_id": "ord_1", "amount": "10", "currency": "USD", "reason": "fraudulent"}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Notified);
    let n = &w.notifications()[0];
    assert!(n.internal);
    assert_eq!(
        n.address,
        Address::Email(EmailAddress::parse("ops@acme.example").unwrap())
    );
    assert_eq!(
        n.sender.as_ref().unwrap().as_str(),
        "billing@herald.example"
    );
}

#[tokio::test]
async fn channels_without_an_address_or_suppressed_are_skipped_and_the_others_go() {
    let mut w = World::new();
    w.event(
        "CustomerContactChanged",
        json!({"customer_id": "cus_a", "email": "a@example.com"}),
    )
    .await;
    w.preferences("cus_a", json!({"email": true, "sms": true}), json!([]))
        .await;
    let r = w.event("RefundIssued", refund("cus_a")).await;
    assert_eq!(r.outcome, Outcome::Notified);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(
        (r.skipped[0].channel, r.skipped[0].reason.as_str()),
        (Channel::Sms, "no phone number")
    );

    let org = OrgId::parse(ORG).unwrap();
    let key = SuppressionKey {
        channel: Channel::Email,
        address: "a@example.com".into(),
    };
    w.directory
        .suppress(&org, &key, "hard bounce", chrono::Utc::now())
        .await
        .unwrap();
    let r = w.event("OrderCreated", order("cus_a", "ord_2")).await;
    assert_eq!(r.outcome, Outcome::Skipped);
    assert_eq!(r.reason.as_deref(), Some("email: suppressed"));
}

#[tokio::test]
async fn quiet_hours_delay_all_but_critical_notifications() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.event(
        "NotificationPreferencesChanged",
        json!({"customer_id": "cus_a", "channels": {"email": true, "sms": true, "in_app": true}, "unsubscribed": [],
               "quiet_hours": {"start": "22:00", "end": "07:00"}}),
    )
    .await;
    // 03:00 UTC is 22:00 in New York
    w.clock.set(at("2026-11-21T03:00:00Z"));
    w.event("RefundIssued", refund("cus_a")).await;
    assert!(
        w.notifications()
            .iter()
            .all(|n| n.scheduled_for == Some(at("2026-11-21T12:00:00Z")))
    );
    assert!(w.queue.take().is_empty());
    w.event(
        "ReminderDue",
        json!({"customer_id": "cus_a", "reminder_id": "r1", "severity": "critical", "title": "Pay", "body": "Now"}),
    )
    .await;
    let reminders: Vec<_> = w
        .notifications()
        .into_iter()
        .filter(|n| n.notification_type.as_str() == "reminder")
        .collect();
    assert_eq!(reminders.len(), 3);
    assert!(reminders.iter().all(|n| n.scheduled_for.is_none()));
    assert_eq!(w.queue.take().len(), 3);
}

#[tokio::test]
async fn an_older_directory_event_never_overwrites_a_newer_one() {
    let mut w = World::new();
    let newer = EventEnvelope {
        id: "e2".into(),
        detail_type: "CustomerContactChanged".into(),
        source: "customers".into(),
        time: Some(at("2026-11-20T12:00:00Z")),
        detail: json!({"organization_id": ORG, "customer_id": "cus_a", "email": "new@example.com"}),
    };
    let older = EventEnvelope {
        id: "e1".into(),
        time: Some(at("2026-11-20T11:00:00Z")),
        detail: json!({"organization_id": ORG, "customer_id": "cus_a", "email": "old@example.com"}),
        ..newer.clone()
    };
    w.intake.handle(&newer).await.unwrap();
    w.intake.handle(&older).await.unwrap();
    w.event("OrderCreated", order("cus_a", "o1")).await;
    assert_eq!(
        w.notifications()[0].address,
        Address::Email(EmailAddress::parse("new@example.com").unwrap())
    );
}

async fn one_queued_email(w: &mut World) -> DispatchMessage {
    w.contact("cus_a", "en").await;
    w.event("OrderCreated", order("cus_a", "ord_1")).await;
    let mut queued = w.queue.take();
    assert_eq!(queued.len(), 1);
    queued.remove(0).message
}

#[tokio::test]
async fn an_emails_html_is_kept_once_with_its_events_record_and_sent_with_it() {
    let mut w = World::new();
    let m = one_queued_email(&mut w).await;
    let stored = &w.notifications()[0];
    assert!(stored.has_html, "the notification knows it has one");
    assert_eq!(stored.html_body, None, "but does not carry it");
    let record = w
        .store
        .intake
        .lock()
        .unwrap()
        .values()
        .find(|r| r.outcome == Outcome::Notified)
        .cloned()
        .unwrap();
    let kept = record
        .html_bodies
        .get(&stored.id)
        .expect("the record keeps it");
    assert!(kept.contains("<html"), "{kept}");

    w.dispatcher().dispatch(&m).await.unwrap();
    let sent = w.email.sent.lock().unwrap()[0].clone();
    assert_eq!(sent.html_body.as_deref(), Some(kept.as_str()));
    assert_eq!(w.notifications()[0].status, Status::Sent);
}

#[tokio::test]
async fn an_email_whose_html_cannot_be_read_is_not_sent_without_it() {
    let mut w = World::new();
    let m = one_queued_email(&mut w).await;
    // as if the intake had died between the notification's write and the record's
    w.store.intake.lock().unwrap().clear();
    let result = w.dispatcher().dispatch(&m).await;
    assert!(matches!(result, Err(DispatchError::Port(_))), "{result:?}");
    assert_eq!(w.email.calls(), 0, "nothing sent");
    assert_eq!(
        w.notifications()[0].status,
        Status::Sending,
        "left to its lease"
    );
}

#[tokio::test]
async fn hard_failures_dead_letter_at_once_with_the_reason() {
    let mut w = World::with_email(ScriptedSender::new(vec![Script::Fail(SendError::hard(
        "address rejected",
    ))]));
    let m = one_queued_email(&mut w).await;
    let outcome = w.dispatcher().dispatch(&m).await.unwrap();
    assert_eq!(
        outcome,
        DispatchOutcome::Failed {
            reason: "address rejected".into()
        }
    );
    let n = &w.notifications()[0];
    assert_eq!(
        (n.status, n.last_error.as_deref(), n.attempts),
        (Status::Failed, Some("address rejected"), 1)
    );
    assert!(n.failed_at.is_some());
    assert!(w.queue.take().is_empty());
}

#[tokio::test]
async fn a_send_records_the_service_and_a_refused_address_its_code_and_suppression() {
    use herald_core::model::DeliveryService;
    // the provider dispatch asked is the one recorded
    let refusal = SendError::recipient("SES refused the address").with_code("21610");
    let mut w = World::with_email(ScriptedSender::new(vec![Script::Fail(refusal)]));
    let m = one_queued_email(&mut w).await;
    w.dispatcher().dispatch(&m).await.unwrap();
    let n = &w.notifications()[0];
    assert_eq!(n.status, Status::Failed);
    assert_eq!(n.provider, Some(DeliveryService::Ses));
    assert_eq!(n.error_code.as_ref().map(|c| c.as_str()), Some("21610"));
    assert!(n.suppressed_at.is_some(), "the address went on the list");

    // a hard failure is no suppression
    let mut w = World::with_email(ScriptedSender::new(vec![Script::Fail(
        SendError::hard("SES rejected the message: MessageRejected").with_code("MessageRejected"),
    )]));
    let m = one_queued_email(&mut w).await;
    w.dispatcher().dispatch(&m).await.unwrap();
    let n = &w.notifications()[0];
    assert_eq!(n.status, Status::Failed);
    assert_eq!(
        n.error_code.as_ref().map(|c| c.as_str()),
        Some("MessageRejected")
    );
    assert_eq!(n.suppressed_at, None);
}

#[tokio::test]
async fn soft_failures_come_back_with_a_growing_delay_then_dead_letter() {
    let mut w = World::with_email(ScriptedSender::new(vec![Script::Fail(SendError::soft(
        "throttled",
    ))]));
    let m = one_queued_email(&mut w).await;
    let d = w.dispatcher();
    let start = herald_core::ports::Clock::now(&*w.clock);
    let DispatchOutcome::Retrying {
        next_retry_at,
        requeued,
    } = d.dispatch(&m).await.unwrap()
    else {
        panic!()
    };
    assert!(requeued, "a five-minute backoff fits in the queue's delay");
    let requeue = w.queue.take();
    assert!(
        requeue[0].delay >= Duration::from_secs(300)
            && requeue[0].delay <= Duration::from_secs(330)
    );
    assert!(next_retry_at >= start + chrono::Duration::minutes(5));

    // the message arrives when due: second attempt, 30 minutes, beyond the queue's reach
    w.clock.set(next_retry_at);
    let DispatchOutcome::Retrying {
        next_retry_at,
        requeued,
    } = d.dispatch(&m).await.unwrap()
    else {
        panic!()
    };
    assert!(!requeued, "30 minutes is left for the scheduler's sweep");
    assert!(w.queue.take().is_empty());
    w.clock.set(next_retry_at);
    let DispatchOutcome::Retrying { next_retry_at, .. } = d.dispatch(&m).await.unwrap() else {
        panic!()
    };
    w.clock.set(next_retry_at);
    let outcome = d.dispatch(&m).await.unwrap();
    assert_eq!(
        outcome,
        DispatchOutcome::Failed {
            reason: "gave up after 4 attempts: throttled".into()
        }
    );
    assert_eq!(w.email.calls(), 4);
    assert_eq!(w.notifications()[0].status, Status::Failed);
}

#[tokio::test]
async fn a_panicking_sender_fails_that_message_and_releases_the_notification() {
    let mut w = World::with_email(ScriptedSender::new(vec![Script::Panic, Script::Accept]));
    let m = one_queued_email(&mut w).await;
    let d = w.dispatcher();
    let err = d.dispatch(&m).await.unwrap_err();
    assert!(matches!(
        err,
        DispatchError::SenderPanicked {
            channel: Channel::Email
        }
    ));
    assert_eq!(w.notifications()[0].status, Status::Retrying);
    // the redelivered message sends it
    assert!(matches!(
        d.dispatch(&m).await.unwrap(),
        DispatchOutcome::Sent { .. }
    ));
    assert_eq!(w.notifications()[0].attempts, 2);
}

#[tokio::test]
async fn a_message_handled_twice_or_raced_sends_once() {
    let mut w = World::new();
    let m = one_queued_email(&mut w).await;
    let (a, b) = (w.dispatcher(), w.dispatcher());
    let (ra, rb) = futures::join!(a.dispatch(&m), b.dispatch(&m));
    let third = a.dispatch(&m).await.unwrap();
    let sent = [ra.unwrap(), rb.unwrap()]
        .into_iter()
        .filter(|o| matches!(o, DispatchOutcome::Sent { .. }))
        .count();
    assert_eq!(sent, 1);
    assert_eq!(
        third,
        DispatchOutcome::Skipped(Skip::NotClaimable(Status::Sent))
    );
    assert_eq!(w.email.calls(), 1);
}

#[tokio::test]
async fn unknown_notifications_are_acknowledged() {
    let w = World::new();
    let m = DispatchMessage {
        org_id: OrgId::parse(ORG).unwrap(),
        notification_id: herald_core::ids::NotificationId::parse("ntf_missing").unwrap(),
    };
    assert_eq!(
        w.dispatcher().dispatch(&m).await.unwrap(),
        DispatchOutcome::Skipped(Skip::NotFound)
    );
}

#[tokio::test]
async fn in_app_notifications_are_delivered_by_being_stored() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"in_app": true}), json!([]))
        .await;
    w.event(
        "ReminderDue",
        json!({"customer_id": "cus_a", "reminder_id": "r1", "severity": "low", "title": "Renew", "body": "Your plan renews soon"}),
    )
    .await;
    assert_eq!(w.drain().await, vec![DispatchOutcome::Delivered]);
    assert_eq!(w.notifications()[0].status, Status::Delivered);
    assert_eq!(w.email.calls(), 0);
}

#[tokio::test]
async fn unconfigured_channels_fail_hard() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"email": false, "push": true}), json!([]))
        .await;
    w.event(
        "DeviceRegistered",
        json!({"customer_id": "cus_a", "platform": "fcm", "token": "tok"}),
    )
    .await;
    w.event(
        "TicketPurchased",
        json!({"customer_id": "cus_a", "ticket_id": "t1", "event_name": "Jazz", "starts_at": "2026-12-06T00:30:00Z", "seats": ["A1"]}),
    )
    .await;
    assert_eq!(
        w.drain().await,
        vec![DispatchOutcome::Failed {
            reason: "channel push is not configured".into()
        }]
    );
}

fn scheduler(w: &World) -> herald_core::scheduler::SchedulerService {
    herald_core::scheduler::SchedulerService {
        index: w.store.clone(),
        queue: w.queue.clone(),
        clock: w.clock.clone(),
        config: herald_core::scheduler::SweepConfig::default(),
    }
}

#[tokio::test]
async fn a_review_prompt_is_swept_in_a_week_and_sent_once() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.event(
        "OrderDelivered",
        json!({"customer_id": "cus_a", "order_id": "ord_1", "delivered_at": "2026-11-20T12:00:00Z"}),
    )
    .await;
    assert!(w.queue.take().is_empty());
    let sweep = scheduler(&w);
    w.clock.set(at("2026-11-27T11:59:00Z"));
    assert_eq!(sweep.sweep().await.unwrap().enqueued, 0);
    w.clock.set(at("2026-11-27T12:00:30Z"));
    let report = sweep.sweep().await.unwrap();
    assert_eq!((report.enqueued, report.remaining), (1, false));
    // an overlapping sweep finds nothing more
    assert_eq!(sweep.sweep().await.unwrap().enqueued, 0);
    w.drain().await;
    assert_eq!(w.email.calls(), 1);
    assert_eq!(w.notifications()[0].status, Status::Sent);
}

#[tokio::test]
async fn schedules_within_the_queues_reach_go_straight_to_the_queue_with_a_delay() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    let soon = herald_core::ports::Clock::now(&*w.clock) + chrono::Duration::seconds(600);
    w.event(
        "NotificationRequested",
        json!({"customer_id": "cus_a", "idempotency_key": "k", "notification_type": "order_confirmation",
               "scheduled_for": soon.to_rfc3339(),
               "context": {"order_id": "o", "grand_total": "1", "currency": "USD", "items": [], "created_at": "2026-11-20T09:00:00Z"}}),
    )
    .await;
    let queued = w.queue.take();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].delay, Duration::from_secs(600));
    assert_eq!(w.notifications()[0].sweep_at, None);
}

#[tokio::test]
async fn long_backoffs_are_swept_when_due_and_a_dead_dispatchers_lease_is_taken_over() {
    let mut w = World::with_email(ScriptedSender::new(vec![
        Script::Fail(SendError::soft("throttled")),
        Script::Fail(SendError::soft("throttled")),
        Script::Accept,
    ]));
    let m = one_queued_email(&mut w).await;
    let d = w.dispatcher();
    let DispatchOutcome::Retrying { next_retry_at, .. } = d.dispatch(&m).await.unwrap() else {
        panic!()
    };
    w.queue.take();
    w.clock.set(next_retry_at);
    let DispatchOutcome::Retrying {
        next_retry_at,
        requeued,
    } = d.dispatch(&m).await.unwrap()
    else {
        panic!()
    };
    assert!(!requeued);
    let sweep = scheduler(&w);
    w.clock.set(next_retry_at - chrono::Duration::seconds(1));
    assert_eq!(sweep.sweep().await.unwrap().enqueued, 0);
    w.clock.set(next_retry_at);
    assert_eq!(sweep.sweep().await.unwrap().enqueued, 1);
    // the dispatcher that takes it dies before recording anything
    let org = OrgId::parse(ORG).unwrap();
    use herald_core::ports::NotificationStore;
    let claimed = w
        .store
        .claim(
            &org,
            &m.notification_id,
            "dead",
            next_retry_at,
            next_retry_at + chrono::Duration::seconds(120),
        )
        .await
        .unwrap();
    assert!(matches!(
        claimed,
        herald_core::ports::ClaimOutcome::Claimed(_)
    ));
    w.queue.take();
    w.clock.set(next_retry_at + chrono::Duration::seconds(121));
    assert_eq!(
        sweep.sweep().await.unwrap().enqueued,
        1,
        "the expired lease is swept"
    );
    assert!(matches!(w.drain().await[0], DispatchOutcome::Sent { .. }));
    assert_eq!(w.notifications()[0].sweep_at, None);
}

#[tokio::test]
async fn a_sweep_over_budget_reports_what_is_left_and_how_late() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    for i in 0..5 {
        w.event(
            "OrderDelivered",
            json!({"customer_id": "cus_a", "order_id": format!("ord_{i}"), "delivered_at": "2026-11-20T12:00:00Z"}),
        )
        .await;
    }
    let mut sweep = scheduler(&w);
    sweep.config.budget = 3;
    w.clock.set(at("2026-11-27T12:10:00Z"));
    let report = sweep.sweep().await.unwrap();
    assert_eq!(
        (report.enqueued, report.remaining, report.lag_seconds),
        (3, true, 600)
    );
    let report = sweep.sweep().await.unwrap();
    assert_eq!((report.enqueued, report.remaining), (2, false));
}

#[tokio::test]
async fn an_sms_is_cut_to_the_organizations_segment_cap_and_its_segments_recorded() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences(
        "cus_a",
        json!({"email": true, "sms": true, "in_app": true}),
        json!([]),
    )
    .await;
    let reminder = |id: &str| {
        json!({"customer_id": "cus_a", "reminder_id": id, "severity": "critical", "title": "Pay",
               "body": "please pay your invoice ".repeat(40)})
    };
    let r = w.event("ReminderDue", reminder("rem_1")).await;
    assert_eq!(r.outcome, Outcome::Notified, "{:?}", r.reason);
    let sms_of = |w: &World, id: &str| {
        w.notifications()
            .into_iter()
            .find(|n| n.channel == Channel::Sms && n.business_key.as_str() == id)
            .expect("an SMS")
    };
    let sms = sms_of(&w, "rem_1");
    // the default cap
    assert_eq!(sms.sms_segments, Some(3));
    assert_eq!(herald_core::sms::segments(&sms.body), 3);
    assert!(sms.body.ends_with("..."), "{}", sms.body);

    let r = w
        .event(
            "OrganizationSettingsChanged",
            json!({"sms_max_segments": 1}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::DirectoryUpdated, "{:?}", r.reason);
    w.event("ReminderDue", reminder("rem_2")).await;
    let sms = sms_of(&w, "rem_2");
    assert_eq!(sms.sms_segments, Some(1));
    assert!(sms.body.chars().count() <= 160);
    // the other channels are not counted, and the email's text is whole
    let email = w
        .notifications()
        .into_iter()
        .find(|n| n.channel == Channel::Email && n.business_key.as_str() == "rem_2")
        .expect("an email");
    assert_eq!(email.sms_segments, None);
    assert!(email.body.len() > 900);
    assert!(email.has_html);

    let r = w
        .event(
            "OrganizationSettingsChanged",
            json!({"sms_max_segments": 11}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Rejected);
    assert_eq!(
        r.reason.as_deref(),
        Some("detail.sms_max_segments: expected a whole number from 1 to 10")
    );
}
