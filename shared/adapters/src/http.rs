//! What the HTTP providers (SendGrid, Twilio) have in common.

use std::time::Duration;

use herald_core::ports::SendError;

/// One client per cold start: connections are pooled and reused across invocations.
pub fn client() -> reqwest::Client {
    // rustls on aws-lc-rs, as the SDK's client: one crypto library in the binary (reqwest would
    // bring ring otherwise). A provider the process installed before stays.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A request that got no answer: worth trying again.
pub fn unanswered(provider: &str, e: &reqwest::Error) -> SendError {
    if e.is_timeout() {
        SendError::soft(format!("{provider} timed out"))
    } else {
        SendError::soft(format!("{provider} could not be reached"))
    }
}

/// An HTTP status that says "later": throttling and server errors.
pub fn is_transient(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The provider refused the credentials it was given (SendGrid 401/403, Twilio 401): the
/// organization's settings are wrong or were changed since they were read.
pub fn credentials_refused(provider: &str, status: reqwest::StatusCode) -> SendError {
    SendError::credentials(format!(
        "{provider} refused the credentials ({})",
        status.as_u16()
    ))
}
