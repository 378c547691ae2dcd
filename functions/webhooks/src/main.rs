use lambda_http::{Error, run};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let webhooks = herald_webhooks::webhooks_from_env().await?;
    run(herald_webhooks::router(webhooks)).await
}
