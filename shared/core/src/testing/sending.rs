//! Dispatch's surroundings in memory: the queue, scripted senders, a fixed chance and clock,
//! the bus, circuit breakers, rate limits and the meter.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::OrgId;
use crate::model::{Channel, Notification};
use crate::ports::{ChannelSender, Clock, DispatchQueue, Enqueue, PortError, Receipt, SendError};

use super::lock;

#[derive(Default)]
pub struct MemoryQueue {
    pub messages: Mutex<Vec<Enqueue>>,
}

impl MemoryQueue {
    pub fn take(&self) -> Vec<Enqueue> {
        std::mem::take(&mut *lock(&self.messages))
    }
}

#[async_trait]
impl DispatchQueue for MemoryQueue {
    async fn enqueue(&self, messages: &[Enqueue]) -> Result<(), PortError> {
        lock(&self.messages).extend_from_slice(messages);
        Ok(())
    }
}

/// What a scripted sender does on each call.
#[derive(Debug, Clone)]
pub enum Script {
    Accept,
    /// Accepted, with an answer that could not be read.
    AcceptWithoutId,
    Fail(SendError),
    Panic,
}

/// A sender that records what it was asked to send and answers as scripted (the last answer repeats).
pub struct ScriptedSender {
    pub script: Mutex<Vec<Script>>,
    pub sent: Mutex<Vec<Notification>>,
}

impl ScriptedSender {
    pub fn new(script: Vec<Script>) -> Arc<Self> {
        Arc::new(ScriptedSender {
            script: Mutex::new(script),
            sent: Mutex::new(Vec::new()),
        })
    }

    pub fn accepting() -> Arc<Self> {
        Self::new(vec![Script::Accept])
    }

    pub fn calls(&self) -> usize {
        lock(&self.sent).len()
    }
}

#[async_trait]
impl ChannelSender for ScriptedSender {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        let step = {
            let mut script = lock(&self.script);
            if script.len() > 1 {
                script.remove(0)
            } else {
                script.first().cloned().unwrap_or(Script::Accept)
            }
        };
        lock(&self.sent).push(n.clone());
        match step {
            Script::Accept => Ok(Receipt::with_id(format!("msg-{}", lock(&self.sent).len()))),
            Script::AcceptWithoutId => Ok(Receipt::without_id()),
            Script::Fail(e) => Err(e),
            Script::Panic => panic!("scripted sender panic"),
        }
    }
}

/// Chance that always draws the same number.
pub struct FixedChance(pub f64);

impl crate::ports::Chance for FixedChance {
    fn fraction(&self) -> f64 {
        self.0
    }
}

/// A clock that stands where it is told.
pub struct FixedClock(pub Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(FixedClock(Mutex::new(t)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *lock(&self.0) = t;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.0)
    }
}

/// The bus, in memory: what was published, and the event ids it is told to refuse.
#[derive(Default)]
pub struct MemoryEventPublisher {
    published: Mutex<Vec<crate::lifecycle_events::LifecycleEvent>>,
    refused: Mutex<BTreeSet<String>>,
}

impl MemoryEventPublisher {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every event published so far, in order (a republished one twice).
    pub fn published(&self) -> Vec<crate::lifecycle_events::LifecycleEvent> {
        lock(&self.published).clone()
    }

    /// Refuses the event with this id from now on (until [`MemoryEventPublisher::accept_all`]).
    pub fn refuse(&self, event_id: &str) {
        lock(&self.refused).insert(event_id.to_string());
    }

    pub fn accept_all(&self) {
        lock(&self.refused).clear();
    }
}

#[async_trait]
impl crate::ports::EventPublisher for MemoryEventPublisher {
    async fn publish(
        &self,
        events: &[crate::lifecycle_events::LifecycleEvent],
    ) -> Result<Vec<usize>, PortError> {
        let refused = lock(&self.refused).clone();
        let mut failed = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if refused.contains(&e.detail.event_id) {
                failed.push(i);
            } else {
                lock(&self.published).push(e.clone());
            }
        }
        Ok(failed)
    }
}

/// Circuit breakers in memory, applying failures as every store does.
#[derive(Default)]
pub struct MemoryBreakers {
    states: Mutex<BTreeMap<(OrgId, crate::model::DeliveryService), crate::breaker::BreakerState>>,
    /// Reads of the store (the dispatchers' cache misses).
    pub reads: std::sync::atomic::AtomicUsize,
}

impl MemoryBreakers {
    pub fn state(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
    ) -> crate::breaker::BreakerState {
        lock(&self.states)
            .get(&(org.clone(), provider))
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl crate::ports::Breakers for MemoryBreakers {
    async fn read(
        &self,
        keys: &[(OrgId, crate::model::DeliveryService)],
    ) -> Result<
        BTreeMap<(OrgId, crate::model::DeliveryService), crate::breaker::BreakerState>,
        PortError,
    > {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let states = lock(&self.states);
        Ok(keys
            .iter()
            .filter_map(|k| states.get(k).map(|s| (k.clone(), s.clone())))
            .collect())
    }

    async fn failure(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
        now: DateTime<Utc>,
        policy: &crate::breaker::BreakerPolicy,
    ) -> Result<crate::breaker::Recorded, PortError> {
        let mut states = lock(&self.states);
        let key = (org.clone(), provider);
        let recorded = crate::breaker::after_failure(
            states.get(&key).cloned().unwrap_or_default(),
            now,
            policy,
        );
        states.insert(key, recorded.state.clone());
        Ok(recorded)
    }

    async fn take_probe(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<crate::breaker::BreakerState>, PortError> {
        let mut states = lock(&self.states);
        let Some(state) = states.get_mut(&(org.clone(), provider)) else {
            return Ok(None);
        };
        if state.gate(now) != crate::breaker::Gate::HalfOpen {
            return Ok(None);
        }
        state.probe_until = Some(lease_until);
        Ok(Some(state.clone()))
    }

    async fn close(
        &self,
        org: &OrgId,
        provider: crate::model::DeliveryService,
    ) -> Result<(), PortError> {
        lock(&self.states).remove(&(org.clone(), provider));
        Ok(())
    }
}

/// Rate-limit buckets in memory, counted as every store counts them.
#[derive(Default)]
pub struct MemoryRateLimiter {
    buckets: Mutex<BTreeMap<(OrgId, Channel), crate::rate_limit::Bucket>>,
    /// Takes from the store (one per limited channel of an organization per batch).
    pub takes: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl crate::ports::RateLimiter for MemoryRateLimiter {
    async fn take(
        &self,
        org: &OrgId,
        channel: Channel,
        want: u32,
        limit: crate::rate_limit::ChannelLimit,
        now: DateTime<Utc>,
    ) -> Result<crate::rate_limit::Admission, PortError> {
        self.takes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry((org.clone(), channel)).or_default();
        let (admission, counted) = crate::rate_limit::take(bucket, now, want, limit);
        *bucket = counted;
        Ok(admission)
    }
}

/// Keeps every measure recorded.
#[derive(Default)]
pub struct MemoryMeter {
    measures: Mutex<Vec<crate::telemetry::Measure>>,
    /// How many times measures were recorded (once per batch).
    pub records: std::sync::atomic::AtomicUsize,
}

impl MemoryMeter {
    pub fn measures(&self) -> Vec<crate::telemetry::Measure> {
        lock(&self.measures).clone()
    }

    /// The sum of a metric's values.
    pub fn total(&self, metric: crate::telemetry::Metric) -> f64 {
        lock(&self.measures)
            .iter()
            .filter(|m| m.metric == metric)
            .map(|m| m.value)
            .sum()
    }
}

impl crate::ports::Meter for MemoryMeter {
    fn record(&self, measures: Vec<crate::telemetry::Measure>) {
        self.records
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.measures).extend(measures);
    }
}
