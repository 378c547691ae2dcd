//! Events through the bus, intake and dispatch, to what the emulator sent.

use herald_e2e::{As, Harness};
use serde_json::json;

#[tokio::test]
async fn no_preferences_means_email_only() {
    let h = Harness::new().await;
    let email = h.email("carol");
    h.run(&[h
        .contact("cus_carol", &email, Some("+14155550111"), "en-US")
        .await])
        .await;
    let refund = h.event(
        "RefundIssued",
        "payments",
        json!({"customer_id": "cus_carol", "refund_id": "ref_1", "order_id": "ord_1", "amount": "25.00", "currency": "USD"}),
    );
    let report = h.run_one(refund).await;
    assert_eq!(report.outcome, "notified");
    assert_eq!(report.notifications.len(), 1, "{report:?}");
    let n = &report.notifications[0];
    assert_eq!((n.channel.as_str(), n.status.as_str()), ("email", "sent"));
    assert_eq!(h.sent().await.emails_to(&email).len(), 1);
    assert!(h.sent().await.sms_to("+14155550111").is_empty());
}

#[tokio::test]
async fn unsubscribed_and_all_disabled_are_recorded_skips() {
    let h = Harness::new().await;
    let email = h.email("a");
    h.run(&[
        h.contact("cus_a", &email, None, "en").await,
        h.preferences(
            "cus_a",
            json!({"email": true}),
            json!(["order_confirmation"]),
        ),
        h.contact("cus_b", &h.email("b"), Some("+14155550112"), "en")
            .await,
        h.preferences("cus_b", json!({"email": false, "sms": false}), json!([])),
    ])
    .await;
    let reports = h
        .run(&[
            h.order_created("cus_a", "ord_1"),
            h.order_created("cus_b", "ord_2"),
        ])
        .await;
    assert_eq!(reports[0].outcome, "skipped");
    assert_eq!(
        reports[0].reason.as_deref(),
        Some("unsubscribed from order_confirmation")
    );
    assert_eq!(reports[1].outcome, "skipped");
    assert_eq!(reports[1].reason.as_deref(), Some("no enabled channels"));
    assert!(reports.iter().all(|r| r.notifications.is_empty()));
    // the skip is stored, not only printed
    let org = herald_core::ids::OrgId::parse(h.org.as_str()).unwrap();
    use herald_core::ports::NotificationStore;
    let stored = h
        .local
        .store
        .get_intake(Some(&org), &reports[0].event_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.reason.as_deref(),
        Some("unsubscribed from order_confirmation")
    );
    assert!(h.sent().await.emails_to(&email).is_empty());
}

#[tokio::test]
async fn the_same_order_three_times_and_published_twice_sends_one_email() {
    let h = Harness::new().await;
    let email = h.email("dup");
    h.run(&[h.contact("cus_d", &email, None, "en").await]).await;
    let order = h.order_created("cus_d", "ord_dup");
    // EventBridge delivering the same event (same id) three times
    for _ in 0..3 {
        h.invoke_intake(&order).await;
    }
    // and the producer publishing the same order again as a new event
    let again = h.order_created("cus_d", "ord_dup");
    let reports = h.run(&[again]).await;
    assert_eq!(reports[0].outcome, "notified");
    assert_eq!(reports[0].notifications.len(), 1);
    assert_eq!(reports[0].notifications[0].status, "sent");
    assert_eq!(h.sent().await.emails_to(&email).len(), 1);
}

#[tokio::test]
async fn refund_to_a_french_canadian_customer_goes_by_email_and_sms_in_french() {
    let h = Harness::new().await;
    let email = h.email("bruno");
    let phone = "+33612340001";
    h.run(&[
        h.contact("cus_bruno", &email, Some(phone), "fr-CA").await,
        h.preferences("cus_bruno", json!({"email": true, "sms": true}), json!([])),
    ])
    .await;
    let report = h
        .run_one(h.event(
            "RefundIssued",
            "payments",
            json!({"customer_id": "cus_bruno", "refund_id": "ref_9", "order_id": "ord_9", "amount": "25.00", "currency": "EUR"}),
        ))
        .await;
    assert_eq!(report.notifications.len(), 2);
    let sent = h.sent().await;
    let emails = sent.emails_to(&email);
    assert_eq!(emails.len(), 1);
    assert!(
        emails[0].subject.contains("remboursement"),
        "{}",
        emails[0].subject
    );
    assert!(
        emails[0].body.contains("25,00\u{a0}€"),
        "{}",
        emails[0].body
    );
    assert!(emails[0].body.contains("ord_9"));
    let sms = sent.sms_to(phone);
    assert_eq!(sms.len(), 1);
    assert!(
        sms[0].message.starts_with("Remboursement"),
        "{}",
        sms[0].message
    );
    assert!(
        report
            .notifications
            .iter()
            .all(|n| n.status == "sent" && n.provider_message_id.is_some())
    );
}

#[tokio::test]
async fn malformed_events_are_rejected_with_a_reason_and_write_nothing() {
    let h = Harness::new().await;
    let mut no_org = h.order_created("cus_x", "ord_1");
    no_org["detail"]
        .as_object_mut()
        .unwrap()
        .remove("organization_id");
    let mut bad_total = h.order_created("cus_x", "ord_2");
    bad_total["detail"]["grand_total"] = json!("a lot");
    let unknown = h.event("InvoicePainted", "billing", json!({"invoice_id": "i1"}));
    let missing_variable = h.event(
        "NotificationRequested",
        "billing",
        json!({"customer_id": "cus_x", "idempotency_key": "k1", "notification_type": "order_confirmation",
               "context": {"order_id": "o1", "currency": "USD", "items": [], "created_at": "2026-11-20T09:00:00Z"}}),
    );
    let reports = h.run(&[no_org, bad_total, unknown, missing_variable]).await;
    let reasons: Vec<_> = reports
        .iter()
        .map(|r| (r.outcome.as_str(), r.reason.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        reasons[0],
        ("rejected", "detail.organization_id is missing".to_string())
    );
    assert_eq!(reasons[1].0, "rejected");
    assert!(
        reasons[1]
            .1
            .starts_with("detail.grand_total: expected a decimal amount"),
        "{}",
        reasons[1].1
    );
    assert_eq!(
        reasons[2],
        (
            "rejected",
            "unknown detail-type \"InvoicePainted\"".to_string()
        )
    );
    assert_eq!(reasons[3].0, "rejected");
    assert!(reasons[3].1.contains("grand_total"), "{}", reasons[3].1);

    // nothing but the four intake records was written
    let dynamo = aws_sdk_dynamodb::Client::new(&h.local.aws);
    let scan = dynamo
        .scan()
        .table_name(h.local.stack.names.notifications_table())
        .send()
        .await
        .unwrap();
    let kinds: Vec<_> = scan
        .items()
        .iter()
        .map(|i| i["kind"].as_s().unwrap().clone())
        .collect();
    assert_eq!(kinds, vec!["intake"; 4]);
    let directory = dynamo
        .scan()
        .table_name(h.local.stack.names.directory_table())
        .send()
        .await
        .unwrap();
    assert_eq!(directory.count(), 0);
}

#[tokio::test]
async fn review_prompts_are_scheduled_and_not_sent() {
    let h = Harness::new().await;
    let email = h.email("rp");
    h.run(&[h.contact("cus_r", &email, None, "en").await]).await;
    let delivered_at = chrono::Utc::now() - chrono::Duration::days(1);
    let report = h
        .run_one(h.event(
            "OrderDelivered",
            "ordering",
            json!({"customer_id": "cus_r", "order_id": "ord_r", "delivered_at": delivered_at.to_rfc3339()}),
        ))
        .await;
    assert_eq!(report.outcome, "notified");
    let n = &report.notifications[0];
    assert_eq!(
        (n.notification_type.as_str(), n.status.as_str()),
        ("review_prompt", "pending")
    );
    let due = n.scheduled_for.as_deref().unwrap();
    assert!(
        due.starts_with(
            &(delivered_at + chrono::Duration::days(7))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        )
    );
    assert!(h.sent().await.emails_to(&email).is_empty());
}

#[tokio::test]
async fn an_older_contact_change_never_overwrites_a_newer_one() {
    let h = Harness::new().await;
    let (old, new) = (h.email("old"), h.email("new"));
    let mut newer = h.contact("cus_t", &new, None, "en").await;
    newer["time"] = json!("2026-11-20T12:00:00Z");
    let mut older = h.contact("cus_t", &old, None, "en").await;
    older["time"] = json!("2026-11-20T11:00:00Z");
    h.run(&[newer, older]).await;
    h.run(&[h.order_created("cus_t", "ord_t")]).await;
    let sent = h.sent().await;
    assert_eq!(sent.emails_to(&new).len(), 1);
    assert!(sent.emails_to(&old).is_empty());
}

#[tokio::test]
async fn internal_notifications_reach_the_operations_contact() {
    let h = Harness::new().await;
    let ops = h.email("ops");
    h.run(&[h.event(
        "OrganizationSettingsChanged",
        "admin",
        json!({"operations_email": ops}),
    )])
    .await;
    let report = h
        .run_one(h.event(
            "ChargebackOpened",
            "payments",
            json!({"chargeback_id": "cb_1", "order_id": "ord_1", "amount": "120.00", "currency": "USD", "reason": "fraudulent"}),
        ))
        .await;
    assert_eq!(report.notifications[0].recipient, "operations");
    let emails = h.sent().await;
    let emails = emails.emails_to(&ops);
    assert_eq!(emails.len(), 1);
    assert!(emails[0].body.contains("$120.00"));
}

#[tokio::test]
async fn an_sms_is_cut_to_the_cap_and_its_segments_are_stored_and_counted() {
    let h = Harness::new().await;
    let phone = "+14155550177";
    h.run(&[
        h.event(
            "OrganizationSettingsChanged",
            "admin",
            json!({"sms_max_segments": 2}),
        ),
        h.contact("cus_s", &h.email("s"), Some(phone), "en").await,
        h.preferences("cus_s", json!({"sms": true, "in_app": true}), json!([])),
    ])
    .await;
    let report = h
        .run_one(h.event(
            "ReminderDue",
            "reminders",
            json!({"customer_id": "cus_s", "reminder_id": "rem_s", "severity": "critical",
                   "title": "Pay", "body": "please pay your invoice ".repeat(40)}),
        ))
        .await;
    let sms = report
        .notifications
        .iter()
        .find(|n| n.channel == "sms")
        .unwrap_or_else(|| panic!("no SMS in {report:?}"));
    assert_eq!(sms.status, "sent");
    // what the carrier got is the stored body, cut at a word within two segments
    let sent = h.sent().await;
    let messages = sent.sms_to(phone);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message, sms.body);
    assert_eq!(herald_core::sms::segments(&sms.body), 2);
    assert!(sms.body.ends_with("..."), "{}", sms.body);

    let api = h.api();
    let org = h.org.as_str();
    let (code, detail) = h
        .call(
            &api,
            "GET",
            &format!("/notifications/{}", sms.id),
            As::Operator(org),
            None,
        )
        .await;
    assert_eq!(code, 200, "{detail}");
    assert_eq!(detail["notification"]["sms_segments"].as_u64(), Some(2));

    // the day the projector counted it in, whichever side of midnight the test ran
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let (code, stats) = h
        .call(
            &api,
            "GET",
            &format!("/stats?from={from}&to={to}"),
            As::Operator(org),
            None,
        )
        .await;
    assert_eq!(code, 200, "{stats}");
    let sms_sent: Vec<(u64, u64)> = stats["days"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["counts"].as_array().unwrap().iter())
        .filter(|c| c["channel"] == "sms" && c["outcome"] == "sent")
        .map(|c| {
            (
                c["count"].as_u64().unwrap(),
                c["sms_segments"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sms_sent, vec![(1, 2)], "{stats}");
    // the channel's day: its latency from creation to sent, and no bounce among one SMS
    let sms_day = stats["days"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| d["channels"].get("sms"))
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(sms_day["sent"], 1);
    assert_eq!(sms_day["bounce_rate"], 0.0);
    let p99 = sms_day["to_sent_ms"]["p99"].as_u64().unwrap();
    assert!(p99 < 60_000, "{sms_day}");
}

#[tokio::test]
async fn a_critical_alert_for_a_customer_without_a_number_goes_by_email_through_the_stack() {
    let h = Harness::new().await;
    let address = h.email("crit");
    h.run(&[
        h.contact("cus_crit", &address, None, "en").await,
        h.preferences("cus_crit", json!({"email": true, "sms": true}), json!([])),
    ])
    .await;
    let alert = |key: &str, critical: bool| {
        h.event(
            "NotificationRequested",
            "payments",
            json!({"customer_id": "cus_crit", "idempotency_key": key,
                   "notification_type": "reminder", "channels": ["sms"], "critical": critical,
                   "context": {"reminder_id": key, "severity": "critical",
                               "title": "Card expired", "body": "Your payment failed."}}),
        )
    };
    let report = h.run_one(alert("alert-1", true)).await;
    assert_eq!(report.outcome, "notified", "{report:?}");
    assert_eq!(
        report.skipped[0].reason,
        "no phone number; fell back to email"
    );
    assert_eq!(
        report
            .notifications
            .iter()
            .map(|n| (n.channel.as_str(), n.status.as_str()))
            .collect::<Vec<_>>(),
        vec![("email", "sent")]
    );
    assert_eq!(h.sent().await.emails_to(&address).len(), 1);

    // the same alert not critical: skipped, no email
    let report = h.run_one(alert("alert-2", false)).await;
    assert_eq!(report.outcome, "skipped", "{report:?}");
    assert_eq!(h.sent().await.emails_to(&address).len(), 1);
}
