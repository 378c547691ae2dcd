#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! The SendGrid and Twilio stand-ins call back as the providers do: signed so that Herald's
//! own verification accepts them, in order for each message, retried when refused, and only
//! when told to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use herald_core::provider_events::{DeliveryKind, sendgrid, twilio};
use herald_local::stand_ins::{Delivery, SENDGRID_KEY, StandIns, TWILIO_SID, TWILIO_TOKEN};
use serde_json::{Value, json};

/// A webhook that records each request and answers the scripted statuses, then 200.
#[derive(Clone, Default)]
struct Hook {
    received: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
}

async fn record(State(hook): State<Hook>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    hook.received
        .lock()
        .unwrap()
        .push((uri.to_string(), headers, body));
    hook.answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(StatusCode::OK)
}

/// Starts a hook answering `answers` first; its base URL.
async fn hook(answers: &[StatusCode]) -> (Hook, String) {
    let hook = Hook::default();
    hook.answers.lock().unwrap().extend(answers);
    let app = axum::Router::new()
        .fallback(record)
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hook, url)
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).unwrap().to_str().unwrap().to_string()
}

async fn send_mail(stand_ins: &StandIns, key: &str) -> String {
    let mail = json!({
        "personalizations": [{"to": [{"email": "dana@example.com"}],
            "custom_args": {"herald_org_id": "org_a", "herald_notification_id": "ntf_0123456789abcdef0123456789abcdef"}}],
        "from": {"email": "notifications@herald.example"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}],
    });
    let response = reqwest::Client::new()
        .post(format!("{}/v3/mail/send", stand_ins.url()))
        .bearer_auth(key)
        .json(&mail)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.headers()["x-message-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn sendgrid_posts_signed_events_in_order_and_retries_a_refusal() {
    let stand_ins = StandIns::start().await.unwrap();
    stand_ins.call_back();
    let (hook, url) = hook(&[StatusCode::SERVICE_UNAVAILABLE]).await;
    stand_ins.sendgrid_account("SG.account-a", format!("{url}/webhooks/sendgrid/org_a"));
    let id = send_mail(&stand_ins, "SG.account-a").await;

    // the first call is refused: it and the call after it about the same message wait
    assert_eq!(
        stand_ins.deliver_callbacks().await,
        Delivery {
            delivered: 0,
            pending: 2,
            abandoned: 0
        }
    );
    assert_eq!(
        stand_ins.deliver_callbacks().await,
        Delivery {
            delivered: 2,
            pending: 0,
            abandoned: 0
        }
    );
    assert_eq!(stand_ins.deliver_callbacks().await, Delivery::default());

    let received = hook.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    let mut kinds = Vec::new();
    for (path, headers, body) in &received[1..] {
        assert_eq!(path, "/webhooks/sendgrid/org_a");
        sendgrid::verify(
            &stand_ins.sendgrid_public_key(),
            &header(headers, sendgrid::TIMESTAMP_HEADER),
            body,
            &header(headers, sendgrid::SIGNATURE_HEADER),
            chrono::Utc::now(),
            chrono::Duration::minutes(5),
        )
        .expect("Herald accepts the signature");
        let batch = sendgrid::parse(body).unwrap();
        assert_eq!(batch.ignored, 0);
        let event = &batch.events[0];
        assert_eq!(event.provider_message_id, id);
        assert_eq!(
            event.notification_hint.as_ref().map(|n| n.as_str()),
            Some("ntf_0123456789abcdef0123456789abcdef")
        );
        kinds.push(event.kind.clone());
    }
    assert_eq!(kinds, [DeliveryKind::InTransit, DeliveryKind::Delivered]);
}

#[tokio::test]
async fn an_account_without_a_webhook_and_stand_ins_not_told_to_call_back_post_nothing() {
    let stand_ins = StandIns::start().await.unwrap();
    // SENDGRID_KEY's account has no event webhook
    stand_ins.call_back();
    send_mail(&stand_ins, SENDGRID_KEY).await;
    assert_eq!(stand_ins.deliver_callbacks().await, Delivery::default());

    let quiet = StandIns::start().await.unwrap();
    let (hook, url) = hook(&[]).await;
    quiet.sendgrid_account("SG.account-b", format!("{url}/webhooks/sendgrid/org_b"));
    send_mail(&quiet, "SG.account-b").await;
    assert_eq!(quiet.deliver_callbacks().await, Delivery::default());
    assert!(hook.received.lock().unwrap().is_empty());
    assert_eq!(
        quiet.sendgrid_requests().len(),
        1,
        "the mail itself is accepted"
    );
}

#[tokio::test]
async fn a_key_no_account_holds_is_refused_as_sendgrid_refuses_it() {
    let stand_ins = StandIns::start().await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/v3/mail/send", stand_ins.url()))
        .bearer_auth("SG.nobody")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("authorization grant")
    );
}

#[tokio::test]
async fn twilio_posts_signed_statuses_to_the_messages_status_callback() {
    let stand_ins = StandIns::start().await.unwrap();
    stand_ins.call_back();
    let (hook, url) = hook(&[]).await;
    let callback = format!("{url}/webhooks/twilio/org_a?n=ntf_0123456789abcdef0123456789abcdef");
    let form = [
        ("To", "whatsapp:+14155550104"),
        ("From", "whatsapp:+14155550181"),
        ("ContentSid", "HX71ffc4ffa9b3a0d58f59aaa4459cdc98"),
        ("ContentVariables", r#"{"1":"ord_1"}"#),
        ("StatusCallback", callback.as_str()),
    ];
    let response = reqwest::Client::new()
        .post(format!(
            "{}/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
            stand_ins.url()
        ))
        .basic_auth(TWILIO_SID, Some(TWILIO_TOKEN))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let sid = response.json::<Value>().await.unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(stand_ins.deliver_callbacks().await.delivered, 2);
    let received = hook.received.lock().unwrap().clone();
    let mut statuses = Vec::new();
    for (path, headers, body) in &received {
        assert_eq!(format!("{url}{path}"), callback);
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap();
        twilio::verify(
            &callback,
            &params,
            TWILIO_TOKEN,
            &header(headers, "x-twilio-signature"),
        )
        .expect("Herald accepts the signature");
        let event = twilio::parse(&params, chrono::Utc::now()).unwrap();
        assert_eq!(event.provider_message_id, sid);
        assert!(params.contains(&("ChannelPrefix".into(), "whatsapp".into())));
        statuses.push(event.kind.clone());
    }
    assert_eq!(statuses, [DeliveryKind::InTransit, DeliveryKind::Delivered]);
}

#[tokio::test]
async fn a_webhook_that_keeps_refusing_is_given_up_on() {
    let stand_ins = StandIns::start().await.unwrap();
    stand_ins.call_back();
    let (_hook, url) = hook(&[StatusCode::INTERNAL_SERVER_ERROR; 20]).await;
    stand_ins.sendgrid_account("SG.account-c", format!("{url}/webhooks/sendgrid/org_c"));
    send_mail(&stand_ins, "SG.account-c").await;
    // each call is tried a few times, then dropped; none is ever delivered
    let mut abandoned = 0;
    for _ in 0..20 {
        let round = stand_ins.deliver_callbacks().await;
        assert_eq!(round.delivered, 0);
        abandoned += round.abandoned;
        if round.pending == 0 {
            break;
        }
    }
    assert_eq!(abandoned, 2, "processed and delivered, both given up");
    assert_eq!(stand_ins.deliver_callbacks().await, Delivery::default());
}

#[test]
fn processes_that_keep_the_key_in_one_file_sign_with_one_key() {
    use herald_local::stand_ins::SendGridSigner;
    let file = std::env::temp_dir()
        .join(format!("herald-stand-in-key-{}", std::process::id()))
        .join("sendgrid.pk8");
    let _ = std::fs::remove_file(&file);
    // several at once, as `serve` and `send` may start together
    let keys: Vec<String> = std::thread::scope(|s| {
        let started: Vec<_> = (0..4)
            .map(|_| s.spawn(|| SendGridSigner::kept_in(&file).unwrap().public_key()))
            .collect();
        started.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let later = SendGridSigner::kept_in(&file).unwrap().public_key();
    assert!(keys.iter().all(|k| *k == later), "{keys:?} {later}");
    assert_ne!(later, SendGridSigner::new().unwrap().public_key());
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
