#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Properties of the api's request bodies (a customer's preferences and contact, provider
//! settings, push platforms) and of the identity it registers: whatever the body, the api
//! answers (never panics, never a 5xx), a 400 names the field that was wrong and never quotes
//! a value, and a refused request writes nothing.
//!
//! Every string value the strategies make carries [`SECRET`], so that an answer quoting a
//! value shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald_api::Api;
use herald_core::identity::{IdentityStatus, SenderIdentity};
use herald_core::ids::{CustomerId, EmailAddress, OrgId};
use herald_core::ports::{Directory, PortError, ProviderSettings, SendingIdentities};
use herald_core::template::Catalog;
use herald_core::testing::{
    FixedClock, MemoryDirectory, MemoryPlatformApplications, MemoryProviderSettings, MemoryQueue,
    MemoryStore, MemoryUnread,
};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Cases per property: few enough for a debug build to run the file in seconds.
const CASES: u32 = 256;

/// In every string value the strategies make; no answer may contain it.
const SECRET: &str = "Zq7";

const ORG: &str = "org_acme";
const CUSTOMER: &str = "cus_1";

/// Identities in memory: registered ones are verified.
#[derive(Default)]
struct MemoryIdentities {
    registered: Mutex<Vec<SenderIdentity>>,
}

#[async_trait]
impl SendingIdentities for MemoryIdentities {
    async fn register(&self, identity: &SenderIdentity) -> Result<IdentityStatus, PortError> {
        self.registered.lock().unwrap().push(identity.clone());
        Ok(IdentityStatus {
            verified: true,
            dkim_tokens: Vec::new(),
        })
    }

    async fn status(&self, identity: &SenderIdentity) -> Result<Option<IdentityStatus>, PortError> {
        let known = self.registered.lock().unwrap().contains(identity);
        Ok(known.then(|| IdentityStatus {
            verified: true,
            dkim_tokens: Vec::new(),
        }))
    }
}

/// The api on memory ports, and the ports a refused request must leave alone.
struct World {
    api: Api,
    directory: Arc<MemoryDirectory>,
    settings: Arc<MemoryProviderSettings>,
    applications: Arc<MemoryPlatformApplications>,
    identities: Arc<MemoryIdentities>,
}

fn world() -> World {
    let directory = Arc::new(MemoryDirectory::default());
    let settings = Arc::new(MemoryProviderSettings::default());
    let applications = Arc::new(MemoryPlatformApplications::default());
    let identities = Arc::new(MemoryIdentities::default());
    let api = Api {
        store: Arc::new(MemoryStore::default()),
        directory: directory.clone(),
        views: Arc::new(MemoryUnread::default()),
        queue: Arc::new(MemoryQueue::default()),
        settings: settings.clone(),
        identities: identities.clone(),
        push_applications: applications.clone(),
        catalog: Arc::new(Catalog::embedded().unwrap()),
        templates: Arc::new(herald_core::testing::MemoryTemplates::default()),
        clock: FixedClock::at("2026-11-20T10:00:00Z".parse().unwrap()),
        default_sender: EmailAddress::parse("notifications@herald.example").unwrap(),
        routing: herald_core::routing::Routing::builtin(),
        rate_limits: Default::default(),
        realtime: None,
    };
    World {
        api,
        directory,
        settings,
        applications,
        identities,
    }
}

impl World {
    /// `PUT path` with `body`, as an administrator of [`ORG`] (who may call every route here).
    fn put(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.http.method = lambda_http::http::Method::PUT;
        context.http.path = Some(path.to_string());
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = HashMap::from([
            ("org_id".to_string(), ORG.to_string()),
            ("role".to_string(), "admin".to_string()),
        ]);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        context.authorizer = Some(authorizer);
        let request = lambda_http::http::Request::builder()
            .method("PUT")
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
            .with_request_context(RequestContext::ApiGatewayV2(context));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = runtime
            .block_on(herald_api::handle(&self.api, request))
            .unwrap();
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        (status, body)
    }

    /// Whether anything was written: the customer, the provider settings, a platform
    /// application, an identity.
    fn written(&self) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let org = OrgId::parse(ORG).unwrap();
        let customer = runtime
            .block_on(
                self.directory
                    .get_customer(&org, &CustomerId::parse(CUSTOMER).unwrap()),
            )
            .unwrap();
        let settings = runtime.block_on(self.settings.read(&org)).unwrap();
        customer.is_some()
            || settings.version.is_some()
            || !self.applications.applications.lock().unwrap().is_empty()
            || !self.identities.registered.lock().unwrap().is_empty()
            || !self.directory.identities.lock().unwrap().is_empty()
    }
}

/// Checks an answer to a body: accepted, or refused with a 400 that names one of `fields` and
/// quotes no value, having written nothing.
fn answered(
    world: &World,
    (status, body): (u16, Value),
    fields: &[&str],
) -> Result<(), TestCaseError> {
    let message = body["message"].as_str().unwrap_or_default().to_string();
    prop_assert!(status == 200 || status == 400, "{} {}", status, body);
    prop_assert!(
        !body.to_string().contains(SECRET),
        "an answer quotes a value: {}",
        body
    );
    if status == 400 {
        prop_assert!(!world.written(), "a refused request wrote: {}", message);
        prop_assert!(
            fields.iter().any(|f| message.contains(f))
                || message.starts_with("invalid body: expected"),
            "the refusal names no field: {}",
            message
        );
    }
    Ok(())
}

/// Arbitrary JSON, with the bodies' field names among the keys and [`SECRET`] in every string.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,16}".prop_map(|s| Value::String(format!("{SECRET}{s}"))),
        "\\PC{0,8}".prop_map(|s| Value::String(format!("{SECRET}{s}"))),
        Just(json!(format!("{SECRET}{}", "x".repeat(20_000)))),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The bodies' fields: a customer's, every provider's and push platform's.
const FIELDS: &[&str] = &[
    "channels",
    "unsubscribed",
    "quiet_hours",
    "start",
    "end",
    "email",
    "sms",
    "push",
    "whatsapp",
    "in_app",
    "phone",
    "locale",
    "timezone",
    "api_key",
    "webhook_public_key",
    "from",
    "account_sid",
    "auth_token",
    "whatsapp_from",
    "configuration_set",
    "sns_topic_arns",
    "service_account_json",
    "signing_key",
    "key_id",
    "team_id",
    "bundle_id",
    "sandbox",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
    ]
}

/// An object of the bodies' fields, or any JSON, or bytes that may not be JSON at all.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::btree_map(key(), any_json(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()).to_string().into_bytes()),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// What a refusal may name besides the body's fields: the body itself, and the settings'
/// own names (`sendgrid settings`, `unknown notification type`).
fn nameable() -> Vec<&'static str> {
    let mut names = FIELDS.to_vec();
    names.extend(["invalid body", "unknown field", "settings"]);
    names
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// A customer's preferences or contact, any provider's or platform's settings: accepted, or
    /// refused by field with nothing written.
    #[test]
    fn any_body_is_accepted_or_refused_by_field_writing_nothing(
        path in prop::sample::select(&[
            "/customers/cus_1/preferences",
            "/customers/cus_1/contact",
            "/admin/providers/sendgrid",
            "/admin/providers/twilio",
            "/admin/providers/ses",
            "/admin/providers/fcm",
            "/admin/providers/apns",
            "/admin/routing",
            "/admin/rate-limits",
        ][..]),
        body in any_body(),
    ) {
        let world = world();
        let answer = world.put(path, body);
        answered(&world, answer, &nameable())?;
    }

    /// Any identity in the path: registered, or refused (naming what an identity must be) with
    /// nothing claimed or registered.
    #[test]
    fn any_identity_is_registered_or_refused_claiming_nothing(identity in "\\PC{1,40}") {
        let world = world();
        let encoded: String = format!("{SECRET}{identity}")
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        let answer = world.put(&format!("/admin/identities/{encoded}"), Vec::new());
        answered(&world, answer, &["identity", "email", "domain", "address"])?;
    }
}

/// The bodies' own shapes, each field of another type in turn: refused by that field's name.
#[test]
fn a_field_of_the_wrong_type_is_named() {
    for (path, body, field) in [
        (
            "/customers/cus_1/preferences",
            json!({"channels": {"email": "Zq7 yes"}}),
            "channels.email",
        ),
        (
            "/customers/cus_1/preferences",
            json!({"channels": {}, "quiet_hours": {"start": 22, "end": "07:00"}}),
            "quiet_hours.start",
        ),
        (
            "/customers/cus_1/preferences",
            json!({"channels": {}, "quiet_hours": {"start": "Zq7", "end": "07:00"}}),
            "quiet_hours.start",
        ),
        (
            "/customers/cus_1/contact",
            json!({"phone": 14155550101_u64}),
            "phone",
        ),
        (
            "/customers/cus_1/contact",
            json!({"timezone": "Zq7/Nowhere"}),
            "timezone",
        ),
        (
            "/admin/providers/sendgrid",
            json!({"api_key": 12345}),
            "api_key",
        ),
        (
            "/admin/providers/twilio",
            json!({"account_sid": ["Zq7"], "auth_token": "t", "from": "+14155550101"}),
            "account_sid",
        ),
        ("/admin/routing", json!({"email": ["ses", "Zq7"]}), "email"),
        ("/admin/routing", json!({"sms": ["ses"]}), "sms[0]"),
        (
            "/admin/rate-limits",
            json!({"sms": {"per_second": "Zq7"}}),
            "sms.per_second",
        ),
        (
            "/admin/rate-limits",
            json!({"sms": {"per_second": 0}}),
            "sms.per_second",
        ),
        (
            "/admin/rate-limits",
            json!({"email": {"per_day": 100_000_001}}),
            "email.per_day",
        ),
        (
            "/admin/rate-limits",
            json!({"in_app": {"per_second": 5}}),
            "in_app",
        ),
        (
            "/admin/rate-limits",
            json!({"fax": {"per_second": 5}}),
            "fax",
        ),
        (
            "/admin/providers/apns",
            json!({"signing_key": "k", "key_id": "ABCDE12345", "team_id": "ABCDE12345", "bundle_id": "com.example.app", "sandbox": "Zq7"}),
            "sandbox",
        ),
    ] {
        let world = world();
        let (status, answer) = world.put(path, body.to_string().into_bytes());
        let message = answer["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert!(message.contains(field), "{path} {body}: {message}");
        assert!(
            !message.contains(SECRET)
                && !message.contains("12345")
                && !message.contains("14155550101"),
            "{message}"
        );
        assert!(!world.written());
    }
}
