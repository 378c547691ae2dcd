//! Provider settings and credentials in AWS Secrets Manager: one secret per organization,
//! cached for a few minutes per warm Lambda, read again on demand (at most once every few
//! seconds per organization), and written conditionally.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use herald_core::ids::OrgId;
use herald_core::ports::ProviderSettings;
use herald_core::ports::{PortError, Write};
use herald_core::providers::{OrgProviders, REFRESH_INTERVAL, SettingsCache, StoredProviders};
use tokio::sync::Mutex;

use crate::errors::aws;

/// How long settings read from Secrets Manager are trusted: a changed key takes effect within
/// it, or at once where the old one fails (see [`ProviderSettings::refresh`]).
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// How many organizations' settings one warm Lambda keeps.
pub const CACHE_CAPACITY: usize = 1000;
/// The staging label of a version written but not yet made current.
const PENDING_STAGE: &str = "HERALD_PENDING";
const CURRENT_STAGE: &str = "AWSCURRENT";

#[derive(Debug)]
pub struct SecretsManagerSettings {
    client: Client,
    prefix: String,
    cache: Mutex<SettingsCache>,
    /// One read at a time per organization: the messages of a batch that all miss the cache
    /// wait for the first one's read instead of each making its own.
    reading: Mutex<HashMap<OrgId, Arc<Mutex<()>>>>,
}

impl SecretsManagerSettings {
    /// Secrets are named `<prefix>/<org>`, e.g. `herald/prod/providers/org_acme`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        SecretsManagerSettings {
            client,
            prefix: prefix.into(),
            cache: Mutex::new(SettingsCache::new(
                CACHE_TTL,
                REFRESH_INTERVAL,
                CACHE_CAPACITY,
            )),
            reading: Mutex::default(),
        }
    }

    /// How long read settings are trusted before they are read again.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.cache.get_mut().set_ttl(ttl);
        self
    }

    /// The shortest time between two reads asked for by `refresh`.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.cache.get_mut().set_refresh_interval(interval);
        self
    }

    fn name(&self, org: &OrgId) -> String {
        format!("{}/{org}", self.prefix.trim_end_matches('/'))
    }

    /// The current version of the secret, uncached.
    async fn read_secret(&self, org: &OrgId) -> Result<StoredProviders, PortError> {
        const OP: &str = "secretsmanager GetSecretValue";
        let stored = match self
            .client
            .get_secret_value()
            .secret_id(self.name(org))
            // named, not implied: the current version is the one the AWSCURRENT label is on
            .version_stage(CURRENT_STAGE)
            .send()
            .await
        {
            Ok(out) => {
                let text = out.secret_string.unwrap_or_default();
                StoredProviders {
                    providers: serde_json::from_str(&text).map_err(|e| PortError::new(OP, e))?,
                    version: out.version_id,
                }
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                StoredProviders::default()
            }
            Err(e) => return Err(aws(OP, e)),
        };
        self.cache
            .lock()
            .await
            .insert(org, stored.providers.clone(), Instant::now());
        Ok(stored)
    }

    /// The settings the cache holds if `usable` accepts them, else read: once for every caller
    /// waiting on the same organization (those who waited take what the first one read).
    async fn cached_or_read(
        &self,
        org: &OrgId,
        usable: fn(&SettingsCache, &OrgId, Instant) -> Option<OrgProviders>,
    ) -> Result<OrgProviders, PortError> {
        if let Some(cached) = usable(&*self.cache.lock().await, org, Instant::now()) {
            return Ok(cached);
        }
        let gate = self
            .reading
            .lock()
            .await
            .entry(org.clone())
            .or_default()
            .clone();
        let read = async {
            let _turn = gate.lock().await;
            if let Some(cached) = usable(&*self.cache.lock().await, org, Instant::now()) {
                return Ok(cached);
            }
            Ok(self.read_secret(org).await?.providers)
        }
        .await;
        let mut reading = self.reading.lock().await;
        // the map holds one, this caller another: nobody else is waiting
        if Arc::strong_count(&gate) <= 2 {
            reading.remove(org);
        }
        read
    }
}

#[async_trait]
impl ProviderSettings for SecretsManagerSettings {
    async fn get(&self, org: &OrgId) -> Result<OrgProviders, PortError> {
        self.cached_or_read(org, SettingsCache::fresh).await
    }

    async fn refresh(&self, org: &OrgId) -> Result<OrgProviders, PortError> {
        self.cached_or_read(org, SettingsCache::recent).await
    }

    async fn read(&self, org: &OrgId) -> Result<StoredProviders, PortError> {
        self.read_secret(org).await
    }

    /// Secrets Manager has no compare-and-swap on a value, but it has one on a label: the new
    /// value is stored as a version that is not current yet, then `UpdateSecretVersionStage`
    /// moves AWSCURRENT to it from the version that was read. Secrets Manager refuses that move
    /// when `RemoveFromVersionId` is not the version AWSCURRENT is on ("if the version ID does
    /// not match, then the operation fails"), so a writer who read before another's write
    /// loses, reads again and retries, instead of writing back a stale copy. The first write
    /// is `CreateSecret`, which fails when the secret exists. Both refusals are conflicts.
    /// The emulator (moto) implements both checks, so the tests run the same path.
    async fn write(
        &self,
        org: &OrgId,
        providers: &OrgProviders,
        expected: Option<&str>,
    ) -> Result<Write, PortError> {
        let text = serde_json::to_string(providers)
            .map_err(|e| PortError::new("serialize provider settings", e))?;
        let name = self.name(org);
        let version = uuid::Uuid::new_v4().to_string();
        match expected {
            None => {
                let created = self
                    .client
                    .create_secret()
                    .name(&name)
                    .client_request_token(&version)
                    .secret_string(&text)
                    .send()
                    .await;
                match created {
                    Ok(_) => {}
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_resource_exists_exception()) =>
                    {
                        return Ok(Write::Conflict);
                    }
                    Err(e) => return Err(aws("secretsmanager CreateSecret", e)),
                }
            }
            Some(read_version) => {
                self.client
                    .put_secret_value()
                    .secret_id(&name)
                    .client_request_token(&version)
                    .secret_string(&text)
                    .version_stages(PENDING_STAGE)
                    .send()
                    .await
                    .map_err(|e| aws("secretsmanager PutSecretValue", e))?;
                let moved = self
                    .client
                    .update_secret_version_stage()
                    .secret_id(&name)
                    .version_stage(CURRENT_STAGE)
                    .remove_from_version_id(read_version)
                    .move_to_version_id(&version)
                    .send()
                    .await;
                match moved {
                    Ok(_) => {}
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_invalid_parameter_exception()) =>
                    {
                        return Ok(Write::Conflict);
                    }
                    Err(e) => {
                        return Err(aws("secretsmanager UpdateSecretVersionStage", e));
                    }
                }
            }
        }
        self.cache
            .lock()
            .await
            .insert(org, providers.clone(), Instant::now());
        Ok(Write::Done)
    }
}
