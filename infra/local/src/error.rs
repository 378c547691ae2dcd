//! What can go wrong when the local stack runs: the emulator, the stack's resources, an AWS
//! call (with the service's code and message), or building a handler.

use thiserror::Error;

use crate::emulator::EmulatorError;
use crate::stack::StackError;

#[derive(Debug, Error)]
pub enum LocalError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("{0}")]
    Aws(String),
    #[error("building a handler: {0}")]
    Handler(String),
}

pub(crate) fn aws_error(operation: &str, e: impl std::error::Error) -> LocalError {
    LocalError::Aws(format!(
        "{operation}: {}",
        aws_sdk_sqs::error::DisplayErrorContext(e)
    ))
}
