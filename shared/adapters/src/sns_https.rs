//! SNS's HTTPS endpoints: signing certificates (a few, cached for the life of the Lambda) and
//! subscription confirmation.

use std::collections::HashMap;

use async_trait::async_trait;
use herald_core::ports::{PortError, SnsEndpoints};
use tokio::sync::Mutex;

/// How many signing certificates are kept: SNS signs with one certificate per region at a
/// time, so a handful covers every topic; more can only come from requests that try URLs.
pub const CERTIFICATE_CACHE_CAPACITY: usize = 16;
/// The largest certificate accepted (SNS's are about 2 KB).
const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub struct SnsHttpEndpoints {
    http: reqwest::Client,
    certificates: Mutex<HashMap<String, Vec<u8>>>,
}

impl SnsHttpEndpoints {
    pub fn new(http: reqwest::Client) -> Self {
        SnsHttpEndpoints {
            http,
            certificates: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SnsEndpoints for SnsHttpEndpoints {
    async fn certificate(&self, url: &str) -> Result<Vec<u8>, PortError> {
        const FETCH: &str = "fetch SNS signing certificate";
        if let Some(pem) = self.certificates.lock().await.get(url) {
            return Ok(pem.clone());
        }
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| PortError::new(FETCH, e))?;
        if !response.status().is_success() {
            return Err(PortError::new(
                FETCH,
                format!("answered {}", response.status()),
            ));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_CERTIFICATE_BYTES as u64)
        {
            return Err(PortError::new(FETCH, "the certificate is too large"));
        }
        let pem = response
            .bytes()
            .await
            .map_err(|e| PortError::new(FETCH, e))?
            .to_vec();
        if pem.len() > MAX_CERTIFICATE_BYTES {
            return Err(PortError::new(FETCH, "the certificate is too large"));
        }
        let mut certificates = self.certificates.lock().await;
        if certificates.len() >= CERTIFICATE_CACHE_CAPACITY {
            // rare (SNS rotates its certificates yearly): start over rather than track ages
            certificates.clear();
        }
        certificates.insert(url.to_string(), pem.clone());
        Ok(pem)
    }

    async fn confirm_subscription(&self, subscribe_url: &str) -> Result<(), PortError> {
        const CONFIRM: &str = "confirm SNS subscription";
        let response = self
            .http
            .get(subscribe_url)
            .send()
            .await
            .map_err(|e| PortError::new(CONFIRM, e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(PortError::new(
                CONFIRM,
                format!("answered {}", response.status()),
            ))
        }
    }
}
