//! AWS SDK errors as port errors. The SDK's own `Display` says only "service error"; the log
//! needs the service's code and message, which `DisplayErrorContext` gives (the request's data
//! is never part of it).

use std::error::Error;
use std::fmt;

use aws_smithy_types::error::display::DisplayErrorContext;
use herald_core::ports::PortError;

/// An error described by its whole chain, with the original kept as its source.
#[derive(Debug)]
struct Described<E> {
    text: String,
    source: E,
}

impl<E> fmt::Display for Described<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<E: Error + 'static> Error for Described<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// A failed AWS call as a port error that says what the service answered.
pub(crate) fn aws<E: Error + Send + Sync + 'static>(operation: &'static str, err: E) -> PortError {
    let text = DisplayErrorContext(&err).to_string();
    PortError::new(operation, Described { text, source: err })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn the_log_keeps_the_services_code_and_message() {
        let service = GetItemError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Requested resource not found")
                .meta(
                    ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .message("Requested resource not found")
                        .build(),
                )
                .build(),
        );
        let err: SdkError<GetItemError, ()> = SdkError::service_error(service, ());
        assert_eq!(err.to_string(), "service error");
        let port = aws("dynamodb GetItem", err).to_string();
        assert!(port.contains("ResourceNotFoundException"), "{port}");
        assert!(port.contains("Requested resource not found"), "{port}");
    }
}
