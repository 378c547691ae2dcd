//! Provider settings and credentials in AWS Secrets Manager: one secret per organization,
//! read once and cached for a few minutes per warm Lambda.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use herald_core::ids::OrgId;
use herald_core::ports::PortError;
use herald_core::providers::{OrgProviders, ProviderSettings};
use tokio::sync::Mutex;

/// How long settings read from Secrets Manager are trusted: a changed key takes effect within it.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct SecretsManagerSettings {
    client: Client,
    prefix: String,
    ttl: Duration,
    cache: Mutex<HashMap<OrgId, (Instant, OrgProviders)>>,
}

impl SecretsManagerSettings {
    /// Secrets are named `<prefix>/<org>`, e.g. `herald/prod/providers/org_acme`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        SecretsManagerSettings {
            client,
            prefix: prefix.into(),
            ttl: CACHE_TTL,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How long read settings are trusted before they are read again.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn name(&self, org: &OrgId) -> String {
        format!("{}/{org}", self.prefix.trim_end_matches('/'))
    }
}

#[async_trait]
impl ProviderSettings for SecretsManagerSettings {
    async fn get(&self, org: &OrgId) -> Result<OrgProviders, PortError> {
        const OP: &str = "secretsmanager GetSecretValue";
        if let Some((at, cached)) = self.cache.lock().await.get(org) {
            if at.elapsed() < self.ttl {
                return Ok(cached.clone());
            }
        }
        let providers = match self
            .client
            .get_secret_value()
            .secret_id(self.name(org))
            .send()
            .await
        {
            Ok(out) => {
                let text = out.secret_string.unwrap_or_default();
                serde_json::from_str(&text).map_err(|e| PortError::new(OP, e))?
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                OrgProviders::default()
            }
            Err(e) => return Err(PortError::new(OP, e)),
        };
        self.cache
            .lock()
            .await
            .insert(org.clone(), (Instant::now(), providers.clone()));
        Ok(providers)
    }

    async fn put(&self, org: &OrgId, providers: &OrgProviders) -> Result<(), PortError> {
        const OP: &str = "secretsmanager PutSecretValue";
        let text = serde_json::to_string(providers).map_err(|e| PortError::new(OP, e))?;
        let name = self.name(org);
        match self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&text)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(&name)
                    .secret_string(&text)
                    .send()
                    .await
                    .map_err(|e| PortError::new("secretsmanager CreateSecret", e))?;
            }
            Err(e) => return Err(PortError::new(OP, e)),
        }
        self.cache
            .lock()
            .await
            .insert(org.clone(), (Instant::now(), providers.clone()));
        Ok(())
    }
}
