//! SNS's HTTPS endpoints: signing certificates (cached for the life of the Lambda) and
//! subscription confirmation.

use std::collections::HashMap;

use async_trait::async_trait;
use herald_core::delivery::ses::SnsEndpoints;
use tokio::sync::Mutex;

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
    async fn certificate(&self, url: &str) -> Result<Vec<u8>, String> {
        if let Some(pem) = self.certificates.lock().await.get(url) {
            return Ok(pem.clone());
        }
        let response = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("certificate answered {}", response.status()));
        }
        let pem = response.bytes().await.map_err(|e| e.to_string())?.to_vec();
        self.certificates
            .lock()
            .await
            .insert(url.to_string(), pem.clone());
        Ok(pem)
    }

    async fn confirm_subscription(&self, subscribe_url: &str) -> Result<(), String> {
        let response = self
            .http
            .get(subscribe_url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("SubscribeURL answered {}", response.status()))
        }
    }
}
