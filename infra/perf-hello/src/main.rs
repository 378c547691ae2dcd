//! Echoes each payload back: no SDK, no logging, nothing but the runtime client, so its cold
//! start, memory and size are what any Rust Lambda costs before Herald adds anything.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(echo)).await
}
