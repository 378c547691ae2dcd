//! Push publishes against the SDK's mocks: SNS's refusals as push reads them.

use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_sdk_sns::types::error::{
    EndpointDisabledException, InternalErrorException, InvalidParameterException,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use herald_adapters::SnsPushEndpoints;
use herald_core::ports::{PushEndpoints, PushRefusal};

const ENDPOINT: &str = "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/app/ep1";

async fn publish(error: fn() -> PublishError) -> Result<Option<String>, PushRefusal> {
    let rule = mock!(aws_sdk_sns::Client::publish).then_error(error);
    let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, &[&rule]);
    SnsPushEndpoints::new(client)
        .publish(ENDPOINT, r#"{"default": "b"}"#)
        .await
}

#[tokio::test]
async fn a_disabled_endpoint_is_told_apart() {
    let answer = publish(|| {
        PublishError::EndpointDisabledException(
            EndpointDisabledException::builder()
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("EndpointDisabled")
                        .build(),
                )
                .build(),
        )
    })
    .await;
    assert_eq!(answer, Err(PushRefusal::EndpointDisabled));
}

#[tokio::test]
async fn throttling_and_internal_errors_are_soft() {
    // Publish models no throttling error: it arrives as a generic one with its code
    let throttled = publish(|| {
        PublishError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("Throttling")
                .build(),
        )
    })
    .await;
    assert!(
        matches!(throttled, Err(PushRefusal::Soft { .. })),
        "{throttled:?}"
    );
    let internal = publish(|| {
        PublishError::InternalErrorException(
            InternalErrorException::builder()
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("InternalError")
                        .build(),
                )
                .build(),
        )
    })
    .await;
    assert!(
        matches!(internal, Err(PushRefusal::Soft { .. })),
        "{internal:?}"
    );
}

#[tokio::test]
async fn an_invalid_request_is_hard() {
    let answer = publish(|| {
        PublishError::InvalidParameterException(
            InvalidParameterException::builder()
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("InvalidParameter")
                        .build(),
                )
                .build(),
        )
    })
    .await;
    assert!(
        matches!(answer, Err(PushRefusal::Hard { .. })),
        "{answer:?}"
    );
}

#[tokio::test]
async fn an_accepted_publish_answers_its_message_id() {
    let rule = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| {
            r.message_structure() == Some("json") && r.target_arn() == Some(ENDPOINT)
        })
        .then_output(|| PublishOutput::builder().message_id("m-1").build());
    let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, &[&rule]);
    let answer = SnsPushEndpoints::new(client)
        .publish(ENDPOINT, r#"{"default": "b"}"#)
        .await;
    assert_eq!(answer, Ok(Some("m-1".into())));
}
