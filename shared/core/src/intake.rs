//! Intake: an event in, notifications (or a recorded skip, or a recorded rejection) out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;
use tracing::{info, warn};

use crate::consent::SuppressionKey;
use crate::consent::{self, Audience};
use crate::directory::{CustomerRecord, CustomerUpdate, OrgSettings, OrgSettingsUpdate, Origin};
use crate::directory_update::{update_customer, update_org};
use crate::event::{ChannelPlan, EventEnvelope, EventKind, IncomingEvent, NotifyRequest};
use crate::identity::{self, SenderIdentity};
use crate::ids::{EmailAddress, Locale, OrgId};
use crate::model::{Address, Channel, Draft, Notification, Recipient, Status};
use crate::ports::{
    Clock, Created, Directory, DispatchMessage, DispatchQueue, Enqueue, MAX_QUEUE_DELAY,
    NotificationStore, PortError,
};
use crate::record::{ChannelSkip, IntakeRecord, Outcome};
use crate::scheduling::wait;
use crate::sms::SegmentCap;
use crate::template::{Catalog, TemplateSpec};

#[derive(Debug, Error)]
pub enum IntakeError {
    /// The infrastructure failed; the event should be delivered again (nothing is doubled).
    #[error(transparent)]
    Port(#[from] PortError),
    /// A directory record kept changing under concurrent updates; the event should come again.
    #[error(transparent)]
    Directory(#[from] crate::directory_update::UpdateError),
}

/// Settings of the intake service.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// The `From` address of organizations that set none.
    pub default_sender: EmailAddress,
}

pub struct IntakeService {
    pub store: Arc<dyn NotificationStore>,
    pub directory: Arc<dyn Directory>,
    pub queue: Arc<dyn DispatchQueue>,
    pub catalog: Arc<Catalog>,
    pub clock: Arc<dyn Clock>,
    pub config: IntakeConfig,
    /// Devices' push endpoints, made and deleted as devices come and go (none: devices get
    /// their endpoints at their first push).
    pub device_endpoints: Option<Arc<crate::push::DeviceEndpoints>>,
}

/// How a recipient is written to.
struct Voice {
    locale: Locale,
    timezone: Option<chrono_tz::Tz>,
    sender: EmailAddress,
}

/// A notification that will be written, or the reason none will be.
enum Plan {
    Notify {
        notifications: Vec<Notification>,
        skipped: Vec<ChannelSkip>,
    },
    Skip {
        reason: String,
        skipped: Vec<ChannelSkip>,
    },
    Reject(String),
}

impl IntakeService {
    /// Handles one event to its end. `Ok` whatever the outcome (a rejection included);
    /// `Err` only when the infrastructure failed and the event should come again.
    #[tracing::instrument(skip_all, fields(event_id = %envelope.id, detail_type = %envelope.detail_type))]
    pub async fn handle(&self, envelope: &EventEnvelope) -> Result<IntakeRecord, IntakeError> {
        let now = self.clock.now();
        let mut record = IntakeRecord {
            event_id: envelope.id.clone(),
            org_id: IncomingEvent::org_of(envelope),
            detail_type: envelope.detail_type.clone(),
            outcome: Outcome::Rejected,
            reason: None,
            notifications: Vec::new(),
            skipped: Vec::new(),
            received_at: now,
            html_bodies: Default::default(),
        };
        let due = match IncomingEvent::parse(envelope, now) {
            Ok(event) => self.apply(event, now, &mut record).await?,
            Err(e) => {
                warn!(reason = %e, "event rejected");
                record.reason = Some(e.to_string());
                Vec::new()
            }
        };
        // The record before the enqueue: it keeps the emails' HTML that dispatch reads.
        // Enqueueing again on redelivery is what makes a crash between the writes and the
        // enqueue harmless; dispatch's claim makes it send once.
        self.store.record_intake(&record).await?;
        if !due.is_empty() {
            self.queue.enqueue(&due).await?;
        }
        Ok(record)
    }

    /// Does what a valid event asks, and writes how it ended into `record`; returns the
    /// notifications to enqueue once the record is written.
    async fn apply(
        &self,
        event: IncomingEvent,
        now: DateTime<Utc>,
        record: &mut IntakeRecord,
    ) -> Result<Vec<Enqueue>, IntakeError> {
        let origin = Origin::Event {
            at: event.time,
            now,
        };
        match event.kind {
            EventKind::Customer {
                customer_id,
                update,
            } => {
                let directory = self.directory.as_ref();
                let org = &event.org_id;
                let device = match (&update, &self.device_endpoints) {
                    (CustomerUpdate::Device { device, registered }, Some(endpoints)) => {
                        let before = match registered {
                            true => None,
                            false => {
                                endpoints
                                    .endpoint_of(directory, org, &customer_id, device)
                                    .await?
                            }
                        };
                        Some((endpoints, device.clone(), *registered, before))
                    }
                    _ => None,
                };
                update_customer(directory, org, &customer_id, update, origin).await?;
                match device {
                    Some((endpoints, device, true, _)) => {
                        endpoints
                            .registered(directory, org, &customer_id, &device)
                            .await;
                    }
                    Some((endpoints, device, false, Some(arn))) => {
                        // a leftover endpoint is never published to: logged, not retried
                        if let Err(e) = endpoints
                            .unregistered(directory, org, &customer_id, &device, &arn)
                            .await
                        {
                            warn!(error = %e, "the unregistered device's endpoint was not deleted");
                        }
                    }
                    _ => {}
                }
                record.outcome = Outcome::DirectoryUpdated;
            }
            EventKind::OrgSettings(update) => {
                if let Some(reason) = self.refused_sender(&event.org_id, &update).await? {
                    warn!(%reason, "event rejected");
                    record.reason = Some(reason);
                    return Ok(Vec::new());
                }
                update_org(self.directory.as_ref(), &event.org_id, update, origin).await?;
                record.outcome = Outcome::DirectoryUpdated;
            }
            EventKind::Notify(request) => {
                let plan = self
                    .plan(&event.org_id, &event.event_id, &request, now)
                    .await?;
                return self.carry_out(plan, now, record).await;
            }
        }
        Ok(Vec::new())
    }

    /// Why an organization may not send from the sender its settings name, if it may not (an
    /// identity another organization registered).
    async fn refused_sender(
        &self,
        org: &OrgId,
        update: &OrgSettingsUpdate,
    ) -> Result<Option<String>, IntakeError> {
        let Some(from) = &update.sender_email else {
            return Ok(None);
        };
        let owners = self
            .directory
            .identity_owners(&SenderIdentity::covering(from))
            .await?;
        let allowed = identity::may_send_from(&owners, org, from, &self.config.default_sender);
        Ok((!allowed).then(|| format!("detail.sender_email {}", identity::NOT_OWNED)))
    }

    /// Writes a plan's notifications and returns those to enqueue, or records why there are
    /// none.
    async fn carry_out(
        &self,
        plan: Plan,
        now: DateTime<Utc>,
        record: &mut IntakeRecord,
    ) -> Result<Vec<Enqueue>, IntakeError> {
        match plan {
            Plan::Reject(reason) => {
                warn!(%reason, "event rejected");
                record.reason = Some(reason);
            }
            Plan::Skip { reason, skipped } => {
                info!(%reason, "event skipped");
                record.outcome = Outcome::Skipped;
                record.reason = Some(reason);
                record.skipped = skipped;
            }
            Plan::Notify {
                notifications,
                skipped,
            } => {
                let due = self.store(&notifications, now).await?;
                record.outcome = Outcome::Notified;
                record.notifications = notifications.iter().map(|n| n.id.clone()).collect();
                record.html_bodies = notifications
                    .into_iter()
                    .filter_map(|n| Some((n.id, n.html_body?)))
                    .collect();
                record.skipped = skipped;
                info!(count = record.notifications.len(), "notifications created");
                return Ok(due);
            }
        }
        Ok(Vec::new())
    }

    /// Decides channels, addresses and content; renders everything before anything is written.
    async fn plan(
        &self,
        org: &OrgId,
        event_id: &str,
        req: &NotifyRequest,
        now: DateTime<Utc>,
    ) -> Result<Plan, IntakeError> {
        let Some(spec) = self.catalog.spec(&req.notification_type) else {
            return Ok(Plan::Reject(format!(
                "unknown notification type {:?}",
                req.notification_type.as_str()
            )));
        };
        // An internal type goes to the organization's operations contact, whoever the event
        // names: a chargeback is never a customer's to read.
        let internal;
        let req = if spec.internal && req.recipient != Recipient::Operations {
            internal = NotifyRequest {
                recipient: Recipient::Operations,
                ..req.clone()
            };
            &internal
        } else {
            req
        };
        let wanted: Vec<Channel> = match &req.channels {
            ChannelPlan::TemplateDefaults => spec.channels.clone(),
            ChannelPlan::Only(channels) => {
                if let Some(c) = channels.iter().find(|c| !spec.channels.contains(c)) {
                    return Ok(Plan::Reject(format!(
                        "{} has no {c} template",
                        req.notification_type
                    )));
                }
                channels.clone()
            }
        };
        let plan = self
            .decide(org, event_id, req, spec, wanted.clone(), now)
            .await?;
        // An event the templates cannot render is bad input whoever it is for: reject it
        // even when this recipient would have been skipped, so the producer hears of it now.
        if let Plan::Skip { .. } = plan {
            for channel in wanted {
                let rendered = self.catalog.render(
                    &req.notification_type,
                    channel,
                    &Locale::english(),
                    None,
                    &req.context,
                    SegmentCap::DEFAULT,
                );
                if let Err(e) = rendered {
                    return Ok(Plan::Reject(e.to_string()));
                }
            }
        }
        Ok(plan)
    }

    async fn decide(
        &self,
        org: &OrgId,
        event_id: &str,
        req: &NotifyRequest,
        spec: &TemplateSpec,
        wanted: Vec<Channel>,
        now: DateTime<Utc>,
    ) -> Result<Plan, IntakeError> {
        let customer_id = match &req.recipient {
            Recipient::Customer(id) => Some(id),
            Recipient::Operations => None,
        };
        let (customer, org_settings) = self.directory.load(org, customer_id).await?;
        let customer = customer.unwrap_or_default();
        let org_settings = org_settings.unwrap_or_default();
        let audience = Audience {
            recipient: &req.recipient,
            customer: &customer,
            org: &org_settings,
        };
        let channels = match consent::channels(audience, &req.notification_type, &wanted) {
            Ok(channels) => channels,
            Err(reason) => {
                return Ok(Plan::Skip {
                    reason,
                    skipped: Vec::new(),
                });
            }
        };

        let (addressed, skipped) = self.reachable(org, channels, audience).await?;
        if addressed.is_empty() {
            let reason = skipped
                .iter()
                .map(|s| format!("{}: {}", s.channel, s.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return Ok(Plan::Skip { reason, skipped });
        }

        let voice = self.voice(&customer, &org_settings);
        let mut notifications = Vec::with_capacity(addressed.len());
        for (channel, address) in addressed {
            let rendered = match self.catalog.render(
                &req.notification_type,
                channel,
                &voice.locale,
                voice.timezone,
                &req.context,
                org_settings.sms_segment_cap(),
            ) {
                Ok(r) => r,
                Err(e) => return Ok(Plan::Reject(e.to_string())),
            };
            if let Some(reason) = oversized(channel, &rendered) {
                return Ok(Plan::Reject(reason));
            }
            let scheduled = req.scheduled_for.filter(|t| *t > now);
            let scheduled_for =
                consent::quiet_until(channel, req.critical, &customer, scheduled.unwrap_or(now))
                    .or(scheduled);
            let mut n = Notification::new(
                Draft {
                    org_id: org.clone(),
                    notification_type: req.notification_type.clone(),
                    recipient: req.recipient.clone(),
                    channel,
                    business_key: req.business_key.clone(),
                    source_event_id: event_id.to_string(),
                    address,
                    sender: (channel == Channel::Email).then(|| voice.sender.clone()),
                    locale: voice.locale.clone(),
                    subject: rendered.subject,
                    body: rendered.body,
                    html_body: rendered.html,
                    sms_segments: rendered.sms_segments,
                    internal: spec.internal,
                    critical: req.critical,
                    scheduled_for,
                },
                now,
            );
            n.whatsapp = rendered.whatsapp;
            // beyond the queue's reach, the scheduler's sweep enqueues it when due
            n.sweep_at = scheduled_for.filter(|t| wait(now, *t) > MAX_QUEUE_DELAY);
            notifications.push(n);
        }
        Ok(Plan::Notify {
            notifications,
            skipped,
        })
    }

    /// How the recipient is written to: in their language (else the organization's, else
    /// English), in their time zone, from the organization's sender (else Herald's default).
    fn voice(&self, customer: &CustomerRecord, org: &OrgSettings) -> Voice {
        let locale = customer
            .locale
            .as_ref()
            .or(org.default_locale.as_ref())
            .map_or_else(Locale::english, |s| s.value.clone());
        Voice {
            locale,
            timezone: customer.timezone.as_ref().map(|s| s.value.0),
            sender: org
                .sender_email
                .as_ref()
                .map_or_else(|| self.config.default_sender.clone(), |s| s.value.clone()),
        }
    }

    /// Of these channels, those with an address that is not suppressed (the suppression list
    /// read once for all of them), and the others with why not.
    async fn reachable(
        &self,
        org: &OrgId,
        channels: Vec<Channel>,
        audience: Audience<'_>,
    ) -> Result<(Vec<(Channel, Address)>, Vec<ChannelSkip>), IntakeError> {
        let mut skipped = Vec::new();
        let mut addressed = Vec::new();
        for channel in channels {
            match consent::address(channel, audience) {
                Ok(address) => addressed.push((channel, address)),
                Err(reason) => skipped.push(ChannelSkip {
                    channel,
                    reason: reason.into(),
                }),
            }
        }
        let keys: Vec<SuppressionKey> = addressed
            .iter()
            .filter_map(|(c, a)| consent::suppression_key(*c, a))
            .collect();
        let suppressed = if keys.is_empty() {
            BTreeSet::new()
        } else {
            self.directory.suppressed(org, &keys).await?
        };
        addressed.retain(|(channel, address)| {
            let blocked = consent::suppression_key(*channel, address)
                .is_some_and(|k| suppressed.contains(&k));
            if blocked {
                skipped.push(ChannelSkip {
                    channel: *channel,
                    reason: "suppressed".into(),
                });
            }
            !blocked
        });
        Ok((addressed, skipped))
    }

    /// Creates the event's notifications, all or none, so no channel is shown or sent while
    /// another of the same fact could not be stored (an existing one is the same fact seen
    /// again), and returns those due now that still wait, to enqueue.
    async fn store(
        &self,
        notifications: &[Notification],
        now: DateTime<Utc>,
    ) -> Result<Vec<Enqueue>, IntakeError> {
        let created = self.store.create_all(notifications).await?;
        let due: Vec<Enqueue> = notifications
            .iter()
            .zip(created)
            .filter_map(|(n, created)| {
                let current = match created {
                    Created::New => n.clone(),
                    Created::Existing(existing) => *existing,
                };
                // due now, or soon enough for the queue to hold it back until then
                let delay = current.due_at(now).map_or(Duration::ZERO, |t| wait(now, t));
                (current.status == Status::Pending && delay <= MAX_QUEUE_DELAY).then(|| Enqueue {
                    message: DispatchMessage {
                        org_id: current.org_id.clone(),
                        notification_id: current.id.clone(),
                    },
                    delay,
                })
            })
            .collect();
        Ok(due)
    }
}

/// The largest rendered message (subject and text body) Herald stores, and the largest HTML
/// body beside it: together well inside DynamoDB's 400 KB item, and far more than any
/// notification needs.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;
pub const MAX_HTML_BYTES: usize = 128 * 1024;

/// Why a rendered message is too large to store, if it is.
fn oversized(channel: Channel, rendered: &crate::template::Rendered) -> Option<String> {
    let too_large = |what: &str, size: usize, limit: usize| {
        (size > limit).then(|| {
            format!(
                "the rendered {what} is {} KB, over the {} KB limit",
                size.div_ceil(1024),
                limit / 1024
            )
        })
    };
    let size = rendered.body.len() + rendered.subject.as_ref().map_or(0, String::len);
    too_large(&format!("{channel} message"), size, MAX_RENDERED_BYTES).or_else(|| {
        let html = rendered.html.as_ref().map_or(0, String::len);
        too_large(&format!("{channel} HTML body"), html, MAX_HTML_BYTES)
    })
}
