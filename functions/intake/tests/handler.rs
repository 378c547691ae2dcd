#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! The Lambda handler on an SQS batch from the intake queue: a message that is not an event
//! is reported failed (Lambda hands it over again, then the queue dead-letters it) and the
//! rest of the batch is handled.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use herald_core::ids::EmailAddress;
use herald_core::intake::{IntakeConfig, IntakeService};
use herald_core::record::Outcome;
use herald_core::template::Catalog;
use herald_core::testing::{
    FixedClock, MemoryDirectory, MemoryQueue, MemoryStore, MemoryTemplates,
};

fn sample(name: &str) -> SqsEvent {
    let path = format!(
        "{}/../../events/intake-queue/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn service(store: Arc<MemoryStore>) -> IntakeService {
    let catalog = Arc::new(Catalog::embedded().unwrap());
    let clock = FixedClock::at("2026-11-20T15:00:00Z".parse().unwrap());
    IntakeService {
        store,
        directory: Arc::new(MemoryDirectory::default()),
        queue: Arc::new(MemoryQueue::default()),
        org_templates: Arc::new(MemoryTemplates::default()).cache(catalog.clone(), clock.clone()),
        catalog,
        clock,
        config: IntakeConfig {
            default_sender: EmailAddress::parse("notifications@herald.example").unwrap(),
        },
        device_endpoints: None,
    }
}

#[tokio::test]
async fn a_message_that_is_not_an_event_fails_alone() {
    let store = Arc::new(MemoryStore::default());
    let service = service(store.clone());
    let batch = sample("sqs-poison.json");
    let handled = herald_intake::handle_messages(&service, &batch.records).await;

    assert_eq!(
        herald_adapters::sqs::failed_message_ids(&handled.response),
        [batch.records[1].message_id.as_deref().unwrap()]
    );
    assert_eq!(handled.records.len(), 1);
    assert!(
        store
            .intake
            .lock()
            .unwrap()
            .contains_key(&handled.records[0].event_id)
    );
}

#[tokio::test]
async fn a_batch_is_handled_in_its_order() {
    let service = service(Arc::new(MemoryStore::default()));
    let batch = sample("sqs-batch.json");
    let handled = herald_intake::handle_messages(&service, &batch.records).await;

    assert!(handled.response.batch_item_failures.is_empty());
    let outcomes: Vec<Outcome> = handled.records.iter().map(|r| r.outcome).collect();
    // carol's contact first, so her order finds her address
    assert_eq!(outcomes, [Outcome::DirectoryUpdated, Outcome::Notified]);
}
