//! The WebSocket API's routes: `$connect` records the connection under the feed the authorizer
//! allowed, `$disconnect` forgets it, `$default` takes `{"action":"ping"}`.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use herald_core::ports::{Clock, Connections};
use herald_core::realtime::{Connection, ConnectionId};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use crate::authorizer::listener_of;

/// The largest message a client may send (a ping is 17 bytes).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// What the routes work with, built once per cold start.
#[derive(Clone)]
pub struct Routes {
    pub connections: Arc<dyn Connections>,
    pub clock: Arc<dyn Clock>,
}

fn answer(status: i64, body: serde_json::Value) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = Some(Body::Text(body.to_string()));
    response
}

fn refused(status: i64, message: &str) -> ApiGatewayProxyResponse {
    answer(status, json!({"type": "error", "message": message}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    action: String,
}

impl Routes {
    /// The Lambda handler.
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
    ) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
        Ok(self.route(event.payload).await)
    }

    /// One route event's answer. `$connect`'s status decides whether the connection opens;
    /// `$default`'s body is sent back to the client.
    pub async fn route(&self, request: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let context = &request.request_context;
        let id = match context.connection_id.as_deref().map(ConnectionId::parse) {
            Some(Ok(id)) => id,
            _ => return refused(400, "the request has no connection id"),
        };
        let Some(listener) = listener_of(&context.authorizer.fields) else {
            // only the authorizer lets a connection in, and it always names the feed
            return refused(401, "the connection has no listener");
        };
        match context.route_key.as_deref().unwrap_or("$default") {
            "$connect" => {
                let connected_at = DateTime::<Utc>::from_timestamp_millis(context.connected_at)
                    .filter(|_| context.connected_at > 0)
                    .unwrap_or_else(|| self.clock.now());
                let connection = Connection {
                    id,
                    listener,
                    connected_at,
                };
                match self.connections.add(&connection).await {
                    Ok(()) => {
                        info!(connection_id = %connection.id, org_id = %connection.listener.org_id, customer_id = %connection.listener.customer_id, "connected");
                        answer(200, json!({"type": "connected"}))
                    }
                    Err(e) => {
                        warn!(connection_id = %connection.id, error = %e, "connection not recorded");
                        refused(500, "the connection could not be recorded")
                    }
                }
            }
            "$disconnect" => {
                if let Err(e) = self.connections.remove(&listener, &id).await {
                    // once expired, reads skip it and the customer's next $connect removes it
                    warn!(connection_id = %id, error = %e, "connection not forgotten");
                }
                info!(connection_id = %id, "disconnected");
                answer(200, json!({"type": "disconnected"}))
            }
            _ => message(request.body.as_deref()),
        }
    }
}

/// A client's message: a ping, or a clear refusal.
fn message(body: Option<&str>) -> ApiGatewayProxyResponse {
    let body = body.unwrap_or_default();
    if body.len() > MAX_MESSAGE_BYTES {
        return refused(
            413,
            &format!("a message is at most {MAX_MESSAGE_BYTES} bytes"),
        );
    }
    match serde_json::from_str::<ClientMessage>(body) {
        Ok(m) if m.action == "ping" => answer(200, json!({"type": "pong"})),
        Ok(_) => refused(
            400,
            "action: the socket takes only \"ping\"; reads and writes go through the HTTP api",
        ),
        Err(_) => refused(400, "the message must be {\"action\":\"ping\"}"),
    }
}
