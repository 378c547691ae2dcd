//! Intake of a batch of events: shared reads, one write of the records, one enqueue, and
//! each event's outcome its own.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use herald_core::event::EventEnvelope;
use herald_core::record::Outcome;

mod common;

use common::{ORG, World, at, order};

fn envelope(id: &str, detail_type: &str, mut detail: Value, second: i64) -> EventEnvelope {
    detail["organization_id"] = json!(ORG);
    EventEnvelope {
        id: id.to_string(),
        detail_type: detail_type.into(),
        source: "test".into(),
        time: Some(at("2026-11-20T11:00:00Z") + chrono::Duration::seconds(second)),
        detail,
    }
}

#[tokio::test]
async fn a_batch_of_orders_reads_the_directory_twice_and_notifies_each() {
    let mut w = World::new();
    for c in ["c1", "c2", "c3", "c4", "c5"] {
        w.contact(c, "en").await;
    }
    let batch: Vec<EventEnvelope> = (1..=5)
        .map(|i| {
            envelope(
                &format!("o{i}"),
                "OrderCreated",
                order(&format!("c{i}"), &format!("ord_{i}")),
                i,
            )
        })
        .collect();
    let reads = w.directory.snapshots.load(Ordering::Relaxed);
    let results = w.intake.handle_batch(&batch).await;

    // the recipients and organization in one read, their addresses' suppression in another
    assert_eq!(w.directory.snapshots.load(Ordering::Relaxed) - reads, 2);
    for (event, result) in batch.iter().zip(&results) {
        let record = result.as_ref().unwrap();
        assert_eq!(record.event_id, event.id);
        assert_eq!(record.outcome, Outcome::Notified);
        assert!(w.store.intake.lock().unwrap().contains_key(&event.id));
    }
    assert_eq!(w.queue.messages.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn a_directory_event_in_a_batch_counts_for_the_events_after_it_only() {
    let mut w = World::new();
    w.contact("c1", "en").await;
    let unsubscribe =
        json!({"customer_id": "c1", "channels": {}, "unsubscribed": ["order_confirmation"]});
    let batch = [
        envelope("before", "OrderCreated", order("c1", "ord_a"), 1),
        envelope("prefs", "NotificationPreferencesChanged", unsubscribe, 2),
        envelope("after", "OrderCreated", order("c1", "ord_b"), 3),
    ];
    let results = w.intake.handle_batch(&batch).await;
    let outcomes: Vec<Outcome> = results
        .iter()
        .map(|r| r.as_ref().unwrap().outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Notified,
            Outcome::DirectoryUpdated,
            Outcome::Skipped
        ]
    );
    assert_eq!(w.queue.messages.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn one_event_failing_on_the_store_fails_alone_and_comes_again_unchanged() {
    let mut w = World::new();
    for c in ["c1", "c2", "c3"] {
        w.contact(c, "en").await;
    }
    let batch = [
        envelope("ok1", "OrderCreated", order("c1", "ord_1"), 1),
        envelope("down", "OrderCreated", order("c2", "ord_2"), 2),
        envelope("bad", "OrderCreated", json!({"customer_id": "c3"}), 3),
        envelope("ok2", "OrderCreated", order("c3", "ord_3"), 4),
    ];
    w.store.failing_events.lock().unwrap().insert("down".into());
    let results = w.intake.handle_batch(&batch).await;

    assert_eq!(results[0].as_ref().unwrap().outcome, Outcome::Notified);
    assert!(
        results[1].is_err(),
        "the failing event is handed over again"
    );
    let rejected = results[2].as_ref().unwrap();
    assert_eq!(rejected.outcome, Outcome::Rejected);
    assert!(rejected.reason.as_deref().unwrap().contains("detail."));
    assert_eq!(results[3].as_ref().unwrap().outcome, Outcome::Notified);
    assert!(!w.store.intake.lock().unwrap().contains_key("down"));
    assert_eq!(w.queue.messages.lock().unwrap().len(), 2);

    // the batch comes again (as SQS would, the failed event with what it was handed with):
    // the failed event is notified now, the others are the same facts seen again
    w.store.failing_events.lock().unwrap().clear();
    let again = w.intake.handle_batch(&batch).await;
    let outcomes: Vec<Outcome> = again.iter().map(|r| r.as_ref().unwrap().outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Notified,
            Outcome::Notified,
            Outcome::Rejected,
            Outcome::Notified
        ]
    );
    assert_eq!(
        w.store.all().len(),
        3,
        "one notification per order, none doubled"
    );
}
