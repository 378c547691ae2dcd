//! What organizations set up, in memory: customers and settings, provider settings, their
//! own templates.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::consent::SuppressionKey;
use crate::directory::{CustomerRecord, OrgSettings, Versioned};
use crate::ids::{CustomerId, OrgId};
use crate::ports::{Clock, Directory, PortError, Snapshot, SnapshotRequest, TemplateStore, Write};
use crate::template::org::{OrgTemplate, OrgType, Stored};

use super::lock;

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

/// An organization's templates and types in memory, with every version written.
#[derive(Default)]
pub struct MemoryTemplates {
    pub stored: Mutex<BTreeMap<OrgId, Stored>>,
    /// Every version of every template written, in order.
    pub history: Mutex<Vec<(OrgId, OrgTemplate)>>,
    /// How many reads were made (each one query of the real table).
    pub reads: std::sync::atomic::AtomicUsize,
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
