#![allow(clippy::expect_used)] // a bench whose setup fails has nothing to measure: stop at once
//! Herald's operations timed on the memory ports; `make bench` runs them and prints the table.
//!
//! Everything an operation needs is built once, outside the measured closure. Intake and
//! dispatch change what they touch, so each iteration gets a fresh store and queue, made
//! outside the measurement: every iteration is a first delivery, never the cheap redelivery.
//! Before anything is timed, each operation is run once and its outcome checked, so a change
//! that sends an operation down another path (a rejection, a skip) stops the bench instead of
//! timing the wrong thing.

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use serde::Deserialize;
use serde_json::{Map, Value};

use herald_core::breaker::{BreakerBoard, BreakerPolicy};
use herald_core::dispatch::{DEFAULT_LEASE, DispatchOutcome, DispatchService, Senders};
use herald_core::event::{EventEnvelope, EventKind, IncomingEvent};
use herald_core::ids::{EmailAddress, Locale, NotificationId, NotificationType, OrgId};
use herald_core::intake::{IntakeConfig, IntakeService};
use herald_core::model::{Channel, DeliveryService};
use herald_core::ports::DispatchMessage;
use herald_core::provider_events::{sendgrid, ses, twilio};
use herald_core::record::Outcome;
use herald_core::retry::RetryPolicy;
use herald_core::routing::Routing;
use herald_core::sms::SegmentCap;
use herald_core::template::org::{OrgCatalog, OrgTemplate, OrgType, Parts, Stored, TypeDefinition};
use herald_core::template::{Catalog, Message, Templates};
use herald_core::testing::{
    FixedChance, FixedClock, MemoryBreakers, MemoryDirectory, MemoryProviderSettings, MemoryQueue,
    MemoryRateLimiter, MemoryStore, MemoryTemplates, ScriptedSender,
};

const ORDER_CREATED: &[u8] = include_bytes!("../../../events/intake/10-order-created.json");
const CAROL_CONTACT: &[u8] =
    include_bytes!("../../../events/intake/04-customer-contact-changed-carol.json");
const REFUND_ISSUED: &[u8] = include_bytes!("../../../events/intake/12-refund-issued.json");
const ACME_TEMPLATES: &[u8] = include_bytes!("../../../events/templates/org_acme.json");
const SES_BOUNCE: &[u8] = include_bytes!("../../../events/webhooks/ses-bounce-v1.json");
const SNS_CERT: &[u8] = include_bytes!("../../../tests/fixtures/sns-cert.pem");

/// Herald's clock in every benchmark: after each sample event's time.
fn now() -> DateTime<Utc> {
    "2026-11-20T10:15:00Z".parse().expect("a valid instant")
}

/// The fields of an EventBridge event that intake reads, as the Lambda's event type has them.
#[derive(Deserialize)]
struct EventBridgeEvent {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    detail: Value,
}

/// An EventBridge event's JSON into the core's envelope, as the intake Lambda receives it.
fn envelope(json: &[u8]) -> EventEnvelope {
    let event: EventBridgeEvent = serde_json::from_slice(json).expect("a sample EventBridge event");
    EventEnvelope {
        id: event.id.unwrap_or_default(),
        detail_type: event.detail_type,
        source: event.source,
        time: event.time,
        detail: event.detail,
    }
}

/// The template variables a notifying sample event carries.
fn context_of(json: &[u8]) -> Map<String, Value> {
    let event = IncomingEvent::parse(&envelope(json), now()).expect("the sample parses");
    match event.kind {
        EventKind::Notify(request) => request.context,
        _ => panic!("the sample is a notifying event"),
    }
}

/// The memory ports that outlive an iteration: the directory (carol's contact in it), the
/// compiled catalog and the clock. Stores and queues are made per iteration.
struct Ports {
    directory: Arc<MemoryDirectory>,
    catalog: Arc<Catalog>,
    clock: Arc<FixedClock>,
}

impl Ports {
    fn new() -> Ports {
        let ports = Ports {
            directory: Arc::new(MemoryDirectory::default()),
            catalog: Arc::new(Catalog::embedded().expect("the embedded catalog compiles")),
            clock: FixedClock::at(now()),
        };
        let record = block_on(ports.fresh_intake().0.handle(&envelope(CAROL_CONTACT)))
            .expect("the memory ports do not fail");
        assert_eq!(
            record.outcome,
            Outcome::DirectoryUpdated,
            "{:?}",
            record.reason
        );
        ports
    }

    fn intake(&self, store: Arc<MemoryStore>, queue: Arc<MemoryQueue>) -> IntakeService {
        IntakeService {
            store,
            directory: self.directory.clone(),
            queue,
            org_templates: Arc::new(MemoryTemplates::default())
                .cache(self.catalog.clone(), self.clock.clone()),
            catalog: self.catalog.clone(),
            clock: self.clock.clone(),
            config: IntakeConfig {
                default_sender: EmailAddress::parse("notifications@herald.example")
                    .expect("a valid address"),
            },
            device_endpoints: None,
        }
    }

    /// Intake on an empty store and queue, and that queue.
    fn fresh_intake(&self) -> (IntakeService, Arc<MemoryQueue>) {
        let queue = Arc::new(MemoryQueue::default());
        (
            self.intake(Arc::new(MemoryStore::default()), queue.clone()),
            queue,
        )
    }

    /// A store holding the sample order's email, pending, and the dispatcher of its message.
    fn queued_email(&self, order: &EventEnvelope) -> (DispatchService, DispatchMessage) {
        let store = Arc::new(MemoryStore::default());
        let queue = Arc::new(MemoryQueue::default());
        block_on(self.intake(store.clone(), queue.clone()).handle(order))
            .expect("the memory ports do not fail");
        let message = queue.take().pop().expect("intake queued the email").message;
        let dispatcher = DispatchService {
            store,
            queue,
            directory: self.directory.clone(),
            senders: Senders::new()
                .with(
                    Channel::Email,
                    DeliveryService::Ses,
                    ScriptedSender::accepting(),
                )
                .with(
                    Channel::Sms,
                    DeliveryService::Sns,
                    ScriptedSender::accepting(),
                ),
            settings: Arc::new(MemoryProviderSettings::default()),
            routing: Routing::builtin(),
            breakers: BreakerBoard::new(
                Arc::new(MemoryBreakers::default()),
                BreakerPolicy::default(),
            ),
            limits: Default::default(),
            rate_limiter: Arc::new(MemoryRateLimiter::default()),
            meter: Arc::new(herald_core::ports::NoMeter),
            clock: self.clock.clone(),
            chance: Arc::new(FixedChance(0.5)),
            policy: RetryPolicy::default(),
            lease: DEFAULT_LEASE,
        };
        (dispatcher, message)
    }
}

fn event(c: &mut Criterion) {
    let json = ORDER_CREATED;
    let parsed = IncomingEvent::parse(&envelope(json), now()).expect("the sample parses");
    assert!(matches!(parsed.kind, EventKind::Notify(_)));
    let mut group = c.benchmark_group("event");
    group.bench_function("parse", |b| {
        b.iter(|| IncomingEvent::parse(&envelope(black_box(json)), black_box(now())))
    });
    group.finish();
}

/// The sample organization's own types and templates (`events/templates/org_acme.json`), as
/// their first stored versions.
fn acme_stored() -> Stored {
    #[derive(Deserialize)]
    struct Sample {
        types: std::collections::BTreeMap<String, TypeDefinition>,
        templates: std::collections::BTreeMap<String, Parts>,
    }
    let sample: Sample = serde_json::from_slice(ACME_TEMPLATES).expect("the sample templates");
    let name = |n: &str| NotificationType::parse(n).expect("a valid type");
    Stored {
        types: sample
            .types
            .into_iter()
            .map(|(t, definition)| OrgType {
                notification_type: name(&t),
                spec: definition.into_spec(),
                version: 1,
                updated_at: now(),
            })
            .collect(),
        templates: sample
            .templates
            .into_iter()
            .map(|(key, parts)| {
                let mut at = key.split('/');
                let mut next = || at.next().expect("type/channel/locale");
                OrgTemplate {
                    notification_type: name(next()),
                    channel: next().parse().expect("a channel"),
                    locale: Locale::parse(next()).expect("a locale"),
                    parts,
                    version: 1,
                    updated_at: now(),
                    deleted: false,
                }
            })
            .collect(),
    }
}

fn template(c: &mut Criterion) {
    let catalog = Catalog::embedded().expect("the embedded catalog compiles");
    let order = context_of(ORDER_CREATED);
    let order_type = NotificationType::parse("order_confirmation").expect("a valid type");
    let english = Locale::parse("en").expect("a valid locale");
    let refund = context_of(REFUND_ISSUED);
    let refund_type = NotificationType::parse("refund_issued").expect("a valid type");
    let french = Locale::parse("fr-CA").expect("a valid locale");
    let montreal = Some(chrono_tz::America::Montreal);
    let render_email = || {
        catalog.render(
            black_box(&order_type),
            Channel::Email,
            &english,
            None,
            black_box(&order),
            SegmentCap::DEFAULT,
        )
    };
    let render_sms = || {
        catalog.render(
            black_box(&refund_type),
            Channel::Sms,
            &french,
            montreal,
            black_box(&refund),
            SegmentCap::DEFAULT,
        )
    };
    let email = render_email().expect("the order email renders");
    assert!(email.subject.is_some() && email.html.is_some());
    assert!(
        render_sms()
            .expect("the refund SMS renders")
            .sms_segments
            .is_some()
    );

    // an organization's own type, rendered from its templates over the built-in catalog
    let acme = acme_stored();
    let compile = || OrgCatalog::compile(&catalog, black_box(&acme));
    let acme_catalog = compile();
    let templates = Templates::new(&catalog, Some(&acme_catalog));
    let loyalty = NotificationType::parse("loyalty_points_earned").expect("a valid type");
    let loyalty_context = templates
        .spec(&loyalty)
        .expect("org_acme's own type")
        .sample
        .clone();
    let render_org_email = || {
        templates.render(&Message {
            notification_type: black_box(&loyalty),
            channel: Channel::Email,
            locale: &english,
            org_locale: None,
            timezone: None,
            context: black_box(&loyalty_context),
            sms_cap: SegmentCap::DEFAULT,
        })
    };
    let own = render_org_email().expect("the organization's email renders");
    assert!(own.html.is_some());
    assert_eq!(
        own.template,
        herald_core::model::TemplateRef::Organization { version: 1 }
    );

    let mut group = c.benchmark_group("template");
    group.bench_function("order_email", |b| b.iter(render_email));
    group.bench_function("refund_sms", |b| b.iter(render_sms));
    group.bench_function("org_email", |b| b.iter(render_org_email));
    group.bench_function("org_compile", |b| b.iter(compile));
    group.finish();
}

fn service(c: &mut Criterion) {
    let ports = Ports::new();
    let order = envelope(ORDER_CREATED);

    let (intake, queue) = ports.fresh_intake();
    let record = block_on(intake.handle(&order)).expect("the memory ports do not fail");
    assert_eq!(
        (
            record.outcome,
            record.notifications.len(),
            queue.take().len()
        ),
        (Outcome::Notified, 1, 1),
        "{:?}",
        record.reason
    );
    let (dispatcher, message) = ports.queued_email(&order);
    let outcome = block_on(dispatcher.dispatch(&message)).expect("the memory ports do not fail");
    assert!(
        matches!(outcome, DispatchOutcome::Sent { .. }),
        "{outcome:?}"
    );

    let mut group = c.benchmark_group("service");
    group.bench_function("intake", |b| {
        b.iter_batched(
            || ports.fresh_intake().0,
            // the service goes back out so that its store is dropped outside the measurement
            |intake| {
                let record = block_on(intake.handle(black_box(&order)));
                (intake, record)
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("dispatch", |b| {
        b.iter_batched(
            || ports.queued_email(&order),
            |(dispatcher, message)| {
                let outcome = block_on(dispatcher.dispatch(black_box(&message)));
                (dispatcher, outcome)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn webhook(c: &mut Criterion) {
    let mut group = c.benchmark_group("webhook");

    // SendGrid: ECDSA P-256 over the timestamp and the body, with the key as SendGrid shows it
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .expect("a fresh P-256 key");
    let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .expect("the key just made");
    let mut spki = sendgrid::P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(signer.public_key().as_ref());
    let public_key = STANDARD.encode(spki);
    let body = serde_json::to_vec(&serde_json::json!([
        {"email": "carol@example.com", "event": "processed", "sg_event_id": "sg-1",
         "sg_message_id": "sgm-1.filter-1", "timestamp": 1795169700,
         "herald_notification_id": "ntf_0001"},
        {"email": "carol@example.com", "event": "delivered", "sg_event_id": "sg-2",
         "sg_message_id": "sgm-1.filter-1", "timestamp": 1795169702,
         "herald_notification_id": "ntf_0001", "response": "250 OK"},
    ]))
    .expect("a JSON body");
    let timestamp = now().timestamp().to_string();
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(&body);
    let signature = STANDARD.encode(signer.sign(&rng, &signed).expect("a signature").as_ref());
    let window = chrono::Duration::minutes(10);
    let sendgrid_check = || {
        sendgrid::verify(
            black_box(&public_key),
            black_box(&timestamp),
            black_box(&body),
            black_box(&signature),
            now(),
            window,
        )
    };
    sendgrid_check().expect("the SendGrid signature verifies");
    group.bench_function("sendgrid_ecdsa", |b| b.iter(sendgrid_check));

    // Twilio: HMAC-SHA1 over the status callback's URL and its sorted form parameters
    let org = OrgId::parse("org_acme").expect("a valid organization");
    let id = NotificationId::parse("ntf_0001").expect("a valid notification id");
    let url = twilio::status_callback_url("https://hooks.herald.example", &org, &id);
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
        ("From", "+14155550100"),
        ("MessageSid", "SM00000000000000000000000000000001"),
        ("MessageStatus", "delivered"),
        ("SmsSid", "SM00000000000000000000000000000001"),
        ("SmsStatus", "delivered"),
        ("To", "+33612345678"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let token = "0123456789abcdef0123456789abcdef";
    let signature = twilio::signature(&url, &params, token);
    let twilio_check = || {
        twilio::verify(
            black_box(&url),
            black_box(&params),
            black_box(token),
            black_box(&signature),
        )
    };
    twilio_check().expect("the Twilio signature verifies");
    group.bench_function("twilio_hmac", |b| b.iter(twilio_check));

    // SES over SNS: what the webhook does per message once it holds the certificate
    let message = ses::SnsMessage::parse(SES_BOUNCE).expect("the sample SNS message");
    let ses_check = || {
        let message = black_box(&message);
        if !ses::trusted_cert_url(&message.signing_cert_url, &message.topic_arn) {
            return Err(herald_core::provider_events::AuthError::UntrustedCertificate);
        }
        ses::verify(message, &ses::cert_public_key(black_box(SNS_CERT))?)
    };
    ses_check().expect("the SNS signature verifies");
    group.bench_function("ses_sns_rsa", |b| b.iter(ses_check));
    group.finish();
}

criterion_group!(operations, event, template, service, webhook);
criterion_main!(operations);
