//! An organization's own templates and types through the api and the local stack: what
//! intake renders with them, the checks before a template is stored, concurrent edits,
//! preview.

use herald_e2e::{As, Harness};
use serde_json::{Value, json};

/// Past the interval intake keeps an organization's templates.
fn later(h: &Harness) {
    let fresh = chrono::Duration::from_std(herald_core::template::cache::FRESH_FOR).unwrap();
    let now = herald_core::ports::Clock::now(h.local.clock.as_ref());
    h.local
        .clock
        .set(Some(now + fresh + chrono::Duration::seconds(1)));
}

async fn email_of(h: &Harness, event: Value) -> (String, Value) {
    let report = h.run_one(event).await;
    assert_eq!(report.outcome, "notified", "{:?}", report.reason);
    let n = report
        .notifications
        .iter()
        .find(|n| n.channel == "email")
        .expect("an email");
    let api = h.api();
    let (code, detail) = h
        .call(
            &api,
            "GET",
            &format!("/notifications/{}", n.id),
            As::Operator(&h.org),
            None,
        )
        .await;
    assert_eq!(code, 200, "{detail}");
    (n.status.clone(), detail["notification"].clone())
}

#[tokio::test]
async fn an_override_written_through_the_api_renders_the_organizations_next_email_only() {
    let h = Harness::new().await;
    let other = Harness::new().await;
    let api = h.api();
    h.run(&[h.contact("cus_1", &h.email("one"), None, "en").await])
        .await;
    other
        .run(&[other
            .contact("cus_9", &other.email("nine"), None, "en")
            .await])
        .await;

    let (code, body) = h
        .call(
            &api,
            "PUT",
            "/templates/order_confirmation/email/en",
            As::Admin(&h.org),
            Some(json!({
                "subject": "Thanks! Order {{ order_id }}",
                "body": "We got {{ order_id }}: {{ grand_total | money(currency) }}.",
                "html": "<p>{{ order_id }} &middot; {{ items | length }} item(s)</p>"
            })),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["version"], 1);

    let (status, detail) = email_of(&h, h.order_created("cus_1", "ord_1")).await;
    assert_eq!(status, "sent");
    assert_eq!(detail["subject"], "Thanks! Order ord_1");
    assert_eq!(detail["body"], "We got ord_1: $59.90.");
    assert_eq!(
        detail["template"],
        json!({"source": "organization", "version": 1})
    );
    let sent = h.sent().await;
    let mails = sent.emails_to(&h.email("one"));
    assert!(
        mails.iter().any(|m| m.subject == "Thanks! Order ord_1"),
        "{mails:?}"
    );

    // the other organization's email is the built-in one
    let (_, detail) = email_of(&other, other.order_created("cus_9", "ord_9")).await;
    assert_eq!(detail["subject"], "Your order ord_9 is confirmed");
    assert_eq!(detail["template"], json!({"source": "builtin"}));

    // listed as an override, and DELETE goes back to the built-in one
    let (_, listed) = h
        .call(&api, "GET", "/templates", As::Operator(&h.org), None)
        .await;
    let order = listed["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "order_confirmation")
        .unwrap();
    assert_eq!(
        order["overrides"],
        json!([{"channel": "email", "locale": "en", "version": 1}])
    );
    let (code, body) = h
        .call(
            &api,
            "DELETE",
            "/templates/order_confirmation/email/en",
            As::Admin(&h.org),
            None,
        )
        .await;
    assert_eq!((code, &body["version"]), (200, &json!(2)), "{body}");
    later(&h);
    let (_, detail) = email_of(&h, h.order_created("cus_1", "ord_2")).await;
    assert_eq!(detail["subject"], "Your order ord_2 is confirmed");
    assert_eq!(detail["template"], json!({"source": "builtin"}));
}

#[tokio::test]
async fn a_template_is_checked_before_it_is_stored() {
    let h = Harness::new().await;
    let api = h.api();
    let put = |body: Value| {
        let api = api.clone();
        let h = &h;
        async move {
            h.call(
                &api,
                "PUT",
                "/templates/order_confirmation/email/en",
                As::Admin(&h.org),
                Some(body),
            )
            .await
        }
    };
    let (code, body) =
        put(json!({"subject": "Order {{ order_id }}", "body": "Hi\n\n{{ customer_name }}"})).await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "body line 3: customer_name is not a variable of order_confirmation"
    );
    let (code, body) = put(json!({"subject": "x", "body": "one\n{% if %}"})).await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("body line 2: syntax error"),
        "{body}"
    );
    let (code, body) = put(json!({
        "subject": "x",
        "body": "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}"
    }))
    .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ran out of fuel"),
        "{body}"
    );
    // customers and operators write nothing
    for who in [As::Operator(&h.org), As::Customer(&h.org, "cus_1")] {
        let (code, _) = h
            .call(
                &api,
                "PUT",
                "/templates/order_confirmation/email/en",
                who,
                Some(json!({"subject": "x", "body": "y"})),
            )
            .await;
        assert_eq!(code, 403);
    }
    let (code, _) = h
        .call(
            &api,
            "GET",
            "/templates",
            As::Customer(&h.org, "cus_1"),
            None,
        )
        .await;
    assert_eq!(code, 403);
    let (_, shown) = h
        .call(
            &api,
            "GET",
            "/templates/order_confirmation",
            As::Operator(&h.org),
            None,
        )
        .await;
    assert_eq!(shown["templates"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn two_edits_of_the_same_version_one_is_stored_and_the_other_is_a_conflict() {
    let h = Harness::new().await;
    let api = h.api();
    let path = "/templates/order_confirmation/email/en";
    let first = json!({"subject": "v1 {{ order_id }}", "body": "v1"});
    let (code, _) = h
        .call(&api, "PUT", path, As::Admin(&h.org), Some(first))
        .await;
    assert_eq!(code, 200);
    let edit = |subject: &str| json!({"subject": subject, "body": "edited", "base_version": 1});
    let (a, b) = tokio::join!(
        h.call(&api, "PUT", path, As::Admin(&h.org), Some(edit("a"))),
        h.call(&api, "PUT", path, As::Admin(&h.org), Some(edit("b"))),
    );
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 409], "{a:?} {b:?}");
    // without the version it replaces, an edit is a conflict that says which
    let (code, body) = h
        .call(
            &api,
            "PUT",
            path,
            As::Admin(&h.org),
            Some(json!({"subject": "c", "body": "c"})),
        )
        .await;
    assert_eq!(code, 409);
    assert_eq!(
        body["message"],
        "order_confirmation/email/en is at version 2: send base_version 2 to replace it"
    );
}

#[tokio::test]
async fn a_template_stored_raw_that_loops_rejects_its_event_with_the_fuel_reason() {
    let h = Harness::new().await;
    h.run(&[h.contact("cus_1", &h.email("one"), None, "en").await])
        .await;
    let store = herald_adapters::DynamoTemplates::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.templates_table(),
    );
    let looping = herald_core::template::org::OrgTemplate {
        notification_type: herald_core::ids::NotificationType::parse("order_confirmation").unwrap(),
        channel: herald_core::model::Channel::Email,
        locale: herald_core::ids::Locale::english(),
        parts: herald_core::template::org::Parts {
            subject: Some("x".into()),
            body: "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}".into(),
            html: None,
        },
        version: 1,
        updated_at: chrono::Utc::now(),
        deleted: false,
    };
    herald_core::ports::TemplateStore::put_template(&store, &h.org_id(), &looping, None)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let report = h.run_one(h.order_created("cus_1", "ord_1")).await;
    println!(
        "an event with a looping template took {:?} through the stack",
        started.elapsed()
    );
    assert_eq!(report.outcome, "rejected");
    let reason = report.reason.unwrap();
    assert!(reason.contains("ran out of fuel"), "{reason}");
    assert!(report.notifications.is_empty());
}

#[tokio::test]
async fn a_custom_type_is_defined_sent_and_unknown_to_another_organization() {
    let h = Harness::new().await;
    let other = Harness::new().await;
    let api = h.api();
    h.run(&[h.contact("cus_1", &h.email("one"), None, "en").await])
        .await;
    let (code, body) = h
        .call(
            &api,
            "PUT",
            "/templates/plan_renewal",
            As::Admin(&h.org),
            Some(json!({
                "channels": ["email", "in_app"],
                "description": "A subscription renews",
                "variables": {"plan": {"type": "string"}, "renews_at": {"type": "datetime"}, "price": {"type": "amount"}, "currency": {"type": "currency"}},
                "sample": {"plan": "Pro", "renews_at": "2026-12-01T00:00:00Z", "price": "9.90", "currency": "EUR"}
            })),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    for (channel, subject, text) in [
        (
            "email",
            "Your {{ plan }} plan renews",
            "On {{ renews_at | date }} for {{ price | money(currency) }}.",
        ),
        ("in_app", "{{ plan }} renews", "{{ renews_at | date }}"),
    ] {
        let (code, body) = h
            .call(
                &api,
                "PUT",
                &format!("/templates/plan_renewal/{channel}/en"),
                As::Admin(&h.org),
                Some(json!({"subject": subject, "body": text})),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let requested = |h: &Harness| {
        h.event(
            "NotificationRequested",
            "billing",
            json!({"customer_id": "cus_1", "idempotency_key": "sub-1", "notification_type": "plan_renewal",
                   "context": {"plan": "Pro", "renews_at": "2026-12-01T00:00:00Z", "price": "9.90", "currency": "EUR"}}),
        )
    };
    let report = h.run_one(requested(&h)).await;
    assert_eq!(report.outcome, "notified", "{:?}", report.reason);
    let mut channels: Vec<&str> = report
        .notifications
        .iter()
        .map(|n| n.channel.as_str())
        .collect();
    channels.sort();
    assert_eq!(channels, ["email", "in_app"]);
    let email = report
        .notifications
        .iter()
        .find(|n| n.channel == "email")
        .unwrap();
    assert_eq!(email.status, "sent");
    assert_eq!(email.subject.as_deref(), Some("Your Pro plan renews"));
    assert_eq!(email.body, "On November 30, 2026 for €9.90.");
    assert!(report.notifications.iter().any(|n| n.in_feed));

    let report = other.run_one(requested(&other)).await;
    assert_eq!(report.outcome, "rejected");
    assert_eq!(
        report.reason.as_deref(),
        Some("unknown notification type \"plan_renewal\"")
    );

    // a built-in type's name is not the organization's to take
    let (code, body) = h
        .call(
            &api,
            "PUT",
            "/templates/order_confirmation",
            As::Admin(&h.org),
            Some(json!({"channels": ["sms"]})),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["message"].as_str().unwrap().contains("built-in type"),
        "{body}"
    );
    // its customers may unsubscribe from it through the api
    let (code, body) = h
        .call(
            &api,
            "PUT",
            "/customers/cus_1/preferences",
            As::Customer(&h.org, "cus_1"),
            Some(json!({"channels": {"email": true, "in_app": true}, "unsubscribed": ["plan_renewal"]})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn a_preview_of_a_draft_renders_counts_segments_and_stores_nothing() {
    let h = Harness::new().await;
    let api = h.api();
    let (code, body) = h
        .call(
            &api,
            "POST",
            "/templates/preview",
            As::Operator(&h.org),
            Some(json!({
                "type": "reminder", "channel": "sms", "locale": "fr-CA",
                "template": {"body": "Rappel : {{ title }} — {{ body }}"}
            })),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["problems"], json!([]));
    assert_eq!(body["template"], json!({"source": "draft"}));
    assert_eq!(body["locale"], "fr-CA");
    assert!(
        body["text"].as_str().unwrap().starts_with("Rappel : "),
        "{body}"
    );
    assert!(body["sms_segments"].as_u64().unwrap() >= 1);
    // problems are listed, not thrown
    let (code, body) = h
        .call(
            &api,
            "POST",
            "/templates/preview",
            As::Operator(&h.org),
            Some(json!({"type": "reminder", "channel": "sms", "template": {"body": "{{ nope }}"}})),
        )
        .await;
    assert_eq!(code, 200);
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("nope is not a variable of reminder"),
        "{body}"
    );
    // a stored one with the sample
    let (code, body) = h
        .call(
            &api,
            "POST",
            "/templates/preview",
            As::Operator(&h.org),
            Some(json!({"type": "order_confirmation", "channel": "email"})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["template"], json!({"source": "builtin"}));
    assert!(body["html"].as_str().unwrap().contains("<"), "{body}");
    let (_, shown) = h
        .call(
            &api,
            "GET",
            "/templates/reminder",
            As::Operator(&h.org),
            None,
        )
        .await;
    assert_eq!(shown["templates"], json!([]), "nothing was stored");
}
