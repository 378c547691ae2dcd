//! A local stand-in for SendGrid's and Twilio's APIs that checks each request as the
//! providers document it (authentication, content type, required fields and their format)
//! and answers as they do, errors included. A test may script the next answers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

/// The API keys and credentials the fake accepts.
pub const SENDGRID_KEY: &str = "SG.test-key";
pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "twilio-test-token";

/// A scripted answer: an HTTP status and, for errors, the provider's error body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    sendgrid: Vec<Value>,
    twilio: Vec<Vec<(String, String)>>,
    script: VecDeque<Answer>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct FakeProviders {
    inner: Arc<Mutex<Inner>>,
}

fn sendgrid_error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    let body = json!({"errors": [{"message": message, "field": field, "help": null}]});
    (status, axum::Json(body)).into_response()
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn is_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

impl FakeProviders {
    /// Starts the fake on a free 127.0.0.1 port; it runs until the test's runtime ends.
    pub async fn start() -> (FakeProviders, String) {
        let fake = FakeProviders::default();
        let app = Router::new()
            .route("/v3/mail/send", post(sendgrid_send))
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_send),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, url)
    }

    /// The next requests get these answers instead of the normal one (after the checks).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().script.extend(answers);
    }

    /// The JSON bodies SendGrid accepted.
    pub fn sendgrid_requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().sendgrid.clone()
    }

    /// The form fields Twilio accepted.
    pub fn twilio_requests(&self) -> Vec<Vec<(String, String)>> {
        self.inner.lock().unwrap().twilio.clone()
    }

    fn scripted(&self) -> Option<Answer> {
        self.inner.lock().unwrap().script.pop_front()
    }

    fn next_id(&self) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        inner.next_id
    }
}

/// `POST /v3/mail/send`, as https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send documents it.
async fn sendgrid_send(
    State(fake): State<FakeProviders>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SENDGRID_KEY}")) {
        return sendgrid_error(
            StatusCode::UNAUTHORIZED,
            "The provided authorization grant is invalid, expired, or revoked",
            None,
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return sendgrid_error(
            StatusCode::BAD_REQUEST,
            "Content-Type should be application/json.",
            None,
        );
    }
    let Ok(mail) = serde_json::from_slice::<Value>(&body) else {
        return sendgrid_error(StatusCode::BAD_REQUEST, "Bad Request", None);
    };
    let to = mail
        .pointer("/personalizations/0/to/0/email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_email(to) {
        return sendgrid_error(
            StatusCode::BAD_REQUEST,
            "Does not contain a valid address.",
            Some("personalizations.0.to.0.email"),
        );
    }
    if !mail
        .pointer("/from/email")
        .and_then(Value::as_str)
        .is_some_and(is_email)
    {
        return sendgrid_error(
            StatusCode::BAD_REQUEST,
            "The from email does not contain a valid address.",
            Some("from.email"),
        );
    }
    if mail
        .get("subject")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return sendgrid_error(
            StatusCode::BAD_REQUEST,
            "The subject is required.",
            Some("subject"),
        );
    }
    if let Some(refusal) = sendgrid_content_refusal(&mail) {
        return refusal;
    }
    if let Some(answer) = fake.scripted() {
        return (answer.status, axum::Json(answer.body)).into_response();
    }
    fake.inner.lock().unwrap().sendgrid.push(mail);
    let id = format!("sgmsg{:017}", fake.next_id());
    (StatusCode::ACCEPTED, [("X-Message-Id", id)]).into_response()
}

/// SendGrid's rules for `content`: at least one entry, each with a type and a non-empty value;
/// `text/plain` and `text/html` at most once each, `text/plain` first, then `text/html`, then
/// any other type.
fn sendgrid_content_refusal(mail: &Value) -> Option<Response> {
    let refuse = |message: &str, field: &str| {
        Some(sendgrid_error(
            StatusCode::BAD_REQUEST,
            message,
            Some(field),
        ))
    };
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

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, as https://www.twilio.com/docs/messaging/api/message-resource documents it.
async fn twilio_send(
    State(fake): State<FakeProviders>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"))
    );
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if sid != TWILIO_SID || auth != Some(expected.as_str()) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "Could not parse the request body",
        );
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(refusal) = whatsapp_refusal(&form) {
        return refusal;
    }
    match field("To") {
        Some(to) if is_e164(to) || is_whatsapp_address(to) => {}
        Some(to) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21211,
                &format!("Invalid 'To' Phone Number: {to}"),
            );
        }
        None => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21604,
                "A 'To' phone number is required.",
            );
        }
    }
    if !field("From").is_some_and(|from| is_e164(from) || is_whatsapp_address(from)) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21212,
            "Invalid 'From' Phone Number",
        );
    }
    if field("ContentSid").is_none() && field("Body").is_none_or(str::is_empty) {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if let Some(answer) = fake.scripted() {
        return (answer.status, axum::Json(answer.body)).into_response();
    }
    let message_sid = format!("SM{:032x}", fake.next_id());
    let reply = json!({
        "sid": message_sid, "account_sid": TWILIO_SID, "status": "queued",
        "to": field("To"), "from": field("From"), "body": field("Body"),
        "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{message_sid}.json"),
    });
    fake.inner.lock().unwrap().twilio.push(form);
    (StatusCode::CREATED, axum::Json(reply)).into_response()
}

/// A `whatsapp:` address: the prefix, then an E.164 number.
fn is_whatsapp_address(s: &str) -> bool {
    s.strip_prefix("whatsapp:").is_some_and(is_e164)
}

/// The checks of a message with a content template, or between `whatsapp:` addresses, as
/// https://www.twilio.com/docs/content/send-templates-created-with-the-content-template-builder
/// and the error pages (21654, 21655, 21656, 21910) describe them: `ContentVariables` only
/// with a `ContentSid`, a `ContentSid` of `HX` and 32 hex digits, `ContentVariables` a JSON
/// object of non-empty strings, `From` and `To` on the same channel (`whatsapp:` then E.164
/// is checked with the numbers).
fn whatsapp_refusal(form: &[(String, String)]) -> Option<Response> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let on_whatsapp = |name: &str| field(name).is_some_and(|a| a.starts_with("whatsapp:"));
    let content = field("ContentSid");
    let variables = field("ContentVariables");
    if variables.is_some() && content.is_none() {
        return Some(twilio_error(
            StatusCode::BAD_REQUEST,
            21654,
            "ContentSid Required",
        ));
    }
    if let Some(sid) = content {
        let ok = sid.len() == 34
            && sid.starts_with("HX")
            && sid[2..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Some(twilio_error(
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
            return Some(twilio_error(
                StatusCode::BAD_REQUEST,
                21656,
                "The ContentVariables Parameter is invalid",
            ));
        }
    }
    if field("From").is_some() && field("To").is_some() && on_whatsapp("From") != on_whatsapp("To")
    {
        return Some(twilio_error(
            StatusCode::BAD_REQUEST,
            21910,
            "Invalid From and To pair. From and To should be of the same channel",
        ));
    }
    None
}

/// SendGrid's and Twilio's error answers, for scripting.
pub fn sendgrid_answer(status: u16, message: &str) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap(),
        body: json!({"errors": [{"message": message, "field": null, "help": null}]}),
    }
}

pub fn twilio_answer(status: u16, code: u32, message: &str) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap(),
        body: json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}),
    }
}
