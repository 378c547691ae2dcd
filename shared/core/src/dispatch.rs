//! Dispatch: claim a notification, send it through its channel's provider, record the result.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use thiserror::Error;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::model::{Channel, Notification, Status};
use crate::ports::{
    ChannelSender, ClaimOutcome, Clock, DispatchMessage, DispatchQueue, Enqueue, FailureKind,
    MAX_QUEUE_DELAY, NotificationStore, PortError, SendError,
};
use crate::retry::RetryPolicy;

/// The provider of each channel. In-app needs none: it is delivered by being stored.
#[derive(Clone)]
pub struct Senders {
    pub email: Arc<dyn ChannelSender>,
    pub sms: Arc<dyn ChannelSender>,
    pub push: Arc<dyn ChannelSender>,
    pub whatsapp: Arc<dyn ChannelSender>,
}

impl Senders {
    fn for_channel(&self, channel: Channel) -> Option<&Arc<dyn ChannelSender>> {
        match channel {
            Channel::Email => Some(&self.email),
            Channel::Sms => Some(&self.sms),
            Channel::Push => Some(&self.push),
            Channel::Whatsapp => Some(&self.whatsapp),
            Channel::InApp => None,
        }
    }
}

/// What one dispatch did.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchOutcome {
    Sent {
        provider_message_id: String,
    },
    Delivered,
    Retrying {
        next_retry_at: DateTime<Utc>,
        requeued: bool,
    },
    Failed {
        reason: String,
    },
    Skipped(Skip),
}

/// Why a message led to no send. Each is acknowledged: the message has nothing left to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    /// No such notification (it may belong to a table that was reset); logged.
    NotFound,
    /// Already sent, failed, delivered, or held by a live claim.
    NotClaimable(Status),
    /// Scheduled or backing off; enqueued again for its time when that is within the
    /// queue's reach, else left for the scheduler's sweep.
    NotDue {
        due_at: DateTime<Utc>,
        requeued: bool,
    },
}

#[derive(Debug, Error)]
pub enum DispatchError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(
        "the {channel} sender failed unexpectedly; the notification is released for a later attempt"
    )]
    SenderPanicked { channel: Channel },
}

pub struct DispatchService {
    pub store: Arc<dyn NotificationStore>,
    pub queue: Arc<dyn DispatchQueue>,
    pub senders: Senders,
    pub clock: Arc<dyn Clock>,
    pub policy: RetryPolicy,
    /// How long a claim holds. Longer than one invocation can run, shorter than the queue's
    /// visibility timeout, so a redelivered message can take over from a dispatcher that died.
    pub lease: Duration,
}

/// The default claim lease: four Lambda timeouts of 30 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl DispatchService {
    #[tracing::instrument(skip_all, fields(org_id = %message.org_id, notification_id = %message.notification_id))]
    pub async fn dispatch(
        &self,
        message: &DispatchMessage,
    ) -> Result<DispatchOutcome, DispatchError> {
        let now = self.clock.now();
        let token = Uuid::new_v4().simple().to_string();
        let claim = self
            .store
            .claim(
                &message.org_id,
                &message.notification_id,
                &token,
                now,
                now + chrono(self.lease),
            )
            .await?;
        let mut notification = match claim {
            ClaimOutcome::Claimed(n) => *n,
            ClaimOutcome::NotFound => {
                warn!("notification not found; message acknowledged");
                return Ok(DispatchOutcome::Skipped(Skip::NotFound));
            }
            ClaimOutcome::NotClaimable(n) => return self.not_claimable(&n, now).await,
        };
        notification.attempts += 1;
        notification.updated_at = now;
        notification.claim = None;

        let result = match self.senders.for_channel(notification.channel) {
            None => Ok(None),
            Some(sender) => match AssertUnwindSafe(sender.send(&notification))
                .catch_unwind()
                .await
            {
                Ok(Ok(receipt)) => Ok(Some(receipt.provider_message_id)),
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    error!(channel = %notification.channel, "sender panicked");
                    // Released as due now: the redelivered message (or the sweep) tries again.
                    let reason = "the sender failed unexpectedly".to_string();
                    self.apply_soft_failure(&mut notification, reason, now, Some(now));
                    notification.sweep_at = notification.next_retry_at;
                    self.settle(&notification, &token).await?;
                    return Err(DispatchError::SenderPanicked {
                        channel: notification.channel,
                    });
                }
            },
        };

        let outcome = match result {
            Ok(None) => {
                notification.status = Status::Delivered;
                notification.sent_at = Some(now);
                DispatchOutcome::Delivered
            }
            Ok(Some(provider_message_id)) => {
                notification.status = Status::Sent;
                notification.sent_at = Some(now);
                notification.provider_message_id = Some(provider_message_id.clone());
                notification.last_error = None;
                notification.next_retry_at = None;
                DispatchOutcome::Sent {
                    provider_message_id,
                }
            }
            Err(SendError {
                kind: FailureKind::Hard,
                reason,
            }) => {
                mark_failed(&mut notification, reason.clone(), now);
                DispatchOutcome::Failed { reason }
            }
            Err(SendError {
                kind: FailureKind::Soft,
                reason,
            }) => {
                self.apply_soft_failure(&mut notification, reason, now, None);
                match (notification.status, notification.next_retry_at) {
                    (Status::Retrying, Some(at)) => DispatchOutcome::Retrying {
                        next_retry_at: at,
                        requeued: false,
                    },
                    _ => DispatchOutcome::Failed {
                        reason: notification.last_error.clone().unwrap_or_default(),
                    },
                }
            }
        };
        // A retry is always in the sweep's index too: if the delayed message is lost, the
        // sweep still sends it; whichever comes first claims it, the other finds nothing to do.
        notification.sweep_at = match notification.status {
            Status::Retrying => notification.next_retry_at,
            _ => None,
        };
        if !self.settle(&notification, &token).await? {
            return Ok(outcome);
        }
        let outcome = match outcome {
            DispatchOutcome::Retrying { next_retry_at, .. } => {
                let requeued = self
                    .requeue_if_within_reach(&notification, next_retry_at, now)
                    .await?;
                DispatchOutcome::Retrying {
                    next_retry_at,
                    requeued,
                }
            }
            other => other,
        };
        info!(
            channel = %notification.channel,
            status = %notification.status,
            attempts = notification.attempts,
            "dispatched"
        );
        Ok(outcome)
    }

    /// A soft failure: back off per the policy, or give up when the attempts are spent.
    /// `due` overrides the policy's next attempt time.
    fn apply_soft_failure(
        &self,
        n: &mut Notification,
        reason: String,
        now: DateTime<Utc>,
        due: Option<DateTime<Utc>>,
    ) {
        match self.policy.delay_after(n.attempts, &mut rand::rng()) {
            Some(delay) => {
                n.status = Status::Retrying;
                n.next_retry_at = Some(due.unwrap_or(now + chrono(delay)));
                n.last_error = Some(reason);
            }
            None => mark_failed(
                n,
                format!("gave up after {} attempts: {reason}", n.attempts),
                now,
            ),
        }
    }

    async fn settle(&self, n: &Notification, token: &str) -> Result<bool, DispatchError> {
        let settled = self.store.settle(n, token).await?;
        if !settled {
            warn!(
                "claim lost before the result was recorded (lease expired and another dispatcher took over)"
            );
        }
        Ok(settled)
    }

    async fn requeue_if_within_reach(
        &self,
        n: &Notification,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DispatchError> {
        let delay = crate::intake::wait(now, due_at);
        if delay > MAX_QUEUE_DELAY {
            return Ok(false);
        }
        self.queue
            .enqueue(&[Enqueue {
                message: DispatchMessage {
                    org_id: n.org_id.clone(),
                    notification_id: n.id.clone(),
                },
                delay,
            }])
            .await?;
        Ok(true)
    }

    async fn not_claimable(
        &self,
        n: &Notification,
        now: DateTime<Utc>,
    ) -> Result<DispatchOutcome, DispatchError> {
        let waiting = matches!(n.status, Status::Pending | Status::Retrying);
        if let (true, Some(due_at)) = (waiting, n.due_at(now)) {
            let requeued = self.requeue_if_within_reach(n, due_at, now).await?;
            if !requeued && n.sweep_at.is_none() {
                // Early (a clock ahead of ours) and out of the sweep's index: put it back.
                self.store.park(&n.org_id, &n.id, due_at).await?;
            }
            info!(%due_at, requeued, "not due yet");
            return Ok(DispatchOutcome::Skipped(Skip::NotDue { due_at, requeued }));
        }
        info!(status = %n.status, "not claimable; skipped");
        Ok(DispatchOutcome::Skipped(Skip::NotClaimable(n.status)))
    }
}

fn mark_failed(n: &mut Notification, reason: String, now: DateTime<Utc>) {
    n.status = Status::Failed;
    n.failed_at = Some(now);
    n.next_retry_at = None;
    n.last_error = Some(reason);
}
