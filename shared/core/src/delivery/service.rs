//! Applies provider events to notifications: find the notification, move it forward, record
//! engagement, suppress addresses that must not be written to again, once per event.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use super::{DeliveryChange, DeliveryKind, ProviderEvent, effect};
use crate::ids::{NotificationId, OrgId};
use crate::intake::suppression_key;
use crate::model::{Notification, Status};
use crate::ports::{Clock, Directory, NotificationStore, PortError};
use crate::providers::Provider;

/// Where delivery events are matched and recorded.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// The notification a provider's message id belongs to.
    async fn find_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<(OrgId, NotificationId)>, PortError>;

    /// Applies the change if the notification is still at the revision it was read at;
    /// `false` when it changed meanwhile (read again and recompute).
    async fn apply_delivery(
        &self,
        n: &Notification,
        change: &DeliveryChange,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError>;

    async fn webhook_seen(
        &self,
        org: &OrgId,
        provider: Provider,
        event_id: &str,
    ) -> Result<bool, PortError>;

    async fn mark_webhook_seen(
        &self,
        org: &OrgId,
        provider: Provider,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PortError>;
}

/// What one webhook call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookSummary {
    pub applied: usize,
    pub unchanged: usize,
    pub duplicates: usize,
    /// Events for messages Herald does not know (accepted, so the provider stops retrying).
    pub unknown: usize,
    /// Events that arrived before the send was recorded: the provider should try again.
    pub not_ready: usize,
}

pub struct WebhookService {
    pub store: Arc<dyn NotificationStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub directory: Arc<dyn Directory>,
    pub clock: Arc<dyn Clock>,
}

const APPLY_ATTEMPTS: usize = 3;

impl WebhookService {
    /// Applies an organization's events, in order.
    pub async fn apply(
        &self,
        org: &OrgId,
        events: &[ProviderEvent],
    ) -> Result<WebhookSummary, PortError> {
        let mut summary = WebhookSummary::default();
        for e in events {
            if self
                .deliveries
                .webhook_seen(org, e.provider, &e.event_id)
                .await?
            {
                summary.duplicates += 1;
                continue;
            }
            match self.apply_one(org, e).await? {
                Applied::Changed => summary.applied += 1,
                Applied::Unchanged => summary.unchanged += 1,
                Applied::Unknown => summary.unknown += 1,
                Applied::NotReady => {
                    summary.not_ready += 1;
                    continue; // not marked seen: the provider's retry is wanted
                }
            }
            self.deliveries
                .mark_webhook_seen(org, e.provider, &e.event_id, self.clock.now())
                .await?;
        }
        Ok(summary)
    }

    async fn locate(
        &self,
        org: &OrgId,
        e: &ProviderEvent,
    ) -> Result<Option<Notification>, PortError> {
        if let Some((owner, id)) = self
            .deliveries
            .find_by_provider_id(&e.provider_message_id)
            .await?
        {
            if &owner != org {
                warn!(
                    provider = e.provider.as_str(),
                    "event for another organization's message; ignored"
                );
                return Ok(None);
            }
            return self.store.get(org, &id).await;
        }
        // The send may not be recorded yet; the provider echoes Herald's id back.
        match &e.notification_hint {
            Some(id) => Ok(self.store.get(org, id).await?.filter(|n| {
                n.provider_message_id.is_none()
                    || n.provider_message_id.as_deref() == Some(&e.provider_message_id)
            })),
            None => Ok(None),
        }
    }

    async fn apply_one(&self, org: &OrgId, e: &ProviderEvent) -> Result<Applied, PortError> {
        for _ in 0..APPLY_ATTEMPTS {
            let Some(n) = self.locate(org, e).await? else {
                info!(
                    provider = e.provider.as_str(),
                    "event for an unknown message; accepted"
                );
                return Ok(Applied::Unknown);
            };
            let change = effect(&n, e);
            if change.is_empty() {
                return Ok(Applied::Unchanged);
            }
            if matches!(
                n.status,
                Status::Pending | Status::Sending | Status::Retrying
            ) && e.kind != DeliveryKind::InTransit
            {
                return Ok(Applied::NotReady);
            }
            if self
                .deliveries
                .apply_delivery(&n, &change, self.clock.now())
                .await?
            {
                if let (Some(reason), Some(key)) =
                    (&change.suppress, suppression_key(n.channel, &n.address))
                {
                    self.directory.suppress(org, &key, reason).await?;
                }
                info!(
                    notification_id = %n.id,
                    provider = e.provider.as_str(),
                    status = ?change.status,
                    suppressed = change.suppress.is_some(),
                    "delivery event applied"
                );
                return Ok(Applied::Changed);
            }
        }
        Err(PortError::new(
            "apply delivery event",
            "the notification kept changing; try again",
        ))
    }
}

enum Applied {
    Changed,
    Unchanged,
    Unknown,
    NotReady,
}
