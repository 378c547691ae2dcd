//! An AWS SDK answer to a send as Herald reads it: sent (with the provider's id when it could be
//! read), or a soft (retry), account-level (the next provider, then retry), hard (dead-letter)
//! or recipient-level (suppress) failure.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use herald_core::ports::{Receipt, SendError};

/// The outcome of a send call that returns the provider's message id.
pub fn accepted<E>(
    result: Result<Option<String>, SdkError<E, HttpResponse>>,
    provider: &str,
    soft_codes: &[&str],
) -> Result<Receipt, SendError>
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match result {
        Ok(Some(id)) => Ok(Receipt::with_id(id)),
        Ok(None) => Ok(Receipt::without_id()),
        // The service said yes in a way the SDK could not read: the message went, and
        // asking again would send it twice.
        Err(SdkError::ResponseError(response)) if response.raw().status().is_success() => {
            Ok(Receipt::without_id())
        }
        Err(e) => Err(classify(provider, &e, soft_codes)),
    }
}

/// Errors that say the deployment's account or role may not send now, whatever the message:
/// sending paused or suspended, a sender or domain not verified, a role without permission.
fn account_refusal(code: &str, message: &str) -> bool {
    const ACCOUNT: &[&str] = &[
        "AccountSuspendedException",
        "SendingPausedException",
        "AccountSendingPausedException",
        "ConfigurationSetSendingPausedException",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExistException",
        "AuthorizationError",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "KMSAccessDenied",
        "KMSDisabled",
    ];
    ACCOUNT.contains(&code) || (code == "MessageRejected" && message.contains("not verified"))
}

/// Soft: the service is busy or failing, or the request never got an answer. Account: the
/// service will not send for this account now (another provider may). Recipient: the service
/// refuses the address itself (on its suppression list). Hard: the service understood the
/// request and refused it; sending it again, anywhere, would be refused again.
pub fn classify<E, R>(provider: &str, err: &SdkError<E, R>, soft_codes: &[&str]) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let throttled = code.contains("Throttl") || code.contains("TooManyRequests");
            let server_side = code.contains("InternalError")
                || code.contains("InternalFailure")
                || code.contains("ServiceUnavailable");
            // The message may name the address: it decides, it is never kept.
            let message = service.err().message().unwrap_or_default().to_lowercase();
            let address_refused = code == "MessageRejected"
                && (message.contains("suppress") || message.contains("blacklist"));
            let refusal = if throttled || server_side || soft_codes.contains(&code) {
                SendError::soft(format!("{provider} {code}"))
            } else if account_refusal(code, &message) {
                SendError::account(format!("{provider} will not send for the account: {code}"))
            } else if address_refused {
                SendError::recipient(format!(
                    "{provider} refused the address: {code} (suppressed)"
                ))
            } else {
                SendError::hard(format!("{provider} rejected the message: {code}"))
            };
            refusal.with_code(code)
        }
        SdkError::TimeoutError(_) => SendError::soft(format!("{provider} timed out")),
        SdkError::DispatchFailure(_) => SendError::soft(format!("{provider} could not be reached")),
        SdkError::ResponseError(_) => {
            SendError::soft(format!("{provider} answered with an unreadable response"))
        }
        SdkError::ConstructionFailure(_) => {
            SendError::hard(format!("{provider} request could not be built"))
        }
        _ => SendError::soft(format!("{provider} failed")),
    }
}
