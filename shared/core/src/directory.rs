//! Herald's view of recipients: contacts, preferences, devices and organization settings,
//! kept current by the directory events.
//!
//! Every field carries the time of the event that set it. An update changes a field only when
//! it is at least as new as what is stored, so events may arrive in any order and a later
//! message replaces an earlier one field by field.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{EmailAddress, InvalidValue, Locale, NotificationType, PhoneNumber};
use crate::model::{Channel, Device};
use crate::sms::SegmentCap;

/// A value and the time of the event that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub value: T,
    pub at: DateTime<Utc>,
}

/// How far ahead of Herald's clock a directory event's `time` may be: producers' clocks drift a
/// little, never by more. Later events are refused at the edge, and a stored stamp beyond it
/// (written before that rule) is not trusted to win over anything.
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Whose change it is, which decides whether it wins over what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A directory event: it wins over what is older than its `time`.
    Event {
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// The customer's (or an operator's) own write through the api: it always applies.
    Owner { now: DateTime<Utc> },
}

impl Origin {
    fn now(self) -> DateTime<Utc> {
        match self {
            Origin::Event { now, .. } | Origin::Owner { now } => now,
        }
    }
}

/// Sets `slot` to `value` unless what it holds is newer (see [`Origin`]). Returns whether
/// anything changed.
fn apply<T: PartialEq>(slot: &mut Option<Stamped<T>>, value: T, origin: Origin) -> bool {
    let trusted = |s: &Stamped<T>| s.at <= origin.now() + MAX_CLOCK_SKEW;
    let at = match (origin, slot.as_ref()) {
        (Origin::Event { at, .. }, Some(current)) if current.at > at && trusted(current) => {
            return false;
        }
        (Origin::Event { at, .. }, _) => at,
        // the owner's write is the newest word: stamped no earlier than what it replaces
        (Origin::Owner { now }, Some(current)) if trusted(current) => now.max(current.at),
        (Origin::Owner { now }, _) => now,
    };
    if slot
        .as_ref()
        .is_some_and(|current| current.value == value && current.at == at)
    {
        return false;
    }
    *slot = Some(Stamped { value, at });
    true
}

fn apply_in_map<K: Ord, T: PartialEq>(
    map: &mut BTreeMap<K, Stamped<T>>,
    key: K,
    value: T,
    origin: Origin,
) -> bool {
    let mut slot = map.remove(&key);
    let changed = apply(&mut slot, value, origin);
    if let Some(slot) = slot {
        map.insert(key, slot);
    }
    changed
}

/// An IANA time zone name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub Tz);

impl TimeZone {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        value
            .parse::<Tz>()
            .map(TimeZone)
            // never the value: a refusal is recorded and answered
            .map_err(|_| {
                InvalidValue("timezone is not an IANA time zone name (such as Europe/Paris)".into())
            })
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TimeZone::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The hours in which a customer does not want to be interrupted, in their own time zone.
/// `start` after `end` spans midnight (22:00–07:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    #[serde(with = "hhmm")]
    pub start: NaiveTime,
    #[serde(with = "hhmm")]
    pub end: NaiveTime,
}

impl QuietHours {
    /// If `now` falls inside the quiet hours (in `tz`), the instant they end.
    pub fn end_if_quiet(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.start == self.end {
            return None;
        }
        let local = now.with_timezone(&tz);
        let time = local.time();
        let today = local.date_naive();
        let end_date = if self.start < self.end {
            (time >= self.start && time < self.end).then_some(today)?
        } else if time >= self.start {
            today.succ_opt()?
        } else if time < self.end {
            today
        } else {
            return None;
        };
        // A wall-clock time skipped by a DST jump resolves to the first instant after it.
        let end_local = end_date.and_time(self.end);
        let end = end_local.and_local_timezone(tz).earliest().or_else(|| {
            (end_local + chrono::Duration::hours(1))
                .and_local_timezone(tz)
                .earliest()
        })?;
        Some(end.with_timezone(&Utc))
    }
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let raw = String::deserialize(d)?;
        NaiveTime::parse_from_str(&raw, "%H:%M")
            // never the value: a refusal is recorded and answered
            .map_err(|_| serde::de::Error::custom("expected a time as HH:MM"))
    }
}

/// What Herald knows of one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Stamped<EmailAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Stamped<PhoneNumber>>,
    /// The number the customer takes WhatsApp messages on (their opt-in to the channel, with
    /// the channel enabled in their preferences); may differ from `phone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<Stamped<PhoneNumber>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Stamped<Locale>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Stamped<TimeZone>>,
    /// Absent until the first preferences event: "no preferences at all".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Preferences>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, Stamped<DeviceState>>,
}

/// A device as last registered or unregistered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    pub device: Device,
    pub registered: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    #[serde(default)]
    pub channels: BTreeMap<Channel, Stamped<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribed: Option<Stamped<BTreeSet<NotificationType>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<Stamped<Option<QuietHours>>>,
}

impl Preferences {
    pub fn is_unsubscribed(&self, notification_type: &NotificationType) -> bool {
        self.unsubscribed
            .as_ref()
            .is_some_and(|s| s.value.contains(notification_type))
    }

    /// A channel the customer never mentioned is off.
    pub fn is_enabled(&self, channel: Channel) -> bool {
        self.channels.get(&channel).is_some_and(|s| s.value)
    }

    pub fn quiet_hours(&self) -> Option<QuietHours> {
        self.quiet_hours.as_ref().and_then(|s| s.value)
    }
}

/// A change to a customer, from one directory event.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerUpdate {
    Contact {
        email: Option<EmailAddress>,
        phone: Option<PhoneNumber>,
        whatsapp: Option<PhoneNumber>,
        locale: Option<Locale>,
        timezone: Option<TimeZone>,
    },
    Preferences {
        channels: BTreeMap<Channel, bool>,
        unsubscribed: BTreeSet<NotificationType>,
        quiet_hours: Option<QuietHours>,
    },
    Device {
        device: Device,
        registered: bool,
    },
}

impl CustomerRecord {
    /// Applies an update; returns whether anything changed.
    pub fn apply(&mut self, update: CustomerUpdate, origin: Origin) -> bool {
        match update {
            CustomerUpdate::Contact {
                email,
                phone,
                whatsapp,
                locale,
                timezone,
            } => {
                let mut changed = false;
                if let Some(v) = email {
                    changed |= apply(&mut self.email, v, origin);
                }
                if let Some(v) = phone {
                    changed |= apply(&mut self.phone, v, origin);
                }
                if let Some(v) = whatsapp {
                    changed |= apply(&mut self.whatsapp, v, origin);
                }
                if let Some(v) = locale {
                    changed |= apply(&mut self.locale, v, origin);
                }
                if let Some(v) = timezone {
                    changed |= apply(&mut self.timezone, v, origin);
                }
                changed
            }
            CustomerUpdate::Preferences {
                channels,
                unsubscribed,
                quiet_hours,
            } => {
                let prefs = self.preferences.get_or_insert_with(Preferences::default);
                let mut changed = false;
                for (channel, enabled) in channels {
                    changed |= apply_in_map(&mut prefs.channels, channel, enabled, origin);
                }
                changed |= apply(&mut prefs.unsubscribed, unsubscribed, origin);
                changed |= apply(&mut prefs.quiet_hours, quiet_hours, origin);
                changed
            }
            CustomerUpdate::Device { device, registered } => {
                let key = device.key();
                apply_in_map(
                    &mut self.devices,
                    key,
                    DeviceState { device, registered },
                    origin,
                )
            }
        }
    }

    /// Keeps the push endpoint made for a registered device; `false` when the device is no
    /// longer registered (or has that endpoint already). The stamp stays: this is no event.
    pub fn set_endpoint(&mut self, device: &Device, endpoint_arn: &str) -> bool {
        match self.devices.get_mut(&device.key()) {
            Some(state)
                if state.value.registered
                    && state.value.device.endpoint_arn.as_deref() != Some(endpoint_arn) =>
            {
                state.value.device.endpoint_arn = Some(endpoint_arn.to_string());
                true
            }
            _ => false,
        }
    }

    /// Unregisters a device whose endpoint the platform disabled (the app was removed, the
    /// token expired): as of `now`, so only a later registration brings it back.
    pub fn drop_device(&mut self, device: &Device, now: DateTime<Utc>) -> bool {
        match self.devices.get_mut(&device.key()) {
            Some(state) if state.value.registered => {
                state.value.registered = false;
                state.value.device.endpoint_arn = None;
                state.at = now;
                true
            }
            _ => false,
        }
    }

    /// The devices currently registered, in a stable order.
    pub fn registered_devices(&self) -> Vec<Device> {
        self.devices
            .values()
            .filter(|d| d.value.registered)
            .map(|d| d.value.device.clone())
            .collect()
    }
}

/// An organization's own settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_email: Option<Stamped<EmailAddress>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_locale: Option<Stamped<Locale>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_email: Option<Stamped<EmailAddress>>,
    /// The most segments one SMS may take; [`SegmentCap::DEFAULT`] when never set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_max_segments: Option<Stamped<SegmentCap>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgSettingsUpdate {
    pub operations_email: Option<EmailAddress>,
    pub default_locale: Option<Locale>,
    pub sender_email: Option<EmailAddress>,
    pub sms_max_segments: Option<SegmentCap>,
}

impl OrgSettings {
    pub fn apply(&mut self, update: OrgSettingsUpdate, origin: Origin) -> bool {
        let mut changed = false;
        if let Some(v) = update.operations_email {
            changed |= apply(&mut self.operations_email, v, origin);
        }
        if let Some(v) = update.default_locale {
            changed |= apply(&mut self.default_locale, v, origin);
        }
        if let Some(v) = update.sender_email {
            changed |= apply(&mut self.sender_email, v, origin);
        }
        if let Some(v) = update.sms_max_segments {
            changed |= apply(&mut self.sms_max_segments, v, origin);
        }
        changed
    }

    /// The most segments one of the organization's SMS may take.
    pub fn sms_segment_cap(&self) -> SegmentCap {
        self.sms_max_segments
            .as_ref()
            .map_or(SegmentCap::DEFAULT, |s| s.value)
    }
}

/// A record as stored, with the version that guards concurrent read-modify-write.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A directory event stamped `s`, applied when Herald's clock reads the end of 2026.
    fn ev(s: &str) -> Origin {
        Origin::Event {
            at: at(s),
            now: at("2026-12-31T00:00:00Z"),
        }
    }

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn contact(e: Option<&str>, p: Option<&str>) -> CustomerUpdate {
        CustomerUpdate::Contact {
            email: e.map(email),
            phone: p.map(|p| PhoneNumber::parse(p).unwrap()),
            whatsapp: None,
            locale: None,
            timezone: None,
        }
    }

    #[test]
    fn a_later_event_replaces_fields_it_carries_and_keeps_the_others() {
        let mut rec = CustomerRecord::default();
        assert!(rec.apply(
            contact(Some("a@x.com"), Some("+14155550101")),
            ev("2026-01-01T00:00:00Z")
        ));
        assert!(rec.apply(contact(Some("b@x.com"), None), ev("2026-01-02T00:00:00Z")));
        assert_eq!(rec.email.as_ref().unwrap().value, email("b@x.com"));
        assert_eq!(rec.phone.as_ref().unwrap().value.as_str(), "+14155550101");
    }

    #[test]
    fn the_whatsapp_number_is_a_field_of_its_own_merged_by_time() {
        let number = |p: &str| PhoneNumber::parse(p).unwrap();
        let whatsapp = |p: &str| CustomerUpdate::Contact {
            email: None,
            phone: None,
            whatsapp: Some(number(p)),
            locale: None,
            timezone: None,
        };
        let mut rec = CustomerRecord::default();
        rec.apply(
            contact(None, Some("+14155550101")),
            ev("2026-01-01T00:00:00Z"),
        );
        assert!(rec.apply(whatsapp("+14155550102"), ev("2026-01-03T00:00:00Z")));
        assert!(!rec.apply(whatsapp("+14155550103"), ev("2026-01-02T00:00:00Z")));
        assert_eq!(rec.whatsapp.as_ref().unwrap().value, number("+14155550102"));
        assert_eq!(rec.phone.as_ref().unwrap().value, number("+14155550101"));
    }

    #[test]
    fn an_older_event_never_overwrites_a_newer_one() {
        let mut rec = CustomerRecord::default();
        rec.apply(contact(Some("new@x.com"), None), ev("2026-01-02T00:00:00Z"));
        let changed = rec.apply(
            contact(Some("old@x.com"), Some("+14155550101")),
            ev("2026-01-01T00:00:00Z"),
        );
        assert!(
            changed,
            "the phone was unknown, so the older event still sets it"
        );
        assert_eq!(rec.email.as_ref().unwrap().value, email("new@x.com"));
        assert!(rec.phone.is_some());
    }

    #[test]
    fn the_same_event_twice_changes_nothing_the_second_time() {
        let mut rec = CustomerRecord::default();
        let t = ev("2026-01-01T00:00:00Z");
        assert!(rec.apply(contact(Some("a@x.com"), None), t));
        assert!(!rec.apply(contact(Some("a@x.com"), None), t));
    }

    #[test]
    fn devices_register_and_unregister_in_time_order() {
        let mut rec = CustomerRecord::default();
        let device = Device {
            platform: Platform::Fcm,
            token: "t1".into(),
            endpoint_arn: None,
        };
        rec.apply(
            CustomerUpdate::Device {
                device: device.clone(),
                registered: false,
            },
            ev("2026-01-02T00:00:00Z"),
        );
        rec.apply(
            CustomerUpdate::Device {
                device: device.clone(),
                registered: true,
            },
            ev("2026-01-01T00:00:00Z"),
        );
        assert!(rec.registered_devices().is_empty());
    }

    #[test]
    fn a_stamp_from_the_future_never_locks_a_field() {
        let mut rec = CustomerRecord::default();
        // written before far-future times were refused at the edge
        rec.apply(
            contact(Some("stale@x.com"), None),
            ev("9999-12-31T00:00:00Z"),
        );
        let now = at("2026-11-21T00:00:00Z");
        assert!(rec.apply(
            contact(Some("new@x.com"), None),
            Origin::Event { at: now, now }
        ));
        assert_eq!(rec.email.as_ref().unwrap().value, email("new@x.com"));
    }

    #[test]
    fn the_owners_write_always_applies() {
        let mut rec = CustomerRecord::default();
        let now = at("2026-11-21T00:00:00Z");
        // a producer's clock a little ahead: still trusted for ordering events
        let ahead = now + chrono::Duration::minutes(3);
        rec.apply(
            contact(Some("old@x.com"), None),
            Origin::Event { at: ahead, now },
        );
        assert!(!rec.apply(
            contact(Some("evt@x.com"), None),
            Origin::Event { at: now, now }
        ));
        assert!(rec.apply(contact(Some("mine@x.com"), None), Origin::Owner { now }));
        assert_eq!(rec.email.as_ref().unwrap().value, email("mine@x.com"));
    }

    #[test]
    fn the_sms_segment_cap_is_merged_like_the_other_settings() {
        let mut org = OrgSettings::default();
        assert_eq!(org.sms_segment_cap(), SegmentCap::DEFAULT);
        let cap = |n| OrgSettingsUpdate {
            sms_max_segments: Some(SegmentCap::new(n).unwrap()),
            ..OrgSettingsUpdate::default()
        };
        assert!(org.apply(cap(5), ev("2026-01-02T00:00:00Z")));
        assert!(!org.apply(cap(2), ev("2026-01-01T00:00:00Z")), "older");
        assert!(!org.apply(OrgSettingsUpdate::default(), ev("2026-01-03T00:00:00Z")));
        assert_eq!(org.sms_segment_cap().get(), 5);
        let stored: OrgSettings =
            serde_json::from_value(serde_json::to_value(&org).unwrap()).unwrap();
        assert_eq!(stored, org);
    }

    #[test]
    fn quiet_hours_spanning_midnight_end_the_next_morning() {
        let q = QuietHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
        };
        let tz: Tz = "America/New_York".parse().unwrap();
        // 23:30 in New York (UTC-5 in November) is 04:30 UTC the next day.
        let end = q.end_if_quiet(at("2026-11-21T04:30:00Z"), tz).unwrap();
        assert_eq!(end, at("2026-11-21T12:00:00Z"));
        // 06:00 local, still quiet, ends the same morning.
        assert_eq!(
            q.end_if_quiet(at("2026-11-21T11:00:00Z"), tz),
            Some(at("2026-11-21T12:00:00Z"))
        );
        // noon local is not quiet.
        assert_eq!(q.end_if_quiet(at("2026-11-21T17:00:00Z"), tz), None);
    }
}
