//! The dispatch queue is fair between organizations: every dispatch message carries its
//! organization as its message group, and a flood from one organization does not hold back
//! another's few. The emulator's queue is plain; the local stack hands messages over as a fair
//! queue does (each organization in turn), so this shows the order dispatch handles them in.

use futures::StreamExt;
use herald_core::ids::{BusinessKey, CustomerId, EmailAddress, Locale, NotificationType, OrgId};
use herald_core::model::{Address, Channel, Draft, Notification, Recipient, Status};
use herald_core::ports::{DispatchMessage, DispatchQueue, Enqueue, NotificationStore};
use herald_e2e::Harness;

/// The flood: the emulator's tables and queue slow down as they grow (2,000 notifications take
/// it seven minutes), so the test floods with 500, a hundred times the quiet organization's.
const FLOOD: usize = 500;
const FEW: usize = 5;

/// An order confirmation of `org`'s customer, by email or in the feed.
fn notification(org: &OrgId, key: &str, channel: Channel) -> Notification {
    let address = match channel {
        Channel::InApp => Address::Feed,
        _ => Address::Email(EmailAddress::parse("cus1@example.com").unwrap()),
    };
    Notification::new(
        Draft {
            org_id: org.clone(),
            notification_type: NotificationType::parse("order_confirmation").unwrap(),
            recipient: Recipient::Customer(CustomerId::parse("cus_1").unwrap()),
            channel,
            business_key: BusinessKey::parse(key).unwrap(),
            source_event_id: format!("evt_{key}"),
            address,
            sender: Some(EmailAddress::parse("notifications@herald.example").unwrap()),
            locale: Locale::english(),
            subject: Some("Your order".into()),
            body: "Thank you".into(),
            html_body: None,
            sms_segments: None,
            internal: false,
            critical: false,
            scheduled_for: None,
        },
        chrono::Utc::now(),
    )
}

/// Creates `count` notifications of `org` and puts their messages on the dispatch queue.
async fn queue(h: &Harness, org: &OrgId, count: usize, channel: Channel) -> Vec<Notification> {
    let emails: Vec<Notification> = (0..count)
        .map(|i| notification(org, &format!("ord_{i}"), channel))
        .collect();
    futures::stream::iter(&emails)
        .for_each_concurrent(16, |n| async move {
            h.local.store.create(n).await.unwrap();
        })
        .await;
    let queue = herald_adapters::SqsDispatchQueue::new(
        aws_sdk_sqs::Client::new(&h.local.aws),
        h.local.stack.dispatch_queue_url.clone(),
    );
    let messages: Vec<Enqueue> = emails
        .iter()
        .map(|n| Enqueue {
            message: DispatchMessage {
                org_id: n.org_id.clone(),
                notification_id: n.id.clone(),
            },
            delay: std::time::Duration::ZERO,
        })
        .collect();
    queue.enqueue(&messages).await.unwrap();
    emails
}

#[tokio::test]
async fn a_flood_from_one_organization_does_not_hold_back_another_organizations_few() {
    let h = Harness::new().await;
    let noisy = h.org_id();
    let quiet = OrgId::parse(format!("{}_quiet", h.org)).unwrap();
    for org in [&noisy, &quiet] {
        let mut contact = h.contact("cus_1", "cus1@example.com", None, "en").await;
        contact["detail"]["organization_id"] = serde_json::json!(org.as_str());
        h.run(&[contact]).await;
    }
    queue(&h, &noisy, FLOOD, Channel::InApp).await;
    let few = queue(&h, &quiet, FEW, Channel::Email).await; // queued after the whole flood

    let handled = h.local.drain_dispatch().await.unwrap();
    assert_eq!(handled.len(), FLOOD + FEW);
    let positions: Vec<usize> = handled
        .iter()
        .enumerate()
        .filter(|(_, m)| m.org_id == quiet)
        .map(|(i, _)| i)
        .collect();
    // a plain queue would hand them over last, after the whole flood
    assert_eq!(positions.len(), FEW);
    assert!(
        positions.iter().all(|p| *p < 2 * FEW),
        "the quiet organization's messages were handled at {positions:?}"
    );
    for n in &few {
        let stored = h.local.store.get(&quiet, &n.id).await.unwrap().unwrap();
        assert_eq!(stored.status, Status::Sent);
    }
    let flooded = h
        .local
        .store
        .get(&noisy, &handled[FLOOD + FEW - 1].notification_id);
    assert_eq!(flooded.await.unwrap().unwrap().status, Status::Delivered);
}
