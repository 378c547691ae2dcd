use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let (views, bus) = herald_projector::from_env().await?;
    run(service_fn(|event| {
        herald_projector::handle(&views, &bus, event)
    }))
    .await
}
