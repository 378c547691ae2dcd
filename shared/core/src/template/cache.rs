//! The organizations' templates as intake renders them: read at most once per
//! [`FRESH_FOR`] per warm function and compiled again only when a version changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Catalog;
use super::org::OrgCatalog;
use crate::ids::OrgId;
use crate::ports::{Clock, PortError, TemplateStore};

/// How long a read of an organization's templates is used: a template changed through the api
/// renders every notification created this long after the change.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

/// The most organizations kept; past it, those read longest ago are forgotten.
const MAX_ORGS: usize = 1_000;

struct Cached {
    read_at: DateTime<Utc>,
    catalog: Arc<OrgCatalog>,
}

/// Compiled organization catalogs, by organization. Build it once per cold start.
pub struct OrgTemplateCache {
    store: Arc<dyn TemplateStore>,
    builtin: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    cached: Mutex<HashMap<OrgId, Cached>>,
}

impl OrgTemplateCache {
    pub fn new(
        store: Arc<dyn TemplateStore>,
        builtin: Arc<Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        OrgTemplateCache {
            store,
            builtin,
            clock,
            cached: Mutex::new(HashMap::new()),
        }
    }

    /// These organizations' catalogs: those read within [`FRESH_FOR`] as they were, the
    /// others read again (concurrently, one query each) and compiled if they changed.
    pub async fn catalogs(
        &self,
        orgs: &BTreeSet<OrgId>,
    ) -> BTreeMap<OrgId, Result<Arc<OrgCatalog>, PortError>> {
        let now = self.clock.now();
        let fresh_for = chrono::Duration::from_std(FRESH_FOR).unwrap_or_default();
        let mut found = BTreeMap::new();
        let mut stale = Vec::new();
        {
            let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            for org in orgs {
                match cached.get(org) {
                    Some(c) if now - c.read_at < fresh_for && c.read_at <= now => {
                        found.insert(org.clone(), Ok(c.catalog.clone()));
                    }
                    c => stale.push((org, c.map(|c| c.catalog.clone()))),
                }
            }
        }
        let read = futures::future::join_all(stale.into_iter().map(|(org, before)| async move {
            let catalog = self.store.stored(org, false).await.map(|stored| {
                // unchanged: the compiled catalog as it was
                match before {
                    Some(b) if b.stamp() == stored.stamp().as_slice() => b,
                    _ => Arc::new(OrgCatalog::compile(&self.builtin, &stored)),
                }
            });
            (org, catalog)
        }))
        .await;
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        for (org, catalog) in read {
            if let Ok(catalog) = &catalog {
                let read_at = now;
                let catalog = catalog.clone();
                cached.insert(org.clone(), Cached { read_at, catalog });
            }
            found.insert(org.clone(), catalog);
        }
        if cached.len() > MAX_ORGS {
            let mut by_age: Vec<(DateTime<Utc>, OrgId)> =
                cached.iter().map(|(o, c)| (c.read_at, o.clone())).collect();
            by_age.sort();
            for (_, org) in by_age.iter().take(cached.len() - MAX_ORGS) {
                cached.remove(org);
            }
        }
        found
    }
}
