#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Provider events applied to notifications, on the in-memory ports: batched reads, one write
//! per notification, events that come before their send, and a second look before "unknown".

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::ids::{
    BusinessKey, CustomerId, EmailAddress, Locale, NotificationId, NotificationType, OrgId,
};
use herald_core::model::Provider;
use herald_core::model::{Address, Channel, Draft, Notification, Recipient, Status};
use herald_core::ports::DeliveryStore;
use herald_core::ports::{NotificationStore, PortError};
use herald_core::provider_events::{DeliveryChange, DeliveryKind, ProviderEvent};
use herald_core::testing::{FixedClock, MemoryDeliveries, MemoryDirectory, MemoryStore};
use herald_core::tracking::WebhookService;

fn org() -> OrgId {
    OrgId::parse("org_acme").unwrap()
}

fn notification(i: usize, status: Status, provider_id: Option<&str>) -> Notification {
    let now = Utc::now();
    let key = BusinessKey::parse(format!("ord_{i}")).unwrap();
    let notification_type = NotificationType::parse("order_confirmation").unwrap();
    let recipient = Recipient::Customer(CustomerId::parse(format!("cus_{i}")).unwrap());
    {
        let mut n = Notification::new(
            Draft {
                org_id: org(),
                notification_type,
                recipient,
                channel: Channel::Email,
                business_key: key,
                source_event_id: format!("ev_{i}"),
                address: Address::Email(EmailAddress::parse(format!("c{i}@example.com")).unwrap()),
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
        n.status = status;
        n.revision = 1;
        n.attempts = 1;
        n.provider_message_id = provider_id.map(str::to_owned);
        n
    }
}

fn event(
    id: &str,
    message: &str,
    hint: Option<&NotificationId>,
    kind: DeliveryKind,
) -> ProviderEvent {
    ProviderEvent {
        provider: Provider::Sendgrid,
        event_id: id.into(),
        provider_message_id: message.into(),
        notification_hint: hint.cloned(),
        kind,
        at: Utc::now(),
        reason: None,
        code: None,
    }
}

struct World {
    directory: Arc<MemoryDirectory>,
    service: WebhookService,
}

fn world(deliveries: Arc<dyn DeliveryStore>, store: Arc<MemoryStore>) -> World {
    let directory = Arc::new(MemoryDirectory::default());
    World {
        service: WebhookService {
            store: store.clone(),
            deliveries,
            directory: directory.clone(),
            clock: FixedClock::at(Utc::now()),
        },
        directory,
    }
}

async fn put(store: &MemoryStore, n: &Notification) {
    store.create(n).await.unwrap();
}

async fn stored(store: &MemoryStore, id: &NotificationId) -> Notification {
    store.get(&org(), id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_batch_is_read_in_batches_and_each_notification_written_once() {
    let store = Arc::new(MemoryStore::default());
    let deliveries = MemoryDeliveries::new(store.clone());
    let w = world(deliveries.clone(), store.clone());
    let n: Vec<Notification> = (0..3)
        .map(|i| notification(i, Status::Sent, Some(&format!("m{i}"))))
        .collect();
    for x in &n {
        put(&store, x).await;
    }
    let events = vec![
        event("e1", "m0", Some(&n[0].id), DeliveryKind::InTransit),
        event("e2", "m0", Some(&n[0].id), DeliveryKind::Delivered),
        event("e3", "m0", Some(&n[0].id), DeliveryKind::Opened),
        event("e4", "m0", Some(&n[0].id), DeliveryKind::Clicked),
        event("e5", "m1", Some(&n[1].id), DeliveryKind::Delivered),
        event("e5", "m1", Some(&n[1].id), DeliveryKind::Delivered),
        event(
            "e6",
            "m2",
            Some(&n[2].id),
            DeliveryKind::Bounced { permanent: true },
        ),
        event("e7", "m2", Some(&n[2].id), DeliveryKind::Delivered),
    ];
    let summary = w.service.apply(&org(), &events).await.unwrap();
    assert_eq!(
        (
            summary.applied,
            summary.unchanged,
            summary.duplicates,
            summary.unknown
        ),
        (5, 2, 1, 0),
        "{summary:?}"
    );
    let first = stored(&store, &n[0].id).await;
    assert_eq!(first.status, Status::Delivered);
    assert!(first.opened_at.is_some() && first.clicked_at.is_some());
    assert_eq!(stored(&store, &n[1].id).await.status, Status::Delivered);
    assert_eq!(stored(&store, &n[2].id).await.status, Status::Bounced);
    assert_eq!(w.directory.suppressions.lock().unwrap().len(), 1);
    // one read of the markers, one of the notifications (by the ids echoed back), one write per
    // notification, one write of the markers
    assert_eq!(deliveries.calls("seen"), 1);
    assert_eq!(deliveries.calls("get_many"), 1);
    assert_eq!(deliveries.calls("find_by_provider_id"), 0);
    assert_eq!(deliveries.calls("apply_delivery"), 3);
    assert_eq!(deliveries.calls("mark_seen"), 1);

    let again = w.service.apply(&org(), &events).await.unwrap();
    assert_eq!((again.duplicates, again.applied), (8, 0), "{again:?}");
}

#[tokio::test]
async fn a_hard_bounce_keeps_its_code_and_when_the_address_was_suppressed() {
    let store = Arc::new(MemoryStore::default());
    let w = world(MemoryDeliveries::new(store.clone()), store.clone());
    let n = notification(0, Status::Sent, Some("m0"));
    put(&store, &n).await;
    let mut bounce = event(
        "e1",
        "m0",
        Some(&n.id),
        DeliveryKind::Bounced { permanent: true },
    );
    bounce.reason = Some("550 mailbox unknown".into());
    bounce.code = herald_core::model::ErrorCode::new("Permanent:General");
    w.service.apply(&org(), &[bounce]).await.unwrap();
    let after = stored(&store, &n.id).await;
    assert_eq!(after.status, Status::Bounced);
    assert_eq!(
        after.error_code.as_ref().map(|c| c.as_str()),
        Some("Permanent:General")
    );
    assert!(after.suppressed_at.is_some());
    // an open afterwards suppresses nothing new
    let open = event("e2", "m0", Some(&n.id), DeliveryKind::Opened);
    w.service.apply(&org(), &[open]).await.unwrap();
    assert_eq!(
        stored(&store, &n.id).await.suppressed_at,
        after.suppressed_at
    );
}

#[tokio::test]
async fn an_event_before_its_send_is_recorded_is_not_ready_and_not_marked_seen() {
    let store = Arc::new(MemoryStore::default());
    let deliveries = MemoryDeliveries::new(store.clone());
    let w = world(deliveries.clone(), store.clone());
    let sending = notification(1, Status::Sending, None);
    put(&store, &sending).await;
    let events = vec![event(
        "SM9:delivered",
        "SM9",
        Some(&sending.id),
        DeliveryKind::Delivered,
    )];
    let summary = w.service.apply(&org(), &events).await.unwrap();
    assert_eq!((summary.not_ready, summary.unknown), (1, 0), "{summary:?}");
    assert!(deliveries.seen.lock().unwrap().is_empty());

    // the send is recorded; the provider's retry applies
    store
        .notifications
        .lock()
        .unwrap()
        .values_mut()
        .for_each(|n| {
            n.status = Status::Sent;
            n.provider_message_id = Some("SM9".into());
        });
    let summary = w.service.apply(&org(), &events).await.unwrap();
    assert_eq!(summary.applied, 1, "{summary:?}");
    assert_eq!(stored(&store, &sending.id).await.status, Status::Delivered);

    // an echoed id whose notification went out under another message id is not trusted
    let other = vec![event(
        "SM7:delivered",
        "SM7",
        Some(&sending.id),
        DeliveryKind::Delivered,
    )];
    let summary = w.service.apply(&org(), &other).await.unwrap();
    assert_eq!(summary.unknown, 1, "{summary:?}");
}

/// A store racing other writers: its index may not show a message on the first look (an
/// index is eventually consistent: the send was recorded a moment ago), and its next
/// `writes_lost` conditional writes lose to another writer.
struct Racing {
    inner: Arc<MemoryDeliveries>,
    first_look_misses: bool,
    looked: Mutex<HashSet<String>>,
    writes_lost: Mutex<usize>,
}

impl Racing {
    fn new(inner: Arc<MemoryDeliveries>, first_look_misses: bool, writes_lost: usize) -> Self {
        Racing {
            inner,
            first_look_misses,
            looked: Mutex::new(HashSet::new()),
            writes_lost: Mutex::new(writes_lost),
        }
    }
}

#[async_trait]
impl DeliveryStore for Racing {
    async fn find_by_provider_id(
        &self,
        id: &str,
    ) -> Result<Option<(OrgId, NotificationId)>, PortError> {
        if self.first_look_misses && self.looked.lock().unwrap().insert(id.to_string()) {
            return Ok(None);
        }
        self.inner.find_by_provider_id(id).await
    }

    async fn get_many(
        &self,
        org: &OrgId,
        ids: &[NotificationId],
    ) -> Result<Vec<Notification>, PortError> {
        self.inner.get_many(org, ids).await
    }

    async fn apply_delivery(
        &self,
        n: &Notification,
        change: &DeliveryChange,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        {
            let mut lost = self.writes_lost.lock().unwrap();
            if *lost > 0 {
                *lost -= 1;
                return Ok(false);
            }
        }
        self.inner.apply_delivery(n, change, at).await
    }

    async fn seen(
        &self,
        org: &OrgId,
        provider: Provider,
        ids: &[String],
    ) -> Result<HashSet<String>, PortError> {
        self.inner.seen(org, provider, ids).await
    }

    async fn mark_seen(
        &self,
        org: &OrgId,
        provider: Provider,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.inner.mark_seen(org, provider, ids, at).await
    }
}

#[tokio::test]
async fn a_message_is_looked_up_again_before_it_is_called_unknown() {
    let store = Arc::new(MemoryStore::default());
    let deliveries = Arc::new(Racing::new(MemoryDeliveries::new(store.clone()), true, 0));
    let w = world(deliveries, store.clone());
    let sent = notification(2, Status::Sent, Some("SM5"));
    put(&store, &sent).await;
    let events = vec![
        event("SM5:delivered", "SM5", None, DeliveryKind::Delivered),
        event("SM6:delivered", "SM6", None, DeliveryKind::Delivered),
    ];
    let summary = w.service.apply(&org(), &events).await.unwrap();
    assert_eq!((summary.applied, summary.unknown), (1, 1), "{summary:?}");
    assert_eq!(stored(&store, &sent.id).await.status, Status::Delivered);
}

#[tokio::test]
async fn a_notification_that_keeps_changing_is_contended_and_its_events_come_again() {
    let store = Arc::new(MemoryStore::default());
    let memory = MemoryDeliveries::new(store.clone());
    let racing = Arc::new(Racing::new(memory.clone(), false, usize::MAX));
    let w = world(racing.clone(), store.clone());
    let sent = notification(3, Status::Sent, Some("m3"));
    put(&store, &sent).await;
    let events = vec![event("e1", "m3", Some(&sent.id), DeliveryKind::Delivered)];
    let summary = w.service.apply(&org(), &events).await.unwrap();
    assert_eq!((summary.contended, summary.applied), (1, 0), "{summary:?}");
    assert_eq!(stored(&store, &sent.id).await.status, Status::Sent);
    assert!(memory.seen.lock().unwrap().is_empty(), "not marked seen");

    // the race is over: the provider's retry applies the event
    *racing.writes_lost.lock().unwrap() = 0;
    let summary = w.service.apply(&org(), &events).await.unwrap();
    assert_eq!((summary.contended, summary.applied), (0, 1), "{summary:?}");
    assert_eq!(stored(&store, &sent.id).await.status, Status::Delivered);
}

#[tokio::test]
async fn another_organizations_message_is_unknown_and_untouched() {
    let store = Arc::new(MemoryStore::default());
    let deliveries = MemoryDeliveries::new(store.clone());
    let w = world(deliveries, store.clone());
    let theirs = notification(3, Status::Sent, Some("m3"));
    put(&store, &theirs).await;
    let other = OrgId::parse("org_other").unwrap();
    let events = vec![event("x1", "m3", None, DeliveryKind::Delivered)];
    let summary = w.service.apply(&other, &events).await.unwrap();
    assert_eq!(summary.unknown, 1);
    assert_eq!(stored(&store, &theirs.id).await.status, Status::Sent);
}
