//! Email through Amazon SES v2.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};
use herald_core::identity::{IdentityStatus, SenderIdentity};
use herald_core::model::{Address, Notification};
use herald_core::ports::SendingIdentities;
use herald_core::ports::{ChannelSender, PortError, Receipt, SendError};
use herald_core::providers::SesSettings;

use crate::classify::accepted;
use crate::errors::aws;

/// SES answers this when the account is over a limit for now. (A paused or suspended account is
/// the account's refusal: [`crate::classify`].)
const SOFT_CODES: &[&str] = &["LimitExceededException"];

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
            .ok_or_else(|| SendError::account("no sender address is set for the organization"))?;
        let configuration_set = settings
            .and_then(|s| s.configuration_set.clone())
            .or_else(|| self.configuration_set.clone());
        // the HTML body, when there is one, goes as an alternative beside the text
        let html = n.html_body.as_deref().map(content).transpose()?;
        let message = Message::builder()
            .subject(content(n.subject.as_deref().unwrap_or_default())?)
            .body(
                Body::builder()
                    .text(content(&n.body)?)
                    .set_html(html)
                    .build(),
            )
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

/// The SES account's sending identities.
#[derive(Clone, Debug)]
pub struct SesIdentities {
    client: Client,
}

impl SesIdentities {
    pub fn new(client: Client) -> Self {
        SesIdentities { client }
    }
}

#[async_trait]
impl SendingIdentities for SesIdentities {
    async fn register(&self, identity: &SenderIdentity) -> Result<IdentityStatus, PortError> {
        const OP: &str = "sesv2 CreateEmailIdentity";
        match self
            .client
            .create_email_identity()
            .email_identity(identity.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(IdentityStatus {
                verified: out.verified_for_sending_status,
                dkim_tokens: out
                    .dkim_attributes
                    .and_then(|d| d.tokens)
                    .unwrap_or_default(),
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_already_exists_exception()) =>
            {
                self.status(identity)
                    .await?
                    .ok_or_else(|| PortError::new(OP, "the identity exists but cannot be read"))
            }
            Err(e) => Err(aws(OP, e)),
        }
    }

    async fn status(&self, identity: &SenderIdentity) -> Result<Option<IdentityStatus>, PortError> {
        match self
            .client
            .get_email_identity()
            .email_identity(identity.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(Some(IdentityStatus {
                verified: out.verified_for_sending_status,
                dkim_tokens: out
                    .dkim_attributes
                    .and_then(|d| d.tokens)
                    .unwrap_or_default(),
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("sesv2 GetEmailIdentity", e)),
        }
    }
}
