//! Provider settings through the admin api: validated field by field, and written so that
//! two administrators configuring different providers never erase each other.

use herald_e2e::{As, Harness, SendGridSigner};
use serde_json::{Value, json};

async fn put(h: &Harness, api: &herald_api::Api, provider: &str, body: Value) -> (u16, Value) {
    h.call(
        api,
        "PUT",
        &format!("/admin/providers/{provider}"),
        As::Admin(&h.org),
        Some(body),
    )
    .await
}

async fn get(h: &Harness, api: &herald_api::Api, provider: &str) -> Value {
    let (code, body) = h
        .call(
            api,
            "GET",
            &format!("/admin/providers/{provider}"),
            As::Admin(&h.org),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn configuring_one_provider_keeps_another_saved_meanwhile() {
    let h = Harness::new().await;
    // two warm api instances, each with its own copy of the settings
    let (first, second) = (h.api(), h.api());
    assert_eq!(get(&h, &first, "twilio").await["configured"], json!(false));

    let (code, _) = put(
        &h,
        &second,
        "sendgrid",
        json!({"api_key": "SG.saved-meanwhile"}),
    )
    .await;
    assert_eq!(code, 200);
    let (code, answer) = put(
        &h,
        &first,
        "twilio",
        json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "t0ken", "from": "+14155550199"}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");

    let third = h.api();
    assert_eq!(get(&h, &third, "sendgrid").await["configured"], json!(true));
    assert_eq!(get(&h, &third, "twilio").await["configured"], json!(true));
}

#[tokio::test]
async fn provider_settings_are_validated_field_by_field() {
    let h = Harness::new().await;
    let api = h.api();
    let cases = [
        (
            "sendgrid",
            json!({"api_key": "SG.k", "webhook_public_key": "bm90IGEga2V5"}),
            "webhook_public_key",
        ),
        ("sendgrid", json!({"api_key": "x".repeat(5000)}), "api_key"),
        ("ses", json!({"sns_topic_arns": ["*"]}), "sns_topic_arns"),
        (
            "ses",
            json!({"sns_topic_arns": ["arn:aws:sns:mars-north-1:123456789012:events"]}),
            "sns_topic_arns",
        ),
        (
            "ses",
            json!({"sns_topic_arns": ["arn:aws:sqs:us-east-1:123456789012:events"]}),
            "sns_topic_arns",
        ),
        (
            "ses",
            json!({"configuration_set": "not a set name!"}),
            "configuration_set",
        ),
        (
            "twilio",
            json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "t\nx", "from": "+14155550199"}),
            "auth_token",
        ),
    ];
    for (provider, body, field) in cases {
        let (code, answer) = put(&h, &api, provider, body.clone()).await;
        assert_eq!(code, 400, "{provider} {body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{message} names {field}");
    }
    assert_eq!(get(&h, &api, "sendgrid").await["configured"], json!(false));
    assert_eq!(get(&h, &api, "ses").await["configured"], json!(false));

    let key = SendGridSigner::new().unwrap().public_key();
    let (code, answer) = put(
        &h,
        &api,
        "sendgrid",
        json!({"api_key": "SG.k", "webhook_public_key": key}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = put(
        &h,
        &api,
        "ses",
        json!({"sns_topic_arns": ["arn:aws:sns:eu-west-1:123456789012:ses-events"], "configuration_set": "acme_events-1"}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}
