//! The in-app feed in real time: a customer's open WebSocket connections, and the message
//! each of them is sent when the customer's feed changes.
//!
//! The projector broadcasts the changes the notifications table's stream brings (an entry
//! added, its status changed); the api broadcasts the reads it records. Either way one
//! [`Realtime::broadcast`] reads the connections of all the customers concerned at once, the
//! unread count of each one listening, and posts to every connection concurrently: a
//! connection that went away is forgotten, and a slow or dead one never holds up the others
//! nor fails the caller.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::ids::{CustomerId, OrgId};
use crate::ports::{Connections, Posted, Pusher, Views};
use crate::projection::{Change, FeedChange, FeedEntry, feed_change};

/// A connection is forgotten this long after it opened, if its `$disconnect` was lost (API
/// Gateway delivers that at most once, and not always): a little past the two hours API
/// Gateway keeps a connection open at most.
pub const CONNECTION_TTL: chrono::Duration = chrono::Duration::minutes(125);

/// How many posts a broadcast has in flight at once.
pub const POSTS_IN_FLIGHT: usize = 16;

/// How many listening customers' unread counts a broadcast reads at once.
pub const LOOKUPS_IN_FLIGHT: usize = 16;

/// A connection and the messages it is owed, in order.
type Post = (Listener, ConnectionId, Vec<String>);

/// An API Gateway connection id (`L0SM9cOFvHcCIhw=`): base64 characters, at most 128.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

impl ConnectionId {
    pub fn parse(value: impl Into<String>) -> Result<Self, crate::ids::InvalidValue> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= 128
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'));
        if ok {
            Ok(ConnectionId(value))
        } else {
            Err(crate::ids::InvalidValue(
                "connection_id must be 1 to 128 base64 characters".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConnectionId {
    type Error = crate::ids::InvalidValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        ConnectionId::parse(value)
    }
}

impl From<ConnectionId> for String {
    fn from(id: ConnectionId) -> String {
        id.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose feed a connection listens to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Listener {
    pub org_id: OrgId,
    pub customer_id: CustomerId,
}

/// An open connection, as `$connect` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    pub listener: Listener,
    #[serde(with = "crate::time")]
    pub connected_at: DateTime<Utc>,
}

impl Connection {
    /// When the table may forget it (its TTL).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.connected_at + CONNECTION_TTL
    }
}

/// A change of a customer's feed, as their connections are told of it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    Created(FeedEntry),
    /// The entry's status changed. Its `read` is false whatever the feed shows: reads are
    /// final and come as [`FeedEvent::Read`], so a client keeps an entry it saw read, read.
    Updated(FeedEntry),
    /// One entry read, or every entry (`None`, read-all).
    Read {
        listener: Listener,
        entry: Option<FeedEntry>,
    },
}

impl FeedEvent {
    pub fn listener(&self) -> Listener {
        match self {
            FeedEvent::Created(e) | FeedEvent::Updated(e) => Listener {
                org_id: e.org_id.clone(),
                customer_id: e.customer_id.clone(),
            },
            FeedEvent::Read { listener, .. } => listener.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            FeedEvent::Created(_) => "notification.created",
            FeedEvent::Updated(_) => "notification.updated",
            FeedEvent::Read { .. } => "feed.read",
        }
    }

    fn entry(&self) -> Option<&FeedEntry> {
        match self {
            FeedEvent::Created(e) | FeedEvent::Updated(e) => Some(e),
            FeedEvent::Read { entry, .. } => entry.as_ref(),
        }
    }

    /// The message a connection receives: `{"type", "notification", "unread"}`.
    pub fn message(&self, unread: u64) -> String {
        #[derive(Serialize)]
        struct Message<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            notification: Option<&'a FeedEntry>,
            unread: u64,
        }
        serde_json::to_string(&Message {
            kind: self.kind(),
            notification: self.entry(),
            unread,
        })
        .unwrap_or_default()
    }
}

/// The feed events of a batch of changes, in the stream's order.
pub fn feed_events(changes: &[Change]) -> Vec<FeedEvent> {
    changes
        .iter()
        .filter_map(feed_change)
        .map(|c| match c {
            FeedChange::Entered(e) => FeedEvent::Created(e),
            FeedChange::Status(e) => FeedEvent::Updated(e),
        })
        .collect()
}

/// What a broadcast did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Broadcasted {
    /// Messages a connection accepted.
    pub posted: usize,
    /// Connections found gone, and forgotten.
    pub gone: usize,
    /// Posts or look-ups that failed (the message is lost for that connection: the client
    /// reloads its feed when it reconnects).
    pub failed: usize,
}

/// The open connections and the way to them: what broadcasts feed events.
#[derive(Clone)]
pub struct Realtime {
    pub connections: Arc<dyn Connections>,
    pub pusher: Arc<dyn Pusher>,
}

impl Realtime {
    /// Posts each event to its customer's connections, each connection's messages in order,
    /// with the customer's unread count from `views`. Never fails: what could not be posted
    /// is counted and logged by ids.
    pub async fn broadcast(&self, views: &dyn Views, events: &[FeedEvent]) -> Broadcasted {
        if events.is_empty() {
            return Broadcasted::default();
        }
        // each customer's events, by their place in the batch
        let mut by_listener: BTreeMap<Listener, Vec<usize>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            by_listener.entry(e.listener()).or_default().push(i);
        }
        let mut report = Broadcasted::default();
        let customers: Vec<Listener> = by_listener.keys().cloned().collect();
        let mut open = match self.connections.listening(&customers).await {
            Ok(open) => open,
            Err(e) => {
                warn!(customers = customers.len(), error = %e, "connections not read");
                report.failed += customers.len();
                return report;
            }
        };
        // the unread counts of the customers listening, read concurrently
        let listening = by_listener
            .into_iter()
            .filter_map(|(listener, owed)| Some((open.remove(&listener)?, listener, owed)));
        let addressed: Vec<Result<Vec<Post>, ()>> = futures::stream::iter(listening)
            .map(|(ids, listener, owed)| {
                self.address(
                    views,
                    listener,
                    ids,
                    owed.into_iter().map(move |i| &events[i]),
                )
            })
            .buffer_unordered(LOOKUPS_IN_FLIGHT)
            .collect()
            .await;
        let mut posts = Vec::new();
        for a in addressed {
            match a {
                Ok(p) => posts.extend(p),
                Err(()) => report.failed += 1,
            }
        }
        self.post(posts, report).await
    }

    /// Posts one customer's event with the unread count the caller has just read (the api,
    /// after a read it answers with that count).
    pub async fn tell(&self, event: &FeedEvent, unread: u64) -> Broadcasted {
        let listener = event.listener();
        let ids = match self
            .connections
            .listening(std::slice::from_ref(&listener))
            .await
        {
            Ok(mut listening) => listening.remove(&listener).unwrap_or_default(),
            Err(e) => {
                warn!(org_id = %listener.org_id, customer_id = %listener.customer_id, error = %e, "connections not read");
                return Broadcasted {
                    failed: 1,
                    ..Broadcasted::default()
                };
            }
        };
        let message = event.message(unread);
        let posts = ids
            .into_iter()
            .map(|id| (listener.clone(), id, vec![message.clone()]))
            .collect();
        self.post(posts, Broadcasted::default()).await
    }

    /// Makes the posts, adding what came of them to `report`.
    async fn post(&self, posts: Vec<Post>, mut report: Broadcasted) -> Broadcasted {
        let outcomes: Vec<Broadcasted> = futures::stream::iter(posts)
            .map(|(listener, id, messages)| self.post_all(listener, id, messages))
            .buffer_unordered(POSTS_IN_FLIGHT)
            .collect()
            .await;
        for o in outcomes {
            report.posted += o.posted;
            report.gone += o.gone;
            report.failed += o.failed;
        }
        report
    }

    /// The posts one customer's events make: each of their connections with every message,
    /// which carries their unread count.
    async fn address(
        &self,
        views: &dyn Views,
        listener: Listener,
        ids: Vec<ConnectionId>,
        events: impl Iterator<Item = &FeedEvent>,
    ) -> Result<Vec<Post>, ()> {
        let unread = match views.unread(&listener.org_id, &listener.customer_id).await {
            Ok(n) => n,
            Err(e) => {
                warn!(org_id = %listener.org_id, customer_id = %listener.customer_id, error = %e, "unread count not read");
                return Err(());
            }
        };
        let messages: Vec<String> = events.map(|e| e.message(unread)).collect();
        Ok(ids
            .into_iter()
            .map(|id| (listener.clone(), id, messages.clone()))
            .collect())
    }

    async fn post_all(
        &self,
        listener: Listener,
        id: ConnectionId,
        messages: Vec<String>,
    ) -> Broadcasted {
        let mut report = Broadcasted::default();
        for message in messages {
            match self.pusher.post(&id, message.as_bytes()).await {
                Ok(Posted::Delivered) => report.posted += 1,
                Ok(Posted::Gone) => {
                    report.gone += 1;
                    if let Err(e) = self.connections.remove(&listener, &id).await {
                        warn!(connection_id = %id, error = %e, "a gone connection was not forgotten");
                    }
                    break;
                }
                Err(e) => {
                    warn!(connection_id = %id, error = %e, "a message was not posted");
                    report.failed += 1;
                }
            }
        }
        report
    }
}
