//! `herald-local chaos`: many events through the whole stage while things go wrong, and a count
//! of what the providers got. The run generates organizations, customers and notifying events
//! from a seed ([`generate`]), injects provider faults, duplicate events, duplicate dispatch
//! messages and crashes between a provider's acceptance and dispatch's record of it
//! ([`crate::faults`]), drives intake, dispatch, the scheduler (its clock moved on past the
//! retry backoffs and the claims' leases) and the projector until nothing is left to do, and
//! counts from the providers' own records ([`count`]).

pub mod count;
pub mod generate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use chrono::{DateTime, Utc};
use futures::future::Either;
use herald_core::ids::{BusinessKey, CustomerId, NotificationType, OrgId};
use herald_core::model::{Notification, Recipient, Status};
use herald_core::ports::{DispatchMessage, NotificationStore};
use lambda_runtime::{Context, LambdaEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::driver::{LocalStack, delete_messages, sqs_event};
use crate::emulator::Emulator;
use crate::error::LocalError;
use crate::faults::{FaultKind, FaultPlan, Faults};
use crate::requests::Component;
use crate::serve::Serving;
use count::{Tally, count, records};
use generate::{Fate, Plan, Route, generate};

/// What to run and what to inject (`herald-local chaos`'s flags).
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct ChaosConfig {
    /// Notifying events.
    #[arg(long, default_value_t = 300)]
    pub events: usize,
    #[arg(long, default_value_t = 4)]
    pub orgs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The share of provider calls answered with an error (5xx, throttling, a timeout, a
    /// rejection).
    #[arg(long, default_value_t = 0.1)]
    pub provider_faults: f64,
    /// The share of events put on the bus twice.
    #[arg(long, default_value_t = 0.05)]
    pub duplicate_events: f64,
    /// The share of dispatch messages delivered twice.
    #[arg(long, default_value_t = 0.05)]
    pub duplicate_messages: f64,
    /// The share of accepted sends whose dispatch is killed before it records them.
    #[arg(long, default_value_t = 0.01)]
    pub crash_after_send: f64,
}

/// Why a chaos run cannot start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChaosConfigError {
    #[error("--events must be between 1 and {MAX_EVENTS}")]
    Events,
    #[error("--orgs must be between 1 and {MAX_ORGS}")]
    Orgs,
    #[error("--{0} must be a share between 0 and 0.5")]
    Share(&'static str),
}

/// The most events one run takes (the emulator keeps every message in memory).
pub const MAX_EVENTS: usize = 100_000;
pub const MAX_ORGS: usize = 100;

impl ChaosConfig {
    /// The configuration, or the flag that is out of bounds. Shares above one half would
    /// mostly measure the retry policy giving up.
    pub fn check(self) -> Result<ChaosConfig, ChaosConfigError> {
        if !(1..=MAX_EVENTS).contains(&self.events) {
            return Err(ChaosConfigError::Events);
        }
        if !(1..=MAX_ORGS).contains(&self.orgs) {
            return Err(ChaosConfigError::Orgs);
        }
        let shares = [
            ("provider-faults", self.provider_faults),
            ("duplicate-events", self.duplicate_events),
            ("duplicate-messages", self.duplicate_messages),
            ("crash-after-send", self.crash_after_send),
        ];
        for (flag, share) in shares {
            if !(0.0..=0.5).contains(&share) {
                return Err(ChaosConfigError::Share(flag));
            }
        }
        Ok(self)
    }
}

/// What was injected.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Injections {
    /// Provider faults, per service and kind.
    pub provider_faults: BTreeMap<String, BTreeMap<FaultKind, usize>>,
    /// Events put on the bus a second time.
    pub duplicate_events: usize,
    /// Dispatch messages sent to the queue a second time.
    pub duplicate_messages: usize,
    /// Sends whose dispatch was killed before recording them.
    pub crashes_after_send: usize,
}

/// The run's outcome; the JSON line `chaos` prints last.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub events: usize,
    /// Every notification's end, over all channels (its fields are the report's own in JSON).
    #[serde(flatten)]
    pub total: Tally,
    /// Messages the providers got that no expected send accounts for.
    pub unexpected: usize,
    pub by_channel: BTreeMap<&'static str, Tally>,
    pub duration_s: f64,
    pub injected: Injections,
    pub seed: u64,
    pub orgs: usize,
    pub customers: usize,
    /// Rounds of the clock moved on after the events went in.
    pub rounds: usize,
    /// Whether the run stopped at its last round with work still pending.
    pub gave_up: bool,
    /// The first lost and doubled notifications (`token/channel`), to look into.
    pub lost_notifications: Vec<String>,
    pub doubled_notifications: Vec<String>,
}

impl ChaosReport {
    /// Nothing lost, nothing doubled, nothing sent that should not have been.
    pub fn is_clean(&self) -> bool {
        self.total.lost == 0 && self.total.doubled == 0 && self.unexpected == 0
    }
}

/// Events put on the bus and handed to intake per step, before dispatch drains.
const CHUNK: usize = 250;
/// How far the clock moves in a round after a busy one, once every event is in: past a
/// claim's lease (2 min) and the first backoff (5 min).
const STEP: chrono::Duration = chrono::Duration::minutes(10);
/// How long (on Herald's clock) nothing may happen before the run is over: past the longest
/// backoff (2 h, plus 10% jitter) and a claim's lease.
const QUIET: chrono::Duration = chrono::Duration::hours(3);
/// The most rounds; a run that needs more gives up and says so.
const MAX_ROUNDS: usize = 100;
/// How many listed lost or doubled notifications the report keeps.
const LISTED: usize = 20;

/// The SendGrid and Twilio settings every organization that sends through them gets.
const HTTP_PROVIDERS: &str = include_str!("../../../../events/providers/org_globex.json");

/// Runs the chaos on a fresh emulator of its own.
pub async fn run(config: ChaosConfig, stage: &str) -> Result<ChaosReport, LocalError> {
    let started = Instant::now();
    let faults = Faults::new(FaultPlan {
        seed: config.seed,
        provider_faults: config.provider_faults,
        crash_after_send: config.crash_after_send,
    });
    // a fresh emulator: what it recorded is this run's alone
    let emulator = Emulator::start().await?;
    let serving = Serving::start_with_faults(emulator, stage, 0, Some(faults.clone())).await?;
    let stack = serving.local.as_ref();
    let start = Utc::now();
    stack.clock.set(Some(start));
    let plan = generate(config.events, config.orgs, config.seed, start);
    put_provider_settings(&serving, &plan).await?;
    let mut run = Run {
        stack,
        faults: &faults,
        config,
        rng: StdRng::seed_from_u64(config.seed ^ 0x005e_edd0_b1e5),
        sqs: aws_sdk_sqs::Client::new(&stack.aws),
        bus: aws_sdk_eventbridge::Client::new(&stack.aws),
        in_flight: Vec::new(),
        copied: HashSet::new(),
        injections: Injections::default(),
    };
    // in steps: the emulator's queues slow down with the messages they hold
    for chunk in plan.directory.chunks(CHUNK) {
        run.put_and_take(chunk).await?;
    }
    info!(elapsed = ?started.elapsed(), "directory events taken");
    for chunk in plan.events.chunks(CHUNK) {
        run.put_and_take(chunk).await?;
        run.drain_dispatch().await?;
        stack.project().await?;
    }
    info!(elapsed = ?started.elapsed(), "notifying events taken and dispatched once");
    let (rounds, gave_up) = run.until_quiet(start).await?;
    info!(elapsed = ?started.elapsed(), rounds, "quiet");
    let report = run.count(&plan, started, rounds, gave_up).await?;
    stack.clock.set(None);
    Ok(report)
}

/// The organizations that send through SendGrid and Twilio get the sample's settings,
/// through the api as an administrator would put them.
async fn put_provider_settings(serving: &Serving, plan: &Plan) -> Result<(), LocalError> {
    let dir = std::env::temp_dir().join(format!("herald-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| LocalError::File {
        path: dir.clone(),
        source,
    })?;
    for org in plan.orgs.iter().filter(|o| o.route == Route::Http) {
        let path = dir.join(format!("{}.json", org.id));
        std::fs::write(&path, HTTP_PROVIDERS)
            .map_err(|source| LocalError::File { path, source })?;
    }
    let result = serving.served.put_sample_providers(Path::new(&dir)).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

struct Run<'a> {
    stack: &'a LocalStack,
    faults: &'a Faults,
    config: ChaosConfig,
    /// Decides the duplicates, in the order events and messages come.
    rng: StdRng,
    sqs: aws_sdk_sqs::Client,
    bus: aws_sdk_eventbridge::Client,
    /// Receipts of dispatch messages received and not deleted (a killed invocation's, or
    /// records dispatch reported failed): they come back after the queue's visibility
    /// timeout, which the run lets pass when it moves the clock on.
    in_flight: Vec<String>,
    /// Dispatch message bodies already copied (each is copied at most once).
    copied: HashSet<String>,
    injections: Injections,
}

impl Run<'_> {
    /// Puts these events on the bus (a share of them twice) and hands what the bus rule
    /// delivered to intake until every one of them was taken.
    async fn put_and_take(&mut self, events: &[Value]) -> Result<(), LocalError> {
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let entry = entry(event, &self.stack.stack.names.bus())?;
            if self.rng.random_bool(self.config.duplicate_events) {
                entries.push(entry.clone());
                self.injections.duplicate_events += 1;
            }
            entries.push(entry);
        }
        for chunk in entries.chunks(10) {
            let out = self
                .bus
                .put_events()
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| LocalError::aws("PutEvents", e))?;
            if out.failed_entry_count > 0 {
                return Err(LocalError::BusRefused(out.failed_entry_count));
            }
        }
        let mut taken = 0;
        let mut empty = 0;
        // the rule's deliveries may trail the puts: a few empty looks before giving up
        while taken < entries.len() && empty < 20 {
            match self.stack.pump_intake_queue().await? {
                0 => {
                    empty += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                n => taken += n,
            }
        }
        if taken < entries.len() {
            warn!(
                taken,
                put = entries.len(),
                "intake took fewer events than were put"
            );
        }
        Ok(())
    }

    /// Hands the dispatch queue to dispatch until no message is visible, copying a share of
    /// the messages back onto the queue and letting the fault layer kill invocations. Returns
    /// the messages received.
    async fn drain_dispatch(&mut self) -> Result<usize, LocalError> {
        let queue = self.stack.stack.dispatch_queue_url.clone();
        let mut received = 0;
        loop {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| LocalError::aws("ReceiveMessage", e))?
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                return Ok(received);
            }
            received += messages.len();
            for m in &messages {
                let body = m.body.clone().unwrap_or_default();
                if !self.copied.contains(&body)
                    && self.rng.random_bool(self.config.duplicate_messages)
                {
                    self.sqs
                        .send_message()
                        .queue_url(&queue)
                        .message_body(&body)
                        .send()
                        .await
                        .map_err(|e| LocalError::aws("SendMessage", e))?;
                    self.copied.insert(body);
                    self.injections.duplicate_messages += 1;
                }
            }
            let event = sqs_event(&messages);
            self.stack.requests.invoked(Component::Dispatch);
            let crash = self.faults.arm_crash();
            let handler = herald_dispatch::handle(
                &self.stack.dispatch,
                LambdaEvent::new(event, Context::default()),
            );
            futures::pin_mut!(handler);
            let response = match futures::future::select(handler, crash).await {
                Either::Left((response, _)) => Some(response),
                // killed between a send and its record: what had left is answered, nothing
                // leaves after, nothing of the batch is deleted
                Either::Right((Ok(()), handler)) => {
                    let answered = async {
                        while self.faults.in_flight() > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                    };
                    futures::pin_mut!(answered);
                    let _ = futures::future::select(handler, answered).await;
                    None
                }
                Either::Right((Err(_), handler)) => Some(handler.await),
            };
            let receipts = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
                messages
                    .iter()
                    .filter(|m| keep(m.message_id.as_deref().unwrap_or_default()))
                    .filter_map(|m| m.receipt_handle.clone())
                    .collect()
            };
            match response {
                None => {
                    info!(
                        messages = messages.len(),
                        "dispatch killed after a send; its batch comes back"
                    );
                    self.in_flight.extend(receipts(&|_| true));
                    self.note_unrecorded(&messages).await?;
                }
                Some(response) => {
                    let response = response.map_err(|e| LocalError::handler("dispatch", e))?;
                    let failed: HashSet<&str> = response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.as_str())
                        .collect();
                    self.in_flight.extend(receipts(&|id| failed.contains(id)));
                    self.delete(&queue, receipts(&|id| !failed.contains(id)))
                        .await?;
                }
            }
        }
    }

    /// The whole invocation died, not only the send the crash was drawn for: every
    /// notification of the batch still held (claimed, not recorded) may have been accepted
    /// by its provider too, and is resent after its lease like the one drawn.
    async fn note_unrecorded(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
    ) -> Result<(), LocalError> {
        for m in messages {
            let Some(message) = m
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<DispatchMessage>(b).ok())
            else {
                continue;
            };
            let held = self
                .stack
                .store
                .get(&message.org_id, &message.notification_id)
                .await?
                .is_some_and(|n| n.status == Status::Sending);
            if held {
                self.faults.also_crashed(message.notification_id.as_str());
            }
        }
        Ok(())
    }

    async fn delete(&self, queue: &str, receipts: Vec<String>) -> Result<(), LocalError> {
        delete_messages(&self.sqs, queue, receipts).await
    }

    /// The messages received and not deleted become visible again, as when their
    /// visibility timeout has passed.
    async fn release_in_flight(&mut self) -> Result<usize, LocalError> {
        let receipts = std::mem::take(&mut self.in_flight);
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LocalError::aws("ChangeMessageVisibilityBatch", e))?;
            // a receipt the queue no longer knows (the message went to the dead-letter queue)
            // is refused alone, in the answer
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.stack.stack.dispatch_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| LocalError::aws("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(receipts.len())
    }

    /// Moves Herald's clock on a step at a time, letting the queue's hidden messages come
    /// back and the scheduler sweep, until nothing has happened for [`QUIET`] or the rounds
    /// run out. Returns the rounds and whether it gave up.
    async fn until_quiet(&mut self, start: DateTime<Utc>) -> Result<(usize, bool), LocalError> {
        let mut now = start;
        let mut quiet = chrono::Duration::zero();
        let mut step = STEP;
        for round in 1..=MAX_ROUNDS {
            now += step;
            self.stack.clock.set(Some(now));
            let released = self.release_in_flight().await?;
            self.stack.requests.invoked(Component::Scheduler);
            let sweep = self.stack.scheduler.sweep().await?;
            let handled = self.drain_dispatch().await?;
            self.stack.project().await?;
            let busy = released + sweep.enqueued + handled + self.in_flight.len() > 0;
            // a quiet round doubles the next step: what waits for a long backoff is reached
            // in a few rounds (late, which changes nothing), a busy one starts over
            (quiet, step) = if busy {
                (chrono::Duration::zero(), STEP)
            } else {
                (quiet + step, step * 2)
            };
            if quiet >= QUIET {
                return Ok((round, false));
            }
        }
        Ok((MAX_ROUNDS, true))
    }

    /// Counts what the providers recorded against what was expected.
    async fn count(
        &self,
        plan: &Plan,
        started: Instant,
        rounds: usize,
        gave_up: bool,
    ) -> Result<ChaosReport, LocalError> {
        let (sendgrid, twilio) = match &self.stack.providers {
            Some(p) => (p.sendgrid_requests(), p.twilio_requests()),
            None => (Vec::new(), Vec::new()),
        };
        let records = records(&self.faults.accepted(), &sendgrid, &twilio);
        let recorded: HashSet<(&str, &str)> = records
            .iter()
            .flat_map(|r| r.tokens.iter().map(|t| (t.as_str(), r.channel.as_str())))
            .collect();
        let mut ids = Vec::with_capacity(plan.expected.len());
        let mut statuses = HashMap::new();
        for e in &plan.expected {
            let org = OrgId::parse(e.org.as_str()).map_err(|e| LocalError::handler("chaos", e))?;
            let id = Notification::derive_id(
                &org,
                &NotificationType::parse(e.kind.notification_type())
                    .map_err(|e| LocalError::handler("chaos", e))?,
                &Recipient::Customer(
                    CustomerId::parse(e.customer.as_str())
                        .map_err(|e| LocalError::handler("chaos", e))?,
                ),
                e.channel,
                &BusinessKey::parse(e.token.as_str())
                    .map_err(|e| LocalError::handler("chaos", e))?,
            );
            // Herald's table is read only for the sends no provider recorded
            if e.fate == Fate::Send && !recorded.contains(&(e.token.as_str(), e.channel.as_str())) {
                let status = self.stack.store.get(&org, &id).await?.map(|n| n.status);
                statuses.insert(id.to_string(), status);
            }
            ids.push(id.to_string());
        }
        let injected = self.faults.injected();
        let refused: HashSet<String> = injected
            .iter()
            .filter(|i| i.kind == FaultKind::RecipientRefused)
            .filter_map(|i| i.recipient.clone())
            .collect();
        let counted = count(
            &plan.expected,
            &ids,
            &records,
            &self.faults.crashed(),
            &statuses,
            &refused,
        );
        let mut injections = self.injections.clone();
        injections.crashes_after_send = injected
            .iter()
            .filter(|i| i.kind == FaultKind::CrashAfterSend)
            .count();
        injections.provider_faults = self.faults.counts();
        injections.provider_faults.remove("dispatch");
        Ok(ChaosReport {
            events: plan.events.len(),
            total: counted.total,
            unexpected: counted.unexpected,
            by_channel: counted.by_channel,
            duration_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            injected: injections,
            seed: self.config.seed,
            orgs: plan.orgs.len(),
            customers: plan.customers.len(),
            rounds,
            gave_up,
            lost_notifications: counted.lost.into_iter().take(LISTED).collect(),
            doubled_notifications: counted.doubled.into_iter().take(LISTED).collect(),
        })
    }
}

/// A PutEvents entry for a generated event.
fn entry(event: &Value, bus: &str) -> Result<PutEventsRequestEntry, LocalError> {
    let text = |name: &str| event[name].as_str().unwrap_or_default().to_string();
    let time = chrono::DateTime::parse_from_rfc3339(&text("time"))
        .map_err(|e| LocalError::handler("chaos", e))?;
    Ok(PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(text("source"))
        .detail_type(text("detail-type"))
        .detail(event["detail"].to_string())
        .time(aws_smithy_types::DateTime::from_millis(
            time.timestamp_millis(),
        ))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ChaosConfig {
        ChaosConfig {
            events: 300,
            orgs: 4,
            seed: 1,
            provider_faults: 0.1,
            duplicate_events: 0.05,
            duplicate_messages: 0.05,
            crash_after_send: 0.02,
        }
    }

    #[test]
    fn a_configuration_out_of_bounds_names_its_flag() {
        assert_eq!(config().check(), Ok(config()));
        let bad = ChaosConfig {
            provider_faults: 0.9,
            ..config()
        };
        assert_eq!(bad.check(), Err(ChaosConfigError::Share("provider-faults")));
        assert_eq!(
            ChaosConfig {
                events: 0,
                ..config()
            }
            .check(),
            Err(ChaosConfigError::Events)
        );
        assert_eq!(
            ChaosConfig {
                orgs: 0,
                ..config()
            }
            .check(),
            Err(ChaosConfigError::Orgs)
        );
        let bad = ChaosConfig {
            crash_after_send: -0.1,
            ..config()
        };
        assert_eq!(
            bad.check().map_err(|e| e.to_string()),
            Err("--crash-after-send must be a share between 0 and 0.5".to_string())
        );
    }
}
