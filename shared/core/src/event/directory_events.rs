//! The directory events: what Herald learns of customers and organizations.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::read::Reader;
use super::values::{Bounded, Text};
use super::{EventError, EventKind};
use crate::directory::{CustomerUpdate, OrgSettingsUpdate, QuietHours, TimeZone};
use crate::ids::{CustomerId, EmailAddress, Locale, NotificationType, PhoneNumber};
use crate::model::{Channel, Device, Platform};
use crate::sms::SegmentCap;

// Each event's detail as the contract defines it. Unknown fields are allowed so that producers
// can add fields without breaking Herald; known fields must have the right type.

#[derive(Deserialize)]
struct CustomerContactChanged {
    customer_id: CustomerId,
    email: Option<EmailAddress>,
    phone: Option<PhoneNumber>,
    whatsapp: Option<PhoneNumber>,
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
    sms_max_segments: Option<SegmentCap>,
}

/// A directory event's change, or `None` when the detail-type is not a directory event's.
pub(super) fn directory_event(r: &Reader, raw: &Value) -> Result<Option<EventKind>, EventError> {
    let kind = match r.detail_type {
        "CustomerContactChanged" => {
            let d: CustomerContactChanged = r.detail(raw)?;
            EventKind::Customer {
                customer_id: d.customer_id,
                update: CustomerUpdate::Contact {
                    email: d.email,
                    phone: d.phone,
                    whatsapp: d.whatsapp,
                    locale: d.locale,
                    timezone: d.timezone,
                },
            }
        }
        "NotificationPreferencesChanged" => {
            let d: NotificationPreferencesChanged = r.detail(raw)?;
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
            let d: DeviceEvent = r.detail(raw)?;
            EventKind::Customer {
                customer_id: d.customer_id,
                update: CustomerUpdate::Device {
                    device: Device {
                        platform: d.platform,
                        token: d.token.0,
                        endpoint_arn: None,
                    },
                    registered: r.detail_type == "DeviceRegistered",
                },
            }
        }
        "OrganizationSettingsChanged" => {
            let d: OrganizationSettingsChanged = r.detail(raw)?;
            EventKind::OrgSettings(OrgSettingsUpdate {
                operations_email: d.operations_email,
                default_locale: d.default_locale,
                sender_email: d.sender_email,
                sms_max_segments: d.sms_max_segments,
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(kind))
}
