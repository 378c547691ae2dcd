//! The event contract (events/README.md): EventBridge events parsed into typed, validated values.
//! Anything that does not fit is refused here with a reason that names the field and what was
//! expected (never the value, which may be personal data), before anything is written.
//!
//! Every field is bounded: text by length, lists by count, instants by a plausible range
//! ([`PAST_LIMIT`], [`FUTURE_LIMIT`]), directory events' `time` by Herald's clock
//! ([`MAX_CLOCK_SKEW`]). `null` means the same as an absent field.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::directory::{CustomerUpdate, MAX_CLOCK_SKEW, OrgSettingsUpdate, QuietHours, TimeZone};
use crate::ids::{
    BusinessKey, CustomerId, EmailAddress, Locale, NotificationType, OrgId, PhoneNumber,
};
use crate::model::{Channel, Recipient};
use crate::model::{Device, Platform};

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

/// A decimal amount as producers send it: `"59.90"` or `59.9`. Kept as text, never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(pub String);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "expected a decimal amount (at most 24 characters) as a string or number";
        let text = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "{EXPECTED}, found {}",
                    kind_of(&other)
                )));
            }
        };
        if text.len() <= 24 && is_decimal(&text) {
            Ok(Amount(text))
        } else {
            Err(serde::de::Error::custom(EXPECTED))
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
            Err(serde::de::Error::custom(
                "expected an ISO 4217 currency code (three capital letters)",
            ))
        }
    }
}

/// Non-empty text of at most `MAX` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MAX: usize>(pub String);

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            Err(serde::de::Error::custom("must not be empty"))
        } else if s.chars().count() > MAX {
            Err(serde::de::Error::custom(format!(
                "must be at most {MAX} characters"
            )))
        } else {
            Ok(Text(s))
        }
    }
}

/// A list of at most `MAX` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Bounded<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        if items.len() > MAX {
            return Err(serde::de::Error::custom(format!(
                "must have at most {MAX} entries"
            )));
        }
        Ok(Bounded(items))
    }
}

/// An RFC 3339 instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Instant(t.with_timezone(&Utc)))
            .map_err(|_| {
                serde::de::Error::custom(
                    "expected an RFC 3339 timestamp such as 2026-11-20T10:00:00Z",
                )
            })
    }
}

/// A link: an absolute http or https URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link(pub String);

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Text::<2048>(s) = Text::deserialize(d)?;
        match url::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {
                Ok(Link(s))
            }
            _ => Err(serde::de::Error::custom(
                "expected an absolute http or https URL",
            )),
        }
    }
}

// The detail of each event, as the contract defines it. Unknown fields are allowed so that
// producers can add fields without breaking Herald; known fields must have the right type.
// A notifying event's detail is read twice: for its recipient, and as the context of its type,
// which a `NotificationRequested` for that type must also satisfy.

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
    unsubscribed: Bounded<NotificationType, 100>,
    quiet_hours: Option<QuietHours>,
}

#[derive(Deserialize)]
struct DeviceEvent {
    customer_id: CustomerId,
    platform: Platform,
    token: Text<4096>,
}

#[derive(Deserialize)]
struct OrganizationSettingsChanged {
    operations_email: Option<EmailAddress>,
    default_locale: Option<Locale>,
    sender_email: Option<EmailAddress>,
}

/// The recipient of a customer's notification.
#[derive(Deserialize)]
struct ForCustomer {
    customer_id: CustomerId,
}

#[derive(Deserialize)]
#[allow(dead_code)] // fields are validated here and read by the templates from the detail
struct OrderLine {
    sku: Text<64>,
    name: Text<200>,
    quantity: u32,
    unit_price: Amount,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct OrderConfirmation {
    order_id: BusinessKey,
    grand_total: Amount,
    currency: Currency,
    items: Bounded<OrderLine, 100>,
    created_at: Instant,
}

#[derive(Deserialize)]
struct ReviewPrompt {
    order_id: BusinessKey,
    delivered_at: Instant,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RefundIssued {
    refund_id: BusinessKey,
    order_id: Text<128>,
    amount: Amount,
    currency: Currency,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ChargebackOpened {
    chargeback_id: BusinessKey,
    order_id: Text<128>,
    amount: Amount,
    currency: Currency,
    reason: Text<200>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct TicketConfirmation {
    ticket_id: BusinessKey,
    event_name: Text<200>,
    starts_at: Instant,
    seats: Bounded<Text<16>, 50>,
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
struct Reminder {
    reminder_id: BusinessKey,
    severity: Severity,
    title: Text<200>,
    body: Text<2000>,
    action_url: Option<Link>,
}

#[derive(Deserialize)]
struct NotificationRequested {
    customer_id: CustomerId,
    idempotency_key: BusinessKey,
    notification_type: NotificationType,
    context: Map<String, Value>,
    channels: Option<Bounded<Channel, 5>>,
    scheduled_for: Option<Instant>,
    #[serde(default)]
    critical: bool,
}

/// serde's own messages quote the value they refused; keep what was expected and the kind of
/// what was found, never the value itself.
fn without_value(message: &str) -> String {
    let kind = |found: &str| {
        found
            .split(['`', '"'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            return if prefix == "invalid type: " {
                format!("expected {expected}, found {}", kind(found))
            } else {
                format!("expected {expected}")
            };
        }
    }
    message.to_string()
}

/// Where in the detail a field sits: `detail.items[0].unit_price`.
fn field_path(prefix: &str, path: &str, field: Option<&str>) -> String {
    let mut out = prefix.to_string();
    if path != "." {
        if !path.starts_with('[') {
            out.push('.');
        }
        out.push_str(path);
    }
    if let Some(field) = field {
        out.push('.');
        out.push_str(field);
    }
    out
}

fn parse_at<T: DeserializeOwned>(
    detail_type: &str,
    prefix: &str,
    value: &Value,
) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'));
        let message = match missing {
            Some(field) => format!("{} is missing", field_path(prefix, &path, Some(field))),
            None => format!(
                "{}: {}",
                field_path(prefix, &path, None),
                without_value(&inner)
            ),
        };
        EventError::InvalidDetail {
            detail_type: detail_type.to_string(),
            message,
        }
    })
}

fn parse_detail<T: DeserializeOwned>(detail_type: &str, detail: &Value) -> Result<T, EventError> {
    parse_at(detail_type, "detail", detail)
}

fn invalid(detail_type: &str, message: String) -> EventError {
    EventError::InvalidDetail {
        detail_type: detail_type.to_string(),
        message,
    }
}

/// Refuses an instant that schedules a send outside `now - PAST_LIMIT ..= now + FUTURE_LIMIT`,
/// naming the field.
fn plausible(
    detail_type: &str,
    field: &str,
    t: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, EventError> {
    within(detail_type, field, t, now, PAST_LIMIT, FUTURE_LIMIT)
}

/// Refuses an instant that is only shown further than `SHOWN_LIMIT` from now.
fn shown(
    detail_type: &str,
    field: &str,
    t: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, EventError> {
    within(detail_type, field, t, now, SHOWN_LIMIT, SHOWN_LIMIT)
}

fn within(
    detail_type: &str,
    field: &str,
    t: DateTime<Utc>,
    now: DateTime<Utc>,
    past: Duration,
    future: Duration,
) -> Result<DateTime<Utc>, EventError> {
    if t < now - past || t > now + future {
        return Err(invalid(
            detail_type,
            format!(
                "{field} must lie between {} days before and {} days after now",
                past.num_days(),
                future.num_days()
            ),
        ));
    }
    Ok(t)
}

/// Null means absent: drops null members of every object, at any depth.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Validates a notification type's context (the variables its templates read) as the type's
/// own event defines them; `prefix` locates it in the detail. Returns the instants the context
/// schedules from, for their bounds. Types the contract does not define are left to the catalog.
fn check_context(
    detail_type: &str,
    notification_type: &str,
    prefix: &str,
    context: &Value,
    now: DateTime<Utc>,
) -> Result<(), EventError> {
    let at = |field: &str| format!("{prefix}.{field}");
    match notification_type {
        "order_confirmation" => {
            let c: OrderConfirmation = parse_at(detail_type, prefix, context)?;
            shown(detail_type, &at("created_at"), c.created_at.0, now)?;
        }
        "review_prompt" => {
            let c: ReviewPrompt = parse_at(detail_type, prefix, context)?;
            plausible(detail_type, &at("delivered_at"), c.delivered_at.0, now)?;
        }
        "refund_issued" => {
            parse_at::<RefundIssued>(detail_type, prefix, context)?;
        }
        "chargeback_opened" => {
            parse_at::<ChargebackOpened>(detail_type, prefix, context)?;
        }
        "ticket_confirmation" => {
            let c: TicketConfirmation = parse_at(detail_type, prefix, context)?;
            shown(detail_type, &at("starts_at"), c.starts_at.0, now)?;
        }
        "reminder" => {
            parse_at::<Reminder>(detail_type, prefix, context)?;
        }
        _ => {}
    }
    Ok(())
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

/// A directory event's change, or `None` when the detail-type is not a directory event's.
fn directory_event(dt: &str, raw: &Value) -> Result<Option<EventKind>, EventError> {
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
                    unsubscribed: d.unsubscribed.0.into_iter().collect::<BTreeSet<_>>(),
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
        _ => return Ok(None),
    };
    Ok(Some(kind))
}

/// What a notifying event asks for.
fn notifying_event(dt: &str, raw: &Value, now: DateTime<Utc>) -> Result<EventKind, EventError> {
    let detail = raw.as_object().ok_or(EventError::DetailNotAnObject)?;
    let customer = || -> Result<Recipient, EventError> {
        let who: ForCustomer = parse_detail(dt, raw)?;
        Ok(Recipient::Customer(who.customer_id))
    };
    Ok(match dt {
        "OrderCreated" => {
            let recipient = customer()?;
            check_context(dt, "order_confirmation", "detail", raw, now)?;
            let d: OrderConfirmation = parse_detail(dt, raw)?;
            EventKind::Notify(notify("order_confirmation", recipient, d.order_id, detail))
        }
        "OrderDelivered" => {
            let recipient = customer()?;
            check_context(dt, "review_prompt", "detail", raw, now)?;
            let d: ReviewPrompt = parse_detail(dt, raw)?;
            let mut req = notify("review_prompt", recipient, d.order_id, detail);
            let prompt_at = d.delivered_at.0 + Duration::days(REVIEW_PROMPT_DELAY_DAYS);
            req.scheduled_for = Some(plausible(
                dt,
                "detail.delivered_at + 7 days",
                prompt_at,
                now,
            )?);
            EventKind::Notify(req)
        }
        "RefundIssued" => {
            let recipient = customer()?;
            let d: RefundIssued = parse_detail(dt, raw)?;
            EventKind::Notify(notify("refund_issued", recipient, d.refund_id, detail))
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
            let recipient = customer()?;
            check_context(dt, "ticket_confirmation", "detail", raw, now)?;
            let d: TicketConfirmation = parse_detail(dt, raw)?;
            EventKind::Notify(notify(
                "ticket_confirmation",
                recipient,
                d.ticket_id,
                detail,
            ))
        }
        "ReminderDue" => {
            let recipient = customer()?;
            let d: Reminder = parse_detail(dt, raw)?;
            let mut req = notify("reminder", recipient, d.reminder_id, detail);
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
            let size = serde_json::to_vec(&d.context).map_or(usize::MAX, |v| v.len());
            if size > MAX_CONTEXT_BYTES {
                return Err(invalid(
                    dt,
                    format!(
                        "detail.context must be at most {} KB as JSON",
                        MAX_CONTEXT_BYTES / 1024
                    ),
                ));
            }
            let context = Value::Object(d.context.clone());
            check_context(
                dt,
                d.notification_type.as_str(),
                "detail.context",
                &context,
                now,
            )?;
            let mut req = notify(
                d.notification_type.as_str(),
                Recipient::Customer(d.customer_id),
                d.idempotency_key,
                &d.context,
            );
            if let Some(channels) = d.channels {
                req.channels = ChannelPlan::Only(channels.0);
            }
            req.scheduled_for = d
                .scheduled_for
                .map(|t| plausible(dt, "detail.scheduled_for", t.0, now))
                .transpose()?;
            req.critical = d.critical;
            EventKind::Notify(req)
        }
        other => return Err(EventError::UnknownDetailType(other.to_string())),
    })
}

impl IncomingEvent {
    /// Parses and validates an event against the contract, as seen at `now` (Herald's clock
    /// bounds the instants an event may carry).
    pub fn parse(
        envelope: &EventEnvelope,
        now: DateTime<Utc>,
    ) -> Result<IncomingEvent, EventError> {
        let detail = without_nulls(envelope.detail.clone());
        let org_id = organization(&detail)?;
        let dt = envelope.detail_type.as_str();
        let time = envelope.time.unwrap_or(now);
        let kind = match directory_event(dt, &detail)? {
            Some(kind) => {
                // A directory event orders by its time: one from the future would win every
                // later comparison, so a clock more than a few minutes ahead is refused.
                if time > now + MAX_CLOCK_SKEW {
                    return Err(invalid(
                        dt,
                        format!(
                            "time is more than {} minutes ahead of Herald's clock",
                            MAX_CLOCK_SKEW.num_minutes()
                        ),
                    ));
                }
                kind
            }
            None => notifying_event(dt, &detail, now)?,
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
                ChannelPlan::Only(vec![Channel::InApp, Channel::Email, Channel::Sms]),
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
