use lambda_http::{Error, run};

// One invocation at a time: a single-thread runtime, whose batches still run their requests
// concurrently (join_all, buffer_unordered), without the worker threads' cost.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let webhooks = herald_webhooks::webhooks_from_env().await?;
    run(herald_webhooks::router(webhooks)).await
}
