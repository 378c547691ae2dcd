use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let service = herald_scheduler::service_from_env().await?;
    run(service_fn(|event| {
        herald_scheduler::handle(&service, event)
    }))
    .await
}
