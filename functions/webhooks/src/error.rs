//! Every answer the webhooks give, and its status: the one place an outcome becomes HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::ports::PortError;
use herald_core::provider_events::{AuthError, ParseError};
use herald_core::tracking::WebhookSummary;
use serde_json::json;
use thiserror::Error;
use tracing::error;

/// A refused webhook: `{"error": code, "message": …}`. A 4xx message says what was wrong; a
/// 5xx message says nothing, and the cause goes to the log.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error(transparent)]
    Unreadable(#[from] ParseError),
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("no such webhook")]
    NotFound,
    #[error("webhooks are POST")]
    MethodNotAllowed,
    #[error(transparent)]
    Internal(#[from] PortError),
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            WebhookError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            WebhookError::Unreadable(_) | WebhookError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
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

/// What a webhook did: 200 with the summary, or an answer the provider retries, with
/// `Retry-After`, when some events are to be brought again: 503 when an event came before its
/// send was recorded, 409 when its notification kept changing while it was written. Events
/// already applied are marked seen, so the retry applies only the rest.
pub struct Answer(pub WebhookSummary);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let summary = self.0;
        let (status, code, message, retry_after) = if summary.not_ready > 0 {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "a message's send is not recorded yet; retry later",
                "60",
            )
        } else if summary.contended > 0 {
            (
                StatusCode::CONFLICT,
                "contended",
                "a notification changed while its events were applied; retry",
                "1",
            )
        } else {
            return Json(summary).into_response();
        };
        let mut response = (
            status,
            Json(json!({"error": code, "message": message, "summary": summary})),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(summary: WebhookSummary) -> (StatusCode, Option<String>) {
        let response = Answer(summary).into_response();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status(), retry)
    }

    #[test]
    fn events_to_be_brought_again_are_answered_for_a_retry_never_500() {
        let ok = WebhookSummary {
            applied: 2,
            ..Default::default()
        };
        assert_eq!(answered(ok.clone()), (StatusCode::OK, None));
        let contended = WebhookSummary {
            contended: 1,
            ..ok.clone()
        };
        assert_eq!(
            answered(contended),
            (StatusCode::CONFLICT, Some("1".into()))
        );
        let not_ready = WebhookSummary {
            not_ready: 1,
            contended: 1,
            ..ok
        };
        assert_eq!(
            answered(not_ready),
            (StatusCode::SERVICE_UNAVAILABLE, Some("60".into()))
        );
    }
}
