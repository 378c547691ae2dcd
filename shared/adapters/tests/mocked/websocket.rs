//! Posting to WebSocket connections through API Gateway's management API: a connection that
//! went away answers `GoneException` (the emulator's stand-in never does).

use aws_sdk_apigatewaymanagement::operation::post_to_connection::{
    PostToConnectionError, PostToConnectionOutput,
};
use aws_sdk_apigatewaymanagement::types::error::{GoneException, LimitExceededException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use herald_adapters::ApiGatewayPusher;
use herald_core::ports::{Posted, Pusher};
use herald_core::realtime::ConnectionId;

fn id(s: &str) -> ConnectionId {
    ConnectionId::parse(s).unwrap()
}

#[tokio::test]
async fn a_gone_connection_is_told_apart_from_a_failure() {
    let gone = mock!(aws_sdk_apigatewaymanagement::Client::post_to_connection)
        .match_requests(|r| r.connection_id() == Some("R29uZQ=="))
        .then_error(|| PostToConnectionError::GoneException(GoneException::builder().build()));
    let limited = mock!(aws_sdk_apigatewaymanagement::Client::post_to_connection)
        .match_requests(|r| r.connection_id() == Some("TGltaXQ="))
        .then_error(|| {
            PostToConnectionError::LimitExceededException(LimitExceededException::builder().build())
        });
    let open = mock!(aws_sdk_apigatewaymanagement::Client::post_to_connection)
        .match_requests(|r| r.data().is_some_and(|d| d.as_ref() == b"{}"))
        .then_output(|| PostToConnectionOutput::builder().build());
    let client = mock_client!(
        aws_sdk_apigatewaymanagement,
        RuleMode::MatchAny,
        &[&gone, &limited, &open]
    );
    let pusher = ApiGatewayPusher::from_client(client);
    assert_eq!(
        pusher.post(&id("T3Blbg=="), b"{}").await.unwrap(),
        Posted::Delivered
    );
    assert_eq!(
        pusher.post(&id("R29uZQ=="), b"{}").await.unwrap(),
        Posted::Gone
    );
    let failed = pusher.post(&id("TGltaXQ="), b"{}").await.unwrap_err();
    assert!(failed.to_string().contains("LimitExceeded"), "{failed}");
}

#[tokio::test]
async fn api_gateways_410_answer_reads_as_gone() {
    let gone =
        mock!(aws_sdk_apigatewaymanagement::Client::post_to_connection).then_http_response(|| {
            let mut response = HttpResponse::new(
                StatusCode::try_from(410).unwrap(),
                SdkBody::from(r#"{"message":null}"#),
            );
            response
                .headers_mut()
                .insert("x-amzn-ErrorType", "GoneException");
            response
        });
    let client = mock_client!(aws_sdk_apigatewaymanagement, &[&gone]);
    assert_eq!(
        ApiGatewayPusher::from_client(client)
            .post(&id("R29uZQ=="), b"{}")
            .await
            .unwrap(),
        Posted::Gone
    );
}
