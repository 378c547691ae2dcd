//! The WebSocket API's routes ($connect, $disconnect, $default).

use std::sync::Arc;

use herald_adapters::DynamoConnections;
use herald_adapters::config;
use herald_core::ports::SystemClock;
use herald_realtime::Routes;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let aws = config::aws().await?;
    let routes = Routes {
        connections: Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config::required("HERALD_CONNECTIONS_TABLE")?,
        )),
        clock: Arc::new(SystemClock),
    };
    run(service_fn(|event| routes.handle(event))).await
}
