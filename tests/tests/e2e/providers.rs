//! Organizations with SendGrid or Twilio settings send through them; the fake checks every
//! request as the provider documents it.

use herald_core::model::Status;
use herald_core::ports::NotificationStore;
use herald_e2e::Harness;
use herald_local::stand_ins::{
    SENDGRID_KEY, TWILIO_SID, TWILIO_TOKEN, sendgrid_answer, twilio_answer,
};
use serde_json::json;

async fn customer(h: &Harness, email: &str, phone: &str) {
    h.run(&[
        h.contact("cus_p", email, Some(phone), "en").await,
        h.preferences("cus_p", json!({"email": true, "sms": true}), json!([])),
    ])
    .await;
}

fn refund(h: &Harness, id: &str) -> serde_json::Value {
    h.event(
        "RefundIssued",
        "payments",
        json!({"customer_id": "cus_p", "refund_id": id, "order_id": "ord_1", "amount": "9.99", "currency": "USD"}),
    )
}

#[tokio::test]
async fn email_goes_through_sendgrid_and_sms_through_twilio_when_the_organization_has_them() {
    let (h, fake) = Harness::with_fake_providers().await;
    let email = h.email("p");
    h.set_provider(
        "sendgrid",
        json!({"api_key": SENDGRID_KEY, "from": "billing@herald.example"}),
    )
    .await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"}),
    )
    .await;
    customer(&h, &email, "+14155550142").await;
    let report = h.run_one(refund(&h, "ref_1")).await;
    assert!(
        report.notifications.iter().all(|n| n.status == "sent"),
        "{report:?}"
    );

    let mails = fake.sendgrid_requests();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail["personalizations"][0]["to"][0]["email"],
        email.as_str()
    );
    assert_eq!(mail["from"]["email"], "billing@herald.example");
    let email_n = report
        .notifications
        .iter()
        .find(|n| n.channel == "email")
        .unwrap();
    assert_eq!(
        mail["personalizations"][0]["custom_args"]["herald_notification_id"],
        email_n.id.as_str()
    );
    assert_eq!(mail["subject"].as_str(), email_n.subject.as_deref());
    assert!(
        email_n
            .provider_message_id
            .as_deref()
            .unwrap()
            .starts_with("sgmsg")
    );
    assert!(
        h.sent().await.emails_to(&email).is_empty(),
        "not through SES"
    );

    let sms = fake.twilio_requests();
    assert_eq!(sms.len(), 1);
    let field = |k: &str| sms[0].iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("To").as_deref(), Some("+14155550142"));
    assert_eq!(field("From").as_deref(), Some("+14155550199"));
    let sms_n = report
        .notifications
        .iter()
        .find(|n| n.channel == "sms")
        .unwrap();
    // the callback names the notification, so an early status still finds it
    assert_eq!(
        field("StatusCallback"),
        Some(format!(
            "https://hooks.herald.example/webhooks/twilio/{}?n={}",
            h.org, sms_n.id
        ))
    );
    assert!(
        sms_n
            .provider_message_id
            .as_deref()
            .unwrap()
            .starts_with("SM")
    );
    assert!(
        h.sent().await.sms_to("+14155550142").is_empty(),
        "not through SNS"
    );
}

#[tokio::test]
async fn provider_errors_are_soft_or_hard_as_the_provider_means_them() {
    let (h, fake) = Harness::with_fake_providers().await;
    h.set_provider("sendgrid", json!({"api_key": SENDGRID_KEY}))
        .await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"}),
    )
    .await;
    // each provider's own answers, without failing over to SES or SNS
    h.set_routing(json!({"email": ["sendgrid"], "sms": ["twilio"]}))
        .await;
    customer(&h, &h.email("e"), "+14155550143").await;
    let org = h.org_id();
    let cases = [
        (
            sendgrid_answer(429, "too many requests"),
            twilio_answer(429, 20429, "Too Many Requests"),
            Status::Retrying,
            Status::Retrying,
        ),
        (
            sendgrid_answer(503, "unavailable"),
            twilio_answer(500, 20500, "Internal Server Error"),
            Status::Retrying,
            Status::Retrying,
        ),
        (
            sendgrid_answer(400, "The subject is required."),
            twilio_answer(
                400,
                21617,
                "The concatenated message body exceeds the 1600 character limit",
            ),
            Status::Failed,
            Status::Failed,
        ),
        (
            // a refused credential is the provider's problem, not the notification's
            sendgrid_answer(401, "bad key"),
            twilio_answer(400, 30003, "Unreachable destination handset"),
            Status::Retrying,
            Status::Retrying,
        ),
        (
            sendgrid_answer(403, "access forbidden"),
            twilio_answer(401, 20003, "Authenticate"),
            Status::Retrying,
            Status::Retrying,
        ),
    ];
    for (i, (email_answer, sms_answer, email_status, sms_status)) in cases.into_iter().enumerate() {
        fake.script([email_answer, sms_answer]);
        // one at a time, so each send meets its scripted answer
        let record = h.invoke_intake(&refund(&h, &format!("ref_e{i}"))).await;
        h.local.drain_dispatch().await.unwrap();
        let mut statuses = Vec::new();
        let mut errors = Vec::new();
        for id in &record.notifications {
            let n = h.local.store.get(&org, id).await.unwrap().unwrap();
            statuses.push(n.status);
            errors.push(n.last_error.unwrap_or_default());
        }
        assert_eq!(
            statuses,
            vec![email_status, sms_status],
            "case {i}: {errors:?}"
        );
    }
}

#[tokio::test]
async fn a_twilio_stop_refused_at_send_time_suppresses_the_number() {
    let (h, fake) = Harness::with_fake_providers().await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"}),
    )
    .await;
    customer(&h, &h.email("stop"), "+14155550144").await;
    // Twilio refuses the POST itself for a number that texted STOP: no callback will come
    fake.script([twilio_answer(
        400,
        21610,
        "Attempt to send to unsubscribed recipient +14155550144",
    )]);
    let first = h.run_one(refund(&h, "ref_s1")).await;
    let sms = first
        .notifications
        .iter()
        .find(|n| n.channel == "sms")
        .unwrap();
    assert_eq!(
        (sms.status.as_str(), sms.error.as_deref()),
        ("failed", Some("Twilio error 21610")),
        "the stored error keeps the code, never Twilio's text (it quotes the number)"
    );
    let second = h.run_one(refund(&h, "ref_s2")).await;
    assert_eq!(
        second.skipped,
        vec![herald_core::record::ChannelSkip {
            channel: herald_core::model::Channel::Sms,
            reason: "suppressed".into()
        }]
    );
    assert_eq!(
        fake.twilio_requests().len(),
        0,
        "never accepted, never asked again"
    );
}

#[tokio::test]
async fn an_address_sendgrid_refuses_is_suppressed() {
    let (h, fake) = Harness::with_fake_providers().await;
    h.set_provider("sendgrid", json!({"api_key": SENDGRID_KEY}))
        .await;
    let email = h.email("gone");
    h.run(&[h.contact("cus_g", &email, None, "en").await]).await;
    fake.script([herald_local::stand_ins::Answer {
        status: axum::http::StatusCode::BAD_REQUEST,
        body: json!({"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email", "help": null}]}),
    }]);
    let first = h.run_one(h.order_created("cus_g", "ord_g1")).await;
    assert_eq!(
        first.notifications[0].error.as_deref(),
        Some("SendGrid rejected the message (400) at personalizations.0.to.0.email")
    );
    let second = h.run_one(h.order_created("cus_g", "ord_g2")).await;
    assert_eq!(second.outcome, "skipped");
    assert_eq!(second.reason.as_deref(), Some("email: suppressed"));
}

#[tokio::test]
async fn an_accepted_send_with_an_unreadable_answer_is_recorded_as_sent_once() {
    let (h, fake) = Harness::with_fake_providers().await;
    h.set_provider("sendgrid", json!({"api_key": SENDGRID_KEY}))
        .await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"}),
    )
    .await;
    customer(&h, &h.email("u"), "+14155550145").await;
    // a 202 without X-Message-Id, and a 201 whose body is not the message resource
    fake.script([
        herald_local::stand_ins::Answer {
            status: axum::http::StatusCode::ACCEPTED,
            body: json!(null),
        },
        herald_local::stand_ins::Answer {
            status: axum::http::StatusCode::CREATED,
            body: json!("<html>proxy</html>"),
        },
    ]);
    let report = h.run_one(refund(&h, "ref_u1")).await;
    for n in &report.notifications {
        assert_eq!(
            (n.status.as_str(), n.provider_message_id.as_deref()),
            ("sent", None),
            "{n:?}"
        );
    }
    // a tick and another drain later, nothing was sent again
    h.local.tick(None).await.unwrap();
    h.local.drain_dispatch().await.unwrap();
    assert_eq!(fake.sendgrid_requests().len(), 0);
    assert_eq!(fake.twilio_requests().len(), 0);
    let org = h.org_id();
    for n in &report.notifications {
        let id = herald_core::ids::NotificationId::parse(n.id.clone()).unwrap();
        let stored = h.local.store.get(&org, &id).await.unwrap().unwrap();
        assert_eq!(stored.attempts, 1);
    }
}

#[tokio::test]
async fn a_refused_credential_is_read_again_and_retried_never_dead_lettered() {
    let fake = herald_local::stand_ins::StandIns::start().await.unwrap();
    let url = fake.url().to_string();
    // dispatch trusts the settings it read for five minutes, as deployed
    let h = Harness::with(herald_local::Options {
        sendgrid_base_url: url.clone(),
        twilio_base_url: url,
        public_base_url: Some("https://hooks.herald.example".into()),
        ..Default::default()
    })
    .await;
    h.set_provider("sendgrid", json!({"api_key": "SG.wrong"}))
        .await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": "wrong-token", "from": "+14155550199"}),
    )
    .await;
    h.set_routing(json!({"email": ["sendgrid"], "sms": ["twilio"]}))
        .await;
    customer(&h, &h.email("k"), "+14155550144").await;
    let report = h.run_one(refund(&h, "ref_k1")).await;
    let outcome: Vec<(&str, &str, Option<&str>)> = report
        .notifications
        .iter()
        .map(|n| (n.channel.as_str(), n.status.as_str(), n.error.as_deref()))
        .collect();
    assert_eq!(
        outcome,
        vec![
            (
                "email",
                "retrying",
                Some("SendGrid refused the credentials (401)")
            ),
            (
                "sms",
                "retrying",
                Some("Twilio refused the credentials (401)")
            ),
        ]
    );
    assert!(fake.sendgrid_requests().is_empty());

    // the keys are fixed elsewhere; dispatch's copy is stale, and is read again on refusal
    h.set_provider("sendgrid", json!({"api_key": SENDGRID_KEY}))
        .await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    let report = h.run_one(refund(&h, "ref_k2")).await;
    assert!(
        report.notifications.iter().all(|n| n.status == "sent"),
        "{report:?}"
    );
    assert_eq!(fake.sendgrid_requests().len(), 1);
    assert_eq!(fake.twilio_requests().len(), 1);
}

/// A high reminder for `cus_p` whose title and body are markup.
fn reminder_with_markup(h: &Harness) -> serde_json::Value {
    h.event(
        "ReminderDue",
        "reminders",
        json!({"customer_id": "cus_p", "reminder_id": "rem_markup", "severity": "high",
               "title": "<script>alert(1)</script>", "body": "Pay <b>now</b> & thanks"}),
    )
}

#[tokio::test]
async fn an_html_email_goes_through_sendgrid_as_text_then_html_escaped_only_in_the_html() {
    let (h, fake) = Harness::with_fake_providers().await;
    h.set_provider(
        "sendgrid",
        json!({"api_key": SENDGRID_KEY, "from": "billing@herald.example"}),
    )
    .await;
    customer(&h, &h.email("p"), "+14155550143").await;
    let report = h.run_one(reminder_with_markup(&h)).await;
    let email = report
        .notifications
        .iter()
        .find(|n| n.channel == "email")
        .unwrap_or_else(|| panic!("no email in {report:?}"));
    assert_eq!(email.status, "sent", "{report:?}");
    let mails = fake.sendgrid_requests();
    assert_eq!(mails.len(), 1);
    let content = mails[0]["content"].as_array().unwrap();
    let types: Vec<&str> = content
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    let text = content[0]["value"].as_str().unwrap();
    let html = content[1]["value"].as_str().unwrap();
    assert!(text.contains("<script>alert(1)</script>"), "{text}");
    assert!(text.contains("Pay <b>now</b> & thanks"), "{text}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("Pay &lt;b&gt;now&lt;&#x2f;b&gt; &amp; thanks"),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "{html}"
    );

    // an email type without an HTML template is text only
    h.run_one(refund(&h, "ref_text")).await;
    let mails = fake.sendgrid_requests();
    assert_eq!(mails.len(), 2);
    let types: Vec<&str> = mails[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text/plain"]);
}

#[tokio::test]
async fn the_sendgrid_stand_in_refuses_html_before_text_as_sendgrid_does() {
    let fake = herald_local::stand_ins::StandIns::start().await.unwrap();
    let url = fake.url().to_string();
    let mail = |content: serde_json::Value| {
        json!({"personalizations": [{"to": [{"email": "a@example.com"}]}],
               "from": {"email": "b@example.com"}, "subject": "s", "content": content})
    };
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!("{url}/v3/mail/send"))
            .bearer_auth(SENDGRID_KEY)
            .json(&body)
            .send()
    };
    let html_first =
        json!([{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]);
    let answer = post(mail(html_first)).await.unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "content");
    let twice = json!([{"type": "text/plain", "value": "x"}, {"type": "text/plain", "value": "y"}]);
    assert_eq!(post(mail(twice)).await.unwrap().status().as_u16(), 400);
    let html_only = json!([{"type": "text/html", "value": "<p>x</p>"}]);
    assert_eq!(post(mail(html_only)).await.unwrap().status().as_u16(), 202);
    let both =
        json!([{"type": "text/plain", "value": "x"}, {"type": "text/html", "value": "<p>x</p>"}]);
    assert_eq!(post(mail(both)).await.unwrap().status().as_u16(), 202);
    assert_eq!(fake.sendgrid_requests().len(), 2);
}

#[tokio::test]
async fn an_html_email_through_ses_reaches_the_emulator_escaped() {
    let h = Harness::new().await;
    let email = h.email("p");
    customer(&h, &email, "+14155550144").await;
    let report = h.run_one(reminder_with_markup(&h)).await;
    let reported = report
        .notifications
        .iter()
        .find(|n| n.channel == "email" && n.status == "sent")
        .unwrap_or_else(|| panic!("no email sent in {report:?}"));
    // the local stack's report shows the text part that was sent beside the HTML
    assert!(
        reported.body.starts_with("<script>alert(1)</script>"),
        "{}",
        reported.body
    );
    // the emulator keeps only the HTML part of an email that has both (the text part is
    // checked against the SDK's mock in herald-adapters)
    let sent = h.sent().await;
    let emails = sent.emails_to(&email);
    assert_eq!(emails.len(), 1);
    assert!(
        emails[0]
            .body
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{}",
        emails[0].body
    );
    assert!(!emails[0].body.contains("<script>"));
}

/// SES answering every `SendEmail` with a 503, as the SDK reads an HTTP answer (SES's
/// documented `ServiceUnavailable`, with the SDK's own retries spent).
fn ses_answering_503() -> std::sync::Arc<dyn herald_core::ports::ChannelSender> {
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    let body = r#"{"__type":"ServiceUnavailable","message":"Service is unavailable"}"#;
    let rule = mock!(aws_sdk_sesv2::Client::send_email)
        .sequence()
        .http_status(503, Some(body.to_string()))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&rule]);
    std::sync::Arc::new(herald_adapters::SesEmailSender::new(client, None))
}

#[tokio::test]
async fn ses_answering_5xx_passes_the_email_to_sendgrid_in_the_same_attempt_once() {
    let (h, fake) = Harness::with_fake_providers().await;
    h.set_provider("sendgrid", json!({"api_key": SENDGRID_KEY}))
        .await;
    h.set_routing(json!({"email": ["ses", "sendgrid"]})).await;
    let email = h.email("f");
    h.run(&[h.contact("cus_f", &email, None, "en").await]).await;
    let record = h.invoke_intake(&h.order_created("cus_f", "ord_f1")).await;
    let dispatcher = h.dispatcher_with_email(ses_answering_503());
    h.dispatch_with(&dispatcher).await;
    let org = h.org_id();
    let n = h
        .local
        .store
        .get(&org, &record.notifications[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.status, Status::Sent);
    assert_eq!(n.attempts, 1, "the same attempt");
    assert_eq!(
        n.provider,
        Some(herald_core::model::DeliveryService::Sendgrid)
    );
    let tried: Vec<_> = n
        .tried
        .iter()
        .map(|t| (t.provider.as_str(), t.code.as_ref().map(|c| c.as_str())))
        .collect();
    assert_eq!(tried, vec![("ses", Some("ServiceUnavailable"))]);
    let mails = fake.sendgrid_requests();
    assert_eq!(mails.len(), 1, "sent once");
    assert_eq!(
        mails[0]["personalizations"][0]["to"][0]["email"],
        email.as_str()
    );
    assert!(
        h.sent().await.emails_to(&email).is_empty(),
        "nothing through SES"
    );
}
