//! A local Lambda Runtime API (version 2018-06-01), as Lambda serves it to a function's
//! process at `AWS_LAMBDA_RUNTIME_API`: the process asks for its next invocation
//! (`GET /runtime/invocation/next`, answered when there is one, with the event as the body and
//! the invocation's request id, deadline, function ARN and trace header), then posts the
//! result (`POST /runtime/invocation/{id}/response`) or an error
//! (`POST /runtime/invocation/{id}/error`); a runtime that cannot start posts
//! `/runtime/init/error`. Each accepted post is answered `202 Accepted`; an unknown request id
//! `400`, a response over Lambda's 6 MB `413`.
//!
//! One server serves one function process. Whoever drives it sees each poll as it arrives
//! (the process is then idle, waiting), hands out invocations one at a time and gets each
//! one's outcome with the instants it was handed out and answered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Lambda's limit on a synchronous invocation's response.
pub const RESPONSE_LIMIT_BYTES: usize = 6 * 1024 * 1024;

/// The ARN every invocation names (Lambda's `Lambda-Runtime-Invoked-Function-Arn`).
const FUNCTION_ARN_PREFIX: &str = "arn:aws:lambda:us-east-1:123456789012:function:";

/// What the function process did, in the order it did it.
#[derive(Debug)]
pub enum Notice {
    /// It asked for its next invocation and is now waiting for it.
    Polled(Instant),
    /// It reported that it could not initialize.
    InitFailed(FunctionError),
}

/// An error as a runtime reports it: the `Lambda-Runtime-Function-Error-Type` header and the
/// documented body (`errorMessage`, `errorType`; the stack trace is not kept).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FunctionError {
    pub header_type: Option<String>,
    pub error_type: String,
    pub error_message: String,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Bytes),
    Error(FunctionError),
}

/// One invocation's outcome and its times.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    /// When the event went out as the answer to the process's poll.
    pub handed_out: Instant,
    /// When its response or error arrived.
    pub answered: Instant,
}

impl Invocation {
    /// From the event going out to the answer coming back.
    pub fn duration(&self) -> Duration {
        self.answered.saturating_duration_since(self.handed_out)
    }
}

#[derive(Debug, Error)]
pub enum RuntimeApiError {
    #[error("the local runtime API could not listen: {0}")]
    Listen(#[source] std::io::Error),
    #[error("the local runtime API stopped before invocation {0} was answered")]
    Stopped(String),
}

/// An invocation waiting for the process's next poll.
struct Queued {
    request_id: String,
    payload: Bytes,
    answer: oneshot::Sender<Invocation>,
}

/// An invocation handed out and not yet answered.
struct HandedOut {
    at: Instant,
    answer: oneshot::Sender<Invocation>,
}

struct Shared {
    function_arn: String,
    timeout: Duration,
    notices: mpsc::UnboundedSender<Notice>,
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    handed_out: Mutex<HashMap<String, HandedOut>>,
}

pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Queued>,
    notices: tokio::sync::Mutex<mpsc::UnboundedReceiver<Notice>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Serves on a free 127.0.0.1 port for the function `function_name`, whose invocations
    /// have `timeout` each (the deadline the process is told).
    pub async fn start(function_name: &str, timeout: Duration) -> Result<Self, RuntimeApiError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(RuntimeApiError::Listen)?;
        let address = listener.local_addr().map_err(RuntimeApiError::Listen)?;
        let (notices_tx, notices_rx) = mpsc::unbounded_channel();
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("{FUNCTION_ARN_PREFIX}{function_name}"),
            timeout,
            notices: notices_tx,
            queued: tokio::sync::Mutex::new(queue_rx),
            handed_out: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(respond),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(RESPONSE_LIMIT_BYTES))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "the local runtime API stopped");
            }
        });
        Ok(RuntimeApi {
            address,
            shared,
            queue: queue_tx,
            notices: tokio::sync::Mutex::new(notices_rx),
            server,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API`'s value: host and port.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The process's next notice (a poll, or an init error), in order; `None` once the server
    /// is gone.
    pub async fn next_notice(&self) -> Option<Notice> {
        self.notices.lock().await.recv().await
    }

    /// Queues `payload` as the next invocation and waits for its outcome.
    pub async fn invoke(&self, payload: impl Into<Bytes>) -> Result<Invocation, RuntimeApiError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (answer, answered) = oneshot::channel();
        let queued = Queued {
            request_id: request_id.clone(),
            payload: payload.into(),
            answer,
        };
        if self.queue.send(queued).is_err() {
            return Err(RuntimeApiError::Stopped(request_id));
        }
        answered
            .await
            .map_err(|_| RuntimeApiError::Stopped(request_id))
    }

    /// How long each invocation may run (the deadline handed to the process).
    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }
}

/// `GET /runtime/invocation/next`: answered with the next queued invocation, when there is one.
async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.notices.send(Notice::Polled(Instant::now()));
    // one poll at a time takes from the queue (a runtime makes one at a time anyway)
    let Some(queued) = shared.queued.lock().await.recv().await else {
        return runtime_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.ContainerError",
            "no more invocations",
        );
    };
    let deadline = SystemTime::now() + shared.timeout;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", queued.request_id.clone());
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        shared.function_arn.clone(),
    );
    set("lambda-runtime-trace-id", trace_header());
    set("content-type", "application/json".into());
    if let Ok(mut handed_out) = shared.handed_out.lock() {
        handed_out.insert(
            queued.request_id,
            HandedOut {
                at: Instant::now(),
                answer: queued.answer,
            },
        );
    }
    (StatusCode::OK, headers, queued.payload).into_response()
}

/// An X-Ray trace header of the documented form `Root=1-<8 hex: epoch seconds>-<24 hex>;…`.
fn trace_header() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{seconds:08x}-{};Parent={};Sampled=0",
        &random[..24],
        &random[16..32]
    )
}

/// `POST /runtime/invocation/{id}/response`.
async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(&shared, request_id, Outcome::Response(body))
}

/// The documented error body; a runtime may send more (`stackTrace`), or less.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ErrorBody {
    error_type: String,
    error_message: String,
}

fn function_error(headers: &HeaderMap, body: &Bytes) -> FunctionError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    FunctionError {
        header_type: headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        error_type: parsed.error_type,
        error_message: parsed.error_message,
    }
}

/// `POST /runtime/invocation/{id}/error`.
async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = function_error(&headers, &body);
    answer(&shared, request_id, Outcome::Error(error))
}

/// `POST /runtime/init/error`.
async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = shared
        .notices
        .send(Notice::InitFailed(function_error(&headers, &body)));
    accepted()
}

fn answer(shared: &Shared, request_id: String, outcome: Outcome) -> Response {
    let handed_out = shared
        .handed_out
        .lock()
        .ok()
        .and_then(|mut waiting| waiting.remove(&request_id));
    let Some(handed_out) = handed_out else {
        return runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "no invocation with this request id is waiting for an answer",
        );
    };
    let _ = handed_out.answer.send(Invocation {
        request_id,
        outcome,
        handed_out: handed_out.at,
        answered: Instant::now(),
    });
    accepted()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}
