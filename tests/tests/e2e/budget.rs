//! The AWS request budget of an email notification: every request each function makes on the
//! happy path (an order on the bus → one email sent and projected), counted as it leaves. A
//! change that adds a request per notification fails here; one that removes one updates the
//! table. Counts, not timings: they are the same on every run.

use std::collections::BTreeMap;

use herald_e2e::Harness;
use herald_local::requests::Component;

/// Twenty orders, twenty email notifications.
const NOTIFICATIONS: usize = 20;

#[tokio::test]
async fn an_email_notification_makes_the_requests_of_the_budget_and_no_more() {
    // as deployed: with a WebSocket API, so the projector asks who is listening (no one is,
    // so nothing is posted to the endpoint)
    let h = Harness::with(herald_local::Options {
        websocket_endpoint: Some("http://127.0.0.1:9".into()),
        ..herald_local::Options::default()
    })
    .await;
    let report = herald_local::cost::email_notifications(&h.local, NOTIFICATIONS, NOTIFICATIONS)
        .await
        .unwrap();
    assert_eq!(report.notifications, NOTIFICATIONS, "every order sent");
    let counts: BTreeMap<(Component, String, String), u64> = h
        .local
        .requests
        .counts()
        .into_iter()
        .filter(|((component, _, _), _)| component.is_billed())
        .collect();
    println!("{}", report.table());
    let expected: BTreeMap<(Component, String, String), u64> = BUDGET
        .iter()
        .map(|(c, s, o, n)| ((*c, s.to_string(), o.to_string()), *n))
        .collect();
    assert_eq!(
        counts, expected,
        "requests for {NOTIFICATIONS} email notifications"
    );
}

/// (who, service, operation, requests for twenty email notifications)
const BUDGET: &[(Component, &str, &str, u64)] = &[
    // per batch of ten events: the contacts and the organization's settings, then the
    // suppression list of their addresses; per event its notification, per batch the intake
    // records and the enqueue
    (Component::Intake, "dynamodb", "BatchGetItem", 4),
    (Component::Intake, "dynamodb", "PutItem", 20),
    (Component::Intake, "dynamodb", "BatchWriteItem", 2),
    // the organization's own templates: one query per 30 s of a warm function
    (Component::Intake, "dynamodb", "Query", 1),
    (Component::Intake, "sqs", "SendMessageBatch", 2),
    // the bus rule's delivery of each event to the intake queue; the event source mapping's
    // receives (one that finds the queue empty) and deletes
    (Component::IntakeQueue, "sqs", "SendMessage", 20),
    (Component::IntakeQueue, "sqs", "ReceiveMessage", 2),
    (Component::IntakeQueue, "sqs", "DeleteMessageBatch", 2),
    // per batch of ten: consent (customers, suppression) and the emails' HTML from the intake
    // records; per notification: claim and settle; the providers' circuit breakers, once per
    // cache period (5 s) of a warm function
    (Component::Dispatch, "dynamodb", "BatchGetItem", 5),
    (Component::Dispatch, "dynamodb", "UpdateItem", 40),
    // the organization's provider settings: once per warm function (then cached five minutes)
    (Component::Dispatch, "secretsmanager", "GetSecretValue", 1),
    (Component::Dispatch, "ses", "SendEmail", 20),
    // the event source mapping, played by the local stack's fair hand-over: a receive per ten
    // visible messages and one that finds no more, then one after the hand-over (the
    // dispatches may have queued more); AWS's long polls are billed per request the same way
    (Component::DispatchQueue, "sqs", "DeleteMessageBatch", 2),
    (Component::DispatchQueue, "sqs", "ReceiveMessage", 5),
    // one sweep: a query per shard of the due index, whatever is sent
    (Component::Scheduler, "dynamodb", "Query", 32),
    // per stream batch: which feed entries exist already (a replay), and who of the batch's
    // customers is connected (one read of the connections table); the audit log (an item per
    // notification), the new feed entries and the batch's outcomes (an item per counter), 25
    // puts a request; the life-cycle events
    (Component::Projector, "dynamodb", "BatchGetItem", 2),
    (Component::Projector, "dynamodb", "BatchWriteItem", 2),
    (Component::Projector, "eventbridge", "PutEvents", 4),
];
