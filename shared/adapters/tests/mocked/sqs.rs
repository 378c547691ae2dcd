//! The dispatch queue: a batch send with entries SQS failed.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::send_message_batch::{SendMessageBatchInput, SendMessageBatchOutput};
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use aws_smithy_mocks::mock;
use herald_adapters::SqsDispatchQueue;
use herald_core::ids::{NotificationId, OrgId};
use herald_core::ports::{DispatchMessage, DispatchQueue, Enqueue};

use crate::common::{quick, sqs};

const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/000000000000/dispatch";

fn message(notification: &str) -> Enqueue {
    Enqueue {
        message: DispatchMessage {
            org_id: OrgId::parse("org_acme").unwrap(),
            notification_id: NotificationId::parse(notification).unwrap(),
        },
        delay: std::time::Duration::ZERO,
    }
}

fn ids(r: &SendMessageBatchInput) -> Vec<String> {
    r.entries().iter().map(|e| e.id().to_string()).collect()
}

fn answer(ok: &[&str], failed: &[&str]) -> SendMessageBatchOutput {
    SendMessageBatchOutput::builder()
        .set_successful(Some(
            ok.iter()
                .map(|id| {
                    SendMessageBatchResultEntry::builder()
                        .id(*id)
                        .message_id(format!("m-{id}"))
                        .md5_of_message_body("-")
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .set_failed(Some(
            failed
                .iter()
                .map(|id| {
                    BatchResultErrorEntry::builder()
                        .id(*id)
                        .code("InternalError")
                        .sender_fault(false)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .build()
        .unwrap()
}

#[tokio::test]
async fn entries_sqs_failed_are_sent_again_alone() {
    let partly = mock!(Client::send_message_batch)
        .match_requests(|r| ids(r) == ["0", "1", "2"])
        .then_output(|| answer(&["0", "2"], &["1"]));
    let rest = mock!(Client::send_message_batch)
        .match_requests(|r| ids(r) == ["1"] && r.queue_url() == Some(QUEUE))
        .then_output(|| answer(&["1"], &[]));
    SqsDispatchQueue::new(sqs(&[&partly, &rest]), QUEUE)
        .with_backoff(quick())
        .enqueue(&[message("ntf_1"), message("ntf_2"), message("ntf_3")])
        .await
        .unwrap();
    assert_eq!((partly.num_calls(), rest.num_calls()), (1, 1));
}

#[tokio::test]
async fn entries_that_keep_failing_are_reported_with_their_codes() {
    let never = mock!(Client::send_message_batch)
        .sequence()
        .output(|| answer(&["0"], &["1"]))
        .output(|| answer(&[], &["1"]))
        .repeatedly()
        .build();
    let err = SqsDispatchQueue::new(sqs(&[&never]), QUEUE)
        .with_backoff(quick())
        .enqueue(&[message("ntf_1"), message("ntf_2")])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("SendMessageBatch"), "{err}");
    assert!(
        err.contains("1 of 2 stayed unprocessed after 5 attempts (InternalError)"),
        "{err}"
    );
}
