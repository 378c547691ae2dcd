//! Twilio's status callback: any bytes as the form body the webhook decodes. Parsed, or
//! refused by the missing field's name; never a panic.
#![no_main]

use herald_core::provider_events::{ParseError, twilio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return;
    };
    let now = chrono::DateTime::<chrono::Utc>::from_timestamp(1_795_255_230, 0).unwrap_or_default();
    match twilio::parse(&pairs, now) {
        Ok(event) => assert!(!event.provider_message_id.is_empty()),
        Err(e) => assert!(matches!(
            e,
            ParseError::Missing("MessageSid" | "MessageStatus")
                | ParseError::NotANumber("ErrorCode")
        )),
    }
});
