//! Email through Amazon SES v2.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};
use herald_core::model::{Address, Notification};
use herald_core::ports::{ChannelSender, Receipt, SendError};
use herald_core::providers::SesSettings;

use crate::classify::accepted;

/// SES answers these when the account or region is temporarily unable to send.
const SOFT_CODES: &[&str] = &["LimitExceededException", "SendingPausedException"];

#[derive(Clone, Debug)]
pub struct SesEmailSender {
    client: Client,
    configuration_set: Option<String>,
}

impl SesEmailSender {
    pub fn new(client: Client, configuration_set: Option<String>) -> Self {
        SesEmailSender {
            client,
            configuration_set,
        }
    }
}

fn content(text: &str) -> Result<Content, SendError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|_| SendError::hard("email content could not be built"))
}

#[async_trait]
impl ChannelSender for SesEmailSender {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        self.send_with(n, None).await
    }
}

fn tag(name: &str, value: &str) -> Result<MessageTag, SendError> {
    MessageTag::builder()
        .name(name)
        .value(value)
        .build()
        .map_err(|_| SendError::hard("email tags could not be built"))
}

impl SesEmailSender {
    /// Sends with an organization's SES settings: its `From` and configuration set.
    pub async fn send_with(
        &self,
        n: &Notification,
        settings: Option<&SesSettings>,
    ) -> Result<Receipt, SendError> {
        let Address::Email(to) = &n.address else {
            return Err(SendError::hard(
                "email notification without an email address",
            ));
        };
        let from = settings
            .and_then(|s| s.from.as_ref())
            .or(n.sender.as_ref())
            .ok_or_else(|| SendError::hard("email notification without a sender"))?;
        let configuration_set = settings
            .and_then(|s| s.configuration_set.clone())
            .or_else(|| self.configuration_set.clone());
        let message = Message::builder()
            .subject(content(n.subject.as_deref().unwrap_or_default())?)
            .body(Body::builder().text(content(&n.body)?).build())
            .build();
        let out = self
            .client
            .send_email()
            .from_email_address(from.as_str())
            .destination(Destination::builder().to_addresses(to.as_str()).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(configuration_set)
            // echoed back in SES event notifications
            .email_tags(tag("herald_org_id", n.org_id.as_str())?)
            .email_tags(tag("herald_notification_id", n.id.as_str())?)
            .send()
            .await;
        accepted(out.map(|o| o.message_id), "SES", SOFT_CODES)
    }
}
