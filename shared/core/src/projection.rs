//! The read models kept from the notifications table's stream: the audit log, the customer
//! feed, the daily statistics and the dead letters. Pure functions from a change (old and new
//! image) to view writes; the adapter applies them idempotently.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, NotificationId, OrgId};
use crate::model::{Channel, Notification, Recipient, Status};

/// One change of one notification, as the stream reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub old: Option<Notification>,
    pub new: Option<Notification>,
}

/// An entry of a notification's history: what a support person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub org_id: OrgId,
    pub notification_id: NotificationId,
    #[serde(with = "crate::time")]
    pub at: DateTime<Utc>,
    /// `created`, `scheduled`, or the status entered (`sending`, `sent`, `retrying`, …).
    pub event: String,
    /// The notification's revision at this change: orders entries with the same time.
    #[serde(default)]
    pub revision: u32,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A customer's feed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub org_id: OrgId,
    pub customer_id: CustomerId,
    pub notification_id: NotificationId,
    pub notification_type: String,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub body: String,
    pub status: Status,
    pub read: bool,
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time")]
    pub updated_at: DateTime<Utc>,
}

/// Outcomes the statistics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatOutcome {
    Sent,
    Failed,
    Delivered,
    Bounced,
    /// Withheld at send time: consent no longer allowed it.
    Skipped,
    /// The recipient marked it as spam (counted on the day of the complaint).
    Complained,
}

impl StatOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StatOutcome::Sent => "sent",
            StatOutcome::Failed => "failed",
            StatOutcome::Delivered => "delivered",
            StatOutcome::Bounced => "bounced",
            StatOutcome::Skipped => "skipped",
            StatOutcome::Complained => "complained",
        }
    }
}

/// The key of a daily counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StatKey {
    pub org_id: OrgId,
    pub day: NaiveDate,
    pub notification_type: String,
    pub channel: Channel,
    pub outcome: StatOutcome,
}

/// One notification reaching an outcome: counted once, however often it is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatEvent {
    pub key: StatKey,
    pub notification_id: NotificationId,
    /// An SMS's segments, added to the counter's `segments` with the count (0 for others).
    pub sms_segments: u32,
    /// Sent and delivered: milliseconds from the notification's creation to the outcome.
    pub latency_ms: Option<u64>,
}

/// A dead-lettered notification with its last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub org_id: OrgId,
    pub notification_id: NotificationId,
    pub notification_type: String,
    pub channel: Channel,
    pub recipient: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(with = "crate::time")]
    pub failed_at: DateTime<Utc>,
}

/// What one change asks of the views.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewWrite {
    Log(LogEntry),
    /// A new feed entry, for a notification just sent (one more unread). An entry that exists
    /// already takes its status instead, if that is newer.
    FeedCreate(FeedEntry),
    /// The entry's status, if this change is newer than what the entry shows.
    FeedStatus {
        org_id: OrgId,
        customer_id: CustomerId,
        notification_id: NotificationId,
        created_at: DateTime<Utc>,
        status: Status,
        updated_at: DateTime<Utc>,
    },
    Stat(StatEvent),
    DeadLetterPut(DeadLetter),
    DeadLetterDelete {
        org_id: OrgId,
        notification_id: NotificationId,
        failed_at: DateTime<Utc>,
    },
}

fn log_entry(n: &Notification, event: &str) -> LogEntry {
    LogEntry {
        org_id: n.org_id.clone(),
        notification_id: n.id.clone(),
        at: n.updated_at,
        event: event.to_string(),
        revision: n.revision,
        attempt: n.attempts,
        reason: match n.status {
            Status::Retrying | Status::Failed => n.last_error.clone(),
            Status::Skipped | Status::Sent => n.note.clone(),
            _ => None,
        },
        next_attempt_at: (n.status == Status::Retrying)
            .then_some(n.next_retry_at)
            .flatten(),
    }
}

fn customer_of(n: &Notification) -> Option<&CustomerId> {
    match (&n.recipient, n.internal) {
        (Recipient::Customer(c), false) => Some(c),
        _ => None,
    }
}

fn stat_outcome(status: Status) -> Option<StatOutcome> {
    match status {
        Status::Sent => Some(StatOutcome::Sent),
        Status::Failed => Some(StatOutcome::Failed),
        Status::Delivered => Some(StatOutcome::Delivered),
        Status::Bounced => Some(StatOutcome::Bounced),
        Status::Skipped => Some(StatOutcome::Skipped),
        _ => None,
    }
}

/// A notification as its customer's feed shows it (unread); none for an internal one.
pub fn feed_entry(n: &Notification) -> Option<FeedEntry> {
    Some(FeedEntry {
        org_id: n.org_id.clone(),
        customer_id: customer_of(n)?.clone(),
        notification_id: n.id.clone(),
        notification_type: n.notification_type.to_string(),
        channel: n.channel,
        title: n.subject.clone(),
        body: n.body.clone(),
        status: n.status,
        read: false,
        created_at: n.created_at,
        updated_at: n.updated_at,
    })
}

/// What a change does to its customer's feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedChange {
    /// The notification enters the feed (it was just sent), unread.
    Entered(FeedEntry),
    /// An entry's status changed (`read` is what the notification knows: false).
    Status(FeedEntry),
}

/// A customer's feed shows what was sent to them: a notification enters it when it is sent
/// (one scheduled, waiting for quiet hours to end, retrying or withheld is not there yet, or
/// never), then follows its status. Internal notifications are never in it.
pub fn feed_change(change: &Change) -> Option<FeedChange> {
    let new = change.new.as_ref()?;
    new.sent_at?;
    if change.old.as_ref().is_some_and(|o| o.status == new.status) {
        return None;
    }
    let entry = feed_entry(new)?;
    let entered = change.old.as_ref().is_none_or(|o| o.sent_at.is_none());
    Some(if entered {
        FeedChange::Entered(entry)
    } else {
        FeedChange::Status(entry)
    })
}

/// Whether this is a notification as intake created it, due now: its `created` entry is
/// logged with its next change (a claim, a skip), which usually follows within the second. One
/// log item then holds both, where a creation logged alone would take an item (a write unit)
/// of its own whenever the stream puts the creation and the send in different batches.
fn creation_logged_later(n: &Notification) -> bool {
    n.revision == 0
        && n.status == Status::Pending
        && n.scheduled_for.is_none_or(|t| t <= n.created_at)
}

/// The view writes for one change. Inserting a scheduled notification logs `scheduled`; one
/// due now logs `created` with its next change (from that change's old image: the same entry
/// whichever batch writes it); every later status change logs the status entered.
pub fn project(change: &Change) -> Vec<ViewWrite> {
    let Some(new) = &change.new else {
        return Vec::new(); // removals: the views keep the history
    };
    let old_status = change.old.as_ref().map(|o| o.status);
    let mut writes = Vec::new();
    if let Some(old) = change.old.as_ref().filter(|o| creation_logged_later(o)) {
        writes.push(ViewWrite::Log(log_entry(old, "created")));
    }
    // engagement the provider reported for the first time
    if let Some(old) = &change.old {
        let firsts = [
            ("opened", old.opened_at, new.opened_at),
            ("clicked", old.clicked_at, new.clicked_at),
            ("complained", old.complained_at, new.complained_at),
        ];
        for (event, before, after) in firsts {
            if let (None, Some(at)) = (before, after) {
                let mut entry = log_entry(new, event);
                entry.at = at;
                writes.push(ViewWrite::Log(entry));
            }
        }
        if let (None, Some(at)) = (old.complained_at, new.complained_at) {
            writes.push(ViewWrite::Stat(stat_event(
                new,
                StatOutcome::Complained,
                at,
                None,
            )));
        }
    }
    if old_status == Some(new.status) {
        return writes; // not a status change (a sweep mark, a lease, engagement)
    }
    let event = match old_status {
        None if creation_logged_later(new) => None,
        None if new.scheduled_for.is_some_and(|t| t > new.created_at) => Some("scheduled"),
        None => Some("created"),
        Some(_) => Some(new.status.as_str()),
    };
    if let Some(event) = event {
        writes.push(ViewWrite::Log(log_entry(new, event)));
    }
    match feed_change(change) {
        Some(FeedChange::Entered(entry)) => writes.push(ViewWrite::FeedCreate(entry)),
        Some(FeedChange::Status(entry)) => writes.push(ViewWrite::FeedStatus {
            org_id: entry.org_id,
            customer_id: entry.customer_id,
            notification_id: entry.notification_id,
            created_at: entry.created_at,
            status: entry.status,
            updated_at: entry.updated_at,
        }),
        None => {}
    }
    if let Some(outcome) = stat_outcome(new.status) {
        let reached = match outcome {
            StatOutcome::Sent => new.sent_at,
            StatOutcome::Delivered => Some(new.updated_at),
            _ => None,
        };
        let latency_ms =
            reached.and_then(|at| u64::try_from((at - new.latency_from()).num_milliseconds()).ok());
        writes.push(ViewWrite::Stat(stat_event(
            new,
            outcome,
            new.updated_at,
            latency_ms,
        )));
    }
    match (
        old_status == Some(Status::Failed),
        new.status == Status::Failed,
    ) {
        (_, true) => writes.push(ViewWrite::DeadLetterPut(DeadLetter {
            org_id: new.org_id.clone(),
            notification_id: new.id.clone(),
            notification_type: new.notification_type.to_string(),
            channel: new.channel,
            recipient: new.recipient.label().to_string(),
            attempts: new.attempts,
            last_error: new.last_error.clone(),
            failed_at: new.failed_at.unwrap_or(new.updated_at),
        })),
        (true, false) => {
            if let Some(old) = &change.old {
                writes.push(ViewWrite::DeadLetterDelete {
                    org_id: old.org_id.clone(),
                    notification_id: old.id.clone(),
                    failed_at: old.failed_at.unwrap_or(old.updated_at),
                });
            }
        }
        (false, false) => {}
    }
    writes
}

/// The writes for a batch of changes. Log entries, feed creations and counted outcomes come
/// from every change; the state-like views (feed status, dead letters) take, per notification,
/// the write of its latest change that has one, so a batch delivered out of order still leaves
/// the latest state. A notification sent in the batch gets its feed entry with its latest
/// status at once, not a creation and then a status change (the views apply that status
/// instead when the entry exists already: a replay).
pub fn project_batch(changes: &[Change]) -> Vec<ViewWrite> {
    type Latest = BTreeMap<(OrgId, NotificationId), (DateTime<Utc>, ViewWrite)>;
    fn keep(latest: &mut Latest, n: &Notification, w: ViewWrite) {
        let key = (n.org_id.clone(), n.id.clone());
        if latest.get(&key).is_none_or(|(at, _)| n.updated_at >= *at) {
            latest.insert(key, (n.updated_at, w));
        }
    }
    let mut writes = Vec::new();
    let mut feed_status = Latest::new();
    let mut dead_letters = Latest::new();
    for c in changes {
        let Some(n) = &c.new else { continue };
        for w in project(c) {
            match w {
                ViewWrite::FeedStatus { .. } => keep(&mut feed_status, n, w),
                ViewWrite::DeadLetterPut(_) | ViewWrite::DeadLetterDelete { .. } => {
                    keep(&mut dead_letters, n, w)
                }
                other => writes.push(other),
            }
        }
    }
    for w in &mut writes {
        let ViewWrite::FeedCreate(entry) = w else {
            continue;
        };
        let key = (entry.org_id.clone(), entry.notification_id.clone());
        if let Some((
            _,
            ViewWrite::FeedStatus {
                status, updated_at, ..
            },
        )) = feed_status.remove(&key)
        {
            if updated_at >= entry.updated_at {
                entry.status = status;
                entry.updated_at = updated_at;
            }
        }
    }
    writes.extend(feed_status.into_values().map(|(_, w)| w));
    writes.extend(dead_letters.into_values().map(|(_, w)| w));
    writes
}

/// One notification counted for an outcome on the day of `at`.
fn stat_event(
    n: &Notification,
    outcome: StatOutcome,
    at: DateTime<Utc>,
    latency_ms: Option<u64>,
) -> StatEvent {
    StatEvent {
        key: StatKey {
            org_id: n.org_id.clone(),
            day: at.date_naive(),
            notification_type: n.notification_type.to_string(),
            channel: n.channel,
            outcome,
        },
        notification_id: n.id.clone(),
        sms_segments: n.sms_segments.unwrap_or(0),
        latency_ms,
    }
}

/// A day's counter as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatCount {
    pub key: StatKey,
    pub count: u64,
    /// The SMS segments of the notifications counted: on an `sent` SMS counter, the segments
    /// billed that day.
    #[serde(default)]
    pub sms_segments: u64,
    /// Sent and delivered: each notification's milliseconds from its creation to the outcome.
    #[serde(default)]
    pub latencies_ms: Vec<u64>,
}
