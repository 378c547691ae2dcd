//! Picks each organization's provider for a channel: SendGrid or SES for email, Twilio or SNS
//! for SMS, Twilio for WhatsApp, by the settings the organization has.
//!
//! Settings are cached; when a provider refuses the credentials of the cached copy (a key
//! rotated meanwhile), the settings are read again and, if they changed, the send is tried once
//! more with them. A refusal that stands is a soft failure: the provider's problem, retried,
//! never a dead letter of the notification.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::model::{DeliveryService, Notification};
use herald_core::ports::ProviderSettings;
use herald_core::ports::{ChannelSender, FailureKind, Receipt, SendError};
use herald_core::providers::OrgProviders;
use tracing::{info, warn};

use crate::{SendGridSender, SesEmailSender, SnsSmsSender, TwilioSender};

fn unavailable(e: &herald_core::ports::PortError) -> SendError {
    warn!(error = %e, "provider settings unavailable");
    SendError::soft("provider settings unavailable")
}

/// A send's answer, marked with the service that gave it.
fn through(
    service: DeliveryService,
    answer: Result<Receipt, SendError>,
) -> Result<Receipt, SendError> {
    answer.map(|r| r.via(service)).map_err(|e| e.via(service))
}

/// Sends with the cached settings; on a credential refusal, once more with settings read again
/// if they differ.
async fn with_fresh_on_refusal<'a, F, Fut>(
    settings: &'a dyn ProviderSettings,
    n: &'a Notification,
    send: F,
) -> Result<Receipt, SendError>
where
    F: Fn(OrgProviders) -> Fut,
    Fut: std::future::Future<Output = Result<Receipt, SendError>>,
{
    let cached = settings.get(&n.org_id).await.map_err(|e| unavailable(&e))?;
    match send(cached.clone()).await {
        Err(e) if e.kind == FailureKind::Credentials => {
            let fresh = settings
                .refresh(&n.org_id)
                .await
                .map_err(|e| unavailable(&e))?;
            if fresh == cached {
                return Err(e);
            }
            info!(notification_id = %n.id, "credentials refused; sending with the settings read again");
            send(fresh).await
        }
        other => other,
    }
}

pub struct EmailRouter {
    pub ses: SesEmailSender,
    pub sendgrid: SendGridSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for EmailRouter {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        with_fresh_on_refusal(self.settings.as_ref(), n, |providers| async move {
            match &providers.sendgrid {
                Some(sendgrid) => through(
                    DeliveryService::Sendgrid,
                    self.sendgrid.send(n, sendgrid).await,
                ),
                None => through(
                    DeliveryService::Ses,
                    self.ses.send_with(n, providers.ses.as_ref()).await,
                ),
            }
        })
        .await
    }
}

pub struct SmsRouter {
    pub sns: SnsSmsSender,
    pub twilio: TwilioSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for SmsRouter {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        with_fresh_on_refusal(self.settings.as_ref(), n, |providers| async move {
            match &providers.twilio {
                Some(twilio) => through(DeliveryService::Twilio, self.twilio.send(n, twilio).await),
                None => through(DeliveryService::Sns, self.sns.send(n).await),
            }
        })
        .await
    }
}

/// WhatsApp goes through Twilio, from the organization's WhatsApp sender; an organization
/// without one has not configured the channel.
pub struct WhatsappRouter {
    pub twilio: TwilioSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for WhatsappRouter {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        with_fresh_on_refusal(self.settings.as_ref(), n, |providers| async move {
            let sender = providers
                .twilio
                .as_ref()
                .and_then(|t| t.whatsapp_from.as_ref().map(|from| (t, from)));
            match sender {
                Some((twilio, from)) => self.twilio.send_whatsapp(n, twilio, from).await,
                None => Err(SendError::hard(format!(
                    "channel {} is not configured",
                    n.channel
                ))),
            }
        })
        .await
    }
}
