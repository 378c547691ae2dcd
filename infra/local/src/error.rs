//! What can go wrong when the local stack runs, one variant per cause: the emulator, the
//! stack's resources, an AWS call (the SDK's error, with the service's code and message), one
//! of Herald's ports or handlers, or the files and processes around it.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use herald_core::ports::PortError;
use thiserror::Error;

use crate::emulator::EmulatorError;
use crate::stack::StackError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum LocalError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Stack(#[from] StackError),
    /// A call the local stack makes to the emulator itself (not through a port).
    #[error("{operation}: {}", DisplayErrorContext(.source.as_ref()))]
    Aws {
        operation: &'static str,
        source: BoxError,
    },
    /// A port the local stack reads through (the notifications, the views).
    #[error(transparent)]
    Port(#[from] PortError),
    /// A handler that could not be built or that failed as a whole.
    #[error("the {function} handler: {source}")]
    Handler {
        function: &'static str,
        source: BoxError,
    },
    #[error("{table} has no stream")]
    NoStream { table: String },
    #[error("stream records do not form a DynamoDB event: {0}")]
    StreamEvent(serde_json::Error),
    #[error("the pump lock {path}: {source}")]
    PumpLock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another herald-local process kept stage {stage} on {endpoint} busy for {waited:?}")]
    Busy {
        stage: String,
        endpoint: String,
        waited: Duration,
    },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    NotEvents { path: PathBuf, why: String },
    #[error("{path}: {why}")]
    /// A sample organization's provider settings or templates (`events/providers`,
    /// `events/templates`).
    NotSample { path: PathBuf, why: String },
    #[error("{path}: {why}")]
    NotContext { path: PathBuf, why: String },
    #[error(
        "{0} reads the stage on a running emulator: start `make serve` (or `herald-local start`) and export the AWS_ENDPOINT_URL it prints"
    )]
    NoRunningStack(&'static str),
    /// `herald-local preview`: an unknown type, or a context its variables refuse.
    #[error("{0}")]
    Preview(String),
    #[error("unknown webhook event {0:?}: delivery, bounce, complaint, open or click")]
    UnknownWebhookEvent(String),
    #[error("signing as SNS: {0}")]
    Signing(&'static str),
    /// `herald-local perf`: a function process or the runtime API it polls.
    #[error(transparent)]
    Perf(#[from] crate::perf::PerfError),
    #[error(transparent)]
    ChaosConfig(#[from] crate::chaos::ChaosConfigError),
    /// `herald-local latency`: a message that never came, or a write that was not seen.
    #[error("latency: {0}")]
    Latency(String),
    #[error("the bus refused {0} of the events put on it")]
    BusRefused(i32),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl LocalError {
    /// An AWS call's error, kept whole (`DisplayErrorContext` shows its code and message).
    pub(crate) fn aws(
        operation: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> LocalError {
        LocalError::Aws {
            operation,
            source: Box::new(e),
        }
    }

    pub(crate) fn handler(function: &'static str, e: impl Into<BoxError>) -> LocalError {
        LocalError::Handler {
            function,
            source: e.into(),
        }
    }
}
