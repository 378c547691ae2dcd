//! SMS and WhatsApp through Twilio's Programmable Messaging API.

use herald_core::ids::PhoneNumber;
use herald_core::model::{Address, Notification};
use herald_core::ports::{Receipt, SendError};
use herald_core::provider_events::twilio::status_callback_url;
use herald_core::provider_events::{TwilioFailure, twilio_failure};
use herald_core::providers::TwilioSettings;
use serde::Deserialize;

use crate::http::{credentials_refused, is_transient, unanswered};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

#[derive(Clone, Debug)]
pub struct TwilioSender {
    http: reqwest::Client,
    base_url: String,
    /// Where Twilio's status callbacks go: the public base URL of the webhooks API.
    public_base_url: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<u32>,
}

impl TwilioSender {
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        public_base_url: Option<String>,
    ) -> Self {
        TwilioSender {
            http,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            public_base_url: public_base_url.map(|u| u.trim_end_matches('/').to_string()),
        }
    }

    pub async fn send(
        &self,
        n: &Notification,
        settings: &TwilioSettings,
    ) -> Result<Receipt, SendError> {
        let Address::Phone(to) = &n.address else {
            return Err(SendError::hard("SMS notification without a phone number"));
        };
        let form = vec![
            ("To", to.as_str().to_string()),
            ("From", settings.from.as_str().to_string()),
            ("Body", n.body.clone()),
        ];
        self.post(n, settings, form).await
    }

    /// A WhatsApp message: the approved template (`ContentSid`) and its variables
    /// (`ContentVariables`, a JSON object of strings), between `whatsapp:` addresses. No `Body`:
    /// a message a business starts can only be a template.
    pub async fn send_whatsapp(
        &self,
        n: &Notification,
        settings: &TwilioSettings,
        from: &PhoneNumber,
    ) -> Result<Receipt, SendError> {
        let Address::Phone(to) = &n.address else {
            return Err(SendError::hard(
                "WhatsApp notification without a WhatsApp number",
            ));
        };
        let Some(content) = &n.whatsapp else {
            return Err(SendError::hard(
                "WhatsApp notification without an approved template",
            ));
        };
        let variables = serde_json::to_string(&content.variables)
            .map_err(|_| SendError::hard("WhatsApp template variables could not be written"))?;
        let form = vec![
            ("To", format!("whatsapp:{}", to.as_str())),
            ("From", format!("whatsapp:{}", from.as_str())),
            ("ContentSid", content.content_sid.as_str().to_string()),
            ("ContentVariables", variables),
        ];
        self.post(n, settings, form).await
    }

    /// Posts a message and reads Twilio's answer; the status callback is added here, for every
    /// channel alike.
    async fn post(
        &self,
        n: &Notification,
        settings: &TwilioSettings,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<Receipt, SendError> {
        if let Some(base) = &self.public_base_url {
            // names the notification, so a status that comes before the send is recorded
            // still finds it
            form.push((
                "StatusCallback",
                status_callback_url(base, &n.org_id, &n.id),
            ));
        }
        let sid = settings.account_sid.as_str();
        let response = self
            .http
            .post(format!(
                "{}/2010-04-01/Accounts/{sid}/Messages.json",
                self.base_url
            ))
            .basic_auth(sid, Some(settings.auth_token.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| unanswered("Twilio", &e))?;
        let status = response.status();
        if status.is_success() {
            // Accepted is sent, readable answer or not: asking again would send it twice.
            let created = response.json::<Created>().await.ok();
            return Ok(created.map_or_else(Receipt::without_id, |c| Receipt::with_id(c.sid)));
        }
        if is_transient(status) {
            return Err(SendError::soft(format!(
                "Twilio answered {}",
                status.as_u16()
            )));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(credentials_refused("Twilio", status));
        }
        // Twilio's message quotes the number: only the code is kept.
        let code = response.json::<ErrorBody>().await.ok().and_then(|b| b.code);
        Err(match code {
            Some(code) => {
                let reason = format!("Twilio error {code}");
                match twilio_failure(code) {
                    TwilioFailure::Recipient => SendError::recipient(reason),
                    TwilioFailure::Account => SendError::account(reason),
                    TwilioFailure::Permanent => SendError::hard(reason),
                    TwilioFailure::Transient => SendError::soft(reason),
                }
                .with_code(code.to_string())
            }
            None => SendError::hard(format!("Twilio rejected the message ({})", status.as_u16())),
        })
    }
}
