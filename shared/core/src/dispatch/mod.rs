//! Dispatch: claim a notification, send it through its channel's providers (the first that
//! takes it), record the result.

mod failover;
mod fallback;
mod rate_limiting;

pub use failover::{CIRCUIT_OPEN, Senders};

use rate_limiting::Pass;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use thiserror::Error;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::breaker::BreakerBoard;
use crate::consent::{self, Audience, SuppressionKey, Verdict};
use crate::directory::{CustomerRecord, OrgSettings};
use crate::ids::{NotificationId, OrgId};
use crate::model::{Channel, DeliveryService, MAX_TRIES_KEPT, Notification, Recipient, Status};
use crate::ports::{
    Chance, ClaimOutcome, Clock, Directory, DispatchMessage, DispatchQueue, Enqueue, FailureKind,
    HtmlOf, MAX_QUEUE_DELAY, Meter, NotificationStore, PortError, ProviderSettings, RateLimiter,
    Receipt, SendError, Snapshot, SnapshotRequest,
};
use crate::rate_limit::{self, ChannelLimit, RateLimits};
use crate::retry::RetryPolicy;
use crate::routing::{self, Routing};
use crate::telemetry::{self, Measure, Metric};

/// What one dispatch did.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchOutcome {
    Sent {
        /// `None` when the provider accepted it with an answer that could not be read.
        provider_message_id: Option<String>,
    },
    Delivered,
    /// Never sent: the recipient's consent no longer allows it (ended as Skipped).
    Withheld {
        reason: String,
    },
    /// Quiet hours began while it waited: pending again until they end.
    Deferred {
        until: DateTime<Utc>,
        requeued: bool,
    },
    Retrying {
        next_retry_at: DateTime<Utc>,
        requeued: bool,
    },
    /// Over its organization's rate limit for the channel: waits for the time the bucket
    /// says, with no attempt spent.
    Throttled {
        until: DateTime<Utc>,
        requeued: bool,
    },
    Failed {
        reason: String,
    },
    Skipped(Skip),
}

/// Why a message led to no send. Each is acknowledged: the message has nothing left to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    /// No such notification (it may belong to a table that was reset); logged.
    NotFound,
    /// Already sent, failed, delivered, or held by a live claim.
    NotClaimable(Status),
    /// Scheduled or backing off; enqueued again for its time when that is within the
    /// queue's reach, else left for the scheduler's sweep.
    NotDue {
        due_at: DateTime<Utc>,
        requeued: bool,
    },
}

#[derive(Debug, Error)]
pub enum DispatchError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(
        "the {channel} sender failed unexpectedly; the notification is released for a later attempt"
    )]
    SenderPanicked { channel: Channel },
}

pub struct DispatchService {
    pub store: Arc<dyn NotificationStore>,
    pub queue: Arc<dyn DispatchQueue>,
    /// Consent is checked again as each notification leaves.
    pub directory: Arc<dyn Directory>,
    pub senders: Senders,
    /// The organizations' provider settings, with their routing (cached).
    pub settings: Arc<dyn ProviderSettings>,
    /// The deployment's routing, for the channels an organization's does not name.
    pub routing: Routing,
    /// The circuit breakers of the organizations' providers, shared by every dispatcher.
    pub breakers: BreakerBoard,
    /// The deployment's rate limits, for the channels an organization's do not name.
    pub limits: RateLimits,
    /// The rate limits' buckets, shared by every dispatcher.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Where the batch's measures go.
    pub meter: Arc<dyn Meter>,
    pub clock: Arc<dyn Clock>,
    /// The backoff's jitter.
    pub chance: Arc<dyn Chance>,
    pub policy: RetryPolicy,
    /// How long a claim holds. Longer than one invocation can run, shorter than the queue's
    /// visibility timeout, so a redelivered message can take over from a dispatcher that died.
    pub lease: Duration,
}

/// The default claim lease: four Lambda timeouts of 30 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Puts a held email's HTML back in place. Without it the email is not sent: its event's
/// record is written before the notification is enqueued, so a missing one is a read to try
/// again (the claim's lease hands the notification out again), never a reason to send less.
fn with_html(
    n: &mut Notification,
    html: &Result<BTreeMap<NotificationId, String>, PortError>,
) -> Result<(), DispatchError> {
    if !n.has_html || n.html_body.is_some() {
        return Ok(());
    }
    const OP: &str = "read the email's HTML from its event's record";
    match html {
        Ok(bodies) => match bodies.get(&n.id) {
            Some(body) => {
                n.html_body = Some(body.clone());
                Ok(())
            }
            None => Err(DispatchError::Port(PortError::new(
                OP,
                "the event's record holds none",
            ))),
        },
        Err(e) => Err(DispatchError::Port(PortError::new(OP, e.to_string()))),
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// How each organization's channel sends: its providers in the order they are asked (or why
/// they are unknown) and the rate limit it is held to.
struct Route {
    providers: Result<Vec<DeliveryService>, SendError>,
    limit: Option<ChannelLimit>,
}

type Routes = HashMap<(OrgId, Channel), Route>;

/// The measures of a batch, written together once it is done.
#[derive(Default)]
struct Tally(std::sync::Mutex<Vec<Measure>>);

impl Tally {
    fn add(&self, measures: impl IntoIterator<Item = Measure>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(measures);
    }

    fn into_inner(self) -> Vec<Measure> {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A notification this dispatcher holds, and the token that proves it.
struct Held {
    notification: Notification,
    token: String,
}

impl DispatchService {
    /// Dispatches one message: a batch of one.
    pub async fn dispatch(
        &self,
        message: &DispatchMessage,
    ) -> Result<DispatchOutcome, DispatchError> {
        self.dispatch_batch(std::slice::from_ref(message))
            .await
            .pop()
            .unwrap_or_else(|| Ok(DispatchOutcome::Skipped(Skip::NotFound)))
    }

    /// Dispatches a batch: claims each message's notification, checks the consent of every
    /// claimed recipient with one directory read for the whole batch, and sends what may leave,
    /// concurrently. One result per message, in order; each fails alone.
    pub async fn dispatch_batch(
        &self,
        messages: &[DispatchMessage],
    ) -> Vec<Result<DispatchOutcome, DispatchError>> {
        let now = self.clock.now();
        let claims = join_all(messages.iter().map(|m| self.claim(m, now))).await;
        let held: Vec<&Notification> = claims
            .iter()
            .filter_map(|c| match c {
                Ok(Ok(h)) => Some(&h.notification),
                _ => None,
            })
            .collect();
        // A failed read leaves the claims to their leases: the sweep hands them out again.
        let snapshot = if held.is_empty() {
            Ok(Snapshot::default())
        } else {
            self.consent_snapshot(&held).await
        };
        let html = self.html_of(&held).await;
        let routes = self.routes(&held).await;
        self.read_breakers(&routes, now).await;
        let verdicts: Vec<Option<Verdict>> = claims
            .iter()
            .map(|claim| match (claim, &snapshot) {
                (Ok(Ok(h)), Ok(snapshot)) => Some(verdict(&h.notification, snapshot, now)),
                _ => None,
            })
            .collect();
        let passes = self.passes(&claims, &verdicts, &routes, now).await;
        let work = claims.into_iter().zip(verdicts).zip(passes);
        let tally = Tally::default();
        let (html, routes, snapshot, counted) = (&html, &routes, &snapshot, &tally);
        let outcomes = join_all(work.map(|((claim, verdict), pass)| async move {
            match (claim, verdict) {
                (Ok(Ok(mut held)), Some(verdict)) => {
                    with_html(&mut held.notification, html)?;
                    self.deliver(held, verdict, pass, routes, counted, now)
                        .await
                }
                (Ok(Ok(_)), None) => Err(DispatchError::Port(PortError::new(
                    "read the directory for consent",
                    snapshot
                        .as_ref()
                        .err()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ))),
                (Ok(Err(done)), _) => Ok(done),
                (Err(e), _) => Err(e),
            }
        }))
        .await;
        self.meter.record(tally.into_inner());
        outcomes
    }

    /// The route of each organization and channel the held notifications go through (in-app
    /// needs none). Settings that cannot be read are a soft failure: the provider's side,
    /// retried.
    async fn routes(&self, held: &[&Notification]) -> Routes {
        let mut routes = Routes::new();
        for n in held.iter().filter(|n| n.channel != Channel::InApp) {
            let key = (n.org_id.clone(), n.channel);
            if routes.contains_key(&key) {
                continue;
            }
            let route = match self.settings.get(&n.org_id).await {
                Ok(providers) => Route {
                    providers: Ok(routing::route(&providers, &self.routing, n.channel)),
                    limit: rate_limit::limit_for(&providers.limits, &self.limits, n.channel),
                },
                Err(e) => {
                    warn!(error = %e, "provider settings unavailable");
                    Route {
                        providers: Err(SendError::soft("provider settings unavailable")),
                        limit: None,
                    }
                }
            };
            routes.insert(key, route);
        }
        routes
    }

    /// The circuit breakers of every provider of these routes, read at once unless cached.
    async fn read_breakers(&self, routes: &Routes, now: DateTime<Utc>) {
        let keys: Vec<(OrgId, DeliveryService)> = routes
            .iter()
            .filter_map(|((org, _), route)| Some((org, route.providers.as_ref().ok()?)))
            .flat_map(|(org, route)| route.iter().map(|p| (org.clone(), *p)))
            .collect();
        self.breakers.prefetch(&keys, now).await;
    }

    /// The HTML of the held emails that have one, read from their events' records at once.
    async fn html_of(
        &self,
        held: &[&Notification],
    ) -> Result<BTreeMap<NotificationId, String>, PortError> {
        let wanted: Vec<HtmlOf> = held
            .iter()
            .filter(|n| n.has_html && n.html_body.is_none())
            .map(|n| HtmlOf {
                org_id: n.org_id.clone(),
                event_id: n.source_event_id.clone(),
                notification_id: n.id.clone(),
            })
            .collect();
        if wanted.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.store.html_bodies(&wanted).await
    }

    /// Claims the message's notification, or says why there is nothing to send.
    #[tracing::instrument(skip_all, fields(org_id = %message.org_id, notification_id = %message.notification_id))]
    async fn claim(
        &self,
        message: &DispatchMessage,
        now: DateTime<Utc>,
    ) -> Result<Result<Held, DispatchOutcome>, DispatchError> {
        let token = Uuid::new_v4().simple().to_string();
        let claim = self
            .store
            .claim(
                &message.org_id,
                &message.notification_id,
                &token,
                now,
                now + chrono(self.lease),
            )
            .await?;
        match claim {
            ClaimOutcome::Claimed(n) => Ok(Ok(Held {
                notification: *n,
                token,
            })),
            ClaimOutcome::NotFound => {
                warn!("notification not found; message acknowledged");
                Ok(Err(DispatchOutcome::Skipped(Skip::NotFound)))
            }
            ClaimOutcome::NotClaimable(n) => self.not_claimable(&n, now).await.map(Err),
        }
    }

    /// One read of what consent depends on for these notifications: their customers, the
    /// organizations of internal ones, and the suppression list for their addresses. An
    /// address that changed since a notification was created is looked up in a second read.
    async fn consent_snapshot(&self, held: &[&Notification]) -> Result<Snapshot, PortError> {
        let mut request = SnapshotRequest::default();
        for n in held {
            match &n.recipient {
                Recipient::Customer(c) => {
                    request.customers.insert((n.org_id.clone(), c.clone()));
                }
                Recipient::Operations => {
                    request.orgs.insert(n.org_id.clone());
                }
            }
            if let Some(key) = consent::suppression_key(n.channel, &n.address) {
                request.suppression.insert((n.org_id.clone(), key));
            }
        }
        let mut snapshot = self.directory.snapshot(&request).await?;
        let mut moved = SnapshotRequest::default();
        for n in held {
            let (customer, org) = parties(n, &snapshot);
            let audience = Audience {
                recipient: &n.recipient,
                customer: &customer,
                org: &org,
            };
            let key = consent::address(n.channel, audience)
                .ok()
                .and_then(|a| consent::suppression_key(n.channel, &a))
                .map(|k| (n.org_id.clone(), k));
            if let Some(key) = key.filter(|k| !request.suppression.contains(k)) {
                moved.suppression.insert(key);
            }
        }
        if !moved.is_empty() {
            snapshot.extend(self.directory.snapshot(&moved).await?);
        }
        Ok(snapshot)
    }

    /// Sends a held notification if consent still allows it; records what became of it.
    #[tracing::instrument(skip_all, fields(org_id = %held.notification.org_id, notification_id = %held.notification.id))]
    async fn deliver(
        &self,
        held: Held,
        verdict: Verdict,
        pass: Pass,
        routes: &Routes,
        tally: &Tally,
        now: DateTime<Utc>,
    ) -> Result<DispatchOutcome, DispatchError> {
        let Held {
            notification: mut n,
            token,
        } = held;
        n.updated_at = now;
        n.claim = None;
        match verdict {
            Verdict::Send(address) => n.address = address,
            Verdict::Skip(reason) => {
                n.status = Status::Skipped;
                n.note = Some(reason.clone());
                n.next_retry_at = None;
                n.sweep_at = None;
                self.fall_back(&mut n, now).await?;
                self.settle(&n, &token).await?;
                info!(channel = %n.channel, %reason, "withheld: consent no longer allows it");
                return Ok(DispatchOutcome::Withheld { reason });
            }
            Verdict::Defer(until) => {
                n.status = Status::Pending;
                n.scheduled_for = Some(until);
                n.next_retry_at = None;
                n.sweep_at = Some(until);
                let requeued = self.settle_until(&n, &token, until, now).await?;
                info!(channel = %n.channel, %until, "deferred to the end of quiet hours");
                return Ok(DispatchOutcome::Deferred { until, requeued });
            }
        }
        if let Pass::Wait(until) = pass {
            tally.add([Measure::for_notification(Metric::Throttled, &n)]);
            return self.throttle(n, token, until, now).await;
        }
        // in-app is delivered by being stored; every other channel's route was read for the batch
        let route = (n.channel != Channel::InApp).then(|| {
            routes
                .get(&(n.org_id.clone(), n.channel))
                .map(|r| r.providers.clone())
                .unwrap_or_else(|| Err(SendError::soft("the channel's route was not read")))
        });
        self.send(n, token, route, tally, now).await
    }

    /// Sends through the channel's providers in the order of its route (none for in-app) and
    /// records the result.
    async fn send(
        &self,
        mut notification: Notification,
        token: String,
        route: Option<Result<Vec<DeliveryService>, SendError>>,
        tally: &Tally,
        now: DateTime<Utc>,
    ) -> Result<DispatchOutcome, DispatchError> {
        notification.attempts += 1;
        let mut failed_over = false;
        let result = match route {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(route)) => {
                match failover::walk(&self.senders, &self.breakers, &route, &notification, now)
                    .await
                {
                    Ok(walk) => {
                        tally.add(telemetry::of_tries(&notification, &walk.tried));
                        tally.add(walk.opened.iter().map(|p| {
                            Measure::for_notification(Metric::BreakerOpened, &notification)
                                .provider(*p)
                        }));
                        failed_over = !walk.tried.is_empty();
                        keep_tries(&mut notification, walk.tried);
                        let answer = channel_down_for_critical(&notification, walk.answer);
                        match (walk.held_until, answer) {
                            (Some(until), Err(e)) if e.kind.at_provider() => {
                                return self.hold(notification, token, Err(e), until, now).await;
                            }
                            (_, answer) => answer.map(Some),
                        }
                    }
                    Err(panicked) => {
                        error!(channel = %notification.channel, provider = panicked.provider.as_str(), "sender panicked");
                        tally.add(telemetry::of_tries(&notification, &panicked.tried));
                        keep_tries(&mut notification, panicked.tried);
                        // Released as due now: the redelivered message (or the sweep) tries again.
                        let reason = "the sender failed unexpectedly".to_string();
                        self.apply_soft_failure(&mut notification, reason, now, Some(now));
                        notification.sweep_at = notification.next_retry_at;
                        self.settle(&notification, &token).await?;
                        return Err(DispatchError::SenderPanicked {
                            channel: notification.channel,
                        });
                    }
                }
            }
        };

        let (outcome, suppress) = self.record(&mut notification, result, now);
        // A retry is always in the sweep's index too: if the delayed message is lost, the
        // sweep still sends it; whichever comes first claims it, the other finds nothing to do.
        notification.sweep_at = match notification.status {
            Status::Retrying => notification.next_retry_at,
            _ => None,
        };
        if notification.status == Status::Failed {
            self.fall_back(&mut notification, now).await?;
        }
        if !self.settle(&notification, &token).await? {
            return Ok(outcome);
        }
        tally.add(telemetry::of_attempt(&notification, failed_over));
        if let (Some(key), Some(reason)) = (suppress, &notification.last_error) {
            // the provider said this recipient opted out or does not exist: never try again
            self.directory
                .suppress(&notification.org_id, &key, reason, now)
                .await?;
        }
        let outcome = match outcome {
            DispatchOutcome::Retrying { next_retry_at, .. } => {
                let requeued = self
                    .requeue_if_within_reach(&notification, next_retry_at, now)
                    .await?;
                DispatchOutcome::Retrying {
                    next_retry_at,
                    requeued,
                }
            }
            other => other,
        };
        info!(
            channel = %notification.channel,
            status = %notification.status,
            attempts = notification.attempts,
            "dispatched"
        );
        Ok(outcome)
    }

    /// Every provider of the route is held out by its breaker: the notification waits for the
    /// earliest to let messages through again. No provider was asked, so no attempt is spent.
    async fn hold(
        &self,
        mut n: Notification,
        token: String,
        answer: Result<Receipt, SendError>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DispatchOutcome, DispatchError> {
        n.attempts = n.attempts.saturating_sub(1);
        n.status = Status::Retrying;
        n.next_retry_at = Some(until);
        n.sweep_at = Some(until);
        if let Err(e) = answer {
            n.last_error = Some(e.reason);
            n.error_code = e.code;
        }
        let requeued = self.settle_until(&n, &token, until, now).await?;
        info!(channel = %n.channel, %until, "held: every provider's breaker is open");
        Ok(DispatchOutcome::Retrying {
            next_retry_at: until,
            requeued,
        })
    }

    /// Records a send's result on the notification: its new status and what goes with it; and,
    /// when the provider refused the recipient, the address to suppress.
    fn record(
        &self,
        n: &mut Notification,
        result: Result<Option<Receipt>, SendError>,
        now: DateTime<Utc>,
    ) -> (DispatchOutcome, Option<SuppressionKey>) {
        let mut suppress = None;
        match &result {
            Ok(receipt) => {
                n.provider = receipt.as_ref().and_then(|r| r.provider);
                n.error_code = None;
                if let Some(r) = receipt {
                    n.push_accepted.extend(r.push_accepted.clone());
                }
            }
            Err(e) => {
                n.provider = e.provider.or(n.provider);
                n.error_code = e.code.clone();
                // the devices that accepted it are not sent it again
                n.push_accepted.extend(e.push_accepted.clone());
            }
        }
        let outcome = match result {
            Ok(None) => {
                n.status = Status::Delivered;
                n.sent_at = Some(now);
                DispatchOutcome::Delivered
            }
            Ok(Some(Receipt {
                provider_message_id,
                ..
            })) => {
                n.status = Status::Sent;
                n.sent_at = Some(now);
                n.provider_message_id = provider_message_id.clone();
                n.last_error = None;
                n.next_retry_at = None;
                if provider_message_id.is_none() {
                    n.note = Some(
                        "the provider accepted it without a readable message id; its delivery events match by Herald's id only"
                            .into(),
                    );
                }
                DispatchOutcome::Sent {
                    provider_message_id,
                }
            }
            Err(SendError {
                kind: FailureKind::Hard,
                reason,
                ..
            }) => {
                mark_failed(n, reason.clone(), now);
                DispatchOutcome::Failed { reason }
            }
            Err(SendError {
                kind: FailureKind::Recipient,
                reason,
                ..
            }) => {
                suppress = consent::suppression_key(n.channel, &n.address);
                if suppress.is_some() {
                    n.suppressed_at = Some(now);
                }
                mark_failed(n, reason.clone(), now);
                DispatchOutcome::Failed { reason }
            }
            Err(SendError {
                kind: FailureKind::Soft | FailureKind::Credentials | FailureKind::Account,
                reason,
                ..
            }) => {
                self.apply_soft_failure(n, reason, now, None);
                match (n.status, n.next_retry_at) {
                    (Status::Retrying, Some(at)) => DispatchOutcome::Retrying {
                        next_retry_at: at,
                        requeued: false,
                    },
                    _ => DispatchOutcome::Failed {
                        reason: n.last_error.clone().unwrap_or_default(),
                    },
                }
            }
        };
        (outcome, suppress)
    }

    /// A soft failure: back off per the policy, or give up when the attempts are spent.
    /// `due` overrides the policy's next attempt time.
    fn apply_soft_failure(
        &self,
        n: &mut Notification,
        reason: String,
        now: DateTime<Utc>,
        due: Option<DateTime<Utc>>,
    ) {
        match self.policy.delay_after(n.attempts, self.chance.fraction()) {
            Some(delay) => {
                n.status = Status::Retrying;
                n.next_retry_at = Some(due.unwrap_or(now + chrono(delay)));
                n.last_error = Some(reason);
            }
            None => mark_failed(
                n,
                format!("gave up after {} attempts: {reason}", n.attempts),
                now,
            ),
        }
    }

    async fn settle(&self, n: &Notification, token: &str) -> Result<bool, DispatchError> {
        let settled = self.store.settle(n, token).await?;
        if !settled {
            warn!(
                "claim lost before the result was recorded (lease expired and another dispatcher took over)"
            );
        }
        Ok(settled)
    }

    /// Records a notification that waits until `until`, and puts it back on the queue for
    /// then if the queue reaches that far: whether it did (not when the claim was lost).
    async fn settle_until(
        &self,
        n: &Notification,
        token: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DispatchError> {
        if !self.settle(n, token).await? {
            return Ok(false);
        }
        self.requeue_if_within_reach(n, until, now).await
    }

    async fn requeue_if_within_reach(
        &self,
        n: &Notification,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DispatchError> {
        let delay = crate::scheduling::wait(now, due_at);
        if delay > MAX_QUEUE_DELAY {
            return Ok(false);
        }
        self.queue
            .enqueue(&[Enqueue {
                message: DispatchMessage {
                    org_id: n.org_id.clone(),
                    notification_id: n.id.clone(),
                },
                delay,
            }])
            .await?;
        Ok(true)
    }

    async fn not_claimable(
        &self,
        n: &Notification,
        now: DateTime<Utc>,
    ) -> Result<DispatchOutcome, DispatchError> {
        let waiting = n.status.is_waiting();
        if let (true, Some(due_at)) = (waiting, n.due_at(now)) {
            let requeued = self.requeue_if_within_reach(n, due_at, now).await?;
            if !requeued && n.sweep_at.is_none() {
                // Early (a clock ahead of ours) and out of the sweep's index: put it back.
                self.store.park(&n.org_id, &n.id, due_at).await?;
            }
            info!(%due_at, requeued, "not due yet");
            return Ok(DispatchOutcome::Skipped(Skip::NotDue { due_at, requeued }));
        }
        info!(status = %n.status, "not claimable; skipped");
        Ok(DispatchOutcome::Skipped(Skip::NotClaimable(n.status)))
    }
}

/// Whether consent lets a held notification leave now, from the batch's directory snapshot.
fn verdict(n: &Notification, snapshot: &Snapshot, now: DateTime<Utc>) -> Verdict {
    let (customer, org) = parties(n, snapshot);
    let audience = Audience {
        recipient: &n.recipient,
        customer: &customer,
        org: &org,
    };
    let suppressed =
        |k: &SuppressionKey| snapshot.suppressed.contains(&(n.org_id.clone(), k.clone()));
    consent::at_send_time(n, audience, suppressed, now)
}

/// The customer record and organization settings a notification's consent depends on.
fn parties(n: &Notification, snapshot: &Snapshot) -> (CustomerRecord, OrgSettings) {
    let customer = match &n.recipient {
        Recipient::Customer(c) => snapshot
            .customers
            .get(&(n.org_id.clone(), c.clone()))
            .cloned()
            .unwrap_or_default(),
        Recipient::Operations => CustomerRecord::default(),
    };
    let org = snapshot.orgs.get(&n.org_id).cloned().unwrap_or_default();
    (customer, org)
}

/// A critical notification does not wait for its channel to come back: when every provider
/// of the channel failed at the provider level (or is held out by its breaker), the attempt
/// ends as a hard failure, so the notification goes on by its next channel at once.
fn channel_down_for_critical(
    n: &Notification,
    answer: Result<Receipt, SendError>,
) -> Result<Receipt, SendError> {
    match answer {
        Err(mut e) if n.critical && !n.fallbacks.is_empty() && e.kind.at_provider() => {
            e.reason = format!("every {} provider is unavailable: {}", n.channel, e.reason);
            e.kind = FailureKind::Hard;
            Err(e)
        }
        answer => answer,
    }
}

/// Adds an attempt's failed tries to the notification's, keeping the latest.
fn keep_tries(n: &mut Notification, tried: Vec<crate::model::ProviderTry>) {
    n.tried.extend(tried);
    let excess = n.tried.len().saturating_sub(MAX_TRIES_KEPT);
    n.tried.drain(..excess);
}

fn mark_failed(n: &mut Notification, reason: String, now: DateTime<Utc>) {
    n.status = Status::Failed;
    n.failed_at = Some(now);
    n.next_retry_at = None;
    n.last_error = Some(reason);
}
