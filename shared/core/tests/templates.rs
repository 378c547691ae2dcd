#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Each organization's own templates and types, through intake: resolution over the built-in
//! catalog, the template each notification records, freshness, and what a template that
//! cannot render does to its event.

mod common;

use common::{ORG, World, at, order};
use herald_core::ids::{Locale, NotificationType};
use herald_core::model::{Channel, TemplateRef};
use herald_core::ports::{TemplateStore, Write};
use herald_core::record::Outcome;
use herald_core::template::cache::FRESH_FOR;
use herald_core::template::org::{OrgTemplate, OrgType, Parts, TypeDefinition};
use serde_json::json;

const OTHER_ORG: &str = "org_globex";

fn org(id: &str) -> herald_core::ids::OrgId {
    herald_core::ids::OrgId::parse(id).unwrap()
}

fn email(subject: &str, body: &str) -> Parts {
    Parts {
        subject: Some(subject.into()),
        body: body.into(),
        html: None,
    }
}

impl World {
    /// Stores a template as the api would once it passed its checks (or as a raw write).
    async fn store_template(
        &self,
        org_id: &str,
        notification_type: &str,
        channel: Channel,
        locale: &str,
        parts: Option<Parts>,
    ) {
        let stored = self.templates.stored(&org(org_id), true).await.unwrap();
        let t = NotificationType::parse(notification_type).unwrap();
        let locale = Locale::parse(locale).unwrap();
        let current = stored.template(&t, channel, &locale).map(|t| t.version);
        let template = OrgTemplate {
            notification_type: t,
            channel,
            locale,
            deleted: parts.is_none(),
            parts: parts.unwrap_or_default(),
            version: current.unwrap_or(0) + 1,
            updated_at: at("2026-11-20T12:00:00Z"),
        };
        let written = self
            .templates
            .put_template(&org(org_id), &template, current)
            .await
            .unwrap();
        assert_eq!(written, Write::Done);
    }

    /// Moves the clock past the interval intake keeps an organization's templates.
    fn later(&self) {
        let now = self.clock.0.lock().unwrap().to_owned();
        self.clock.set(
            now + chrono::Duration::from_std(FRESH_FOR).unwrap() + chrono::Duration::seconds(1),
        );
    }

    fn last_email(&self) -> herald_core::model::Notification {
        let mut emails: Vec<_> = self
            .notifications()
            .into_iter()
            .filter(|n| n.channel == Channel::Email)
            .collect();
        emails.sort_by_key(|n| n.source_event_id.clone());
        emails.pop().expect("an email")
    }
}

#[tokio::test]
async fn an_organizations_override_renders_its_next_email_and_no_other_organizations() {
    let mut w = World::new();
    w.contact("cus_1", "en").await;
    w.event("OrderCreated", order("cus_1", "ord_1")).await;
    let builtin = w.last_email();
    assert_eq!(builtin.template, Some(TemplateRef::Builtin));
    assert_eq!(
        builtin.subject.as_deref(),
        Some("Your order ord_1 is confirmed")
    );

    w.store_template(
        ORG,
        "order_confirmation",
        Channel::Email,
        "en",
        Some(email(
            "Thanks! Order {{ order_id }}",
            "We got {{ order_id }} for {{ grand_total | money(currency) }}.",
        )),
    )
    .await;
    w.later();
    w.event("OrderCreated", order("cus_1", "ord_2")).await;
    let own = w.last_email();
    assert_eq!(own.subject.as_deref(), Some("Thanks! Order ord_2"));
    assert_eq!(own.body, "We got ord_2 for $59.90.");
    assert_eq!(own.template, Some(TemplateRef::Organization { version: 1 }));
    assert_eq!(own.html_body, None, "the override has no HTML part");

    // another organization still gets the built-in one
    w.event_of(
        OTHER_ORG,
        "e-other",
        "CustomerContactChanged",
        json!({"customer_id": "cus_9", "email": "nine@example.com", "locale": "en"}),
    )
    .await;
    w.event_of(
        OTHER_ORG,
        "e-other-order",
        "OrderCreated",
        order("cus_9", "ord_9"),
    )
    .await;
    let other = w
        .notifications()
        .into_iter()
        .find(|n| n.org_id.as_str() == OTHER_ORG)
        .unwrap();
    assert_eq!(
        other.subject.as_deref(),
        Some("Your order ord_9 is confirmed")
    );
    assert_eq!(other.template, Some(TemplateRef::Builtin));

    // deleted: the built-in one again
    w.store_template(ORG, "order_confirmation", Channel::Email, "en", None)
        .await;
    w.later();
    w.event("OrderCreated", order("cus_1", "ord_3")).await;
    let back = w.last_email();
    assert_eq!(
        back.subject.as_deref(),
        Some("Your order ord_3 is confirmed")
    );
    assert_eq!(back.template, Some(TemplateRef::Builtin));
}

#[tokio::test]
async fn a_changed_template_is_used_once_the_interval_has_passed_and_read_once_per_interval() {
    let mut w = World::new();
    w.contact("cus_1", "en").await;
    w.event("OrderCreated", order("cus_1", "ord_1")).await;
    let templates = w.templates.clone();
    let reads = || templates.reads.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(reads(), 1);
    w.store_template(
        ORG,
        "order_confirmation",
        Channel::Email,
        "en",
        Some(email("New {{ order_id }}", "b")),
    )
    .await;
    let reads_before = reads();
    // within the interval: the templates as read
    w.event("OrderCreated", order("cus_1", "ord_2")).await;
    assert_eq!(w.last_email().template, Some(TemplateRef::Builtin));
    assert_eq!(reads(), reads_before, "no read within the interval");
    w.later();
    w.event("OrderCreated", order("cus_1", "ord_3")).await;
    assert_eq!(w.last_email().subject.as_deref(), Some("New ord_3"));
}

#[tokio::test]
async fn a_locale_takes_the_organizations_template_before_the_built_in_one_of_the_same_locale() {
    // fr-CA: an override only in fr wins
    let mut w = World::new();
    w.contact("cus_1", "fr-CA").await;
    w.store_template(
        ORG,
        "order_confirmation",
        Channel::Email,
        "fr",
        Some(email("Merci {{ order_id }}", "Reçu.")),
    )
    .await;
    w.event("OrderCreated", order("cus_1", "ord_1")).await;
    let n = w.last_email();
    assert_eq!(n.subject.as_deref(), Some("Merci ord_1"));
    assert_eq!(n.template, Some(TemplateRef::Organization { version: 1 }));

    // an override only in en: the built-in fr comes first
    let mut w = World::new();
    w.contact("cus_1", "fr-CA").await;
    w.store_template(
        ORG,
        "order_confirmation",
        Channel::Email,
        "en",
        Some(email("Thanks {{ order_id }}", "Got it.")),
    )
    .await;
    w.event("OrderCreated", order("cus_1", "ord_1")).await;
    let n = w.last_email();
    assert_eq!(n.template, Some(TemplateRef::Builtin));
    assert!(
        n.subject.unwrap().contains("confirmée"),
        "the built-in French one"
    );
}

#[tokio::test]
async fn the_organizations_default_locale_comes_before_english() {
    let mut w = World::new();
    w.event(
        "OrganizationSettingsChanged",
        json!({"default_locale": "fr"}),
    )
    .await;
    w.contact("cus_1", "de").await;
    w.event("OrderCreated", order("cus_1", "ord_1")).await;
    let n = w.last_email();
    assert_eq!(n.template, Some(TemplateRef::Builtin));
    assert!(
        n.subject.unwrap().contains("confirmée"),
        "German → the organization's French"
    );
}

#[tokio::test]
async fn a_template_that_runs_out_of_fuel_rejects_its_event_with_the_reason() {
    let mut w = World::new();
    w.contact("cus_1", "en").await;
    // stored raw, past the api's checks
    w.store_template(
        ORG,
        "order_confirmation",
        Channel::Email,
        "en",
        Some(email(
            "x",
            "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
        )),
    )
    .await;
    let record = w.event("OrderCreated", order("cus_1", "ord_1")).await;
    assert_eq!(record.outcome, Outcome::Rejected);
    let reason = record.reason.unwrap();
    assert!(reason.contains("ran out of fuel"), "{reason}");
    assert!(reason.contains("version 1"), "{reason}");
    assert!(
        w.notifications()
            .iter()
            .all(|n| n.channel != Channel::Email)
    );

    // a template stored raw that the sandbox refuses is not rendered either
    w.store_template(
        ORG,
        "order_confirmation",
        Channel::Email,
        "en",
        Some(email("x", "{% include 'other' %}")),
    )
    .await;
    w.later();
    let record = w.event("OrderCreated", order("cus_1", "ord_2")).await;
    assert_eq!(record.outcome, Outcome::Rejected);
    assert!(record.reason.unwrap().contains("not allowed"));
}

fn renewal_type() -> TypeDefinition {
    serde_json::from_value(json!({
        "channels": ["email", "in_app"],
        "description": "A subscription renews",
        "variables": {"plan": {"type": "string"}, "renews_at": {"type": "datetime"}},
        "sample": {"plan": "Pro", "renews_at": "2026-12-01T00:00:00Z"}
    }))
    .unwrap()
}

#[tokio::test]
async fn an_organizations_own_type_is_sent_on_its_default_channels_and_unknown_elsewhere() {
    let mut w = World::new();
    w.contact("cus_1", "en").await;
    let t = NotificationType::parse("plan_renewal").unwrap();
    let catalog = herald_core::template::Catalog::embedded().unwrap();
    assert_eq!(renewal_type().check(&t, &catalog), Vec::<String>::new());
    let org_type = OrgType {
        notification_type: t.clone(),
        spec: renewal_type().into_spec(),
        version: 1,
        updated_at: at("2026-11-20T12:00:00Z"),
    };
    w.templates
        .put_type(&org(ORG), &org_type, None)
        .await
        .unwrap();
    w.store_template(
        ORG,
        "plan_renewal",
        Channel::Email,
        "en",
        Some(email("{{ plan }} renews", "On {{ renews_at | date }}.")),
    )
    .await;
    w.store_template(
        ORG,
        "plan_renewal",
        Channel::InApp,
        "en",
        Some(email("{{ plan }} renews", "Soon.")),
    )
    .await;
    let requested = |context: serde_json::Value| json!({"customer_id": "cus_1", "idempotency_key": "sub-1", "notification_type": "plan_renewal", "context": context});
    let record = w
        .event(
            "NotificationRequested",
            requested(json!({"plan": "Pro", "renews_at": "2026-12-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(record.outcome, Outcome::Notified, "{:?}", record.reason);
    let mut channels: Vec<Channel> = w.notifications().iter().map(|n| n.channel).collect();
    channels.sort();
    assert_eq!(channels, [Channel::Email, Channel::InApp]);
    let n = w.last_email();
    assert_eq!(n.subject.as_deref(), Some("Pro renews"));
    assert_eq!(
        n.body, "On November 30, 2026.",
        "in the customer's time zone"
    );
    w.drain().await;

    // its context is checked against the variables it declared
    let record = w
        .event(
            "NotificationRequested",
            requested(json!({"plan": "Pro", "renews_at": "soon"})),
        )
        .await;
    assert_eq!(record.outcome, Outcome::Rejected);
    assert_eq!(
        record.reason.as_deref(),
        Some("detail.context.renews_at: expected an RFC 3339 date and time")
    );

    // the same name in another organization is not a type there
    let record = w
        .event_of(
            OTHER_ORG,
            "e-other",
            "NotificationRequested",
            requested(json!({"plan": "Pro", "renews_at": "2026-12-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(record.outcome, Outcome::Rejected);
    assert_eq!(
        record.reason.as_deref(),
        Some("unknown notification type \"plan_renewal\"")
    );

    // unsubscribing from it works as from a built-in type
    w.preferences(
        "cus_1",
        json!({"email": true, "in_app": true}),
        json!(["plan_renewal"]),
    )
    .await;
    let record = w
        .event(
            "NotificationRequested",
            json!({"customer_id": "cus_1", "idempotency_key": "sub-2", "notification_type": "plan_renewal", "context": {"plan": "Pro", "renews_at": "2026-12-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(record.outcome, Outcome::Skipped, "{:?}", record.reason);
}
