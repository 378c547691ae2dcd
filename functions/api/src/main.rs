use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    let api = herald_api::api_from_env().await?;
    run(service_fn(|req| herald_api::handle(&api, req))).await
}
