//! Intake: an event in, notifications (or a recorded skip, or a recorded rejection) out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;
use tracing::{info, warn};

use crate::consent::{self, Audience};
use crate::directory::{CustomerRecord, CustomerUpdate, OrgSettings, OrgSettingsUpdate, Origin};
use crate::directory_update::{update_customer, update_org};
use crate::event::{ChannelPlan, EventEnvelope, EventKind, IncomingEvent, NotifyRequest};
use crate::identity::{self, SenderIdentity};
use crate::ids::{CustomerId, EmailAddress, Locale, OrgId};
use crate::model::{Address, Channel, Draft, Fallback, Notification, Recipient, Status};
use crate::ports::{
    Clock, Created, Directory, DispatchMessage, DispatchQueue, Enqueue, MAX_QUEUE_DELAY,
    NotificationStore, PortError, Snapshot, SnapshotRequest,
};
use crate::record::{ChannelSkip, IntakeRecord, Outcome};
use crate::scheduling::wait;
use crate::sms::SegmentCap;
use crate::template::cache::OrgTemplateCache;
use crate::template::{Catalog, Message, OrgCatalog, Rendered, Templates, variables};

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
    /// The organizations' own templates over the catalog.
    pub org_templates: Arc<OrgTemplateCache>,
    pub clock: Arc<dyn Clock>,
    pub config: IntakeConfig,
    /// Devices' push endpoints, made and deleted as devices come and go (none: devices get
    /// their endpoints at their first push).
    pub device_endpoints: Option<Arc<crate::push::DeviceEndpoints>>,
}

/// How a recipient is written to.
struct Voice {
    locale: Locale,
    /// The organization's default locale, tried after the recipient's language.
    org_locale: Option<Locale>,
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

/// An event handled, and the notifications to enqueue once its record is written.
struct Handled {
    record: IntakeRecord,
    due: Vec<Enqueue>,
}

impl Handled {
    fn nothing_due(record: IntakeRecord) -> Self {
        Handled {
            record,
            due: Vec::new(),
        }
    }
}

/// A notifying event between the batch's reads: what it asks for.
struct Asked {
    org: OrgId,
    event_id: String,
    /// When the event happened (its `time`).
    event_at: DateTime<Utc>,
    request: NotifyRequest,
    internal: bool,
    /// The channels it asks for, before consent.
    wanted: Vec<Channel>,
    /// The organization's templates, as this batch read them.
    org_templates: Arc<OrgCatalog>,
}

impl Asked {
    fn customer(&self) -> Option<(OrgId, CustomerId)> {
        match &self.request.recipient {
            Recipient::Customer(id) => Some((self.org.clone(), id.clone())),
            Recipient::Operations => None,
        }
    }
}

/// The channels a notifying event may use with their addresses, and the others with why not.
struct Reach {
    addressed: Vec<(Channel, Address)>,
    skipped: Vec<ChannelSkip>,
}

/// A notifying event after consent.
struct Addressed {
    asked: Asked,
    reach: Reach,
}

impl IntakeService {
    /// Handles one event to its end (a batch of one).
    pub async fn handle(&self, envelope: &EventEnvelope) -> Result<IntakeRecord, IntakeError> {
        let mut results = self.handle_batch(std::slice::from_ref(envelope)).await;
        results.pop().unwrap_or_else(|| {
            Err(PortError::new("intake", "a batch of one event ended without an outcome").into())
        })
    }

    /// Handles a batch of events to their end, one outcome per event in their order: `Ok`
    /// whatever became of the event (a rejection included), `Err` only when the
    /// infrastructure failed for it and it should come again (nothing is doubled).
    ///
    /// The batch's notifying events share their reads (one for the recipients and the
    /// organizations, one for the suppression list), their records are written together and
    /// their notifications enqueued together. A directory event is applied where it stands:
    /// the notifying events before it are decided without it, those after it with it.
    pub async fn handle_batch(
        &self,
        envelopes: &[EventEnvelope],
    ) -> Vec<Result<IntakeRecord, IntakeError>> {
        let now = self.clock.now();
        let mut handled: Vec<Result<Handled, IntakeError>> = Vec::with_capacity(envelopes.len());
        let mut notifying: Vec<(usize, IncomingEvent)> = Vec::new();
        for (index, envelope) in envelopes.iter().enumerate() {
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
            match IncomingEvent::parse(envelope, now) {
                Err(e) => {
                    warn!(event_id = %envelope.id, detail_type = %envelope.detail_type, reason = %e, "event rejected");
                    record.reason = Some(e.to_string());
                    handled.push(Ok(Handled::nothing_due(record)));
                }
                Ok(event) if matches!(event.kind, EventKind::Notify(_)) => {
                    handled.push(Ok(Handled::nothing_due(record)));
                    notifying.push((index, event));
                }
                Ok(event) => {
                    self.notify(std::mem::take(&mut notifying), now, &mut handled)
                        .await;
                    let result = self.update_directory(event, now, &mut record).await;
                    handled.push(result.map(|()| Handled::nothing_due(record)));
                }
            }
        }
        self.notify(notifying, now, &mut handled).await;
        self.finish(handled).await
    }

    /// Writes the records of the events handled, then enqueues what they left due. The
    /// records first: they keep the emails' HTML that dispatch reads. Enqueueing again on
    /// redelivery is what makes a crash between the writes and the enqueue harmless;
    /// dispatch's claim makes it send once.
    async fn finish(
        &self,
        handled: Vec<Result<Handled, IntakeError>>,
    ) -> Vec<Result<IntakeRecord, IntakeError>> {
        let mut records = Vec::with_capacity(handled.len());
        let mut due = Vec::new();
        // per event handled: whether it left anything to enqueue (its record is the next one)
        let mut slots: Vec<Result<bool, IntakeError>> = Vec::with_capacity(handled.len());
        for h in handled {
            slots.push(h.map(|h| {
                let enqueues = !h.due.is_empty();
                due.extend(h.due);
                records.push(h.record);
                enqueues
            }));
        }
        let failed = match self.store.record_intakes(&records).await {
            Err(e) => Some((e, false)),
            Ok(()) if due.is_empty() => None,
            Ok(()) => self.queue.enqueue(&due).await.err().map(|e| (e, true)),
        };
        let mut records = records.into_iter();
        slots
            .into_iter()
            .map(|slot| {
                let enqueues = slot?;
                let record = records.next();
                match &failed {
                    // an enqueue's failure is only theirs who had something to enqueue
                    Some((e, only_enqueuing)) if enqueues || !only_enqueuing => {
                        Err(shared(e).into())
                    }
                    _ => record.ok_or_else(|| {
                        PortError::new("intake", "an event handled without a record").into()
                    }),
                }
            })
            .collect()
    }

    /// Applies a directory or settings event, and writes how it ended into `record`.
    async fn update_directory(
        &self,
        event: IncomingEvent,
        now: DateTime<Utc>,
        record: &mut IntakeRecord,
    ) -> Result<(), IntakeError> {
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
                    warn!(event_id = %event.event_id, %reason, "event rejected");
                    record.reason = Some(reason);
                    return Ok(());
                }
                update_org(self.directory.as_ref(), &event.org_id, update, origin).await?;
                record.outcome = Outcome::DirectoryUpdated;
            }
            // notifying events are decided together, in `notify`
            EventKind::Notify(_) => {}
        }
        Ok(())
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

    /// Decides, renders and creates the notifications of these notifying events (at
    /// `handled[index]`): two reads of the directory for all of them, then each event's
    /// writes, the events concurrently.
    async fn notify(
        &self,
        events: Vec<(usize, IncomingEvent)>,
        now: DateTime<Utc>,
        handled: &mut [Result<Handled, IntakeError>],
    ) {
        if events.is_empty() {
            return;
        }
        let mut plans: Vec<(usize, Plan)> = Vec::with_capacity(events.len());
        let mut asked = Vec::with_capacity(events.len());
        // the organizations' own templates, read at most once per interval per organization
        let orgs: BTreeSet<OrgId> = events.iter().map(|(_, e)| e.org_id.clone()).collect();
        let catalogs = self.org_templates.catalogs(&orgs).await;
        for (index, event) in events {
            let EventKind::Notify(request) = event.kind else {
                continue;
            };
            let org_templates = match catalogs.get(&event.org_id) {
                Some(Ok(catalog)) => catalog.clone(),
                Some(Err(e)) => {
                    fail(handled, [index].into_iter(), e);
                    continue;
                }
                None => Arc::new(OrgCatalog::empty()),
            };
            match self.ask(
                event.org_id,
                event.event_id,
                event.time,
                request,
                org_templates,
            ) {
                Ok(a) => asked.push((index, a)),
                Err(reason) => plans.push((index, Plan::Reject(reason))),
            }
        }

        // the recipients and their organizations' settings, in one read
        let request = SnapshotRequest {
            customers: asked.iter().filter_map(|(_, a)| a.customer()).collect(),
            orgs: asked.iter().map(|(_, a)| a.org.clone()).collect(),
            suppression: BTreeSet::new(),
        };
        let mut directory = Snapshot::default();
        if !asked.is_empty() {
            match self.directory.snapshot(&request).await {
                Ok(s) => directory = s,
                Err(e) => return fail(handled, asked.iter().map(|(i, _)| *i), &e),
            }
        }

        // consent and addresses; then the suppression list of every address, in one read
        let mut addressed = Vec::with_capacity(asked.len());
        let mut suppression = BTreeSet::new();
        for (index, asked) in asked {
            match self.address(&asked, &directory) {
                Ok(reach) => {
                    suppression.extend(reach.addressed.iter().filter_map(|(channel, address)| {
                        consent::suppression_key(*channel, address).map(|k| (asked.org.clone(), k))
                    }));
                    addressed.push((index, Addressed { asked, reach }));
                }
                Err(plan) => plans.push((index, self.checked(&asked, plan))),
            }
        }
        if !suppression.is_empty() {
            let request = SnapshotRequest {
                suppression,
                ..SnapshotRequest::default()
            };
            match self.directory.snapshot(&request).await {
                Ok(s) => directory.extend(s),
                Err(e) => return fail(handled, addressed.iter().map(|(i, _)| *i), &e),
            }
        }
        for (index, a) in addressed {
            let asked_for = self.compose(a, &directory, now);
            plans.push((index, asked_for));
        }

        // each event's notifications, all or none; the events concurrently
        let created = futures::future::join_all(plans.iter().map(|(_, plan)| async move {
            match plan {
                Plan::Notify { notifications, .. } => Some(self.create(notifications, now).await),
                _ => None,
            }
        }))
        .await;
        for ((index, plan), created) in plans.into_iter().zip(created) {
            if let Some(Ok(h)) = handled.get_mut(index) {
                let outcome = conclude(&mut h.record, plan, created);
                match outcome {
                    Ok(due) => h.due = due,
                    Err(e) => handled[index] = Err(e),
                }
            }
        }
    }

    /// What a notifying event asks for: its type's channels (or those it names), to the
    /// organization when the type is internal; or why it is rejected.
    fn ask(
        &self,
        org: OrgId,
        event_id: String,
        event_at: DateTime<Utc>,
        req: NotifyRequest,
        org_templates: Arc<OrgCatalog>,
    ) -> Result<Asked, String> {
        let templates = Templates::new(&self.catalog, Some(&org_templates));
        let Some(spec) = templates.spec(&req.notification_type) else {
            return Err(format!(
                "unknown notification type {:?}",
                req.notification_type.as_str()
            ));
        };
        // a built-in type's context is the event contract's, checked as the event was read;
        // an organization's own type's is checked against the variables it declared
        if templates.is_custom(&req.notification_type) {
            variables::check_context(&spec.variables, &req.context, "detail.context")?;
        }
        // An internal type goes to the organization's operations contact, whoever the event
        // names: a chargeback is never a customer's to read.
        let request = if spec.internal {
            NotifyRequest {
                recipient: Recipient::Operations,
                ..req
            }
        } else {
            req
        };
        let wanted: Vec<Channel> = match &request.channels {
            ChannelPlan::TemplateDefaults => spec.channels.clone(),
            ChannelPlan::Only(channels) => {
                if let Some(c) = channels.iter().find(|c| !spec.channels.contains(c)) {
                    return Err(format!("{} has no {c} template", request.notification_type));
                }
                channels.clone()
            }
        };
        let internal = spec.internal;
        Ok(Asked {
            org,
            event_id,
            event_at,
            internal,
            request,
            wanted,
            org_templates,
        })
    }

    /// Of the channels asked for, those the recipient accepts and has an address for; or the
    /// event's skip when none is left.
    fn address(&self, asked: &Asked, directory: &Snapshot) -> Result<Reach, Plan> {
        let (customer, org) = audience_of(asked, directory);
        let audience = Audience {
            recipient: &asked.request.recipient,
            customer,
            org,
        };
        let channels =
            match consent::channels(audience, &asked.request.notification_type, &asked.wanted) {
                Ok(channels) => channels,
                Err(reason) => {
                    return Err(Plan::Skip {
                        reason,
                        skipped: Vec::new(),
                    });
                }
            };
        let mut addressed = Vec::new();
        let mut skipped = Vec::new();
        for channel in channels {
            match consent::address(channel, audience) {
                Ok(address) => addressed.push((channel, address)),
                Err(reason) => skipped.push(ChannelSkip {
                    channel,
                    reason: reason.into(),
                }),
            }
        }
        // a critical request may still reach the recipient on another channel (compose)
        if addressed.is_empty() && !asked.request.critical {
            let reason = skip_reason(&skipped);
            return Err(Plan::Skip { reason, skipped });
        }
        Ok(Reach { addressed, skipped })
    }

    /// The event's notifications, rendered, on the addresses not suppressed; or why there
    /// are none.
    fn compose(&self, a: Addressed, directory: &Snapshot, now: DateTime<Utc>) -> Plan {
        let Addressed {
            asked,
            reach: Reach {
                mut addressed,
                mut skipped,
            },
        } = a;
        addressed.retain(|(channel, address)| {
            let blocked = consent::suppression_key(*channel, address)
                .is_some_and(|k| directory.suppressed.contains(&(asked.org.clone(), k)));
            if blocked {
                skipped.push(ChannelSkip {
                    channel: *channel,
                    reason: "suppressed".into(),
                });
            }
            !blocked
        });
        let (customer, org_settings) = audience_of(&asked, directory);
        let voice = self.voice(customer, org_settings);
        let mut fallbacks = if asked.request.critical {
            self.fallbacks(&asked, directory, &addressed, &skipped, &voice)
        } else {
            Vec::new()
        };
        // a critical notification whose channel has no usable address takes the next channel
        for skip in &mut skipped {
            if fallbacks.is_empty() {
                break;
            }
            let next = fallbacks.remove(0);
            skip.reason = format!("{}; fell back to {}", skip.reason, next.channel);
            addressed.push((next.channel, next.address));
        }
        if addressed.is_empty() {
            let reason = skip_reason(&skipped);
            return self.checked(&asked, Plan::Skip { reason, skipped });
        }

        let req = &asked.request;
        let mut notifications = Vec::with_capacity(addressed.len());
        for (channel, address) in addressed {
            let rendered =
                match self.render(&asked, channel, &voice, org_settings.sms_segment_cap()) {
                    Ok(r) => r,
                    Err(e) => return Plan::Reject(e.to_string()),
                };
            if let Some(reason) = oversized(channel, &rendered) {
                return Plan::Reject(reason);
            }
            let scheduled = req.scheduled_for.filter(|t| *t > now);
            let scheduled_for =
                consent::quiet_until(channel, req.critical, customer, scheduled.unwrap_or(now))
                    .or(scheduled);
            let mut n = Notification::new(
                Draft {
                    org_id: asked.org.clone(),
                    notification_type: req.notification_type.clone(),
                    recipient: req.recipient.clone(),
                    channel,
                    business_key: req.business_key.clone(),
                    source_event_id: asked.event_id.clone(),
                    address,
                    sender: (channel == Channel::Email).then(|| voice.sender.clone()),
                    locale: voice.locale.clone(),
                    subject: rendered.subject,
                    body: rendered.body,
                    html_body: rendered.html,
                    sms_segments: rendered.sms_segments,
                    internal: asked.internal,
                    critical: req.critical,
                    scheduled_for,
                },
                now,
            );
            n.whatsapp = rendered.whatsapp;
            n.template = Some(rendered.template);
            n.event_at = Some(asked.event_at);
            n.fallbacks.clone_from(&fallbacks);
            // beyond the queue's reach, the scheduler's sweep enqueues it when due
            n.sweep_at = scheduled_for.filter(|t| wait(now, *t) > MAX_QUEUE_DELAY);
            notifications.push(n);
        }
        Plan::Notify {
            notifications,
            skipped,
        }
    }

    /// A skip, unless the templates cannot render the event: that is bad input whoever it is
    /// for, so the event is rejected even when this recipient would have been skipped, and the
    /// producer hears of it now.
    fn checked(&self, asked: &Asked, plan: Plan) -> Plan {
        if let Plan::Skip { .. } = plan {
            let english = Voice {
                locale: Locale::english(),
                org_locale: None,
                timezone: None,
                sender: self.config.default_sender.clone(),
            };
            for channel in &asked.wanted {
                if let Err(e) = self.render(asked, *channel, &english, SegmentCap::DEFAULT) {
                    return Plan::Reject(e.to_string());
                }
            }
        }
        plan
    }

    /// How the recipient is written to: in their language (else the organization's, else
    /// English), in their time zone, from the organization's sender (else Herald's default).
    /// A critical notification's next channels in [`consent::FALLBACK_ORDER`]: those the
    /// recipient accepts and has an address on that is not suppressed, that the event does
    /// not use already, rendered (a channel the type has no template for is left out).
    fn fallbacks(
        &self,
        asked: &Asked,
        directory: &Snapshot,
        addressed: &[(Channel, Address)],
        skipped: &[ChannelSkip],
        voice: &Voice,
    ) -> Vec<Fallback> {
        let (customer, org) = audience_of(asked, directory);
        let audience = Audience {
            recipient: &asked.request.recipient,
            customer,
            org,
        };
        let used = |c: &Channel| {
            addressed.iter().any(|(a, _)| a == c) || skipped.iter().any(|s| s.channel == *c)
        };
        let candidates: Vec<Channel> = consent::FALLBACK_ORDER
            .into_iter()
            .filter(|c| !used(c))
            .collect();
        let Ok(accepted) =
            consent::channels(audience, &asked.request.notification_type, &candidates)
        else {
            return Vec::new();
        };
        accepted
            .into_iter()
            .filter_map(|channel| {
                let address = consent::address(channel, audience).ok()?;
                let suppressed = consent::suppression_key(channel, &address)
                    .is_some_and(|k| directory.suppressed.contains(&(asked.org.clone(), k)));
                if suppressed {
                    return None;
                }
                let rendered = self
                    .render(asked, channel, voice, org.sms_segment_cap())
                    .ok()
                    .filter(|r| oversized(channel, r).is_none())?;
                Some(Fallback {
                    channel,
                    address,
                    subject: rendered.subject,
                    body: rendered.body,
                    sms_segments: rendered.sms_segments,
                    whatsapp: rendered.whatsapp,
                    template: Some(rendered.template),
                })
            })
            .collect()
    }

    fn voice(&self, customer: &CustomerRecord, org: &OrgSettings) -> Voice {
        let org_locale = org.default_locale.as_ref().map(|s| s.value.clone());
        let locale = customer
            .locale
            .as_ref()
            .map(|s| s.value.clone())
            .or_else(|| org_locale.clone())
            .unwrap_or_else(Locale::english);
        Voice {
            locale,
            org_locale,
            timezone: customer.timezone.as_ref().map(|s| s.value.0),
            sender: org
                .sender_email
                .as_ref()
                .map_or_else(|| self.config.default_sender.clone(), |s| s.value.clone()),
        }
    }

    /// The event's message on a channel, from the organization's template or the built-in one.
    fn render(
        &self,
        asked: &Asked,
        channel: Channel,
        voice: &Voice,
        sms_cap: SegmentCap,
    ) -> Result<Rendered, crate::template::RenderError> {
        Templates::new(&self.catalog, Some(&asked.org_templates)).render(&Message {
            notification_type: &asked.request.notification_type,
            channel,
            locale: &voice.locale,
            org_locale: voice.org_locale.as_ref(),
            timezone: voice.timezone,
            context: &asked.request.context,
            sms_cap,
        })
    }

    /// Creates the event's notifications, all or none, so no channel is shown or sent while
    /// another of the same fact could not be stored (an existing one is the same fact seen
    /// again), and returns those due now that still wait, to enqueue.
    async fn create(
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

/// The recipient's record and the organization's settings as the batch's read saw them
/// (empty ones for those never written).
fn audience_of<'a>(
    asked: &Asked,
    directory: &'a Snapshot,
) -> (&'a CustomerRecord, &'a OrgSettings) {
    static NO_CUSTOMER: std::sync::LazyLock<CustomerRecord> =
        std::sync::LazyLock::new(CustomerRecord::default);
    static NO_SETTINGS: std::sync::LazyLock<OrgSettings> =
        std::sync::LazyLock::new(OrgSettings::default);
    let customer = asked
        .customer()
        .and_then(|k| directory.customers.get(&k))
        .unwrap_or(&NO_CUSTOMER);
    let org = directory.orgs.get(&asked.org).unwrap_or(&NO_SETTINGS);
    (customer, org)
}

fn skip_reason(skipped: &[ChannelSkip]) -> String {
    skipped
        .iter()
        .map(|s| format!("{}: {}", s.channel, s.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes how a decided event ended into its record, and returns what it leaves to enqueue.
fn conclude(
    record: &mut IntakeRecord,
    plan: Plan,
    created: Option<Result<Vec<Enqueue>, IntakeError>>,
) -> Result<Vec<Enqueue>, IntakeError> {
    match plan {
        Plan::Reject(reason) => {
            warn!(event_id = %record.event_id, %reason, "event rejected");
            record.reason = Some(reason);
        }
        Plan::Skip { reason, skipped } => {
            info!(event_id = %record.event_id, %reason, "event skipped");
            record.outcome = Outcome::Skipped;
            record.reason = Some(reason);
            record.skipped = skipped;
        }
        Plan::Notify {
            notifications,
            skipped,
        } => {
            let due = created.unwrap_or_else(|| {
                Err(PortError::new("intake", "notifications decided but not created").into())
            })?;
            record.outcome = Outcome::Notified;
            record.notifications = notifications.iter().map(|n| n.id.clone()).collect();
            record.html_bodies = notifications
                .into_iter()
                .filter_map(|n| Some((n.id, n.html_body?)))
                .collect();
            record.skipped = skipped;
            info!(event_id = %record.event_id, count = record.notifications.len(), "notifications created");
            return Ok(due);
        }
    }
    Ok(Vec::new())
}

/// Marks these events failed by one failure of the infrastructure.
fn fail(
    handled: &mut [Result<Handled, IntakeError>],
    indices: impl Iterator<Item = usize>,
    e: &PortError,
) {
    for index in indices {
        if let Some(slot) = handled.get_mut(index) {
            *slot = Err(shared(e).into());
        }
    }
}

/// A copy of a failure that several events share (each reports it).
fn shared(e: &PortError) -> PortError {
    PortError::new(e.operation, e.source.to_string())
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
