//! Turning an AWS SDK error into a soft (retry) or hard (dead-letter) send failure.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use herald_core::ports::SendError;

/// Soft: the service is busy or failing, or the request never got an answer. Hard: the
/// service understood the request and refused it; sending it again would be refused again.
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
            if throttled || server_side || soft_codes.contains(&code) {
                SendError::soft(format!("{provider} {code}"))
            } else {
                // The message can name the address; keep only the code.
                SendError::hard(format!("{provider} rejected the message: {code}"))
            }
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
