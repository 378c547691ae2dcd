//! The feed's readers in memory: unread counts, WebSocket connections and the posts to them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::{CustomerId, NotificationId, OrgId};
use crate::ports::PortError;

use super::lock;

/// Lets the executor run the other tasks once before this one goes on.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// The views, as far as push and the broadcasts need them: each customer's unread count,
/// and how many counts were read, how many at most at once.
#[derive(Default)]
pub struct MemoryUnread {
    pub unread: Mutex<BTreeMap<(OrgId, CustomerId), u64>>,
    pub reads: std::sync::atomic::AtomicUsize,
    pub reading: std::sync::atomic::AtomicUsize,
    pub most_reading: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl crate::ports::Views for MemoryUnread {
    async fn apply(&self, _: &[crate::projection::ViewWrite]) -> Result<(), PortError> {
        Ok(())
    }

    async fn log(
        &self,
        _: &OrgId,
        _: &NotificationId,
    ) -> Result<Vec<crate::projection::LogEntry>, PortError> {
        Ok(Vec::new())
    }

    async fn feed(
        &self,
        _: &OrgId,
        _: &CustomerId,
        _: usize,
    ) -> Result<Vec<crate::projection::FeedEntry>, PortError> {
        Ok(Vec::new())
    }

    async fn unread(&self, org: &OrgId, customer: &CustomerId) -> Result<u64, PortError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reads.fetch_add(1, SeqCst);
        let now = self.reading.fetch_add(1, SeqCst) + 1;
        self.most_reading.fetch_max(now, SeqCst);
        // a read takes a while: the caller's other reads may start meanwhile
        for _ in 0..4 {
            yield_now().await;
        }
        self.reading.fetch_sub(1, SeqCst);
        Ok(lock(&self.unread)
            .get(&(org.clone(), customer.clone()))
            .copied()
            .unwrap_or(0))
    }

    async fn feed_page(
        &self,
        _: &OrgId,
        _: &CustomerId,
        _: usize,
        _: Option<&str>,
    ) -> Result<(Vec<crate::projection::FeedEntry>, Option<String>), crate::ports::PageError> {
        Ok((Vec::new(), None))
    }

    async fn mark_read(
        &self,
        _: &OrgId,
        _: &CustomerId,
        _: DateTime<Utc>,
        _: &NotificationId,
    ) -> Result<bool, PortError> {
        Ok(false)
    }

    async fn stats(
        &self,
        _: &OrgId,
        _: chrono::NaiveDate,
    ) -> Result<Vec<crate::projection::StatCount>, PortError> {
        Ok(Vec::new())
    }

    async fn dead_letters(
        &self,
        _: &OrgId,
        _: usize,
    ) -> Result<Vec<crate::projection::DeadLetter>, PortError> {
        Ok(Vec::new())
    }
}

/// Connections in memory, by listener.
#[derive(Default)]
pub struct MemoryConnections {
    pub open: Mutex<BTreeMap<crate::realtime::Listener, BTreeSet<crate::realtime::ConnectionId>>>,
    /// How many times the connections were read.
    pub reads: std::sync::atomic::AtomicUsize,
}

impl MemoryConnections {
    pub fn of(&self, listener: &crate::realtime::Listener) -> Vec<crate::realtime::ConnectionId> {
        lock(&self.open)
            .get(listener)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl crate::ports::Connections for MemoryConnections {
    async fn add(&self, c: &crate::realtime::Connection) -> Result<(), PortError> {
        lock(&self.open)
            .entry(c.listener.clone())
            .or_default()
            .insert(c.id.clone());
        Ok(())
    }

    async fn remove(
        &self,
        listener: &crate::realtime::Listener,
        id: &crate::realtime::ConnectionId,
    ) -> Result<(), PortError> {
        if let Some(s) = lock(&self.open).get_mut(listener) {
            s.remove(id);
        }
        Ok(())
    }

    async fn listening(
        &self,
        listeners: &[crate::realtime::Listener],
    ) -> Result<BTreeMap<crate::realtime::Listener, Vec<crate::realtime::ConnectionId>>, PortError>
    {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(listeners
            .iter()
            .map(|l| (l.clone(), self.of(l)))
            .filter(|(_, ids)| !ids.is_empty())
            .collect())
    }
}

/// A pusher that keeps what it was asked to post; connections marked gone answer
/// [`crate::ports::Posted::Gone`], those marked failing an error.
#[derive(Default)]
pub struct MemoryPusher {
    pub posted: Mutex<Vec<(crate::realtime::ConnectionId, String)>>,
    pub gone: Mutex<BTreeSet<crate::realtime::ConnectionId>>,
    pub failing: Mutex<BTreeSet<crate::realtime::ConnectionId>>,
}

impl MemoryPusher {
    /// The messages a connection received, parsed.
    pub fn received(&self, id: &crate::realtime::ConnectionId) -> Vec<serde_json::Value> {
        lock(&self.posted)
            .iter()
            .filter(|(to, _)| to == id)
            .filter_map(|(_, m)| serde_json::from_str(m).ok())
            .collect()
    }
}

#[async_trait]
impl crate::ports::Pusher for MemoryPusher {
    async fn post(
        &self,
        id: &crate::realtime::ConnectionId,
        message: &[u8],
    ) -> Result<crate::ports::Posted, PortError> {
        if lock(&self.gone).contains(id) {
            return Ok(crate::ports::Posted::Gone);
        }
        if lock(&self.failing).contains(id) {
            return Err(PortError::new("post_to_connection", "LimitExceeded"));
        }
        lock(&self.posted).push((id.clone(), String::from_utf8_lossy(message).into_owned()));
        Ok(crate::ports::Posted::Delivered)
    }
}
