use lambda_runtime::{Error, run, service_fn};

// One invocation at a time: a single-thread runtime, whose batches still run their requests
// concurrently (join_all, buffer_unordered), without the worker threads' cost.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let service = herald_scheduler::service_from_env().await?;
    let meter = herald_adapters::emf::EmfMeter::stdout(&herald_adapters::emf::namespace_from_env());
    run(service_fn(|event| {
        herald_scheduler::handle(&service, &meter, event)
    }))
    .await
}
