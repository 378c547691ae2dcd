//! Every error the api answers, and its status: the one place an error becomes HTTP.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_core::directory_update::UpdateError as DirectoryUpdateError;
use herald_core::ports::PageError;
use herald_core::ports::PortError;
use herald_core::settings::UpdateError;
use serde_json::json;
use thiserror::Error;
use tracing::error;

/// An error answer: `{"error": code, "message": …}`. A 4xx message says what was wrong; a 5xx
/// message says nothing, and the cause goes to the log.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("no such route")]
    NoRoute,
    #[error("this route does not answer this method")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] PortError),
}

impl ApiError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let message = match &self {
            ApiError::Internal(e) => {
                error!(error = %e, "api request failed");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(json!({"error": code, "message": message}))).into_response()
    }
}

/// A directory write that kept meeting concurrent writes is the caller's to retry: 409.
impl From<DirectoryUpdateError> for ApiError {
    fn from(e: DirectoryUpdateError) -> Self {
        match e {
            DirectoryUpdateError::Port(e) => ApiError::Internal(e),
            DirectoryUpdateError::Contended => ApiError::Conflict(e.to_string()),
        }
    }
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::Invalid(e) => ApiError::BadRequest(e.0),
            UpdateError::Conflict => ApiError::Conflict(e.to_string()),
            UpdateError::Port(e) => ApiError::Internal(e),
        }
    }
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::BadCursor => ApiError::BadRequest("invalid cursor".into()),
            PageError::Port(e) => ApiError::Internal(e),
        }
    }
}
