//! The bus: life-cycle events put in batches of ten, entries EventBridge refused put again,
//! and those it keeps refusing reported one by one.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::operation::put_events::{PutEventsInput, PutEventsOutput};
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use herald_adapters::EventBridgePublisher;
use herald_core::lifecycle_events::{LifecycleEvent, lifecycle_events};
use herald_core::ports::EventPublisher;
use herald_core::projection::Change;

use crate::common::{notification, quick};

const BUS: &str = "herald-test";

fn eventbridge(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, rules, |c| c
        .retry_config(
            aws_sdk_eventbridge::config::retry::RetryConfig::disabled()
        ))
}

/// The `NotificationCreated` of `n` notifications.
fn created(n: usize) -> Vec<LifecycleEvent> {
    (0..n)
        .flat_map(|i| {
            lifecycle_events(&Change {
                old: None,
                new: Some(notification(&format!("ntf_{i}"))),
            })
        })
        .collect()
}

/// The notification ids in a request, in order.
fn ids(r: &PutEventsInput) -> Vec<String> {
    r.entries()
        .iter()
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(e.detail().unwrap()).unwrap();
            detail["notification_id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// An answer refusing the entries at these positions.
fn answer(count: usize, refused: &[usize]) -> PutEventsOutput {
    PutEventsOutput::builder()
        .failed_entry_count(i32::try_from(refused.len()).unwrap())
        .set_entries(Some(
            (0..count)
                .map(|i| {
                    if refused.contains(&i) {
                        PutEventsResultEntry::builder()
                            .error_code("InternalFailure")
                            .error_message("try again")
                            .build()
                    } else {
                        PutEventsResultEntry::builder()
                            .event_id(format!("eb-{i}"))
                            .build()
                    }
                })
                .collect(),
        ))
        .build()
}

#[tokio::test]
async fn entries_go_ten_to_a_call_on_the_bus_with_source_herald() {
    let first = mock!(Client::put_events)
        .match_requests(|r| {
            r.entries().len() == 10
                && r.entries().iter().all(|e| {
                    e.source() == Some("herald")
                        && e.event_bus_name() == Some(BUS)
                        && e.detail_type() == Some("NotificationCreated")
                })
        })
        .then_output(|| answer(10, &[]));
    let second = mock!(Client::put_events)
        .match_requests(|r| ids(r) == ["ntf_10", "ntf_11"])
        .then_output(|| answer(2, &[]));
    let failed = EventBridgePublisher::new(eventbridge(&[&first, &second]), BUS)
        .with_backoff(quick())
        .publish(&created(12))
        .await
        .unwrap();
    assert!(failed.is_empty());
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn entries_eventbridge_refused_are_put_again_alone() {
    let partly = mock!(Client::put_events)
        .match_requests(|r| ids(r) == ["ntf_0", "ntf_1", "ntf_2"])
        .then_output(|| answer(3, &[1]));
    let rest = mock!(Client::put_events)
        .match_requests(|r| ids(r) == ["ntf_1"])
        .then_output(|| answer(1, &[]));
    let failed = EventBridgePublisher::new(eventbridge(&[&partly, &rest]), BUS)
        .with_backoff(quick())
        .publish(&created(3))
        .await
        .unwrap();
    assert!(failed.is_empty());
    assert_eq!((partly.num_calls(), rest.num_calls()), (1, 1));
}

#[tokio::test]
async fn entries_eventbridge_keeps_refusing_are_reported_by_position() {
    let never = mock!(Client::put_events)
        .sequence()
        .output(|| answer(12 - 2, &[]))
        .output(|| answer(2, &[1]))
        .output(|| answer(1, &[0]))
        .repeatedly()
        .build();
    let failed = EventBridgePublisher::new(eventbridge(&[&never]), BUS)
        .with_backoff(quick())
        .publish(&created(12))
        .await
        .unwrap();
    // the second call holds entries 10 and 11; 11 never goes
    assert_eq!(failed, vec![11]);
    assert_eq!(never.num_calls(), 1 + 5);
}
