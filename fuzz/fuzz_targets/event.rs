//! The event contract: any bytes as an EventBridge event's detail, under every detail-type.
//! Parsed or refused with a reason that says where; never a panic.
#![no_main]

use chrono::{DateTime, Utc};
use herald_core::event::{EventEnvelope, EventError, IncomingEvent};
use libfuzzer_sys::fuzz_target;

const DETAIL_TYPES: &[&str] = &[
    "CustomerContactChanged",
    "NotificationPreferencesChanged",
    "DeviceRegistered",
    "DeviceUnregistered",
    "OrganizationSettingsChanged",
    "OrderCreated",
    "OrderDelivered",
    "RefundIssued",
    "ChargebackOpened",
    "TicketPurchased",
    "ReminderDue",
    "NotificationRequested",
];

fuzz_target!(|data: &[u8]| {
    // the first byte picks the detail-type, the rest is the detail as the Lambda runtime reads it
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let Ok(detail) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let now = DateTime::<Utc>::from_timestamp(1_795_255_230, 0).unwrap_or_default();
    let envelope = EventEnvelope {
        id: "evt-fuzz".into(),
        detail_type: DETAIL_TYPES[usize::from(which) % DETAIL_TYPES.len()].into(),
        source: "fuzz".into(),
        time: Some(now),
        detail,
    };
    if let Err(EventError::InvalidDetail { message, .. }) = IncomingEvent::parse(&envelope, now) {
        assert!(
            message.starts_with("detail.") || message.starts_with("time "),
            "{message}"
        );
    }
});
