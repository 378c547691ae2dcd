#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Push through platform endpoints: one publish per device, per-device outcomes, disabled
//! endpoints, retries to the devices that have not accepted yet.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};

use common::{ORG, World, at};
use herald_core::dispatch::DispatchOutcome;
use herald_core::ids::{CustomerId, OrgId};
use herald_core::model::{Channel, Notification, Status};
use herald_core::ports::PushRefusal;
use herald_core::providers::{OrgProviders, PushApplications};
use herald_core::push::{DeviceEndpoints, PushSender};
use herald_core::testing::{MemoryProviderSettings, MemoryPushEndpoints, MemoryUnread};

const FCM_APP: &str = "arn:aws:sns:eu-west-1:123456789012:app/GCM/acme";
const APNS_APP: &str = "arn:aws:sns:eu-west-1:123456789012:app/APNS_SANDBOX/acme";

struct Push {
    world: World,
    endpoints: Arc<MemoryPushEndpoints>,
}

fn org() -> OrgId {
    OrgId::parse(ORG).unwrap()
}

fn alice() -> CustomerId {
    CustomerId::parse("cus_alice").unwrap()
}

async fn push_world(org_apps: PushApplications, defaults: PushApplications) -> Push {
    push_world_with(org_apps, defaults, false).await
}

/// `at_registration`: intake makes and deletes endpoints as devices come and go (else they
/// are made at the first push).
async fn push_world_with(
    org_apps: PushApplications,
    defaults: PushApplications,
    at_registration: bool,
) -> Push {
    let mut world = World::new();
    let endpoints = MemoryPushEndpoints::new();
    let settings = Arc::new(MemoryProviderSettings::default());
    settings.set(
        &org(),
        OrgProviders {
            push: org_apps,
            ..OrgProviders::default()
        },
    );
    if at_registration {
        world.intake.device_endpoints = Some(Arc::new(DeviceEndpoints {
            endpoints: endpoints.clone(),
            settings: settings.clone(),
            defaults: defaults.clone(),
        }));
    }
    let views = Arc::new(MemoryUnread::default());
    views.unread.lock().unwrap().insert((org(), alice()), 4);
    world.push = Some(Arc::new(PushSender {
        endpoints: endpoints.clone(),
        directory: world.directory.clone(),
        views,
        settings,
        defaults,
        clock: world.clock.clone(),
    }));
    world.contact("cus_alice", "en").await;
    world
        .preferences("cus_alice", json!({"push": true}), json!([]))
        .await;
    for (platform, token) in [("fcm", "fcm-token-1"), ("apns", "apns-token-1")] {
        world
            .event(
                "DeviceRegistered",
                json!({"customer_id": "cus_alice", "platform": platform, "token": token}),
            )
            .await;
    }
    Push { world, endpoints }
}

fn both_apps() -> PushApplications {
    PushApplications {
        fcm: Some(FCM_APP.into()),
        apns: Some(APNS_APP.into()),
    }
}

async fn ticket(world: &mut World) -> Vec<DispatchOutcome> {
    world
        .event(
            "TicketPurchased",
            json!({"customer_id": "cus_alice", "ticket_id": "tkt_1", "event_name": "Jazz at the Park",
                   "starts_at": "2026-12-06T00:30:00Z", "seats": ["A12"]}),
        )
        .await;
    world.drain().await
}

fn push_notification(world: &World) -> Notification {
    world
        .notifications()
        .into_iter()
        .find(|n| n.channel == Channel::Push)
        .unwrap()
}

fn platform_payload(message: &str) -> (String, Value) {
    let message: Value = serde_json::from_str(message).unwrap();
    let (key, payload) = message
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() != "default")
        .unwrap();
    (
        key.clone(),
        serde_json::from_str(payload.as_str().unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn each_device_gets_its_platforms_payload_with_the_unread_badge() {
    let mut p = push_world(both_apps(), PushApplications::default()).await;
    ticket(&mut p.world).await;
    let n = push_notification(&p.world);
    assert_eq!(n.status, Status::Sent);
    assert_eq!(n.push_accepted.len(), 2);
    let published = p.endpoints.published();
    assert_eq!(published.len(), 2);
    for messages in published.values() {
        assert_eq!(messages.len(), 1);
        let (key, payload) = platform_payload(&messages[0]);
        match key.as_str() {
            "GCM" => {
                let message = &payload["fcmV1Message"]["message"];
                assert!(message["notification"]["title"].is_string());
                assert_eq!(message["data"]["notification_id"], n.id.to_string());
                assert_eq!(message["data"]["badge"], "4");
            }
            "APNS_SANDBOX" => {
                assert_eq!(payload["aps"]["badge"], 4);
                assert_eq!(payload["aps"]["sound"], "default");
                assert_eq!(payload["notification_id"], n.id.to_string());
            }
            other => panic!("unexpected platform {other}"),
        }
    }
    // the endpoints made at send time are kept with the devices
    let record = p.world.directory.customers.lock().unwrap()[&(org(), alice())]
        .value
        .clone();
    assert!(
        record
            .registered_devices()
            .iter()
            .all(|d| d.endpoint_arn.is_some())
    );
}

#[tokio::test]
async fn a_disabled_endpoint_removes_its_device_and_the_others_still_get_it() {
    let mut p = push_world(both_apps(), PushApplications::default()).await;
    ticket(&mut p.world).await;
    let fcm_endpoint = p
        .endpoints
        .published()
        .into_keys()
        .find(|arn| arn.contains("/GCM/"))
        .unwrap();
    p.endpoints.disable(&fcm_endpoint);

    p.world
        .event(
            "TicketPurchased",
            json!({"customer_id": "cus_alice", "ticket_id": "tkt_2", "event_name": "Opera",
                   "starts_at": "2026-12-07T00:30:00Z", "seats": ["B1"]}),
        )
        .await;
    let outcomes = p.world.drain().await;
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, DispatchOutcome::Sent { .. }))
    );
    let record = p.world.directory.customers.lock().unwrap()[&(org(), alice())]
        .value
        .clone();
    let devices = record.registered_devices();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].token, "apns-token-1");
    assert_eq!(
        p.endpoints.deleted.lock().unwrap().as_slice(),
        [fcm_endpoint]
    );
    let apns = p
        .endpoints
        .published()
        .into_iter()
        .find(|(arn, _)| arn.contains("/APNS_SANDBOX/"))
        .unwrap();
    assert_eq!(apns.1.len(), 2);
}

#[tokio::test]
async fn every_endpoint_disabled_fails_the_notification() {
    let mut p = push_world(both_apps(), PushApplications::default()).await;
    ticket(&mut p.world).await;
    for arn in p.endpoints.published().into_keys() {
        p.endpoints.disable(&arn);
    }
    p.world
        .event(
            "TicketPurchased",
            json!({"customer_id": "cus_alice", "ticket_id": "tkt_2", "event_name": "Opera",
                   "starts_at": "2026-12-07T00:30:00Z", "seats": ["B1"]}),
        )
        .await;
    let outcomes = p.world.drain().await;
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, DispatchOutcome::Failed { .. })),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_throttled_device_is_retried_alone() {
    let mut p = push_world(both_apps(), PushApplications::default()).await;
    // the first publish goes through, the second is throttled
    p.endpoints.refuse_next(PushRefusal::Soft {
        reason: "throttled".into(),
        code: Some("Throttling".into()),
    });
    let outcomes = ticket(&mut p.world).await;
    let Some(DispatchOutcome::Retrying { next_retry_at, .. }) = outcomes
        .iter()
        .find(|o| matches!(o, DispatchOutcome::Retrying { .. }))
        .cloned()
    else {
        panic!("{outcomes:?}")
    };
    let n = push_notification(&p.world);
    assert_eq!(n.push_accepted.len(), 1);

    p.world
        .clock
        .set(next_retry_at + chrono::Duration::seconds(1));
    p.world.drain().await;
    let n = push_notification(&p.world);
    assert_eq!(n.status, Status::Sent);
    assert_eq!(n.push_accepted.len(), 2);
    // each device got it once
    for messages in p.endpoints.published().values() {
        assert_eq!(messages.len(), 1);
    }
}

#[tokio::test]
async fn an_organization_without_applications_uses_the_deployments() {
    let mut p = push_world(PushApplications::default(), both_apps()).await;
    ticket(&mut p.world).await;
    assert_eq!(push_notification(&p.world).status, Status::Sent);
}

#[tokio::test]
async fn without_any_application_push_is_not_configured() {
    let mut p = push_world(PushApplications::default(), PushApplications::default()).await;
    ticket(&mut p.world).await;
    let n = push_notification(&p.world);
    assert_eq!(n.status, Status::Failed);
    assert!(n.last_error.unwrap().contains("not configured"));
}

#[tokio::test]
async fn an_unregistered_device_gets_no_further_push() {
    let mut p = push_world(both_apps(), PushApplications::default()).await;
    p.world.clock.set(at("2026-11-20T15:00:00Z"));
    ticket(&mut p.world).await;
    p.world
        .event(
            "DeviceUnregistered",
            json!({"customer_id": "cus_alice", "platform": "fcm", "token": "fcm-token-1"}),
        )
        .await;
    p.world
        .event(
            "TicketPurchased",
            json!({"customer_id": "cus_alice", "ticket_id": "tkt_2", "event_name": "Opera",
                   "starts_at": "2026-12-07T00:30:00Z", "seats": ["B1"]}),
        )
        .await;
    p.world.drain().await;
    for (arn, messages) in p.endpoints.published() {
        let expected = if arn.contains("/GCM/") { 1 } else { 2 };
        assert_eq!(messages.len(), expected, "{arn}");
    }
}

fn stored_devices(world: &World) -> Vec<herald_core::model::Device> {
    world.directory.customers.lock().unwrap()[&(org(), alice())]
        .value
        .registered_devices()
}

#[tokio::test]
async fn registering_a_device_makes_its_endpoint_and_unregistering_deletes_it() {
    let mut p = push_world_with(both_apps(), PushApplications::default(), true).await;
    let devices = stored_devices(&p.world);
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().all(|d| d.endpoint_arn.is_some()));
    assert_eq!(p.endpoints.published().len(), 2);
    let fcm = devices.iter().find(|d| d.token == "fcm-token-1").unwrap();
    let fcm_endpoint = fcm.endpoint_arn.clone().unwrap();

    let unregister = json!({"customer_id": "cus_alice", "platform": "fcm", "token": "fcm-token-1"});
    p.world
        .event_with_id("unreg-1", "DeviceUnregistered", unregister.clone())
        .await;
    assert_eq!(
        *p.endpoints.deleted.lock().unwrap(),
        vec![fcm_endpoint.clone()]
    );
    assert_eq!(stored_devices(&p.world).len(), 1);
    // the same event again deletes nothing more
    p.world
        .event_with_id("unreg-1", "DeviceUnregistered", unregister)
        .await;
    assert_eq!(p.endpoints.deleted.lock().unwrap().len(), 1);

    ticket(&mut p.world).await;
    let published = p.endpoints.published();
    assert!(!published.contains_key(&fcm_endpoint));
    assert_eq!(published.values().map(Vec::len).sum::<usize>(), 1);
}

#[tokio::test]
async fn a_device_registered_without_an_application_gets_none_until_its_first_push() {
    let p = push_world_with(
        PushApplications::default(),
        PushApplications::default(),
        true,
    )
    .await;
    assert!(
        stored_devices(&p.world)
            .iter()
            .all(|d| d.endpoint_arn.is_none())
    );
    assert!(p.endpoints.published().is_empty());
}
