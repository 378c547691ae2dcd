//! Mobile push through SNS platform applications on the emulator: one publish per device
//! endpoint in its platform's shape, a disabled endpoint, an unregistered device.

use herald_core::ids::CustomerId;
use herald_core::ports::{Directory, Views};
use herald_core::providers::PushApplications;
use herald_e2e::Harness;
use serde_json::{Value, json};

struct Push {
    h: Harness,
    fcm_token: String,
    apns_token: String,
}

async fn platform_application(h: &Harness, platform: &str) -> String {
    let mut request = aws_sdk_sns::Client::new(&h.local.aws)
        .create_platform_application()
        .name(format!("herald-{}-{}", platform.to_lowercase(), h.tag))
        .platform(platform);
    request = if platform == "GCM" {
        request.attributes("PlatformCredential", r#"{"type": "service_account"}"#)
    } else {
        request
            .attributes("PlatformCredential", "-----BEGIN PRIVATE KEY-----")
            .attributes("PlatformPrincipal", "ABCDE12345")
    };
    request
        .send()
        .await
        .unwrap()
        .platform_application_arn
        .unwrap()
}

/// A customer with push on and two devices (FCM and APNS) in an organization with both
/// platform applications, and something unread in the feed.
async fn setup() -> Push {
    let h = Harness::with(herald_local::Options {
        settings_ttl: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await;
    let apps = PushApplications {
        fcm: Some(platform_application(&h, "GCM").await),
        apns: Some(platform_application(&h, "APNS_SANDBOX").await),
    };
    h.set_push_applications(apps).await;
    let fcm_token = format!("fcm-{}", h.tag);
    let apns_token = format!("apns-{}", h.tag);
    h.run(&[
        h.contact("cus_p", &h.email("p"), None, "en-US").await,
        h.preferences("cus_p", json!({"email": true, "push": true}), json!([])),
        h.event(
            "DeviceRegistered",
            "customers",
            json!({"customer_id": "cus_p", "platform": "fcm", "token": fcm_token}),
        ),
        h.event(
            "DeviceRegistered",
            "customers",
            json!({"customer_id": "cus_p", "platform": "apns", "token": apns_token}),
        ),
        h.order_created("cus_p", "ord_p1"),
    ])
    .await;
    Push {
        h,
        fcm_token,
        apns_token,
    }
}

fn ticket(h: &Harness, ticket_id: &str) -> Value {
    h.event(
        "TicketPurchased",
        "ticketing",
        json!({"customer_id": "cus_p", "ticket_id": ticket_id, "event_name": "Jazz at the Park",
               "starts_at": "2026-12-06T00:30:00Z", "seats": ["A12"]}),
    )
}

fn payload(message: &str, key: &str) -> Value {
    let message: Value = serde_json::from_str(message).unwrap();
    serde_json::from_str(message[key].as_str().unwrap()).unwrap()
}

async fn push_status(h: &Harness, ticket_id: &str) -> String {
    let report = h.run_one(ticket(h, ticket_id)).await;
    report
        .notifications
        .iter()
        .find(|n| n.channel == "push")
        .unwrap_or_else(|| panic!("no push: {report:?}"))
        .status
        .clone()
}

#[tokio::test]
async fn each_device_gets_one_publish_in_its_platforms_shape_with_the_unread_badge() {
    let p = setup().await;
    let customer = CustomerId::parse("cus_p").unwrap();
    let unread =
        p.h.local
            .views
            .unread(&p.h.org_id(), &customer)
            .await
            .unwrap();
    assert!(unread > 0);
    let report = p.h.run_one(ticket(&p.h, "tkt_1")).await;
    let push = report
        .notifications
        .iter()
        .find(|n| n.channel == "push")
        .unwrap();
    assert_eq!(push.status, "sent", "{report:?}");

    let sent = p.h.sent().await;
    let fcm = sent.pushes_to(&p.fcm_token);
    assert_eq!(fcm.len(), 1);
    let gcm = payload(&fcm[0], "GCM");
    let message = &gcm["fcmV1Message"]["message"];
    assert_eq!(message["notification"]["title"], json!(push.subject));
    assert_eq!(message["data"]["notification_id"], json!(push.id));
    assert_eq!(message["data"]["badge"], json!(unread.to_string()));

    let apns = sent.pushes_to(&p.apns_token);
    assert_eq!(apns.len(), 1);
    let aps = payload(&apns[0], "APNS_SANDBOX");
    assert_eq!(aps["aps"]["alert"]["title"], json!(push.subject));
    assert_eq!(aps["aps"]["badge"], json!(unread));
    assert_eq!(aps["aps"]["sound"], "default");
    assert_eq!(aps["notification_id"], json!(push.id));
}

#[tokio::test]
async fn a_disabled_endpoint_removes_its_device_and_the_other_still_gets_it() {
    let p = setup().await;
    assert_eq!(push_status(&p.h, "tkt_1").await, "sent");
    let customer = CustomerId::parse("cus_p").unwrap();
    let record =
        p.h.local_directory()
            .get_customer(&p.h.org_id(), &customer)
            .await
            .unwrap()
            .map(|v| v.value);
    let fcm_endpoint = record
        .unwrap()
        .registered_devices()
        .into_iter()
        .find(|d| d.token == p.fcm_token)
        .and_then(|d| d.endpoint_arn)
        .unwrap();
    aws_sdk_sns::Client::new(&p.h.local.aws)
        .set_endpoint_attributes()
        .endpoint_arn(&fcm_endpoint)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();

    assert_eq!(push_status(&p.h, "tkt_2").await, "sent");
    let sent = p.h.sent().await;
    assert_eq!(sent.pushes_to(&p.apns_token).len(), 2);
    assert_eq!(sent.pushes_to(&p.fcm_token).len(), 1);
    let record =
        p.h.local_directory()
            .get_customer(&p.h.org_id(), &customer)
            .await
            .unwrap()
            .map(|v| v.value);
    let devices = record.unwrap().registered_devices();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].token, p.apns_token);
}

#[tokio::test]
async fn an_unregistered_device_gets_no_further_push() {
    let p = setup().await;
    assert_eq!(push_status(&p.h, "tkt_1").await, "sent");
    p.h.run(&[p.h.event(
        "DeviceUnregistered",
        "customers",
        json!({"customer_id": "cus_p", "platform": "fcm", "token": p.fcm_token}),
    )])
    .await;
    assert_eq!(push_status(&p.h, "tkt_2").await, "sent");
    let sent = p.h.sent().await;
    assert_eq!(sent.pushes_to(&p.fcm_token).len(), 1);
    assert_eq!(sent.pushes_to(&p.apns_token).len(), 2);
}

#[tokio::test]
async fn an_organization_without_platform_applications_has_push_not_configured() {
    let h = Harness::new().await;
    h.run(&[
        h.contact("cus_p", &h.email("p"), None, "en-US").await,
        h.preferences("cus_p", json!({"email": true, "push": true}), json!([])),
        h.event(
            "DeviceRegistered",
            "customers",
            json!({"customer_id": "cus_p", "platform": "fcm", "token": format!("fcm-{}", h.tag)}),
        ),
    ])
    .await;
    assert_eq!(push_status(&h, "tkt_1").await, "failed");
}

#[tokio::test]
async fn devices_get_their_endpoints_when_registered_and_lose_them_when_unregistered() {
    let p = setup().await;
    let customer = CustomerId::parse("cus_p").unwrap();
    let record =
        p.h.local_directory()
            .get_customer(&p.h.org_id(), &customer)
            .await
            .unwrap()
            .map(|v| v.value);
    let devices = record.unwrap().registered_devices();
    assert_eq!(devices.len(), 2);
    let fcm_endpoint = devices
        .iter()
        .find(|d| d.token == p.fcm_token)
        .and_then(|d| d.endpoint_arn.clone())
        .expect("the endpoint made at registration");
    let sns = aws_sdk_sns::Client::new(&p.h.local.aws);
    let attributes = sns
        .get_endpoint_attributes()
        .endpoint_arn(&fcm_endpoint)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attributes.attributes().and_then(|a| a.get("Token")),
        Some(&p.fcm_token)
    );

    p.h.run(&[p.h.event(
        "DeviceUnregistered",
        "customers",
        json!({"customer_id": "cus_p", "platform": "fcm", "token": p.fcm_token}),
    )])
    .await;
    let gone = sns
        .get_endpoint_attributes()
        .endpoint_arn(&fcm_endpoint)
        .send()
        .await;
    assert!(gone.is_err(), "the endpoint is deleted");
}

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQg\n-----END PRIVATE KEY-----";

#[tokio::test]
async fn administrators_set_fcm_and_apns_platform_applications_and_pushes_go_through_them() {
    use herald_e2e::As;
    let h = Harness::with(herald_local::Options {
        settings_ttl: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await;
    let api = h.api();
    let org = h.org.as_str();
    let account = json!({"type": "service_account", "project_id": "acme", "private_key": PEM,
                         "client_email": "push@acme.iam.gserviceaccount.com"});
    let fcm = json!({"service_account_json": account.to_string()});
    let apns = json!({"signing_key": PEM, "key_id": "ABCDE12345", "team_id": "TEAM123456",
                      "bundle_id": "com.acme.app", "sandbox": true});

    let (code, _) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/fcm",
            As::Operator(org),
            Some(fcm.clone()),
        )
        .await;
    assert_eq!(code, 403);
    let mut bad = apns.clone();
    bad["team_id"] = json!("short");
    let (code, answer) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/apns",
            As::Admin(org),
            Some(bad),
        )
        .await;
    assert_eq!(code, 400);
    assert!(answer.to_string().contains("team_id"), "{answer}");
    let (_, got) = h
        .call(&api, "GET", "/admin/providers/apns", As::Admin(org), None)
        .await;
    assert_eq!(got["configured"], false);

    let (code, put_fcm) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/fcm",
            As::Admin(org),
            Some(fcm.clone()),
        )
        .await;
    assert_eq!(code, 200, "{put_fcm}");
    assert_eq!(put_fcm["platform"], "GCM");
    let (code, put_apns) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/apns",
            As::Admin(org),
            Some(apns),
        )
        .await;
    assert_eq!(code, 200, "{put_apns}");
    assert_eq!(put_apns["platform"], "APNS_SANDBOX");
    // a second PUT updates the same application
    let (_, again) = h
        .call(
            &api,
            "PUT",
            "/admin/providers/fcm",
            As::Admin(org),
            Some(fcm),
        )
        .await;
    assert_eq!(again["application_arn"], put_fcm["application_arn"]);

    let (code, got) = h
        .call(&api, "GET", "/admin/providers/apns", As::Admin(org), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(got["configured"], true);
    assert!(!got.to_string().contains("PRIVATE KEY"), "{got}");

    let sns = aws_sdk_sns::Client::new(&h.local.aws);
    let attributes = sns
        .get_platform_application_attributes()
        .platform_application_arn(put_apns["application_arn"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    assert_eq!(
        attributes.get("PlatformPrincipal").map(String::as_str),
        Some("ABCDE12345")
    );
    assert_eq!(
        attributes.get("ApplePlatformTeamID").map(String::as_str),
        Some("TEAM123456")
    );
    assert_eq!(
        attributes.get("ApplePlatformBundleID").map(String::as_str),
        Some("com.acme.app")
    );

    let token = format!("apns-{}", h.tag);
    h.run(&[
        h.contact("cus_p", &h.email("p"), None, "en-US").await,
        h.preferences("cus_p", json!({"email": true, "push": true}), json!([])),
        h.event(
            "DeviceRegistered",
            "customers",
            json!({"customer_id": "cus_p", "platform": "apns", "token": token}),
        ),
    ])
    .await;
    assert_eq!(push_status(&h, "tkt_1").await, "sent");
    assert_eq!(h.sent().await.pushes_to(&token).len(), 1);
}
