//! Dispatch against the emulator: claims, sends, failures, batches.

use std::sync::Arc;

use herald_core::ids::{NotificationId, OrgId};
use herald_core::model::{Channel, DeliveryService, Status};
use herald_core::ports::{ChannelSender, NotificationStore};
use herald_core::testing::{Script, ScriptedSender};
use herald_e2e::Harness;
use lambda_runtime::LambdaEvent;
use serde_json::json;

async fn one_pending_email(h: &Harness, email: &str) -> (OrgId, NotificationId) {
    h.run(&[h.contact("cus_p", email, None, "en").await]).await;
    let record = h.invoke_intake(&h.order_created("cus_p", "ord_p")).await;
    (
        OrgId::parse(h.org.as_str()).unwrap(),
        record.notifications[0].clone(),
    )
}

#[tokio::test]
async fn the_same_message_twice_or_two_racing_dispatchers_send_one_email() {
    let h = Harness::new().await;
    let email = h.email("race");
    one_pending_email(&h, &email).await;
    let batch = h.dispatch_batch().await;
    assert_eq!(batch.records.len(), 1);
    let (a, b) = (h.stack_dispatcher(), h.stack_dispatcher());
    let (ra, rb) = futures::join!(
        herald_dispatch::handle(&a, LambdaEvent::new(batch.clone(), Default::default())),
        herald_dispatch::handle(&b, LambdaEvent::new(batch.clone(), Default::default())),
    );
    assert!(ra.unwrap().batch_item_failures.is_empty());
    assert!(rb.unwrap().batch_item_failures.is_empty());
    // and once more, as a redelivery
    let again = herald_dispatch::handle(&a, LambdaEvent::new(batch, Default::default()))
        .await
        .unwrap();
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(h.sent().await.emails_to(&email).len(), 1);
}

#[tokio::test]
async fn an_unverified_sender_is_the_accounts_refusal_retried_until_the_attempts_are_spent() {
    let h = Harness::new().await;
    // the organization's own domain, which SES has not verified
    h.own_identity("unverified.example").await;
    let email = h.email("hard");
    h.run(&[h.event(
        "OrganizationSettingsChanged",
        "admin",
        json!({"sender_email": "billing@unverified.example"}),
    )])
    .await;
    let (org, id) = one_pending_email(&h, &email).await;
    // one attempt only: the refusal stands, so the attempts are spent at once
    let ses = h
        .local
        .dispatch
        .senders
        .get(Channel::Email, DeliveryService::Ses)
        .expect("SES sends email")
        .clone();
    let one_attempt = herald_core::retry::RetryPolicy::new(
        1,
        std::time::Duration::from_secs(300),
        6,
        std::time::Duration::from_secs(7200),
    )
    .unwrap();
    let dispatcher = h.dispatcher(ses, Arc::new(herald_core::ports::SystemClock), one_attempt);
    h.dispatch_with(&dispatcher).await;
    let n = h.local.store.get(&org, &id).await.unwrap().unwrap();
    assert_eq!(n.status, Status::Failed);
    assert_eq!(n.attempts, 1);
    assert_eq!(
        n.last_error.as_deref(),
        Some("gave up after 1 attempts: SES will not send for the account: MessageRejected")
    );
    // an account's refusal: SES was tried, and another provider would have been asked
    assert_eq!(n.tried.len(), 1);
    assert_eq!(
        (n.tried[0].provider, n.tried[0].kind),
        (
            DeliveryService::Ses,
            herald_core::model::FailureKind::Account
        )
    );
    assert!(n.failed_at.is_some());
    assert_eq!(h.queue_depth().await, (0, 0), "nothing left to retry");
    // the dead letter is queryable by organization
    let dynamo = aws_sdk_dynamodb::Client::new(&h.local.aws);
    let dead = dynamo
        .query()
        .table_name(h.local.stack.names.notifications_table())
        .index_name("dead_letters")
        .key_condition_expression("dl_org = :org")
        .expression_attribute_values(
            ":org",
            aws_sdk_dynamodb::types::AttributeValue::S(h.org.clone()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(dead.count(), 1);
}

#[tokio::test]
async fn an_unreachable_provider_is_a_soft_failure_retried_with_a_delay() {
    let h = Harness::new().await;
    let email = h.email("soft");
    let (org, id) = one_pending_email(&h, &email).await;
    // SES at an address where nothing listens: the request never gets an answer.
    let dead_ses = aws_config::SdkConfig::builder()
        .endpoint_url("http://127.0.0.1:9")
        .region(h.local.aws.region().cloned())
        .credentials_provider(h.local.aws.credentials_provider().unwrap())
        .behavior_version(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let sender = Arc::new(herald_adapters::SesEmailSender::new(
        aws_sdk_sesv2::Client::new(&dead_ses),
        None,
    ));
    let dispatcher = h.dispatcher_with_email(sender);
    let batch = h.dispatch_batch().await;
    let response =
        herald_dispatch::handle(&dispatcher, LambdaEvent::new(batch, Default::default()))
            .await
            .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "a soft failure is handled, not a failed record"
    );
    let n = h.local.store.get(&org, &id).await.unwrap().unwrap();
    assert_eq!(n.status, Status::Retrying);
    assert_eq!(n.last_error.as_deref(), Some("SES could not be reached"));
    let wait = n.next_retry_at.unwrap() - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::minutes(4) && wait <= chrono::Duration::minutes(6),
        "{wait:?}"
    );
    assert_eq!(h.queue_depth().await, (0, 1), "back on the queue, delayed");
    assert!(h.sent().await.emails_to(&email).is_empty());
}

#[tokio::test]
async fn a_panicking_sender_fails_only_its_record() {
    let h = Harness::new().await;
    let (a, b) = (h.email("pa"), h.email("pb"));
    h.run(&[
        h.contact("cus_a", &a, None, "en").await,
        h.contact("cus_b", &b, None, "en").await,
    ])
    .await;
    h.invoke_intake(&h.order_created("cus_a", "ord_a")).await;
    h.invoke_intake(&h.order_created("cus_b", "ord_b")).await;
    let batch = h.dispatch_batch().await;
    assert_eq!(batch.records.len(), 2);
    // the first send panics, the second goes through the real SES
    struct PanicsFirst(Arc<ScriptedSender>, Arc<dyn ChannelSender>);
    #[async_trait::async_trait]
    impl ChannelSender for PanicsFirst {
        async fn send(
            &self,
            n: &herald_core::model::Notification,
        ) -> Result<herald_core::ports::Receipt, herald_core::ports::SendError> {
            self.0.send(n).await?;
            self.1.send(n).await
        }
    }
    let sender = Arc::new(PanicsFirst(
        ScriptedSender::new(vec![Script::Panic, Script::Accept]),
        h.local
            .dispatch
            .senders
            .get(Channel::Email, DeliveryService::Ses)
            .expect("SES sends email")
            .clone(),
    ));
    let dispatcher = h.dispatcher_with_email(sender);
    let response = herald_dispatch::handle(
        &dispatcher,
        LambdaEvent::new(batch.clone(), Default::default()),
    )
    .await
    .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    let failed_id = &response.batch_item_failures[0].item_identifier;
    assert!(
        batch
            .records
            .iter()
            .any(|r| r.message_id.as_ref() == Some(failed_id))
    );
    let sent = h.sent().await;
    assert_eq!(sent.emails_to(&a).len() + sent.emails_to(&b).len(), 1);
}

#[tokio::test]
async fn a_poison_record_fails_alone_and_unknown_notifications_are_acknowledged() {
    let h = Harness::new().await;
    let fixture: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_str(include_str!("../../../events/dispatch/sqs-poison.json")).unwrap();
    let poison_id = fixture
        .records
        .iter()
        .find(|r| r.body.as_deref() == Some("not json"))
        .and_then(|r| r.message_id.clone())
        .unwrap();
    let response = herald_dispatch::handle(
        &h.local.dispatch,
        LambdaEvent::new(fixture, Default::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        herald_adapters::sqs::failed_message_ids(&response),
        [poison_id.as_str()],
        "the good record (an unknown notification) is acknowledged"
    );
}

#[tokio::test]
async fn notifications_not_pending_or_not_due_are_not_sent() {
    let h = Harness::new().await;
    let email = h.email("np");
    one_pending_email(&h, &email).await;
    h.local.drain_dispatch().await.unwrap();
    assert_eq!(h.sent().await.emails_to(&email).len(), 1);
    // a late redelivery of the event re-enqueues nothing, and a stray message sends nothing
    h.invoke_intake(&h.order_created("cus_p", "ord_p")).await;
    assert_eq!(h.queue_depth().await, (0, 0));

    let scheduled = h.invoke_intake(&h.event(
        "NotificationRequested",
        "billing",
        json!({"customer_id": "cus_p", "idempotency_key": "later", "notification_type": "order_confirmation",
               "scheduled_for": (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339(),
               "context": {"order_id": "o9", "grand_total": "1", "currency": "USD", "items": [], "created_at": "2026-11-20T09:00:00Z"}}),
    ))
    .await;
    assert_eq!(
        h.queue_depth().await,
        (0, 0),
        "scheduled notifications are not enqueued"
    );
    let stray = serde_json::json!({"Records": [{"messageId": "m1", "body": serde_json::json!({"org_id": h.org, "notification_id": scheduled.notifications[0]}).to_string()}]});
    let stray: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(stray).unwrap();
    let response = herald_dispatch::handle(
        &h.local.dispatch,
        LambdaEvent::new(stray, Default::default()),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        h.sent().await.emails_to(&email).len(),
        1,
        "nothing sent before its time"
    );
}

#[tokio::test]
async fn an_outage_opens_the_breaker_holds_the_next_email_without_an_attempt_then_a_probe_sends_it()
{
    let h = Harness::with(herald_local::Options {
        breaker: herald_core::breaker::BreakerPolicy {
            // long enough that the next dispatch finds it open on a loaded machine
            cooling: std::time::Duration::from_secs(4),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let org = h.org_id();
    let mut contacts = Vec::new();
    for i in 0..6 {
        contacts.push(
            h.contact(&format!("cus_b{i}"), &h.email(&format!("b{i}")), None, "en")
                .await,
        );
    }
    h.run(&contacts).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let record = h
            .invoke_intake(&h.order_created(&format!("cus_b{i}"), &format!("ord_b{i}")))
            .await;
        ids.push(record.notifications[0].clone());
        if i == 4 {
            // five failures in the window: SES's breaker opens
            let down = h.dispatcher(
                h.unreachable_ses(),
                Arc::new(herald_core::ports::SystemClock),
                Default::default(),
            );
            h.dispatch_with(&down).await;
        }
    }
    for id in &ids[..5] {
        let n = h.local.store.get(&org, id).await.unwrap().unwrap();
        assert_eq!((n.status, n.attempts), (Status::Retrying, 1));
    }
    let down = h.dispatcher(
        h.unreachable_ses(),
        Arc::new(herald_core::ports::SystemClock),
        Default::default(),
    );
    h.dispatch_with(&down).await;
    let held = h.local.store.get(&org, &ids[5]).await.unwrap().unwrap();
    assert_eq!(held.status, Status::Retrying);
    assert_eq!(held.attempts, 0, "SES was not asked: no attempt spent");
    assert_eq!(
        held.error_code.as_ref().map(|c| c.as_str()),
        Some("circuit_open")
    );
    let reopens = held.next_retry_at.unwrap() - chrono::Utc::now();
    assert!(reopens <= chrono::Duration::seconds(4), "{reopens:?}");

    // the cooling period passes; SES is back: the held email is the probe, and closes it
    let wait = reopens + chrono::Duration::milliseconds(1300); // SQS delays in whole seconds
    tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    h.dispatch_with(&h.stack_dispatcher()).await;
    let sent = h.local.store.get(&org, &ids[5]).await.unwrap().unwrap();
    assert_eq!(sent.status, Status::Sent);
    assert_eq!(
        (sent.attempts, sent.provider),
        (1, Some(DeliveryService::Ses))
    );
    assert_eq!(h.sent().await.emails_to(&h.email("b5")).len(), 1);
    let breakers = herald_adapters::DynamoBreakers::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.directory_table(),
    );
    use herald_core::ports::Breakers;
    assert!(
        breakers
            .read(&[(org.clone(), DeliveryService::Ses)])
            .await
            .unwrap()
            .is_empty(),
        "the probe's success closed the breaker"
    );
}

#[tokio::test]
async fn an_administrators_rate_limit_holds_a_burst_on_the_queue_and_sends_each_email_once() {
    let h = Harness::with(herald_local::Options {
        rate_limits: herald_core::rate_limit::RateLimits::parse_setting("sms=1/s").unwrap(),
        ..Default::default()
    })
    .await;
    let org = h.org_id();
    let api = h.api();
    let limits = json!({"email": {"per_second": 2}});
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/rate-limits",
            herald_e2e::As::Operator(org.as_str()),
            Some(limits.clone()),
        )
        .await;
    assert_eq!(code, 403, "administrators only");
    let (code, set) = h
        .call(
            &api,
            "PUT",
            "/admin/rate-limits",
            herald_e2e::As::Admin(org.as_str()),
            Some(limits.clone()),
        )
        .await;
    assert_eq!((code, &set["limits"]), (200, &limits), "{set}");
    // the deployment's limit holds the channels the organization's does not name
    assert_eq!(
        set["effective"],
        json!({"email": {"per_second": 2}, "sms": {"per_second": 1}})
    );

    let mut contacts = Vec::new();
    for i in 0..4 {
        contacts.push(
            h.contact(&format!("cus_r{i}"), &h.email(&format!("r{i}")), None, "en")
                .await,
        );
    }
    h.run(&contacts).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let record = h
            .invoke_intake(&h.order_created(&format!("cus_r{i}"), &format!("ord_r{i}")))
            .await;
        ids.push(record.notifications[0].clone());
    }
    h.dispatch_with(&h.stack_dispatcher()).await;
    let mut waiting = Vec::new();
    for id in &ids {
        let n = h.local.store.get(&org, id).await.unwrap().unwrap();
        match n.status {
            Status::Sent => assert_eq!(n.attempts, 1),
            Status::Pending => {
                assert_eq!(n.attempts, 0, "a delay is not an attempt");
                waiting.push(n.next_retry_at.unwrap());
            }
            other => panic!("{id}: {other}"),
        }
    }
    assert_eq!(waiting.len(), 2, "two a second leave at once");

    // SQS hands the delayed messages back when the bucket has room (delays in whole seconds)
    let last = waiting.into_iter().max().unwrap();
    let wait = last - chrono::Utc::now() + chrono::Duration::milliseconds(1300);
    tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    h.dispatch_with(&h.stack_dispatcher()).await;
    for (i, id) in ids.iter().enumerate() {
        let n = h.local.store.get(&org, id).await.unwrap().unwrap();
        assert_eq!((n.status, n.attempts), (Status::Sent, 1), "{id}");
        assert_eq!(
            h.sent().await.emails_to(&h.email(&format!("r{i}"))).len(),
            1
        );
    }
}

#[tokio::test]
async fn dispatch_and_the_projector_log_their_metrics_in_embedded_metric_format() {
    let h = Harness::new().await;
    let contact = h.contact("cus_m", &h.email("m"), None, "en").await;
    h.run(&[contact]).await;
    h.run_one(h.order_created("cus_m", "ord_m")).await;

    let text = String::from_utf8(h.local.metrics.lock().unwrap().clone()).unwrap();
    let docs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sent = docs
        .iter()
        .find(|d| d.get("Sent").is_some() && d["channel"] == "email")
        .unwrap_or_else(|| panic!("no email Sent in {text}"));
    assert_eq!(sent["Sent"], 1);
    assert_eq!(
        (&sent["provider"], &sent["org_id"]),
        (&json!("ses"), &json!(h.org))
    );
    let spec = &sent["_aws"]["CloudWatchMetrics"][0];
    assert!(spec["Namespace"].as_str().unwrap().starts_with("Herald"));
    assert_eq!(spec["Dimensions"][0], json!(["channel", "provider"]));
    let latency = docs
        .iter()
        .find(|d| d.get("SentLatency").is_some() && d["channel"] == "email")
        .unwrap();
    let ms = latency["SentLatency"][0].as_f64().unwrap();
    assert!((0.0..60_000.0).contains(&ms), "{ms}");
    // nothing but ids: no address or body reaches the metrics
    assert!(!text.contains(&h.email("m")));
}
