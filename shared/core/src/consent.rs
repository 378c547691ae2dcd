//! Consent: whether, where and when a recipient may be written to. The same rules decide at
//! intake (which notifications to create) and again at dispatch (whether one may still leave),
//! so an opt-out reaches every notification that has not left yet.
//!
//! In order (events/README.md, "Channel selection"):
//! 1. a customer unsubscribed from the type gets none of it;
//! 2. a customer without preferences gets email and the in-app feed only, of the channels asked for;
//! 3. otherwise the channels asked for that the customer enabled;
//! 4. a channel needs an address that is not on the organization's suppression list;
//! 5. quiet hours hold back non-critical notifications on interrupting channels until they end.
//!
//! Internal notifications go to the organization's operations contact: customer preferences do
//! not apply to them, an address and the suppression list do.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::directory::{CustomerRecord, OrgSettings};
use crate::ids::NotificationType;
use crate::model::{Address, Channel, Notification, Recipient};

/// A key on an organization's suppression list: a channel and an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SuppressionKey {
    pub channel: Channel,
    pub address: String,
}

/// The channels a customer who never stated preferences may be reached on: email, the safe
/// default, and the in-app feed, which interrupts nobody. Never SMS, push or WhatsApp.
pub const WITHOUT_PREFERENCES: [Channel; 2] = [Channel::Email, Channel::InApp];

/// What Herald knows of a recipient when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    pub recipient: &'a Recipient,
    pub customer: &'a CustomerRecord,
    pub org: &'a OrgSettings,
}

/// Rules 1 to 3: of the channels asked for, those the recipient accepts for this type; or why
/// none.
pub fn channels(
    audience: Audience<'_>,
    notification_type: &NotificationType,
    wanted: &[Channel],
) -> Result<Vec<Channel>, String> {
    let accepted: Vec<Channel> = match (audience.recipient, &audience.customer.preferences) {
        (Recipient::Operations, _) => wanted.to_vec(),
        (Recipient::Customer(_), Some(prefs)) => {
            if prefs.is_unsubscribed(notification_type) {
                return Err(format!("unsubscribed from {notification_type}"));
            }
            wanted
                .iter()
                .copied()
                .filter(|c| prefs.is_enabled(*c))
                .collect()
        }
        (Recipient::Customer(_), None) => wanted
            .iter()
            .copied()
            .filter(|c| WITHOUT_PREFERENCES.contains(c))
            .collect(),
    };
    if accepted.is_empty() {
        return Err("no enabled channels".into());
    }
    Ok(accepted)
}

/// The order a critical notification falls back in when its channel cannot reach the
/// recipient (no address, a suppressed one, or every provider failing): the most immediate
/// first. Only channels the recipient accepts are taken, each once per event.
pub const FALLBACK_ORDER: [Channel; 5] = [
    Channel::Sms,
    Channel::Push,
    Channel::Whatsapp,
    Channel::Email,
    Channel::InApp,
];

/// Rule 4, first half: the recipient's current address on a channel, or why there is none.
pub fn address(channel: Channel, audience: Audience<'_>) -> Result<Address, &'static str> {
    let customer = audience.customer;
    match (channel, audience.recipient) {
        (Channel::InApp, _) => Ok(Address::Feed),
        (Channel::Email, Recipient::Operations) => audience
            .org
            .operations_email
            .as_ref()
            .map(|s| Address::Email(s.value.clone()))
            .ok_or("no operations email address"),
        (_, Recipient::Operations) => Err("the operations contact has only an email address"),
        (Channel::Email, _) => customer
            .email
            .as_ref()
            .map(|s| Address::Email(s.value.clone()))
            .ok_or("no email address"),
        (Channel::Sms, _) => customer
            .phone
            .as_ref()
            .map(|s| Address::Phone(s.value.clone()))
            .ok_or("no phone number"),
        // the customer's WhatsApp number is their opt-in: never their phone by default
        (Channel::Whatsapp, _) => customer
            .whatsapp
            .as_ref()
            .map(|s| Address::Phone(s.value.clone()))
            .ok_or("no WhatsApp number"),
        (Channel::Push, _) => {
            let devices = customer.registered_devices();
            if devices.is_empty() {
                Err("no registered device")
            } else {
                Ok(Address::Devices(devices))
            }
        }
    }
}

/// Rule 4, second half: the suppression-list key of an address (email and phone channels).
pub fn suppression_key(channel: Channel, address: &Address) -> Option<SuppressionKey> {
    let address = match address {
        Address::Email(e) => e.as_str().to_ascii_lowercase(),
        Address::Phone(p) => p.as_str().to_string(),
        Address::Devices(_) | Address::Feed => return None,
    };
    Some(SuppressionKey { channel, address })
}

/// Rule 5: when a notification sent at `at` must wait for the end of the customer's quiet
/// hours, that end.
pub fn quiet_until(
    channel: Channel,
    critical: bool,
    customer: &CustomerRecord,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if critical || !channel.interrupts() {
        return None;
    }
    let quiet = customer.preferences.as_ref()?.quiet_hours()?;
    let timezone = customer.timezone.as_ref()?.value.0;
    quiet.end_if_quiet(at, timezone)
}

/// Whether a notification may leave now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it, to this address (the recipient's current one).
    Send(Address),
    /// Never send it: the recipient's consent no longer allows it.
    Skip(String),
    /// Not now: quiet hours began; send it when they end.
    Defer(DateTime<Utc>),
}

/// Every rule, for one notification about to leave at `now`. `suppressed` answers whether a key
/// is on the organization's suppression list.
pub fn at_send_time(
    n: &Notification,
    audience: Audience<'_>,
    suppressed: impl Fn(&SuppressionKey) -> bool,
    now: DateTime<Utc>,
) -> Verdict {
    if let Err(reason) = channels(audience, &n.notification_type, &[n.channel]) {
        return Verdict::Skip(reason);
    }
    let address = match address(n.channel, audience) {
        Ok(a) => a,
        Err(reason) => return Verdict::Skip(reason.into()),
    };
    if suppression_key(n.channel, &address).is_some_and(|k| suppressed(&k)) {
        return Verdict::Skip("suppressed".into());
    }
    if let Some(until) = quiet_until(n.channel, n.critical, audience.customer, now) {
        return Verdict::Defer(until);
    }
    Verdict::Send(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::CustomerUpdate;
    use crate::ids::CustomerId;
    use std::collections::{BTreeMap, BTreeSet};

    fn customer_with(channels: &[(Channel, bool)], unsubscribed: &[&str]) -> CustomerRecord {
        let mut c = CustomerRecord::default();
        c.apply(
            CustomerUpdate::Preferences {
                channels: channels.iter().copied().collect::<BTreeMap<_, _>>(),
                unsubscribed: unsubscribed
                    .iter()
                    .map(|t| NotificationType::parse(*t).unwrap())
                    .collect::<BTreeSet<_>>(),
                quiet_hours: None,
            },
            crate::directory::Origin::Owner {
                now: "2026-11-20T10:00:00Z".parse().unwrap(),
            },
        );
        c
    }

    fn decide(customer: &CustomerRecord, wanted: &[Channel]) -> Result<Vec<Channel>, String> {
        let recipient = Recipient::Customer(CustomerId::parse("cus_1").unwrap());
        let org = OrgSettings::default();
        channels(
            Audience {
                recipient: &recipient,
                customer,
                org: &org,
            },
            &NotificationType::parse("reminder").unwrap(),
            wanted,
        )
    }

    #[test]
    fn without_preferences_only_email_and_in_app_of_what_was_asked() {
        let none = CustomerRecord::default();
        assert_eq!(decide(&none, &[Channel::InApp]), Ok(vec![Channel::InApp]));
        assert_eq!(
            decide(&none, &[Channel::InApp, Channel::Email, Channel::Sms]),
            Ok(vec![Channel::InApp, Channel::Email])
        );
        assert_eq!(decide(&none, &[Channel::Email]), Ok(vec![Channel::Email]));
        assert!(decide(&none, &[Channel::Sms, Channel::Push]).is_err());
    }

    #[test]
    fn whatsapp_goes_to_the_whatsapp_number_and_never_to_the_phone() {
        let recipient = Recipient::Customer(CustomerId::parse("cus_1").unwrap());
        let org = OrgSettings::default();
        let number = |p: &str| crate::ids::PhoneNumber::parse(p).unwrap();
        let mut customer = CustomerRecord::default();
        let now = "2026-11-20T10:00:00Z".parse().unwrap();
        let contact = |phone: Option<&str>, whatsapp: Option<&str>| CustomerUpdate::Contact {
            email: None,
            phone: phone.map(number),
            whatsapp: whatsapp.map(number),
            locale: None,
            timezone: None,
        };
        customer.apply(
            contact(Some("+14155550101"), None),
            crate::directory::Origin::Owner { now },
        );
        let address_of = |channel, customer: &CustomerRecord| {
            address(
                channel,
                Audience {
                    recipient: &recipient,
                    customer,
                    org: &org,
                },
            )
        };
        assert_eq!(
            address_of(Channel::Whatsapp, &customer),
            Err("no WhatsApp number")
        );
        customer.apply(
            contact(None, Some("+14155550199")),
            crate::directory::Origin::Owner { now },
        );
        assert_eq!(
            address_of(Channel::Whatsapp, &customer),
            Ok(Address::Phone(number("+14155550199")))
        );
        assert_eq!(
            address_of(Channel::Sms, &customer),
            Ok(Address::Phone(number("+14155550101")))
        );
    }

    #[test]
    fn preferences_narrow_and_unsubscribes_refuse() {
        let c = customer_with(&[(Channel::Email, true), (Channel::Sms, false)], &[]);
        assert_eq!(
            decide(&c, &[Channel::Email, Channel::Sms, Channel::InApp]),
            Ok(vec![Channel::Email])
        );
        let gone = customer_with(&[(Channel::Email, true)], &["reminder"]);
        assert_eq!(
            decide(&gone, &[Channel::Email]),
            Err("unsubscribed from reminder".into())
        );
    }
}
