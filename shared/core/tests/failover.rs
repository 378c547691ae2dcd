#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Failover: a provider-level failure passes the message to the next provider of its route in
//! the same attempt; a refusal of the message or its recipient is final whichever provider is
//! asked; every provider tried is recorded with its code.

mod common;

use serde_json::json;

use common::{ORG, World, order};
use herald_core::dispatch::DispatchOutcome;
use herald_core::ids::OrgId;
use herald_core::model::{Channel, DeliveryService, FailureKind, Notification, Status};
use herald_core::ports::{Clock, SendError};
use herald_core::providers::{OrgProviders, Secret, SendGridSettings};
use herald_core::testing::{Script, ScriptedSender};

fn org() -> OrgId {
    OrgId::parse(ORG).unwrap()
}

/// An organization with SendGrid set up and the given email route (the built-in one when
/// `None`: SendGrid, then SES).
fn with_sendgrid(w: &World, route: Option<serde_json::Value>) {
    let mut providers = OrgProviders {
        sendgrid: Some(SendGridSettings {
            api_key: Secret::new("SG.key"),
            webhook_public_key: None,
            from: None,
        }),
        ..OrgProviders::default()
    };
    if let Some(route) = route {
        providers.routing = serde_json::from_value(json!({ "email": route })).unwrap();
    }
    w.settings.set(&org(), providers);
}

async fn one_email(w: &mut World) -> (DispatchOutcome, Notification) {
    w.contact("cus_a", "en").await;
    w.event("OrderCreated", order("cus_a", "ord_1")).await;
    let outcomes = w.drain().await;
    let email = w
        .notifications()
        .into_iter()
        .find(|n| n.channel == Channel::Email)
        .unwrap();
    (outcomes.into_iter().next().unwrap(), email)
}

#[tokio::test]
async fn a_provider_down_passes_the_message_to_the_next_in_the_same_attempt_once() {
    let mut w = World::new();
    w.email = ScriptedSender::new(vec![Script::Fail(
        SendError::soft("ses ServiceUnavailable").with_code("ServiceUnavailable"),
    )]);
    with_sendgrid(&w, Some(json!(["ses", "sendgrid"])));
    let (outcome, email) = one_email(&mut w).await;
    assert!(
        matches!(outcome, DispatchOutcome::Sent { .. }),
        "{outcome:?}"
    );
    assert_eq!((w.email.calls(), w.sendgrid.calls()), (1, 1));
    assert_eq!(email.status, Status::Sent);
    assert_eq!(email.attempts, 1);
    assert_eq!(email.provider, Some(DeliveryService::Sendgrid));
    assert_eq!(email.tried.len(), 1);
    let tried = &email.tried[0];
    assert_eq!(
        (tried.attempt, tried.provider, tried.kind),
        (1, DeliveryService::Ses, FailureKind::Soft)
    );
    assert_eq!(tried.code.as_ref().unwrap().as_str(), "ServiceUnavailable");
    assert_eq!(email.last_error, None);
    let measured: Vec<_> = w
        .meter
        .measures()
        .into_iter()
        .filter(|m| m.channel == Some(Channel::Email))
        .map(|m| (m.metric.as_str(), m.provider.map(|p| p.as_str()), m.code))
        .collect();
    assert_eq!(
        measured,
        vec![
            (
                "ProviderError",
                Some("ses"),
                Some("ServiceUnavailable".into())
            ),
            ("Sent", Some("sendgrid"), None),
            ("SentLatency", Some("sendgrid"), None),
            ("FailedOver", Some("sendgrid"), None),
        ]
    );
}

#[tokio::test]
async fn credentials_and_account_refusals_fail_over_like_an_outage() {
    for refusal in [
        SendError::credentials("sendgrid refused the credentials (401)"),
        SendError::account("ses AccountSendingPausedException")
            .with_code("AccountSendingPausedException"),
    ] {
        let mut w = World::new();
        w.sendgrid = ScriptedSender::new(vec![Script::Fail(refusal.clone())]);
        with_sendgrid(&w, None); // the built-in route: SendGrid, then SES
        let (outcome, email) = one_email(&mut w).await;
        assert!(
            matches!(outcome, DispatchOutcome::Sent { .. }),
            "{outcome:?}"
        );
        assert_eq!(email.provider, Some(DeliveryService::Ses));
        assert_eq!(email.tried[0].provider, DeliveryService::Sendgrid);
        assert_eq!(email.tried[0].kind, refusal.kind);
    }
}

#[tokio::test]
async fn a_refused_address_is_final_and_the_next_provider_is_never_asked() {
    for refusal in [
        SendError::hard("ses rejected the message: MessageRejected").with_code("MessageRejected"),
        SendError::recipient("ses refused the address: MessageRejected (suppressed)"),
    ] {
        let mut w = World::new();
        w.email = ScriptedSender::new(vec![Script::Fail(refusal.clone())]);
        with_sendgrid(&w, Some(json!(["ses", "sendgrid"])));
        let (outcome, email) = one_email(&mut w).await;
        assert!(
            matches!(outcome, DispatchOutcome::Failed { .. }),
            "{outcome:?}"
        );
        assert_eq!((w.email.calls(), w.sendgrid.calls()), (1, 0));
        assert_eq!(email.status, Status::Failed);
        assert_eq!(email.provider, Some(DeliveryService::Ses));
        assert!(
            email.tried.is_empty(),
            "a final refusal is the answer, not a try"
        );
        assert_eq!(email.error_code, refusal.code);
    }
}

#[tokio::test]
async fn when_every_provider_fails_the_attempt_retries_with_each_try_recorded() {
    let mut w = World::new();
    w.email = ScriptedSender::new(vec![Script::Fail(SendError::soft("ses timed out"))]);
    w.sendgrid = ScriptedSender::new(vec![Script::Fail(
        SendError::soft("sendgrid 503").with_code("503"),
    )]);
    with_sendgrid(&w, Some(json!(["ses", "sendgrid"])));
    let (outcome, email) = one_email(&mut w).await;
    assert!(
        matches!(outcome, DispatchOutcome::Retrying { .. }),
        "{outcome:?}"
    );
    assert_eq!(email.status, Status::Retrying);
    assert_eq!(email.attempts, 1);
    let tried: Vec<_> = email
        .tried
        .iter()
        .map(|t| (t.attempt, t.provider, t.code.as_ref().map(|c| c.as_str())))
        .collect();
    assert_eq!(
        tried,
        vec![
            (1, DeliveryService::Ses, None),
            (1, DeliveryService::Sendgrid, Some("503"))
        ]
    );
    assert_eq!(email.last_error.as_deref(), Some("sendgrid 503"));
}

#[tokio::test]
async fn an_organization_without_sendgrid_sends_through_ses_alone() {
    let mut w = World::new();
    w.email = ScriptedSender::new(vec![Script::Fail(SendError::soft("ses Throttling"))]);
    let (outcome, email) = one_email(&mut w).await;
    assert!(
        matches!(outcome, DispatchOutcome::Retrying { .. }),
        "{outcome:?}"
    );
    assert_eq!(w.sendgrid.calls(), 0);
    assert_eq!(email.tried.len(), 1);
}

/// Sends one order's email to each of `customers` new customers, a dispatch each.
async fn emails(w: &mut World, customers: std::ops::Range<u32>) -> Vec<Notification> {
    for i in customers.clone() {
        let customer = format!("cus_{i}");
        w.contact(&customer, "en").await;
        w.event("OrderCreated", order(&customer, &format!("ord_{i}")))
            .await;
        w.drain().await;
    }
    let all = w.notifications();
    customers
        .map(|i| {
            let customer = format!("cus_{i}");
            all.iter()
                .find(|n| n.channel == Channel::Email && n.recipient.label() == customer)
                .cloned()
                .expect("an email per customer")
        })
        .collect()
}

fn ses_down() -> Vec<Script> {
    vec![Script::Fail(
        SendError::soft("ses ServiceUnavailable").with_code("ServiceUnavailable"),
    )]
}

#[tokio::test]
async fn five_failures_open_the_breaker_and_later_messages_pass_the_provider_over_without_a_call() {
    let mut w = World::new();
    w.email = ScriptedSender::new(ses_down());
    with_sendgrid(&w, Some(json!(["ses", "sendgrid"])));
    let first = emails(&mut w, 0..5).await;
    assert!(
        first
            .iter()
            .all(|n| n.provider == Some(DeliveryService::Sendgrid))
    );
    assert_eq!(w.email.calls(), 5);
    assert!(
        w.breakers
            .state(&org(), DeliveryService::Ses)
            .open_until
            .is_some()
    );
    assert!(
        w.breakers
            .state(&org(), DeliveryService::Sendgrid)
            .open_until
            .is_none()
    );

    let later = emails(&mut w, 5..8).await;
    assert_eq!(
        w.email.calls(),
        5,
        "an open breaker keeps SES from being called"
    );
    for n in &later {
        assert_eq!(n.status, Status::Sent);
        assert_eq!(n.provider, Some(DeliveryService::Sendgrid));
        assert_eq!(n.attempts, 1);
        let tried: Vec<_> = n
            .tried
            .iter()
            .map(|t| (t.provider, t.code.as_ref().map(|c| c.as_str())))
            .collect();
        assert_eq!(tried, vec![(DeliveryService::Ses, Some("circuit_open"))]);
    }
    // measured: every email sent after failing over, five SES errors, one breaker opened,
    // three emails that passed SES over
    use herald_core::telemetry::Metric;
    let total = |m| w.meter.total(m);
    assert_eq!((total(Metric::Sent), total(Metric::FailedOver)), (8.0, 8.0));
    assert_eq!(total(Metric::ProviderError), 5.0);
    assert_eq!(total(Metric::CircuitOpen), 3.0);
    let opened: Vec<_> = w
        .meter
        .measures()
        .into_iter()
        .filter(|m| m.metric == Metric::BreakerOpened)
        .map(|m| (m.provider, m.channel, m.org))
        .collect();
    assert_eq!(
        opened,
        vec![(
            Some(DeliveryService::Ses),
            Some(Channel::Email),
            Some(org())
        )]
    );
}

#[tokio::test]
async fn with_every_provider_held_out_the_message_waits_for_the_breaker_without_spending_an_attempt()
 {
    let mut w = World::new();
    w.email = ScriptedSender::new(ses_down()); // SES is this organization's only email provider
    emails(&mut w, 0..5).await;
    let open_until = w
        .breakers
        .state(&org(), DeliveryService::Ses)
        .open_until
        .expect("open");

    let held = emails(&mut w, 5..6).await.remove(0);
    assert_eq!(w.email.calls(), 5);
    assert_eq!(held.status, Status::Retrying);
    assert_eq!(held.attempts, 0, "no provider was asked: no attempt spent");
    assert_eq!(held.next_retry_at, Some(open_until));
    assert_eq!(
        held.error_code.as_ref().map(|c| c.as_str()),
        Some("circuit_open")
    );
    let waiting: Vec<_> = w
        .queue
        .take()
        .into_iter()
        .filter(|e| e.message.notification_id == held.id)
        .collect();
    assert_eq!(waiting.len(), 1, "back on the queue for the reopening");
    assert_eq!(
        waiting[0].delay,
        (open_until - w.clock.now()).to_std().unwrap()
    );
}

#[tokio::test]
async fn after_the_cooling_period_one_probe_goes_and_its_success_closes_the_breaker() {
    let mut w = World::new();
    w.email = ScriptedSender::new(ses_down());
    emails(&mut w, 0..6).await; // five failures, then one held
    w.queue.take();
    *w.email.script.lock().unwrap() = vec![Script::Accept]; // SES recovers
    let open_until = w
        .breakers
        .state(&org(), DeliveryService::Ses)
        .open_until
        .unwrap();
    w.clock.set(open_until + chrono::Duration::seconds(1));

    let outcomes = w.tick().await;
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, DispatchOutcome::Sent { .. })),
        "{outcomes:?}"
    );
    assert_eq!(
        w.breakers.state(&org(), DeliveryService::Ses),
        Default::default(),
        "the probe's success closed the breaker"
    );
    let sent = emails(&mut w, 6..7).await.remove(0);
    assert_eq!(sent.provider, Some(DeliveryService::Ses));
    assert!(sent.tried.is_empty());
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again_for_another_cooling_period() {
    let mut w = World::new();
    w.email = ScriptedSender::new(ses_down());
    emails(&mut w, 0..5).await;
    let first = w.breakers.state(&org(), DeliveryService::Ses);
    let after = first.open_until.unwrap() + chrono::Duration::seconds(1);
    w.clock.set(after);
    let probe = emails(&mut w, 5..6).await.remove(0);
    assert_eq!(w.email.calls(), 6, "one probe");
    assert_eq!(probe.status, Status::Retrying);
    assert_eq!(probe.attempts, 1);
    let again = w.breakers.state(&org(), DeliveryService::Ses);
    assert_eq!(
        again.open_until,
        Some(after + chrono::Duration::seconds(60))
    );
}

#[tokio::test]
async fn a_dispatcher_reads_the_breakers_once_per_cache_period_when_nothing_fails() {
    let mut w = World::new();
    for i in 0..10 {
        let customer = format!("cus_{i}");
        w.contact(&customer, "en").await;
        w.event("OrderCreated", order(&customer, &format!("ord_{i}")))
            .await;
    }
    let dispatcher = w.dispatcher(); // one warm dispatcher
    for m in w.queue.take() {
        dispatcher.dispatch(&m.message).await.unwrap();
    }
    assert_eq!(w.email.calls(), 10);
    assert_eq!(
        w.breakers.reads.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        w.breakers.state(&org(), DeliveryService::Ses),
        Default::default()
    );
}
