//! The event contract (events/README.md): EventBridge events parsed into typed, validated values.
//! Anything that does not fit is refused here with a reason that names the field and what was
//! expected (never the value, which may be personal data), before anything is written.
//!
//! Every field is bounded: text by length, lists by count, instants by a plausible range
//! ([`PAST_LIMIT`], [`FUTURE_LIMIT`]), directory events' `time` by Herald's clock
//! ([`MAX_CLOCK_SKEW`]). `null` means the same as an absent field.

mod directory_events;
mod notifying;
mod read;
mod values;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use thiserror::Error;

pub(crate) use values::is_decimal;
pub use values::{Amount, Bounded, Currency, Instant, Link, Text};

use crate::directory::{CustomerUpdate, MAX_CLOCK_SKEW, OrgSettingsUpdate};
use crate::ids::{BusinessKey, CustomerId, NotificationType, OrgId};
use crate::model::{Channel, Recipient};
use read::{Reader, without_nulls};
use values::kind_of;

/// How long after delivery a customer is asked for a review.
pub const REVIEW_PROMPT_DELAY_DAYS: i64 = 7;
/// How far in the past an instant that schedules a send (`delivered_at`) may lie.
pub const PAST_LIMIT: Duration = Duration::days(366);
/// How far in the future an instant that schedules a send (`scheduled_for`, `delivered_at`, and
/// the schedules computed from them) may lie.
pub const FUTURE_LIMIT: Duration = Duration::days(2 * 366);
/// How far either way an instant that is only shown (`created_at`, `starts_at`) may lie.
pub const SHOWN_LIMIT: Duration = Duration::days(10 * 366);
/// The largest `context` of a `NotificationRequested`, as JSON.
pub const MAX_CONTEXT_BYTES: usize = 16 * 1024;

/// The parts of an EventBridge event Herald reads.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    pub id: String,
    pub detail_type: String,
    pub source: String,
    pub time: Option<DateTime<Utc>>,
    pub detail: Value,
}

/// Why an event was refused. The text is what gets recorded and printed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("detail must be a JSON object")]
    DetailNotAnObject,
    #[error("detail.organization_id is missing")]
    MissingOrganization,
    #[error("detail.organization_id is invalid: {0}")]
    InvalidOrganization(String),
    #[error("unknown detail-type {0:?}")]
    UnknownDetailType(String),
    /// `message` names the field (`detail.items[0].unit_price is missing`).
    #[error("{message}")]
    InvalidDetail {
        detail_type: String,
        message: String,
    },
}

/// A validated event.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub event_id: String,
    pub org_id: OrgId,
    pub detail_type: String,
    /// When the fact happened (the envelope's `time`); orders directory updates.
    pub time: DateTime<Utc>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Customer {
        customer_id: CustomerId,
        update: CustomerUpdate,
    },
    OrgSettings(OrgSettingsUpdate),
    Notify(NotifyRequest),
}

/// What a notifying event asks for, before preferences and templates have their say.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyRequest {
    pub notification_type: NotificationType,
    pub recipient: Recipient,
    pub business_key: BusinessKey,
    /// The template variables: the event's detail, validated, without nulls.
    pub context: Map<String, Value>,
    pub channels: ChannelPlan,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Critical notifications ignore quiet hours.
    pub critical: bool,
}

/// Which channels the event wants before preferences filter them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelPlan {
    /// The template's default channels.
    TemplateDefaults,
    /// Exactly these (still filtered by preferences).
    Only(Vec<Channel>),
}

/// The tenant of an event: `detail.organization_id`, required in every event.
fn organization(detail: &Value) -> Result<OrgId, EventError> {
    let detail = detail.as_object().ok_or(EventError::DetailNotAnObject)?;
    match detail.get("organization_id") {
        None => Err(EventError::MissingOrganization),
        Some(Value::String(s)) => {
            OrgId::parse(s.as_str()).map_err(|e| EventError::InvalidOrganization(e.0))
        }
        Some(other) => Err(EventError::InvalidOrganization(format!(
            "expected a string, found {}",
            kind_of(other)
        ))),
    }
}

impl IncomingEvent {
    /// Parses and validates an event against the contract, as seen at `now` (Herald's clock
    /// bounds the instants an event may carry).
    pub fn parse(
        envelope: &EventEnvelope,
        now: DateTime<Utc>,
    ) -> Result<IncomingEvent, EventError> {
        let detail = without_nulls(&envelope.detail);
        let org_id = organization(&detail)?;
        let reader = Reader {
            detail_type: envelope.detail_type.as_str(),
            now,
        };
        let time = envelope.time.unwrap_or(now);
        let kind = match directory_events::directory_event(&reader, &detail)? {
            Some(kind) => {
                // A directory event orders by its time: one from the future would win every
                // later comparison, so a clock more than a few minutes ahead is refused.
                if time > now + MAX_CLOCK_SKEW {
                    return Err(reader.invalid(format!(
                        "time is more than {} minutes ahead of Herald's clock",
                        MAX_CLOCK_SKEW.num_minutes()
                    )));
                }
                kind
            }
            None => EventKind::Notify(notifying::notifying_event(&reader, detail)?),
        };
        Ok(IncomingEvent {
            event_id: envelope.id.clone(),
            org_id,
            detail_type: envelope.detail_type.clone(),
            time,
            kind,
        })
    }

    /// The organization of an event that may not parse, for recording its rejection.
    pub fn org_of(envelope: &EventEnvelope) -> Option<OrgId> {
        envelope
            .detail
            .get("organization_id")
            .and_then(Value::as_str)
            .and_then(|s| OrgId::parse(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-20T10:00:30Z".parse().unwrap()
    }

    fn parse(e: &EventEnvelope) -> Result<IncomingEvent, EventError> {
        IncomingEvent::parse(e, now())
    }

    fn envelope(detail_type: &str, detail: Value) -> EventEnvelope {
        EventEnvelope {
            id: "evt-1".into(),
            detail_type: detail_type.into(),
            source: "ordering".into(),
            time: Some("2026-11-20T10:00:00Z".parse().unwrap()),
            detail,
        }
    }

    fn order_created() -> Value {
        json!({
            "organization_id": "org_acme", "customer_id": "cus_1", "order_id": "ord_1",
            "grand_total": "59.90", "currency": "USD", "items": [{"sku": "a", "name": "A", "quantity": 1, "unit_price": "59.90"}],
            "created_at": "2026-11-20T09:59:00Z"
        })
    }

    /// A built-in type's variables are the event contract's: its sample is a context the
    /// contract accepts, and without any one of its required variables one it refuses.
    #[test]
    fn each_built_in_types_variables_are_those_the_contract_defines() {
        let catalog = crate::template::Catalog::embedded().unwrap();
        let request = |t: &str, context: &Map<String, Value>| {
            envelope(
                "NotificationRequested",
                json!({"organization_id": "org_acme", "customer_id": "cus_1",
                       "idempotency_key": "k1", "notification_type": t, "context": context}),
            )
        };
        for t in catalog.notification_types() {
            let spec = catalog.spec(t).unwrap();
            assert!(parse(&request(t.as_str(), &spec.sample)).is_ok(), "{t}");
            for (name, variable) in spec.variables.iter().filter(|(_, v)| v.required) {
                let mut without = spec.sample.clone();
                without.remove(name);
                assert!(
                    parse(&request(t.as_str(), &without)).is_err(),
                    "{t}: the contract accepts a context without {name} ({variable:?})"
                );
            }
        }
    }

    #[test]
    fn order_created_becomes_an_order_confirmation_keyed_by_order() {
        let e = parse(&envelope("OrderCreated", order_created())).unwrap();
        assert_eq!(e.org_id.as_str(), "org_acme");
        let EventKind::Notify(req) = e.kind else {
            panic!("not a notify")
        };
        assert_eq!(req.notification_type.as_str(), "order_confirmation");
        assert_eq!(req.business_key.as_str(), "ord_1");
        assert!(!req.context.contains_key("organization_id"));
        assert_eq!(req.context["grand_total"], json!("59.90"));
    }

    #[test]
    fn amounts_may_be_numbers_but_not_booleans() {
        let mut d = order_created();
        d["grand_total"] = json!(59.9);
        assert!(parse(&envelope("OrderCreated", d.clone())).is_ok());
        d["grand_total"] = json!(true);
        let err = parse(&envelope("OrderCreated", d)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "detail.grand_total: expected a decimal amount (at most 24 characters) as a string or number, found a boolean"
        );
    }

    #[test]
    fn the_sms_segment_cap_is_a_whole_number_from_1_to_10() {
        let settings = |cap: Value| {
            parse(&envelope(
                "OrganizationSettingsChanged",
                json!({"organization_id": "o", "sms_max_segments": cap}),
            ))
        };
        let EventKind::OrgSettings(update) = settings(json!(4)).unwrap().kind else {
            panic!("not an organization's settings")
        };
        assert_eq!(update.sms_max_segments.map(|c| c.get()), Some(4));
        for bad in [json!(0), json!(11), json!(2.5), json!("3"), json!(-1)] {
            let err = settings(bad.clone()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "detail.sms_max_segments: expected a whole number from 1 to 10",
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_organization_and_unknown_types_are_refused() {
        let mut d = order_created();
        d.as_object_mut().unwrap().remove("organization_id");
        assert_eq!(
            parse(&envelope("OrderCreated", d)),
            Err(EventError::MissingOrganization)
        );
        assert_eq!(
            parse(&envelope("InvoicePainted", order_created())),
            Err(EventError::UnknownDetailType("InvoicePainted".into()))
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let mut d = order_created();
        d.as_object_mut().unwrap().remove("currency");
        let err = parse(&envelope("OrderCreated", d)).unwrap_err();
        assert!(err.to_string() == "detail.currency is missing", "{err}");
    }

    #[test]
    fn review_prompts_are_scheduled_a_week_after_delivery() {
        let d = json!({"organization_id": "o", "customer_id": "c", "order_id": "ord", "delivered_at": "2026-11-20T12:00:00Z"});
        let EventKind::Notify(req) = parse(&envelope("OrderDelivered", d)).unwrap().kind else {
            panic!()
        };
        assert_eq!(
            req.scheduled_for,
            Some("2026-11-27T12:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn reminder_channels_grow_with_severity() {
        let plan = |severity: &str| {
            let d = json!({"organization_id": "o", "customer_id": "c", "reminder_id": "r", "severity": severity, "title": "t", "body": "b"});
            let EventKind::Notify(req) = parse(&envelope("ReminderDue", d)).unwrap().kind else {
                panic!()
            };
            (req.channels, req.critical)
        };
        assert_eq!(
            plan("low"),
            (ChannelPlan::Only(vec![Channel::InApp]), false)
        );
        assert_eq!(
            plan("high"),
            (
                ChannelPlan::Only(vec![Channel::InApp, Channel::Email]),
                false
            )
        );
        assert_eq!(
            plan("critical"),
            (
                ChannelPlan::Only(vec![
                    Channel::InApp,
                    Channel::Email,
                    Channel::Sms,
                    Channel::Whatsapp
                ]),
                true
            )
        );
        let d = json!({"organization_id": "o", "customer_id": "c", "reminder_id": "r", "severity": "urgent", "title": "t", "body": "b"});
        assert!(parse(&envelope("ReminderDue", d)).is_err());
    }

    #[test]
    fn directory_events_validate_addresses() {
        let d = json!({"organization_id": "o", "customer_id": "c", "phone": "555-0101"});
        let err = parse(&envelope("CustomerContactChanged", d)).unwrap_err();
        assert!(
            err.to_string()
                .contains("detail.phone: phone must be in E.164"),
            "{err}"
        );
        let d = json!({"organization_id": "o", "customer_id": "c", "whatsapp": "+44 20 7946 0958"});
        let err = parse(&envelope("CustomerContactChanged", d)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("detail.whatsapp: phone must be in E.164"),
            "{err}"
        );
        assert!(!err.to_string().contains("7946"), "{err}");
    }

    #[test]
    fn an_order_line_without_a_unit_price_is_named_by_its_path() {
        let mut d = order_created();
        d["items"][0].as_object_mut().unwrap().remove("unit_price");
        let err = parse(&envelope("OrderCreated", d)).unwrap_err();
        assert_eq!(err.to_string(), "detail.items[0].unit_price is missing");
        let mut d = order_created();
        d["items"][0]["quantity"] = json!("two");
        let err = parse(&envelope("OrderCreated", d)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "detail.items[0].quantity: expected u32, found string"
        );
    }

    #[test]
    fn a_requested_notification_is_held_to_its_types_contract() {
        let d = json!({"organization_id": "o", "customer_id": "c", "idempotency_key": "k",
            "notification_type": "order_confirmation",
            "context": {"order_id": "o1", "grand_total": "1", "currency": "USD", "created_at": "2026-11-20T09:00:00Z",
                        "items": [{"sku": "a", "name": "A", "quantity": 1}]}});
        let err = parse(&envelope("NotificationRequested", d)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "detail.context.items[0].unit_price is missing"
        );
    }

    #[test]
    fn rejection_reasons_never_echo_the_value() {
        for (detail_type, detail) in [
            (
                "CustomerContactChanged",
                json!({"organization_id": "o", "customer_id": "c", "phone": 14155550101_u64}),
            ),
            (
                "DeviceRegistered",
                json!({"organization_id": "o", "customer_id": "c", "platform": "fcm", "token": 98765432109876_u64}),
            ),
            (
                "DeviceRegistered",
                json!({"organization_id": "o", "customer_id": "c", "platform": "+14155550101", "token": "t"}),
            ),
            (
                "CustomerContactChanged",
                json!({"organization_id": "o", "customer_id": "c", "email": "not-an-address-4155550101"}),
            ),
        ] {
            let err = parse(&envelope(detail_type, detail))
                .unwrap_err()
                .to_string();
            for secret in ["14155550101", "98765432109876", "4155550101"] {
                assert!(!err.contains(secret), "{err}");
            }
            assert!(err.starts_with("detail."), "{err}");
        }
        let err = parse(&envelope(
            "CustomerContactChanged",
            json!({"organization_id": "o", "customer_id": "c", "phone": 14155550101_u64}),
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "detail.phone: expected a string, found integer"
        );
    }

    #[test]
    fn instants_outside_the_plausible_range_are_refused_by_name() {
        let d = json!({"organization_id": "o", "customer_id": "c", "order_id": "ord", "delivered_at": "9999-12-30T00:00:00Z"});
        let err = parse(&envelope("OrderDelivered", d)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("detail.delivered_at must lie between"),
            "{err}"
        );
        let d = json!({"organization_id": "o", "customer_id": "c", "idempotency_key": "k", "notification_type": "review_prompt",
            "context": {"order_id": "o1", "delivered_at": "2026-11-20T09:00:00Z"}, "scheduled_for": "2031-01-01T00:00:00Z"});
        let err = parse(&envelope("NotificationRequested", d)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("detail.scheduled_for must lie between"),
            "{err}"
        );
        // delivered now and then: the prompt a week later is fine
        let d = json!({"organization_id": "o", "customer_id": "c", "order_id": "ord", "delivered_at": "2026-11-19T00:00:00Z"});
        assert!(parse(&envelope("OrderDelivered", d)).is_ok());
    }

    #[test]
    fn a_directory_event_from_the_future_is_refused() {
        let mut e = envelope(
            "CustomerContactChanged",
            json!({"organization_id": "o", "customer_id": "c", "email": "a@example.com"}),
        );
        e.time = Some("9999-12-31T00:00:00Z".parse().unwrap());
        let err = parse(&e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "time is more than 5 minutes ahead of Herald's clock"
        );
        e.time = Some(now() + Duration::minutes(2));
        assert!(parse(&e).is_ok(), "a little drift is fine");
    }

    #[test]
    fn null_means_absent() {
        let d = json!({"organization_id": "o", "customer_id": "c", "reminder_id": "r", "severity": "low", "title": "t", "body": "b", "action_url": null});
        let EventKind::Notify(req) = parse(&envelope("ReminderDue", d)).unwrap().kind else {
            panic!()
        };
        assert!(!req.context.contains_key("action_url"));
    }

    #[test]
    fn fields_are_bounded() {
        let d = json!({"organization_id": "o", "customer_id": "c", "reminder_id": "r", "severity": "low", "title": "t", "body": "x".repeat(215_000)});
        let err = parse(&envelope("ReminderDue", d)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "detail.body: must be at most 2000 characters"
        );
        let d = json!({"organization_id": "o", "customer_id": "c", "idempotency_key": "k", "notification_type": "some_custom_type",
            "context": {"blob": "x".repeat(20_000)}});
        let err = parse(&envelope("NotificationRequested", d)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "detail.context must be at most 16 KB as JSON"
        );
    }
}
