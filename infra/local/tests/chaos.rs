#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! `herald-local chaos` as CI runs it: 300 events with provider faults, duplicate events and
//! dispatch messages, and crashes after send, on a fresh emulator; nothing lost, nothing
//! doubled, and every kind of chaos actually injected.

use std::process::Command;

use serde_json::Value;

#[test]
fn three_hundred_events_through_faults_duplicates_and_crashes_lose_and_double_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald-local"))
        .args([
            "chaos",
            "--events",
            "300",
            "--orgs",
            "4",
            "--seed",
            "1",
            "--provider-faults",
            "0.1",
            "--duplicate-events",
            "0.05",
            "--duplicate-messages",
            "0.05",
            "--crash-after-send",
            "0.02",
        ])
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("herald-local runs");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let last = stdout.lines().last().expect("a last line");
    let report: Value = serde_json::from_str(last).expect("the last line is one JSON object");
    assert!(
        out.status.success(),
        "chaos found a problem: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = |path: &str| report.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    assert_eq!(n("/events"), 300);
    assert_eq!(n("/notifications"), 600, "two channels per event");
    for zero in ["/lost", "/doubled", "/unexpected", "/pending"] {
        assert_eq!(n(zero), 0, "{zero} in {report}");
    }
    assert_eq!(report["gave_up"], false);
    assert_eq!(
        n("/sent") + n("/failed") + n("/skipped") + n("/pending") + n("/lost"),
        600,
        "every notification is counted once"
    );
    assert!(
        n("/sent") > 200,
        "most of what may go out went out: {report}"
    );
    // the chaos was there
    let faults = |service: &str| {
        report["injected"]["provider_faults"][service]
            .as_object()
            .map_or(0, |kinds| kinds.values().filter_map(Value::as_u64).sum())
    };
    assert!(faults("ses") + faults("sns") > 0, "AWS faults: {report}");
    assert!(
        faults("sendgrid") + faults("twilio") > 0,
        "stand-in faults: {report}"
    );
    for injected in [
        "/injected/duplicate_events",
        "/injected/duplicate_messages",
        "/injected/crashes_after_send",
    ] {
        assert!(n(injected) > 0, "{injected} in {report}");
    }
    assert!(
        n("/resent_after_crash") > 0,
        "a killed dispatch's sends go out again after the lease: {report}"
    );
}
