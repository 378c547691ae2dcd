//! What the local stack reports: each event's outcome, and each notification as its recipient
//! got it, with its log and its place in the feed.

use std::collections::{HashMap, HashSet};

use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::{Notification, Recipient};
use herald_core::ports::NotificationStore;
use herald_core::ports::Views;
use herald_core::record::{ChannelSkip, IntakeRecord};
use herald_core::scheduler::SweepReport;
use serde::Serialize;

use super::LocalStack;
use super::bus::Put;
use crate::emulator::Sent;
use crate::error::LocalError;

/// One notification as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationReport {
    pub id: String,
    pub recipient: String,
    #[serde(rename = "type")]
    pub notification_type: String,
    pub channel: String,
    pub status: String,
    pub scheduled_for: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    pub provider_message_id: Option<String>,
    /// The template it was rendered from (built-in, or the organization's version N).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<herald_core::model::TemplateRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The notification's history, from the projected audit log.
    pub log: Vec<LogReport>,
    /// Whether the customer's projected feed shows it.
    pub in_feed: bool,
}

/// What became of one event given to the local stack.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    pub event_id: String,
    pub detail_type: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub notifications: Vec<NotificationReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<ChannelSkip>,
    /// The life-cycle events Herald published about its notifications.
    pub published: Vec<PublishedEvent>,
}

/// A life-cycle event as it reached the local stack's queue on `source: herald`.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedEvent {
    pub detail_type: String,
    pub notification_id: String,
    /// The envelope's id (EventBridge's) and the whole detail, for the tests.
    #[serde(skip)]
    pub envelope_id: String,
    #[serde(skip)]
    pub detail: serde_json::Value,
}

impl PublishedEvent {
    /// Reads an EventBridge envelope, as a rule's queue target receives it.
    pub fn from_envelope(body: &str) -> Result<PublishedEvent, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Envelope {
            id: String,
            #[serde(rename = "detail-type")]
            detail_type: String,
            detail: serde_json::Value,
        }
        let envelope: Envelope = serde_json::from_str(body)?;
        Ok(PublishedEvent {
            notification_id: envelope.detail["notification_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            detail_type: envelope.detail_type,
            envelope_id: envelope.id,
            detail: envelope.detail,
        })
    }
}

/// A log entry as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    pub at: String,
    pub event: String,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a tick did.
#[derive(Debug, Clone, Serialize)]
pub struct TickReport {
    #[serde(flatten)]
    pub sweep: SweepReport,
    pub notifications: Vec<NotificationReport>,
}

impl LocalStack {
    pub(super) async fn report(
        &self,
        puts: &[Put],
        records: &HashMap<String, IntakeRecord>,
    ) -> Result<Vec<EventReport>, LocalError> {
        let sent = self.emulator.sent().await?;
        let feeds = FeedsRead::default();
        let mut reports = Vec::with_capacity(puts.len());
        for put in puts {
            let report = match put {
                Put::Refused {
                    detail_type,
                    reason,
                } => EventReport {
                    event_id: String::new(),
                    detail_type: detail_type.clone(),
                    outcome: "rejected".into(),
                    reason: Some(reason.clone()),
                    notifications: Vec::new(),
                    skipped: Vec::new(),
                    published: Vec::new(),
                },
                Put::Accepted {
                    event_id,
                    detail_type,
                    org,
                } => {
                    let record = match records.get(event_id) {
                        Some(r) => Some(r.clone()),
                        None => self.store.get_intake(org.as_ref(), event_id).await?,
                    };
                    match record {
                        None => EventReport {
                            event_id: event_id.clone(),
                            detail_type: detail_type.clone(),
                            outcome: "rejected".into(),
                            reason: Some("the bus did not deliver the event to intake".into()),
                            notifications: Vec::new(),
                            skipped: Vec::new(),
                            published: Vec::new(),
                        },
                        Some(record) => self.event_report(&record, &sent, &feeds).await?,
                    }
                }
            };
            reports.push(report);
        }
        Ok(reports)
    }

    async fn event_report(
        &self,
        record: &IntakeRecord,
        sent: &Sent,
        feeds: &FeedsRead,
    ) -> Result<EventReport, LocalError> {
        let mut notifications = Vec::new();
        if let Some(org) = &record.org_id {
            for id in &record.notifications {
                if let Some(n) = self.store.get(org, id).await? {
                    notifications.push(self.notification_report(&n, sent, feeds).await?);
                }
            }
        }
        Ok(EventReport {
            event_id: record.event_id.clone(),
            detail_type: record.detail_type.clone(),
            outcome: record.outcome.as_str().into(),
            reason: record.reason.clone(),
            notifications,
            skipped: record.skipped.clone(),
            published: Vec::new(),
        })
    }
    /// A notification with its log and whether its customer's feed shows it (each customer's
    /// feed read once per report, in `feeds`).
    pub async fn notification_report(
        &self,
        n: &Notification,
        sent: &Sent,
        feeds: &FeedsRead,
    ) -> Result<NotificationReport, LocalError> {
        let log = self.report_views.log(&n.org_id, &n.id).await?;
        let in_feed = match &n.recipient {
            Recipient::Customer(c) => {
                let mut feeds = feeds.0.lock().await;
                let key = (n.org_id.clone(), c.clone());
                if !feeds.contains_key(&key) {
                    let ids = self
                        .report_views
                        .feed(&n.org_id, c, FEED_LOOKUP)
                        .await?
                        .into_iter()
                        .map(|e| e.notification_id)
                        .collect();
                    feeds.insert(key.clone(), ids);
                }
                feeds.get(&key).is_some_and(|ids| ids.contains(&n.id))
            }
            Recipient::Operations => false,
        };
        let mut report = notification_report(n, sent);
        report.log = log
            .into_iter()
            .map(|l| LogReport {
                at: herald_core::time::format(&l.at),
                event: l.event,
                attempt: l.attempt,
                reason: l.reason,
            })
            .collect();
        report.in_feed = in_feed;
        Ok(report)
    }
}

/// The customers' feeds one report has read: the notifications each shows.
#[derive(Default)]
pub struct FeedsRead(tokio::sync::Mutex<HashMap<(OrgId, CustomerId), HashSet<NotificationId>>>);

/// How far back a customer's feed is searched for a notification in a report.
const FEED_LOOKUP: usize = 500;

/// The report of a notification: content as the provider got it when it was sent.
pub fn notification_report(n: &Notification, sent: &Sent) -> NotificationReport {
    let (subject, body) = n
        .provider_message_id
        .as_deref()
        .and_then(|id| sent.content_of(id))
        .unwrap_or_else(|| (n.subject.clone(), n.body.clone()));
    // the emulator keeps only the HTML part of an email that has both: show the text part sent
    let body = if n.has_html || n.html_body.is_some() {
        n.body.clone()
    } else {
        body
    };
    NotificationReport {
        id: n.id.to_string(),
        recipient: match &n.recipient {
            Recipient::Customer(c) => c.to_string(),
            Recipient::Operations => "operations".into(),
        },
        notification_type: n.notification_type.to_string(),
        channel: n.channel.to_string(),
        status: n.status.to_string(),
        scheduled_for: n.scheduled_for.as_ref().map(herald_core::time::format),
        subject: subject.or_else(|| n.subject.clone()),
        body,
        provider_message_id: n.provider_message_id.clone(),
        template: n.template,
        error: n.last_error.clone(),
        log: Vec::new(),
        in_feed: false,
    }
}
