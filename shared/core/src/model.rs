//! The notification and its life cycle.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{
    BusinessKey, ContentSid, CustomerId, EmailAddress, InvalidValue, Locale, NotificationId,
    NotificationType, OrgId, PhoneNumber,
};

/// A way to reach a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    Whatsapp,
    InApp,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::Whatsapp,
        Channel::InApp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Whatsapp => "whatsapp",
            Channel::InApp => "in_app",
        }
    }

    /// Whether the channel interrupts the recipient, and so waits out their quiet hours.
    pub fn interrupts(self) -> bool {
        !matches!(self, Channel::InApp)
    }
}

/// Read from its name as a string rather than as an enum: a map keyed by channel (a customer's
/// `channels`) then names the key in a refusal's path (`channels.email`), which an enum's
/// variant never does.
impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Channel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a channel name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Channel, E> {
                const NAMES: &[&str] = &["email", "sms", "push", "whatsapp", "in_app"];
                Channel::ALL
                    .into_iter()
                    .find(|c| c.as_str() == s)
                    .ok_or_else(|| E::unknown_variant(s, NAMES))
            }
        }
        d.deserialize_str(Name)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unknown channel {s:?}: expected email, sms, push, whatsapp or in_app"
                ))
            })
    }
}

/// Where a notification stands. Moves only along [`TRANSITIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created; waits for dispatch (now, or at `scheduled_for`).
    Pending,
    /// Claimed by one dispatcher, which is talking to the provider.
    Sending,
    /// The provider accepted it.
    Sent,
    /// A soft failure; the next attempt is due at `next_retry_at`.
    Retrying,
    /// Dead-lettered: a hard failure, or soft failures until the attempts ran out.
    Failed,
    /// Reached the recipient (in-app notifications are delivered by being stored).
    Delivered,
    /// The provider reported a permanent bounce: the address is suppressed.
    Bounced,
    /// Never sent: by the time it was to leave, the recipient's consent (preferences,
    /// unsubscribes, the suppression list, an address) no longer allowed it. `note` says why.
    Skipped,
}

/// Who moves a notification from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// A dispatcher takes it, to send it.
    Claim,
    /// The dispatcher that holds it records what became of it.
    Settle,
    /// A provider reports on a message it accepted (a webhook).
    ProviderEvent,
    /// An operator retries a dead letter.
    RetryCommand,
}

/// The life cycle: every change a notification's status may make, and who makes it. The stores
/// enforce it (their conditions are derived from it); nothing else decides.
pub const TRANSITIONS: &[(Status, Status, Cause)] = {
    use Cause::*;
    use Status::*;
    &[
        (Pending, Sending, Claim),
        (Retrying, Sending, Claim),
        // a claim whose lease ran out (the dispatcher died) may be taken again
        (Sending, Sending, Claim),
        (Sending, Sent, Settle),
        // in-app notifications are delivered by being stored
        (Sending, Delivered, Settle),
        (Sending, Retrying, Settle),
        (Sending, Failed, Settle),
        // consent no longer allows it
        (Sending, Skipped, Settle),
        // quiet hours began while it waited: it waits for their end
        (Sending, Pending, Settle),
        (Sent, Delivered, ProviderEvent),
        (Sent, Failed, ProviderEvent),
        (Sent, Bounced, ProviderEvent),
        (Delivered, Bounced, ProviderEvent),
        (Delivered, Failed, ProviderEvent),
        // the retry command gives a dead letter a fresh start
        (Failed, Pending, RetryCommand),
    ]
};

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Sending,
        Status::Sent,
        Status::Retrying,
        Status::Failed,
        Status::Delivered,
        Status::Bounced,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
            Status::Delivered => "delivered",
            Status::Bounced => "bounced",
            Status::Skipped => "skipped",
        }
    }

    /// Whether `cause` may move a notification from this status to `next`.
    pub fn can_become(self, next: Status, cause: Cause) -> bool {
        TRANSITIONS.contains(&(self, next, cause))
    }

    /// The statuses from which `cause` may move a notification to `to`: what a store's
    /// condition for that change admits.
    pub fn sources(to: Status, cause: Cause) -> Vec<Status> {
        TRANSITIONS
            .iter()
            .filter(|(_, next, by)| *next == to && *by == cause)
            .map(|(from, _, _)| *from)
            .collect()
    }

    /// Whether a dispatcher may claim a notification in this status (a `Sending` one only
    /// once its lease ran out).
    pub fn is_claimable(self) -> bool {
        self.can_become(Status::Sending, Cause::Claim)
    }

    /// Waiting for its time: claimable, and not held by anyone.
    pub fn is_waiting(self) -> bool {
        self.is_claimable() && self != Status::Sending
    }

    /// The status a provider's report applies to: a provider reports only on a message it
    /// accepted, so a notification whose send is not recorded yet counts as sent (and the
    /// report waits until it is).
    pub fn as_reported(self) -> Status {
        match self {
            Status::Pending | Status::Sending | Status::Retrying => Status::Sent,
            other => other,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mobile push platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Fcm,
    Apns,
}

/// A registered device: its platform and push token, and the push endpoint made for it once its
/// organization has a platform application for the platform.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Device {
    pub platform: Platform,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_arn: Option<String>,
}

impl Device {
    /// Its key in the customer's record: the platform and the token (not the endpoint).
    pub fn key(&self) -> String {
        let platform = match self.platform {
            Platform::Fcm => "fcm",
            Platform::Apns => "apns",
        };
        format!("{platform}:{}", self.token)
    }
}

/// Tokens are secrets of a kind: debug output shows the platform only.
impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({:?}, ***)", self.platform)
    }
}

/// The providers Herald can be set up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Sendgrid,
    Twilio,
    Ses,
}

impl Provider {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "sendgrid" => Ok(Provider::Sendgrid),
            "twilio" => Ok(Provider::Twilio),
            "ses" => Ok(Provider::Ses),
            other => Err(InvalidValue(format!(
                "unknown provider {other:?}: expected sendgrid, twilio or ses"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Sendgrid => "sendgrid",
            Provider::Twilio => "twilio",
            Provider::Ses => "ses",
        }
    }
}

/// The service that carried a message out: one of the [`Provider`]s an organization sets up,
/// or SNS, which needs no settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryService {
    Ses,
    Sendgrid,
    Sns,
    Twilio,
}

impl DeliveryService {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryService::Ses => "ses",
            DeliveryService::Sendgrid => "sendgrid",
            DeliveryService::Sns => "sns",
            DeliveryService::Twilio => "twilio",
        }
    }
}

impl From<Provider> for DeliveryService {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Ses => DeliveryService::Ses,
            Provider::Sendgrid => DeliveryService::Sendgrid,
            Provider::Twilio => DeliveryService::Twilio,
        }
    }
}

/// Whether a failed send is worth trying again, here or at another provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Throttling, timeouts, 5xx: try again later.
    Soft,
    /// The provider refused the organization's credentials (a key rotated or revoked): the
    /// provider's problem, not the notification's. Retried as a soft failure, after the
    /// settings are read again; never a dead letter of the notification.
    Credentials,
    /// The provider will not send for this account: sending paused or suspended, a sender
    /// not verified, a missing configuration. The provider's problem, like `Credentials`:
    /// the next provider is asked, and the message is retried, never dead-lettered for it.
    Account,
    /// A message the provider cannot take: trying again, anywhere, would fail again.
    Hard,
    /// The recipient opted out or does not exist (a STOP, a suppressed or invalid address):
    /// final, whichever provider is asked, and the address goes on the suppression list so
    /// nothing is tried there again.
    Recipient,
}

impl FailureKind {
    /// Whether the provider, not the message or its recipient, is at fault: the next
    /// provider of the route may take the message.
    pub fn at_provider(self) -> bool {
        matches!(
            self,
            FailureKind::Soft | FailureKind::Credentials | FailureKind::Account
        )
    }
}

/// A provider that did not take a message: which, in which attempt, and its code (the
/// provider's, or Herald's when it gave none: `timeout`, `unreachable`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTry {
    pub attempt: u32,
    pub provider: DeliveryService,
    pub kind: FailureKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

/// The most failed tries a notification keeps, the latest ones: the attempts times the
/// providers of a route, with room to spare.
pub const MAX_TRIES_KEPT: usize = 24;

/// A provider's error code (`MessageRejected`, `21610`, `Permanent:General`), or Herald's own:
/// a short token, never a provider's text (which may quote an address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(String);

impl ErrorCode {
    pub const MAX_LEN: usize = 64;

    /// The code, if it is one: 1 to 64 letters, digits and `_ - . :`. Anything else is text,
    /// and is left out.
    pub fn new(code: impl Into<String>) -> Option<ErrorCode> {
        let code = code.into();
        let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
        (!code.is_empty() && code.len() <= Self::MAX_LEN && code.chars().all(token))
            .then_some(ErrorCode(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Recipient {
    Customer(CustomerId),
    /// The organization's operations contact (internal notifications).
    Operations,
}

impl Recipient {
    /// A stable label, used in ids and output (`cus_alice`, `operations`).
    pub fn label(&self) -> &str {
        match self {
            Recipient::Customer(id) => id.as_str(),
            Recipient::Operations => "operations",
        }
    }
}

/// The address a notification goes to, fixed when it is created so dispatch needs no lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "to", rename_all = "snake_case")]
pub enum Address {
    Email(EmailAddress),
    Phone(PhoneNumber),
    Devices(Vec<Device>),
    Feed,
}

/// A WhatsApp message as the provider sends it: a pre-approved template and the values of its
/// numbered variables (`"1"`, `"2"`, …), rendered at intake. Business-initiated WhatsApp
/// messages can only be templates; the body is Herald's copy of the template's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsappContent {
    pub content_sid: ContentSid,
    pub variables: std::collections::BTreeMap<String, String>,
}

/// The template a message was rendered from: the built-in catalog's, or a version of the
/// organization's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum TemplateRef {
    Builtin,
    Organization { version: u64 },
}

impl fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateRef::Builtin => f.write_str("built-in"),
            TemplateRef::Organization { version } => {
                write!(f, "the organization's version {version}")
            }
        }
    }
}

/// One message to one recipient on one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: NotificationId,
    pub org_id: OrgId,
    pub notification_type: NotificationType,
    pub recipient: Recipient,
    pub channel: Channel,
    pub address: Address,
    /// Email only: the `From` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<EmailAddress>,
    /// WhatsApp only: the approved template and its variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappContent>,
    pub locale: Locale,
    /// The template it was rendered from (none on notifications older than the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The text body (the only body of every channel but email).
    pub body: String,
    /// Email only: an HTML alternative to `body`, sent beside it, when the type has one. The
    /// store keeps it with the event's intake record rather than here (see `has_html`), so a
    /// notification read back carries it only once dispatch has fetched it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    /// Whether the email has an HTML alternative, kept in its event's intake record: the
    /// notification is rewritten at every change of status, the record only once, so the
    /// bulk of an email is written once and every status change stays within one write unit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_html: bool,
    /// SMS only: the segments the body is billed as (see [`crate::sms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_segments: Option<u32>,
    /// Push only: the devices that accepted it, by endpoint id (the last part of the endpoint
    /// ARN) → the provider's message id; a retry goes only to the others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub push_accepted: BTreeMap<String, String>,
    /// Internal notifications (to the organization) never appear in a customer feed.
    pub internal: bool,
    /// Critical notifications ignore quiet hours.
    pub critical: bool,
    pub status: Status,
    /// Counts the writes that changed the status: orders the history when two changes share a
    /// timestamp.
    #[serde(default)]
    pub revision: u32,
    pub attempts: u32,
    pub source_event_id: String,
    pub business_key: BusinessKey,
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time")]
    pub updated_at: DateTime<Utc>,
    /// When the event that asked for it happened (the envelope's `time`): its delivery
    /// latency counts from there (see [`Notification::latency_from`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub event_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub scheduled_for: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub next_retry_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// The service the last attempt went through (none for in-app notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<DeliveryService>,
    /// The providers that did not take it, each try in order (the latest
    /// [`MAX_TRIES_KEPT`]): a failover shows here as the first provider's try before the
    /// second provider's send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<ProviderTry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The code of `last_error`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    /// When this notification's address went on the suppression list because of it (a
    /// provider refused the address, reported a hard bounce, a complaint or a STOP).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub suppressed_at: Option<DateTime<Utc>>,
    /// Why it ended as it did when that is no error: a skip's reason, a send the provider
    /// accepted without a message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub failed_at: Option<DateTime<Utc>>,
    /// Set while a dispatcher holds the notification: its token and when its lease ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    /// Engagement the provider reported, first occurrence.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub opened_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub clicked_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub complained_at: Option<DateTime<Utc>>,
    /// When the scheduler's sweep should enqueue it: a time beyond what the queue's delay can
    /// hold (a scheduled send, a long backoff), or the end of a claim's lease (so a dispatcher
    /// that died mid-send is picked up again). `None` while a queue message is on its way.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub sweep_at: Option<DateTime<Utc>>,
    /// A critical notification's next channels, in order, rendered at intake: where dispatch
    /// sends it when its own channel cannot reach the recipient.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<Fallback>,
}

/// A critical notification on another channel, rendered at intake for the recipient's address
/// there. An email sent this way goes as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    pub channel: Channel,
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_segments: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
}

/// A dispatcher's hold on a notification. The lease outlives one Lambda invocation, so a
/// dispatcher that died mid-send leaves a notification that another may claim later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub token: String,
    #[serde(with = "crate::time")]
    pub until: DateTime<Utc>,
}

/// What a new notification is made of: its identity, its address and its content. Everything
/// else starts as every new notification's does (see [`Notification::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub org_id: OrgId,
    pub notification_type: NotificationType,
    pub recipient: Recipient,
    pub channel: Channel,
    pub business_key: BusinessKey,
    pub source_event_id: String,
    pub address: Address,
    pub sender: Option<EmailAddress>,
    pub locale: Locale,
    pub subject: Option<String>,
    pub body: String,
    pub html_body: Option<String>,
    pub sms_segments: Option<u32>,
    pub internal: bool,
    pub critical: bool,
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl Notification {
    /// A new notification, pending, created `now`; its id derived from its business identity.
    pub fn new(draft: Draft, now: DateTime<Utc>) -> Notification {
        Notification {
            id: Notification::derive_id(
                &draft.org_id,
                &draft.notification_type,
                &draft.recipient,
                draft.channel,
                &draft.business_key,
            ),
            org_id: draft.org_id,
            notification_type: draft.notification_type,
            recipient: draft.recipient,
            channel: draft.channel,
            address: draft.address,
            sender: draft.sender,
            whatsapp: None,
            locale: draft.locale,
            template: None,
            subject: draft.subject,
            body: draft.body,
            has_html: draft.html_body.is_some(),
            html_body: draft.html_body,
            sms_segments: draft.sms_segments,
            push_accepted: BTreeMap::new(),
            internal: draft.internal,
            critical: draft.critical,
            status: Status::Pending,
            revision: 0,
            attempts: 0,
            source_event_id: draft.source_event_id,
            business_key: draft.business_key,
            created_at: now,
            updated_at: now,
            event_at: None,
            scheduled_for: draft.scheduled_for,
            next_retry_at: None,
            provider_message_id: None,
            provider: None,
            tried: Vec::new(),
            last_error: None,
            error_code: None,
            suppressed_at: None,
            note: None,
            sent_at: None,
            failed_at: None,
            claim: None,
            opened_at: None,
            clicked_at: None,
            complained_at: None,
            sweep_at: None,
            fallbacks: Vec::new(),
        }
    }

    /// The id of the notification for this organization, type, recipient, channel and business
    /// key: the same fact always maps to the same id, whatever event carried it.
    pub fn derive_id(
        org: &OrgId,
        notification_type: &NotificationType,
        recipient: &Recipient,
        channel: Channel,
        key: &BusinessKey,
    ) -> NotificationId {
        const NAMESPACE: Uuid = Uuid::from_u128(0x6e0f_3c1a_9b2d_4e57_8a61_d2c4_b7f0_e913);
        let name = format!(
            "{org}\u{1f}{notification_type}\u{1f}{recipient}\u{1f}{channel}\u{1f}{key}",
            recipient = recipient.label()
        );
        let id = Uuid::new_v5(&NAMESPACE, name.as_bytes());
        // invariant: a simple uuid is 32 hex digits, always a valid identifier
        NotificationId::parse(format!("ntf_{}", id.simple())).unwrap_or_else(|_| unreachable!())
    }

    /// The instant its delivery latency counts from: its event's time, or when it was
    /// scheduled for (or deferred to) when that came later. An event's clock ahead of Herald's
    /// counts from the creation: a latency is never negative.
    pub fn latency_from(&self) -> DateTime<Utc> {
        let asked = self
            .event_at
            .map_or(self.created_at, |t| t.min(self.created_at));
        self.scheduled_for.map_or(asked, |due| due.max(asked))
    }

    /// Whether the notification is due at `now`: not scheduled for later, no retry pending.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.scheduled_for.is_none_or(|t| t <= now) && self.next_retry_at.is_none_or(|t| t <= now)
    }

    /// When the notification will next be due, if it is not due now.
    pub fn due_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        [self.scheduled_for, self.next_retry_at]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
    }

    /// Whether a dispatcher may claim it at `now` (the rule the stores enforce atomically).
    pub fn is_claimable(&self, now: DateTime<Utc>) -> bool {
        let lease_free = match self.status {
            Status::Sending => self.claim.as_ref().is_none_or(|c| c.until <= now),
            _ => true,
        };
        self.status.is_claimable() && lease_free && self.is_due(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_through_their_names() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
        }
        assert!("fax".parse::<Channel>().is_err());
    }

    #[test]
    fn status_moves_only_along_the_table() {
        use Cause::*;
        use Status::*;
        assert!(Pending.can_become(Sending, Claim));
        assert!(Sending.can_become(Sent, Settle));
        assert!(Sent.can_become(Delivered, ProviderEvent));
        assert!(Failed.can_become(Pending, RetryCommand));
        assert!(!Sent.can_become(Pending, RetryCommand));
        assert!(!Delivered.can_become(Sent, ProviderEvent));
        assert!(!Pending.can_become(Sent, Settle));
        assert!(
            !Failed.can_become(Pending, Settle),
            "only the retry command revives"
        );
        assert_eq!(
            Status::sources(Sending, Claim),
            vec![Pending, Retrying, Sending]
        );
        assert!(Pending.is_waiting() && Retrying.is_waiting() && !Sending.is_waiting());
        // no ending is left by anything but a provider's report or the retry command
        for end in [Sent, Delivered, Bounced, Failed, Skipped] {
            for (from, _, cause) in TRANSITIONS {
                if *from == end {
                    assert!(matches!(cause, ProviderEvent | RetryCommand), "{end:?}");
                }
            }
        }
    }

    #[test]
    fn ids_depend_on_the_business_identity_only() {
        let org = OrgId::parse("org_a").unwrap();
        let t = NotificationType::parse("order_confirmation").unwrap();
        let r = Recipient::Customer(CustomerId::parse("cus_1").unwrap());
        let k = BusinessKey::parse("ord_1").unwrap();
        let a = Notification::derive_id(&org, &t, &r, Channel::Email, &k);
        assert_eq!(a, Notification::derive_id(&org, &t, &r, Channel::Email, &k));
        assert_ne!(a, Notification::derive_id(&org, &t, &r, Channel::Sms, &k));
        let other_org = OrgId::parse("org_b").unwrap();
        assert_ne!(
            a,
            Notification::derive_id(&other_org, &t, &r, Channel::Email, &k)
        );
        assert!(a.as_str().starts_with("ntf_"));
    }

    #[test]
    fn an_error_code_is_a_short_token_never_text() {
        assert_eq!(
            ErrorCode::new("Permanent:General").map(|c| c.to_string()),
            Some("Permanent:General".into())
        );
        assert!(ErrorCode::new("21610").is_some());
        assert!(ErrorCode::new("550 5.1.1 <carol@example.com> unknown").is_none());
        assert!(ErrorCode::new("").is_none());
        assert!(ErrorCode::new("x".repeat(65)).is_none());
    }
}
