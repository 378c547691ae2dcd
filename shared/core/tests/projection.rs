#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test

use chrono::{DateTime, Duration, Utc};
use herald_core::ids::{BusinessKey, CustomerId, EmailAddress, Locale, NotificationType, OrgId};
use herald_core::model::{Address, Channel, Draft, Notification, Recipient, Status};
use herald_core::projection::{Change, StatOutcome, ViewWrite, project, project_batch};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn pending(internal: bool) -> Notification {
    let org = OrgId::parse("org_a").unwrap();
    let t = NotificationType::parse(if internal {
        "chargeback_opened"
    } else {
        "order_confirmation"
    })
    .unwrap();
    let recipient = if internal {
        Recipient::Operations
    } else {
        Recipient::Customer(CustomerId::parse("cus_1").unwrap())
    };
    let key = BusinessKey::parse("k").unwrap();
    Notification::new(
        Draft {
            org_id: org,
            notification_type: t,
            recipient,
            channel: Channel::Email,
            business_key: key,
            source_event_id: "e".into(),
            address: Address::Email(EmailAddress::parse("a@example.com").unwrap()),
            sender: None,
            locale: Locale::english(),
            subject: Some("Subject".into()),
            body: "Body".into(),
            html_body: None,
            sms_segments: None,
            internal,
            critical: false,
            scheduled_for: None,
        },
        at("2026-11-20T10:00:00Z"),
    )
}

fn step(n: &Notification, status: Status, secs: i64) -> Notification {
    let mut next = n.clone();
    next.status = status;
    next.revision += 1;
    next.updated_at = n.updated_at + Duration::seconds(secs);
    if status == Status::Sending {
        next.attempts += 1;
    }
    if status == Status::Sent {
        next.sent_at = Some(next.updated_at);
    }
    if status == Status::Failed {
        next.failed_at = Some(next.updated_at);
        next.last_error = Some("address rejected".into());
    }
    next
}

fn life(internal: bool, end: Status) -> Vec<Change> {
    let created = pending(internal);
    let sending = step(&created, Status::Sending, 1);
    let done = step(&sending, end, 1);
    vec![
        Change {
            old: None,
            new: Some(created.clone()),
        },
        Change {
            old: Some(created),
            new: Some(sending.clone()),
        },
        Change {
            old: Some(sending),
            new: Some(done),
        },
    ]
}

#[test]
fn every_status_change_is_logged_and_the_outcome_counted_once() {
    let writes = project_batch(&life(false, Status::Sent));
    let events: Vec<&str> = writes
        .iter()
        .filter_map(|w| match w {
            ViewWrite::Log(l) => Some(l.event.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(events, vec!["created", "sending", "sent"]);
    let stats: Vec<_> = writes
        .iter()
        .filter_map(|w| {
            if let ViewWrite::Stat(s) = w {
                Some(s.key.outcome)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(stats, vec![StatOutcome::Sent]);
    let created: Vec<Status> = writes
        .iter()
        .filter_map(|w| match w {
            ViewWrite::FeedCreate(entry) => Some(entry.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        vec![Status::Sent],
        "the entry is created with the batch's latest state"
    );
    assert!(
        !writes
            .iter()
            .any(|w| matches!(w, ViewWrite::FeedStatus { .. })),
        "and needs no status change after"
    );
}

/// Creation, claim, send and the provider's delivery report.
fn delivered_life() -> Vec<Change> {
    let mut changes = life(false, Status::Sent);
    let sent = changes[2].new.clone().unwrap();
    let delivered = step(&sent, Status::Delivered, 1);
    changes.push(Change {
        old: Some(sent),
        new: Some(delivered),
    });
    changes
}

fn feed_writes(writes: &[ViewWrite]) -> Vec<(&'static str, Status)> {
    writes
        .iter()
        .filter_map(|w| match w {
            ViewWrite::FeedCreate(entry) => Some(("create", entry.status)),
            ViewWrite::FeedStatus { status, .. } => Some(("status", *status)),
            _ => None,
        })
        .collect()
}

#[test]
fn out_of_order_batches_keep_the_latest_state() {
    let mut changes = delivered_life();
    changes.reverse();
    assert_eq!(
        feed_writes(&project_batch(&changes)),
        [("create", Status::Delivered)]
    );
    // without its send (an earlier batch made the entry), the latest state is a status change
    assert_eq!(
        feed_writes(&project_batch(&changes[..1])),
        [("status", Status::Delivered)]
    );
}

#[test]
fn a_notification_enters_the_feed_when_it_is_sent_and_not_before() {
    // created, then claimed: not sent yet, not in the feed
    let changes = delivered_life();
    assert_eq!(feed_writes(&project_batch(&changes[..2])), []);
    // the send (its own batch) creates the entry
    assert_eq!(
        feed_writes(&project_batch(&changes[2..3])),
        [("create", Status::Sent)]
    );
    // failed before it was sent (dead-lettered), or withheld: never in the feed
    for end in [Status::Failed, Status::Skipped] {
        let writes = project_batch(&life(false, end));
        assert_eq!(feed_writes(&writes), [], "{end:?}");
        let dead_letters = writes
            .iter()
            .filter(|w| matches!(w, ViewWrite::DeadLetterPut(_)))
            .count();
        assert_eq!(dead_letters, usize::from(end == Status::Failed));
    }
}

#[test]
fn internal_notifications_never_reach_a_feed() {
    let writes = project_batch(&life(true, Status::Sent));
    assert!(
        !writes
            .iter()
            .any(|w| matches!(w, ViewWrite::FeedCreate(_) | ViewWrite::FeedStatus { .. }))
    );
    assert_eq!(
        writes
            .iter()
            .filter(|w| matches!(w, ViewWrite::Log(_)))
            .count(),
        3
    );
}

fn logged(writes: &[ViewWrite]) -> Vec<(String, u32, DateTime<Utc>)> {
    writes
        .iter()
        .filter_map(|w| match w {
            ViewWrite::Log(l) => Some((l.event.clone(), l.revision, l.at)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_creation_due_now_is_logged_with_its_next_change_the_same_entry_in_any_batch() {
    let changes = life(false, Status::Sent);
    // the creation alone (its own stream batch): nothing logged yet
    assert_eq!(logged(&project_batch(&changes[..1])), []);
    // the claim and the send in the next batch log the creation first, as one batch would
    let together = logged(&project_batch(&changes));
    assert_eq!(logged(&project_batch(&changes[1..])), together);
    let created_at = changes[0].new.as_ref().unwrap().created_at;
    assert_eq!(together[0], ("created".to_string(), 0, created_at));
    // a claim's replay logs the same entries again (the log shows each once)
    assert_eq!(logged(&project(&changes[1])), together[..2]);
}

#[test]
fn scheduled_inserts_log_as_scheduled_and_changes_without_a_new_status_write_nothing() {
    let mut n = pending(false);
    n.scheduled_for = Some(n.created_at + Duration::days(7));
    let writes = project(&Change {
        old: None,
        new: Some(n.clone()),
    });
    assert!(matches!(&writes[0], ViewWrite::Log(l) if l.event == "scheduled"));
    let mut swept = n.clone();
    swept.sweep_at = None;
    assert!(
        project(&Change {
            old: Some(n),
            new: Some(swept)
        })
        .is_empty()
    );
}

#[test]
fn a_retried_dead_letter_leaves_the_list() {
    let failed = step(&pending(false), Status::Failed, 5);
    let retried = step(&failed, Status::Pending, 5);
    let writes = project(&Change {
        old: Some(failed),
        new: Some(retried),
    });
    assert!(
        writes
            .iter()
            .any(|w| matches!(w, ViewWrite::DeadLetterDelete { .. }))
    );
}

#[test]
fn engagement_after_a_status_change_in_the_same_batch_keeps_the_status() {
    let created = pending(false);
    let sent = step(&created, Status::Sent, 1);
    let delivered = step(&sent, Status::Delivered, 1);
    let mut opened = delivered.clone();
    opened.opened_at = Some(opened.updated_at + Duration::seconds(1));
    opened.updated_at += Duration::seconds(1);
    opened.revision += 1;
    let writes = project_batch(&[
        Change {
            old: Some(sent.clone()),
            new: Some(delivered.clone()),
        },
        Change {
            old: Some(delivered),
            new: Some(opened),
        },
    ]);
    let statuses: Vec<_> = writes
        .iter()
        .filter_map(|w| {
            if let ViewWrite::FeedStatus { status, .. } = w {
                Some(*status)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(statuses, vec![Status::Delivered]);
    assert!(
        writes
            .iter()
            .any(|w| matches!(w, ViewWrite::Log(l) if l.event == "opened"))
    );
}

#[test]
fn an_sms_outcome_carries_its_segments_to_the_statistics() {
    let mut changes = life(false, Status::Sent);
    for c in &mut changes {
        for n in [c.old.as_mut(), c.new.as_mut()].into_iter().flatten() {
            n.channel = Channel::Sms;
            n.sms_segments = Some(2);
        }
    }
    let counted: Vec<(StatOutcome, Channel, u32)> = project_batch(&changes)
        .into_iter()
        .filter_map(|w| match w {
            ViewWrite::Stat(s) => Some((s.key.outcome, s.key.channel, s.sms_segments)),
            _ => None,
        })
        .collect();
    assert_eq!(counted, vec![(StatOutcome::Sent, Channel::Sms, 2)]);
    // an email has none
    let email: Vec<u32> = project_batch(&life(false, Status::Sent))
        .into_iter()
        .filter_map(|w| match w {
            ViewWrite::Stat(s) => Some(s.sms_segments),
            _ => None,
        })
        .collect();
    assert_eq!(email, vec![0]);
}

#[test]
fn sent_and_delivered_carry_their_latency_and_a_complaint_is_counted_on_its_day() {
    let writes = project_batch(&delivered_life());
    let stats: Vec<_> = writes
        .iter()
        .filter_map(|w| match w {
            ViewWrite::Stat(s) => Some((s.key.outcome, s.latency_ms)),
            _ => None,
        })
        .collect();
    // created at 10:00:00, sent two seconds later, delivered a second after that
    assert!(
        stats.contains(&(StatOutcome::Delivered, Some(3000))),
        "{stats:?}"
    );

    let delivered = delivered_life().pop().unwrap().new.unwrap();
    let mut complained = delivered.clone();
    complained.revision += 1;
    complained.complained_at = Some(at("2026-11-21T08:00:00Z"));
    complained.updated_at = at("2026-11-21T08:00:00Z");
    let change = Change {
        old: Some(delivered),
        new: Some(complained),
    };
    let counted: Vec<_> = project_batch(&[change])
        .into_iter()
        .filter_map(|w| match w {
            ViewWrite::Stat(s) => Some((s.key.outcome, s.key.day.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(
        counted,
        vec![(StatOutcome::Complained, "2026-11-21".to_string())]
    );
}

#[test]
fn a_feed_hears_of_an_entry_when_it_is_sent_then_of_its_status_and_never_of_internal_ones() {
    use herald_core::realtime::{FeedEvent, feed_events};
    let kinds: Vec<(&str, Status)> = feed_events(&delivered_life())
        .iter()
        .map(|e| match e {
            FeedEvent::Created(e) => ("created", e.status),
            FeedEvent::Updated(e) => ("updated", e.status),
            FeedEvent::Read { .. } => ("read", Status::Pending),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("created", Status::Sent), ("updated", Status::Delivered)]
    );
    assert!(feed_events(&life(true, Status::Sent)).is_empty());
    assert!(feed_events(&life(false, Status::Failed)).is_empty());
}
