//! herald-adapters: herald-core's ports implemented with the AWS SDK.

mod classify;
pub mod config;
pub mod dynamo;
pub mod ses;
pub mod sns;
pub mod sqs;
pub mod telemetry;
pub mod views;

pub use dynamo::{DynamoDirectory, DynamoNotificationStore};
pub use ses::SesEmailSender;
pub use sns::SnsSmsSender;
pub use sqs::SqsDispatchQueue;
pub use views::DynamoViews;
