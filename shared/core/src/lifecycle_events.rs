//! The life-cycle events Herald publishes about itself on its bus (`source: herald`): which
//! ones a change of a notification makes, and what they carry. Pure functions from a change
//! (old and new image) to events; the projector publishes them.
//!
//! A detail carries ids, statuses and codes only: never an address, a number, a token, a
//! body or a provider's text. Each event's id is derived from the notification, its revision
//! and the event's name, so a stream record seen twice yields the same events with the same
//! ids, and consumers deduplicate on it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{CustomerId, NotificationId, OrgId};
use crate::model::{Channel, DeliveryService, ErrorCode, Notification, Recipient, Status};
use crate::projection::Change;

/// The `source` of every event Herald publishes. Intake's rule leaves these out.
pub const SOURCE: &str = "herald";

/// What happened, as the event's `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LifecycleEventKind {
    NotificationCreated,
    NotificationSent,
    NotificationDelivered,
    NotificationFailed,
    NotificationBounced,
    RecipientSuppressed,
}

impl LifecycleEventKind {
    pub const ALL: [LifecycleEventKind; 6] = [
        LifecycleEventKind::NotificationCreated,
        LifecycleEventKind::NotificationSent,
        LifecycleEventKind::NotificationDelivered,
        LifecycleEventKind::NotificationFailed,
        LifecycleEventKind::NotificationBounced,
        LifecycleEventKind::RecipientSuppressed,
    ];

    /// The `detail-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEventKind::NotificationCreated => "NotificationCreated",
            LifecycleEventKind::NotificationSent => "NotificationSent",
            LifecycleEventKind::NotificationDelivered => "NotificationDelivered",
            LifecycleEventKind::NotificationFailed => "NotificationFailed",
            LifecycleEventKind::NotificationBounced => "NotificationBounced",
            LifecycleEventKind::RecipientSuppressed => "RecipientSuppressed",
        }
    }

    /// The event a notification entering this status makes, if it makes one.
    fn entering(status: Status) -> Option<LifecycleEventKind> {
        match status {
            Status::Sent => Some(LifecycleEventKind::NotificationSent),
            Status::Delivered => Some(LifecycleEventKind::NotificationDelivered),
            Status::Failed => Some(LifecycleEventKind::NotificationFailed),
            Status::Bounced => Some(LifecycleEventKind::NotificationBounced),
            Status::Pending | Status::Sending | Status::Retrying | Status::Skipped => None,
        }
    }
}

impl fmt::Display for LifecycleEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LifecycleEventKind {
    type Err = UnknownLifecycleEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LifecycleEventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownLifecycleEvent(s.to_string()))
    }
}

/// A life-cycle event's name that is not one Herald publishes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown life-cycle event `{0}`: expected `all`, `none`, or a comma-separated list of {known}",
    known = LifecycleEventKind::ALL.map(LifecycleEventKind::as_str).join(", ")
)]
pub struct UnknownLifecycleEvent(String);

/// The life-cycle events a deployment publishes (`HERALD_LIFECYCLE_EVENTS`): all of them
/// unless it says otherwise. Every entry on the bus is billed, and an email notification makes
/// two (created, sent) or three (delivered) of them: a deployment whose consumers need only
/// some kinds leaves the others out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleSelection(BTreeSet<LifecycleEventKind>);

impl LifecycleSelection {
    pub fn all() -> Self {
        LifecycleSelection(LifecycleEventKind::ALL.into_iter().collect())
    }

    pub fn none() -> Self {
        LifecycleSelection(BTreeSet::new())
    }

    pub fn includes(&self, kind: LifecycleEventKind) -> bool {
        self.0.contains(&kind)
    }
}

impl Default for LifecycleSelection {
    fn default() -> Self {
        LifecycleSelection::all()
    }
}

impl FromStr for LifecycleSelection {
    type Err = UnknownLifecycleEvent;

    /// `all`, `none`, or detail-types separated by commas.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => Ok(LifecycleSelection::all()),
            "none" => Ok(LifecycleSelection::none()),
            list => list
                .split(',')
                .map(|kind| kind.trim().parse())
                .collect::<Result<_, _>>()
                .map(LifecycleSelection),
        }
    }
}

impl fmt::Display for LifecycleSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() == LifecycleEventKind::ALL.len() {
            return f.write_str("all");
        }
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|k| k.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// An event's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleDetail {
    /// Stable across redeliveries of the same change: deduplicate on it.
    pub event_id: String,
    pub organization_id: OrgId,
    pub notification_id: NotificationId,
    /// The notification type (`order_confirmation`, …).
    #[serde(rename = "type")]
    pub notification_type: String,
    pub channel: Channel,
    /// The customer it is for; absent for internal notifications (to the operations contact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// The notification's status after the change.
    pub status: Status,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<DeliveryService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// The EventBridge id of the event the notification came from.
    pub source_event_id: String,
    #[serde(with = "crate::time")]
    pub at: DateTime<Utc>,
    /// The provider's (or Herald's) code for a failure, bounce or suppression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub kind: LifecycleEventKind,
    pub detail: LifecycleDetail,
}

impl LifecycleEvent {
    pub fn detail_type(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The detail as the JSON object that goes on the bus.
    pub fn detail_json(&self) -> String {
        // a struct of strings, numbers and enums always serializes
        serde_json::to_string(&self.detail).unwrap_or_else(|_| unreachable!())
    }
}

/// The id of the event `kind` made by the change that brought `id` to `revision`.
pub fn event_id(
    org: &OrgId,
    id: &NotificationId,
    revision: u32,
    kind: LifecycleEventKind,
) -> String {
    const NAMESPACE: Uuid = Uuid::from_u128(0x2b7c_51e4_0d93_4f6a_b1c8_93e2_7a40_5d1f);
    let name = format!("{org}\u{1f}{id}\u{1f}{revision}\u{1f}{kind}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

fn event(n: &Notification, kind: LifecycleEventKind, at: DateTime<Utc>) -> LifecycleEvent {
    let customer_id = match (&n.recipient, n.internal) {
        (Recipient::Customer(c), false) => Some(c.clone()),
        _ => None,
    };
    let failed = matches!(n.status, Status::Failed | Status::Bounced)
        || kind == LifecycleEventKind::RecipientSuppressed;
    LifecycleEvent {
        kind,
        detail: LifecycleDetail {
            event_id: event_id(&n.org_id, &n.id, n.revision, kind),
            organization_id: n.org_id.clone(),
            notification_id: n.id.clone(),
            notification_type: n.notification_type.to_string(),
            channel: n.channel,
            customer_id,
            status: n.status,
            attempts: n.attempts,
            provider: n.provider,
            provider_message_id: n.provider_message_id.clone(),
            source_event_id: n.source_event_id.clone(),
            at,
            error_code: if failed { n.error_code.clone() } else { None },
        },
    }
}

/// The events one change makes: `NotificationCreated` when a notification is written, the
/// event of the status it enters (sent, delivered, failed, bounced), and `RecipientSuppressed`
/// when the change put its address on the suppression list. Removals make none.
pub fn lifecycle_events(change: &Change) -> Vec<LifecycleEvent> {
    let Some(new) = &change.new else {
        return Vec::new();
    };
    let mut events = Vec::new();
    if change.old.is_none() {
        events.push(event(
            new,
            LifecycleEventKind::NotificationCreated,
            new.created_at,
        ));
    }
    let before = change.old.as_ref().map_or(Status::Pending, |o| o.status);
    if before != new.status
        && let Some(kind) = LifecycleEventKind::entering(new.status)
    {
        events.push(event(new, kind, new.updated_at));
    }
    let was_suppressed = change.old.as_ref().and_then(|o| o.suppressed_at);
    if let (None, Some(at)) = (was_suppressed, new.suppressed_at) {
        events.push(event(new, LifecycleEventKind::RecipientSuppressed, at));
    }
    events
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ids::{BusinessKey, EmailAddress, Locale, NotificationType};
    use crate::model::{Address, Draft};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_selection_is_all_none_or_a_list_and_names_what_it_does_not_know() {
        let all: LifecycleSelection = "all".parse().unwrap();
        assert_eq!(all, LifecycleSelection::default());
        assert!(LifecycleEventKind::ALL.iter().all(|k| all.includes(*k)));
        let none: LifecycleSelection = " none ".parse().unwrap();
        assert!(LifecycleEventKind::ALL.iter().all(|k| !none.includes(*k)));
        let outcomes: LifecycleSelection =
            "NotificationFailed, NotificationBounced".parse().unwrap();
        assert!(outcomes.includes(LifecycleEventKind::NotificationBounced));
        assert!(!outcomes.includes(LifecycleEventKind::NotificationCreated));
        assert_eq!(
            outcomes.to_string(),
            "NotificationFailed,NotificationBounced"
        );
        assert_eq!(
            outcomes.to_string().parse::<LifecycleSelection>(),
            Ok(outcomes)
        );
        let err = "NotificationSent,NotificationOpened"
            .parse::<LifecycleSelection>()
            .unwrap_err();
        assert!(err.to_string().contains("`NotificationOpened`"), "{err}");
        assert!(
            err.to_string()
                .ends_with("NotificationBounced, RecipientSuppressed"),
            "{err}"
        );
        assert!("".parse::<LifecycleSelection>().is_err());
    }

    fn created(internal: bool) -> Notification {
        Notification::new(
            Draft {
                org_id: OrgId::parse("org_a").unwrap(),
                notification_type: NotificationType::parse("order_confirmation").unwrap(),
                recipient: if internal {
                    Recipient::Operations
                } else {
                    Recipient::Customer(CustomerId::parse("cus_1").unwrap())
                },
                channel: Channel::Email,
                business_key: BusinessKey::parse("ord_1").unwrap(),
                source_event_id: "evt_1".into(),
                address: Address::Email(EmailAddress::parse("carol@example.com").unwrap()),
                sender: None,
                locale: Locale::english(),
                subject: Some("Your order".into()),
                body: "Thank you for your order".into(),
                html_body: None,
                sms_segments: None,
                internal,
                critical: false,
                scheduled_for: None,
            },
            at("2026-11-20T10:00:00Z"),
        )
    }

    fn step(n: &Notification, f: impl FnOnce(&mut Notification)) -> Notification {
        let mut next = n.clone();
        next.revision += 1;
        next.updated_at = n.updated_at + chrono::Duration::seconds(1);
        f(&mut next);
        next
    }

    fn change(old: &Notification, new: &Notification) -> Change {
        Change {
            old: Some(old.clone()),
            new: Some(new.clone()),
        }
    }

    fn kinds(change: &Change) -> Vec<LifecycleEventKind> {
        lifecycle_events(change).iter().map(|e| e.kind).collect()
    }

    fn sending(n: &Notification) -> Notification {
        step(n, |s| {
            s.status = Status::Sending;
            s.attempts += 1;
        })
    }

    fn sent(n: &Notification) -> Notification {
        step(n, |s| {
            s.status = Status::Sent;
            s.provider = Some(DeliveryService::Ses);
            s.provider_message_id = Some("msg-1".into());
        })
    }

    #[test]
    fn a_sent_email_is_created_then_sent_and_the_claim_between_makes_nothing() {
        use LifecycleEventKind::*;
        let n = created(false);
        let insert = Change {
            old: None,
            new: Some(n.clone()),
        };
        assert_eq!(kinds(&insert), vec![NotificationCreated]);
        let claimed = sending(&n);
        assert_eq!(kinds(&change(&n, &claimed)), vec![]);
        let done = sent(&claimed);
        let events = lifecycle_events(&change(&claimed, &done));
        assert_eq!(events.len(), 1);
        let d = &events[0].detail;
        assert_eq!(events[0].kind, NotificationSent);
        assert_eq!(d.status, Status::Sent);
        assert_eq!(d.attempts, 1);
        assert_eq!(d.provider, Some(DeliveryService::Ses));
        assert_eq!(d.provider_message_id.as_deref(), Some("msg-1"));
        assert_eq!(d.customer_id.as_ref().map(|c| c.as_str()), Some("cus_1"));
        assert_eq!(d.source_event_id, "evt_1");
        assert_eq!(d.at, done.updated_at);
        assert_eq!(d.error_code, None);
    }

    #[test]
    fn a_replayed_record_gives_the_same_events_with_the_same_ids() {
        let n = created(false);
        let done = sent(&sending(&n));
        let c = change(&sending(&n), &done);
        assert_eq!(lifecycle_events(&c), lifecycle_events(&c.clone()));
        // different changes, different ids: each kind and each revision has its own
        let insert = lifecycle_events(&Change {
            old: None,
            new: Some(n.clone()),
        });
        let sent = lifecycle_events(&c);
        assert_ne!(insert[0].detail.event_id, sent[0].detail.event_id);
        let retried = step(&done, |_| {});
        assert_ne!(
            event_id(
                &n.org_id,
                &n.id,
                retried.revision,
                LifecycleEventKind::NotificationSent
            ),
            sent[0].detail.event_id
        );
    }

    #[test]
    fn every_ending_has_its_event_and_the_others_none() {
        use LifecycleEventKind::*;
        let claimed = sending(&created(false));
        for (status, expected) in [
            (Status::Sent, vec![NotificationSent]),
            (Status::Delivered, vec![NotificationDelivered]),
            (Status::Failed, vec![NotificationFailed]),
            (Status::Retrying, vec![]),
            (Status::Skipped, vec![]),
            (Status::Pending, vec![]),
        ] {
            let next = step(&claimed, |s| s.status = status);
            assert_eq!(kinds(&change(&claimed, &next)), expected, "{status}");
        }
        let delivered = step(&sent(&claimed), |s| s.status = Status::Delivered);
        let bounced = step(&delivered, |s| s.status = Status::Bounced);
        assert_eq!(
            kinds(&change(&delivered, &bounced)),
            vec![NotificationBounced]
        );
        // a change that moves nothing (a sweep mark, an open) makes nothing
        let opened = step(&delivered, |s| s.opened_at = Some(s.updated_at));
        assert_eq!(kinds(&change(&delivered, &opened)), vec![]);
        // removals make nothing
        let removed = Change {
            old: Some(delivered),
            new: None,
        };
        assert!(lifecycle_events(&removed).is_empty());
    }

    #[test]
    fn a_refused_address_fails_the_notification_and_suppresses_the_recipient_once() {
        use LifecycleEventKind::*;
        let claimed = sending(&created(false));
        let refused = step(&claimed, |s| {
            s.status = Status::Failed;
            s.provider = Some(DeliveryService::Twilio);
            s.last_error = Some("Twilio error 21610".into());
            s.error_code = ErrorCode::new("21610");
            s.suppressed_at = Some(s.updated_at);
        });
        let events = lifecycle_events(&change(&claimed, &refused));
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![NotificationFailed, RecipientSuppressed]
        );
        for e in &events {
            assert_eq!(
                e.detail.error_code.as_ref().map(|c| c.as_str()),
                Some("21610")
            );
        }
        // a later change of the same notification does not suppress again
        let later = step(&refused, |_| {});
        assert_eq!(kinds(&change(&refused, &later)), vec![]);
    }

    #[test]
    fn a_complaint_suppresses_without_changing_the_status() {
        use LifecycleEventKind::*;
        let delivered = step(&sent(&sending(&created(false))), |s| {
            s.status = Status::Delivered
        });
        let complained = step(&delivered, |s| {
            s.complained_at = Some(s.updated_at);
            s.suppressed_at = Some(s.updated_at);
        });
        let events = lifecycle_events(&change(&delivered, &complained));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, RecipientSuppressed);
        assert_eq!(events[0].detail.status, Status::Delivered);
        assert_eq!(events[0].detail.at, complained.updated_at);
    }

    #[test]
    fn internal_notifications_name_no_customer() {
        let n = created(true);
        let events = lifecycle_events(&Change {
            old: None,
            new: Some(n),
        });
        assert_eq!(events[0].detail.customer_id, None);
        assert!(!events[0].detail_json().contains("customer_id"));
    }

    #[test]
    fn the_detail_carries_no_address_body_subject_or_provider_text() {
        let claimed = sending(&created(false));
        let failed = step(&claimed, |s| {
            s.status = Status::Failed;
            s.last_error = Some("bounced: 550 <carol@example.com> unknown".into());
            s.error_code = ErrorCode::new("Permanent:General");
        });
        let json = lifecycle_events(&change(&claimed, &failed))[0].detail_json();
        for secret in ["carol@example.com", "Thank you", "Your order", "550"] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        let detail: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(detail["type"], "order_confirmation");
        assert_eq!(detail["organization_id"], "org_a");
        assert_eq!(detail["channel"], "email");
        assert_eq!(detail["status"], "failed");
        assert_eq!(detail["error_code"], "Permanent:General");
        assert_eq!(detail["at"], "2026-11-20T10:00:02.000Z");
    }
}
