//! What Herald measures, as facts of its domain: sends and their outcomes by channel and
//! provider, delays, failovers, breakers, latencies, provider error codes. A [`Meter`] writes
//! them out (CloudWatch's embedded metric format in AWS). The organization goes with each
//! measure as a property, never as a dimension, so the number of metrics stays bounded
//! whatever the number of organizations.

use chrono::{DateTime, Utc};

use crate::ids::OrgId;
use crate::model::{Channel, DeliveryService, ErrorCode, Notification, ProviderTry, Status};

/// The name of a measure. Counts unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// A provider accepted a notification.
    Sent,
    /// A notification was dead-lettered.
    Failed,
    /// A soft failure: the notification will be tried again.
    Retried,
    /// Held by its organization's rate limit.
    Throttled,
    /// Sent by a provider after another of its route failed in the same attempt.
    FailedOver,
    /// A provider failed at the provider level; with its error code.
    ProviderError,
    /// A provider's circuit breaker opened.
    BreakerOpened,
    /// A provider was passed over because its breaker is open.
    CircuitOpen,
    /// A provider reported the notification delivered.
    Delivered,
    /// A provider reported a permanent bounce.
    Bounced,
    /// The recipient marked it as spam.
    Complained,
    /// Milliseconds from the event's time (or when it was due) to the provider's acceptance.
    SentLatency,
    /// Milliseconds from the event's time (or when it was due) to its delivery.
    DeliveredLatency,
    /// A provider's webhook was applied, a repeat, or refused (`code`: its outcome).
    Webhook,
    /// Seconds the oldest due notification waited past its time when the sweep ran.
    SchedulerLag,
}

impl Metric {
    pub const ALL: [Metric; 15] = [
        Metric::Sent,
        Metric::Failed,
        Metric::Retried,
        Metric::Throttled,
        Metric::FailedOver,
        Metric::ProviderError,
        Metric::BreakerOpened,
        Metric::CircuitOpen,
        Metric::Delivered,
        Metric::Bounced,
        Metric::Complained,
        Metric::SentLatency,
        Metric::DeliveredLatency,
        Metric::Webhook,
        Metric::SchedulerLag,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Sent => "Sent",
            Metric::Failed => "Failed",
            Metric::Retried => "Retried",
            Metric::Throttled => "Throttled",
            Metric::FailedOver => "FailedOver",
            Metric::ProviderError => "ProviderError",
            Metric::BreakerOpened => "BreakerOpened",
            Metric::CircuitOpen => "CircuitOpen",
            Metric::Delivered => "Delivered",
            Metric::Bounced => "Bounced",
            Metric::Complained => "Complained",
            Metric::SentLatency => "SentLatency",
            Metric::DeliveredLatency => "DeliveredLatency",
            Metric::Webhook => "Webhook",
            Metric::SchedulerLag => "SchedulerLag",
        }
    }

    /// The unit of its values.
    pub fn unit(self) -> Unit {
        match self {
            Metric::SentLatency | Metric::DeliveredLatency => Unit::Milliseconds,
            Metric::SchedulerLag => Unit::Seconds,
            _ => Unit::Count,
        }
    }

    /// Whether its values are each kept (a distribution) rather than added up.
    pub fn is_distribution(self) -> bool {
        self.unit() != Unit::Count
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

/// One measure: a metric's value with the dimensions it is counted by.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub metric: Metric,
    pub value: f64,
    pub channel: Option<Channel>,
    pub provider: Option<DeliveryService>,
    /// A provider's error code, or a webhook's outcome: a bounded set of names.
    pub code: Option<String>,
    /// A property, not a dimension.
    pub org: Option<OrgId>,
}

impl Measure {
    pub fn count(metric: Metric) -> Measure {
        Measure {
            metric,
            value: 1.0,
            channel: None,
            provider: None,
            code: None,
            org: None,
        }
    }

    pub fn of(metric: Metric, value: f64) -> Measure {
        Measure {
            value,
            ..Measure::count(metric)
        }
    }

    /// Counted for a notification: its organization, channel and provider.
    pub fn for_notification(metric: Metric, n: &Notification) -> Measure {
        Measure {
            channel: Some(n.channel),
            provider: n.provider,
            org: Some(n.org_id.clone()),
            ..Measure::count(metric)
        }
    }

    pub fn value(self, value: f64) -> Measure {
        Measure { value, ..self }
    }

    pub fn provider(self, provider: DeliveryService) -> Measure {
        Measure {
            provider: Some(provider),
            ..self
        }
    }

    pub fn code(self, code: &ErrorCode) -> Measure {
        Measure {
            code: Some(code.as_str().to_string()),
            ..self
        }
    }

    pub fn org(self, org: &OrgId) -> Measure {
        Measure {
            org: Some(org.clone()),
            ..self
        }
    }
}

fn millis_since(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    // whole milliseconds of a span of at most years: exact in an f64
    (to - from).num_milliseconds().max(0) as f64
}

/// The providers an attempt tried without sending: each passed over by its breaker, or
/// failing at the provider level, with its code.
pub fn of_tries(n: &Notification, tried: &[ProviderTry]) -> Vec<Measure> {
    tried
        .iter()
        .map(|t| {
            let metric = match t.code.as_ref().map(ErrorCode::as_str) {
                Some(crate::dispatch::CIRCUIT_OPEN) => Metric::CircuitOpen,
                _ => Metric::ProviderError,
            };
            let m = Measure::for_notification(metric, n).provider(t.provider);
            match &t.code {
                Some(code) => m.code(code),
                None => m,
            }
        })
        .collect()
}

/// What an attempt made of a notification, as it is recorded: sent (with its latency, and
/// whether another provider of its route came first), retried, or failed (with its code).
pub fn of_attempt(n: &Notification, failed_over: bool) -> Vec<Measure> {
    let with_code = |m: Measure| match &n.error_code {
        Some(code) => m.code(code),
        None => m,
    };
    let mut measures = Vec::new();
    match (n.status, n.sent_at) {
        (Status::Sent | Status::Delivered, Some(sent_at)) => {
            measures.push(Measure::for_notification(Metric::Sent, n));
            measures.push(
                Measure::for_notification(Metric::SentLatency, n)
                    .value(millis_since(n.latency_from(), sent_at)),
            );
            if failed_over {
                measures.push(Measure::for_notification(Metric::FailedOver, n));
            }
        }
        (Status::Retrying, _) => {
            measures.push(with_code(Measure::for_notification(Metric::Retried, n)));
        }
        (Status::Failed, _) => {
            measures.push(with_code(Measure::for_notification(Metric::Failed, n)));
        }
        _ => {}
    }
    measures
}

/// What a provider's report did to a notification, measured from the stream's change:
/// delivered (with its latency), bounced, complained; each once, as the change happens once.
pub fn of_report(old: &Notification, new: &Notification) -> Vec<Measure> {
    let mut measures = Vec::new();
    if old.status != Status::Delivered
        && new.status == Status::Delivered
        && new.channel != Channel::InApp
    {
        measures.push(Measure::for_notification(Metric::Delivered, new));
        measures.push(
            Measure::for_notification(Metric::DeliveredLatency, new)
                .value(millis_since(new.latency_from(), new.updated_at)),
        );
    }
    if old.status != Status::Bounced && new.status == Status::Bounced {
        measures.push(Measure::for_notification(Metric::Bounced, new));
    }
    if old.complained_at.is_none() && new.complained_at.is_some() {
        measures.push(Measure::for_notification(Metric::Complained, new));
    }
    measures
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sent() -> Notification {
        let mut n: Notification = serde_json::from_value(serde_json::json!({
            "id": "ntf_1", "org_id": "org_acme", "notification_type": "order_confirmation",
            "recipient": {"kind": "customer", "id": "cus_a"}, "channel": "email",
            "address": {"kind": "email", "to": "a@example.com"}, "locale": "en", "body": "b",
            "internal": false, "critical": false, "status": "sent", "attempts": 1,
            "source_event_id": "evt_1", "business_key": "k",
            "event_at": "2026-11-24T09:59:59Z",
            "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:02Z",
            "sent_at": "2026-11-24T10:00:02Z", "provider": "ses"
        }))
        .unwrap();
        n.revision = 2;
        n
    }

    #[test]
    fn a_send_is_measured_with_its_latency_from_the_event() {
        let measures = of_attempt(&sent(), false);
        let names: Vec<_> = measures.iter().map(|m| m.metric).collect();
        assert_eq!(names, [Metric::Sent, Metric::SentLatency]);
        // the event happened a second before intake created the notification
        assert_eq!(measures[1].value, 3000.0);
        assert_eq!(measures[0].provider, Some(DeliveryService::Ses));
        assert_eq!(
            measures[0].org.as_ref().map(OrgId::as_str),
            Some("org_acme")
        );
    }

    #[test]
    fn latency_counts_from_when_it_was_due_and_never_from_the_future() {
        let mut n = sent();
        assert_eq!(n.latency_from(), n.event_at.unwrap());
        // an event from a clock ahead of Herald's counts from the creation
        n.event_at = Some("2026-11-24T10:03:00Z".parse().unwrap());
        assert_eq!(n.latency_from(), n.created_at);
        // a notification scheduled (or deferred past quiet hours) counts from when it was due
        n.scheduled_for = Some("2026-11-24T10:00:01Z".parse().unwrap());
        assert_eq!(of_attempt(&n, false)[1].value, 1000.0);
        // one stored before it kept its event's time counts from its creation
        n.event_at = None;
        n.scheduled_for = None;
        assert_eq!(n.latency_from(), n.created_at);
    }

    #[test]
    fn reports_are_measured_once_as_they_change_the_notification() {
        let old = sent();
        let mut delivered = old.clone();
        delivered.status = Status::Delivered;
        delivered.updated_at = "2026-11-24T10:00:05Z".parse().unwrap();
        let measures = of_report(&old, &delivered);
        assert_eq!(measures.len(), 2);
        assert_eq!(measures[1].metric, Metric::DeliveredLatency);
        assert_eq!(measures[1].value, 6000.0);
        // the same state again (a repeated webhook, an engagement) measures nothing new
        assert!(of_report(&delivered, &delivered).is_empty());
        let mut complained = delivered.clone();
        complained.complained_at = Some(complained.updated_at);
        let measures = of_report(&delivered, &complained);
        assert_eq!(
            measures.iter().map(|m| m.metric).collect::<Vec<_>>(),
            [Metric::Complained]
        );
        let mut bounced = old.clone();
        bounced.status = Status::Bounced;
        assert_eq!(of_report(&old, &bounced)[0].metric, Metric::Bounced);
    }
}
