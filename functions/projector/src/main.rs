use lambda_runtime::{Error, run, service_fn};

// One invocation at a time: a single-thread runtime, whose batches still run their requests
// concurrently (join_all, buffer_unordered), without the worker threads' cost.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let projector = herald_projector::from_env().await?;
    run(service_fn(|event| {
        herald_projector::handle(&projector, event)
    }))
    .await
}
