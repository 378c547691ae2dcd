use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let webhooks = herald_webhooks::webhooks_from_env().await?;
    run(service_fn(|req| herald_webhooks::handle(&webhooks, req))).await
}
