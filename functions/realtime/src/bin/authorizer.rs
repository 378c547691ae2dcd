//! The WebSocket API's `$connect` authorizer.

use herald_adapters::tokens::TokenVerifier;
use herald_realtime::authorizer;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    herald_adapters::telemetry::init();
    // the issuer's keys are read at the first token and kept while the function is warm
    let verifier = TokenVerifier::new(
        authorizer::policy_from_env()?,
        herald_adapters::http_client(),
    );
    run(service_fn(|event| authorizer::handle(&verifier, event))).await
}
