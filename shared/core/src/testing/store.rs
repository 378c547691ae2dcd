//! The notifications in memory: the store, its due index, delivery matching, and the life
//! cycle walked through a store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::{NotificationId, OrgId};
use crate::model::{Cause, Claim, Notification, Status};
use crate::ports::{
    ClaimOutcome, Created, DueEntry, DueIndex, DuePage, NotificationStore, PortError,
    UnreadableEntry,
};
use crate::record::IntakeRecord;

use super::{MAX_ITEM_BYTES, lock};

#[derive(Default)]
pub struct MemoryStore {
    pub notifications: Mutex<BTreeMap<(OrgId, NotificationId), Notification>>,
    pub intake: Mutex<BTreeMap<String, IntakeRecord>>,
    /// Events whose notifications the store fails to create, as an outage would.
    pub failing_events: Mutex<BTreeSet<String>>,
}

impl MemoryStore {
    pub fn all(&self) -> Vec<Notification> {
        lock(&self.notifications).values().cloned().collect()
    }
}

#[async_trait]
impl NotificationStore for MemoryStore {
    async fn create_all(&self, notifications: &[Notification]) -> Result<Vec<Created>, PortError> {
        let failing = lock(&self.failing_events);
        if notifications
            .iter()
            .any(|n| failing.contains(&n.source_event_id))
        {
            return Err(PortError::new("create notifications", "unavailable"));
        }
        drop(failing);
        let mut map = lock(&self.notifications);
        for n in notifications {
            let size = crate::json::size(n);
            if size > MAX_ITEM_BYTES {
                return Err(PortError::new("create notifications", "item too large"));
            }
        }
        let mut out = Vec::with_capacity(notifications.len());
        for n in notifications {
            let key = (n.org_id.clone(), n.id.clone());
            out.push(match map.get(&key) {
                Some(existing) => Created::Existing(Box::new(existing.clone())),
                None => Created::New,
            });
        }
        for (n, created) in notifications.iter().zip(&out) {
            if *created == Created::New {
                // as the table does: the HTML is the intake record's to keep
                let stored = Notification {
                    html_body: None,
                    ..n.clone()
                };
                map.insert((n.org_id.clone(), n.id.clone()), stored);
            }
        }
        Ok(out)
    }

    async fn get(
        &self,
        org: &OrgId,
        id: &NotificationId,
    ) -> Result<Option<Notification>, PortError> {
        Ok(lock(&self.notifications)
            .get(&(org.clone(), id.clone()))
            .cloned())
    }

    async fn claim(
        &self,
        org: &OrgId,
        id: &NotificationId,
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<ClaimOutcome, PortError> {
        let mut map = lock(&self.notifications);
        let Some(n) = map.get_mut(&(org.clone(), id.clone())) else {
            return Ok(ClaimOutcome::NotFound);
        };
        if !n.is_claimable(now) {
            return Ok(ClaimOutcome::NotClaimable(Box::new(n.clone())));
        }
        n.status = Status::Sending;
        n.revision += 1;
        n.claim = Some(Claim {
            token: token.to_string(),
            until: lease_until,
        });
        n.sweep_at = Some(lease_until);
        n.updated_at = now;
        Ok(ClaimOutcome::Claimed(Box::new(n.clone())))
    }

    async fn settle(&self, n: &Notification, token: &str) -> Result<bool, PortError> {
        let mut map = lock(&self.notifications);
        let Some(stored) = map.get_mut(&(n.org_id.clone(), n.id.clone())) else {
            return Ok(false);
        };
        if stored.claim.as_ref().is_none_or(|c| c.token != token)
            || !stored.status.can_become(n.status, Cause::Settle)
        {
            return Ok(false);
        }
        *stored = Notification {
            claim: None,
            revision: stored.revision + 1,
            ..n.clone()
        };
        Ok(true)
    }

    async fn reset_for_retry(
        &self,
        org: &OrgId,
        id: &NotificationId,
        now: DateTime<Utc>,
    ) -> Result<crate::ports::RetryOutcome, PortError> {
        use crate::ports::RetryOutcome;
        let mut map = lock(&self.notifications);
        let Some(n) = map.get_mut(&(org.clone(), id.clone())) else {
            return Ok(RetryOutcome::NotFound);
        };
        if !n.status.can_become(Status::Pending, Cause::RetryCommand) {
            return Ok(RetryOutcome::NotFailed(n.status));
        }
        n.status = Status::Pending;
        n.attempts = 0;
        n.last_error = None;
        n.error_code = None;
        n.failed_at = None;
        n.next_retry_at = None;
        n.sweep_at = None;
        n.updated_at = now;
        n.revision += 1;
        Ok(RetryOutcome::Reset(Box::new(n.clone())))
    }

    async fn park(
        &self,
        org: &OrgId,
        id: &NotificationId,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        if let Some(n) = lock(&self.notifications).get_mut(&(org.clone(), id.clone())) {
            if n.status.is_waiting() {
                n.sweep_at = Some(at);
            }
        }
        Ok(())
    }

    async fn record_intakes(&self, records: &[IntakeRecord]) -> Result<(), PortError> {
        let mut intake = lock(&self.intake);
        for record in records {
            intake.insert(record.event_id.clone(), record.clone());
        }
        Ok(())
    }

    async fn get_intake(
        &self,
        _: Option<&OrgId>,
        event_id: &str,
    ) -> Result<Option<IntakeRecord>, PortError> {
        Ok(lock(&self.intake).get(event_id).cloned())
    }

    async fn html_bodies(
        &self,
        wanted: &[crate::ports::HtmlOf],
    ) -> Result<BTreeMap<NotificationId, String>, PortError> {
        let records = lock(&self.intake);
        Ok(wanted
            .iter()
            .filter_map(|w| {
                let html = records
                    .get(&w.event_id)?
                    .html_bodies
                    .get(&w.notification_id)?;
                Some((w.notification_id.clone(), html.clone()))
            })
            .collect())
    }
}

#[async_trait]
impl DueIndex for MemoryStore {
    fn shards(&self) -> u32 {
        1
    }

    async fn due(
        &self,
        _shard: u32,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<DuePage, PortError> {
        let mut due: Vec<DueEntry> = lock(&self.notifications)
            .values()
            .filter_map(|n| {
                n.sweep_at.filter(|t| *t <= now).map(|sweep_at| DueEntry {
                    org_id: n.org_id.clone(),
                    notification_id: n.id.clone(),
                    sweep_at,
                })
            })
            .collect();
        due.sort_by_key(|e| e.sweep_at);
        due.truncate(limit);
        // typed in memory: nothing here is ever unreadable
        Ok(DuePage {
            due,
            unreadable: Vec::new(),
        })
    }

    async fn set_aside(&self, _entry: &UnreadableEntry) -> Result<(), PortError> {
        Ok(())
    }

    async fn mark_enqueued(&self, entry: &DueEntry) -> Result<(), PortError> {
        if let Some(n) = lock(&self.notifications)
            .get_mut(&(entry.org_id.clone(), entry.notification_id.clone()))
        {
            if n.sweep_at == Some(entry.sweep_at) {
                n.sweep_at = None;
            }
        }
        Ok(())
    }
}

/// Delivery matching and webhook memory over a [`MemoryStore`]'s notifications; counts the
/// calls, so tests can see a batch read in batches.
pub struct MemoryDeliveries {
    pub store: Arc<MemoryStore>,
    pub seen: Mutex<BTreeSet<(OrgId, crate::model::Provider, String)>>,
    pub calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl MemoryDeliveries {
    pub fn new(store: Arc<MemoryStore>) -> Arc<Self> {
        Arc::new(MemoryDeliveries {
            store,
            seen: Mutex::new(BTreeSet::new()),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    fn count(&self, call: &'static str) {
        *lock(&self.calls).entry(call).or_default() += 1;
    }

    /// How many times a method was called.
    pub fn calls(&self, call: &str) -> usize {
        lock(&self.calls).get(call).copied().unwrap_or(0)
    }
}

#[async_trait]
impl crate::ports::DeliveryStore for MemoryDeliveries {
    async fn find_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<(OrgId, NotificationId)>, PortError> {
        self.count("find_by_provider_id");
        Ok(lock(&self.store.notifications)
            .values()
            .find(|n| n.provider_message_id.as_deref() == Some(provider_message_id))
            .map(|n| (n.org_id.clone(), n.id.clone())))
    }

    async fn get_many(
        &self,
        org: &OrgId,
        ids: &[NotificationId],
    ) -> Result<Vec<Notification>, PortError> {
        self.count("get_many");
        let map = lock(&self.store.notifications);
        Ok(ids
            .iter()
            .filter_map(|id| map.get(&(org.clone(), id.clone())).cloned())
            .collect())
    }

    async fn apply_delivery(
        &self,
        n: &Notification,
        change: &crate::provider_events::DeliveryChange,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        self.count("apply_delivery");
        let mut map = lock(&self.store.notifications);
        let Some(stored) = map.get_mut(&(n.org_id.clone(), n.id.clone())) else {
            return Ok(false);
        };
        if stored.revision != n.revision
            || change
                .status
                .is_some_and(|to| !stored.status.can_become(to, Cause::ProviderEvent))
        {
            return Ok(false);
        }
        if let Some(status) = change.status {
            stored.status = status;
            if let Some(reason) = &change.reason {
                stored.last_error = Some(reason.clone());
                stored.error_code = change.code.clone();
            }
            if matches!(status, Status::Failed | Status::Bounced) {
                stored.failed_at = Some(at);
            }
        }
        if change.suppress.is_some() && stored.suppressed_at.is_none() {
            stored.suppressed_at = Some(at);
        }
        for (flag, field) in [
            (change.opened, &mut stored.opened_at),
            (change.clicked, &mut stored.clicked_at),
            (change.complained, &mut stored.complained_at),
        ] {
            if flag && field.is_none() {
                *field = Some(at);
            }
        }
        stored.updated_at = at;
        stored.revision += 1;
        Ok(true)
    }

    async fn seen(
        &self,
        org: &OrgId,
        provider: crate::model::Provider,
        event_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, PortError> {
        self.count("seen");
        let seen = lock(&self.seen);
        Ok(event_ids
            .iter()
            .filter(|id| seen.contains(&(org.clone(), provider, (*id).clone())))
            .cloned()
            .collect())
    }

    async fn mark_seen(
        &self,
        org: &OrgId,
        provider: crate::model::Provider,
        event_ids: &[String],
        _at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.count("mark_seen");
        let mut seen = lock(&self.seen);
        for id in event_ids {
            seen.insert((org.clone(), provider, id.clone()));
        }
        Ok(())
    }
}

/// Walks every pair of statuses through a store, by each cause's own operation (claim, settle,
/// a provider's report, the retry command), and answers the changes the store allowed. For a
/// store that keeps the life cycle, that is exactly [`crate::model::TRANSITIONS`].
pub async fn allowed_transitions(
    store: &dyn NotificationStore,
    deliveries: &dyn crate::ports::DeliveryStore,
    template: &Notification,
    now: DateTime<Utc>,
) -> Result<BTreeSet<(Status, Status, Cause)>, PortError> {
    let put = |from: Status, tag: &str| {
        let mut n = template.clone();
        n.id = crate::ids::NotificationId::parse(format!("{}_{}_{tag}", template.id, from))
            .unwrap_or_else(|_| template.id.clone());
        n.status = from;
        n.scheduled_for = None;
        n.next_retry_at = None;
        // held by a dispatcher whose lease ran out
        n.claim = Some(Claim {
            token: "held".into(),
            until: now - chrono::Duration::seconds(1),
        });
        n
    };
    let mut allowed = BTreeSet::new();
    for from in Status::ALL {
        let n = put(from, "claim");
        store.create(&n).await?;
        let lease = now + chrono::Duration::seconds(60);
        if let ClaimOutcome::Claimed(_) = store.claim(&n.org_id, &n.id, "new", now, lease).await? {
            allowed.insert((from, Status::Sending, Cause::Claim));
        }
        let n = put(from, "retry");
        store.create(&n).await?;
        if let crate::ports::RetryOutcome::Reset(_) =
            store.reset_for_retry(&n.org_id, &n.id, now).await?
        {
            allowed.insert((from, Status::Pending, Cause::RetryCommand));
        }
        for to in Status::ALL {
            let n = put(from, &format!("settle_{to}"));
            store.create(&n).await?;
            let mut settled = n.clone();
            settled.status = to;
            if store.settle(&settled, "held").await? {
                allowed.insert((from, to, Cause::Settle));
            }
            let n = put(from, &format!("report_{to}"));
            store.create(&n).await?;
            let change = crate::provider_events::DeliveryChange {
                status: Some(to),
                ..Default::default()
            };
            if deliveries.apply_delivery(&n, &change, now).await? {
                allowed.insert((from, to, Cause::ProviderEvent));
            }
        }
    }
    Ok(allowed)
}

/// The life cycle's table as a set, to compare with what a store allowed.
pub fn transition_table() -> BTreeSet<(Status, Status, Cause)> {
    crate::model::TRANSITIONS.iter().copied().collect()
}
