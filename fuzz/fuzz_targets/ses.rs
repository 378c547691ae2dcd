//! SES over SNS: any bytes as the SNS message, then its `Message` as the SES event (and the
//! string SNS signs). Parsed or refused; never a panic.
#![no_main]

use herald_core::provider_events::ses::{self, SnsMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SnsMessage::parse(data) {
        let _ = message.canonical();
        let _ = ses::trusted_cert_url(&message.signing_cert_url, &message.topic_arn);
        let now =
            chrono::DateTime::<chrono::Utc>::from_timestamp(1_795_255_230, 0).unwrap_or_default();
        let _ = ses::parse(&message, now);
    }
    // the SES event alone, inside the sample's envelope
    if let Ok(text) = std::str::from_utf8(data) {
        let envelope = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
            "Message": text, "Timestamp": "2026-11-20T10:06:01.000Z", "SignatureVersion": "1",
            "Signature": "", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem"
        });
        if let Ok(message) = SnsMessage::parse(envelope.to_string().as_bytes()) {
            let now = chrono::DateTime::<chrono::Utc>::from_timestamp(1_795_255_230, 0)
                .unwrap_or_default();
            let _ = ses::parse(&message, now);
        }
    }
});
