//! SendGrid's signed event webhook.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{AuthError, DeliveryKind, ParseError, ProviderEvent};
use crate::ids::NotificationId;
use crate::model::{ErrorCode, Provider};

/// The DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// The EC point of a base64 DER P-256 public key, as SendGrid shows the verification key.
pub fn public_key_point(public_key_b64: &str) -> Result<Vec<u8>, AuthError> {
    let der = STANDARD
        .decode(public_key_b64.trim())
        .map_err(|_| AuthError::BadKey("the webhook public key is not base64"))?;
    match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(point.to_vec()),
        _ => Err(AuthError::BadKey(
            "the webhook public key is not an ECDSA P-256 key",
        )),
    }
}

/// Checks the signature over the timestamp followed by the body exactly as received, and that
/// the timestamp is within `window` of `now`.
pub fn verify(
    public_key_b64: &str,
    timestamp: &str,
    body: &[u8],
    signature_b64: &str,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<(), AuthError> {
    let point = public_key_point(public_key_b64)?;
    let signature = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| AuthError::BadSignature)?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(&signed, &signature)
        .map_err(|_| AuthError::BadSignature)?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| AuthError::StaleTimestamp)?;
    let at = DateTime::from_timestamp(seconds, 0).ok_or(AuthError::StaleTimestamp)?;
    if (now - at).abs() > window {
        return Err(AuthError::StaleTimestamp);
    }
    Ok(())
}

#[derive(Deserialize)]
struct RawEvent {
    event: String,
    sg_event_id: String,
    sg_message_id: String,
    timestamp: i64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default, rename = "type")]
    bounce_type: Option<String>,
    #[serde(default)]
    herald_notification_id: Option<String>,
}

/// SendGrid's drop reasons that mean the address itself is on SendGrid's suppression lists.
const SUPPRESSING_DROPS: &[&str] = &[
    "Bounced Address",
    "Unsubscribed Address",
    "Spam Reporting Address",
    "Invalid",
];

/// A webhook body: the events Herald understands, and how many elements it does not (an event
/// type it does not know, such as `group_resubscribe`, or one about no message, such as
/// `account_status_change`).
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<ProviderEvent>,
    pub ignored: usize,
}

/// Parses the webhook's JSON array of events, element by element: one element Herald does not
/// understand never costs the others. Only a body that is not a JSON array is an error.
pub fn parse(body: &[u8]) -> Result<Batch, ParseError> {
    let raw: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| ParseError::shape("a SendGrid event array", e))?;
    let mut batch = Batch::default();
    for element in raw {
        match serde_json::from_value::<RawEvent>(element)
            .ok()
            .and_then(event)
        {
            Some(e) => batch.events.push(e),
            None => batch.ignored += 1,
        }
    }
    Ok(batch)
}

fn event(r: RawEvent) -> Option<ProviderEvent> {
    let kind = match r.event.as_str() {
        "processed" | "deferred" => DeliveryKind::InTransit,
        "delivered" => DeliveryKind::Delivered,
        "bounce" => DeliveryKind::Bounced {
            permanent: r.bounce_type.as_deref() != Some("blocked"),
        },
        "dropped" => DeliveryKind::Dropped {
            suppress: r
                .reason
                .as_deref()
                .is_some_and(|why| SUPPRESSING_DROPS.contains(&why)),
        },
        "open" => DeliveryKind::Opened,
        "click" => DeliveryKind::Clicked,
        "spamreport" => DeliveryKind::Complained,
        "unsubscribe" | "group_unsubscribe" => DeliveryKind::Unsubscribed,
        _ => return None,
    };
    let at = DateTime::from_timestamp(r.timestamp, 0)?;
    // the part before the first dot is the X-Message-Id returned on send
    let provider_message_id = r.sg_message_id.split('.').next().unwrap_or_default();
    if provider_message_id.is_empty() || r.sg_event_id.is_empty() {
        return None;
    }
    Some(ProviderEvent {
        provider: Provider::Sendgrid,
        event_id: r.sg_event_id,
        provider_message_id: provider_message_id.to_string(),
        notification_hint: r
            .herald_notification_id
            .and_then(|id| NotificationId::parse(id).ok()),
        kind,
        at,
        // SendGrid's reasons are text (an SMTP answer may quote the address); its bounce
        // type (`bounce`, `blocked`) is the code
        code: r.bounce_type.and_then(ErrorCode::new),
        reason: r.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_an_event_array_is_named_without_quoting_it() {
        for body in [
            &br#""carol@example.com""#[..],
            br#"{"email": "carol@example.com"}"#,
            b"[{",
        ] {
            let err = parse(body).unwrap_err();
            assert!(
                matches!(
                    err,
                    ParseError::Shape {
                        what: "a SendGrid event array",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(!err.to_string().contains("carol"), "{err}");
        }
    }

    // The verification vector of SendGrid's own library tests.
    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const SIGNATURE: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const TIMESTAMP: &str = "1600112502";
    const PAYLOAD: &str = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";

    fn at_signing() -> DateTime<Utc> {
        DateTime::from_timestamp(1_600_112_502 + 60, 0).unwrap()
    }

    fn window() -> chrono::Duration {
        chrono::Duration::minutes(5)
    }

    #[test]
    fn the_published_vector_verifies() {
        verify(
            PUBLIC_KEY,
            TIMESTAMP,
            PAYLOAD.as_bytes(),
            SIGNATURE,
            at_signing(),
            window(),
        )
        .unwrap();
    }

    #[test]
    fn a_changed_byte_a_bad_signature_or_a_stale_timestamp_fail() {
        let mut body = PAYLOAD.as_bytes().to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify(
                PUBLIC_KEY,
                TIMESTAMP,
                &body,
                SIGNATURE,
                at_signing(),
                window()
            ),
            Err(AuthError::BadSignature)
        );
        let other = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
        assert_eq!(
            verify(
                PUBLIC_KEY,
                TIMESTAMP,
                PAYLOAD.as_bytes(),
                other,
                at_signing(),
                window()
            ),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(
                PUBLIC_KEY,
                "1600112503",
                PAYLOAD.as_bytes(),
                SIGNATURE,
                at_signing(),
                window()
            ),
            Err(AuthError::BadSignature)
        );
        let later = at_signing() + chrono::Duration::minutes(10);
        assert_eq!(
            verify(
                PUBLIC_KEY,
                TIMESTAMP,
                PAYLOAD.as_bytes(),
                SIGNATURE,
                later,
                window()
            ),
            Err(AuthError::StaleTimestamp)
        );
    }

    #[test]
    fn events_map_to_the_delivery_model() {
        let events = parse(PAYLOAD.as_bytes()).unwrap().events;
        assert_eq!(events[0].provider_message_id, "LRzXl_NHStOGhQ4kofSm_A");
        assert_eq!(events[0].kind, DeliveryKind::Dropped { suppress: true });
        let blocked = br#"[{"event":"bounce","type":"blocked","sg_event_id":"e","sg_message_id":"m.x","timestamp":1}]"#;
        assert_eq!(
            parse(blocked).unwrap().events[0].kind,
            DeliveryKind::Bounced { permanent: false }
        );
        assert!(parse(b"{}").is_err());
        assert!(parse(b"not json").is_err());
    }

    #[test]
    fn a_sendgrid_batch_with_an_unknown_event_keeps_the_rest() {
        let body = br#"[
            {"event":"bounce","type":"bounce","sg_event_id":"b1","sg_message_id":"m1.x","timestamp":1},
            {"event":"group_resubscribe","sg_event_id":"g1","sg_message_id":"m1.x","timestamp":1,"asm_group_id":1},
            {"event":"account_status_change","sg_event_id":"a1","timestamp":1,"type":"compliance_suspend"},
            {"event":"teleported","sg_event_id":"t1","sg_message_id":"m1.x","timestamp":1},
            {"event":"delivered","sg_event_id":"d1","sg_message_id":"","timestamp":1},
            "not an object",
            {"event":"delivered","sg_event_id":"d2","sg_message_id":"m2.x","timestamp":1}
        ]"#;
        let batch = parse(body).unwrap();
        let ids: Vec<&str> = batch.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, vec!["b1", "d2"]);
        assert_eq!(batch.ignored, 5);
    }
}
