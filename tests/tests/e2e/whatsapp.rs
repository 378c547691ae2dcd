//! WhatsApp through Twilio: an approved template with its variables between `whatsapp:`
//! addresses, checked by the stand-in as Twilio documents it; its status callbacks; its errors.

use herald_core::ids::{Locale, NotificationId, NotificationType};
use herald_core::model::{Channel, Notification, Status};
use herald_core::ports::{NotificationStore, Views};
use herald_core::record::ChannelSkip;
use herald_core::template::Catalog;
use herald_e2e::{As, Harness};
use herald_local::NotificationReport;
use herald_local::stand_ins::{StandIns, TWILIO_SID, TWILIO_TOKEN, twilio_answer};
use serde_json::{Value, json};

const WHATSAPP_SENDER: &str = "+14155550188";
const WHATSAPP_NUMBER: &str = "+14155550123";

/// A harness whose organization has Twilio with a WhatsApp sender (unless `sender` is `None`),
/// and a customer who opted in to WhatsApp with their number.
async fn setup(sender: Option<&str>) -> (Harness, StandIns) {
    let (h, fake) = Harness::with_fake_providers().await;
    let mut twilio =
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199"});
    if let Some(sender) = sender {
        twilio["whatsapp_from"] = json!(sender);
    }
    h.set_provider("twilio", twilio).await;
    h.run(&[
        h.event(
            "CustomerContactChanged",
            "customers",
            json!({"customer_id": "cus_wa", "email": h.email("wa"), "whatsapp": WHATSAPP_NUMBER, "locale": "en-US"}),
        ),
        h.preferences("cus_wa", json!({"email": true, "whatsapp": true}), json!([])),
    ])
    .await;
    (h, fake)
}

fn whatsapp(report: &herald_local::EventReport) -> &NotificationReport {
    report
        .notifications
        .iter()
        .find(|n| n.channel == "whatsapp")
        .unwrap_or_else(|| panic!("no WhatsApp notification: {report:?}"))
}

async fn stored(h: &Harness, id: &str) -> Notification {
    h.local
        .store
        .get(&h.org_id(), &NotificationId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn a_whatsapp_notification_is_an_approved_template_then_delivered_and_read() {
    let (h, fake) = setup(Some(WHATSAPP_SENDER)).await;
    let report = h.run_one(h.order_created("cus_wa", "ord_wa1")).await;
    let n = whatsapp(&report);
    assert_eq!(n.status, "sent", "{report:?}");
    assert!(n.provider_message_id.as_deref().unwrap().starts_with("SM"));
    assert_eq!(
        n.body,
        "Your order ord_wa1 is confirmed. Total: $59.90. Thank you for your order!"
    );

    let requests = fake.twilio_requests();
    assert_eq!(requests.len(), 1, "the email went through SES");
    let form = &requests[0];
    assert_eq!(
        field(form, "To"),
        Some(format!("whatsapp:{WHATSAPP_NUMBER}"))
    );
    assert_eq!(
        field(form, "From"),
        Some(format!("whatsapp:{WHATSAPP_SENDER}"))
    );
    let catalog = Catalog::embedded().unwrap();
    let spec = catalog
        .spec(&NotificationType::parse("order_confirmation").unwrap())
        .unwrap();
    let english = &spec.whatsapp.as_ref().unwrap().content_sid["en"];
    assert_eq!(field(form, "ContentSid").as_deref(), Some(english.as_str()));
    let variables: Value = serde_json::from_str(&field(form, "ContentVariables").unwrap()).unwrap();
    assert_eq!(variables, json!({"1": "ord_wa1", "2": "$59.90"}));
    assert_eq!(field(form, "Body"), None, "a template, never free text");
    assert_eq!(
        field(form, "StatusCallback"),
        Some(format!(
            "https://hooks.herald.example/webhooks/twilio/{}?n={}",
            h.org, n.id
        ))
    );

    let (w, _) = h.webhooks();
    let sid = n.provider_message_id.clone().unwrap();
    for status in ["sent", "delivered"] {
        let (code, answer) = h
            .post_twilio_status(
                &w,
                &[
                    ("MessageSid", &sid),
                    ("MessageStatus", status),
                    ("ChannelPrefix", "whatsapp"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{answer}");
    }
    let delivered = stored(&h, &n.id).await;
    assert_eq!(delivered.status, Status::Delivered);
    assert_eq!(delivered.opened_at, None);
    let (code, answer) = h
        .post_twilio_status(&w, &[("MessageSid", &sid), ("MessageStatus", "read")])
        .await;
    assert_eq!(code, 200, "{answer}");
    let read = stored(&h, &n.id).await;
    assert_eq!(read.status, Status::Delivered);
    assert!(read.opened_at.is_some(), "read is opened");

    h.local.project().await.unwrap();
    let log: Vec<String> = h
        .local
        .views
        .log(&h.org_id(), &read.id)
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
async fn whatsapp_errors_fail_with_the_code_only_and_a_missing_recipient_is_suppressed() {
    let (h, fake) = setup(Some(WHATSAPP_SENDER)).await;
    let (w, _) = h.webhooks();

    // accepted, then refused: outside the 24-hour window without a template
    let report = h.run_one(h.order_created("cus_wa", "ord_wa2")).await;
    let n = whatsapp(&report);
    let sid = n.provider_message_id.clone().unwrap();
    let (code, _) = h
        .post_twilio_status(
            &w,
            &[
                ("MessageSid", &sid),
                ("MessageStatus", "failed"),
                ("ErrorCode", "63016"),
            ],
        )
        .await;
    assert_eq!(code, 200);
    let failed = stored(&h, &n.id).await;
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (Status::Failed, Some("undelivered: Twilio error 63016"))
    );

    // refused at once: a rate limit waits, a sender set up wrong is final, never with
    // Twilio's text (it quotes the number)
    let cases = [
        (
            twilio_answer(400, 63018, "Rate limit exceeded for Channel"),
            Status::Retrying,
            "Twilio error 63018",
        ),
        (
            twilio_answer(
                400,
                63007,
                "Twilio could not find a Channel with the specified From address: whatsapp:+14155550188",
            ),
            Status::Failed,
            "Twilio error 63007",
        ),
    ];
    for (i, (answer, status, error)) in cases.into_iter().enumerate() {
        fake.script([answer]);
        let record = h
            .invoke_intake(&h.order_created("cus_wa", &format!("ord_wa3{i}")))
            .await;
        h.local.drain_dispatch().await.unwrap();
        let mut sent = Vec::new();
        for id in &record.notifications {
            sent.push(stored(&h, id.as_str()).await);
        }
        let n = sent
            .into_iter()
            .find(|n| n.channel == Channel::Whatsapp)
            .unwrap_or_else(|| panic!("case {i}: no WhatsApp notification"));
        assert_eq!(
            (n.status, n.last_error.as_deref()),
            (status, Some(error)),
            "case {i}"
        );
    }

    // no WhatsApp user at the number: failed, and the number is not tried again
    fake.script([twilio_answer(
        400,
        63003,
        "Channel could not find To address whatsapp:+14155550123",
    )]);
    let report = h.run_one(h.order_created("cus_wa", "ord_wa4")).await;
    assert_eq!(
        (
            whatsapp(&report).status.as_str(),
            whatsapp(&report).error.as_deref()
        ),
        ("failed", Some("Twilio error 63003"))
    );
    let next = h.run_one(h.order_created("cus_wa", "ord_wa5")).await;
    assert_eq!(
        next.skipped,
        vec![ChannelSkip {
            channel: Channel::Whatsapp,
            reason: "suppressed".into()
        }]
    );
    let (_, contact) = h
        .call(
            &h.api(),
            "GET",
            "/customers/cus_wa/contact",
            As::Customer(&h.org, "cus_wa"),
            None,
        )
        .await;
    assert_eq!(contact["suppressed"], json!(["whatsapp"]));
}

#[tokio::test]
async fn without_a_whatsapp_sender_the_channel_is_not_configured() {
    let (h, fake) = setup(None).await;
    let report = h.run_one(h.order_created("cus_wa", "ord_wa6")).await;
    let n = whatsapp(&report);
    assert_eq!(
        (n.status.as_str(), n.error.as_deref()),
        ("failed", Some("channel whatsapp is not configured"))
    );
    assert!(fake.twilio_requests().is_empty());
}

#[tokio::test]
async fn whatsapp_needs_a_whatsapp_number_which_the_contact_api_sets() {
    let (h, fake) = Harness::with_fake_providers().await;
    h.set_provider(
        "twilio",
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155550199", "whatsapp_from": WHATSAPP_SENDER}),
    )
    .await;
    h.run(&[
        h.contact("cus_ph", &h.email("ph"), Some("+14155550124"), "fr")
            .await,
        h.preferences(
            "cus_ph",
            json!({"email": true, "whatsapp": true}),
            json!([]),
        ),
    ])
    .await;
    // a phone number is no opt-in to WhatsApp
    let report = h.run_one(h.order_created("cus_ph", "ord_ph1")).await;
    assert_eq!(
        report.skipped,
        vec![ChannelSkip {
            channel: Channel::Whatsapp,
            reason: "no WhatsApp number".into()
        }]
    );

    let api = h.api();
    let me = || As::Customer(&h.org, "cus_ph");
    let (code, answer) = h
        .call(
            &api,
            "PUT",
            "/customers/cus_ph/contact",
            me(),
            Some(json!({"whatsapp": "whatsapp:+14155550124"})),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        answer["message"].as_str().unwrap().contains("whatsapp"),
        "{answer}"
    );
    assert!(!answer.to_string().contains("4155550124"), "{answer}");
    let (code, contact) = h
        .call(
            &api,
            "PUT",
            "/customers/cus_ph/contact",
            me(),
            Some(json!({"whatsapp": "+14155550125"})),
        )
        .await;
    assert_eq!(
        (
            code,
            contact["whatsapp"].as_str(),
            contact["phone"].as_str()
        ),
        (200, Some("+14155550125"), Some("+14155550124"))
    );

    // in French, with the French template
    let report = h.run_one(h.order_created("cus_ph", "ord_ph2")).await;
    assert_eq!(whatsapp(&report).status, "sent", "{report:?}");
    let form = &fake.twilio_requests()[0];
    assert_eq!(field(form, "To").as_deref(), Some("whatsapp:+14155550125"));
    let french = Catalog::embedded()
        .unwrap()
        .spec(&NotificationType::parse("order_confirmation").unwrap())
        .and_then(|s| s.whatsapp.clone())
        .unwrap()
        .content_sid
        .remove(Locale::parse("fr").unwrap().as_str())
        .unwrap();
    assert_eq!(field(form, "ContentSid").as_deref(), Some(french.as_str()));
    let variables: Value = serde_json::from_str(&field(form, "ContentVariables").unwrap()).unwrap();
    assert_eq!(variables, json!({"1": "ord_ph2", "2": "59,90\u{a0}$"}));
}
