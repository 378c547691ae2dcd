//! Twilio's message status callbacks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ring::hmac;

use super::{AuthError, DeliveryKind, ProviderEvent, TWILIO_STOP, twilio_error_is_permanent};
use crate::providers::Provider;

pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Twilio's signature: base64 HMAC-SHA1, keyed with the auth token, over the URL followed by
/// every POST parameter sorted by name, as name then value.
pub fn signature(url: &str, params: &[(String, String)], auth_token: &str) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    STANDARD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

/// The URL as Twilio may have signed it: as configured, and with its default port added or
/// removed (Twilio signs what it requested, and proxies differ on keeping `:443`).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    if let Ok(mut parsed) = url::Url::parse(url) {
        let default = parsed.port_or_known_default();
        if parsed.port().is_some() {
            let _ = parsed.set_port(None);
        } else {
            let _ = parsed.set_port(default);
            // `Url` hides a default port it is given; spell it out
            if let (Some(port), Some(host)) = (default, parsed.host_str().map(str::to_owned)) {
                let with_port = url.replacen(&host, &format!("{host}:{port}"), 1);
                out.push(with_port);
            }
        }
        out.push(parsed.to_string());
    }
    out.dedup();
    out
}

/// Checks the signature against the URL's variants; compares in constant time.
pub fn verify(
    url: &str,
    params: &[(String, String)],
    auth_token: &str,
    given: &str,
) -> Result<(), AuthError> {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    let given = STANDARD
        .decode(given.trim())
        .map_err(|_| AuthError::BadSignature)?;
    for candidate in url_variants(url) {
        let mut sorted: Vec<&(String, String)> = params.iter().collect();
        sorted.sort();
        let mut data = candidate;
        for (name, value) in sorted {
            data.push_str(name);
            data.push_str(value);
        }
        if hmac::verify(&key, data.as_bytes(), &given).is_ok() {
            return Ok(());
        }
    }
    Err(AuthError::BadSignature)
}

/// Parses a status callback's form parameters.
pub fn parse(params: &[(String, String)], now: DateTime<Utc>) -> Result<ProviderEvent, String> {
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sid = field("MessageSid")
        .filter(|s| !s.is_empty())
        .ok_or("MessageSid is missing")?;
    let status = field("MessageStatus")
        .filter(|s| !s.is_empty())
        .ok_or("MessageStatus is missing")?;
    let code = match field("ErrorCode").filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| format!("ErrorCode {c:?} is not a number"))?,
        ),
        None => None,
    };
    let kind = match status {
        "accepted" | "scheduled" | "queued" | "sending" | "sent" => DeliveryKind::InTransit,
        "delivered" => DeliveryKind::Delivered,
        "read" => DeliveryKind::Opened,
        "undelivered" | "failed" => DeliveryKind::Undelivered {
            permanent: code.map_or(status == "failed", twilio_error_is_permanent),
            suppress: code == Some(TWILIO_STOP),
        },
        "canceled" => DeliveryKind::Dropped { suppress: false },
        other => return Err(format!("unknown MessageStatus {other:?}")),
    };
    Ok(ProviderEvent {
        provider: Provider::Twilio,
        // a message's status is reported once per status
        event_id: format!("{sid}:{status}"),
        provider_message_id: sid.to_string(),
        notification_hint: None,
        kind,
        at: now,
        reason: code.map(|c| format!("Twilio error {c}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(caller: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
            ("Digits", "1234"),
            ("From", caller),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn twilios_documented_example_signs_as_documented() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature(url, &params("+12349013030"), "12345"),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert_eq!(
            signature(url, &params("+14158675310"), "12345"),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        verify(
            url,
            &params("+14158675310"),
            "12345",
            "GvWf1cFY/Q7PnoempGyD5oXAezc=",
        )
        .unwrap();
        assert_eq!(
            verify(
                url,
                &params("+14158675311"),
                "12345",
                "GvWf1cFY/Q7PnoempGyD5oXAezc="
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn the_url_is_accepted_with_and_without_its_default_port() {
        let p = params("+12349013030");
        let signed_with_port =
            signature("https://hooks.example.com:443/webhooks/twilio/o", &p, "t");
        verify(
            "https://hooks.example.com/webhooks/twilio/o",
            &p,
            "t",
            &signed_with_port,
        )
        .unwrap();
        let signed_without = signature("https://hooks.example.com/webhooks/twilio/o", &p, "t");
        verify(
            "https://hooks.example.com:443/webhooks/twilio/o",
            &p,
            "t",
            &signed_without,
        )
        .unwrap();
    }

    #[test]
    fn statuses_and_error_codes_map_to_the_delivery_model() {
        let p = |status: &str, code: &str| -> Vec<(String, String)> {
            vec![
                ("MessageSid".into(), "SM1".into()),
                ("MessageStatus".into(), status.into()),
                ("ErrorCode".into(), code.into()),
            ]
        };
        let now = Utc::now();
        assert_eq!(
            parse(&p("delivered", ""), now).unwrap().kind,
            DeliveryKind::Delivered
        );
        assert_eq!(
            parse(&p("undelivered", "21610"), now).unwrap().kind,
            DeliveryKind::Undelivered {
                permanent: true,
                suppress: true
            }
        );
        assert_eq!(
            parse(&p("undelivered", "30003"), now).unwrap().kind,
            DeliveryKind::Undelivered {
                permanent: false,
                suppress: false
            }
        );
        assert_eq!(parse(&p("sent", ""), now).unwrap().event_id, "SM1:sent");
        assert!(parse(&p("exploded", ""), now).is_err());
        assert!(parse(&[], now).is_err());
    }
}
