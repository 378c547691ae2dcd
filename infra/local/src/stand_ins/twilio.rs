//! Twilio: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` as
//! https://www.twilio.com/docs/messaging/api/message-resource documents it, WhatsApp's content
//! templates as
//! https://www.twilio.com/docs/content/send-templates-created-with-the-content-template-builder
//! does, and the status callbacks as https://www.twilio.com/docs/usage/webhooks/webhooks-security
//! signs them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{CallbackRequest, StandIns};

/// The account every stand-in knows, and its auth token.
pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "twilio-test-token";

/// The statuses a message that reaches its recipient reports, in order.
const DELIVERED_STATUSES: [&str; 2] = ["sent", "delivered"];

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

/// A `whatsapp:` address: the prefix, then an E.164 number.
fn is_whatsapp_address(s: &str) -> bool {
    s.strip_prefix("whatsapp:").is_some_and(is_e164)
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The status callback's POST, signed as Twilio signs: HMAC-SHA1 with the auth token over
/// the full URL followed by every parameter's name and value, sorted by name (Herald's own
/// signing function, checked against Twilio's documented example in its tests).
pub(super) fn callback(
    http: &reqwest::Client,
    url: &str,
    params: &[(String, String)],
) -> reqwest::RequestBuilder {
    let signature = herald_core::provider_events::twilio::signature(url, params, TWILIO_TOKEN);
    http.post(url)
        .header("X-Twilio-Signature", signature)
        .form(params)
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
pub(super) async fn send(
    State(stand_ins): State<StandIns>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"))
    );
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if sid != TWILIO_SID || auth != Some(expected.as_str()) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return error(
            StatusCode::BAD_REQUEST,
            20001,
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            20001,
            "Could not parse the request body",
        );
    };
    if let Some(refusal) = whatsapp_refusal(&form).or_else(|| message_refusal(&form)) {
        return refusal;
    }
    if let Some(answer) = stand_ins.scripted(super::Provider::Twilio, &body) {
        return (answer.status, axum::Json(answer.body)).into_response();
    }
    let message_sid = format!("SM{:032x}", stand_ins.next_id());
    let reply = json!({
        "sid": message_sid, "account_sid": TWILIO_SID, "status": "queued",
        "to": field(&form, "To"), "from": field(&form, "From"), "body": field(&form, "Body"),
        "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{message_sid}.json"),
    });
    if let Some(url) = field(&form, "StatusCallback") {
        let calls = DELIVERED_STATUSES
            .iter()
            .map(|status| CallbackRequest::Twilio(status_params(&form, &message_sid, status)))
            .collect();
        stand_ins.queue_callbacks(&message_sid, url, calls);
    }
    stand_ins.lock().twilio.push(form);
    (StatusCode::CREATED, axum::Json(reply)).into_response()
}

/// A status callback's parameters for a message.
fn status_params(form: &[(String, String)], sid: &str, status: &str) -> Vec<(String, String)> {
    let to = field(form, "To").unwrap_or_default();
    let mut params = vec![
        ("AccountSid", TWILIO_SID.to_string()),
        ("ApiVersion", "2010-04-01".to_string()),
        ("From", field(form, "From").unwrap_or_default().to_string()),
        ("MessageSid", sid.to_string()),
        ("MessageStatus", status.to_string()),
        ("SmsSid", sid.to_string()),
        ("SmsStatus", status.to_string()),
        ("To", to.to_string()),
    ];
    if to.starts_with("whatsapp:") {
        params.push(("ChannelPrefix", "whatsapp".to_string()));
    }
    params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The first rule a message breaks: its numbers and its body.
fn message_refusal(form: &[(String, String)]) -> Option<Response> {
    match field(form, "To") {
        Some(to) if is_e164(to) || is_whatsapp_address(to) => {}
        Some(to) => {
            return Some(error(
                StatusCode::BAD_REQUEST,
                21211,
                &format!("Invalid 'To' Phone Number: {to}"),
            ));
        }
        None => {
            return Some(error(
                StatusCode::BAD_REQUEST,
                21604,
                "A 'To' phone number is required.",
            ));
        }
    }
    if !field(form, "From").is_some_and(|from| is_e164(from) || is_whatsapp_address(from)) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            21212,
            "Invalid 'From' Phone Number",
        ));
    }
    if field(form, "ContentSid").is_none() && field(form, "Body").is_none_or(str::is_empty) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            21602,
            "Message body is required.",
        ));
    }
    None
}

/// The checks of a message with a content template, or between `whatsapp:` addresses, as the
/// error pages (21654, 21655, 21656, 21910) describe them: `ContentVariables` only with a
/// `ContentSid`, a `ContentSid` of `HX` and 32 hex digits, `ContentVariables` a JSON object of
/// non-empty strings, `From` and `To` on the same channel (`whatsapp:` then E.164 is checked
/// with the numbers).
fn whatsapp_refusal(form: &[(String, String)]) -> Option<Response> {
    let on_whatsapp = |name: &str| field(form, name).is_some_and(|a| a.starts_with("whatsapp:"));
    let content = field(form, "ContentSid");
    let variables = field(form, "ContentVariables");
    if variables.is_some() && content.is_none() {
        return Some(error(StatusCode::BAD_REQUEST, 21654, "ContentSid Required"));
    }
    if let Some(sid) = content {
        let ok = sid.len() == 34
            && sid.starts_with("HX")
            && sid[2..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Some(error(
                StatusCode::BAD_REQUEST,
                21655,
                "The ContentSid is Invalid",
            ));
        }
    }
    if let Some(raw) = variables {
        let valid = serde_json::from_str::<Value>(raw).ok().is_some_and(|v| {
            v.as_object().is_some_and(|o| {
                o.values()
                    .all(|x| x.as_str().is_some_and(|s| !s.is_empty()))
            })
        });
        if !valid {
            return Some(error(
                StatusCode::BAD_REQUEST,
                21656,
                "The ContentVariables Parameter is invalid",
            ));
        }
    }
    if field(form, "From").is_some()
        && field(form, "To").is_some()
        && on_whatsapp("From") != on_whatsapp("To")
    {
        return Some(error(
            StatusCode::BAD_REQUEST,
            21910,
            "Invalid From and To pair. From and To should be of the same channel",
        ));
    }
    None
}
