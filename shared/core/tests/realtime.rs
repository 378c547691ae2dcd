#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test

use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::{Channel, Status};
use herald_core::ports::Connections;
use herald_core::projection::FeedEntry;
use herald_core::realtime::{Broadcasted, Connection, ConnectionId, FeedEvent, Listener, Realtime};
use herald_core::testing::{MemoryConnections, MemoryPusher, MemoryUnread};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn listener(customer: &str) -> Listener {
    Listener {
        org_id: OrgId::parse("org_acme").unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
    }
}

fn entry(customer: &str, id: &str, status: Status) -> FeedEntry {
    FeedEntry {
        org_id: OrgId::parse("org_acme").unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
        notification_id: NotificationId::parse(id).unwrap(),
        notification_type: "order_confirmation".into(),
        channel: Channel::InApp,
        title: Some("Order confirmed".into()),
        body: "Your order is confirmed".into(),
        status,
        read: false,
        created_at: at("2026-11-24T10:00:00Z"),
        updated_at: at("2026-11-24T10:00:01Z"),
    }
}

fn conn(id: &str) -> ConnectionId {
    ConnectionId::parse(id).unwrap()
}

struct World {
    connections: Arc<MemoryConnections>,
    pusher: Arc<MemoryPusher>,
    views: MemoryUnread,
}

impl World {
    async fn new(open: &[(&str, &str)]) -> World {
        let world = World {
            connections: Arc::new(MemoryConnections::default()),
            pusher: Arc::new(MemoryPusher::default()),
            views: MemoryUnread::default(),
        };
        for (customer, id) in open {
            world
                .connections
                .add(&Connection {
                    id: conn(id),
                    listener: listener(customer),
                    connected_at: at("2026-11-24T09:00:00Z"),
                })
                .await
                .unwrap();
        }
        world
    }

    fn unread(&self, customer: &str, n: u64) {
        let l = listener(customer);
        self.views
            .unread
            .lock()
            .unwrap()
            .insert((l.org_id, l.customer_id), n);
    }

    async fn send(&self, events: &[FeedEvent]) -> Broadcasted {
        Realtime {
            connections: self.connections.clone(),
            pusher: self.pusher.clone(),
        }
        .broadcast(&self.views, events)
        .await
    }
}

#[tokio::test]
async fn each_connection_of_the_customer_gets_the_entry_and_the_unread_count_and_no_one_else() {
    let world = World::new(&[("cus_1", "AAA="), ("cus_1", "BBB="), ("cus_2", "CCC=")]).await;
    world.unread("cus_1", 3);
    let report = world
        .send(&[FeedEvent::Created(entry("cus_1", "ntf_1", Status::Sent))])
        .await;
    assert_eq!(
        report,
        Broadcasted {
            posted: 2,
            gone: 0,
            failed: 0
        }
    );
    for id in ["AAA=", "BBB="] {
        let got = world.pusher.received(&conn(id));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["type"], "notification.created");
        assert_eq!(got[0]["unread"], 3);
        assert_eq!(got[0]["notification"]["notification_id"], "ntf_1");
        assert_eq!(got[0]["notification"]["title"], "Order confirmed");
    }
    assert!(world.pusher.received(&conn("CCC=")).is_empty());
}

#[tokio::test]
async fn a_gone_connection_is_forgotten_and_the_others_still_get_every_message_in_order() {
    let world = World::new(&[("cus_1", "AAA="), ("cus_1", "BBB="), ("cus_1", "CCC=")]).await;
    world.pusher.gone.lock().unwrap().insert(conn("BBB="));
    world.pusher.failing.lock().unwrap().insert(conn("CCC="));
    let report = world
        .send(&[
            FeedEvent::Created(entry("cus_1", "ntf_1", Status::Sent)),
            FeedEvent::Updated(entry("cus_1", "ntf_1", Status::Delivered)),
        ])
        .await;
    assert_eq!(
        report,
        Broadcasted {
            posted: 2,
            gone: 1,
            failed: 2
        }
    );
    let kinds: Vec<_> = world
        .pusher
        .received(&conn("AAA="))
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["notification.created", "notification.updated"]);
    assert_eq!(
        world.connections.of(&listener("cus_1")),
        vec![conn("AAA="), conn("CCC=")],
        "the gone one is forgotten, the failing one kept"
    );
}

#[tokio::test]
async fn a_read_all_carries_no_entry_and_a_customer_without_connections_costs_no_post() {
    let world = World::new(&[("cus_1", "AAA=")]).await;
    let report = world
        .send(&[
            FeedEvent::Read {
                listener: listener("cus_1"),
                entry: None,
            },
            FeedEvent::Created(entry("cus_2", "ntf_2", Status::Sent)),
        ])
        .await;
    assert_eq!(report.posted, 1);
    let got = world.pusher.received(&conn("AAA="));
    assert_eq!(got[0]["type"], "feed.read");
    assert!(got[0]["notification"].is_null());
    assert_eq!(got[0]["unread"], 0);
}

#[test]
fn connection_ids_are_api_gateways() {
    assert!(ConnectionId::parse("L0SM9cOFvHcCIhw=").is_ok());
    for bad in ["", "a b", "x\"y", &"A".repeat(129)] {
        assert!(ConnectionId::parse(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_batch_reads_its_customers_connections_at_once_and_their_unread_counts_concurrently() {
    use herald_core::realtime::LOOKUPS_IN_FLIGHT;
    use std::sync::atomic::Ordering::SeqCst;
    let customers: Vec<String> = (0..40).map(|i| format!("cus_{i}")).collect();
    // 30 of the 40 are listening
    let open: Vec<(String, String)> = customers[..30]
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), format!("C{i:03}=")))
        .collect();
    let open: Vec<(&str, &str)> = open.iter().map(|(c, i)| (c.as_str(), i.as_str())).collect();
    let world = World::new(&open).await;
    let events: Vec<FeedEvent> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| FeedEvent::Created(entry(c, &format!("ntf_{i}"), Status::Sent)))
        .collect();
    let report = world.send(&events).await;
    assert_eq!(report.posted, 30);
    assert_eq!(
        world.connections.reads.load(SeqCst),
        1,
        "one read of the connections"
    );
    assert_eq!(
        world.views.reads.load(SeqCst),
        30,
        "the listening customers' counts only"
    );
    assert_eq!(
        world.views.most_reading.load(SeqCst),
        LOOKUPS_IN_FLIGHT,
        "unread counts read at once"
    );
    for i in 0..30 {
        assert_eq!(world.pusher.received(&conn(&format!("C{i:03}="))).len(), 1);
    }
}

#[tokio::test]
async fn a_read_told_with_the_callers_count_reads_no_count_again() {
    use std::sync::atomic::Ordering::SeqCst;
    let world = World::new(&[("cus_1", "AAA="), ("cus_1", "BBB="), ("cus_2", "CCC=")]).await;
    let realtime = Realtime {
        connections: world.connections.clone(),
        pusher: world.pusher.clone(),
    };
    let read = FeedEvent::Read {
        listener: listener("cus_1"),
        entry: Some(FeedEntry {
            read: true,
            ..entry("cus_1", "ntf_1", Status::Delivered)
        }),
    };
    let report = realtime.tell(&read, 4).await;
    assert_eq!(report.posted, 2);
    assert_eq!(world.views.reads.load(SeqCst), 0);
    for id in ["AAA=", "BBB="] {
        let got = world.pusher.received(&conn(id));
        assert_eq!(got[0]["type"], "feed.read");
        assert_eq!(got[0]["unread"], 4);
        assert_eq!(got[0]["notification"]["read"], true);
    }
    assert!(world.pusher.received(&conn("CCC=")).is_empty());
    // no one listening: nothing posted, nothing failed
    let nobody = FeedEvent::Read {
        listener: listener("cus_3"),
        entry: None,
    };
    assert_eq!(realtime.tell(&nobody, 0).await, Broadcasted::default());
}
