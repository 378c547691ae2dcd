//! SendGrid: `POST /v3/mail/send` as
//! https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send documents it, and
//! the signed event webhook as
//! https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
//! describes it (ECDSA P-256 over the timestamp followed by the body).

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::provider_events::sendgrid::P256_SPKI_PREFIX;
use serde_json::{Value, json};

use super::{CallbackRequest, StandIns};

/// The API key of the account every stand-in knows.
pub const SENDGRID_KEY: &str = "SG.test-key";

/// An ECDSA P-256 key like the one SendGrid signs its event webhook with.
pub struct SendGridSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

fn unusable(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl SendGridSigner {
    /// A fresh key.
    pub fn new() -> std::io::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(unusable)?;
        Self::from_pkcs8(pkcs8.as_ref(), rng)
    }

    /// The key kept in this file (PKCS#8), made and written there when there is none. Two
    /// processes starting at once agree on one key: each writes its own aside and links it in
    /// place, which only the first can do, and every one then reads what is there.
    pub fn kept_in(file: &Path) -> std::io::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = crate::keys::kept(file, || {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map(|k| k.as_ref().to_vec())
                .map_err(unusable)
        })?;
        Self::from_pkcs8(&pkcs8, rng)
    }

    fn from_pkcs8(pkcs8: &[u8], rng: SystemRandom) -> std::io::Result<Self> {
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).map_err(unusable)?;
        Ok(SendGridSigner { key, rng })
    }

    /// The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo.
    pub fn public_key(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        STANDARD.encode(der)
    }

    /// The signature and timestamp headers for a body sent at `timestamp` (Unix seconds).
    pub fn headers(&self, body: &[u8], timestamp: i64) -> Vec<(&'static str, String)> {
        let ts = timestamp.to_string();
        let mut signed = ts.as_bytes().to_vec();
        signed.extend_from_slice(body);
        // signing with a valid key fails only if the system has no randomness at all
        let signature = self
            .key
            .sign(&self.rng, &signed)
            .map(|s| STANDARD.encode(s.as_ref()))
            .unwrap_or_default();
        vec![
            ("X-Twilio-Email-Event-Webhook-Signature", signature),
            ("X-Twilio-Email-Event-Webhook-Timestamp", ts),
            ("Content-Type", "application/json".into()),
        ]
    }
}

/// The event webhook's POST of a batch of events, signed now.
pub(super) fn callback(
    http: &reqwest::Client,
    signer: &SendGridSigner,
    url: &str,
    events: &Value,
) -> reqwest::RequestBuilder {
    let body = events.to_string().into_bytes();
    let mut request = http.post(url);
    for (name, value) in signer.headers(&body, chrono::Utc::now().timestamp()) {
        request = request.header(name, value);
    }
    request.body(body)
}

fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    let body = json!({"errors": [{"message": message, "field": field, "help": null}]});
    (status, axum::Json(body)).into_response()
}

pub(super) fn is_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
}

/// `POST /v3/mail/send`.
pub(super) async fn send(
    State(stand_ins): State<StandIns>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(event_webhook) = stand_ins.lock().sendgrid_accounts.get(key).cloned() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "The provided authorization grant is invalid, expired, or revoked",
            None,
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return error(
            StatusCode::BAD_REQUEST,
            "Content-Type should be application/json.",
            None,
        );
    }
    let Ok(mail) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request", None);
    };
    if let Some(refusal) = refusal(&mail) {
        return refusal;
    }
    if let Some(answer) = stand_ins.scripted(super::Provider::SendGrid, &body) {
        return (answer.status, axum::Json(answer.body)).into_response();
    }
    let id = format!("sgmsg{:017}", stand_ins.next_id());
    if let Some(url) = event_webhook {
        let events = ["processed", "delivered"]
            .iter()
            .map(|kind| CallbackRequest::SendGrid(json!([event(&stand_ins, &mail, &id, kind)])))
            .collect();
        stand_ins.queue_callbacks(&id, &url, events);
    }
    stand_ins.lock().sendgrid.push(mail);
    (StatusCode::ACCEPTED, [("X-Message-Id", id)]).into_response()
}

/// One event about a message, as the event webhook posts it: the message's custom args are
/// fields of the event.
fn event(stand_ins: &StandIns, mail: &Value, id: &str, kind: &str) -> Value {
    let mut event = json!({
        "email": mail.pointer("/personalizations/0/to/0/email"),
        "timestamp": chrono::Utc::now().timestamp(),
        "smtp-id": format!("<{id}@herald.local>"),
        "event": kind,
        "sg_event_id": format!("sgev{:020}", stand_ins.next_id()),
        "sg_message_id": format!("{id}.recvd-herald-local-1"),
    });
    if kind == "delivered" {
        event["response"] = json!("250 OK");
    }
    let custom_args = mail
        .get("custom_args")
        .or_else(|| mail.pointer("/personalizations/0/custom_args"))
        .and_then(Value::as_object);
    if let (Some(args), Some(fields)) = (custom_args, event.as_object_mut()) {
        for (k, v) in args {
            fields.insert(k.clone(), v.clone());
        }
    }
    event
}

/// The first rule a mail breaks: its recipient, sender, subject or content.
fn refusal(mail: &Value) -> Option<Response> {
    let to = mail
        .pointer("/personalizations/0/to/0/email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_email(to) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "Does not contain a valid address.",
            Some("personalizations.0.to.0.email"),
        ));
    }
    if !mail
        .pointer("/from/email")
        .and_then(Value::as_str)
        .is_some_and(is_email)
    {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "The from email does not contain a valid address.",
            Some("from.email"),
        ));
    }
    if mail
        .get("subject")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "The subject is required.",
            Some("subject"),
        ));
    }
    content_refusal(mail)
}

/// SendGrid's rules for `content`: at least one entry, each with a type and a non-empty value;
/// `text/plain` and `text/html` at most once each, `text/plain` first, then `text/html`, then
/// any other type.
fn content_refusal(mail: &Value) -> Option<Response> {
    let refuse =
        |message: &str, field: &str| Some(error(StatusCode::BAD_REQUEST, message, Some(field)));
    let Some(content) = mail.get("content").and_then(Value::as_array) else {
        return refuse(
            "Unless a valid template_id is provided, the content parameter is required.",
            "content",
        );
    };
    if content.is_empty() {
        return refuse(
            "The content value must be a string at least one character in length.",
            "content.0.value",
        );
    }
    let mut types = Vec::new();
    for (i, entry) in content.iter().enumerate() {
        let kind = entry
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() {
            return refuse(
                "The content type cannot be empty.",
                &format!("content.{i}.type"),
            );
        }
        if entry
            .get("value")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return refuse(
                "The content value must be a string at least one character in length.",
                &format!("content.{i}.value"),
            );
        }
        types.push(kind);
    }
    for unique in ["text/plain", "text/html"] {
        if types.iter().filter(|t| **t == unique).count() > 1 {
            return refuse(
                "If present, text/plain and text/html may only be provided once.",
                "content",
            );
        }
    }
    // the rank each type must keep: text/plain, then text/html, then anything else
    let rank = |t: &str| match t {
        "text/plain" => 0,
        "text/html" => 1,
        _ => 2,
    };
    if types.windows(2).any(|w| rank(w[0]) > rank(w[1])) {
        return refuse(
            "If present, text/plain must be first, followed by text/html, followed by any other content.",
            "content",
        );
    }
    None
}
