//! The adapters' guarantees, checked directly against the emulator.

use std::time::Duration;

use chrono::Utc;
use herald_adapters::{DynamoDirectory, DynamoNotificationStore, SqsDispatchQueue};
use herald_core::consent::SuppressionKey;
use herald_core::directory::{CustomerRecord, CustomerUpdate};
use herald_core::ids::{BusinessKey, CustomerId, EmailAddress, Locale, NotificationType, OrgId};
use herald_core::model::{Address, Channel, Draft, Notification, Recipient, Status};
use herald_core::ports::{
    ClaimOutcome, Created, Directory, DispatchMessage, DispatchQueue, Enqueue, NotificationStore,
    SnapshotRequest, Write,
};
use herald_e2e::Harness;

fn notification(org: &OrgId, key: &str) -> Notification {
    let t = NotificationType::parse("order_confirmation").unwrap();
    let recipient = Recipient::Customer(CustomerId::parse("cus_1").unwrap());
    let key = BusinessKey::parse(key).unwrap();
    let now = Utc::now();
    Notification::new(
        Draft {
            org_id: org.clone(),
            notification_type: t,
            recipient,
            channel: Channel::Email,
            business_key: key,
            source_event_id: "e1".into(),
            address: Address::Email(EmailAddress::parse("a@example.com").unwrap()),
            sender: Some(EmailAddress::parse("n@herald.example").unwrap()),
            locale: Locale::english(),
            subject: Some("s".into()),
            body: "b".into(),
            html_body: None,
            sms_segments: None,
            internal: false,
            critical: false,
            scheduled_for: None,
        },
        now,
    )
}

fn store(h: &Harness) -> DynamoNotificationStore {
    DynamoNotificationStore::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.notifications_table(),
    )
}

#[tokio::test]
async fn notifications_are_created_once_and_claimed_by_one() {
    let h = Harness::new().await;
    let store = store(&h);
    let org = OrgId::parse(h.org.as_str()).unwrap();
    let n = notification(&org, "k1");
    assert_eq!(store.create(&n).await.unwrap(), Created::New);
    let mut changed = n.clone();
    changed.body = "other".into();
    match store.create(&changed).await.unwrap() {
        Created::Existing(existing) => assert_eq!(existing.body, "b"),
        other => panic!("{other:?}"),
    }

    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let ClaimOutcome::Claimed(claimed) = store.claim(&org, &n.id, "t1", now, lease).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(claimed.status, Status::Sending);
    assert!(matches!(
        store.claim(&org, &n.id, "t2", now, lease).await.unwrap(),
        ClaimOutcome::NotClaimable(_)
    ));
    // after the lease, another dispatcher may take over, and the first one's result is refused
    let later = lease + chrono::Duration::seconds(1);
    assert!(matches!(
        store.claim(&org, &n.id, "t3", later, later).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    let mut sent = *claimed;
    sent.status = Status::Sent;
    sent.attempts = 1;
    sent.provider_message_id = Some("p1".into());
    assert!(!store.settle(&sent, "t1").await.unwrap());
    assert!(store.settle(&sent, "t3").await.unwrap());
    let stored = store.get(&org, &n.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.status,
            stored.provider_message_id.as_deref(),
            stored.claim
        ),
        (Status::Sent, Some("p1"), None)
    );

    let unknown = herald_core::ids::NotificationId::parse("ntf_nope").unwrap();
    assert_eq!(
        store.claim(&org, &unknown, "t", now, lease).await.unwrap(),
        ClaimOutcome::NotFound
    );
}

#[tokio::test]
async fn scheduled_notifications_cannot_be_claimed_before_their_time() {
    let h = Harness::new().await;
    let store = store(&h);
    let org = OrgId::parse(h.org.as_str()).unwrap();
    let mut n = notification(&org, "k2");
    let now = Utc::now();
    n.scheduled_for = Some(now + chrono::Duration::hours(1));
    store.create(&n).await.unwrap();
    assert!(matches!(
        store.claim(&org, &n.id, "t", now, now).await.unwrap(),
        ClaimOutcome::NotClaimable(_)
    ));
    let later = now + chrono::Duration::hours(2);
    assert!(matches!(
        store.claim(&org, &n.id, "t", later, later).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
}

#[tokio::test]
async fn directory_writes_are_guarded_by_version_and_suppressions_are_looked_up_in_batch() {
    let h = Harness::new().await;
    let dir = DynamoDirectory::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.directory_table(),
    );
    let org = OrgId::parse(h.org.as_str()).unwrap();
    let customer = CustomerId::parse("cus_v").unwrap();
    let mut record = CustomerRecord::default();
    record.apply(
        CustomerUpdate::Contact {
            email: Some(EmailAddress::parse("v@example.com").unwrap()),
            phone: None,
            whatsapp: None,
            locale: None,
            timezone: None,
        },
        herald_core::directory::Origin::Owner { now: Utc::now() },
    );
    assert_eq!(
        dir.put_customer(&org, &customer, &record, None)
            .await
            .unwrap(),
        Write::Done
    );
    assert_eq!(
        dir.put_customer(&org, &customer, &record, None)
            .await
            .unwrap(),
        Write::Conflict
    );
    let stored = dir.get_customer(&org, &customer).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.value), (1, record.clone()));
    assert_eq!(
        dir.put_customer(&org, &customer, &record, Some(1))
            .await
            .unwrap(),
        Write::Done
    );
    assert_eq!(
        dir.put_customer(&org, &customer, &record, Some(1))
            .await
            .unwrap(),
        Write::Conflict
    );

    // another organization sees nothing of it
    let other = OrgId::parse(format!("{}_other", h.org)).unwrap();
    let seen = dir
        .snapshot(&SnapshotRequest {
            customers: [
                (org.clone(), customer.clone()),
                (other.clone(), customer.clone()),
            ]
            .into(),
            orgs: [org.clone()].into(),
            ..SnapshotRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        seen.customers.into_iter().collect::<Vec<_>>(),
        vec![((org.clone(), customer.clone()), record)]
    );
    assert!(seen.orgs.is_empty());

    let keys: Vec<SuppressionKey> = (0..120)
        .map(|i| SuppressionKey {
            channel: Channel::Email,
            address: format!("u{i}@example.com"),
        })
        .collect();
    dir.suppress(&org, &keys[7], "hard bounce", Utc::now())
        .await
        .unwrap();
    dir.suppress(&org, &keys[110], "complaint", Utc::now())
        .await
        .unwrap();
    let found = dir.suppressed(&org, &keys).await.unwrap();
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec![keys[110].clone(), keys[7].clone()]
    );
    assert!(dir.suppressed(&other, &keys).await.unwrap().is_empty());
}

#[tokio::test]
async fn enqueue_batches_any_number_of_messages_with_their_delays_grouped_by_organization() {
    let h = Harness::new().await;
    let queue = SqsDispatchQueue::new(
        aws_sdk_sqs::Client::new(&h.local.aws),
        h.local.stack.dispatch_queue_url.clone(),
    );
    let org = OrgId::parse(h.org.as_str()).unwrap();
    let messages: Vec<Enqueue> = (0..23)
        .map(|i| Enqueue {
            message: DispatchMessage {
                org_id: org.clone(),
                notification_id: herald_core::ids::NotificationId::parse(format!("ntf_{i}"))
                    .unwrap(),
            },
            delay: if i % 2 == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(2000)
            },
        })
        .collect();
    queue.enqueue(&messages).await.unwrap();
    assert_eq!(h.queue_depth().await, (12, 11));

    // each message's group is its organization: what makes the queue fair between them
    let received = aws_sdk_sqs::Client::new(&h.local.aws)
        .receive_message()
        .queue_url(&h.local.stack.dispatch_queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
        )
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(!received.is_empty());
    for m in received {
        let group = m
            .attributes
            .unwrap_or_default()
            .remove(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId);
        assert_eq!(group.as_deref(), Some(h.org.as_str()));
    }
}

#[tokio::test]
async fn the_dynamodb_store_allows_exactly_the_life_cycles_transitions() {
    let h = Harness::new().await;
    let store = herald_adapters::DynamoNotificationStore::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.notifications_table(),
    );
    let now = herald_core::time::format(&Utc::now());
    let template: herald_core::model::Notification = serde_json::from_value(serde_json::json!({
        "id": "ntf_walk", "org_id": h.org, "notification_type": "reminder",
        "recipient": {"kind": "customer", "id": "cus_x"}, "channel": "in_app",
        "address": {"kind": "feed"}, "locale": "en", "body": "b", "internal": false,
        "critical": false, "status": "pending", "attempts": 0, "source_event_id": "evt",
        "business_key": "k", "created_at": now, "updated_at": now
    }))
    .unwrap();
    let allowed = herald_core::testing::allowed_transitions(&store, &store, &template, Utc::now())
        .await
        .unwrap();
    assert_eq!(allowed, herald_core::testing::transition_table());
}

#[tokio::test]
async fn a_breaker_counts_failures_opens_lets_one_probe_through_and_closes_in_the_table() {
    use herald_adapters::DynamoBreakers;
    use herald_core::breaker::{BreakerPolicy, Gate};
    use herald_core::model::DeliveryService::{Sendgrid, Ses};
    use herald_core::ports::Breakers;

    let h = Harness::new().await;
    let org = OrgId::parse(h.org.as_str()).unwrap();
    let breakers = DynamoBreakers::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.directory_table(),
    );
    let policy = BreakerPolicy::default();
    let t0: chrono::DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
    let at = |s: i64| t0 + chrono::Duration::seconds(s);

    let keys = [(org.clone(), Ses), (org.clone(), Sendgrid)];
    assert!(breakers.read(&keys).await.unwrap().is_empty());
    for s in 0..4 {
        let recorded = breakers.failure(&org, Ses, at(s), &policy).await.unwrap();
        assert!(!recorded.opened);
    }
    // two dispatchers count the fifth and sixth at once: both are counted, one opens it
    let (a, b) = tokio::join!(
        breakers.failure(&org, Ses, at(4), &policy),
        breakers.failure(&org, Ses, at(4), &policy)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(u8::from(a.opened) + u8::from(b.opened), 1);
    let read = breakers.read(&keys).await.unwrap();
    assert_eq!(read.len(), 1, "a provider that never failed has no item");
    let ses = &read[&(org.clone(), Ses)];
    assert_eq!(ses.failures, 6);
    assert_eq!(ses.gate(at(10)), Gate::Open { until: at(64) });

    assert_eq!(
        breakers
            .take_probe(&org, Ses, at(30), at(60))
            .await
            .unwrap(),
        None,
        "still cooling"
    );
    let (p, q) = tokio::join!(
        breakers.take_probe(&org, Ses, at(65), at(95)),
        breakers.take_probe(&org, Ses, at(65), at(95))
    );
    assert_eq!(
        u8::from(p.unwrap().is_some()) + u8::from(q.unwrap().is_some()),
        1,
        "one probe"
    );

    breakers.close(&org, Ses).await.unwrap();
    assert!(breakers.read(&keys).await.unwrap().is_empty());
}

#[tokio::test]
async fn dispatchers_sharing_a_rate_limit_bucket_in_the_table_never_grant_past_it() {
    use herald_adapters::DynamoRateLimiter;
    use herald_core::model::Channel;
    use herald_core::ports::RateLimiter;
    use herald_core::rate_limit::ChannelLimit;

    let h = Harness::new().await;
    let org = OrgId::parse(h.org.as_str()).unwrap();
    // two dispatchers, each with its own view of the bucket
    let limiter = || {
        DynamoRateLimiter::new(
            aws_sdk_dynamodb::Client::new(&h.local.aws),
            h.local.stack.names.directory_table(),
        )
    };
    let (a, b) = (limiter(), limiter());
    let limit = ChannelLimit {
        per_second: Some(5),
        per_day: Some(12),
    };
    let t0: chrono::DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);

    // both count a batch of four at once: five go, whichever wrote first
    let (x, y) = tokio::join!(
        a.take(&org, Channel::Sms, 4, limit, at(0)),
        b.take(&org, Channel::Sms, 4, limit, at(0))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.granted + y.granted, 5);
    // a second later the bucket has room for five more, counted on what the other wrote
    let later = a
        .take(&org, Channel::Sms, 10, limit, at(1000))
        .await
        .unwrap();
    assert_eq!(later.granted, 5);
    // the day's twelve are nearly spent: two more, then the rest wait for tomorrow
    let last = b
        .take(&org, Channel::Sms, 10, limit, at(5000))
        .await
        .unwrap();
    assert_eq!(last.granted, 2);
    assert_eq!(
        last.free_at(0),
        "2026-11-25T00:00:00Z"
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
    );
    // another channel's bucket is its own
    let email = a
        .take(&org, Channel::Email, 3, limit, at(5000))
        .await
        .unwrap();
    assert_eq!(email.granted, 3);
}

#[tokio::test]
async fn templates_are_written_over_the_version_they_replace_and_read_in_one_query() {
    use herald_adapters::DynamoTemplates;
    use herald_core::ports::TemplateStore;
    use herald_core::template::org::{OrgTemplate, OrgType, Parts, TypeDefinition};

    let h = Harness::new().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&h.local.aws);
    let table = h.local.stack.names.templates_table();
    let store = DynamoTemplates::new(dynamo.clone(), &table);
    let org = OrgId::parse(h.org.as_str()).unwrap();
    let other = OrgId::parse("org_other_templates").unwrap();
    let template = |version: u64, subject: &str| OrgTemplate {
        notification_type: NotificationType::parse("order_confirmation").unwrap(),
        channel: Channel::Email,
        locale: Locale::parse("fr-CA").unwrap(),
        parts: Parts {
            subject: Some(subject.into()),
            body: "Corps".into(),
            html: Some("<p>{{ order_id }}</p>".into()),
        },
        version,
        updated_at: "2026-11-20T12:00:00Z".parse().unwrap(),
        deleted: false,
    };
    assert_eq!(store.stored(&org, true).await.unwrap(), Default::default());
    assert_eq!(
        store
            .put_template(&org, &template(1, "v1"), None)
            .await
            .unwrap(),
        Write::Done
    );
    // a second first version, and a write over a version that is not the current one
    assert_eq!(
        store
            .put_template(&org, &template(1, "again"), None)
            .await
            .unwrap(),
        Write::Conflict
    );
    assert_eq!(
        store
            .put_template(&org, &template(3, "v3"), Some(2))
            .await
            .unwrap(),
        Write::Conflict
    );
    // two writers over version 1: one goes through
    let (first, second) = (template(2, "a"), template(2, "b"));
    let (a, b) = tokio::join!(
        store.put_template(&org, &first, Some(1)),
        store.put_template(&org, &second, Some(1)),
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|w| *w == Write::Conflict);
    assert_eq!(outcomes, [Write::Done, Write::Conflict]);

    let renewal: TypeDefinition = serde_json::from_value(serde_json::json!({
        "channels": ["sms"], "variables": {"plan": {"type": "string"}}, "sample": {"plan": "Pro"}
    }))
    .unwrap();
    let org_type = OrgType {
        notification_type: NotificationType::parse("plan_renewal").unwrap(),
        spec: renewal.into_spec(),
        version: 1,
        updated_at: "2026-11-20T12:00:00Z".parse().unwrap(),
    };
    assert_eq!(
        store.put_type(&org, &org_type, None).await.unwrap(),
        Write::Done
    );
    store
        .put_template(&other, &template(1, "other"), None)
        .await
        .unwrap();

    let stored = store.stored(&org, true).await.unwrap();
    assert_eq!(stored.types, [org_type]);
    assert_eq!(stored.templates.len(), 1, "the current version only");
    let current = &stored.templates[0];
    assert_eq!(current.version, 2);
    assert!(["a", "b"].contains(&current.parts.subject.as_deref().unwrap()));
    assert_eq!(current.parts.html.as_deref(), Some("<p>{{ order_id }}</p>"));

    // every version is kept in the template's history
    let history = dynamo
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "H#{org}#order_confirmation#email#fr-CA"
            )),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(history.count(), 2);
}
