//! Every answer the webhooks give, and its status: the one place an outcome becomes HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::ports::PortError;
use herald_core::provider_events::AuthError;
use herald_core::tracking::WebhookSummary;
use serde_json::json;
use thiserror::Error;
use tracing::error;

/// A refused webhook: `{"error": code, "message": …}`. A 4xx message says what was wrong; a
/// 5xx message says nothing, and the cause goes to the log.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("no such webhook")]
    NotFound,
    #[error("webhooks are POST")]
    MethodNotAllowed,
    #[error(transparent)]
    Internal(#[from] PortError),
}

impl From<AuthError> for WebhookError {
    fn from(e: AuthError) -> Self {
        WebhookError::Unauthorized(e.to_string())
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            WebhookError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            WebhookError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            WebhookError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            WebhookError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            WebhookError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match &self {
            WebhookError::Internal(e) => {
                error!(error = %e, "webhook failed");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(json!({"error": code, "message": message}))).into_response()
    }
}

/// What a webhook did: 200 with the summary, or 503 with `Retry-After` when an event came
/// before its send was recorded, so the provider brings it again.
pub struct Answer(pub WebhookSummary);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let summary = self.0;
        if summary.not_ready == 0 {
            return Json(summary).into_response();
        }
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "not_ready", "message": "a message's send is not recorded yet; retry later", "summary": summary})),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        response
    }
}
