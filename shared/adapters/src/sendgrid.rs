//! Email through SendGrid's v3 Mail Send API.

use herald_core::model::{Address, Notification};
use herald_core::ports::{Receipt, SendError};
use herald_core::providers::SendGridSettings;
use serde::Deserialize;
use serde_json::json;

use crate::http::{credentials_refused, is_transient, unanswered};

pub const DEFAULT_BASE_URL: &str = "https://api.sendgrid.com";

#[derive(Clone, Debug)]
pub struct SendGridSender {
    http: reqwest::Client,
    base_url: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    field: Option<String>,
}

impl SendGridSender {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        SendGridSender {
            http,
            base_url: base_url.into().trim_end_matches('/').to_string(),
        }
    }

    pub async fn send(
        &self,
        n: &Notification,
        settings: &SendGridSettings,
    ) -> Result<Receipt, SendError> {
        let Address::Email(to) = &n.address else {
            return Err(SendError::hard(
                "email notification without an email address",
            ));
        };
        let from = settings
            .from
            .as_ref()
            .or(n.sender.as_ref())
            .ok_or_else(|| SendError::account("no sender address is set for the organization"))?;
        // SendGrid takes text/plain first, then text/html
        let mut content = vec![json!({"type": "text/plain", "value": n.body})];
        if let Some(html) = &n.html_body {
            content.push(json!({"type": "text/html", "value": html}));
        }
        let body = json!({
            "personalizations": [{
                "to": [{"email": to.as_str()}],
                // echoed back on every event of the webhook
                "custom_args": {"herald_org_id": n.org_id.as_str(), "herald_notification_id": n.id.as_str()},
            }],
            "from": {"email": from.as_str()},
            "subject": n.subject.as_deref().unwrap_or_default(),
            "content": content,
        });
        let response = self
            .http
            .post(format!("{}/v3/mail/send", self.base_url))
            .bearer_auth(settings.api_key.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| unanswered("SendGrid", &e))?;
        let status = response.status();
        if status.is_success() {
            // Accepted is sent, readable id or not: asking again would send it twice.
            let id = response
                .headers()
                .get("X-Message-Id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            return Ok(id.map_or_else(Receipt::without_id, Receipt::with_id));
        }
        if is_transient(status) {
            return Err(SendError::soft(format!(
                "SendGrid answered {}",
                status.as_u16()
            )));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(credentials_refused("SendGrid", status));
        }
        // 400 and the like: the request itself is wrong; SendGrid says which field. Its
        // free text may quote the address, so only the field names are kept.
        let fields: Vec<String> = response
            .json::<ErrorBody>()
            .await
            .map(|b| b.errors.into_iter().filter_map(|e| e.field).collect())
            .unwrap_or_default();
        let reason = match fields.as_slice() {
            [] => format!("SendGrid rejected the message ({})", status.as_u16()),
            fields => format!(
                "SendGrid rejected the message ({}) at {}",
                status.as_u16(),
                fields.join(", ")
            ),
        };
        // an address SendGrid will not write to is the recipient's, not the message's
        let recipient = fields
            .iter()
            .any(|f| f.starts_with("personalizations.") && f.contains(".to."));
        Err(if recipient {
            SendError::recipient(reason)
        } else {
            SendError::hard(reason)
        })
    }
}
