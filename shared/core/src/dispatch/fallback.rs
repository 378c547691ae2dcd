//! Channel fallback: a critical notification its channel could not deliver goes on through
//! the next channel intake rendered for it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::info;

use super::{DispatchError, DispatchService};
use crate::model::{Channel, Draft, Notification};
use crate::ports::{DispatchMessage, Enqueue};

impl DispatchService {
    /// A critical notification its channel could not deliver goes on through the next channel
    /// intake rendered for it: that channel's notification of the same fact is created (once,
    /// whoever asks again) and queued before this one is recorded as ended, so a crash between
    /// the two loses nothing. A non-critical notification never changes channel.
    pub(super) async fn fall_back(
        &self,
        n: &mut Notification,
        now: DateTime<Utc>,
    ) -> Result<(), DispatchError> {
        if !n.critical {
            return Ok(());
        }
        let Some((next, rest)) = n.fallbacks.split_first() else {
            return Ok(());
        };
        let mut fallback = Notification::new(
            Draft {
                org_id: n.org_id.clone(),
                notification_type: n.notification_type.clone(),
                recipient: n.recipient.clone(),
                channel: next.channel,
                business_key: n.business_key.clone(),
                source_event_id: n.source_event_id.clone(),
                address: next.address.clone(),
                sender: n.sender.clone().filter(|_| next.channel == Channel::Email),
                locale: n.locale.clone(),
                subject: next.subject.clone(),
                body: next.body.clone(),
                html_body: None,
                sms_segments: next.sms_segments,
                internal: n.internal,
                critical: true,
                scheduled_for: None,
            },
            now,
        );
        fallback.whatsapp.clone_from(&next.whatsapp);
        fallback.template = next.template;
        // the same event, due when the first was: its latency counts from the same instant
        fallback.event_at = n.event_at;
        fallback.scheduled_for = n.scheduled_for.filter(|t| *t <= now);
        fallback.note = Some(format!("fallback for {} ({})", n.channel, n.id));
        fallback.fallbacks = rest.to_vec();
        // queued even when it existed: whoever created it may have stopped before queuing it,
        // and a second message finds it claimed or sent
        self.store.create(&fallback).await?;
        self.queue
            .enqueue(&[Enqueue {
                message: DispatchMessage {
                    org_id: fallback.org_id.clone(),
                    notification_id: fallback.id.clone(),
                },
                delay: Duration::ZERO,
            }])
            .await?;
        let note = format!("fell back to {} ({})", next.channel, fallback.id);
        n.note = Some(match n.note.take() {
            Some(before) => format!("{before}; {note}"),
            None => note,
        });
        info!(channel = %n.channel, to = %next.channel, fallback = %fallback.id, "critical: fell back to the next channel");
        Ok(())
    }
}
