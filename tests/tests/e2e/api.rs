//! The HTTP api against the emulator, called as API Gateway would with the authorizer's claims.

use herald_e2e::{As, Harness};
use serde_json::json;

async fn with_feed(h: &Harness) {
    h.run(&[
        h.contact("cus_a", &h.email("a"), None, "en").await,
        h.event(
            "NotificationPreferencesChanged",
            "customers",
            json!({"customer_id": "cus_a", "channels": {"email": true, "in_app": true}, "unsubscribed": []}),
        ),
        h.contact("cus_b", &h.email("b"), None, "en").await,
    ])
    .await;
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(h.order_created("cus_a", &format!("ord_{i}")));
    }
    events.push(h.order_created("cus_b", "ord_b"));
    h.run(&events).await;
}

#[tokio::test]
async fn the_feed_pages_counts_unread_and_marks_read() {
    let h = Harness::new().await;
    with_feed(&h).await;
    let api = h.api();
    let org = h.org.as_str();
    let (code, page) = h
        .call(
            &api,
            "GET",
            "/customers/cus_a/notifications?limit=2",
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        (
            page["items"].as_array().unwrap().len(),
            page["unread"].as_u64()
        ),
        (2, Some(3))
    );
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = h
        .call(
            &api,
            "GET",
            &format!("/customers/cus_a/notifications?limit=2&cursor={cursor}"),
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let newest = page["items"][0]["notification_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        page["items"][0]["created_at"].as_str() >= page["items"][1]["created_at"].as_str(),
        "newest first"
    );

    let path = format!("/customers/cus_a/notifications/{newest}/read");
    let (code, read) = h
        .call(&api, "POST", &path, As::Customer(org, "cus_a"), None)
        .await;
    assert_eq!((code, read["unread"].as_u64()), (200, Some(2)));
    let (_, again) = h
        .call(&api, "POST", &path, As::Customer(org, "cus_a"), None)
        .await;
    assert_eq!(
        again["unread"].as_u64(),
        Some(2),
        "reading twice counts once"
    );
    let (code, all) = h
        .call(
            &api,
            "POST",
            "/customers/cus_a/notifications/read-all",
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    assert_eq!(
        (code, all["marked"].as_u64(), all["unread"].as_u64()),
        (200, Some(2), Some(0))
    );
    let (code, bad) = h
        .call(
            &api,
            "GET",
            "/customers/cus_a/notifications?cursor=%21%21",
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    assert_eq!((code, bad["error"].as_str()), (400, Some("bad_request")));
}

#[tokio::test]
async fn a_customer_sees_only_their_own_and_nobody_sees_another_organization() {
    let h = Harness::new().await;
    with_feed(&h).await;
    let api = h.api();
    let org = h.org.as_str();
    let (code, body) = h
        .call(
            &api,
            "GET",
            "/customers/cus_b/notifications",
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    assert_eq!((code, body["error"].as_str()), (403, Some("forbidden")));
    let (code, _) = h
        .call(
            &api,
            "GET",
            "/customers/cus_a/notifications",
            As::Nobody,
            None,
        )
        .await;
    assert_eq!(code, 401);
    // another organization's token: its own (empty) data, never this one's
    let (code, other) = h
        .call(
            &api,
            "GET",
            "/customers/cus_a/notifications",
            As::Customer("org_other", "cus_a"),
            None,
        )
        .await;
    assert_eq!((code, other["items"].as_array().unwrap().len()), (200, 0));
    let (_, page) = h
        .call(
            &api,
            "GET",
            "/customers/cus_a/notifications",
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    let id = page["items"][0]["notification_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = h
        .call(
            &api,
            "GET",
            &format!("/notifications/{id}"),
            As::Operator("org_other"),
            None,
        )
        .await;
    assert_eq!(code, 404);
    let (code, _) = h
        .call(
            &api,
            "GET",
            &format!("/notifications/{id}"),
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    assert_eq!(code, 403, "operators only");
    let (code, detail) = h
        .call(
            &api,
            "GET",
            &format!("/notifications/{id}"),
            As::Operator(org),
            None,
        )
        .await;
    assert_eq!(code, 200);
    let log: Vec<&str> = detail["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"].as_str().unwrap())
        .collect();
    assert_eq!(log, vec!["created", "sending", "sent"]);
    // the event's time, kept through the store: the latencies count from it
    let event_at = detail["notification"]["event_at"].as_str().unwrap();
    assert!(event_at <= detail["notification"]["created_at"].as_str().unwrap());
    assert!(
        detail["notification"].get("address").is_none(),
        "no address in the detail"
    );
    let (code, _) = h
        .call(&api, "GET", "/nowhere", As::Operator(org), None)
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn retry_sends_a_failed_notification_once_and_refuses_a_sent_one() {
    let (h, fake) = Harness::with_fake_providers().await;
    let api = h.api();
    let org = h.org.as_str();
    // SendGrid rejects the first message itself: the send fails hard
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/sendgrid",
            As::Admin(org),
            Some(json!({"api_key": herald_local::stand_ins::SENDGRID_KEY})),
        )
        .await;
    assert_eq!(code, 200);
    h.run(&[h.contact("cus_r", &h.email("r"), None, "en").await])
        .await;
    fake.script([herald_local::stand_ins::sendgrid_answer(
        400,
        "The from address does not match a verified Sender Identity.",
    )]);
    let report = h.run_one(h.order_created("cus_r", "ord_r")).await;
    let id = report.notifications[0].id.clone();
    assert_eq!(report.notifications[0].status, "failed");
    let (_, dead) = h
        .call(&api, "GET", "/dead-letters", As::Operator(org), None)
        .await;
    assert_eq!(dead["items"].as_array().unwrap().len(), 1);

    // the sender is fixed at SendGrid; an operator retries, twice
    let retry = format!("/notifications/{id}/retry");
    let (code, body) = h.call(&api, "POST", &retry, As::Operator(org), None).await;
    assert_eq!(
        (code, body["status"].as_str(), body["attempts"].as_u64()),
        (202, Some("pending"), Some(0))
    );
    let (code, _) = h.call(&api, "POST", &retry, As::Operator(org), None).await;
    assert_eq!(code, 409, "already pending again");
    h.local.drain_dispatch().await.unwrap();
    assert_eq!(fake.sendgrid_requests().len(), 1, "sent once");
    let (_, detail) = h
        .call(
            &api,
            "GET",
            &format!("/notifications/{id}"),
            As::Operator(org),
            None,
        )
        .await;
    assert_eq!(
        (
            detail["notification"]["status"].as_str(),
            detail["notification"]["attempts"].as_u64()
        ),
        (Some("sent"), Some(1))
    );

    // a sent one is refused; an unknown one is not found
    let (code, body) = h.call(&api, "POST", &retry, As::Operator(org), None).await;
    assert_eq!((code, body["error"].as_str()), (409, Some("conflict")));
    let (code, _) = h
        .call(
            &api,
            "POST",
            "/notifications/ntf_nope/retry",
            As::Operator(org),
            None,
        )
        .await;
    assert_eq!(code, 404);
    let (code, _) = h
        .call(&api, "POST", &retry, As::Customer(org, "cus_r"), None)
        .await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn preferences_and_contacts_are_validated_and_used() {
    let h = Harness::new().await;
    let api = h.api();
    let org = h.org.as_str();
    let me = As::Customer(org, "cus_p");
    let bad = [
        json!({"channels": {"fax": true}}),
        json!({"channels": {"email": true}, "unsubscribed": ["junk_mail"]}),
        json!({"channels": {"email": true}, "quiet_hours": {"start": "25:00", "end": "07:00"}}),
    ];
    for body in bad {
        let (code, answer) = h
            .call(
                &api,
                "PUT",
                "/customers/cus_p/preferences",
                As::Customer(org, "cus_p"),
                Some(body),
            )
            .await;
        assert_eq!(code, 400, "{answer}");
    }
    let (code, prefs) = h
        .call(&api, "PUT", "/customers/cus_p/preferences", me, Some(json!({"channels": {"email": false, "sms": true}, "unsubscribed": ["review_prompt"]})))
        .await;
    assert_eq!(
        (code, prefs["channels"]["sms"].as_bool()),
        (200, Some(true))
    );
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/customers/cus_p/contact",
            As::Customer(org, "cus_p"),
            Some(json!({"phone": "555-0101"})),
        )
        .await;
    assert_eq!(code, 400);
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/customers/cus_p/contact",
            As::Customer(org, "cus_p"),
            Some(json!({"email": "not an address"})),
        )
        .await;
    assert_eq!(code, 400);
    let phone = "+14155550166";
    let (code, contact) = h
        .call(
            &api,
            "PUT",
            "/customers/cus_p/contact",
            As::Customer(org, "cus_p"),
            Some(json!({"phone": phone, "locale": "fr-CA"})),
        )
        .await;
    assert_eq!((code, contact["phone"].as_str()), (200, Some(phone)));
    // the refund now goes by SMS only, in French
    let report = h
        .run_one(h.event(
            "RefundIssued",
            "payments",
            json!({"customer_id": "cus_p", "refund_id": "ref_p", "order_id": "o", "amount": "5", "currency": "EUR"}),
        ))
        .await;
    let channels: Vec<&str> = report
        .notifications
        .iter()
        .map(|n| n.channel.as_str())
        .collect();
    assert_eq!(channels, vec!["sms"]);
    assert!(report.notifications[0].body.starts_with("Remboursement"));
}

#[tokio::test]
async fn provider_settings_are_admin_only_validated_and_never_returned() {
    let h = Harness::new().await;
    let api = h.api();
    let org = h.org.as_str();
    let key = herald_local::stand_ins::SendGridSigner::new()
        .unwrap()
        .public_key();
    let settings = json!({"api_key": "SG.secret-value", "webhook_public_key": key, "from": "billing@herald.example"});
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/sendgrid",
            As::Operator(org),
            Some(settings.clone()),
        )
        .await;
    assert_eq!(code, 403);
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/sendgrid",
            As::Admin(org),
            Some(json!({"api_key": ""})),
        )
        .await;
    assert_eq!(code, 400);
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/mailgun",
            As::Admin(org),
            Some(settings.clone()),
        )
        .await;
    assert_eq!(code, 404);
    let (code, put) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/sendgrid",
            As::Admin(org),
            Some(settings),
        )
        .await;
    assert_eq!(code, 200);
    let (code, got) = h
        .call(
            &api,
            "GET",
            "/admin/providers/sendgrid",
            As::Admin(org),
            None,
        )
        .await;
    assert_eq!((code, &got), (200, &put));
    assert_eq!(
        got["fields_set"],
        json!(["api_key", "webhook_public_key", "from"])
    );
    assert!(!got.to_string().contains("secret-value"));
}

#[tokio::test]
async fn every_route_of_the_router_is_served() {
    let h = Harness::new().await;
    let api = h.api();
    // every route answers something other than "no such route"
    for (method, template) in herald_api::routes() {
        let path = template
            .replace("{customer_id}", "cus_x")
            .replace("{id}", "ntf_x")
            .replace("{provider}", "ses");
        let (_, body) = h
            .call(
                &api,
                method,
                &path,
                As::Admin(h.org.as_str()),
                Some(json!({})),
            )
            .await;
        assert_ne!(body["error"].as_str(), Some("no_route"), "{method} {path}");
    }
}

#[tokio::test]
async fn an_unknown_path_is_404_and_a_wrong_method_405_both_as_json() {
    let h = Harness::new().await;
    let api = h.api();
    let org = h.org.as_str();
    let (code, body) = h
        .call(&api, "GET", "/nowhere", As::Operator(org), None)
        .await;
    assert_eq!((code, body["error"].as_str()), (404, Some("no_route")));
    assert!(body["message"].is_string(), "{body}");
    // the route is known before the caller is: no token needed to learn it does not exist
    let (code, body) = h
        .call(&api, "GET", "/customers/cus_a/nowhere", As::Nobody, None)
        .await;
    assert_eq!((code, body["error"].as_str()), (404, Some("no_route")));
    let (code, body) = h
        .call(&api, "DELETE", "/stats", As::Operator(org), None)
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(body["message"].is_string(), "{body}");
    let (code, body) = h
        .call(
            &api,
            "GET",
            "/customers/cus_a/notifications/read-all",
            As::Customer(org, "cus_a"),
            None,
        )
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn an_organization_sends_only_from_identities_it_owns() {
    let h = Harness::new().await;
    let api = h.api();
    let (acme, rival) = (h.org.as_str(), format!("{}_rival", h.org));
    let domain = format!("acme-{}.example", h.tag);
    let path = format!("/admin/identities/{domain}");
    let (code, body) = h.call(&api, "PUT", &path, As::Admin(acme), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["identity"], domain.as_str());
    let (code, _) = h.call(&api, "PUT", &path, As::Admin(&rival), None).await;
    assert_eq!(code, 409, "first come: the domain stays acme's");
    let (code, _) = h.call(&api, "GET", &path, As::Admin(&rival), None).await;
    assert_eq!(code, 404, "nobody reads another organization's identity");

    // an SES `from` in acme's domain: acme may, the rival may not
    let from = json!({"from": format!("security@{domain}")});
    let (code, body) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/ses",
            As::Admin(&rival),
            Some(from.clone()),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is not a sending identity of this organization"),
        "{body}"
    );
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/ses",
            As::Admin(acme),
            Some(from),
        )
        .await;
    assert_eq!(code, 200);
    // the deployment's default sender is everyone's
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/ses",
            As::Admin(&rival),
            Some(json!({"from": herald_local::stack::DEFAULT_SENDER})),
        )
        .await;
    assert_eq!(code, 200);

    // the same rule for OrganizationSettingsChanged
    let mut event = h.event(
        "OrganizationSettingsChanged",
        "admin",
        json!({"sender_email": format!("security@{domain}")}),
    );
    event["detail"]["organization_id"] = json!(rival);
    let report = h.run_one(event).await;
    assert_eq!(report.outcome, "rejected");
    assert!(
        report
            .reason
            .as_deref()
            .unwrap()
            .starts_with("detail.sender_email is not a sending identity of this organization"),
        "{report:?}"
    );
    let own = h.event(
        "OrganizationSettingsChanged",
        "admin",
        json!({"sender_email": format!("news@{domain}")}),
    );
    assert_eq!(h.run_one(own).await.outcome, "directory_updated");
}

#[tokio::test]
async fn an_administrator_sets_the_order_providers_are_asked_in() {
    let h = Harness::new().await;
    let api = h.api();
    let org = h.org.as_str();
    let (code, answer) = h
        .call(&api, "GET", "/admin/routing", As::Admin(org), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(answer["routing"], json!({}));
    assert_eq!(answer["effective"]["email"], json!(["ses"]), "{answer}");
    assert_eq!(answer["effective"]["whatsapp"], json!([]));
    // SendGrid is not set up yet
    let route = json!({"email": ["sendgrid", "ses"]});
    let (code, refusal) = h
        .call(
            &api,
            "PUT",
            "/admin/routing",
            As::Admin(org),
            Some(route.clone()),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(
        refusal["message"],
        "email[0]: sendgrid is not set up for this organization"
    );
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/sendgrid",
            As::Admin(org),
            Some(json!({"api_key": herald_local::stand_ins::SENDGRID_KEY})),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/routing",
            As::Operator(org),
            Some(route.clone()),
        )
        .await;
    assert_eq!(code, 403, "administrators only");
    let (code, set) = h
        .call(
            &api,
            "PUT",
            "/admin/routing",
            As::Admin(org),
            Some(route.clone()),
        )
        .await;
    assert_eq!((code, &set["routing"]), (200, &route));
    assert_eq!(set["effective"]["email"], json!(["sendgrid", "ses"]));
    // the provider settings written meanwhile are kept, and the routing is read back
    let (_, answer) = h
        .call(&api, "GET", "/admin/routing", As::Admin(org), None)
        .await;
    assert_eq!(answer, set);
    let (_, sendgrid) = h
        .call(
            &api,
            "GET",
            "/admin/providers/sendgrid",
            As::Admin(org),
            None,
        )
        .await;
    assert_eq!(sendgrid["configured"], true);
    // {} goes back to the deployment's
    let (_, cleared) = h
        .call(
            &api,
            "PUT",
            "/admin/routing",
            As::Admin(org),
            Some(json!({})),
        )
        .await;
    assert_eq!(cleared["routing"], json!({}));
    assert_eq!(cleared["effective"]["email"], json!(["sendgrid", "ses"]));
}
