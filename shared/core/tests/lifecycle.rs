#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! One life cycle: the memory store allows exactly the changes of the transition table, each
//! by its own cause (the DynamoDB store is held to the same walk in the end-to-end tests).

use std::sync::Arc;

use chrono::Utc;
use herald_core::model::Notification;
use herald_core::testing::{MemoryDeliveries, MemoryStore, allowed_transitions, transition_table};
use serde_json::json;

fn template() -> Notification {
    let now = herald_core::time::format(&Utc::now());
    serde_json::from_value(json!({
        "id": "ntf_walk", "org_id": "org_acme", "notification_type": "reminder",
        "recipient": {"kind": "customer", "id": "cus_x"}, "channel": "in_app",
        "address": {"kind": "feed"}, "locale": "en", "body": "b", "internal": false,
        "critical": false, "status": "pending", "attempts": 0, "source_event_id": "evt",
        "business_key": "k", "created_at": now, "updated_at": now
    }))
    .unwrap()
}

#[tokio::test]
async fn the_memory_store_allows_exactly_the_life_cycles_transitions() {
    let store = Arc::new(MemoryStore::default());
    let deliveries = MemoryDeliveries::new(store.clone());
    let allowed = allowed_transitions(store.as_ref(), deliveries.as_ref(), &template(), Utc::now())
        .await
        .unwrap();
    assert_eq!(allowed, transition_table());
}
