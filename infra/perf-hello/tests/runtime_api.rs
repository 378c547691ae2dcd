//! The local Lambda Runtime API of `herald-local perf` against a real `lambda_runtime`
//! process: this package's hello binary, built by the test run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_local::perf::PerfError;
use herald_local::perf::function::Running;
use herald_local::perf::runtime_api::{Notice, Outcome, RuntimeApi};
use serde_json::{Value, json};

const HELLO: &str = env!("CARGO_BIN_EXE_perf-hello");

fn log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("herald-perf-hello-tests");
    // a directory that cannot be made fails the launch that writes there, with its path
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{name}-{}.log", std::process::id()))
}

fn json_of(outcome: &Outcome) -> Value {
    match outcome {
        // not JSON: Null, which no assertion here expects
        Outcome::Response(body) => serde_json::from_slice(body).unwrap_or(Value::Null),
        Outcome::Error(e) => panic!("an error where a response was expected: {e:?}"),
    }
}

#[tokio::test]
async fn each_invocation_goes_out_on_a_poll_and_its_response_comes_back() {
    let mut hello = Running::launch("hello", Path::new(HELLO), &[], &log("responses"))
        .await
        .expect("the hello function polls");
    for i in 0..3 {
        let payload = json!({"invocation": i, "text": "échos"});
        let measured = hello
            .invoke(serde_json::to_vec(&payload).expect("JSON"))
            .await
            .expect("an answer");
        assert_eq!(json_of(&measured.outcome), payload);
    }
    assert!(hello.peak_memory_kb().expect("its status") > 0);
    hello.stop().await;
}

#[tokio::test]
async fn an_event_the_function_cannot_read_comes_back_on_the_error_path_and_it_carries_on() {
    let mut hello = Running::launch("hello", Path::new(HELLO), &[], &log("errors"))
        .await
        .expect("the hello function polls");
    match hello.invoke(&b"not json"[..]).await {
        Err(PerfError::InvocationFailed { error_type, .. }) => assert!(!error_type.is_empty()),
        Err(other) => panic!("another failure: {other}"),
        Ok(_) => panic!("a response to an event that is not JSON"),
    }
    let after = hello.invoke(&b"[1,2]"[..]).await.expect("an answer");
    assert_eq!(json_of(&after.outcome), json!([1, 2]));
    hello.stop().await;
}

#[tokio::test]
async fn init_errors_are_noticed_and_answers_for_unknown_invocations_refused() {
    let api = RuntimeApi::start("broken", Duration::from_secs(60))
        .await
        .expect("a runtime API");
    let base = format!("http://{}/2018-06-01/runtime", api.address());
    let client = reqwest::Client::new();
    let init = client
        .post(format!("{base}/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
        .body(r#"{"errorMessage":"no table configured","errorType":"ConfigError","stackTrace":[]}"#)
        .send()
        .await
        .expect("the runtime API answers");
    assert_eq!(init.status(), reqwest::StatusCode::ACCEPTED);
    match api.next_notice().await {
        Some(Notice::InitFailed(error)) => {
            assert_eq!(error.header_type.as_deref(), Some("Runtime.InitError"));
            assert_eq!(error.error_type, "ConfigError");
            assert_eq!(error.error_message, "no table configured");
        }
        other => panic!("not an init error: {other:?}"),
    }
    for path in ["response", "error"] {
        let unknown = client
            .post(format!("{base}/invocation/no-such-request/{path}"))
            .body("{}")
            .send()
            .await
            .expect("the runtime API answers");
        assert_eq!(unknown.status(), reqwest::StatusCode::BAD_REQUEST);
        let body: Value = unknown.json().await.expect("a JSON error");
        assert_eq!(body["errorType"], "InvalidRequestID");
    }
}
