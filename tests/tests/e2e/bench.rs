//! How long a large SendGrid batch takes, and how many AWS requests it makes, against the
//! emulator. Ignored by default (it writes tens of thousands of items); run it with
//! `cargo test -p herald-e2e --release bench -- --ignored --nocapture` and
//! `HERALD_BENCH_EVENTS` to change the batch size (default 10,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use chrono::Utc;
use futures::StreamExt;
use herald_core::ids::{BusinessKey, CustomerId, EmailAddress, Locale, NotificationType};
use herald_core::model::{Address, Channel, Draft, Notification, Recipient, Status};
use herald_core::ports::NotificationStore;
use herald_e2e::{Harness, SendGridSigner};
use herald_local::stand_ins::SENDGRID_KEY;
use serde_json::{Value, json};

/// Counts the requests a client sends.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "request counter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn sent_notification(h: &Harness, i: usize) -> Notification {
    let now = Utc::now();
    let key = BusinessKey::parse(format!("ord_bench_{i}")).unwrap();
    let notification_type = NotificationType::parse("order_confirmation").unwrap();
    let recipient = Recipient::Customer(CustomerId::parse(format!("cus_{i}")).unwrap());
    {
        let mut n = Notification::new(
            Draft {
                org_id: h.org_id(),
                notification_type,
                recipient,
                channel: Channel::Email,
                business_key: key,
                source_event_id: format!("ev_{i}"),
                address: Address::Email(EmailAddress::parse(h.email(&format!("b{i}"))).unwrap()),
                sender: None,
                locale: Locale::parse("en").unwrap(),
                subject: Some("s".into()),
                body: "b".into(),
                html_body: None,
                sms_segments: None,
                internal: false,
                critical: false,
                scheduled_for: None,
            },
            now,
        );
        n.status = Status::Sent;
        n.revision = 2;
        n.attempts = 1;
        n.provider_message_id = Some(format!("sgbench{i:08}"));
        n.sent_at = Some(now);
        n
    }
}

#[tokio::test]
#[ignore = "a measurement: slow against the emulator"]
async fn bench_a_large_sendgrid_batch() {
    let events: usize = std::env::var("HERALD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (h, _fake) = Harness::with_fake_providers().await;
    let signer = SendGridSigner::new().unwrap();
    h.set_provider(
        "sendgrid",
        json!({"api_key": SENDGRID_KEY, "webhook_public_key": signer.public_key()}),
    )
    .await;
    // one delivered event per notification: the most writes a batch of this size can ask for
    let notifications: Vec<Notification> = (0..events).map(|i| sent_notification(&h, i)).collect();
    futures::stream::iter(&notifications)
        .for_each_concurrent(16, |n| {
            let store = h.local.store.clone();
            async move {
                store.create(n).await.unwrap();
            }
        })
        .await;
    let batch: Vec<Value> = notifications
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"email": "x@example.com", "event": "delivered", "sg_event_id": format!("bench-{i}"),
                   "sg_message_id": format!("{}.filterdrecv-1", n.provider_message_id.as_deref().unwrap()),
                   "timestamp": Utc::now().timestamp(), "herald_notification_id": n.id.as_str()})
        })
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();

    let counter = Counter::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&h.local.aws)
            .interceptor(counter.clone())
            .build(),
    );
    let (mut w, _) = h.webhooks();
    let store = Arc::new(herald_adapters::DynamoNotificationStore::new(
        dynamo.clone(),
        h.local.stack.names.notifications_table(),
    ));
    w.service.store = store.clone();
    w.service.deliveries = store;
    w.service.directory = Arc::new(herald_adapters::DynamoDirectory::new(
        dynamo,
        h.local.stack.names.directory_table(),
    ));

    let path = format!("/webhooks/sendgrid/{}", h.org);
    let started = Instant::now();
    let (code, answer) = h
        .post_webhook(
            &w,
            &path,
            &signer.headers(&body, Utc::now().timestamp()),
            body,
        )
        .await;
    let elapsed = started.elapsed();
    let requests = counter.0.load(Ordering::Relaxed);
    eprintln!(
        "{events} SendGrid events: {code} in {:.1} s, {requests} DynamoDB requests ({:.2} per event); {answer}",
        elapsed.as_secs_f64(),
        requests as f64 / events as f64
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["applied"].as_u64(), Some(events as u64), "{answer}");
}
