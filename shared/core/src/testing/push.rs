//! Push in memory: platform endpoints and applications.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::PortError;

use super::lock;

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
