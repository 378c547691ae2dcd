//! The notifying events: each one's recipient, business key and context (the variables its
//! type's templates read), each context read and checked once.

use chrono::Duration;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::read::Reader;
use super::values::{Amount, Bounded, Currency, Instant, Link, Text};
use super::{ChannelPlan, EventError, MAX_CONTEXT_BYTES, NotifyRequest, REVIEW_PROMPT_DELAY_DAYS};
use crate::ids::{BusinessKey, CustomerId, NotificationType};
use crate::model::{Channel, Recipient};

// Each event's detail as the contract defines it. Unknown fields are allowed so that producers
// can add fields without breaking Herald; known fields must have the right type. A notifying
// event's detail is read twice: for its recipient, and as the context of its type, which a
// `NotificationRequested` for that type must also satisfy.

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

/// A notification type's context as the contract defines it: its shape, then the rules beyond
/// the shape (instants within their bounds).
trait Context: DeserializeOwned {
    /// The notification type it is the context of.
    const TYPE: &'static str;

    /// `prefix` locates the context in the detail, to name a field that is out of bounds.
    fn check(&self, _r: &Reader, _prefix: &str) -> Result<(), EventError> {
        Ok(())
    }
}

impl Context for OrderConfirmation {
    const TYPE: &'static str = "order_confirmation";

    fn check(&self, r: &Reader, prefix: &str) -> Result<(), EventError> {
        r.shown(&format!("{prefix}.created_at"), self.created_at.0)
            .map(drop)
    }
}

impl Context for ReviewPrompt {
    const TYPE: &'static str = "review_prompt";

    fn check(&self, r: &Reader, prefix: &str) -> Result<(), EventError> {
        r.plausible(&format!("{prefix}.delivered_at"), self.delivered_at.0)
            .map(drop)
    }
}

impl Context for RefundIssued {
    const TYPE: &'static str = "refund_issued";
}

impl Context for ChargebackOpened {
    const TYPE: &'static str = "chargeback_opened";
}

impl Context for TicketConfirmation {
    const TYPE: &'static str = "ticket_confirmation";

    fn check(&self, r: &Reader, prefix: &str) -> Result<(), EventError> {
        r.shown(&format!("{prefix}.starts_at"), self.starts_at.0)
            .map(drop)
    }
}

impl Context for Reminder {
    const TYPE: &'static str = "reminder";
}

/// Reads and checks a context found at `prefix`.
fn read<C: Context>(r: &Reader, prefix: &str, value: &Value) -> Result<C, EventError> {
    let context: C = r.at(prefix, value)?;
    context.check(r, prefix)?;
    Ok(context)
}

/// Validates a `NotificationRequested`'s context as its type's own event defines it. Types the
/// contract does not define are left to the catalog.
fn check_context(r: &Reader, notification_type: &str, context: &Value) -> Result<(), EventError> {
    const AT: &str = "detail.context";
    match notification_type {
        OrderConfirmation::TYPE => read::<OrderConfirmation>(r, AT, context).map(drop),
        ReviewPrompt::TYPE => read::<ReviewPrompt>(r, AT, context).map(drop),
        RefundIssued::TYPE => read::<RefundIssued>(r, AT, context).map(drop),
        ChargebackOpened::TYPE => read::<ChargebackOpened>(r, AT, context).map(drop),
        TicketConfirmation::TYPE => read::<TicketConfirmation>(r, AT, context).map(drop),
        Reminder::TYPE => read::<Reminder>(r, AT, context).map(drop),
        _ => Ok(()),
    }
}

/// `detail` was checked to be an object on entry; it becomes the context, less the organization.
fn notify(
    notification_type: &str,
    recipient: Recipient,
    business_key: BusinessKey,
    detail: Value,
) -> NotifyRequest {
    let mut context = match detail {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    context.remove("organization_id");
    NotifyRequest {
        // invariant: the names passed here are the snake_case literals of `Context::TYPE`
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

/// What a notifying event asks for; its detail becomes the notification's context as it is,
/// without a copy.
pub(super) fn notifying_event(r: &Reader, raw: Value) -> Result<NotifyRequest, EventError> {
    if !raw.is_object() {
        return Err(EventError::DetailNotAnObject);
    }
    let customer = |raw: &Value| -> Result<Recipient, EventError> {
        let who: ForCustomer = r.detail(raw)?;
        Ok(Recipient::Customer(who.customer_id))
    };
    const AT: &str = "detail";
    Ok(match r.detail_type {
        "OrderCreated" => {
            let recipient = customer(&raw)?;
            let d: OrderConfirmation = read(r, AT, &raw)?;
            notify(OrderConfirmation::TYPE, recipient, d.order_id, raw)
        }
        "OrderDelivered" => {
            let recipient = customer(&raw)?;
            let d: ReviewPrompt = read(r, AT, &raw)?;
            let mut req = notify(ReviewPrompt::TYPE, recipient, d.order_id, raw);
            let prompt_at = d.delivered_at.0 + Duration::days(REVIEW_PROMPT_DELAY_DAYS);
            req.scheduled_for = Some(r.plausible("detail.delivered_at + 7 days", prompt_at)?);
            req
        }
        "RefundIssued" => {
            let recipient = customer(&raw)?;
            let d: RefundIssued = read(r, AT, &raw)?;
            notify(RefundIssued::TYPE, recipient, d.refund_id, raw)
        }
        "ChargebackOpened" => {
            let d: ChargebackOpened = read(r, AT, &raw)?;
            notify(
                ChargebackOpened::TYPE,
                Recipient::Operations,
                d.chargeback_id,
                raw,
            )
        }
        "TicketPurchased" => {
            let recipient = customer(&raw)?;
            let d: TicketConfirmation = read(r, AT, &raw)?;
            notify(TicketConfirmation::TYPE, recipient, d.ticket_id, raw)
        }
        "ReminderDue" => {
            let recipient = customer(&raw)?;
            let d: Reminder = read(r, AT, &raw)?;
            reminder(
                notify(Reminder::TYPE, recipient, d.reminder_id.clone(), raw),
                &d,
            )
        }
        "NotificationRequested" => requested(r, &raw)?,
        other => return Err(EventError::UnknownDetailType(other.to_string())),
    })
}

/// A reminder goes in-app, and by email, then SMS and WhatsApp, as its severity rises; a
/// critical one ignores quiet hours.
fn reminder(mut req: NotifyRequest, d: &Reminder) -> NotifyRequest {
    let mut channels = vec![Channel::InApp];
    if matches!(d.severity, Severity::High | Severity::Critical) {
        channels.push(Channel::Email);
    }
    if d.severity == Severity::Critical {
        channels.push(Channel::Sms);
        channels.push(Channel::Whatsapp);
    }
    req.channels = ChannelPlan::Only(channels);
    req.critical = d.severity == Severity::Critical;
    req
}

/// A `NotificationRequested`: any type, its context bounded in size and checked as the type's
/// own event defines it.
fn requested(r: &Reader, raw: &Value) -> Result<NotifyRequest, EventError> {
    let d: NotificationRequested = r.detail(raw)?;
    let size = crate::json::size(&d.context);
    if size > MAX_CONTEXT_BYTES {
        return Err(r.invalid(format!(
            "detail.context must be at most {} KB as JSON",
            MAX_CONTEXT_BYTES / 1024
        )));
    }
    let context = Value::Object(d.context);
    check_context(r, d.notification_type.as_str(), &context)?;
    let mut req = notify(
        d.notification_type.as_str(),
        Recipient::Customer(d.customer_id),
        d.idempotency_key,
        context,
    );
    if let Some(channels) = d.channels {
        req.channels = ChannelPlan::Only(channels.0);
    }
    req.scheduled_for = d
        .scheduled_for
        .map(|t| r.plausible("detail.scheduled_for", t.0))
        .transpose()?;
    req.critical = d.critical;
    Ok(req)
}
