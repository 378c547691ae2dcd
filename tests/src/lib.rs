//! Helpers for the end-to-end tests: one emulator per test binary, a fresh stage (tables,
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test helper crate: a failed set-up should stop the test
//! queues, bus) and organization per test, so tests run in parallel and never see each
//! other's data.

use std::sync::Arc;

pub use herald_local::stand_ins::SendGridSigner;
use herald_local::stand_ins::StandIns;

use herald_core::retry::RetryPolicy;
use herald_local::emulator::Sent;
use herald_local::{Emulator, EventReport, LocalStack};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

static EMULATOR: OnceCell<Emulator> = OnceCell::const_new();

/// The shared emulator's endpoint: `AWS_ENDPOINT_URL` if set, else a moto server started
/// once for this test binary (it stops when the binary exits).
pub async fn endpoint() -> String {
    EMULATOR
        .get_or_init(|| async {
            Emulator::start_or_connect()
                .await
                .expect("the local AWS emulator starts")
        })
        .await
        .endpoint
        .clone()
}

/// A short unique tag for names.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

pub struct Harness {
    pub local: Arc<LocalStack>,
    pub org: String,
    pub tag: String,
}

impl Harness {
    pub async fn new() -> Harness {
        Self::with(herald_local::Options::default()).await
    }

    pub async fn with(options: herald_local::Options) -> Harness {
        let tag = unique();
        let emulator = Emulator::connect(&endpoint().await)
            .await
            .expect("emulator reachable");
        let local = LocalStack::start_with(emulator, &format!("t{tag}"), options)
            .await
            .expect("the stack stands up");
        Harness {
            local: Arc::new(local),
            org: format!("org_{tag}"),
            tag,
        }
    }

    /// A stage served as `herald-local serve` serves it (the api, the webhooks, the WebSocket
    /// API and its management endpoint, the development tokens' key set) on a free port.
    pub async fn served() -> (Harness, herald_local::serve::Serving) {
        let tag = unique();
        let emulator = Emulator::connect(&endpoint().await)
            .await
            .expect("emulator reachable");
        let serving = herald_local::serve::Serving::start(emulator, &format!("t{tag}"), 0)
            .await
            .expect("the stack is served");
        let harness = Harness {
            local: serving.local.clone(),
            org: format!("org_{tag}"),
            tag,
        };
        (harness, serving)
    }

    /// An address unique to this test, so the emulator's shared sent list can be filtered.
    pub fn email(&self, name: &str) -> String {
        format!("{name}.{}@example.com", self.tag)
    }

    /// An event envelope for this test's organization.
    pub fn event(&self, detail_type: &str, source: &str, mut detail: Value) -> Value {
        detail["organization_id"] = json!(self.org);
        json!({
            "version": "0",
            "id": unique(),
            "detail-type": detail_type,
            "source": source,
            "account": "123456789012",
            "time": chrono::Utc::now().to_rfc3339(),
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        })
    }

    pub async fn run(&self, events: &[Value]) -> Vec<EventReport> {
        self.local
            .run(events)
            .await
            .expect("the local stack runs the events")
    }

    pub async fn run_one(&self, event: Value) -> EventReport {
        self.run(&[event]).await.remove(0)
    }

    /// Calls the intake handler directly with the event in an SQS batch of one, as Lambda
    /// would (including a redelivery with the same EventBridge id).
    pub async fn invoke_intake(&self, event: &Value) -> herald_core::record::IntakeRecord {
        let mut message = aws_lambda_events::sqs::SqsMessage::default();
        message.message_id = Some(uuid::Uuid::new_v4().to_string());
        message.body = Some(event.to_string());
        let mut handled = herald_intake::handle_messages(&self.local.intake, &[message]).await;
        assert!(
            handled.response.batch_item_failures.is_empty(),
            "intake handles the event"
        );
        handled.records.remove(0)
    }

    pub async fn sent(&self) -> Sent {
        self.local
            .emulator
            .sent()
            .await
            .expect("the emulator's sent list")
    }

    pub async fn contact(
        &self,
        customer: &str,
        email: &str,
        phone: Option<&str>,
        locale: &str,
    ) -> Value {
        let mut detail = json!({"customer_id": customer, "email": email, "locale": locale, "timezone": "America/New_York"});
        if let Some(p) = phone {
            detail["phone"] = json!(p);
        }
        self.event("CustomerContactChanged", "customers", detail)
    }

    pub fn preferences(&self, customer: &str, channels: Value, unsubscribed: Value) -> Value {
        self.event(
            "NotificationPreferencesChanged",
            "customers",
            json!({"customer_id": customer, "channels": channels, "unsubscribed": unsubscribed}),
        )
    }

    pub fn order_created(&self, customer: &str, order_id: &str) -> Value {
        self.event(
            "OrderCreated",
            "ordering",
            json!({
                "customer_id": customer, "order_id": order_id, "grand_total": "59.90", "currency": "USD",
                "items": [{"sku": "mug", "name": "Mug", "quantity": 1, "unit_price": "59.90"}],
                "created_at": "2026-11-20T09:00:00Z"
            }),
        )
    }
}

impl Harness {
    /// Takes the waiting messages off the dispatch queue as the SQS event Lambda would get.
    pub async fn dispatch_batch(&self) -> aws_lambda_events::sqs::SqsEvent {
        let sqs = aws_sdk_sqs::Client::new(&self.local.aws);
        let out = sqs
            .receive_message()
            .queue_url(&self.local.stack.dispatch_queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive from the dispatch queue");
        let mut event = aws_lambda_events::sqs::SqsEvent::default();
        for m in out.messages.unwrap_or_default() {
            let mut record = aws_lambda_events::sqs::SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.event_source = Some("aws:sqs".into());
            event.records.push(record);
        }
        event
    }

    /// A dispatcher on this stack, as the dispatch function builds it.
    pub fn stack_dispatcher(&self) -> herald_core::dispatch::DispatchService {
        herald_dispatch::service(
            &self.dispatch_config(),
            &self.local.aws,
            Arc::new(herald_core::ports::SystemClock),
        )
    }

    /// A dispatcher on this stack, with the given sender in SES's place.
    pub fn dispatcher_with_email(
        &self,
        email: Arc<dyn herald_core::ports::ChannelSender>,
    ) -> herald_core::dispatch::DispatchService {
        let mut service = self.stack_dispatcher();
        with_ses(&mut service, email);
        service
    }

    pub fn dispatch_config(&self) -> herald_dispatch::Config {
        herald_local::driver::dispatch_config(&self.local.stack, &self.local.options)
    }

    /// Messages waiting on the dispatch queue, visible and delayed.
    pub async fn queue_depth(&self) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let sqs = aws_sdk_sqs::Client::new(&self.local.aws);
        let out = sqs
            .get_queue_attributes()
            .queue_url(&self.local.stack.dispatch_queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes");
        let attrs = out.attributes.unwrap_or_default();
        let n = |k: A| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesDelayed),
        )
    }
}

/// Puts `email` in SES's place among the dispatcher's senders.
fn with_ses(
    service: &mut herald_core::dispatch::DispatchService,
    email: Arc<dyn herald_core::ports::ChannelSender>,
) {
    use herald_core::model::{Channel, DeliveryService};
    service.senders =
        std::mem::take(&mut service.senders).with(Channel::Email, DeliveryService::Ses, email);
}

impl Harness {
    /// A scheduler on this stack whose clock reads `at`.
    pub fn scheduler_at(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> herald_core::scheduler::SchedulerService {
        let config = herald_scheduler::Config {
            notifications_table: self.local.stack.names.notifications_table(),
            dispatch_queue_url: self.local.stack.dispatch_queue_url.clone(),
            sweep: Default::default(),
        };
        herald_scheduler::service(
            &config,
            &self.local.aws,
            herald_core::testing::FixedClock::at(at),
        )
    }

    /// A dispatcher on this stack with its own email sender, clock and retry policy.
    pub fn dispatcher(
        &self,
        email: Arc<dyn herald_core::ports::ChannelSender>,
        clock: Arc<dyn herald_core::ports::Clock>,
        retry: RetryPolicy,
    ) -> herald_core::dispatch::DispatchService {
        let mut config = self.dispatch_config();
        config.retry = retry;
        let mut service = herald_dispatch::service(&config, &self.local.aws, clock);
        with_ses(&mut service, email);
        service
    }

    /// SES at an address where nothing listens: every send is a soft failure.
    pub fn unreachable_ses(&self) -> Arc<dyn herald_core::ports::ChannelSender> {
        let dead = aws_config::SdkConfig::builder()
            .endpoint_url("http://127.0.0.1:9")
            .region(self.local.aws.region().cloned())
            .credentials_provider(self.local.aws.credentials_provider().unwrap())
            .behavior_version(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Arc::new(herald_adapters::SesEmailSender::new(
            aws_sdk_sesv2::Client::new(&dead),
            None,
        ))
    }

    /// Hands the dispatch queue's waiting messages to this dispatcher.
    pub async fn dispatch_with(&self, dispatcher: &herald_core::dispatch::DispatchService) {
        let batch = self.dispatch_batch().await;
        let response = herald_dispatch::handle(
            dispatcher,
            lambda_runtime::LambdaEvent::new(batch.clone(), Default::default()),
        )
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty());
        let sqs = aws_sdk_sqs::Client::new(&self.local.aws);
        for r in batch.records {
            sqs.delete_message()
                .queue_url(&self.local.stack.dispatch_queue_url)
                .receipt_handle(r.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    pub fn org_id(&self) -> herald_core::ids::OrgId {
        herald_core::ids::OrgId::parse(self.org.as_str()).unwrap()
    }

    /// Records this test's organization as the owner of a sending identity, as
    /// `PUT /admin/identities` does, without registering it with SES (so SES will not verify it).
    pub async fn own_identity(&self, identity: &str) {
        use herald_core::ports::Directory;
        let directory = herald_adapters::DynamoDirectory::new(
            aws_sdk_dynamodb::Client::new(&self.local.aws),
            self.local.stack.names.directory_table(),
        );
        let identity = herald_core::identity::SenderIdentity::parse(identity).unwrap();
        let owner = directory
            .claim_identity(&self.org_id(), &identity, chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(owner, self.org_id());
    }
}

impl Harness {
    /// A harness whose SendGrid and Twilio are the local fake.
    pub async fn with_fake_providers() -> (Harness, StandIns) {
        let fake = StandIns::start().await.unwrap();
        let url = fake.url().to_string();
        let options = herald_local::Options {
            sendgrid_base_url: url.clone(),
            twilio_base_url: url,
            public_base_url: Some("https://hooks.herald.example".into()),
            // settings changed by a test take effect at once
            settings_ttl: std::time::Duration::ZERO,
            ..Default::default()
        };
        (Self::with(options).await, fake)
    }

    /// The stage's directory.
    pub fn local_directory(&self) -> herald_adapters::DynamoDirectory {
        herald_adapters::DynamoDirectory::new(
            aws_sdk_dynamodb::Client::new(&self.local.aws),
            self.local.stack.names.directory_table(),
        )
    }

    /// Gives this organization these push platform applications.
    pub async fn set_push_applications(&self, apps: herald_core::providers::PushApplications) {
        use herald_core::ports::{ProviderSettings, Write};
        let store = herald_adapters::SecretsManagerSettings::new(
            aws_sdk_secretsmanager::Client::new(&self.local.aws),
            self.local.stack.names.provider_secrets_prefix(),
        );
        let stored = store.read(&self.org_id()).await.unwrap();
        let mut providers = stored.providers.clone();
        providers.push = apps;
        let written = store
            .write(&self.org_id(), &providers, stored.version.as_deref())
            .await
            .unwrap();
        assert_eq!(written, Write::Done);
    }

    fn settings_store(&self) -> herald_adapters::SecretsManagerSettings {
        herald_adapters::SecretsManagerSettings::new(
            aws_sdk_secretsmanager::Client::new(&self.local.aws),
            self.local.stack.names.provider_secrets_prefix(),
        )
    }

    /// Sets this organization's routing (`{"email": ["sendgrid"]}`), as the admin API does.
    pub async fn set_routing(&self, routing: Value) {
        herald_core::settings::set_routing(
            &self.settings_store(),
            &self.org_id(),
            serde_json::from_value(routing).unwrap(),
        )
        .await
        .unwrap();
    }

    /// Stores this organization's settings for a provider, as the admin API does.
    pub async fn set_provider(&self, provider: &str, settings: Value) {
        let store = self.settings_store();
        herald_core::settings::update(
            &store,
            &self.org_id(),
            herald_core::model::Provider::parse(provider).unwrap(),
            settings,
        )
        .await
        .unwrap();
    }
}

/// SNS's HTTPS endpoints, standing in with the test certificate.
#[derive(Default)]
pub struct FixtureSns {
    pub confirmed: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl herald_core::ports::SnsEndpoints for FixtureSns {
    async fn certificate(&self, _url: &str) -> Result<Vec<u8>, herald_core::ports::PortError> {
        Ok(include_bytes!("../fixtures/sns-cert.pem").to_vec())
    }

    async fn confirm_subscription(&self, url: &str) -> Result<(), herald_core::ports::PortError> {
        self.confirmed.lock().unwrap().push(url.to_string());
        Ok(())
    }
}

/// The SNS topic the test deployment accepts SES events from.
pub const SES_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:herald-ses-events";
/// The public base URL the test deployment's webhooks are reached at.
pub const PUBLIC_BASE: &str = "https://hooks.herald.example";

impl Harness {
    /// The webhooks function on this stack.
    pub fn webhooks(&self) -> (herald_webhooks::Webhooks, Arc<FixtureSns>) {
        let config = herald_webhooks::Config {
            notifications_table: self.local.stack.names.notifications_table(),
            directory_table: self.local.stack.names.directory_table(),
            provider_secrets_prefix: self.local.stack.names.provider_secrets_prefix(),
            public_base_url: PUBLIC_BASE.into(),
            sendgrid_window: chrono::Duration::minutes(5),
            ses_topic_arns: vec![SES_TOPIC.into()],
        };
        let mut w = herald_webhooks::webhooks(
            config,
            &self.local.aws,
            Arc::new(herald_core::ports::SystemClock),
        );
        let sns = Arc::new(FixtureSns::default());
        w.sns = sns.clone();
        (w, sns)
    }

    /// Posts to a webhook; returns the status and the JSON answer.
    pub async fn post_webhook(
        &self,
        w: &herald_webhooks::Webhooks,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = lambda_http::http::Request::builder()
            .method("POST")
            .uri(path);
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let request = request.body(lambda_http::Body::from(body)).unwrap();
        let response = herald_webhooks::handle(w, request).await.unwrap();
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        (status, body)
    }
}

impl Harness {
    /// Posts a Twilio status callback for this organization, signed with the test auth token
    /// over the public URL, as Twilio signs it.
    pub async fn post_twilio_status(
        &self,
        w: &herald_webhooks::Webhooks,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        let path = format!("/webhooks/twilio/{}", self.org);
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signature = herald_core::provider_events::twilio::signature(
            &format!("{PUBLIC_BASE}{path}"),
            &params,
            herald_local::stand_ins::TWILIO_TOKEN,
        );
        let body = serde_urlencoded::to_string(&params).unwrap().into_bytes();
        let headers = [
            ("X-Twilio-Signature", signature),
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            ),
        ];
        self.post_webhook(w, &path, &headers, body).await
    }
}

/// Signs an SNS message (SignatureVersion 2, SHA256withRSA) with the test certificate's key.
pub fn sign_sns(message: &mut Value) {
    use base64::Engine;
    message["Signature"] = json!("");
    let parsed: herald_core::provider_events::ses::SnsMessage =
        serde_json::from_value(message.clone()).unwrap();
    let canonical = parsed.canonical().unwrap();
    let key =
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(include_bytes!("../fixtures/sns-key.pk8"))
            .unwrap();
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        canonical.as_bytes(),
        &mut sig,
    )
    .unwrap();
    message["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(sig));
}

/// A caller as the JWT authorizer would describe them.
pub enum As<'a> {
    Customer(&'a str, &'a str),
    Operator(&'a str),
    Admin(&'a str),
    Nobody,
}

impl Harness {
    pub fn api(&self) -> herald_api::Api {
        let config = herald_api::Config {
            notifications_table: self.local.stack.names.notifications_table(),
            directory_table: self.local.stack.names.directory_table(),
            views_table: self.local.stack.names.views_table(),
            templates_table: self.local.stack.names.templates_table(),
            dispatch_queue_url: self.local.stack.dispatch_queue_url.clone(),
            provider_secrets_prefix: self.local.stack.names.provider_secrets_prefix(),
            default_sender: herald_core::ids::EmailAddress::parse(
                herald_local::stack::DEFAULT_SENDER,
            )
            .expect("the default sender parses"),
            routing: herald_core::routing::Routing::builtin(),
            rate_limits: self.local.options.rate_limits.clone(),
            realtime: self.local.options.realtime(&self.local.stack.names),
        };
        herald_api::api(
            &config,
            &self.local.aws,
            Arc::new(herald_core::ports::SystemClock),
        )
        .unwrap()
    }

    /// Calls the api as API Gateway would, with the authorizer's claims for `who`.
    pub async fn call(
        &self,
        api: &herald_api::Api,
        method: &str,
        path: &str,
        who: As<'_>,
        body: Option<Value>,
    ) -> (u16, Value) {
        use lambda_http::RequestExt;
        let claims: Option<std::collections::HashMap<String, String>> = match who {
            As::Customer(org, customer) => Some(
                [
                    ("org_id", org),
                    ("role", "customer"),
                    ("customer_id", customer),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            As::Operator(org) => Some(
                [
                    ("org_id".to_string(), org.to_string()),
                    ("role".into(), "operator".into()),
                ]
                .into(),
            ),
            As::Admin(org) => Some(
                [
                    ("org_id".to_string(), org.to_string()),
                    ("role".into(), "admin".into()),
                ]
                .into(),
            ),
            As::Nobody => None,
        };
        let context = herald_local::serve::request_context(method, path, claims);
        let request = lambda_http::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.map_or(lambda_http::Body::Empty, |b| {
                lambda_http::Body::from(b.to_string())
            }))
            .unwrap()
            .with_request_context(context);
        let response = herald_api::handle(api, request).await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null),
        )
    }
}

/// `infra/template.yaml` read as YAML, for the checks that hold the local stack and the
/// handlers to it.
pub mod sam {
    use serde_yaml::Value;

    pub fn template() -> Value {
        serde_yaml::from_str(include_str!("../../infra/template.yaml"))
            .expect("template.yaml parses")
    }

    /// `!Sub "herald-${Stage}-x"` as the plain string.
    pub fn sub(v: &Value) -> String {
        match v {
            Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().unwrap().to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        }
    }

    pub fn keys(schema: &Value) -> Vec<(String, String)> {
        schema
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap().to_string(),
                    k["KeyType"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}
