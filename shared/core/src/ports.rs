//! The ports: what the services need from the outside world. Adapters implement them with
//! DynamoDB, SQS, SES and SNS; `testing` implements them in memory for unit tests.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::breaker::{BreakerPolicy, BreakerState, Recorded};
use crate::consent::SuppressionKey;
use crate::directory::{CustomerRecord, OrgSettings, Versioned};
use crate::identity::{IdentityStatus, SenderIdentity};
use crate::ids::{CustomerId, NotificationId, OrgId};
use crate::lifecycle_events::LifecycleEvent;
use crate::model::{Channel, DeliveryService, ErrorCode, Notification, Provider};
use crate::projection::{DeadLetter, FeedEntry, LogEntry, StatCount, ViewWrite};
use crate::provider_events::DeliveryChange;
use crate::providers::{OrgProviders, StoredProviders};
use crate::rate_limit::{Admission, ChannelLimit};
use crate::record::IntakeRecord;
use crate::template::org::{OrgTemplate, OrgType, Stored};

/// A failure of the infrastructure behind a port (a timeout, throttling, a bug). The
/// operation may be retried as a whole; the message keeps the cause for the log.
#[derive(Debug, Error)]
#[error("{operation} failed: {source}")]
pub struct PortError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl PortError {
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PortError {
            operation,
            source: source.into(),
        }
    }
}

/// The time, as a port, so tests and the local stack can set the clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands where it is set, or follows the system clock when unset: the local
/// stack's `tick --at TIME` runs the real handlers as if it were TIME.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::Mutex<Option<DateTime<Utc>>>);

impl ManualClock {
    pub fn set(&self, at: Option<DateTime<Utc>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Utc::now)
    }
}

/// Chance, as a port: the backoff's jitter draws from it, so a test can fix it.
pub trait Chance: Send + Sync {
    /// A number drawn uniformly from [0, 1).
    fn fraction(&self) -> f64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemChance;

impl Chance for SystemChance {
    fn fraction(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// What became of a conditional create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New,
    /// A notification with this id existed already (the same fact, delivered again).
    Existing(Box<Notification>),
}

/// What became of a retry command.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    Reset(Box<Notification>),
    NotFound,
    /// Only Failed notifications are retried.
    NotFailed(crate::model::Status),
}

/// What became of a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// This dispatcher now holds the notification, as returned here.
    Claimed(Box<Notification>),
    NotFound,
    /// It exists but may not be claimed now (sent already, held by another, not due).
    NotClaimable(Box<Notification>),
}

/// The notifications table.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Stores the notifications of one event, all or none: each unless one with its id exists
    /// (the same fact, delivered again). Answers for each, in order.
    async fn create_all(&self, notifications: &[Notification]) -> Result<Vec<Created>, PortError>;

    /// Stores a new notification unless one with its id exists.
    async fn create(&self, notification: &Notification) -> Result<Created, PortError> {
        self.create_all(std::slice::from_ref(notification))
            .await?
            .pop()
            .ok_or_else(|| PortError::new("create notification", "the store answered nothing"))
    }

    async fn get(
        &self,
        org: &OrgId,
        id: &NotificationId,
    ) -> Result<Option<Notification>, PortError>;

    /// Atomically moves a claimable notification (see [`Notification::is_claimable`]) to
    /// Sending with this token and lease.
    async fn claim(
        &self,
        org: &OrgId,
        id: &NotificationId,
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<ClaimOutcome, PortError>;

    /// Writes the outcome of a send: status, attempts, provider id, error, timestamps, and
    /// drops the claim. Only if `token` still holds the claim; returns whether it did.
    async fn settle(&self, notification: &Notification, token: &str) -> Result<bool, PortError>;

    /// The retry command: a Failed notification becomes Pending again with a fresh attempt
    /// count (atomically, so two retries of one failure send it once).
    async fn reset_for_retry(
        &self,
        org: &OrgId,
        id: &NotificationId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, PortError>;

    /// Puts a waiting (Pending or Retrying) notification in the sweep's index for `at`.
    async fn park(
        &self,
        org: &OrgId,
        id: &NotificationId,
        at: DateTime<Utc>,
    ) -> Result<(), PortError>;

    /// Records what became of these events (notified, skipped, rejected, directory updated),
    /// with the HTML of their email notifications; a record written again replaces itself.
    async fn record_intakes(&self, records: &[IntakeRecord]) -> Result<(), PortError>;

    /// The HTML alternatives of these email notifications, from their events' intake records
    /// (one read for them all); a notification whose record holds none is left out.
    async fn html_bodies(
        &self,
        wanted: &[HtmlOf],
    ) -> Result<BTreeMap<NotificationId, String>, PortError>;

    async fn get_intake(
        &self,
        org: Option<&OrgId>,
        event_id: &str,
    ) -> Result<Option<IntakeRecord>, PortError>;
}

/// How many of a customer's newest feed entries the unread count looks at: an inbox's badge,
/// counted when asked rather than kept in a counter every new entry would write.
pub const UNREAD_WINDOW: usize = 1000;

/// Which notification's HTML to read, and the event whose record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HtmlOf {
    pub org_id: OrgId,
    pub event_id: String,
    pub notification_id: NotificationId,
}

/// A notification waiting in the sweep's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    pub org_id: OrgId,
    pub notification_id: NotificationId,
    pub sweep_at: DateTime<Utc>,
}

/// An index entry that cannot be read (a key or time that does not parse): it is set aside,
/// never allowed to stop the sweep of every other entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEntry {
    /// The stored key, as stored (ids only).
    pub key: String,
    /// The stored time, as stored.
    pub sweep_at: String,
}

/// One read of a shard: the due entries, and those that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuePage {
    pub due: Vec<DueEntry>,
    pub unreadable: Vec<UnreadableEntry>,
}

impl DuePage {
    pub fn len(&self) -> usize {
        self.due.len() + self.unreadable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The index of notifications waiting for a time (scheduled sends, long backoffs, expired
/// leases), split into shards so that no single partition takes every write.
#[async_trait]
pub trait DueIndex: Send + Sync {
    fn shards(&self) -> u32;

    /// Up to `limit` entries of one shard due at `now`, oldest first.
    async fn due(&self, shard: u32, now: DateTime<Utc>, limit: usize)
    -> Result<DuePage, PortError>;

    /// Takes an enqueued entry out of the index, unless it changed since it was read.
    async fn mark_enqueued(&self, entry: &DueEntry) -> Result<(), PortError>;

    /// Takes an unreadable entry out of the index (marking it for an operator), unless it
    /// changed since it was read.
    async fn set_aside(&self, entry: &UnreadableEntry) -> Result<(), PortError>;
}

/// Whether a guarded write went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Done,
    /// Someone else changed the record since it was read: read again and retry.
    Conflict,
}

/// What dispatch asks of the directory for a batch: these customers, these organizations'
/// settings, and which of these addresses are suppressed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotRequest {
    pub customers: BTreeSet<(OrgId, CustomerId)>,
    pub orgs: BTreeSet<OrgId>,
    pub suppression: BTreeSet<(OrgId, SuppressionKey)>,
}

impl SnapshotRequest {
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty() && self.orgs.is_empty() && self.suppression.is_empty()
    }
}

/// The directory as one read saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub customers: BTreeMap<(OrgId, CustomerId), CustomerRecord>,
    pub orgs: BTreeMap<OrgId, OrgSettings>,
    pub suppressed: BTreeSet<(OrgId, SuppressionKey)>,
}

impl Snapshot {
    /// Adds what another read saw.
    pub fn extend(&mut self, other: Snapshot) {
        self.customers.extend(other.customers);
        self.orgs.extend(other.orgs);
        self.suppressed.extend(other.suppressed);
    }
}

/// Contacts, preferences, organization settings and the suppression list.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Many customers, organizations and suppression keys in one round trip (per 100 keys):
    /// what dispatch needs to check consent for a whole batch.
    async fn snapshot(&self, request: &SnapshotRequest) -> Result<Snapshot, PortError>;

    async fn get_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
    ) -> Result<Option<Versioned<CustomerRecord>>, PortError>;

    /// Writes the record if its stored version is still `expected` (`None`: not stored yet).
    async fn put_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        record: &CustomerRecord,
        expected: Option<u64>,
    ) -> Result<Write, PortError>;

    async fn get_org_settings(
        &self,
        org: &OrgId,
    ) -> Result<Option<Versioned<OrgSettings>>, PortError>;

    async fn put_org_settings(
        &self,
        org: &OrgId,
        settings: &OrgSettings,
        expected: Option<u64>,
    ) -> Result<Write, PortError>;

    /// Which of these keys are on the organization's suppression list.
    async fn suppressed(
        &self,
        org: &OrgId,
        keys: &[SuppressionKey],
    ) -> Result<BTreeSet<SuppressionKey>, PortError>;

    /// Puts an address on the suppression list, with why and when.
    async fn suppress(
        &self,
        org: &OrgId,
        key: &SuppressionKey,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PortError>;

    /// Which organization owns each of these sending identities (those owned by none are absent).
    async fn identity_owners(
        &self,
        identities: &[SenderIdentity],
    ) -> Result<BTreeMap<SenderIdentity, OrgId>, PortError>;

    /// Records `org` as an identity's owner unless another organization owns it already;
    /// answers the owner either way.
    async fn claim_identity(
        &self,
        org: &OrgId,
        identity: &SenderIdentity,
        at: DateTime<Utc>,
    ) -> Result<OrgId, PortError>;
}

/// The body of a dispatch queue message: which notification to dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchMessage {
    pub org_id: OrgId,
    pub notification_id: NotificationId,
}

/// A message and how long the queue should hold it back (at most 15 minutes on SQS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    pub message: DispatchMessage,
    pub delay: Duration,
}

/// The longest delay the dispatch queue can hold a message for.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

#[async_trait]
pub trait DispatchQueue: Send + Sync {
    /// Enqueues all of them, batched; fails if any could not be enqueued.
    async fn enqueue(&self, messages: &[Enqueue]) -> Result<(), PortError>;
}

pub use crate::model::FailureKind;

/// A provider's refusal, typed so dispatch decides retry or dead-letter by matching.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct SendError {
    pub kind: FailureKind,
    /// What went wrong, without addresses or message content.
    pub reason: String,
    /// The provider's code for it, when it gave one.
    pub code: Option<ErrorCode>,
    /// The service that refused (none when no service was reached).
    pub provider: Option<DeliveryService>,
    /// Push only: the devices that accepted it all the same (endpoint id → message id), so
    /// that a retry leaves them out.
    pub push_accepted: BTreeMap<String, String>,
}

impl SendError {
    fn of(kind: FailureKind, reason: impl Into<String>) -> Self {
        SendError {
            kind,
            reason: reason.into(),
            code: None,
            provider: None,
            push_accepted: BTreeMap::new(),
        }
    }

    pub fn soft(reason: impl Into<String>) -> Self {
        SendError::of(FailureKind::Soft, reason)
    }

    pub fn hard(reason: impl Into<String>) -> Self {
        SendError::of(FailureKind::Hard, reason)
    }

    pub fn credentials(reason: impl Into<String>) -> Self {
        SendError::of(FailureKind::Credentials, reason)
    }

    pub fn recipient(reason: impl Into<String>) -> Self {
        SendError::of(FailureKind::Recipient, reason)
    }

    pub fn account(reason: impl Into<String>) -> Self {
        SendError::of(FailureKind::Account, reason)
    }

    /// The provider's code, kept if it is a code (not text).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = ErrorCode::new(code);
        self
    }

    /// The service that refused.
    pub fn via(mut self, provider: DeliveryService) -> Self {
        self.provider = Some(provider);
        self
    }
}

/// The provider's answer to an accepted send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// `None` when the provider accepted the message but its answer could not be read: the
    /// message is sent all the same (asking again would send it twice), and its delivery events
    /// are matched by Herald's own id where the provider echoes it.
    pub provider_message_id: Option<String>,
    /// The service that accepted it.
    pub provider: Option<DeliveryService>,
    /// Push only: the devices that accepted it (endpoint id → message id).
    pub push_accepted: BTreeMap<String, String>,
}

impl Receipt {
    pub fn with_id(id: impl Into<String>) -> Self {
        Receipt {
            provider_message_id: Some(id.into()),
            provider: None,
            push_accepted: BTreeMap::new(),
        }
    }

    pub fn without_id() -> Self {
        Receipt {
            provider_message_id: None,
            provider: None,
            push_accepted: BTreeMap::new(),
        }
    }

    /// The service that accepted it.
    pub fn via(mut self, provider: DeliveryService) -> Self {
        self.provider = Some(provider);
        self
    }
}

/// Sends one notification on one channel through one provider.
#[async_trait]
pub trait ChannelSender: Send + Sync {
    async fn send(&self, notification: &Notification) -> Result<Receipt, SendError>;
}

/// Why a platform refused a push request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PushRefusal {
    /// The platform disabled the endpoint (the app was removed, the token expired): the device
    /// is gone, whatever is tried.
    #[error("the endpoint is disabled")]
    EndpointDisabled,
    /// Throttling, a timeout, a 5xx: try again later.
    #[error("{reason}")]
    Soft {
        reason: String,
        code: Option<String>,
    },
    /// A request the platform cannot take: trying again would fail again.
    #[error("{reason}")]
    Hard {
        reason: String,
        code: Option<String>,
    },
}

/// Mobile push platform endpoints (SNS): one per device and platform application.
#[async_trait]
pub trait PushEndpoints: Send + Sync {
    /// Creates the device's endpoint in the platform application, or finds the one made
    /// before for the same token; answers its ARN.
    async fn create_endpoint(
        &self,
        application_arn: &str,
        token: &str,
    ) -> Result<String, PushRefusal>;

    /// Deletes an endpoint; deleting one that is gone already succeeds.
    async fn delete_endpoint(&self, endpoint_arn: &str) -> Result<(), PortError>;

    /// Publishes one message (SNS `MessageStructure=json`) to one endpoint; answers the
    /// message id when the answer could be read.
    async fn publish(
        &self,
        endpoint_arn: &str,
        message: &str,
    ) -> Result<Option<String>, PushRefusal>;
}

/// SNS platform applications: an organization's FCM or APNS credentials, held by SNS.
#[async_trait]
pub trait PlatformApplications: Send + Sync {
    /// Sets the credentials of the platform application `existing` (SNS
    /// `SetPlatformApplicationAttributes`) when it is one of `platform`, or else creates one
    /// named `name` (`CreatePlatformApplication`); answers its ARN.
    async fn put(
        &self,
        existing: Option<&str>,
        name: &str,
        platform: crate::push::SnsPlatform,
        attributes: &BTreeMap<String, String>,
    ) -> Result<String, PortError>;
}

/// Why a page of the feed could not be read: the caller's cursor, or the infrastructure.
#[derive(Debug, Error)]
pub enum PageError {
    #[error("the cursor is not one this API gave")]
    BadCursor,
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The views table.
#[async_trait]
pub trait Views: Send + Sync {
    /// Applies the writes of a batch; idempotent, so a batch seen twice changes nothing.
    async fn apply(&self, writes: &[ViewWrite]) -> Result<(), PortError>;

    async fn log(&self, org: &OrgId, id: &NotificationId) -> Result<Vec<LogEntry>, PortError>;

    /// Newest first.
    async fn feed(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, PortError>;

    /// The unread entries among the customer's newest [`UNREAD_WINDOW`] (withdrawn ones are
    /// neither shown nor counted).
    async fn unread(&self, org: &OrgId, customer: &CustomerId) -> Result<u64, PortError>;

    /// A page of the feed, newest first, from an opaque cursor; and the next page's cursor.
    async fn feed_page(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<FeedEntry>, Option<String>), PageError>;

    /// Marks an entry read; `false` when it was read already or is not there.
    async fn mark_read(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        created_at: DateTime<Utc>,
        id: &NotificationId,
    ) -> Result<bool, PortError>;

    async fn stats(&self, org: &OrgId, day: NaiveDate) -> Result<Vec<StatCount>, PortError>;

    /// Newest first.
    async fn dead_letters(&self, org: &OrgId, limit: usize) -> Result<Vec<DeadLetter>, PortError>;
}

/// Puts Herald's life-cycle events on its bus (`source: herald`).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes the events, retrying what the bus refuses for a while; answers the indices
    /// (into `events`) of those it still could not publish, for the caller to bring again.
    /// Publishing is at least once: consumers deduplicate on the detail's `event_id`.
    async fn publish(&self, events: &[LifecycleEvent]) -> Result<Vec<usize>, PortError>;
}

/// Where delivery events are matched and recorded.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// The notification a provider's message id belongs to.
    async fn find_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<(OrgId, NotificationId)>, PortError>;

    /// Those of the organization's notifications with these ids that exist, read consistently
    /// (in batches).
    async fn get_many(
        &self,
        org: &OrgId,
        ids: &[NotificationId],
    ) -> Result<Vec<Notification>, PortError>;

    /// Applies the change if the notification is still at the revision it was read at;
    /// `false` when it changed meanwhile (read again and recompute).
    async fn apply_delivery(
        &self,
        n: &Notification,
        change: &DeliveryChange,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError>;

    /// Which of these provider event ids were handled before (in batches).
    async fn seen(
        &self,
        org: &OrgId,
        provider: Provider,
        event_ids: &[String],
    ) -> Result<HashSet<String>, PortError>;

    /// Remembers these provider event ids as handled (in batches).
    async fn mark_seen(
        &self,
        org: &OrgId,
        provider: Provider,
        event_ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), PortError>;
}

/// Fetches SNS signing certificates (cached) and confirms subscriptions: the port to SNS's
/// HTTPS endpoints.
#[async_trait]
pub trait SnsEndpoints: Send + Sync {
    /// The PEM certificate at a trusted URL.
    async fn certificate(&self, url: &str) -> Result<Vec<u8>, PortError>;

    /// Visits a subscription's SubscribeURL.
    async fn confirm_subscription(&self, subscribe_url: &str) -> Result<(), PortError>;
}

/// Where provider settings and credentials are kept (Secrets Manager).
///
/// Reads may be served from a cache for a while ([`ProviderSettings::get`]); whoever finds the
/// cached settings wanting (a signature that does not verify, credentials the provider
/// refuses, nothing configured) asks for [`ProviderSettings::refresh`] before concluding.
#[async_trait]
pub trait ProviderSettings: Send + Sync {
    /// The organization's settings, possibly from a cache.
    async fn get(&self, org: &OrgId) -> Result<OrgProviders, PortError>;

    /// The settings read again, unless they were read less than [`REFRESH_INTERVAL`] ago (then
    /// that copy): so that forged requests cannot turn into a flood of reads.
    async fn refresh(&self, org: &OrgId) -> Result<OrgProviders, PortError>;

    /// The settings as stored now, never from a cache, with their version.
    async fn read(&self, org: &OrgId) -> Result<StoredProviders, PortError>;

    /// Writes the settings if the stored version is still `expected` (`None`: nothing stored
    /// yet); [`Write::Conflict`] when someone wrote meanwhile.
    async fn write(
        &self,
        org: &OrgId,
        providers: &OrgProviders,
        expected: Option<&str>,
    ) -> Result<Write, PortError>;
}

/// The circuit breakers' shared state, one per organization and provider
/// ([`crate::breaker`]). A breaker that never tripped has nothing stored.
#[async_trait]
pub trait Breakers: Send + Sync {
    /// The stored state of these breakers (absent: closed, no failures), read together.
    async fn read(
        &self,
        keys: &[(OrgId, DeliveryService)],
    ) -> Result<BTreeMap<(OrgId, DeliveryService), BreakerState>, PortError>;

    /// Records a provider-level failure as [`crate::breaker::after_failure`] applies it,
    /// atomically against other dispatchers' writes.
    async fn failure(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        now: DateTime<Utc>,
        policy: &BreakerPolicy,
    ) -> Result<Recorded, PortError>;

    /// Takes a half-open breaker's probe until `lease_until`: the state with the lease, or
    /// `None` when the breaker is not half-open or another probe holds it.
    async fn take_probe(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<BreakerState>, PortError>;

    /// Closes the breaker and forgets its failures.
    async fn close(&self, org: &OrgId, provider: DeliveryService) -> Result<(), PortError>;
}

/// The rate limits' buckets, one per organization and channel ([`crate::rate_limit`]), shared
/// by every dispatcher.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes up to `want` messages from the bucket at `now` under `limit`, counted as
    /// [`crate::rate_limit::take`] counts them, atomically against other dispatchers' takes.
    async fn take(
        &self,
        org: &OrgId,
        channel: Channel,
        want: u32,
        limit: ChannelLimit,
        now: DateTime<Utc>,
    ) -> Result<Admission, PortError>;
}

/// Where measures go ([`crate::telemetry`]): CloudWatch's embedded metric format in AWS.
/// Writing them never fails the work they measure.
pub trait Meter: Send + Sync {
    fn record(&self, measures: Vec<crate::telemetry::Measure>);
}

/// Measures nothing.
pub struct NoMeter;

impl Meter for NoMeter {
    fn record(&self, _: Vec<crate::telemetry::Measure>) {}
}

/// The email provider's sending identities (SES).
#[async_trait]
pub trait SendingIdentities: Send + Sync {
    /// Creates the identity with the provider (or finds it there) and says where it stands.
    async fn register(&self, identity: &SenderIdentity) -> Result<IdentityStatus, PortError>;

    /// Where the identity stands; `None` when the provider does not know it.
    async fn status(&self, identity: &SenderIdentity) -> Result<Option<IdentityStatus>, PortError>;
}

/// An organization's own templates and types ([`crate::template::org`]), each change a new
/// version written only over the version it replaces.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// The current version of everything the organization stored (templates gone back to the
    /// built-in one included), in one query.
    async fn stored(&self, org: &OrgId, consistent: bool) -> Result<Stored, PortError>;

    /// Writes `template` (its `version` the new one) if the current version is `replaces`
    /// (none: there is no template there yet), and keeps it in the template's history.
    async fn put_template(
        &self,
        org: &OrgId,
        template: &OrgTemplate,
        replaces: Option<u64>,
    ) -> Result<Write, PortError>;

    /// Writes a type the organization defines, as `put_template` does a template.
    async fn put_type(
        &self,
        org: &OrgId,
        org_type: &OrgType,
        replaces: Option<u64>,
    ) -> Result<Write, PortError>;
}

/// The open WebSocket connections, by the feed they listen to.
#[async_trait]
pub trait Connections: Send + Sync {
    /// Records a connection (`$connect`); recording it again changes nothing.
    async fn add(&self, connection: &crate::realtime::Connection) -> Result<(), PortError>;

    /// Forgets a connection (`$disconnect`, or found gone); forgetting it twice is fine.
    async fn remove(
        &self,
        listener: &crate::realtime::Listener,
        id: &crate::realtime::ConnectionId,
    ) -> Result<(), PortError>;

    /// The connections listening to each of these customers' feeds, read together (a stream
    /// batch's customers in one read); a customer with none is left out.
    async fn listening(
        &self,
        listeners: &[crate::realtime::Listener],
    ) -> Result<
        std::collections::BTreeMap<crate::realtime::Listener, Vec<crate::realtime::ConnectionId>>,
        PortError,
    >;
}

/// What became of a message posted to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Delivered,
    /// The connection is closed (API Gateway's `GoneException`).
    Gone,
}

/// Posts messages to open WebSocket connections (API Gateway's `PostToConnection`).
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn post(
        &self,
        id: &crate::realtime::ConnectionId,
        message: &[u8],
    ) -> Result<Posted, PortError>;
}
