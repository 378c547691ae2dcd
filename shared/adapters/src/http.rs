//! What the HTTP providers (SendGrid, Twilio) have in common.

use std::time::Duration;

use herald_core::ports::SendError;

/// One client per cold start: connections are pooled and reused across invocations.
pub fn client() -> reqwest::Client {
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
/// organization's settings are wrong or were changed since they were read. The provider's
/// problem, not the notification's: soft, so it is retried (and the settings read again).
pub fn credentials_refused(provider: &str, status: reqwest::StatusCode) -> SendError {
    SendError::soft(format!(
        "{provider} {CREDENTIALS_REFUSED} ({})",
        status.as_u16()
    ))
}

const CREDENTIALS_REFUSED: &str = "refused the credentials";

/// Whether a send failed because [`credentials_refused`] (`SendError` carries a kind and a
/// reason only; the reason is made here, so it is recognized here).
pub fn is_credentials_refusal(e: &SendError) -> bool {
    e.kind == herald_core::ports::FailureKind::Soft
        && e.reason.contains(&format!(" {CREDENTIALS_REFUSED} ("))
}
