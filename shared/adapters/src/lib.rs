//! herald-adapters: herald-core's ports implemented with the AWS SDK.

pub mod aws_https;
pub mod backoff;
mod classify;
pub mod config;
pub mod dynamo;
pub mod emf;
mod errors;
pub mod eventbridge;
mod http;
pub mod routing;
pub mod secrets;
pub mod sendgrid;
pub mod ses;
pub mod sns;
pub mod sns_https;
pub mod sns_push;
pub mod sqs;
pub mod telemetry;
pub mod tokens;
pub mod twilio;
pub mod views;
pub mod websocket;

pub use backoff::Backoff;
pub use dynamo::{
    DynamoBreakers, DynamoConnections, DynamoDirectory, DynamoNotificationStore, DynamoRateLimiter,
    DynamoTemplates,
};
pub use eventbridge::EventBridgePublisher;
pub use http::client as http_client;
pub use routing::{SendgridEmail, SesEmail, TwilioSms, TwilioWhatsapp};
pub use secrets::SecretsManagerSettings;
pub use sendgrid::SendGridSender;
pub use ses::{SesEmailSender, SesIdentities};
pub use sns::SnsSmsSender;
pub use sns_https::SnsHttpEndpoints;
pub use sns_push::{SnsPlatformApplications, SnsPushEndpoints};
pub use sqs::SqsDispatchQueue;
pub use twilio::TwilioSender;
pub use views::DynamoViews;
pub use websocket::ApiGatewayPusher;
