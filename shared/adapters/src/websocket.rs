//! Messages to open WebSocket connections through API Gateway's management API
//! (`PostToConnection`), at the WebSocket API's stage URL.

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use herald_core::ports::{PortError, Posted, Pusher};
use std::sync::Arc;

use herald_core::realtime::{ConnectionId, Realtime};

use crate::errors::aws;

#[derive(Clone, Debug)]
pub struct ApiGatewayPusher {
    client: Client,
}

impl ApiGatewayPusher {
    /// A client of the stage at `endpoint` (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
    /// The endpoint is set on this client alone: the SDK's shared endpoint, when there is one
    /// (the local emulator), serves the other services.
    pub fn new(aws: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(aws)
            .endpoint_url(endpoint)
            .build();
        ApiGatewayPusher {
            client: Client::from_conf(config),
        }
    }

    pub fn from_client(client: Client) -> Self {
        ApiGatewayPusher { client }
    }
}

#[async_trait]
impl Pusher for ApiGatewayPusher {
    async fn post(&self, id: &ConnectionId, message: &[u8]) -> Result<Posted, PortError> {
        match self
            .client
            .post_to_connection()
            .connection_id(id.as_str())
            .data(Blob::new(message))
            .send()
            .await
        {
            Ok(_) => Ok(Posted::Delivered),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                Ok(Posted::Gone)
            }
            Err(e) => Err(aws("apigateway PostToConnection", e)),
        }
    }
}

/// Where the customers' open WebSocket connections are, and how to post to them
/// (`HERALD_CONNECTIONS_TABLE` and `HERALD_WEBSOCKET_ENDPOINT`, the WebSocket API's stage
/// URL): the projector and the api tell them of their feeds' changes.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    pub connections_table: String,
    pub websocket_endpoint: String,
}

impl RealtimeConfig {
    pub fn from_env() -> Option<RealtimeConfig> {
        Some(RealtimeConfig {
            connections_table: crate::config::optional("HERALD_CONNECTIONS_TABLE")?,
            websocket_endpoint: crate::config::optional("HERALD_WEBSOCKET_ENDPOINT")?,
        })
    }

    pub fn realtime(&self, aws: &aws_config::SdkConfig) -> Realtime {
        Realtime {
            connections: Arc::new(crate::DynamoConnections::new(
                aws_sdk_dynamodb::Client::new(aws),
                &self.connections_table,
            )),
            pusher: Arc::new(ApiGatewayPusher::new(aws, &self.websocket_endpoint)),
        }
    }
}
