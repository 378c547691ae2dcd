#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Consent is checked again when a notification leaves: scheduled sends, retries and retried
//! dead letters honour the recipient's preferences, unsubscribes, suppression list and quiet
//! hours as they stand then, and a provider's "this recipient opted out" suppresses at once.

mod common;

use std::sync::atomic::Ordering;

use chrono::Duration;
use proptest::prelude::*;
use serde_json::{Value, json};

use common::{ORG, World, at, order, refund};
use herald_core::consent::SuppressionKey;
use herald_core::dispatch::DispatchOutcome;
use herald_core::ids::OrgId;
use herald_core::model::{Channel, Recipient, Status};
use herald_core::ports::{
    Directory, DispatchMessage, Enqueue, NotificationStore, RetryOutcome, SendError,
};
use herald_core::record::Outcome;
use herald_core::testing::{Script, ScriptedSender};

fn org() -> OrgId {
    OrgId::parse(ORG).unwrap()
}

fn delivered(customer: &str) -> Value {
    json!({"customer_id": customer, "order_id": "ord_7", "delivered_at": "2026-11-20T12:00:00Z"})
}

#[tokio::test]
async fn an_opt_out_after_scheduling_withholds_the_scheduled_send() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"email": true}), json!([]))
        .await;
    let r = w.event("OrderDelivered", delivered("cus_a")).await;
    assert_eq!(r.outcome, Outcome::Notified);
    // Nov 21: the customer unsubscribes from review prompts and turns email off
    w.preferences("cus_a", json!({"email": false}), json!(["review_prompt"]))
        .await;
    w.clock.set(at("2026-11-27T12:00:01Z"));
    let outcomes = w.tick().await;

    assert_eq!(
        outcomes,
        vec![DispatchOutcome::Withheld {
            reason: "unsubscribed from review_prompt".into()
        }]
    );
    assert_eq!(w.email.calls(), 0);
    let n = &w.notifications()[0];
    assert_eq!(n.status, Status::Skipped);
    assert_eq!(n.note.as_deref(), Some("unsubscribed from review_prompt"));
    assert_eq!(n.sweep_at, None, "a skipped notification waits for nothing");
    // nothing left to do: a later tick sends nothing
    w.clock.set(at("2026-11-28T12:00:00Z"));
    assert!(w.tick().await.is_empty());
}

#[tokio::test]
async fn a_retried_dead_letter_to_a_suppressed_address_is_withheld() {
    let mut w = World::with_email(ScriptedSender::new(vec![
        Script::Fail(SendError::hard("SES rejected the message: MessageRejected")),
        Script::Accept,
    ]));
    w.contact("cus_a", "en").await;
    w.event("OrderCreated", order("cus_a", "ord_1")).await;
    w.drain().await;
    let failed = w.notifications()[0].clone();
    assert_eq!(failed.status, Status::Failed);
    // the address bounced meanwhile
    let key = SuppressionKey {
        channel: Channel::Email,
        address: "cus_a@example.com".into(),
    };
    w.directory
        .suppress(&org(), &key, "hard bounce", chrono::Utc::now())
        .await
        .unwrap();
    // an operator retries the dead letter
    let RetryOutcome::Reset(n) = w
        .store
        .reset_for_retry(&org(), &failed.id, at("2026-11-20T16:00:00Z"))
        .await
        .unwrap()
    else {
        panic!("not reset")
    };
    let outcome = w
        .dispatcher()
        .dispatch(&DispatchMessage {
            org_id: org(),
            notification_id: n.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        DispatchOutcome::Withheld {
            reason: "suppressed".into()
        }
    );
    assert_eq!(w.email.calls(), 1, "only the first, failed attempt");
    assert_eq!(w.notifications()[0].status, Status::Skipped);
}

#[tokio::test]
async fn quiet_hours_that_began_while_it_waited_hold_it_until_they_end() {
    let mut w = World::new();
    w.contact("cus_a", "en").await; // America/New_York
    w.preferences("cus_a", json!({"email": true}), json!([]))
        .await;
    w.event("OrderDelivered", delivered("cus_a")).await;
    // later, the customer sets quiet hours 06:00–08:00; the prompt is due at 07:00 New York
    w.event(
        "NotificationPreferencesChanged",
        json!({"customer_id": "cus_a", "channels": {"email": true}, "unsubscribed": [],
               "quiet_hours": {"start": "06:00", "end": "08:00"}}),
    )
    .await;
    w.clock.set(at("2026-11-27T12:00:00Z"));
    let outcomes = w.tick().await;
    let end = at("2026-11-27T13:00:00Z");
    assert_eq!(
        outcomes,
        vec![DispatchOutcome::Deferred {
            until: end,
            requeued: false
        }]
    );
    let n = w.notifications()[0].clone();
    assert_eq!((n.status, n.scheduled_for), (Status::Pending, Some(end)));
    assert_eq!(n.attempts, 0, "a deferral is not an attempt");
    assert_eq!(w.email.calls(), 0);
    // an hour is beyond the queue's reach: the sweep holds it until the quiet hours end
    w.clock.set(end - Duration::minutes(1));
    assert!(w.tick().await.is_empty());
    w.clock.set(end);
    let outcomes = w.tick().await;
    assert!(
        matches!(outcomes[..], [DispatchOutcome::Sent { .. }]),
        "{outcomes:?}"
    );
    assert_eq!(w.email.calls(), 1);
}

#[tokio::test]
async fn a_batch_reads_the_directory_once_for_all_its_recipients() {
    let mut w = World::new();
    for c in ["cus_a", "cus_b", "cus_c", "cus_d"] {
        w.contact(c, "en").await;
        w.preferences(c, json!({"email": true, "sms": true}), json!([]))
            .await;
        w.event("RefundIssued", refund(c)).await;
    }
    let messages: Vec<DispatchMessage> = w.queue.take().into_iter().map(|e| e.message).collect();
    assert_eq!(messages.len(), 8);
    let before = w.directory.snapshots.load(Ordering::Relaxed);
    let outcomes = w.dispatcher().dispatch_batch(&messages).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(DispatchOutcome::Sent { .. }))),
        "{outcomes:?}"
    );
    assert_eq!(w.directory.snapshots.load(Ordering::Relaxed) - before, 1);
}

#[tokio::test]
async fn a_scheduled_send_goes_to_the_address_the_customer_has_now() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.event("OrderDelivered", delivered("cus_a")).await;
    w.event(
        "CustomerContactChanged",
        json!({"customer_id": "cus_a", "email": "new-address@example.com"}),
    )
    .await;
    w.clock.set(at("2026-11-27T12:00:01Z"));
    w.tick().await;
    let sent = w.email.sent.lock().unwrap()[0].clone();
    assert_eq!(
        sent.address,
        herald_core::model::Address::Email(
            herald_core::ids::EmailAddress::parse("new-address@example.com").unwrap()
        )
    );
    assert_eq!(w.notifications()[0].address, sent.address);
}

#[tokio::test]
async fn a_recipient_refusal_at_send_time_suppresses_the_number() {
    let mut w = World::new();
    w.sms = ScriptedSender::new(vec![Script::Fail(SendError::recipient(
        "Twilio error 21610: the recipient replied STOP",
    ))]);
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"email": true, "sms": true}), json!([]))
        .await;
    w.event("RefundIssued", refund("cus_a")).await;
    w.drain().await;
    let sms = w
        .notifications()
        .into_iter()
        .find(|n| n.channel == Channel::Sms)
        .unwrap();
    assert_eq!(sms.status, Status::Failed);
    let key = SuppressionKey {
        channel: Channel::Sms,
        address: "+14155550101".into(),
    };
    let suppressed = w
        .directory
        .suppressed(&org(), std::slice::from_ref(&key))
        .await
        .unwrap();
    assert!(suppressed.contains(&key));
    // the next SMS to that number is not even tried
    let mut next = refund("cus_a");
    next["refund_id"] = json!("ref_2");
    let r = w.event("RefundIssued", next).await;
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(
        (r.skipped[0].channel, r.skipped[0].reason.as_str()),
        (Channel::Sms, "suppressed")
    );
    w.drain().await;
    assert_eq!(w.sms.calls(), 1);
}

#[tokio::test]
async fn an_internal_type_requested_for_a_customer_goes_to_operations() {
    let mut w = World::new();
    w.event(
        "OrganizationSettingsChanged",
        json!({"operations_email": "ops@acme.example"}),
    )
    .await;
    w.contact("cus_a", "en").await;
    let r = w
        .event(
            "NotificationRequested",
            json!({"customer_id": "cus_a", "idempotency_key": "cb-1", "notification_type": "chargeback_opened",
                   "context": {"chargeback_id": "cb_1", "order_id": "ord_1", "amount": "120.00", "currency": "USD", "reason": "fraudulent"}}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Notified, "{:?}", r.reason);
    let all = w.notifications();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].recipient, Recipient::Operations);
    assert!(all[0].internal);
    w.drain().await;
    let sent = &w.email.sent.lock().unwrap()[0];
    assert_eq!(
        sent.address,
        herald_core::model::Address::Email(
            herald_core::ids::EmailAddress::parse("ops@acme.example").unwrap()
        )
    );
}

#[tokio::test]
async fn requested_channels_are_narrowed_never_replaced() {
    let mut w = World::new();
    w.contact("cus_a", "en").await; // no preferences ever
    let r = w
        .event(
            "NotificationRequested",
            json!({"customer_id": "cus_a", "idempotency_key": "k1", "notification_type": "reminder", "channels": ["in_app"],
                   "context": {"reminder_id": "r1", "severity": "low", "title": "Renew", "body": "Your plan renews soon."}}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Notified, "{:?}", r.reason);
    let low = w
        .event(
            "ReminderDue",
            json!({"customer_id": "cus_a", "reminder_id": "r2", "severity": "low", "title": "Renew", "body": "Soon."}),
        )
        .await;
    assert_eq!(low.outcome, Outcome::Notified, "{:?}", low.reason);
    let channels: Vec<Channel> = w.notifications().iter().map(|n| n.channel).collect();
    assert_eq!(channels, vec![Channel::InApp, Channel::InApp]);
    // a critical reminder for the same customer: email and in-app, never SMS without consent
    let critical = w
        .event(
            "ReminderDue",
            json!({"customer_id": "cus_a", "reminder_id": "r3", "severity": "critical", "title": "Pay", "body": "Now."}),
        )
        .await;
    assert_eq!(critical.notifications.len(), 2);
    assert!(w.notifications().iter().all(|n| n.channel != Channel::Sms));
    w.drain().await;
    assert_eq!(w.email.calls(), 1);
}

#[tokio::test]
async fn an_accepted_send_without_a_readable_id_is_sent_once() {
    let mut w = World::with_email(ScriptedSender::new(vec![Script::AcceptWithoutId]));
    w.contact("cus_a", "en").await;
    w.event("OrderCreated", order("cus_a", "ord_1")).await;
    let message = w.queue.messages.lock().unwrap()[0].message.clone();
    let outcomes = w.drain().await;
    assert_eq!(
        outcomes,
        vec![DispatchOutcome::Sent {
            provider_message_id: None
        }]
    );
    let n = w.notifications()[0].clone();
    assert_eq!(n.status, Status::Sent);
    assert!(
        n.note
            .as_deref()
            .unwrap()
            .contains("without a readable message id")
    );
    // the same message again: nothing is sent twice
    w.queue.messages.lock().unwrap().push(Enqueue {
        message,
        delay: std::time::Duration::ZERO,
    });
    w.drain().await;
    assert_eq!(w.email.calls(), 1);
}

#[tokio::test]
async fn null_renders_as_absent() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences(
        "cus_a",
        json!({"email": true, "sms": true, "in_app": true}),
        json!([]),
    )
    .await;
    let r = w
        .event(
            "ReminderDue",
            json!({"customer_id": "cus_a", "reminder_id": "r1", "severity": "critical", "title": "Pay",
                   "body": "Your invoice is due.", "action_url": null}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Notified, "{:?}", r.reason);
    for n in w.notifications() {
        assert!(
            !n.body.contains("None") && !n.body.contains("none"),
            "{}",
            n.body
        );
        assert!(!n.body.contains("Take care of it here"), "{}", n.body);
    }
}

#[tokio::test]
async fn an_event_too_large_to_store_is_rejected_by_field_and_writes_nothing() {
    let mut w = World::new();
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"email": true, "in_app": true}), json!([]))
        .await;
    let r = w
        .event(
            "ReminderDue",
            json!({"customer_id": "cus_a", "reminder_id": "r1", "severity": "high", "title": "Big",
                   "body": "x ".repeat(107_500)}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Rejected);
    assert_eq!(
        r.reason.as_deref(),
        Some("detail.body: must be at most 2000 characters")
    );
    assert!(w.notifications().is_empty());
    assert!(w.queue.take().is_empty());
}

// The property: whatever the recipient does to their preferences and however time passes, no
// message leaves that their consent at that moment forbids.

#[derive(Debug, Clone)]
enum Step {
    Preferences {
        email: bool,
        sms: bool,
        in_app: bool,
        unsubscribe: bool,
        quiet: bool,
    },
    Suppress(Channel),
    Advance(u16),
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.3)
        )
            .prop_map(
                |(email, sms, in_app, unsubscribe, quiet)| Step::Preferences {
                    email,
                    sms,
                    in_app,
                    unsubscribe,
                    quiet,
                }
            ),
        prop_oneof![Just(Channel::Email), Just(Channel::Sms)].prop_map(Step::Suppress),
        (1u16..=72).prop_map(Step::Advance),
        Just(Step::Tick),
    ]
}

/// What the recipient allows, as the test keeps it: written from the contract, not from
/// Herald's code.
#[derive(Debug, Clone)]
struct Consent {
    enabled: Vec<Channel>,
    unsubscribed: bool,
    quiet: bool,
    suppressed: Vec<Channel>,
}

impl Consent {
    fn allows(&self, channel: Channel, now: chrono::DateTime<chrono::Utc>) -> bool {
        // quiet hours 00:00–12:00 UTC (the customer's zone is UTC)
        let held_by_quiet_hours =
            self.quiet && chrono::Timelike::hour(&now) < 12 && channel != Channel::InApp;
        self.enabled.contains(&channel)
            && !self.unsubscribed
            && !self.suppressed.contains(&channel)
            && !held_by_quiet_hours
    }
}

async fn run_steps(steps: Vec<Step>) {
    let mut w = World::new();
    w.event(
        "CustomerContactChanged",
        json!({"customer_id": "cus_p", "email": "p@example.com", "phone": "+14155550199", "timezone": "UTC"}),
    )
    .await;
    w.preferences(
        "cus_p",
        json!({"email": true, "sms": true, "in_app": true}),
        json!([]),
    )
    .await;
    let r = w
        .event(
            "NotificationRequested",
            json!({"customer_id": "cus_p", "idempotency_key": "p1", "notification_type": "reminder",
                   "channels": ["in_app", "email", "sms"], "scheduled_for": "2026-11-21T15:00:00Z",
                   "context": {"reminder_id": "r", "severity": "high", "title": "T", "body": "B"}}),
        )
        .await;
    assert_eq!(r.notifications.len(), 3, "{r:?}");
    let mut consent = Consent {
        enabled: vec![Channel::Email, Channel::Sms, Channel::InApp],
        unsubscribed: false,
        quiet: false,
        suppressed: Vec::new(),
    };
    for step in steps {
        match step {
            Step::Preferences {
                email,
                sms,
                in_app,
                unsubscribe,
                quiet,
            } => {
                let quiet_hours = if quiet {
                    json!({"start": "00:00", "end": "12:00"})
                } else {
                    Value::Null
                };
                w.event(
                    "NotificationPreferencesChanged",
                    json!({"customer_id": "cus_p", "channels": {"email": email, "sms": sms, "in_app": in_app},
                           "unsubscribed": if unsubscribe { json!(["reminder"]) } else { json!([]) },
                           "quiet_hours": quiet_hours}),
                )
                .await;
                consent.enabled = [
                    (Channel::Email, email),
                    (Channel::Sms, sms),
                    (Channel::InApp, in_app),
                ]
                .into_iter()
                .filter_map(|(c, on)| on.then_some(c))
                .collect();
                consent.unsubscribed = unsubscribe;
                consent.quiet = quiet;
            }
            Step::Suppress(channel) => {
                let address = match channel {
                    Channel::Email => "p@example.com",
                    _ => "+14155550199",
                };
                let key = SuppressionKey {
                    channel,
                    address: address.into(),
                };
                w.directory
                    .suppress(&org(), &key, "test", chrono::Utc::now())
                    .await
                    .unwrap();
                consent.suppressed.push(channel);
            }
            Step::Advance(hours) => {
                let now = herald_core::ports::Clock::now(&*w.clock);
                w.clock.set(now + Duration::hours(hours.into()));
            }
            Step::Tick => {
                let now = herald_core::ports::Clock::now(&*w.clock);
                let (emails, texts) = (w.email.calls(), w.sms.calls());
                let before = w.notifications();
                w.tick().await;
                // drain what the queue was holding back for now, too
                w.drain().await;
                if w.email.calls() > emails {
                    assert!(
                        consent.allows(Channel::Email, now),
                        "email at {now}: {consent:?}"
                    );
                }
                if w.sms.calls() > texts {
                    assert!(
                        consent.allows(Channel::Sms, now),
                        "sms at {now}: {consent:?}"
                    );
                }
                let feed_was = before
                    .iter()
                    .find(|n| n.channel == Channel::InApp)
                    .map(|n| n.status);
                let feed_is = w
                    .notifications()
                    .into_iter()
                    .find(|n| n.channel == Channel::InApp)
                    .map(|n| n.status);
                if feed_is == Some(Status::Delivered) && feed_was != feed_is {
                    assert!(
                        consent.allows(Channel::InApp, now),
                        "in-app at {now}: {consent:?}"
                    );
                }
            }
        }
    }
    // whatever happened, each notification ended or is still on its way; none was sent twice
    assert!(w.email.calls() <= 1 && w.sms.calls() <= 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn nothing_leaves_that_consent_at_send_time_forbids(steps in prop::collection::vec(step(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(run_steps(steps));
    }
}

#[tokio::test]
async fn a_sender_another_organization_owns_is_refused() {
    let mut w = World::new();
    let theirs = herald_core::identity::SenderIdentity::parse("acme.example").unwrap();
    let rival = OrgId::parse("org_rival").unwrap();
    assert_eq!(
        w.directory
            .claim_identity(&rival, &theirs, chrono::Utc::now())
            .await
            .unwrap(),
        rival
    );
    assert_eq!(
        w.directory
            .claim_identity(&org(), &theirs, chrono::Utc::now())
            .await
            .unwrap(),
        rival,
        "first come: the domain stays the rival's"
    );
    let r = w
        .event(
            "OrganizationSettingsChanged",
            json!({"sender_email": "security@acme.example"}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Rejected);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .starts_with("detail.sender_email is not a sending identity of this organization"),
        "{r:?}"
    );
    // the deployment's default sender is everyone's
    let r = w
        .event(
            "OrganizationSettingsChanged",
            json!({"sender_email": "notifications@herald.example"}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::DirectoryUpdated);
}
