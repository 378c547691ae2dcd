//! What providers report after a message left: delivered, opened, bounced, … Parsed from
//! their webhooks (`sendgrid`, `twilio`, `ses`) into one model, and turned into changes that
//! only ever move a notification forward.

pub mod sendgrid;
pub mod ses;
pub mod twilio;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::NotificationId;
use crate::model::{Cause, ErrorCode, Notification, Provider, Status};

/// Why a webhook's authentication failed (answered 401; nothing changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("the signature is missing")]
    MissingSignature,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the timestamp is outside the accepted window")]
    StaleTimestamp,
    #[error("{0}")]
    BadKey(&'static str),
    #[error("no webhook credentials are configured for this organization")]
    NotConfigured,
    #[error("the signing certificate is not SNS's in the topic's region")]
    UntrustedCertificate,
    #[error("the signing certificate could not be fetched")]
    CertificateUnavailable,
    #[error("the topic is not accepted")]
    TopicNotAccepted,
}

/// Why a webhook's body could not be read (answered 400; nothing changes). Each names the
/// field or the shape that was wrong, never a value from the body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The body is not the JSON the provider sends (`what`: "a SendGrid event array", …).
    #[error("not {what}: {reason}")]
    Shape { what: &'static str, reason: String },
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is not a number")]
    NotANumber(&'static str),
    /// An event type the provider does not document (SES only: the others' unknown types are
    /// counted and ignored).
    #[error("{field} is not a known event type")]
    UnknownType { field: &'static str },
}

impl ParseError {
    /// A body serde could not read: a required field that is missing is named as `required`
    /// writes it (`mail.messageId`: serde says only `messageId`), anything else is a shape.
    fn json(what: &'static str, required: &[&'static str], e: serde_json::Error) -> Self {
        let message = e.to_string();
        // serde's own message for a field of ours; a value from the body never starts it
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name);
        match required
            .iter()
            .find(|field| field.rsplit('.').next() == missing)
        {
            Some(field) => ParseError::Missing(field),
            None => ParseError::shape(what, e),
        }
    }

    fn shape(what: &'static str, e: serde_json::Error) -> Self {
        // serde's message can quote the body ("invalid type: string \"…\""): keep its category
        // and position only
        let reason = format!(
            "{} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Io => "unreadable",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "unexpected content",
                serde_json::error::Category::Eof => "unexpected end",
            },
            e.line(),
            e.column()
        );
        ParseError::Shape { what, reason }
    }
}

/// Twilio error codes that say the recipient opted out or the number does not exist: final
/// whoever is asked, and the number is suppressed.
const TWILIO_RECIPIENT: &[u32] = &[
    21211, // invalid 'To' number
    21214, // 'To' number cannot be reached
    21217, // phone number does not appear to be valid
    21421, // phone number is invalid
    21610, // the recipient replied STOP
    21614, // 'To' number is not a valid mobile number
    30005, // unknown destination handset
    30006, // landline or unreachable carrier
];

/// Twilio error codes that say the account cannot send SMS now, whatever the message: another
/// provider may, and this one may again once someone fixes the account.
const TWILIO_ACCOUNT: &[u32] = &[
    20005, // the account is not active
    21212, // the 'From' number is not valid
    21408, // permission to send to this region is not enabled
    21606, // the 'From' number cannot send SMS
    21608, // a trial account writes only to verified numbers
    21659, // the 'From' number is not a Twilio number
    30002, // the account is suspended
];

/// Twilio error codes after which sending the same message again is pointless.
const TWILIO_PERMANENT: &[u32] = &[
    21605, // the body is too long
    21612, // the 'To' number cannot be reached through this channel
    21617, // the concatenated body exceeds 1600 characters
    21619, // a body or media is required
    30004, // message blocked
    30007, // message filtered as spam by the carrier
];

/// Twilio's WhatsApp error codes that say the number cannot be written to on WhatsApp: final
/// whoever is asked, and the number is suppressed for WhatsApp.
const TWILIO_WHATSAPP_RECIPIENT: &[u32] = &[
    63003, // the channel could not find the 'To' address: no WhatsApp user, or inactive
    63024, // invalid message recipient
];

/// Twilio's WhatsApp error codes after which sending the same message again is pointless: the
/// sender, the template or its variables are wrong until someone changes them.
const TWILIO_WHATSAPP_PERMANENT: &[u32] = &[
    63001, // the channel could not authenticate the request (sender not set up with WhatsApp)
    63005, // the channel did not accept the content
    63007, // no WhatsApp sender with the 'From' address (or one still pending approval)
    63013, // the message breaks WhatsApp's business policy
    63015, // a sandbox sender writes only to numbers that joined the sandbox
    63016, // outside the 24-hour window a message must be an approved template
    63020, // the Business Manager account has not accepted Twilio's invitation
    63021, // content the channel refuses (text and values over 1024 characters, …)
    63027, // no approved template for this language
    63028, // the variables do not match the template's placeholders
    63030, // a parameter this channel's messages do not take
];
// Transient, like every code not listed: 63010 and 63012 (Twilio's or WhatsApp's internal
// errors), 63018 (the sender's rate or daily messaging limit), 63032 (a WhatsApp limitation
// for this user at the moment).

/// Whether a Twilio error code is permanent (dead-letter) rather than transient (retry):
/// 30001 queue overflow, 30003 unreachable handset, 20429 too many requests, 63018 WhatsApp
/// rate limit, … are transient.
pub fn twilio_error_is_permanent(code: u32) -> bool {
    twilio_failure(code) != TwilioFailure::Transient
}

/// Whether a Twilio error code reported after the send puts the number on the suppression
/// list: a STOP, or WhatsApp saying there is no such recipient. (An SMS number Twilio calls
/// invalid in a callback is failed, not suppressed: it was valid when it was sent.)
pub fn twilio_error_suppresses(code: u32) -> bool {
    code == TWILIO_STOP || TWILIO_WHATSAPP_RECIPIENT.contains(&code)
}

/// What a Twilio error code means for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioFailure {
    /// The recipient opted out or the number does not exist: suppress it.
    Recipient,
    /// The account cannot send now: another provider may (then retry).
    Account,
    /// This message can never go: dead-letter it.
    Permanent,
    /// It may go later: retry.
    Transient,
}

/// What a Twilio error code means for the message.
pub fn twilio_failure(code: u32) -> TwilioFailure {
    if TWILIO_RECIPIENT.contains(&code) || TWILIO_WHATSAPP_RECIPIENT.contains(&code) {
        TwilioFailure::Recipient
    } else if TWILIO_ACCOUNT.contains(&code) {
        TwilioFailure::Account
    } else if TWILIO_PERMANENT.contains(&code) || TWILIO_WHATSAPP_PERMANENT.contains(&code) {
        TwilioFailure::Permanent
    } else {
        TwilioFailure::Transient
    }
}

/// The Twilio error code of a recipient who replied STOP.
pub const TWILIO_STOP: u32 = 21610;

/// What happened to a message, in one vocabulary for every provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DeliveryKind {
    /// Accepted, queued, sent on, deferred: on its way, nothing to record.
    InTransit,
    Delivered,
    /// A bounce: permanent (the address is bad: suppressed) or transient (nothing changes).
    Bounced {
        permanent: bool,
    },
    /// The provider would not send it (suppressed there, invalid): failed.
    Dropped {
        suppress: bool,
    },
    /// Not delivered (Twilio `undelivered`/`failed`): failed when permanent.
    Undelivered {
        permanent: bool,
        suppress: bool,
    },
    Opened,
    Clicked,
    /// Marked as spam: the address is suppressed.
    Complained,
    /// The recipient unsubscribed: the address is suppressed.
    Unsubscribed,
}

/// One provider event about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    pub provider: Provider,
    /// The provider's id of this event, for deduplication.
    pub event_id: String,
    /// The id the provider returned when the message was sent.
    pub provider_message_id: String,
    /// Herald's id of the notification, when the provider echoes it back.
    pub notification_hint: Option<NotificationId>,
    pub kind: DeliveryKind,
    pub at: DateTime<Utc>,
    /// What the provider said went wrong (no addresses).
    pub reason: Option<String>,
    /// The provider's code for it (a Twilio error, an SES bounce type), when it gave one.
    pub code: Option<ErrorCode>,
}

/// What an event changes on a notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryChange {
    /// The status to move to, when it moves the notification forward.
    pub status: Option<Status>,
    pub reason: Option<String>,
    /// The code of `reason`, when the provider gave one.
    pub code: Option<ErrorCode>,
    pub opened: bool,
    pub clicked: bool,
    pub complained: bool,
    /// Put the notification's address on the suppression list, with this reason.
    pub suppress: Option<String>,
}

impl DeliveryChange {
    pub fn is_empty(&self) -> bool {
        *self == DeliveryChange::default()
    }
}

/// The status an event moves the notification to, if the life cycle lets a provider's report
/// do that: a status only ever moves forward.
fn forward(n: &Notification, to: Status) -> Option<Status> {
    n.status
        .as_reported()
        .can_become(to, Cause::ProviderEvent)
        .then_some(to)
}

/// The change an event makes to a notification (possibly none).
pub fn effect(n: &Notification, e: &ProviderEvent) -> DeliveryChange {
    let reason = e.reason.clone();
    let mut change = DeliveryChange::default();
    match &e.kind {
        DeliveryKind::InTransit => {}
        DeliveryKind::Delivered => change.status = forward(n, Status::Delivered),
        DeliveryKind::Bounced { permanent: false } => {}
        DeliveryKind::Bounced { permanent: true } => {
            change.status = forward(n, Status::Bounced);
            change.reason = Some(format!(
                "bounced: {}",
                reason.as_deref().unwrap_or("permanent")
            ));
            change.suppress = Some("hard bounce".into());
        }
        DeliveryKind::Dropped { suppress } => {
            change.status = forward(n, Status::Failed);
            change.reason = Some(format!(
                "dropped by the provider: {}",
                reason.as_deref().unwrap_or("unknown")
            ));
            if *suppress {
                change.suppress = Some("dropped by the provider".into());
            }
        }
        DeliveryKind::Undelivered {
            permanent,
            suppress,
        } => {
            if *permanent {
                change.status = forward(n, Status::Failed);
                change.reason = Some(format!(
                    "undelivered: {}",
                    reason.as_deref().unwrap_or("permanent failure")
                ));
            }
            if *suppress {
                change.suppress = Some(format!(
                    "the provider refused the recipient: {}",
                    reason.as_deref().unwrap_or("opted out")
                ));
            }
        }
        DeliveryKind::Opened => change.opened = n.opened_at.is_none(),
        DeliveryKind::Clicked => change.clicked = n.clicked_at.is_none(),
        DeliveryKind::Complained => {
            change.complained = n.complained_at.is_none();
            change.suppress = Some("spam complaint".into());
        }
        DeliveryKind::Unsubscribed => change.suppress = Some("unsubscribed at the provider".into()),
    }
    if change.reason.is_some() {
        change.code = e.code.clone();
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_codes_are_classified() {
        for code in [21211, 21610, 21612, 21614, 30006] {
            assert!(twilio_error_is_permanent(code), "{code}");
        }
        for code in [30003, 30001, 20429, 30008] {
            assert!(!twilio_error_is_permanent(code), "{code}");
        }
    }

    #[test]
    fn body_errors_are_final_and_stops_are_the_recipients() {
        for code in [21617, 21605, 21619] {
            assert_eq!(twilio_failure(code), TwilioFailure::Permanent, "{code}");
        }
        for code in [21610, 21211, 21614] {
            assert_eq!(twilio_failure(code), TwilioFailure::Recipient, "{code}");
        }
        assert_eq!(twilio_failure(30003), TwilioFailure::Transient);
        // the account's, not the message's: another provider may send it
        for code in [20005, 21606, 21608, 30002] {
            assert_eq!(twilio_failure(code), TwilioFailure::Account, "{code}");
        }
    }

    #[test]
    fn whatsapp_codes_are_classified() {
        // outside the 24-hour window without a template, a sender or template set up wrong
        for code in [63016, 63001, 63007, 63021, 63027, 63028] {
            assert_eq!(twilio_failure(code), TwilioFailure::Permanent, "{code}");
            assert!(!twilio_error_suppresses(code), "{code}");
        }
        // no WhatsApp user at this number
        for code in [63003, 63024] {
            assert_eq!(twilio_failure(code), TwilioFailure::Recipient, "{code}");
            assert!(twilio_error_suppresses(code), "{code}");
        }
        // rate limits and the provider's own errors pass
        for code in [63018, 63010, 63012, 63032] {
            assert_eq!(twilio_failure(code), TwilioFailure::Transient, "{code}");
            assert!(!twilio_error_is_permanent(code), "{code}");
        }
        assert!(twilio_error_suppresses(TWILIO_STOP));
        assert!(!twilio_error_suppresses(21211));
    }
}
