#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Channel fallback: a critical notification its channel cannot reach the recipient through
//! (no address, or every provider failing for good) goes through the recipient's next channel
//! in the documented order; a non-critical one never changes channel.

mod common;

use serde_json::{Value, json};

use common::World;
use herald_core::model::{Channel, Status};
use herald_core::ports::SendError;
use herald_core::record::Outcome;
use herald_core::testing::{Script, ScriptedSender};

/// A customer who takes SMS and email, with a phone number and an address.
async fn reachable_by_sms_and_email(w: &mut World) {
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"email": true, "sms": true}), json!([]))
        .await;
}

/// An alert asked for on SMS only.
fn alert(critical: bool) -> Value {
    json!({
        "customer_id": "cus_a", "idempotency_key": "alert-1",
        "notification_type": "reminder", "channels": ["sms"], "critical": critical,
        "context": {"reminder_id": "r1", "severity": "critical", "title": "Card expired",
                    "body": "Your payment failed."}
    })
}

fn channels(w: &World) -> Vec<(Channel, Status)> {
    w.notifications()
        .into_iter()
        .map(|n| (n.channel, n.status))
        .collect()
}

#[tokio::test]
async fn a_critical_notification_whose_providers_all_fail_for_good_goes_by_the_next_channel() {
    let mut w = World::new();
    w.sms = ScriptedSender::new(vec![Script::Fail(SendError::hard(
        "channel sms is not configured",
    ))]);
    reachable_by_sms_and_email(&mut w).await;
    let record = w.event("NotificationRequested", alert(true)).await;
    assert_eq!(record.notifications.len(), 1);
    w.drain().await; // the SMS fails and its fallback is queued
    w.drain().await; // the fallback email goes
    let mut got = channels(&w);
    got.sort();
    assert_eq!(
        got,
        vec![
            (Channel::Email, Status::Sent),
            (Channel::Sms, Status::Failed)
        ]
    );
    let sms = w
        .notifications()
        .into_iter()
        .find(|n| n.channel == Channel::Sms)
        .unwrap();
    assert!(
        sms.note
            .as_deref()
            .unwrap()
            .starts_with("fell back to email"),
        "{:?}",
        sms.note
    );
    let email = w.email.sent.lock().unwrap()[0].clone();
    assert_eq!(email.body, sms.fallbacks[0].body);
    assert!(email.critical);

    // the failed SMS handled again (a redelivered message) creates no second email
    let again = w.dispatcher();
    let _ = again
        .dispatch(&herald_core::ports::DispatchMessage {
            org_id: sms.org_id.clone(),
            notification_id: sms.id.clone(),
        })
        .await
        .unwrap();
    w.drain().await;
    assert_eq!(w.email.calls(), 1);
    assert_eq!(w.notifications().len(), 2);
}

#[tokio::test]
async fn a_critical_alert_whose_sms_providers_are_all_down_goes_by_email_at_once() {
    let mut w = World::new();
    // SNS answering 5xx: a soft failure, which a notification that is not critical retries
    w.sms = ScriptedSender::new(vec![Script::Fail(
        SendError::soft("sns InternalError").with_code("InternalError"),
    )]);
    reachable_by_sms_and_email(&mut w).await;
    w.event("NotificationRequested", alert(true)).await;
    w.drain().await;
    w.drain().await;
    let mut got = channels(&w);
    got.sort();
    assert_eq!(
        got,
        vec![
            (Channel::Email, Status::Sent),
            (Channel::Sms, Status::Failed)
        ]
    );
    let all = w.notifications();
    let sms = all.iter().find(|n| n.channel == Channel::Sms).unwrap();
    let email = all.iter().find(|n| n.channel == Channel::Email).unwrap();
    assert_eq!(sms.attempts, 1, "no backoff on a channel that is down");
    assert!(sms.note.as_deref().unwrap().contains(email.id.as_str()));
    assert_eq!(
        email.note.as_deref(),
        Some(format!("fallback for sms ({})", sms.id).as_str())
    );
    assert_eq!(w.sms.calls(), 1);

    // the same outage for an alert that is not critical: retried on SMS, never by email
    let mut w = World::new();
    w.sms = ScriptedSender::new(vec![Script::Fail(SendError::soft("sns InternalError"))]);
    reachable_by_sms_and_email(&mut w).await;
    w.event("NotificationRequested", alert(false)).await;
    w.drain().await;
    assert_eq!(channels(&w), vec![(Channel::Sms, Status::Retrying)]);
    assert_eq!(w.email.calls(), 0);
}

#[tokio::test]
async fn a_notification_that_is_not_critical_never_changes_channel() {
    let mut w = World::new();
    w.sms = ScriptedSender::new(vec![Script::Fail(SendError::hard(
        "channel sms is not configured",
    ))]);
    reachable_by_sms_and_email(&mut w).await;
    w.event("NotificationRequested", alert(false)).await;
    w.drain().await;
    w.drain().await;
    assert_eq!(channels(&w), vec![(Channel::Sms, Status::Failed)]);
    assert_eq!(w.email.calls(), 0);
    assert!(w.notifications()[0].fallbacks.is_empty());
}

#[tokio::test]
async fn a_critical_notification_without_an_address_on_its_channel_takes_the_next_at_intake() {
    let mut w = World::new();
    // an address but no phone number
    w.event(
        "CustomerContactChanged",
        json!({"customer_id": "cus_a", "email": "cus_a@example.com", "locale": "en"}),
    )
    .await;
    w.preferences("cus_a", json!({"email": true, "sms": true}), json!([]))
        .await;
    let record = w.event("NotificationRequested", alert(true)).await;
    assert_eq!(record.outcome, Outcome::Notified, "{:?}", record.reason);
    assert_eq!(record.skipped[0].channel, Channel::Sms);
    assert_eq!(
        record.skipped[0].reason,
        "no phone number; fell back to email"
    );
    w.drain().await;
    assert_eq!(channels(&w), vec![(Channel::Email, Status::Sent)]);

    // not critical: skipped for want of a number, nothing else
    let mut w = World::new();
    w.event(
        "CustomerContactChanged",
        json!({"customer_id": "cus_a", "email": "cus_a@example.com", "locale": "en"}),
    )
    .await;
    let record = w.event("NotificationRequested", alert(false)).await;
    assert_eq!(record.outcome, Outcome::Skipped);
    assert!(w.notifications().is_empty());
}

#[tokio::test]
async fn the_fallback_is_a_channel_the_recipient_accepts_in_the_documented_order() {
    let mut w = World::new();
    w.sms = ScriptedSender::new(vec![Script::Fail(SendError::hard(
        "channel sms is not configured",
    ))]);
    w.contact("cus_a", "en").await;
    // email turned off: the next channel the customer takes is the in-app feed
    w.preferences(
        "cus_a",
        json!({"email": false, "sms": true, "in_app": true}),
        json!([]),
    )
    .await;
    w.event("NotificationRequested", alert(true)).await;
    let created = w.notifications();
    let order: Vec<Channel> = created[0].fallbacks.iter().map(|f| f.channel).collect();
    assert_eq!(order, vec![Channel::InApp]);
    w.drain().await;
    w.drain().await;
    let mut got = channels(&w);
    got.sort();
    assert_eq!(
        got,
        vec![
            (Channel::Sms, Status::Failed),
            (Channel::InApp, Status::Delivered)
        ]
    );
    assert_eq!(w.email.calls(), 0);
}
