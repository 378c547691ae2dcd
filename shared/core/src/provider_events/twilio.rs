//! Twilio's message status callbacks.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::{
    AuthError, DeliveryKind, ParseError, ProviderEvent, twilio_error_is_permanent,
    twilio_error_suppresses,
};
use crate::ids::{NotificationId, OrgId};
use crate::model::{ErrorCode, Provider};

pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The query parameter of the status callback URL that names Herald's notification: Twilio
/// calls back the URL it was given (and signs it, query included), so a status that arrives
/// before the send is recorded still finds its notification.
pub const NOTIFICATION_PARAM: &str = "n";

/// The StatusCallback URL for a notification: `<base>/webhooks/twilio/<org>?n=<notification>`.
pub fn status_callback_url(public_base_url: &str, org: &OrgId, id: &NotificationId) -> String {
    format!(
        "{}/webhooks/twilio/{org}?{NOTIFICATION_PARAM}={id}",
        public_base_url.trim_end_matches('/')
    )
}

/// The notification a status callback's query names, if it names a valid one.
pub fn notification_of(query: Option<&str>) -> Option<NotificationId> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == NOTIFICATION_PARAM)
        .and_then(|(_, v)| NotificationId::parse(v.into_owned()).ok())
}

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
pub fn parse(params: &[(String, String)], now: DateTime<Utc>) -> Result<ProviderEvent, ParseError> {
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sid = field("MessageSid")
        .filter(|s| !s.is_empty())
        .ok_or(ParseError::Missing("MessageSid"))?;
    let status = field("MessageStatus")
        .filter(|s| !s.is_empty())
        .ok_or(ParseError::Missing("MessageStatus"))?;
    let code = match field("ErrorCode").filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| ParseError::NotANumber("ErrorCode"))?,
        ),
        None => None,
    };
    let kind = match status {
        "accepted" | "scheduled" | "queued" | "sending" | "sent" => DeliveryKind::InTransit,
        "delivered" => DeliveryKind::Delivered,
        "read" => DeliveryKind::Opened,
        "undelivered" | "failed" => DeliveryKind::Undelivered {
            permanent: code.map_or(status == "failed", twilio_error_is_permanent),
            suppress: code.is_some_and(twilio_error_suppresses),
        },
        "canceled" => DeliveryKind::Dropped { suppress: false },
        // some segments arrived, some did not: nothing Herald's statuses can say
        "partially_delivered" => DeliveryKind::InTransit,
        other => {
            // a status added after this was written: accepted and recorded, never refused
            let safe =
                other.len() <= 32 && other.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            tracing::info!(
                status = if safe { other } else { "(unreadable)" },
                "Twilio status Herald does not know; accepted"
            );
            DeliveryKind::InTransit
        }
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
        code: code.and_then(|c| ErrorCode::new(c.to_string())),
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
        // WhatsApp: read is opened; outside the window without a template fails, no WhatsApp
        // user at the number is suppressed, a rate limit changes nothing
        assert_eq!(
            parse(&p("read", ""), now).unwrap().kind,
            DeliveryKind::Opened
        );
        let window = parse(&p("failed", "63016"), now).unwrap();
        assert_eq!(
            window.kind,
            DeliveryKind::Undelivered {
                permanent: true,
                suppress: false
            }
        );
        assert_eq!(window.reason.as_deref(), Some("Twilio error 63016"));
        assert_eq!(
            parse(&p("undelivered", "63024"), now).unwrap().kind,
            DeliveryKind::Undelivered {
                permanent: true,
                suppress: true
            }
        );
        assert_eq!(
            parse(&p("undelivered", "63018"), now).unwrap().kind,
            DeliveryKind::Undelivered {
                permanent: false,
                suppress: false
            }
        );
        assert!(parse(&[], now).is_err());
    }

    #[test]
    fn a_twilio_status_herald_does_not_know_is_accepted() {
        let now = Utc::now();
        for status in ["partially_delivered", "exploded"] {
            let params = vec![
                ("MessageSid".to_string(), "SM1".to_string()),
                ("MessageStatus".to_string(), status.to_string()),
            ];
            let e = parse(&params, now).unwrap();
            assert_eq!(e.kind, DeliveryKind::InTransit, "{status}");
            assert_eq!(e.event_id, format!("SM1:{status}"));
        }
    }

    #[test]
    fn a_callback_without_its_fields_names_the_one_missing() {
        let now = Utc::now();
        let only = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(
            parse(&only("MessageStatus", "delivered"), now).unwrap_err(),
            ParseError::Missing("MessageSid")
        );
        assert_eq!(
            parse(&only("MessageSid", "SM1"), now).unwrap_err(),
            ParseError::Missing("MessageStatus")
        );
        let mut bad_code = only("MessageSid", "SM1");
        bad_code.push(("MessageStatus".into(), "failed".into()));
        bad_code.push(("ErrorCode".into(), "+15555550100".into()));
        let err = parse(&bad_code, now).unwrap_err();
        assert_eq!(err, ParseError::NotANumber("ErrorCode"));
        assert!(!err.to_string().contains("555"), "{err}");
    }

    #[test]
    fn the_status_callback_url_names_the_notification() {
        let org = OrgId::parse("org_acme").unwrap();
        let id = NotificationId::parse("ntf_1").unwrap();
        let url = status_callback_url("https://hooks.example/", &org, &id);
        assert_eq!(
            url,
            "https://hooks.example/webhooks/twilio/org_acme?n=ntf_1"
        );
        let query = url.split_once('?').map(|(_, q)| q);
        assert_eq!(notification_of(query), Some(id));
        assert_eq!(notification_of(Some("n=bad%20id")), None);
        assert_eq!(notification_of(None), None);
    }
}
