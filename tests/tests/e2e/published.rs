//! Herald's life-cycle events on its own bus: a consumer's rule on `source: herald` gets them,
//! with ids and codes only; intake's rule never does.

use herald_core::ids::OrgId;
use herald_core::ports::NotificationStore;
use herald_e2e::Harness;

#[tokio::test]
async fn a_sent_email_is_published_created_and_sent_without_address_or_body_and_intake_never_sees_it()
 {
    let h = Harness::new().await;
    let email = h.email("carol");
    h.run(&[h.contact("cus_carol", &email, None, "en-US").await])
        .await;
    let report = h.run_one(h.order_created("cus_carol", "ord_1")).await;
    assert_eq!(report.notifications.len(), 1, "{report:?}");
    let n = &report.notifications[0];
    assert_eq!((n.channel.as_str(), n.status.as_str()), ("email", "sent"));

    // the local stack's queue on source herald: what a consumer's rule gets
    let kinds: Vec<&str> = report
        .published
        .iter()
        .map(|p| p.detail_type.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["NotificationCreated", "NotificationSent"],
        "{report:?}"
    );
    let sent = h.sent().await;
    let body = &sent.emails_to(&email)[0].body;
    for p in &report.published {
        assert_eq!(p.notification_id, n.id);
        let detail = serde_json::to_string(&p.detail).unwrap();
        assert!(!detail.contains(&email), "{detail}");
        assert!(!detail.contains(body.trim()), "{detail}");
        assert!(!detail.contains(&n.body), "{detail}");
        assert_eq!(p.detail["organization_id"], h.org.as_str());
        assert_eq!(p.detail["customer_id"], "cus_carol");
        assert_eq!(p.detail["type"], "order_confirmation");
        assert_eq!(p.detail["channel"], "email");
        assert!(
            p.detail["event_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    let sent_event = &report.published[1].detail;
    assert_eq!(sent_event["status"], "sent");
    assert_eq!(sent_event["provider"], "ses");
    assert_eq!(sent_event["attempts"], 1);
    assert_eq!(
        sent_event["provider_message_id"].as_str(),
        n.provider_message_id.as_deref()
    );

    // intake's rule left them out: nothing waits on its feed, and no intake record names them
    assert_eq!(h.local.pump_intake_queue().await.unwrap(), 0);
    let org = OrgId::parse(h.org.as_str()).unwrap();
    for p in &report.published {
        assert!(
            h.local
                .store
                .get_intake(Some(&org), &p.envelope_id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            h.local
                .store
                .get_intake(None, &p.envelope_id)
                .await
                .unwrap()
                .is_none()
        );
    }
}
