//! In-memory ports for unit tests of the domain. Not for production: no persistence, no
//! durability, one process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::consent::SuppressionKey;
use crate::directory::{CustomerRecord, OrgSettings, Versioned};
use crate::ids::{CustomerId, NotificationId, OrgId};
use crate::model::{Cause, Channel, Claim, Notification, Status};
use crate::ports::{
    ChannelSender, ClaimOutcome, Clock, Created, Directory, DispatchQueue, DueEntry, DueIndex,
    DuePage, Enqueue, NotificationStore, PortError, Receipt, SendError, Snapshot, SnapshotRequest,
    TemplateStore, UnreadableEntry, Write,
};
use crate::record::IntakeRecord;
use crate::template::org::{OrgTemplate, OrgType, Stored};

/// DynamoDB's item size limit, which the memory store enforces the same way.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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

#[derive(Default)]
pub struct MemoryDirectory {
    pub customers: Mutex<BTreeMap<(OrgId, CustomerId), Versioned<CustomerRecord>>>,
    pub orgs: Mutex<BTreeMap<OrgId, Versioned<OrgSettings>>>,
    pub suppressions: Mutex<BTreeSet<(OrgId, SuppressionKey)>>,
    /// How many snapshot reads were made (each one request to the real directory).
    pub snapshots: std::sync::atomic::AtomicUsize,
    pub identities: Mutex<BTreeMap<crate::identity::SenderIdentity, OrgId>>,
}

fn guarded_put<K: Ord, V>(
    map: &mut BTreeMap<K, Versioned<V>>,
    key: K,
    value: V,
    expected: Option<u64>,
) -> Write {
    let current = map.get(&key).map(|v| v.version);
    if current != expected {
        return Write::Conflict;
    }
    let version = current.map_or(1, |v| v + 1);
    map.insert(key, Versioned { value, version });
    Write::Done
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn snapshot(&self, request: &SnapshotRequest) -> Result<Snapshot, PortError> {
        self.snapshots
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let customers = lock(&self.customers);
        let orgs = lock(&self.orgs);
        let suppressions = lock(&self.suppressions);
        Ok(Snapshot {
            customers: request
                .customers
                .iter()
                .filter_map(|k| customers.get(k).map(|v| (k.clone(), v.value.clone())))
                .collect(),
            orgs: request
                .orgs
                .iter()
                .filter_map(|o| orgs.get(o).map(|v| (o.clone(), v.value.clone())))
                .collect(),
            suppressed: request
                .suppression
                .iter()
                .filter(|k| suppressions.contains(k))
                .cloned()
                .collect(),
        })
    }

    async fn get_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
    ) -> Result<Option<Versioned<CustomerRecord>>, PortError> {
        Ok(lock(&self.customers)
            .get(&(org.clone(), customer.clone()))
            .cloned())
    }

    async fn put_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        record: &CustomerRecord,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        Ok(guarded_put(
            &mut lock(&self.customers),
            (org.clone(), customer.clone()),
            record.clone(),
            expected,
        ))
    }

    async fn get_org_settings(
        &self,
        org: &OrgId,
    ) -> Result<Option<Versioned<OrgSettings>>, PortError> {
        Ok(lock(&self.orgs).get(org).cloned())
    }

    async fn put_org_settings(
        &self,
        org: &OrgId,
        settings: &OrgSettings,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        Ok(guarded_put(
            &mut lock(&self.orgs),
            org.clone(),
            settings.clone(),
            expected,
        ))
    }

    async fn suppressed(
        &self,
        org: &OrgId,
        keys: &[SuppressionKey],
    ) -> Result<BTreeSet<SuppressionKey>, PortError> {
        let set = lock(&self.suppressions);
        Ok(keys
            .iter()
            .filter(|k| set.contains(&(org.clone(), (*k).clone())))
            .cloned()
            .collect())
    }

    async fn suppress(
        &self,
        org: &OrgId,
        key: &SuppressionKey,
        _reason: &str,
        _at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        lock(&self.suppressions).insert((org.clone(), key.clone()));
        Ok(())
    }

    async fn identity_owners(
        &self,
        identities: &[crate::identity::SenderIdentity],
    ) -> Result<BTreeMap<crate::identity::SenderIdentity, OrgId>, PortError> {
        let owners = lock(&self.identities);
        Ok(identities
            .iter()
            .filter_map(|i| owners.get(i).map(|o| (i.clone(), o.clone())))
            .collect())
    }

    async fn claim_identity(
        &self,
        org: &OrgId,
        identity: &crate::identity::SenderIdentity,
        _at: DateTime<Utc>,
    ) -> Result<OrgId, PortError> {
        Ok(lock(&self.identities)
            .entry(identity.clone())
            .or_insert_with(|| org.clone())
            .clone())
    }
}

#[derive(Default)]
pub struct MemoryQueue {
    pub messages: Mutex<Vec<Enqueue>>,
}

impl MemoryQueue {
    pub fn take(&self) -> Vec<Enqueue> {
        std::mem::take(&mut *lock(&self.messages))
    }
}

#[async_trait]
impl DispatchQueue for MemoryQueue {
    async fn enqueue(&self, messages: &[Enqueue]) -> Result<(), PortError> {
        lock(&self.messages).extend_from_slice(messages);
        Ok(())
    }
}

/// What a scripted sender does on each call.
#[derive(Debug, Clone)]
pub enum Script {
    Accept,
    /// Accepted, with an answer that could not be read.
    AcceptWithoutId,
    Fail(SendError),
    Panic,
}

/// A sender that records what it was asked to send and answers as scripted (the last answer repeats).
pub struct ScriptedSender {
    pub script: Mutex<Vec<Script>>,
    pub sent: Mutex<Vec<Notification>>,
}

impl ScriptedSender {
    pub fn new(script: Vec<Script>) -> Arc<Self> {
        Arc::new(ScriptedSender {
            script: Mutex::new(script),
            sent: Mutex::new(Vec::new()),
        })
    }

    pub fn accepting() -> Arc<Self> {
        Self::new(vec![Script::Accept])
    }

    pub fn calls(&self) -> usize {
        lock(&self.sent).len()
    }
}

#[async_trait]
impl ChannelSender for ScriptedSender {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        let step = {
            let mut script = lock(&self.script);
            if script.len() > 1 {
                script.remove(0)
            } else {
                script.first().cloned().unwrap_or(Script::Accept)
            }
        };
        lock(&self.sent).push(n.clone());
        match step {
            Script::Accept => Ok(Receipt::with_id(format!("msg-{}", lock(&self.sent).len()))),
            Script::AcceptWithoutId => Ok(Receipt::without_id()),
            Script::Fail(e) => Err(e),
            Script::Panic => panic!("scripted sender panic"),
        }
    }
}

/// Chance that always draws the same number.
pub struct FixedChance(pub f64);

impl crate::ports::Chance for FixedChance {
    fn fraction(&self) -> f64 {
        self.0
    }
}

/// A clock that stands where it is told.
pub struct FixedClock(pub Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(FixedClock(Mutex::new(t)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *lock(&self.0) = t;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.0)
    }
}

/// Provider settings in memory, versioned like the secret they stand for. A test may have
/// another writer save something just before the next write, to see a conflict handled.
#[derive(Default)]
pub struct MemoryProviderSettings {
    stored: Mutex<BTreeMap<OrgId, (u64, crate::providers::OrgProviders)>>,
    interleave: Mutex<Option<(OrgId, crate::model::Provider, serde_json::Value)>>,
    conflicts: Mutex<usize>,
    reads: Mutex<usize>,
}

impl MemoryProviderSettings {
    /// Before the next write, another writer sets this provider's settings.
    pub fn before_next_write(
        &self,
        org: OrgId,
        provider: crate::model::Provider,
        value: serde_json::Value,
    ) {
        *lock(&self.interleave) = Some((org, provider, value));
    }

    pub fn set(&self, org: &OrgId, providers: crate::providers::OrgProviders) {
        let mut stored = lock(&self.stored);
        let version = stored.get(org).map_or(1, |(v, _)| v + 1);
        stored.insert(org.clone(), (version, providers));
    }

    /// How many writes found that someone else wrote since their read.
    pub fn conflicts(&self) -> usize {
        *lock(&self.conflicts)
    }

    /// How many times the settings were read from the store.
    pub fn reads(&self) -> usize {
        *lock(&self.reads)
    }
}

#[async_trait]
impl crate::ports::ProviderSettings for MemoryProviderSettings {
    async fn get(&self, org: &OrgId) -> Result<crate::providers::OrgProviders, PortError> {
        Ok(self.read(org).await?.providers)
    }

    async fn refresh(&self, org: &OrgId) -> Result<crate::providers::OrgProviders, PortError> {
        self.get(org).await
    }

    async fn read(&self, org: &OrgId) -> Result<crate::providers::StoredProviders, PortError> {
        *lock(&self.reads) += 1;
        Ok(match lock(&self.stored).get(org) {
            Some((version, providers)) => crate::providers::StoredProviders {
                providers: providers.clone(),
                version: Some(version.to_string()),
            },
            None => crate::providers::StoredProviders::default(),
        })
    }

    async fn write(
        &self,
        org: &OrgId,
        providers: &crate::providers::OrgProviders,
        expected: Option<&str>,
    ) -> Result<Write, PortError> {
        if let Some((other_org, provider, value)) = lock(&self.interleave).take() {
            let mut stored = lock(&self.stored);
            let (version, mut current) = stored.get(&other_org).cloned().unwrap_or_default();
            current
                .set(provider, value)
                .map_err(|e| PortError::new("memory settings", e.0))?;
            stored.insert(other_org, (version + 1, current));
        }
        let mut stored = lock(&self.stored);
        let current = stored.get(org).map(|(v, _)| v.to_string());
        if current.as_deref() != expected {
            *lock(&self.conflicts) += 1;
            return Ok(Write::Conflict);
        }
        let version = stored.get(org).map_or(1, |(v, _)| v + 1);
        stored.insert(org.clone(), (version, providers.clone()));
        Ok(Write::Done)
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

/// The bus, in memory: what was published, and the event ids it is told to refuse.
#[derive(Default)]
pub struct MemoryEventPublisher {
    published: Mutex<Vec<crate::lifecycle_events::LifecycleEvent>>,
    refused: Mutex<BTreeSet<String>>,
}

impl MemoryEventPublisher {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every event published so far, in order (a republished one twice).
    pub fn published(&self) -> Vec<crate::lifecycle_events::LifecycleEvent> {
        lock(&self.published).clone()
    }

    /// Refuses the event with this id from now on (until [`MemoryEventPublisher::accept_all`]).
    pub fn refuse(&self, event_id: &str) {
        lock(&self.refused).insert(event_id.to_string());
    }

    pub fn accept_all(&self) {
        lock(&self.refused).clear();
    }
}

#[async_trait]
impl crate::ports::EventPublisher for MemoryEventPublisher {
    async fn publish(
        &self,
        events: &[crate::lifecycle_events::LifecycleEvent],
    ) -> Result<Vec<usize>, PortError> {
        let refused = lock(&self.refused).clone();
        let mut failed = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if refused.contains(&e.detail.event_id) {
                failed.push(i);
            } else {
                lock(&self.published).push(e.clone());
            }
        }
        Ok(failed)
    }
}

/// One endpoint of [`MemoryPushEndpoints`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEndpoint {
    pub application_arn: String,
    pub token: String,
    pub enabled: bool,
    /// The messages published to it, as given.
    pub messages: Vec<String>,
}

/// Push platform endpoints in memory: `create_endpoint` is idempotent for a token, as SNS's
/// is; an endpoint can be disabled, and the next publishes can be refused as scripted.
#[derive(Default)]
pub struct MemoryPushEndpoints {
    pub endpoints: Mutex<BTreeMap<String, MemoryEndpoint>>,
    /// Refusals for the next publishes, to any endpoint, in order.
    pub refusals: Mutex<Vec<crate::ports::PushRefusal>>,
    pub deleted: Mutex<Vec<String>>,
}

impl MemoryPushEndpoints {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn disable(&self, endpoint_arn: &str) {
        if let Some(e) = lock(&self.endpoints).get_mut(endpoint_arn) {
            e.enabled = false;
        }
    }

    pub fn refuse_next(&self, refusal: crate::ports::PushRefusal) {
        lock(&self.refusals).push(refusal);
    }

    /// Every endpoint's ARN with the messages published to it.
    pub fn published(&self) -> BTreeMap<String, Vec<String>> {
        lock(&self.endpoints)
            .iter()
            .map(|(arn, e)| (arn.clone(), e.messages.clone()))
            .collect()
    }
}

#[async_trait]
impl crate::ports::PushEndpoints for MemoryPushEndpoints {
    async fn create_endpoint(
        &self,
        application_arn: &str,
        token: &str,
    ) -> Result<String, crate::ports::PushRefusal> {
        let mut endpoints = lock(&self.endpoints);
        if let Some((arn, _)) = endpoints
            .iter()
            .find(|(_, e)| e.application_arn == application_arn && e.token == token)
        {
            return Ok(arn.clone());
        }
        let platform = application_arn
            .split_once(":app/")
            .map_or("app", |(_, rest)| rest);
        let arn = format!(
            "arn:aws:sns:eu-west-1:123456789012:endpoint/{platform}/ep{}",
            endpoints.len() + 1
        );
        endpoints.insert(
            arn.clone(),
            MemoryEndpoint {
                application_arn: application_arn.to_string(),
                token: token.to_string(),
                enabled: true,
                messages: Vec::new(),
            },
        );
        Ok(arn)
    }

    async fn delete_endpoint(&self, endpoint_arn: &str) -> Result<(), PortError> {
        lock(&self.endpoints).remove(endpoint_arn);
        lock(&self.deleted).push(endpoint_arn.to_string());
        Ok(())
    }

    async fn publish(
        &self,
        endpoint_arn: &str,
        message: &str,
    ) -> Result<Option<String>, crate::ports::PushRefusal> {
        {
            let mut refusals = lock(&self.refusals);
            if !refusals.is_empty() {
                return Err(refusals.remove(0));
            }
        }
        let mut endpoints = lock(&self.endpoints);
        let Some(endpoint) = endpoints.get_mut(endpoint_arn) else {
            return Err(crate::ports::PushRefusal::Hard {
                reason: "no such endpoint".into(),
                code: Some("NotFound".into()),
            });
        };
        if !endpoint.enabled {
            return Err(crate::ports::PushRefusal::EndpointDisabled);
        }
        endpoint.messages.push(message.to_string());
        Ok(Some(format!(
            "msg-{}-{}",
            crate::push::endpoint_id(endpoint_arn),
            endpoint.messages.len()
        )))
    }
}

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

/// Platform applications in memory: by ARN, the platform's name and its attributes.
#[derive(Default)]
pub struct MemoryPlatformApplications {
    pub applications: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

#[async_trait]
impl crate::ports::PlatformApplications for MemoryPlatformApplications {
    async fn put(
        &self,
        existing: Option<&str>,
        name: &str,
        platform: crate::push::SnsPlatform,
        attributes: &BTreeMap<String, String>,
    ) -> Result<String, PortError> {
        let arn = match existing
            .filter(|a| crate::push::SnsPlatform::of_application(a) == Some(platform))
        {
            Some(arn) => arn.to_string(),
            None => format!(
                "arn:aws:sns:eu-west-1:123456789012:app/{}/{name}",
                platform.key()
            ),
        };
        lock(&self.applications).insert(arn.clone(), attributes.clone());
        Ok(arn)
    }
}

/// Circuit breakers in memory, applying failures as every store does.
#[derive(Default)]
pub struct MemoryBreakers {
    states: Mutex<BTreeMap<(OrgId, crate::model::DeliveryService), crate::breaker::BreakerState>>,
    /// Reads of the store (the dispatchers' cache misses).
    pub reads: std::sync::atomic::AtomicUsize,
}

impl MemoryBreakers {
    pub fn state(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
    ) -> crate::breaker::BreakerState {
        lock(&self.states)
            .get(&(org.clone(), provider))
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl crate::ports::Breakers for MemoryBreakers {
    async fn read(
        &self,
        keys: &[(OrgId, crate::model::DeliveryService)],
    ) -> Result<
        BTreeMap<(OrgId, crate::model::DeliveryService), crate::breaker::BreakerState>,
        PortError,
    > {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let states = lock(&self.states);
        Ok(keys
            .iter()
            .filter_map(|k| states.get(k).map(|s| (k.clone(), s.clone())))
            .collect())
    }

    async fn failure(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
        now: DateTime<Utc>,
        policy: &crate::breaker::BreakerPolicy,
    ) -> Result<crate::breaker::Recorded, PortError> {
        let mut states = lock(&self.states);
        let key = (org.clone(), provider);
        let recorded = crate::breaker::after_failure(
            states.get(&key).cloned().unwrap_or_default(),
            now,
            policy,
        );
        states.insert(key, recorded.state.clone());
        Ok(recorded)
    }

    async fn take_probe(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<crate::breaker::BreakerState>, PortError> {
        let mut states = lock(&self.states);
        let Some(state) = states.get_mut(&(org.clone(), provider)) else {
            return Ok(None);
        };
        if state.gate(now) != crate::breaker::Gate::HalfOpen {
            return Ok(None);
        }
        state.probe_until = Some(lease_until);
        Ok(Some(state.clone()))
    }

    async fn close(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
    ) -> Result<(), PortError> {
        lock(&self.states).remove(&(org.clone(), provider));
        Ok(())
    }
}

/// Rate-limit buckets in memory, counted as every store counts them.
#[derive(Default)]
pub struct MemoryRateLimiter {
    buckets: Mutex<BTreeMap<(OrgId, Channel), crate::rate_limit::Bucket>>,
    /// Takes from the store (one per limited channel of an organization per batch).
    pub takes: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl crate::ports::RateLimiter for MemoryRateLimiter {
    async fn take(
        &self,
        org: &OrgId,
        channel: Channel,
        want: u32,
        limit: crate::rate_limit::ChannelLimit,
        now: DateTime<Utc>,
    ) -> Result<crate::rate_limit::Admission, PortError> {
        self.takes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry((org.clone(), channel)).or_default();
        let (admission, counted) = crate::rate_limit::take(bucket, now, want, limit);
        *bucket = counted;
        Ok(admission)
    }
}

/// Keeps every measure recorded.
#[derive(Default)]
pub struct MemoryMeter {
    measures: Mutex<Vec<crate::telemetry::Measure>>,
    /// How many times measures were recorded (once per batch).
    pub records: std::sync::atomic::AtomicUsize,
}

impl MemoryMeter {
    pub fn measures(&self) -> Vec<crate::telemetry::Measure> {
        lock(&self.measures).clone()
    }

    /// The sum of a metric's values.
    pub fn total(&self, metric: crate::telemetry::Metric) -> f64 {
        lock(&self.measures)
            .iter()
            .filter(|m| m.metric == metric)
            .map(|m| m.value)
            .sum()
    }
}

impl crate::ports::Meter for MemoryMeter {
    fn record(&self, measures: Vec<crate::telemetry::Measure>) {
        self.records
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.measures).extend(measures);
    }
}

impl MemoryTemplates {
    /// A cache over this store, as intake holds one.
    pub fn cache(
        self: &Arc<Self>,
        catalog: Arc<crate::template::Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Arc<crate::template::cache::OrgTemplateCache> {
        Arc::new(crate::template::cache::OrgTemplateCache::new(
            self.clone(),
            catalog,
            clock,
        ))
    }
}

/// An organization's templates and types in memory, with every version written.
#[derive(Default)]
pub struct MemoryTemplates {
    pub stored: Mutex<BTreeMap<OrgId, Stored>>,
    /// Every version of every template written, in order.
    pub history: Mutex<Vec<(OrgId, OrgTemplate)>>,
    /// How many reads were made (each one query of the real table).
    pub reads: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl TemplateStore for MemoryTemplates {
    async fn stored(&self, org: &OrgId, _consistent: bool) -> Result<Stored, PortError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(lock(&self.stored).get(org).cloned().unwrap_or_default())
    }

    async fn put_template(
        &self,
        org: &OrgId,
        template: &OrgTemplate,
        replaces: Option<u64>,
    ) -> Result<Write, PortError> {
        let mut stored = lock(&self.stored);
        let stored = stored.entry(org.clone()).or_default();
        let at = stored.templates.iter().position(|t| {
            t.notification_type == template.notification_type
                && t.channel == template.channel
                && t.locale == template.locale
        });
        if at.map(|i| stored.templates[i].version) != replaces {
            return Ok(Write::Conflict);
        }
        match at {
            Some(i) => stored.templates[i] = template.clone(),
            None => stored.templates.push(template.clone()),
        }
        lock(&self.history).push((org.clone(), template.clone()));
        Ok(Write::Done)
    }

    async fn put_type(
        &self,
        org: &OrgId,
        org_type: &OrgType,
        replaces: Option<u64>,
    ) -> Result<Write, PortError> {
        let mut stored = lock(&self.stored);
        let stored = stored.entry(org.clone()).or_default();
        let at = stored
            .types
            .iter()
            .position(|t| t.notification_type == org_type.notification_type);
        if at.map(|i| stored.types[i].version) != replaces {
            return Ok(Write::Conflict);
        }
        match at {
            Some(i) => stored.types[i] = org_type.clone(),
            None => stored.types.push(org_type.clone()),
        }
        Ok(Write::Done)
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
