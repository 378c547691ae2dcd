#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Rate limits: over its organization's limit for the channel a notification waits for the
//! time the bucket gives, back on the queue, never dropped and never counted as an attempt.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use common::{ORG, World, at, refund};
use herald_core::dispatch::DispatchOutcome;
use herald_core::ids::OrgId;
use herald_core::model::{Channel, Status};
use herald_core::ports::{Clock, DispatchMessage, PortError, RateLimiter};
use herald_core::providers::OrgProviders;
use herald_core::rate_limit::{Admission, ChannelLimit, RateLimits};

fn org() -> OrgId {
    OrgId::parse(ORG).unwrap()
}

fn limits(setting: &str) -> RateLimits {
    RateLimits::parse_setting(setting).unwrap()
}

/// The organization's own limits.
fn with_limits(w: &World, setting: &str) {
    w.settings.set(
        &org(),
        OrgProviders {
            limits: limits(setting),
            ..OrgProviders::default()
        },
    );
}

/// `count` refunds for one customer who takes SMS: one SMS each (and an email).
async fn refunds(w: &mut World, count: usize) {
    w.contact("cus_a", "en").await;
    w.preferences("cus_a", json!({"email": true, "sms": true}), json!([]))
        .await;
    for i in 0..count {
        let mut detail = refund("cus_a");
        detail["refund_id"] = json!(format!("ref_{i}"));
        w.event("RefundIssued", detail).await;
    }
}

/// The dispatch queue as SQS keeps it: each message becomes visible after its delay.
#[derive(Default)]
struct Queue(Vec<(DateTime<Utc>, DispatchMessage)>);

impl Queue {
    fn take_from(&mut self, w: &World) {
        let now = w.clock.now();
        let delay = |d: std::time::Duration| Duration::from_std(d).unwrap();
        self.0.extend(
            w.queue
                .take()
                .into_iter()
                .map(|e| (now + delay(e.delay), e.message)),
        );
    }

    fn visible(&mut self, now: DateTime<Utc>) -> Vec<DispatchMessage> {
        let (due, later) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.0 = later;
        due.into_iter().map(|(_, m)| m).collect()
    }
}

/// Runs dispatch once a second for `seconds`, in batches of ten as SQS hands them over: the
/// SMS sent in each second, and the number of batches.
async fn run(w: &World, queue: &mut Queue, seconds: i64) -> (Vec<usize>, usize) {
    let dispatcher = w.dispatcher();
    let start = w.clock.now();
    let mut per_second = Vec::new();
    let mut batches = 0;
    for s in 0..seconds {
        w.clock.set(start + Duration::seconds(s));
        let before = w.sms.calls();
        queue.take_from(w);
        for batch in queue.visible(w.clock.now()).chunks(10) {
            batches += 1;
            for outcome in dispatcher.dispatch_batch(batch).await {
                outcome.unwrap();
            }
        }
        queue.take_from(w);
        per_second.push(w.sms.calls() - before);
    }
    (per_second, batches)
}

fn sms(w: &World) -> Vec<herald_core::model::Notification> {
    w.notifications()
        .into_iter()
        .filter(|n| n.channel == Channel::Sms)
        .collect()
}

#[tokio::test]
async fn fifty_sms_at_five_a_second_leave_over_ten_seconds_each_once_with_one_attempt() {
    let mut w = World::new();
    with_limits(&w, "sms=5/s");
    refunds(&mut w, 50).await;
    let mut queue = Queue::default();
    let (per_second, batches) = run(&w, &mut queue, 14).await;

    assert!(per_second.iter().all(|n| *n <= 5), "{per_second:?}");
    assert_eq!(per_second.iter().sum::<usize>(), 50, "{per_second:?}");
    let last = per_second.iter().rposition(|n| *n > 0).unwrap();
    assert!((9..=10).contains(&last), "the last SMS left at {last} s");
    let sms = sms(&w);
    assert_eq!(sms.len(), 50);
    for n in &sms {
        assert_eq!((n.status, n.attempts), (Status::Sent, 1), "{}", n.id);
    }
    // the emails of the same refunds are not held by the SMS limit
    assert!(
        w.notifications()
            .iter()
            .filter(|n| n.channel == Channel::Email)
            .all(|n| n.status == Status::Sent)
    );
    // at most one count per batch, not one per message
    let takes = w.rate_limiter.takes.load(Ordering::Relaxed);
    assert!(takes <= batches, "{takes} counts for {batches} batches");
}

/// Another organization's events, as intake takes them.
async fn other_org_refunds(w: &mut World, count: usize) {
    let other = |detail_type: &str, id: String, mut detail: serde_json::Value| {
        detail["organization_id"] = json!("org_other");
        herald_core::event::EventEnvelope {
            id,
            detail_type: detail_type.into(),
            source: "test".into(),
            time: Some(at("2026-11-20T10:00:00Z")),
            detail,
        }
    };
    let contact = json!({"customer_id": "cus_b", "email": "cus_b@example.com",
                         "phone": "+14155550102", "locale": "en"});
    let prefs = json!({"customer_id": "cus_b", "channels": {"email": true, "sms": true},
                       "unsubscribed": []});
    for (kind, detail) in [
        ("CustomerContactChanged", contact),
        ("NotificationPreferencesChanged", prefs),
    ] {
        let envelope = other(kind, format!("other-{kind}"), detail);
        w.intake.handle(&envelope).await.unwrap();
    }
    for i in 0..count {
        let mut detail = refund("cus_b");
        detail["refund_id"] = json!(format!("other_{i}"));
        let envelope = other("RefundIssued", format!("other-refund-{i}"), detail);
        w.intake.handle(&envelope).await.unwrap();
    }
}

#[tokio::test]
async fn another_organizations_sms_are_not_held_by_one_organizations_limit() {
    let mut w = World::new();
    with_limits(&w, "sms=5/s");
    refunds(&mut w, 50).await;
    other_org_refunds(&mut w, 5).await;
    let mut queue = Queue::default();
    run(&w, &mut queue, 1).await;
    let sent_now = |org: &str| {
        w.notifications()
            .into_iter()
            .filter(|n| n.channel == Channel::Sms && n.org_id.as_str() == org)
            .filter(|n| n.status == Status::Sent)
            .count()
    };
    assert_eq!(
        sent_now(ORG),
        5,
        "the limited organization: one second's worth"
    );
    assert_eq!(sent_now("org_other"), 5, "the other: every one at once");
}

#[tokio::test]
async fn a_notification_over_the_limit_waits_pending_with_no_attempt_spent() {
    let mut w = World::new();
    with_limits(&w, "sms=2/s");
    refunds(&mut w, 5).await;
    let now = w.clock.now();
    let messages: Vec<DispatchMessage> = w.queue.take().into_iter().map(|e| e.message).collect();
    let outcomes = w.dispatcher().dispatch_batch(&messages).await;
    let throttled: Vec<DateTime<Utc>> = outcomes
        .into_iter()
        .filter_map(|o| match o.unwrap() {
            DispatchOutcome::Throttled { until, requeued } => {
                assert!(requeued);
                Some(until)
            }
            _ => None,
        })
        .collect();
    // two go at once, the other three one interval (500 ms) apart after the bucket drains
    assert_eq!(
        throttled,
        [500, 1000, 1500].map(|ms| now + Duration::milliseconds(ms))
    );
    let waiting: Vec<_> = sms(&w)
        .into_iter()
        .filter(|n| n.status == Status::Pending)
        .collect();
    assert_eq!(waiting.len(), 3);
    for n in &waiting {
        assert_eq!(n.attempts, 0);
        assert_eq!(n.next_retry_at, n.sweep_at);
        assert!(n.next_retry_at.unwrap() > now);
    }
    let throttled = w.meter.total(herald_core::telemetry::Metric::Throttled);
    assert_eq!(throttled, 3.0, "each delay is measured");
    let requeued = w.queue.take();
    assert_eq!(requeued.len(), 3);
    assert!(requeued.iter().all(|e| e.delay.as_secs() <= 2));
}

#[tokio::test]
async fn past_the_daily_count_messages_wait_for_the_next_day_and_the_sweep_sends_them() {
    let mut w = World::new();
    with_limits(&w, "sms=3/d");
    refunds(&mut w, 5).await;
    w.drain().await;
    let midnight = at("2026-11-21T00:00:00Z");
    let sms_now = sms(&w);
    assert_eq!(
        sms_now.iter().filter(|n| n.status == Status::Sent).count(),
        3
    );
    let waiting: Vec<_> = sms_now
        .iter()
        .filter(|n| n.status == Status::Pending)
        .collect();
    assert_eq!(waiting.len(), 2);
    // beyond the queue's reach: the sweep's index holds them
    assert!(waiting.iter().all(|n| n.sweep_at == Some(midnight)));
    w.queue.take();

    w.clock.set(midnight);
    w.tick().await;
    assert!(sms(&w).iter().all(|n| n.status == Status::Sent));
    assert_eq!(w.sms.calls(), 5);
}

#[tokio::test]
async fn the_deployments_limit_holds_an_organization_without_its_own() {
    let mut w = World::new();
    w.limits = limits("sms=1/s");
    refunds(&mut w, 3).await;
    let outcomes = w.drain().await;
    let throttled = outcomes
        .iter()
        .filter(|o| matches!(o, DispatchOutcome::Throttled { .. }))
        .count();
    assert_eq!(throttled, 2);

    // its own limit wins over the deployment's
    let mut w = World::new();
    w.limits = limits("sms=1/s");
    with_limits(&w, "sms=10/s");
    refunds(&mut w, 3).await;
    w.drain().await;
    assert_eq!(w.sms.calls(), 3);
}

/// A bucket store that cannot be reached.
struct Unreachable;

#[async_trait]
impl RateLimiter for Unreachable {
    async fn take(
        &self,
        _: &OrgId,
        _: Channel,
        _: u32,
        _: ChannelLimit,
        _: DateTime<Utc>,
    ) -> Result<Admission, PortError> {
        Err(PortError::new("count messages", "connection refused"))
    }
}

#[tokio::test]
async fn when_the_bucket_cannot_be_counted_messages_wait_a_moment_and_none_is_sent() {
    let mut w = World::new();
    with_limits(&w, "sms=5/s");
    refunds(&mut w, 2).await;
    let mut dispatcher = w.dispatcher();
    dispatcher.rate_limiter = std::sync::Arc::new(Unreachable);
    let messages: Vec<DispatchMessage> = w.queue.take().into_iter().map(|e| e.message).collect();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for outcome in dispatcher.dispatch_batch(&messages).await {
        let kind = match outcome.unwrap() {
            DispatchOutcome::Throttled { .. } => "throttled",
            DispatchOutcome::Sent { .. } => "sent",
            _ => "other",
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    // the SMS wait; the emails, under no limit, leave
    assert_eq!(by_kind, BTreeMap::from([("sent", 2), ("throttled", 2)]));
    assert_eq!(w.sms.calls(), 0);
    assert!(sms(&w).iter().all(|n| n.attempts == 0));
}
