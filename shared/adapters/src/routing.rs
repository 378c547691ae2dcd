//! Picks each organization's provider for a channel: SendGrid or SES for email, Twilio or SNS
//! for SMS, by the settings the organization has.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::model::Notification;
use herald_core::ports::{ChannelSender, Receipt, SendError};
use herald_core::providers::ProviderSettings;
use tracing::warn;

use crate::{SendGridSender, SesEmailSender, SnsSmsSender, TwilioSender};

async fn settings_of(
    settings: &dyn ProviderSettings,
    n: &Notification,
) -> Result<herald_core::providers::OrgProviders, SendError> {
    settings.get(&n.org_id).await.map_err(|e| {
        warn!(error = %e, "provider settings unavailable");
        SendError::soft("provider settings unavailable")
    })
}

pub struct EmailRouter {
    pub ses: SesEmailSender,
    pub sendgrid: SendGridSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for EmailRouter {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        let providers = settings_of(self.settings.as_ref(), n).await?;
        match &providers.sendgrid {
            Some(sendgrid) => self.sendgrid.send(n, sendgrid).await,
            None => self.ses.send_with(n, providers.ses.as_ref()).await,
        }
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
        let providers = settings_of(self.settings.as_ref(), n).await?;
        match &providers.twilio {
            Some(twilio) => self.twilio.send(n, twilio).await,
            None => self.sns.send(n).await,
        }
    }
}
