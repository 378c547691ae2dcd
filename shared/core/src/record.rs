//! What became of an event: the account that nothing entered Herald and vanished.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{NotificationId, OrgId};
use crate::model::Channel;

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Notified,
    Skipped,
    Rejected,
    DirectoryUpdated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Notified => "notified",
            Outcome::Skipped => "skipped",
            Outcome::Rejected => "rejected",
            Outcome::DirectoryUpdated => "directory_updated",
        }
    }
}

/// A channel that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSkip {
    pub channel: Channel,
    pub reason: String,
}

/// What became of one event: the account that nothing entered Herald and vanished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntakeRecord {
    pub event_id: String,
    /// `None` when the event was rejected for lacking a valid organization.
    pub org_id: Option<OrgId>,
    pub detail_type: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub notifications: Vec<NotificationId>,
    #[serde(default)]
    pub skipped: Vec<ChannelSkip>,
    #[serde(with = "crate::time")]
    pub received_at: DateTime<Utc>,
    /// The HTML alternative of each email notification of the event that has one (see
    /// [`crate::model::Notification::has_html`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub html_bodies: BTreeMap<NotificationId, String>,
}
