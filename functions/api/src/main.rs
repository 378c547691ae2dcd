use lambda_http::{Error, run};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let api = herald_api::api_from_env().await?;
    run(herald_api::router(api)).await
}
