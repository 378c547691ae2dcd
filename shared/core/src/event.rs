//! The event contract (events/README.md): EventBridge events parsed into typed, validated values.
//! Anything that does not fit is refused here with a reason, before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::directory::{CustomerUpdate, Device, OrgSettingsUpdate, Platform, QuietHours, TimeZone};
use crate::ids::{
    BusinessKey, CustomerId, EmailAddress, Locale, NotificationType, OrgId, PhoneNumber,
};
use crate::model::{Channel, Recipient};

/// How long after delivery a customer is asked for a review.
pub const REVIEW_PROMPT_DELAY_DAYS: i64 = 7;

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
    #[error("invalid {detail_type} detail: {message}")]
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
    /// The template variables: the event's detail.
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

/// A decimal amount as producers send it: `"59.90"` or `59.9`. Kept as text, never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(pub String);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a decimal amount as a string or number, found {}",
                    kind_of(&other)
                )));
            }
        };
        if is_decimal(&text) {
            Ok(Amount(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "{text:?} is not a decimal amount"
            )))
        }
    }
}

pub(crate) fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.chars().all(|c| c.is_ascii_digit())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An ISO 4217 code: three capital letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(pub String);

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "{s:?} is not an ISO 4217 currency code"
            )))
        }
    }
}

/// Non-empty text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            Err(serde::de::Error::custom("must not be empty"))
        } else {
            Ok(Text(s))
        }
    }
}

// The detail of each event, as the contract defines it. Unknown fields are allowed so that
// producers can add fields without breaking Herald; known fields must have the right type.

#[derive(Deserialize)]
struct CustomerContactChanged {
    customer_id: CustomerId,
    email: Option<EmailAddress>,
    phone: Option<PhoneNumber>,
    locale: Option<Locale>,
    timezone: Option<TimeZone>,
}

#[derive(Deserialize)]
struct NotificationPreferencesChanged {
    customer_id: CustomerId,
    channels: BTreeMap<Channel, bool>,
    unsubscribed: BTreeSet<NotificationType>,
    quiet_hours: Option<QuietHours>,
}

#[derive(Deserialize)]
struct DeviceEvent {
    customer_id: CustomerId,
    platform: Platform,
    token: Text,
}

#[derive(Deserialize)]
struct OrganizationSettingsChanged {
    operations_email: Option<EmailAddress>,
    default_locale: Option<Locale>,
    sender_email: Option<EmailAddress>,
}

#[derive(Deserialize)]
#[allow(dead_code)] // fields are validated here and read by the templates from the raw detail
struct OrderCreated {
    customer_id: CustomerId,
    order_id: BusinessKey,
    grand_total: Amount,
    currency: Currency,
    items: Vec<Map<String, Value>>,
    created_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct OrderDelivered {
    customer_id: CustomerId,
    order_id: BusinessKey,
    delivered_at: DateTime<Utc>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RefundIssued {
    customer_id: CustomerId,
    refund_id: BusinessKey,
    order_id: Text,
    amount: Amount,
    currency: Currency,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ChargebackOpened {
    chargeback_id: BusinessKey,
    order_id: Text,
    amount: Amount,
    currency: Currency,
    reason: Text,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct TicketPurchased {
    customer_id: CustomerId,
    ticket_id: BusinessKey,
    event_name: Text,
    starts_at: DateTime<Utc>,
    seats: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Severity {
    Low,
    High,
    Critical,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ReminderDue {
    customer_id: CustomerId,
    reminder_id: BusinessKey,
    severity: Severity,
    title: Text,
    body: Text,
    action_url: Option<Text>,
}

#[derive(Deserialize)]
struct NotificationRequested {
    customer_id: CustomerId,
    idempotency_key: BusinessKey,
    notification_type: NotificationType,
    context: Map<String, Value>,
    channels: Option<Vec<Channel>>,
    scheduled_for: Option<DateTime<Utc>>,
    #[serde(default)]
    critical: bool,
}

fn parse_detail<T: DeserializeOwned>(detail_type: &str, detail: &Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(detail).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde's messages carry "at line 1 column 2" only for text input; none here
        let message = if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        };
        EventError::InvalidDetail {
            detail_type: detail_type.to_string(),
            message,
        }
    })
}

fn notify(
    notification_type: &str,
    recipient: Recipient,
    business_key: BusinessKey,
    detail: &Map<String, Value>,
) -> NotifyRequest {
    let mut context = detail.clone();
    context.remove("organization_id");
    NotifyRequest {
        // invariant: the names passed here are snake_case literals
        notification_type: NotificationType::parse(notification_type)
            .unwrap_or_else(|_| unreachable!()),
        recipient,
        business_key,
        context,
        channels: ChannelPlan::TemplateDefaults,
        scheduled_for: None,
        critical: false,
    }
}

impl IncomingEvent {
    /// Parses and validates an event against the contract.
    pub fn parse(envelope: &EventEnvelope) -> Result<IncomingEvent, EventError> {
        let detail = envelope
            .detail
            .as_object()
            .ok_or(EventError::DetailNotAnObject)?;
        let org_id = match detail.get("organization_id") {
            None | Some(Value::Null) => return Err(EventError::MissingOrganization),
            Some(Value::String(s)) => {
                OrgId::parse(s.as_str()).map_err(|e| EventError::InvalidOrganization(e.0))?
            }
            Some(other) => {
                return Err(EventError::InvalidOrganization(format!(
                    "expected a string, found {}",
                    kind_of(other)
                )));
            }
        };
        let dt = envelope.detail_type.as_str();
        let raw = &envelope.detail;
        let kind = match dt {
            "CustomerContactChanged" => {
                let d: CustomerContactChanged = parse_detail(dt, raw)?;
                EventKind::Customer {
                    customer_id: d.customer_id,
                    update: CustomerUpdate::Contact {
                        email: d.email,
                        phone: d.phone,
                        locale: d.locale,
                        timezone: d.timezone,
                    },
                }
            }
            "NotificationPreferencesChanged" => {
                let d: NotificationPreferencesChanged = parse_detail(dt, raw)?;
                EventKind::Customer {
                    customer_id: d.customer_id,
                    update: CustomerUpdate::Preferences {
                        channels: d.channels,
                        unsubscribed: d.unsubscribed,
                        quiet_hours: d.quiet_hours,
                    },
                }
            }
            "DeviceRegistered" | "DeviceUnregistered" => {
                let d: DeviceEvent = parse_detail(dt, raw)?;
                EventKind::Customer {
                    customer_id: d.customer_id,
                    update: CustomerUpdate::Device {
                        device: Device {
                            platform: d.platform,
                            token: d.token.0,
                        },
                        registered: dt == "DeviceRegistered",
                    },
                }
            }
            "OrganizationSettingsChanged" => {
                let d: OrganizationSettingsChanged = parse_detail(dt, raw)?;
                EventKind::OrgSettings(OrgSettingsUpdate {
                    operations_email: d.operations_email,
                    default_locale: d.default_locale,
                    sender_email: d.sender_email,
                })
            }
            "OrderCreated" => {
                let d: OrderCreated = parse_detail(dt, raw)?;
                EventKind::Notify(notify(
                    "order_confirmation",
                    Recipient::Customer(d.customer_id),
                    d.order_id,
                    detail,
                ))
            }
            "OrderDelivered" => {
                let d: OrderDelivered = parse_detail(dt, raw)?;
                let mut req = notify(
                    "review_prompt",
                    Recipient::Customer(d.customer_id),
                    d.order_id,
                    detail,
                );
                req.scheduled_for = Some(d.delivered_at + Duration::days(REVIEW_PROMPT_DELAY_DAYS));
                EventKind::Notify(req)
            }
            "RefundIssued" => {
                let d: RefundIssued = parse_detail(dt, raw)?;
                EventKind::Notify(notify(
                    "refund_issued",
                    Recipient::Customer(d.customer_id),
                    d.refund_id,
                    detail,
                ))
            }
            "ChargebackOpened" => {
                let d: ChargebackOpened = parse_detail(dt, raw)?;
                EventKind::Notify(notify(
                    "chargeback_opened",
                    Recipient::Operations,
                    d.chargeback_id,
                    detail,
                ))
            }
            "TicketPurchased" => {
                let d: TicketPurchased = parse_detail(dt, raw)?;
                EventKind::Notify(notify(
                    "ticket_confirmation",
                    Recipient::Customer(d.customer_id),
                    d.ticket_id,
                    detail,
                ))
            }
            "ReminderDue" => {
                let d: ReminderDue = parse_detail(dt, raw)?;
                let mut req = notify(
                    "reminder",
                    Recipient::Customer(d.customer_id),
                    d.reminder_id,
                    detail,
                );
                let mut channels = vec![Channel::InApp];
                if matches!(d.severity, Severity::High | Severity::Critical) {
                    channels.push(Channel::Email);
                }
                if d.severity == Severity::Critical {
                    channels.push(Channel::Sms);
                }
                req.channels = ChannelPlan::Only(channels);
                req.critical = d.severity == Severity::Critical;
                EventKind::Notify(req)
            }
            "NotificationRequested" => {
                let d: NotificationRequested = parse_detail(dt, raw)?;
                let mut req = notify(
                    d.notification_type.as_str(),
                    Recipient::Customer(d.customer_id),
                    d.idempotency_key,
                    &d.context,
                );
                if let Some(channels) = d.channels {
                    req.channels = ChannelPlan::Only(channels);
                }
                req.scheduled_for = d.scheduled_for;
                req.critical = d.critical;
                EventKind::Notify(req)
            }
            other => return Err(EventError::UnknownDetailType(other.to_string())),
        };
        Ok(IncomingEvent {
            event_id: envelope.id.clone(),
            org_id,
            detail_type: envelope.detail_type.clone(),
            time: envelope.time.unwrap_or_else(Utc::now),
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

    #[test]
    fn order_created_becomes_an_order_confirmation_keyed_by_order() {
        let e = IncomingEvent::parse(&envelope("OrderCreated", order_created())).unwrap();
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
        assert!(IncomingEvent::parse(&envelope("OrderCreated", d.clone())).is_ok());
        d["grand_total"] = json!(true);
        let err = IncomingEvent::parse(&envelope("OrderCreated", d)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid OrderCreated detail: grand_total: expected a decimal amount as a string or number, found a boolean"
        );
    }

    #[test]
    fn missing_organization_and_unknown_types_are_refused() {
        let mut d = order_created();
        d.as_object_mut().unwrap().remove("organization_id");
        assert_eq!(
            IncomingEvent::parse(&envelope("OrderCreated", d)),
            Err(EventError::MissingOrganization)
        );
        assert_eq!(
            IncomingEvent::parse(&envelope("InvoicePainted", order_created())),
            Err(EventError::UnknownDetailType("InvoicePainted".into()))
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let mut d = order_created();
        d.as_object_mut().unwrap().remove("currency");
        let err = IncomingEvent::parse(&envelope("OrderCreated", d)).unwrap_err();
        assert!(
            err.to_string().contains("missing field `currency`"),
            "{err}"
        );
    }

    #[test]
    fn review_prompts_are_scheduled_a_week_after_delivery() {
        let d = json!({"organization_id": "o", "customer_id": "c", "order_id": "ord", "delivered_at": "2026-11-20T12:00:00Z"});
        let EventKind::Notify(req) = IncomingEvent::parse(&envelope("OrderDelivered", d))
            .unwrap()
            .kind
        else {
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
            let EventKind::Notify(req) = IncomingEvent::parse(&envelope("ReminderDue", d))
                .unwrap()
                .kind
            else {
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
                ChannelPlan::Only(vec![Channel::InApp, Channel::Email, Channel::Sms]),
                true
            )
        );
        let d = json!({"organization_id": "o", "customer_id": "c", "reminder_id": "r", "severity": "urgent", "title": "t", "body": "b"});
        assert!(IncomingEvent::parse(&envelope("ReminderDue", d)).is_err());
    }

    #[test]
    fn directory_events_validate_addresses() {
        let d = json!({"organization_id": "o", "customer_id": "c", "phone": "555-0101"});
        let err = IncomingEvent::parse(&envelope("CustomerContactChanged", d)).unwrap_err();
        assert!(
            err.to_string().contains("phone: phone must be in E.164"),
            "{err}"
        );
    }
}
