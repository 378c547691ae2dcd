//! The WebSocket API as the served local stack plays it: `ws://…/realtime?token=…` runs the
//! real authorizer, then the real `$connect` route, and only then upgrades (as API Gateway,
//! the connection exists only once `$connect` said yes); each text frame goes to `$default`,
//! whose answer is sent back; closing runs `$disconnect`. `/@connections/{id}` is the
//! management API the projector and the api post through (`PostToConnection`,
//! `GetConnection`, `DeleteConnection`), answering 410 `GoneException` for a connection that
//! is not open, as API Gateway does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::iam::IamPolicyEffect;
use aws_lambda_events::query_map::QueryMap;
use axum::Json;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use herald_adapters::tokens::TokenVerifier;
use herald_realtime::Routes;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The open sockets, by connection id: where `PostToConnection` writes.
#[derive(Default)]
pub struct Sockets {
    open: Mutex<HashMap<String, Socket>>,
}

struct Socket {
    to_client: mpsc::Sender<Message>,
    connected_at: chrono::DateTime<chrono::Utc>,
}

impl Sockets {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Socket>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sender(&self, id: &str) -> Option<mpsc::Sender<Message>> {
        self.open().get(id).map(|s| s.to_client.clone())
    }

    fn connected_at(&self, id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.open().get(id).map(|s| s.connected_at)
    }

    fn insert(&self, id: &str, socket: Socket) {
        self.open().insert(id.to_string(), socket);
    }

    fn remove(&self, id: &str) -> Option<mpsc::Sender<Message>> {
        self.open().remove(id).map(|s| s.to_client)
    }

    /// How many are open.
    pub fn count(&self) -> usize {
        self.open().len()
    }
}

/// The WebSocket API's parts: its authorizer's token checks, its routes, its open sockets.
pub struct WebSocketApi {
    pub verifier: Arc<TokenVerifier>,
    pub routes: Routes,
    pub sockets: Sockets,
}

/// An id shaped like API Gateway's (12 random bytes, base64).
fn connection_id() -> String {
    use base64::Engine;
    let bytes: [u8; 12] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-ErrorType", "GoneException")],
        Json(json!({"message": null})),
    )
        .into_response()
}

/// `GET /realtime?token=…[&customer=…]`
pub async fn connect(
    State(api): State<Arc<WebSocketApi>>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = connection_id();
    let mut authorizer_request = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    authorizer_request.type_ = Some("REQUEST".into());
    authorizer_request.method_arn =
        Some("arn:aws:execute-api:us-east-1:123456789012:local/local/$connect".into());
    authorizer_request.query_string_parameters = QueryMap::from(query);
    let allowed = herald_realtime::authorizer::handle(
        &api.verifier,
        LambdaEvent::new(authorizer_request, lambda_runtime::Context::default()),
    )
    .await;
    let context = match allowed {
        Err(_) => return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
        Ok(r) if !allows(&r) => return (StatusCode::FORBIDDEN, "Forbidden").into_response(),
        Ok(r) => r.context,
    };
    let connected_at = chrono::Utc::now();
    let answer = api
        .routes
        .route(route_event(
            "$connect",
            "CONNECT",
            &id,
            &context,
            connected_at,
            None,
        ))
        .await;
    if !(200..300).contains(&answer.status_code) {
        let status = u16::try_from(answer.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return status.into_response();
    }
    upgrade.on_upgrade(move |socket| run(api, id, context, connected_at, socket))
}

fn allows(response: &ApiGatewayCustomAuthorizerResponse) -> bool {
    !response.policy_document.statement.is_empty()
        && response
            .policy_document
            .statement
            .iter()
            .all(|s| s.effect == IamPolicyEffect::Allow)
}

fn route_event(
    route: &str,
    event_type: &str,
    id: &str,
    authorizer: &Value,
    connected_at: chrono::DateTime<chrono::Utc>,
    body: Option<String>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut request = ApiGatewayWebsocketProxyRequest::default();
    let context = &mut request.request_context;
    context.route_key = Some(route.into());
    context.event_type = Some(event_type.into());
    context.connection_id = Some(id.into());
    context.stage = Some("local".into());
    context.connected_at = connected_at.timestamp_millis();
    context.request_time_epoch = chrono::Utc::now().timestamp_millis();
    if let Value::Object(fields) = authorizer {
        context.authorizer.fields = fields.clone().into_iter().collect();
    }
    request.body = body;
    request
}

/// A connection's life: frames to `$default`, posts to the client, `$disconnect` at the end.
async fn run(
    api: Arc<WebSocketApi>,
    id: String,
    authorizer: Value,
    connected_at: chrono::DateTime<chrono::Utc>,
    socket: WebSocket,
) {
    let (mut to_client, mut from_client) = socket.split();
    let (sender, mut outbox) = mpsc::channel::<Message>(64);
    api.sockets.insert(
        &id,
        Socket {
            to_client: sender.clone(),
            connected_at,
        },
    );
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            let closing = matches!(message, Message::Close(_));
            if to_client.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    while let Some(Ok(frame)) = from_client.next().await {
        let body = match frame {
            Message::Text(text) => text.to_string(),
            Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let answer = api
            .routes
            .route(route_event(
                "$default",
                "MESSAGE",
                &id,
                &authorizer,
                connected_at,
                Some(body),
            ))
            .await;
        if let Some(Body::Text(text)) = answer.body {
            let _ = sender.send(Message::text(text)).await;
        }
    }
    api.sockets.remove(&id);
    drop(sender);
    let _ = writer.await;
    api.routes
        .route(route_event(
            "$disconnect",
            "DISCONNECT",
            &id,
            &authorizer,
            connected_at,
            None,
        ))
        .await;
}

/// `POST /@connections/{id}`: the body to the client, as a text frame.
pub async fn post_to_connection(
    State(api): State<Arc<WebSocketApi>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(sender) = api.sockets.sender(&id) else {
        return gone();
    };
    let message = match String::from_utf8(body.to_vec()) {
        Ok(text) => Message::text(text),
        Err(e) => Message::Binary(e.into_bytes().into()),
    };
    match sender.send(message).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => gone(),
    }
}

/// `GET /@connections/{id}`
pub async fn get_connection(
    State(api): State<Arc<WebSocketApi>>,
    Path(id): Path<String>,
) -> Response {
    match api.sockets.connected_at(&id) {
        Some(at) => Json(json!({
            "connectedAt": herald_core::time::format(&at),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": null},
            "lastActiveAt": herald_core::time::format(&chrono::Utc::now()),
        }))
        .into_response(),
        None => gone(),
    }
}

/// `DELETE /@connections/{id}`: the server closes the socket (`$disconnect` follows).
pub async fn delete_connection(
    State(api): State<Arc<WebSocketApi>>,
    Path(id): Path<String>,
) -> Response {
    match api.sockets.sender(&id) {
        Some(sender) => {
            let _ = sender.send(Message::Close(None)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}
