//! Each provider that needs an organization's settings as a sender of one channel: SES and
//! SendGrid for email, Twilio for SMS and WhatsApp. Dispatch asks them in the order of the
//! organization's routing (`herald_core::routing`); SNS needs no settings.
//!
//! Settings are cached; when a provider refuses the credentials of the cached copy (a key
//! rotated meanwhile), the settings are read again and, if they changed, the send is tried once
//! more with them. A refusal that stands is the provider's failure: the next provider is asked,
//! and the notification is retried, never dead-lettered for it.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::model::Notification;
use herald_core::ports::ProviderSettings;
use herald_core::ports::{ChannelSender, FailureKind, Receipt, SendError};
use herald_core::providers::OrgProviders;
use tracing::{info, warn};

use crate::{SendGridSender, SesEmailSender, TwilioSender};

fn unavailable(e: &herald_core::ports::PortError) -> SendError {
    warn!(error = %e, "provider settings unavailable");
    SendError::soft("provider settings unavailable")
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

/// Settings removed since the route was read: the provider cannot send for the organization.
fn not_set_up(provider: &str) -> SendError {
    SendError::account(format!("{provider} is not set up for the organization"))
}

/// SES, from the organization's `From` and configuration set when it set them.
pub struct SesEmail {
    pub ses: SesEmailSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for SesEmail {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        let providers = self
            .settings
            .get(&n.org_id)
            .await
            .map_err(|e| unavailable(&e))?;
        self.ses.send_with(n, providers.ses.as_ref()).await
    }
}

pub struct SendgridEmail {
    pub sendgrid: SendGridSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for SendgridEmail {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        with_fresh_on_refusal(self.settings.as_ref(), n, |providers| async move {
            match &providers.sendgrid {
                Some(sendgrid) => self.sendgrid.send(n, sendgrid).await,
                None => Err(not_set_up("sendgrid")),
            }
        })
        .await
    }
}

pub struct TwilioSms {
    pub twilio: TwilioSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for TwilioSms {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        with_fresh_on_refusal(self.settings.as_ref(), n, |providers| async move {
            match &providers.twilio {
                Some(twilio) => self.twilio.send(n, twilio).await,
                None => Err(not_set_up("twilio")),
            }
        })
        .await
    }
}

/// WhatsApp goes through Twilio, from the organization's WhatsApp sender.
pub struct TwilioWhatsapp {
    pub twilio: TwilioSender,
    pub settings: Arc<dyn ProviderSettings>,
}

#[async_trait]
impl ChannelSender for TwilioWhatsapp {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        with_fresh_on_refusal(self.settings.as_ref(), n, |providers| async move {
            let sender = providers
                .twilio
                .as_ref()
                .and_then(|t| t.whatsapp_from.as_ref().map(|from| (t, from)));
            match sender {
                Some((twilio, from)) => self.twilio.send_whatsapp(n, twilio, from).await,
                None => Err(not_set_up("twilio's WhatsApp sender")),
            }
        })
        .await
    }
}
