//! SendGrid's event webhook body: any bytes. An array's elements are each used or counted as
//! ignored; anything else is refused as not an event array; never a panic.
#![no_main]

use herald_core::provider_events::sendgrid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = sendgrid::parse(data) {
        let elements =
            serde_json::from_slice::<Vec<serde_json::Value>>(data).map_or(0, |v| v.len());
        assert_eq!(batch.events.len() + batch.ignored, elements);
    }
});
