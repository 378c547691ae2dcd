#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by the test files; each uses part
//! The in-memory world the service tests run in: intake and dispatch on the memory ports, with
//! scripted senders and a clock that stands where it is set.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use herald_core::dispatch::{DEFAULT_LEASE, DispatchOutcome, DispatchService, Senders};
use herald_core::event::EventEnvelope;
use herald_core::ids::EmailAddress;
use herald_core::intake::{IntakeConfig, IntakeService};
use herald_core::model::{Channel, DeliveryService, Notification};
use herald_core::record::{IntakeRecord, Outcome};
use herald_core::retry::RetryPolicy;
use herald_core::scheduler::{SchedulerService, SweepConfig};
use herald_core::template::Catalog;
use herald_core::testing::{
    FixedClock, MemoryDirectory, MemoryQueue, MemoryStore, MemoryTemplates, ScriptedSender,
};

pub const ORG: &str = "org_acme";

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub struct World {
    pub store: Arc<MemoryStore>,
    pub directory: Arc<MemoryDirectory>,
    pub queue: Arc<MemoryQueue>,
    pub clock: Arc<FixedClock>,
    pub intake: IntakeService,
    /// The organizations' own templates, as intake reads them.
    pub templates: Arc<MemoryTemplates>,
    pub email: Arc<ScriptedSender>,
    pub sms: Arc<ScriptedSender>,
    /// SendGrid for email, behind SES unless the organization's routing says otherwise;
    /// asked only for an organization with SendGrid settings.
    pub sendgrid: Arc<ScriptedSender>,
    /// None: push is not set up.
    pub push: Option<Arc<dyn herald_core::ports::ChannelSender>>,
    /// The organizations' provider settings (routing, credentials); none set by default.
    pub settings: Arc<herald_core::testing::MemoryProviderSettings>,
    /// The circuit breakers' shared store.
    pub breakers: Arc<herald_core::testing::MemoryBreakers>,
    pub breaker_policy: herald_core::breaker::BreakerPolicy,
    /// The rate limits' shared buckets.
    pub rate_limiter: Arc<herald_core::testing::MemoryRateLimiter>,
    /// The deployment's rate limits; none by default.
    pub limits: herald_core::rate_limit::RateLimits,
    /// What dispatch measured.
    pub meter: Arc<herald_core::testing::MemoryMeter>,
    pub seq: u32,
}

impl World {
    pub fn new() -> World {
        Self::with_email(ScriptedSender::accepting())
    }

    pub fn with_email(email: Arc<ScriptedSender>) -> World {
        let store = Arc::new(MemoryStore::default());
        let directory = Arc::new(MemoryDirectory::default());
        let queue = Arc::new(MemoryQueue::default());
        let clock = FixedClock::at(at("2026-11-20T15:00:00Z"));
        let catalog = Arc::new(Catalog::embedded().unwrap());
        let templates = Arc::new(MemoryTemplates::default());
        let intake = IntakeService {
            store: store.clone(),
            directory: directory.clone(),
            queue: queue.clone(),
            org_templates: templates.cache(catalog.clone(), clock.clone()),
            catalog,
            clock: clock.clone(),
            config: IntakeConfig {
                default_sender: EmailAddress::parse("notifications@herald.example").unwrap(),
            },
            device_endpoints: None,
        };
        World {
            store,
            directory,
            queue,
            clock,
            intake,
            templates,
            email,
            sms: ScriptedSender::accepting(),
            sendgrid: ScriptedSender::accepting(),
            push: None,
            settings: Arc::default(),
            breakers: Arc::default(),
            breaker_policy: herald_core::breaker::BreakerPolicy::default(),
            rate_limiter: Arc::default(),
            limits: Default::default(),
            meter: Arc::default(),
            seq: 0,
        }
    }

    pub fn dispatcher(&self) -> DispatchService {
        DispatchService {
            store: self.store.clone(),
            queue: self.queue.clone(),
            directory: self.directory.clone(),
            senders: self.senders(),
            settings: self.settings.clone(),
            routing: herald_core::routing::Routing::builtin(),
            breakers: herald_core::breaker::BreakerBoard::new(
                self.breakers.clone(),
                self.breaker_policy,
            ),
            limits: self.limits.clone(),
            rate_limiter: self.rate_limiter.clone(),
            meter: self.meter.clone(),
            clock: self.clock.clone(),
            chance: Arc::new(herald_core::testing::FixedChance(0.5)),
            policy: RetryPolicy::default(),
            lease: DEFAULT_LEASE,
        }
    }

    /// SES (and SendGrid) for email, SNS for SMS, and SNS for push when it is set up.
    pub fn senders(&self) -> Senders {
        let senders = Senders::new()
            .with(Channel::Email, DeliveryService::Ses, self.email.clone())
            .with(
                Channel::Email,
                DeliveryService::Sendgrid,
                self.sendgrid.clone(),
            )
            .with(Channel::Sms, DeliveryService::Sns, self.sms.clone());
        match &self.push {
            Some(push) => senders.with(Channel::Push, DeliveryService::Sns, push.clone()),
            None => senders,
        }
    }

    pub async fn event_with_id(
        &mut self,
        id: &str,
        detail_type: &str,
        detail: Value,
    ) -> IntakeRecord {
        self.event_of(ORG, id, detail_type, detail).await
    }

    /// An event of another organization than [`ORG`].
    pub async fn event_of(
        &mut self,
        org: &str,
        id: &str,
        detail_type: &str,
        mut detail: Value,
    ) -> IntakeRecord {
        detail["organization_id"] = json!(org);
        self.seq += 1;
        let envelope = EventEnvelope {
            id: id.to_string(),
            detail_type: detail_type.into(),
            source: "test".into(),
            time: Some(at("2026-11-20T10:00:00Z") + chrono::Duration::seconds(self.seq.into())),
            detail,
        };
        self.intake.handle(&envelope).await.unwrap()
    }

    pub async fn event(&mut self, detail_type: &str, detail: Value) -> IntakeRecord {
        let id = format!("evt-{}", self.seq + 1);
        self.event_with_id(&id, detail_type, detail).await
    }

    pub async fn contact(&mut self, customer: &str, locale: &str) {
        self.event(
            "CustomerContactChanged",
            json!({"customer_id": customer, "email": format!("{customer}@example.com"), "phone": "+14155550101", "locale": locale, "timezone": "America/New_York"}),
        )
        .await;
    }

    pub async fn preferences(&mut self, customer: &str, channels: Value, unsubscribed: Value) {
        let r = self
            .event(
                "NotificationPreferencesChanged",
                json!({"customer_id": customer, "channels": channels, "unsubscribed": unsubscribed}),
            )
            .await;
        assert_eq!(r.outcome, Outcome::DirectoryUpdated);
    }

    /// Drains the queue through dispatch, the way SQS and the dispatch function would.
    pub async fn drain(&self) -> Vec<DispatchOutcome> {
        let dispatcher = self.dispatcher();
        let mut out = Vec::new();
        for m in self.queue.take() {
            out.push(dispatcher.dispatch(&m.message).await.unwrap());
        }
        out
    }

    pub fn notifications(&self) -> Vec<Notification> {
        self.store.all()
    }
}

pub fn order(customer: &str, order_id: &str) -> Value {
    json!({
        "customer_id": customer, "order_id": order_id, "grand_total": "59.90", "currency": "USD",
        "items": [{"sku": "mug", "name": "Mug", "quantity": 1, "unit_price": "59.90"}],
        "created_at": "2026-11-20T09:00:00Z"
    })
}

pub fn refund(customer: &str) -> Value {
    json!({"customer_id": customer, "refund_id": "ref_1", "order_id": "ord_9", "amount": "25.00", "currency": "EUR"})
}

impl World {
    /// A scheduler tick as the clock reads now: the sweep, then the dispatch of what it queued.
    pub async fn tick(&self) -> Vec<DispatchOutcome> {
        let scheduler = SchedulerService {
            index: self.store.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            config: SweepConfig::default(),
        };
        scheduler.sweep().await.unwrap();
        self.drain().await
    }
}
