use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let views = herald_projector::views_from_env().await?;
    run(service_fn(|event| herald_projector::handle(&views, event))).await
}
