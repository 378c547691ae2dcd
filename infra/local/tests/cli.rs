#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! `herald-local send`, driven as a user would: the binary, sample files, a fresh emulator.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

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

/// herald-local run with these arguments, on its own emulator or on `endpoint`.
fn herald_local(args: &[&str], endpoint: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald-local"));
    command.args(args);
    match endpoint {
        Some(url) => command.env("AWS_ENDPOINT_URL", url),
        None => command.env_remove("AWS_ENDPOINT_URL"),
    };
    command.output().expect("herald-local runs")
}

/// Runs herald-local with these arguments, on its own emulator or on `endpoint`: the JSON
/// object of each line it printed.
fn run(args: &[&str], endpoint: Option<&str>) -> Vec<Value> {
    let out = herald_local(args, endpoint);
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

/// The events of a reported notification's log, in order.
fn log_of(n: &Value) -> Vec<&str> {
    n["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"].as_str().unwrap())
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
        11
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "rejected").count(), 3);
    assert_eq!(outcomes.iter().filter(|o| **o == "notified").count(), 11);
    assert_eq!(outcomes.iter().filter(|o| **o == "skipped").count(), 1);
    // every notification of the sample set ends as it always has (the republished order last
    // adds nothing)
    let mut endings: Vec<String> = reports[..reports.len() - 1]
        .iter()
        .flat_map(|r| r["notifications"].as_array().cloned().unwrap_or_default())
        .map(|n| {
            format!(
                "{}:{}",
                n["channel"].as_str().unwrap(),
                n["status"].as_str().unwrap()
            )
        })
        .collect();
    endings.sort();
    assert_eq!(
        endings,
        [
            // org_globex's SendGrid and Twilio (the stand-ins) called back: delivered
            "email:delivered",
            "email:delivered",
            "email:pending",
            "email:sent",
            "email:sent",
            "email:sent",
            "email:sent",
            "email:sent",
            "email:sent",
            "in_app:delivered",
            "in_app:delivered",
            "in_app:delivered",
            // the sample organization has platform applications: alice's devices get it
            "push:sent",
            "sms:delivered",
            "sms:sent",
            "sms:sent",
            "whatsapp:delivered",
        ]
    );
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
    let history = log_of(n);
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

    // org_globex's order: SendGrid and WhatsApp, each from sent to delivered by the providers'
    // own callbacks, each announced on the bus
    let globex = &orders[1];
    for n in globex["notifications"].as_array().unwrap() {
        let history = log_of(n);
        assert_eq!(
            history,
            vec!["created", "sending", "sent", "delivered"],
            "{n}"
        );
        assert!(
            globex["published"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["detail_type"] == "NotificationDelivered"
                    && p["notification_id"] == n["id"]),
            "{globex}"
        );
    }
    let channels: Vec<&str> = globex["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, vec!["email", "whatsapp"]);

    // org_acme's own type (events/templates/org_acme.json), in French for bruno (fr-CA)
    let loyalty = reports
        .iter()
        .find(|r| r["notifications"][0]["type"] == "loyalty_points_earned")
        .expect("the organization's own type was sent");
    for n in loyalty["notifications"].as_array().unwrap() {
        assert_eq!(
            n["template"],
            json!({"source": "organization", "version": 1})
        );
        assert!(n["body"].as_str().unwrap().contains("420 points"), "{n}");
    }
    assert_eq!(
        loyalty["notifications"][0]["subject"],
        "Vous avez gagné 60 points"
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

/// Runs `herald-local preview` with these arguments: its exit status, standard output and error.
fn preview(args: &[&str], endpoint: Option<&str>) -> (bool, String, String) {
    let out = herald_local(args, endpoint);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn preview_renders_the_builtin_templates_with_the_sample_or_a_given_context() {
    let (ok, out, _) = preview(
        &["preview", "refund_issued", "--locale", "fr-CA", "--json"],
        None,
    );
    assert!(ok);
    let channels: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(channels.len(), 2, "email and sms: {out}");
    let sms = &channels[1];
    assert_eq!(sms["channel"], "sms");
    assert_eq!(sms["rendered"]["locale"], "fr");
    assert_eq!(sms["rendered"]["template"], json!({"source": "builtin"}));
    assert_eq!(sms["rendered"]["sms_segments"], 1);
    assert!(
        sms["rendered"]["text"]
            .as_str()
            .unwrap()
            .contains("ref_2001")
    );

    let dir = std::env::temp_dir().join(format!("herald-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let context = dir.join("context.json");
    std::fs::write(
        &context,
        json!({"refund_id": "ref_9", "order_id": "ord_9", "amount": "7.50", "currency": "USD"})
            .to_string(),
    )
    .unwrap();
    let (ok, out, _) = preview(
        &[
            "preview",
            "refund_issued",
            "--channel",
            "email",
            "--context",
            context.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok);
    assert!(
        out.starts_with("email (en, built-in)\n  subject: "),
        "{out}"
    );
    assert!(out.contains("$7.50") && out.contains("ord_9"), "{out}");

    // a context the type's variables refuse: the field named, nothing printed, a failure
    std::fs::write(&context, json!({"refund_id": "ref_9"}).to_string()).unwrap();
    let (ok, out, err) = preview(
        &[
            "preview",
            "refund_issued",
            "--context",
            context.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && out.is_empty());
    assert!(err.contains("context.amount is missing"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();

    // a channel the type has no template for, and a type nobody defined
    let (ok, out, _) = preview(&["preview", "order_confirmation", "--channel", "sms"], None);
    assert!(!ok);
    assert!(out.starts_with("sms: not sent:"), "{out}");
    let (ok, _, err) = preview(&["preview", "loyalty_points_earned"], None);
    assert!(!ok);
    assert!(
        err.contains("unknown notification type loyalty_points_earned"),
        "{err}"
    );
}

#[test]
fn preview_of_an_organization_renders_its_templates_as_the_stage_stores_them() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let url = emulator.endpoint.as_str();
    // a run of the stage stores the sample organizations' templates (events/templates)
    run(
        &[
            "--stage",
            "previewed",
            "send",
            events("01-organization-settings-changed.json")
                .to_str()
                .unwrap(),
        ],
        Some(url),
    );
    let at = |args: &[&str]| {
        preview(
            &[&["--stage", "previewed", "preview"], args].concat(),
            Some(url),
        )
    };
    let (ok, out, err) = at(&[
        "loyalty_points_earned",
        "--org",
        "org_acme",
        "--locale",
        "fr-CA",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(
            "email (fr, the organization's version 1)\n  subject: Vous avez gagné 60 points\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("in_app (fr, the organization's version 1)"),
        "{out}"
    );
    // the organization's types are its own: another organization, or none, cannot preview it
    let (ok, _, err) = at(&["loyalty_points_earned", "--org", "org_globex"]);
    assert!(!ok);
    assert!(err.contains("unknown notification type"), "{err}");
    // an organization without templates of its own gets the built-in ones
    let (ok, out, err) = at(&[
        "order_confirmation",
        "--org",
        "org_globex",
        "--channel",
        "email",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("email (en, built-in)"), "{out}");
    // --org reads a running stage: without one it says how to start it
    let (ok, _, err) = preview(
        &["preview", "order_confirmation", "--org", "org_acme"],
        None,
    );
    assert!(!ok);
    assert!(err.contains("AWS_ENDPOINT_URL"), "{err}");
    drop(emulator);
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
    let history = log_of(n);
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

/// A long-running verb (`start`, `serve`) against an emulator; stopped when dropped.
struct Running {
    child: std::process::Child,
    /// What it printed before settling down: up to its `# Ctrl-C` line.
    header: Vec<String>,
}

impl Running {
    fn new(args: &[&str], endpoint: &str) -> Running {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald-local"))
            .args(args)
            .env("AWS_ENDPOINT_URL", endpoint)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Running {
            child,
            header: Vec::new(),
        };
        while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
            let last = line.starts_with("# Ctrl-C");
            running.header.push(line);
            if last {
                break;
            }
        }
        running
    }

    /// The `export NAME=VALUE` lines it printed.
    fn exports(&self) -> std::collections::BTreeMap<String, String> {
        self.header
            .iter()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The served address (`serve`'s first line).
    fn served(&self) -> String {
        self.header[0]
            .split("http://")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts the event in this sample file on the bus as another program would (PutEvents
/// through the SDK); returns the event id the bus gave it.
async fn put_on_bus(aws: &aws_config::SdkConfig, bus: &str, name: &str) -> String {
    let event: Value =
        serde_json::from_str(&std::fs::read_to_string(events(name)).unwrap()).unwrap();
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(event["source"].as_str().unwrap())
        .detail_type(event["detail-type"].as_str().unwrap())
        .detail(event["detail"].to_string())
        .build();
    let out = aws_sdk_eventbridge::Client::new(aws)
        .put_events()
        .entries(entry)
        .send()
        .await
        .unwrap();
    out.entries.unwrap()[0].event_id.clone().unwrap()
}

/// Waits (a bounded while) for intake's record of this event.
async fn intake_record(
    aws: &aws_config::SdkConfig,
    stage: &str,
    event_id: &str,
) -> Option<herald_core::record::IntakeRecord> {
    intake_record_within(aws, stage, "org_acme", event_id, 80).await
}

/// Intake's record of this event, looked for this many times, a quarter second apart.
async fn intake_record_within(
    aws: &aws_config::SdkConfig,
    stage: &str,
    org: &str,
    event_id: &str,
    tries: usize,
) -> Option<herald_core::record::IntakeRecord> {
    use herald_core::ports::NotificationStore;
    let store = herald_adapters::DynamoNotificationStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        herald_local::Names::new(stage).notifications_table(),
    );
    let org = herald_core::ids::OrgId::parse(org).unwrap();
    for _ in 0..tries {
        if let Some(record) = store.get_intake(Some(&org), event_id).await.unwrap() {
            return Some(record);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    None
}

/// Waits (a bounded while) for a notification to reach this status.
async fn status_of(
    aws: &aws_config::SdkConfig,
    stage: &str,
    org: &str,
    id: &herald_core::ids::NotificationId,
    wanted: &str,
) -> String {
    use herald_core::ports::NotificationStore;
    let store = herald_adapters::DynamoNotificationStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        herald_local::Names::new(stage).notifications_table(),
    );
    let org = herald_core::ids::OrgId::parse(org).unwrap();
    let mut status = String::new();
    for _ in 0..80 {
        if let Some(n) = store.get(&org, id).await.unwrap() {
            status = n.status.to_string();
            if status == wanted {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    status
}

/// Another program puts a contact and an order on the running stack's bus: both reach intake
/// and the order confirmation is sent, with nothing but the running verb to move them.
async fn events_put_by_another_program_are_processed(running: &Running, stage: &str) {
    let exports = running.exports();
    let endpoint = &exports["AWS_ENDPOINT_URL"];
    let bus = exports
        .get("HERALD_EVENT_BUS_NAME")
        .unwrap_or_else(|| panic!("no bus among the exports: {:?}", running.header));
    assert_eq!(bus, &format!("herald-{stage}"));
    let emulator = herald_local::Emulator::connect(endpoint).await.unwrap();
    let aws = emulator.aws_config().await;

    let contact = put_on_bus(&aws, bus, "04-customer-contact-changed-carol.json").await;
    let record = intake_record(&aws, stage, &contact)
        .await
        .expect("the contact reached intake");
    assert_eq!(record.outcome.as_str(), "directory_updated");

    let order = put_on_bus(&aws, bus, "10-order-created.json").await;
    let record = intake_record(&aws, stage, &order)
        .await
        .expect("the order reached intake");
    assert_eq!(record.outcome.as_str(), "notified", "{record:?}");
    assert_eq!(
        status_of(&aws, stage, "org_acme", &record.notifications[0], "sent").await,
        "sent"
    );
}

#[test]
fn start_processes_what_another_program_puts_on_the_bus() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let started = Running::new(&["--stage", "started", "start"], &emulator.endpoint);
    runtime.block_on(events_put_by_another_program_are_processed(
        &started, "started",
    ));
    drop(started);
    drop(emulator);
}

#[test]
fn serve_processes_what_another_program_puts_on_the_bus_and_exports_as_start_does() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let served = Running::new(
        &["--stage", "servedbus", "serve", "--port", "0"],
        &emulator.endpoint,
    );
    runtime.block_on(events_put_by_another_program_are_processed(
        &served,
        "servedbus",
    ));
    let started = Running::new(&["--stage", "servedbus", "start"], &emulator.endpoint);
    // each process has its own stand-ins and webhooks; everything else is the stage's
    let per_process = [
        "HERALD_PUBLIC_BASE_URL",
        "HERALD_SENDGRID_BASE_URL",
        "HERALD_TWILIO_BASE_URL",
    ];
    let (mut served_exports, mut started_exports) = (served.exports(), started.exports());
    for name in per_process {
        for exports in [&mut served_exports, &mut started_exports] {
            let url = exports.remove(name).unwrap_or_default();
            assert!(url.starts_with("http://127.0.0.1:"), "{name}={url}");
        }
    }
    assert_eq!(
        served_exports, started_exports,
        "serve exports what start does"
    );
    drop((served, started));
    drop(emulator);
}

/// `serve` on its own: the sample organization that uses SendGrid and Twilio (played by the
/// stand-ins) gets an order on the bus, and its email and WhatsApp message go from sent to
/// delivered through the providers' signed callbacks to the served webhooks.
#[test]
fn serve_takes_the_providers_callbacks_without_a_hand_made_webhook() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let served = Running::new(
        &["--stage", "callbacks", "serve", "--port", "0"],
        &emulator.endpoint,
    );
    let bus = served.exports()["HERALD_EVENT_BUS_NAME"].clone();
    runtime.block_on(async {
        let aws = emulator.aws_config().await;
        for sample in [
            "20-organization-settings-changed-globex.json",
            "21-customer-contact-changed-dana.json",
            "22-preferences-changed-dana.json",
        ] {
            let id = put_on_bus(&aws, &bus, sample).await;
            intake_record_within(&aws, "callbacks", "org_globex", &id, 80)
                .await
                .unwrap_or_else(|| panic!("{sample} reached intake"));
        }
        let order = put_on_bus(&aws, &bus, "23-order-created-globex.json").await;
        let record = intake_record_within(&aws, "callbacks", "org_globex", &order, 80)
            .await
            .expect("the order reached intake");
        assert_eq!(record.notifications.len(), 2, "{record:?}");
        for id in &record.notifications {
            assert_eq!(
                status_of(&aws, "callbacks", "org_globex", id, "delivered").await,
                "delivered"
            );
        }
    });
    drop(served);
    drop(emulator);
}

#[test]
fn send_against_a_served_stack_runs_alone_and_the_feed_counts_each_item_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let url = emulator.endpoint.clone();
    let served = Running::new(&["--stage", "shared", "serve", "--port", "0"], &url);
    let addr = served.served();
    let files = [
        events("04-customer-contact-changed-carol.json"),
        events("10-order-created.json"),
        events("11-order-delivered.json"),
    ];
    let files: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    for _ in 0..2 {
        let sent = run(
            &[&["--stage", "shared", "send"], &files[..]].concat(),
            Some(&url),
        );
        assert_eq!(sent.len(), 3);
        let order = &sent[1]["notifications"][0];
        let history = log_of(order);
        assert_eq!(
            (
                order["status"].as_str(),
                history,
                order["in_feed"].as_bool()
            ),
            (Some("sent"), vec!["created", "sending", "sent"], Some(true)),
            "send reports the outcome of its own run: {order}"
        );
        assert_eq!(sent[2]["notifications"][0]["status"], "pending");
    }
    let token = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_herald-local"))
            .args(["token", "--org", "org_acme", "--customer", "cus_carol"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let feed: Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("http://{addr}/customers/cus_carol/notifications"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    // the order's email, once; the review prompt waits a week, so it is in no feed yet
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{feed}");
    assert_eq!(feed["unread"], 1, "one unread per item: {feed}");
    drop(served);
    drop(emulator);
}

#[test]
fn a_running_start_pauses_while_another_process_pumps_its_stage() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime.block_on(herald_local::Emulator::start()).unwrap();
    let started = Running::new(&["--stage", "paused", "start"], &emulator.endpoint);
    let bus = started.exports()["HERALD_EVENT_BUS_NAME"].clone();
    runtime.block_on(async {
        let aws = emulator.aws_config().await;
        // what `send`, `up` and `tick` hold while they run
        let lock = herald_local::pump::PumpLock::acquire(
            &emulator.endpoint,
            "paused",
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
        let contact = put_on_bus(&aws, &bus, "04-customer-contact-changed-carol.json").await;
        assert!(
            intake_record_within(&aws, "paused", "org_acme", &contact, 12)
                .await
                .is_none(),
            "start left the stage to the lock's holder"
        );
        drop(lock);
        assert!(
            intake_record(&aws, "paused", &contact).await.is_some(),
            "start took over again"
        );
    });
    drop(started);
    drop(emulator);
}
