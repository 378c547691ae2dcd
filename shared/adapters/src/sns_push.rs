//! Mobile push through SNS platform applications: a platform endpoint per device, one publish
//! per endpoint (`MessageStructure=json`, the payloads of `herald_core::push`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use herald_core::ports::{FailureKind, PortError, PushEndpoints, PushRefusal};
use herald_core::push::SnsPlatform;

use crate::classify::classify;

const SOFT_CODES: &[&str] = &["KMSThrottlingException", "KMSDisabledException"];

#[derive(Clone, Debug)]
pub struct SnsPushEndpoints {
    client: Client,
}

impl SnsPushEndpoints {
    pub fn new(client: Client) -> Self {
        SnsPushEndpoints { client }
    }
}

/// SNS's refusal as push reads it: a disabled endpoint, or a soft or hard failure.
fn refusal<E>(err: &SdkError<E, HttpResponse>) -> PushRefusal
where
    E: ProvideErrorMetadata + std::error::Error,
{
    if let SdkError::ServiceError(service) = err
        && service.err().code() == Some("EndpointDisabled")
    {
        return PushRefusal::EndpointDisabled;
    }
    let e = classify("SNS", err, SOFT_CODES);
    let code = e.code.map(|c| c.to_string());
    match e.kind {
        FailureKind::Soft | FailureKind::Credentials | FailureKind::Account => PushRefusal::Soft {
            reason: e.reason,
            code,
        },
        FailureKind::Hard | FailureKind::Recipient => PushRefusal::Hard {
            reason: e.reason,
            code,
        },
    }
}

#[async_trait]
impl PushEndpoints for SnsPushEndpoints {
    async fn create_endpoint(
        &self,
        application_arn: &str,
        token: &str,
    ) -> Result<String, PushRefusal> {
        let out = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application_arn)
            .token(token)
            .send()
            .await
            .map_err(|e| refusal(&e))?;
        out.endpoint_arn.ok_or_else(|| PushRefusal::Soft {
            reason: "SNS answered without an endpoint ARN".into(),
            code: None,
        })
    }

    async fn delete_endpoint(&self, endpoint_arn: &str) -> Result<(), PortError> {
        match self
            .client
            .delete_endpoint()
            .endpoint_arn(endpoint_arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(s)) if s.err().code() == Some("NotFound") => Ok(()),
            Err(e) => Err(PortError::new("sns DeleteEndpoint", e)),
        }
    }

    async fn publish(
        &self,
        endpoint_arn: &str,
        message: &str,
    ) -> Result<Option<String>, PushRefusal> {
        match self
            .client
            .publish()
            .target_arn(endpoint_arn)
            .message_structure("json")
            .message(message)
            .send()
            .await
        {
            Ok(out) => Ok(out.message_id),
            // accepted with an answer the SDK could not read: sending again would double it
            Err(SdkError::ResponseError(r)) if r.raw().status().is_success() => Ok(None),
            Err(e) => Err(refusal(&e)),
        }
    }
}

/// Organizations' platform applications in SNS.
#[derive(Clone, Debug)]
pub struct SnsPlatformApplications {
    client: Client,
}

impl SnsPlatformApplications {
    pub fn new(client: Client) -> Self {
        SnsPlatformApplications { client }
    }
}

#[async_trait]
impl herald_core::ports::PlatformApplications for SnsPlatformApplications {
    async fn put(
        &self,
        existing: Option<&str>,
        name: &str,
        platform: SnsPlatform,
        attributes: &BTreeMap<String, String>,
    ) -> Result<String, PortError> {
        if let Some(arn) = existing.filter(|a| SnsPlatform::of_application(a) == Some(platform)) {
            self.client
                .set_platform_application_attributes()
                .platform_application_arn(arn)
                .set_attributes(Some(attributes.clone().into_iter().collect()))
                .send()
                .await
                .map_err(|e| PortError::new("sns SetPlatformApplicationAttributes", e))?;
            return Ok(arn.to_string());
        }
        let out = self
            .client
            .create_platform_application()
            .name(name)
            .platform(platform.key())
            .set_attributes(Some(attributes.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| PortError::new("sns CreatePlatformApplication", e))?;
        out.platform_application_arn.ok_or_else(|| {
            PortError::new(
                "sns CreatePlatformApplication",
                "answered without an application ARN",
            )
        })
    }
}
