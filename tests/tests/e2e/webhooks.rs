//! Provider webhooks, verified and applied, against the emulator.

use chrono::Utc;
use herald_core::ids::NotificationId;
use herald_core::model::Status;
use herald_core::ports::NotificationStore;
use herald_core::ports::Views;
use herald_e2e::{Harness, PUBLIC_BASE, SES_TOPIC, SendGridSigner, sign_sns};
use herald_local::stand_ins::{SENDGRID_KEY, TWILIO_SID, TWILIO_TOKEN};
use serde_json::{Value, json};

/// A harness with SendGrid and Twilio set up for its organization, and a customer.
async fn setup() -> (Harness, SendGridSigner, String) {
    let (h, _fake) = Harness::with_fake_providers().await;
    let signer = SendGridSigner::new().unwrap();
    h.set_provider(
        "sendgrid",
        json!({"api_key": SENDGRID_KEY, "webhook_public_key": signer.public_key()}),
    )
    .await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"}),
    )
    .await;
    let email = h.email("w");
    h.run(&[
        h.contact("cus_w", &email, Some("+14155550177"), "en").await,
        h.preferences("cus_w", json!({"email": true, "sms": true}), json!([])),
    ])
    .await;
    std::mem::forget(_fake); // the fake server lives as long as the test's runtime
    (h, signer, email)
}

fn sendgrid_events(message_id: &str, events: &[(&str, &str)]) -> Vec<u8> {
    let list: Vec<Value> = events
        .iter()
        .map(|(event, id)| {
            json!({"email": "x@example.com", "event": event, "sg_event_id": id,
                   "sg_message_id": format!("{message_id}.filterdrecv-1"), "timestamp": Utc::now().timestamp()})
        })
        .collect();
    serde_json::to_vec(&list).unwrap()
}

async fn status(h: &Harness, id: &str) -> Status {
    h.local
        .store
        .get(&h.org_id(), &NotificationId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn sendgrid_delivered_then_opened_shows_in_the_feed_and_the_log() {
    let (h, signer, _) = setup().await;
    let report = h.run_one(h.order_created("cus_w", "ord_w1")).await;
    let n = &report.notifications[0];
    assert_eq!(n.status, "sent");
    let message_id = n.provider_message_id.clone().unwrap();
    let (w, _) = h.webhooks();
    let path = format!("/webhooks/sendgrid/{}", h.org);

    let body = sendgrid_events(&message_id, &[("processed", "ev1"), ("delivered", "ev2")]);
    let (code, answer) = h
        .post_webhook(
            &w,
            &path,
            &signer.headers(&body, Utc::now().timestamp()),
            body,
        )
        .await;
    assert_eq!(
        (code, answer["applied"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let stored = h
        .local
        .store
        .get(&h.org_id(), &NotificationId::parse(n.id.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, Status::Delivered, "{stored:?}");

    let body = sendgrid_events(&message_id, &[("open", "ev3")]);
    let (code, _) = h
        .post_webhook(
            &w,
            &path,
            &signer.headers(&body, Utc::now().timestamp()),
            body,
        )
        .await;
    assert_eq!(code, 200);
    let stored = h
        .local
        .store
        .get(&h.org_id(), &NotificationId::parse(n.id.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.opened_at.is_some());

    h.local.project().await.unwrap();
    let feed = h
        .local
        .views
        .feed(
            &h.org_id(),
            &herald_core::ids::CustomerId::parse("cus_w").unwrap(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(feed[0].status, Status::Delivered);
    let log: Vec<String> = h
        .local
        .views
        .log(&h.org_id(), &stored.id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.event)
        .collect();
    assert_eq!(
        log,
        vec!["created", "sending", "sent", "delivered", "opened"]
    );
}

#[tokio::test]
async fn an_unknown_webhook_is_404_and_a_get_405_both_as_json() {
    let h = Harness::new().await;
    let (w, _) = h.webhooks();
    let (code, body) = h
        .post_webhook(&w, "/webhooks/mailgun/org_x", &[], b"{}".to_vec())
        .await;
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    // an organization id that cannot be one names no webhook either
    let (code, body) = h
        .post_webhook(&w, "/webhooks/sendgrid/not%20an%20org", &[], b"[]".to_vec())
        .await;
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    let request = lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("/webhooks/sendgrid/{}", h.org))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let response = herald_webhooks::handle(&w, request).await.unwrap();
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(
        (response.status().as_u16(), body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn forged_stale_or_changed_webhooks_are_refused_and_change_nothing() {
    let (h, signer, _) = setup().await;
    let report = h.run_one(h.order_created("cus_w", "ord_w2")).await;
    let n = &report.notifications[0];
    let message_id = n.provider_message_id.clone().unwrap();
    let (w, _) = h.webhooks();
    let path = format!("/webhooks/sendgrid/{}", h.org);
    let body = sendgrid_events(&message_id, &[("delivered", "f1")]);
    let now = Utc::now().timestamp();

    let forger = SendGridSigner::new().unwrap();
    let (code, answer) = h
        .post_webhook(&w, &path, &forger.headers(&body, now), body.clone())
        .await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (code, _) = h
        .post_webhook(&w, &path, &signer.headers(&body, now - 3600), body.clone())
        .await;
    assert_eq!(code, 401, "stale timestamp");
    let headers = signer.headers(&body, now);
    let mut changed = body.clone();
    let at = changed.iter().position(|b| *b == b'd').unwrap();
    changed[at] = b'D';
    let (code, _) = h.post_webhook(&w, &path, &headers, changed).await;
    assert_eq!(code, 401, "body changed after signing");
    let (code, _) = h.post_webhook(&w, &path, &[], body.clone()).await;
    assert_eq!(code, 401, "no signature");
    assert_eq!(status(&h, &n.id).await, Status::Sent);

    // a body that does not parse, properly signed: 400
    let junk = b"not json".to_vec();
    let (code, _) = h
        .post_webhook(&w, &path, &signer.headers(&junk, now), junk)
        .await;
    assert_eq!(code, 400);
    // an unknown message: accepted
    let unknown = sendgrid_events("nobody-knows", &[("delivered", "u1")]);
    let (code, answer) = h
        .post_webhook(&w, &path, &signer.headers(&unknown, now), unknown)
        .await;
    assert_eq!((code, answer["unknown"].as_u64()), (200, Some(1)));
}

#[tokio::test]
async fn the_same_webhook_twice_changes_once_and_delivered_before_sent_ends_delivered() {
    let (h, signer, _) = setup().await;
    let report = h
        .run_one(h.event(
            "RefundIssued",
            "payments",
            json!({"customer_id": "cus_w", "refund_id": "ref_w", "order_id": "ord_1", "amount": "5", "currency": "USD"}),
        ))
        .await;
    let email = report
        .notifications
        .iter()
        .find(|n| n.channel == "email")
        .unwrap();
    let sms = report
        .notifications
        .iter()
        .find(|n| n.channel == "sms")
        .unwrap();
    let (w, _) = h.webhooks();

    let path = format!("/webhooks/sendgrid/{}", h.org);
    let body = sendgrid_events(
        email.provider_message_id.as_deref().unwrap(),
        &[("delivered", "d1")],
    );
    let headers = signer.headers(&body, Utc::now().timestamp());
    let (_, first) = h.post_webhook(&w, &path, &headers, body.clone()).await;
    let (_, second) = h.post_webhook(&w, &path, &headers, body).await;
    assert_eq!(
        (first["applied"].as_u64(), second["duplicates"].as_u64()),
        (Some(1), Some(1))
    );

    let sid = sms.provider_message_id.clone().unwrap();
    for status_name in ["delivered", "sent"] {
        let params = [
            ("AccountSid", TWILIO_SID),
            ("MessageSid", &sid),
            ("MessageStatus", status_name),
        ];
        let (code, answer) = h.post_twilio_status(&w, &params).await;
        assert_eq!(code, 200, "{answer}");
    }
    assert_eq!(status(&h, &sms.id).await, Status::Delivered);
    assert_eq!(status(&h, &email.id).await, Status::Delivered);
}

#[tokio::test]
async fn a_hard_bounce_and_a_twilio_stop_suppress_the_address_for_next_time() {
    let (h, signer, _) = setup().await;
    let report = h
        .run_one(h.event(
            "RefundIssued",
            "payments",
            json!({"customer_id": "cus_w", "refund_id": "ref_b", "order_id": "ord_1", "amount": "5", "currency": "USD"}),
        ))
        .await;
    let email = report
        .notifications
        .iter()
        .find(|n| n.channel == "email")
        .unwrap();
    let sms = report
        .notifications
        .iter()
        .find(|n| n.channel == "sms")
        .unwrap();
    let (w, _) = h.webhooks();

    let body = sendgrid_events(
        email.provider_message_id.as_deref().unwrap(),
        &[("bounce", "b1")],
    );
    let path = format!("/webhooks/sendgrid/{}", h.org);
    let (code, _) = h
        .post_webhook(
            &w,
            &path,
            &signer.headers(&body, Utc::now().timestamp()),
            body,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(status(&h, &email.id).await, Status::Bounced);

    let sid = sms.provider_message_id.clone().unwrap();
    let params = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "21610"),
    ];
    let (code, _) = h.post_twilio_status(&w, &params).await;
    assert_eq!(code, 200);
    assert_eq!(status(&h, &sms.id).await, Status::Failed);

    let api = h.api();
    let me = herald_e2e::As::Customer(&h.org, "cus_w");
    let (_, contact) = h
        .call(&api, "GET", "/customers/cus_w/contact", me, None)
        .await;
    assert_eq!(contact["suppressed"], json!(["email", "sms"]));
    let next = h.run_one(h.order_created("cus_w", "ord_next")).await;
    assert_eq!(
        (next.outcome.as_str(), next.reason.as_deref()),
        ("skipped", Some("email: suppressed"))
    );
    let next = h
        .run_one(h.event(
            "RefundIssued",
            "payments",
            json!({"customer_id": "cus_w", "refund_id": "ref_next", "order_id": "ord_1", "amount": "5", "currency": "USD"}),
        ))
        .await;
    assert_eq!(next.outcome, "skipped");
    let reasons: Vec<_> = next
        .skipped
        .iter()
        .map(|s| (s.channel.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![("email", "suppressed"), ("sms", "suppressed")]
    );
}

#[tokio::test]
async fn ses_events_over_sns_are_verified_and_applied() {
    let h = Harness::new().await;
    let email = h.email("ses");
    h.run(&[h.contact("cus_s", &email, None, "en").await]).await;
    let report = h.run_one(h.order_created("cus_s", "ord_s")).await;
    let n = &report.notifications[0];
    let (w, sns) = h.webhooks();
    let ses_event = json!({
        "eventType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General"},
        "mail": {"messageId": n.provider_message_id, "tags": {"herald_org_id": [h.org], "herald_notification_id": [n.id]}}
    });
    let mut message = json!({
        "Type": "Notification", "MessageId": "sns-1", "TopicArn": SES_TOPIC,
        "Message": ses_event.to_string(), "Timestamp": "2026-11-20T10:00:00.000Z",
        "SignatureVersion": "2", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    });
    sign_sns(&mut message);

    let mut untrusted = message.clone();
    untrusted["SigningCertURL"] = json!("https://evil.example/cert.pem");
    let (code, _) = h
        .post_webhook(
            &w,
            "/webhooks/ses",
            &[],
            serde_json::to_vec(&untrusted).unwrap(),
        )
        .await;
    assert_eq!(code, 401);
    let mut tampered = message.clone();
    tampered["Message"] = json!(ses_event.to_string().replace("Permanent", "Transient"));
    let (code, _) = h
        .post_webhook(
            &w,
            "/webhooks/ses",
            &[],
            serde_json::to_vec(&tampered).unwrap(),
        )
        .await;
    assert_eq!(code, 401);

    let (code, answer) = h
        .post_webhook(
            &w,
            "/webhooks/ses",
            &[],
            serde_json::to_vec(&message).unwrap(),
        )
        .await;
    assert_eq!(
        (code, answer["applied"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(status(&h, &n.id).await, Status::Bounced);
    let next = h.run_one(h.order_created("cus_s", "ord_s2")).await;
    assert_eq!(next.reason.as_deref(), Some("email: suppressed"));

    let mut confirm = json!({
        "Type": "SubscriptionConfirmation", "MessageId": "sns-2", "TopicArn": SES_TOPIC, "Token": "tok",
        "Message": "You have chosen to subscribe", "Timestamp": "2026-11-20T10:00:00.000Z",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok",
        "SignatureVersion": "2", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    });
    sign_sns(&mut confirm);
    let (code, _) = h
        .post_webhook(
            &w,
            "/webhooks/ses",
            &[],
            serde_json::to_vec(&confirm).unwrap(),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(sns.confirmed.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_sendgrid_batch_with_an_unknown_event_applies_the_rest() {
    let (h, signer, _) = setup().await;
    let report = h.run_one(h.order_created("cus_w", "ord_mixed")).await;
    let n = &report.notifications[0];
    let message_id = n.provider_message_id.clone().unwrap();
    let (w, _) = h.webhooks();
    let now = Utc::now().timestamp();
    let batch = json!([
        {"email": "x@example.com", "event": "bounce", "type": "bounce", "sg_event_id": "mx1",
         "sg_message_id": format!("{message_id}.filterdrecv-1"), "timestamp": now},
        {"email": "x@example.com", "event": "group_resubscribe", "sg_event_id": "mx2",
         "sg_message_id": format!("{message_id}.filterdrecv-1"), "timestamp": now, "asm_group_id": 1},
        {"event": "account_status_change", "sg_event_id": "mx3", "timestamp": now,
         "type": "compliance_suspend"},
        "not even an object",
    ]);
    let body = serde_json::to_vec(&batch).unwrap();
    let path = format!("/webhooks/sendgrid/{}", h.org);
    let (code, answer) = h
        .post_webhook(&w, &path, &signer.headers(&body, now), body)
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["applied"].as_u64(), Some(1), "{answer}");
    assert_eq!(answer["ignored"].as_u64(), Some(3), "{answer}");
    assert_eq!(status(&h, &n.id).await, Status::Bounced);
    // a body that is not an array at all is still refused
    let junk = br#"{"event": "delivered"}"#.to_vec();
    let (code, _) = h
        .post_webhook(&w, &path, &signer.headers(&junk, now), junk)
        .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn a_twilio_status_herald_does_not_know_is_accepted_and_recorded() {
    let (h, _, _) = setup().await;
    let report = h
        .run_one(h.event(
            "RefundIssued",
            "payments",
            json!({"customer_id": "cus_w", "refund_id": "ref_pd", "order_id": "ord_1", "amount": "5", "currency": "USD"}),
        ))
        .await;
    let sms = report
        .notifications
        .iter()
        .find(|n| n.channel == "sms")
        .unwrap();
    let sid = sms.provider_message_id.clone().unwrap();
    let (w, _) = h.webhooks();
    for status_name in ["partially_delivered", "teleported"] {
        let params = [("MessageSid", sid.as_str()), ("MessageStatus", status_name)];
        let (code, answer) = h.post_twilio_status(&w, &params).await;
        assert_eq!(code, 200, "{status_name}: {answer}");
        let (_, again) = h.post_twilio_status(&w, &params).await;
        assert_eq!(
            again["duplicates"].as_u64(),
            Some(1),
            "{status_name}: recorded once"
        );
    }
    assert_eq!(status(&h, &sms.id).await, Status::Sent);
}

#[tokio::test]
async fn a_twilio_status_before_the_send_is_recorded_is_answered_503_and_kept() {
    let (h, _, _) = setup().await;
    // intake only: the SMS exists but has not been sent yet
    let record = h
        .invoke_intake(&h.event(
            "RefundIssued",
            "payments",
            json!({"customer_id": "cus_w", "refund_id": "ref_early", "order_id": "ord_1", "amount": "5", "currency": "USD"}),
        ))
        .await;
    let mut sms_id = None;
    for id in &record.notifications {
        let n = h.local.store.get(&h.org_id(), id).await.unwrap().unwrap();
        if n.channel == herald_core::model::Channel::Sms {
            sms_id = Some(n.id);
        }
    }
    let sms_id = sms_id.unwrap();
    let (w, _) = h.webhooks();
    // Twilio calls back the StatusCallback URL Herald gave it, which names the notification
    let path = format!("/webhooks/twilio/{}?n={sms_id}", h.org);
    let params: Vec<(String, String)> = [
        ("MessageSid", "SM00000000000000000000000000000abc"),
        ("MessageStatus", "delivered"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = herald_core::provider_events::twilio::signature(
        &format!("{PUBLIC_BASE}{path}"),
        &params,
        TWILIO_TOKEN,
    );
    let headers = [
        ("X-Twilio-Signature", signature),
        (
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        ),
    ];
    let body = serde_urlencoded::to_string(&params).unwrap().into_bytes();
    let (code, answer) = h.post_webhook(&w, &path, &headers, body.clone()).await;
    assert_eq!(code, 503, "{answer}");
    // not marked seen: the same callback, brought again, is still waited for
    let (code, _) = h.post_webhook(&w, &path, &headers, body).await;
    assert_eq!(code, 503);
}

#[tokio::test]
async fn webhooks_read_the_settings_again_before_refusing_a_signature() {
    let (h, _fake) = Harness::with_fake_providers().await;
    let old = SendGridSigner::new().unwrap();
    h.set_provider(
        "sendgrid",
        json!({"api_key": SENDGRID_KEY, "webhook_public_key": old.public_key()}),
    )
    .await;
    let (w, _) = h.webhooks();
    let now = Utc::now().timestamp();
    let body = sendgrid_events("nobody-knows", &[("delivered", "r1")]);
    let path = format!("/webhooks/sendgrid/{}", h.org);
    let (code, _) = h
        .post_webhook(&w, &path, &old.headers(&body, now), body.clone())
        .await;
    assert_eq!(code, 200, "the settings are now cached");
    // a Twilio callback before Twilio is configured: refused, and "not configured" is cached
    let params = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
    let (code, _) = h.post_twilio_status(&w, &params).await;
    assert_eq!(code, 401);

    // the key is rotated and Twilio is set up, elsewhere
    let new = SendGridSigner::new().unwrap();
    h.set_provider(
        "sendgrid",
        json!({"api_key": SENDGRID_KEY, "webhook_public_key": new.public_key()}),
    )
    .await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"}),
    )
    .await;
    // settings are read again at most once every few seconds per organization
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    let now = Utc::now().timestamp();
    let (code, answer) = h
        .post_webhook(&w, &path, &new.headers(&body, now), body.clone())
        .await;
    assert_eq!(code, 200, "signed with the new key: {answer}");
    let (code, answer) = h.post_twilio_status(&w, &params).await;
    assert_eq!(code, 200, "Twilio, configured since: {answer}");
    let (code, _) = h
        .post_webhook(&w, &path, &old.headers(&body, now), body)
        .await;
    assert_eq!(code, 401, "the old key no longer verifies");
}

fn subscription_confirmation(topic: &str) -> Vec<u8> {
    let mut confirm = json!({
        "Type": "SubscriptionConfirmation", "MessageId": "sns-org-1", "TopicArn": topic, "Token": "tok",
        "Message": "You have chosen to subscribe", "Timestamp": "2026-11-20T10:00:00.000Z",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=tok",
        "SignatureVersion": "2", "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
    });
    sign_sns(&mut confirm);
    serde_json::to_vec(&confirm).unwrap()
}

#[tokio::test]
async fn an_organizations_own_ses_topic_confirms_its_subscription_on_its_route() {
    let h = Harness::new().await;
    let topic = format!("arn:aws:sns:eu-west-1:210987654321:ses-events-{}", h.tag);
    h.set_provider("ses", json!({"sns_topic_arns": [topic]}))
        .await;
    let (w, sns) = h.webhooks();
    let body = subscription_confirmation(&topic);

    // the deployment's route confirms only the deployment's topics
    let (code, _) = h.post_webhook(&w, "/webhooks/ses", &[], body.clone()).await;
    assert_eq!(code, 401);
    // another organization's route does not know this topic
    let (code, _) = h
        .post_webhook(&w, "/webhooks/ses/org_someone_else", &[], body.clone())
        .await;
    assert_eq!(code, 401);
    assert!(sns.confirmed.lock().unwrap().is_empty());

    let (code, answer) = h
        .post_webhook(&w, &format!("/webhooks/ses/{}", h.org), &[], body)
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(sns.confirmed.lock().unwrap().len(), 1);
}
