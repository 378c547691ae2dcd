#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! `herald-local send`, driven as a user would: the binary, sample files, a fresh emulator.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn events(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/intake")
        .join(name)
}

fn send(files: &[PathBuf]) -> Vec<Value> {
    run(
        &[
            &["send"],
            &files
                .iter()
                .map(|f| f.to_str().unwrap())
                .collect::<Vec<_>>()[..],
        ]
        .concat(),
        None,
    )
}

/// Runs herald-local with these arguments, on its own emulator or on `endpoint`.
fn run(args: &[&str], endpoint: Option<&str>) -> Vec<Value> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald-local"));
    command.args(args);
    match endpoint {
        Some(url) => command.env("AWS_ENDPOINT_URL", url),
        None => command.env_remove("AWS_ENDPOINT_URL"),
    };
    let out = command.output().expect("herald-local runs");
    assert!(
        out.status.success(),
        "herald-local failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn send_reports_every_sample_event_in_order_with_its_outcome() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    // the same order once more at the end: nothing new, nothing sent twice
    files.push(events("10-order-created.json"));
    let reports = send(&files);
    assert_eq!(reports.len(), files.len(), "one line per event");

    let by_type = |t: &str| {
        reports
            .iter()
            .filter(|r| r["detail_type"] == t)
            .collect::<Vec<_>>()
    };
    let outcomes: Vec<&str> = reports
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == "directory_updated")
            .count(),
        7
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "rejected").count(), 3);
    assert!(
        reports
            .iter()
            .all(|r| r["event_id"].as_str().is_some_and(|id| !id.is_empty()))
    );

    let orders = by_type("OrderCreated");
    let (first, again) = (orders[0], orders[orders.len() - 1]);
    assert_eq!(first["outcome"], "notified");
    assert_eq!(
        first["notifications"], again["notifications"],
        "the republished order maps to the same notification"
    );
    let n = &first["notifications"][0];
    assert_eq!(
        (
            n["channel"].as_str(),
            n["status"].as_str(),
            n["recipient"].as_str()
        ),
        (Some("email"), Some("sent"), Some("cus_carol"))
    );
    assert!(n["subject"].as_str().unwrap().contains("ord_1001"));
    assert!(n["body"].as_str().unwrap().contains("$59.90"));
    assert!(n["provider_message_id"].as_str().is_some());
    let history: Vec<&str> = n["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"].as_str().unwrap())
        .collect();
    assert_eq!(history, vec!["created", "sending", "sent"]);
    assert_eq!(n["in_feed"], true);
    let chargeback = &by_type("ChargebackOpened")[0]["notifications"][0];
    assert_eq!(
        chargeback["in_feed"], false,
        "internal notifications stay out of feeds"
    );

    let refund = &by_type("RefundIssued")[0]["notifications"];
    let channels: Vec<&str> = refund
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, vec!["email", "sms"]);
    assert!(
        refund[0]["body"]
            .as_str()
            .unwrap()
            .contains("remboursement"),
        "French for fr-CA: {}",
        refund[0]["body"]
    );

    let review = &by_type("OrderDelivered")[0]["notifications"][0];
    assert_eq!(review["status"], "pending");
    assert_eq!(review["scheduled_for"], "2026-11-27T10:04:00.000Z");

    let skipped: Vec<_> = reports
        .iter()
        .filter(|r| r["outcome"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["reason"], "unsubscribed from review_prompt");

    let rejected: Vec<&str> = reports
        .iter()
        .filter(|r| r["outcome"] == "rejected")
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(rejected[0], "detail.organization_id is missing");
    assert!(rejected[1].contains("grand_total"));
    assert_eq!(rejected[2], "unknown detail-type \"InvoicePainted\"");
}

#[test]
fn a_file_may_hold_an_array_of_events_taken_in_order() {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let read = |name: &str| {
        serde_json::from_str::<Value>(&std::fs::read_to_string(events(name)).unwrap()).unwrap()
    };
    let batch = Value::Array(vec![
        read("04-customer-contact-changed-carol.json"),
        read("10-order-created.json"),
    ]);
    let file = dir.join("batch.json");
    std::fs::write(&file, batch.to_string()).unwrap();
    let reports = send(&[file]);
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["outcome"], "directory_updated");
    assert_eq!(reports[1]["notifications"][0]["status"], "sent");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tick_at_a_later_time_sends_what_was_scheduled_for_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let url = emulator.endpoint.as_str();
    let files = [
        events("04-customer-contact-changed-carol.json"),
        events("11-order-delivered.json"),
    ];
    let files: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let sent = run(
        &[&["--stage", "ticked", "send"], &files[..]].concat(),
        Some(url),
    );
    let review = &sent[1]["notifications"][0];
    assert_eq!(
        (review["status"].as_str(), review["scheduled_for"].as_str()),
        (Some("pending"), Some("2026-11-27T10:04:00.000Z"))
    );

    let early = run(
        &["--stage", "ticked", "tick", "--at", "2026-11-27T10:03:00Z"],
        Some(url),
    );
    assert_eq!(early[0]["enqueued"], 0);
    let due = run(
        &["--stage", "ticked", "tick", "--at", "2026-11-27T10:05:00Z"],
        Some(url),
    );
    assert_eq!(due[0]["enqueued"], 1);
    let n = &due[0]["notifications"][0];
    assert_eq!(
        (n["type"].as_str(), n["status"].as_str()),
        (Some("review_prompt"), Some("sent"))
    );
    let history: Vec<&str> = n["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"].as_str().unwrap())
        .collect();
    assert_eq!(history, vec!["scheduled", "sending", "sent"]);
    let again = run(
        &["--stage", "ticked", "tick", "--at", "2026-11-27T10:06:00Z"],
        Some(url),
    );
    assert_eq!(again[0]["enqueued"], 0);
    drop(emulator);
}

#[test]
fn serve_answers_the_api_with_a_development_token_and_the_webhooks() {
    use std::io::{BufRead, BufReader, Read, Write};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let url = emulator.endpoint.clone();
    let sent = run(
        &[
            "--stage",
            "served",
            "send",
            events("04-customer-contact-changed-carol.json")
                .to_str()
                .unwrap(),
            events("10-order-created.json").to_str().unwrap(),
        ],
        Some(&url),
    );
    assert_eq!(sent[1]["outcome"], "notified");

    let mut server = Command::new(env!("CARGO_BIN_EXE_herald-local"))
        .args(["--stage", "served", "serve", "--port", "0"])
        .env("AWS_ENDPOINT_URL", &url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let token = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_herald-local"))
            .args(["token", "--org", "org_acme", "--customer", "cus_carol"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let http = |method: &str, path: &str, token: Option<&str>, body: &str| -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {}\r\n", t.trim()))
            .unwrap_or_default();
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        (
            code,
            response
                .split("\r\n\r\n")
                .nth(1)
                .unwrap_or_default()
                .to_string(),
        )
    };
    // the stream is projected in the background; wait for the feed to show the order
    let mut feed = String::new();
    for _ in 0..50 {
        let (code, body) = http(
            "GET",
            "/customers/cus_carol/notifications",
            Some(&token),
            "",
        );
        assert_eq!(code, 200, "{body}");
        feed = body;
        if feed.contains("order_confirmation") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(feed.contains("order_confirmation"), "{feed}");
    assert_eq!(
        http("GET", "/customers/cus_carol/notifications", None, "").0,
        401
    );
    assert_eq!(
        http(
            "GET",
            "/customers/cus_alice/notifications",
            Some(&token),
            ""
        )
        .0,
        403
    );
    assert_eq!(http("POST", "/webhooks/ses", None, "not json").0, 400);
    assert_eq!(
        http("POST", "/webhooks/sendgrid/org_acme", None, "[]").0,
        401
    );
    server.kill().unwrap();
    let _ = server.wait();
    drop(emulator);
}
