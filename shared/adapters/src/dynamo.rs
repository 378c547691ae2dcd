//! The notifications and directory tables on DynamoDB.
//!
//! Keys carry the organization first (`N#org#id`), so no read can cross organizations and
//! items spread over partitions. Conditional writes carry the invariants: a notification is
//! created once, claimed by one dispatcher at a time, and settled only by its claimer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use herald_core::consent::SuppressionKey;
use herald_core::directory::{CustomerRecord, OrgSettings, Versioned};
use herald_core::identity::SenderIdentity;
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::{Cause, Notification, Provider, Status};
use herald_core::ports::DeliveryStore;
use herald_core::ports::{
    ClaimOutcome, Created, Directory, DueEntry, DueIndex, DuePage, NotificationStore, PortError,
    RetryOutcome, Snapshot, SnapshotRequest, UnreadableEntry, Write,
};
use herald_core::provider_events::DeliveryChange;
use herald_core::record::IntakeRecord;
use herald_core::time;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::{Backoff, Round};
use crate::errors::aws;

type Item = HashMap<String, AttributeValue>;

/// The largest number of keys one BatchGetItem may ask for.
const BATCH_GET_LIMIT: usize = 100;
/// The largest number of writes one BatchWriteItem may carry.
const BATCH_WRITE_LIMIT: usize = 25;
/// How many batch requests one call sends at once.
const BATCH_CONCURRENCY: usize = 8;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn to_item<T: Serialize>(operation: &'static str, value: &T) -> Result<Item, PortError> {
    serde_dynamo::to_item(value).map_err(|e| PortError::new(operation, e))
}

fn from_item<T: DeserializeOwned>(operation: &'static str, item: Item) -> Result<T, PortError> {
    serde_dynamo::from_item(item).map_err(|e| PortError::new(operation, e))
}

pub fn notification_key(org: &OrgId, id: &NotificationId) -> String {
    format!("N#{org}#{id}")
}

pub fn intake_key(org: Option<&OrgId>, event_id: &str) -> String {
    format!("E#{}#{event_id}", org.map_or("-", OrgId::as_str))
}

/// Shards of the sweep's index. Fixed: writers and the sweep must agree, and a million
/// waiting notifications spread over 32 partitions keep each well under its write limit.
pub const DUE_SHARDS: u32 = 32;
pub const DUE_INDEX: &str = "due";

/// The shard of a notification: a stable hash (FNV-1a) of its id.
pub fn due_shard(id: &NotificationId) -> String {
    let hash = id.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{:02}", hash % DUE_SHARDS)
}

/// The organization and id from a notification's key (`N#org#id`).
fn parse_notification_key(pk: &str) -> Option<(OrgId, NotificationId)> {
    let rest = pk.strip_prefix("N#")?;
    let (org, id) = rest.split_once('#')?;
    Some((OrgId::parse(org).ok()?, NotificationId::parse(id).ok()?))
}

fn customer_key(org: &OrgId, customer: &CustomerId) -> String {
    format!("C#{org}#{customer}")
}

fn org_key(org: &OrgId) -> String {
    format!("O#{org}")
}

/// A sending identity's owner: one item per identity, across organizations, since an identity
/// is the same in the shared SES account whoever registered it.
fn identity_key(identity: &SenderIdentity) -> String {
    format!("I#{identity}")
}

fn suppression_key(org: &OrgId, key: &SuppressionKey) -> String {
    format!("S#{org}#{}#{}", key.channel, key.address)
}

/// Reads many keys of one table with BatchGetItem, in chunks, asking again for unprocessed
/// keys with backoff; keys still unprocessed after the last attempt fail the read.
pub(crate) async fn batch_get(
    client: &Client,
    backoff: &Backoff,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, PortError> {
    const OP: &str = "dynamodb BatchGetItem";
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH_GET_LIMIT) {
        let items = backoff
            .until_done(OP, chunk.to_vec(), |pending| async move {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| PortError::new(OP, e))?;
                let out = client
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|e| aws(OP, e))?;
                let done = out
                    .responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default();
                let left = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                Ok(Round::new(done, left))
            })
            .await?;
        found.extend(items);
    }
    Ok(found)
}

/// `#status IN (…)` over these statuses, with its values under `:{prefix}N`: a condition derived
/// from the life cycle ([`herald_core::model::TRANSITIONS`]), so the table and the store cannot
/// drift apart. An empty list admits nothing.
fn status_in(statuses: &[Status], prefix: &str) -> (String, Vec<(String, AttributeValue)>) {
    if statuses.is_empty() {
        return (
            "attribute_not_exists(pk) AND attribute_exists(pk)".into(),
            Vec::new(),
        );
    }
    let values: Vec<(String, AttributeValue)> = statuses
        .iter()
        .enumerate()
        .map(|(i, st)| (format!(":{prefix}{i}"), s(st.as_str())))
        .collect();
    let names: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    (format!("#status IN ({})", names.join(", ")), values)
}

/// The statuses of a notification that waits for its time.
fn waiting_statuses() -> Vec<Status> {
    Status::ALL
        .into_iter()
        .filter(|st| st.is_waiting())
        .collect()
}

/// Reads many keys (`pk` only) of one table; see [`batch_get`].
async fn batch_get_pks(
    client: &Client,
    backoff: &Backoff,
    table: &str,
    keys: Vec<String>,
    consistent: bool,
) -> Result<Vec<Item>, PortError> {
    let keys = keys
        .into_iter()
        .map(|k| HashMap::from([("pk".to_string(), s(k))]))
        .collect();
    batch_get(client, backoff, table, keys, consistent).await
}

/// Writes requests to one table with BatchWriteItem, in chunks (some at once), sending again
/// unprocessed ones with backoff; requests still unprocessed after the last attempt fail the
/// write.
pub(crate) async fn batch_write(
    client: &Client,
    backoff: &Backoff,
    operation: &'static str,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), PortError> {
    futures::stream::iter(requests.chunks(BATCH_WRITE_LIMIT).map(<[_]>::to_vec))
        .map(|chunk| {
            backoff.until_done(operation, chunk, |pending| async move {
                let out = client
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .map_err(|e| aws(operation, e))?;
                let left = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table))
                    .unwrap_or_default();
                Ok(Round::<_, ()>::new(Vec::new(), left))
            })
        })
        .buffer_unordered(BATCH_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Sends a conditional update: `true` when it applied, `false` when its condition did not
/// hold (the item changed meanwhile, or is not in the expected state).
pub(crate) async fn guarded(
    operation: &'static str,
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> Result<bool, PortError> {
    match request.send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(aws(operation, e)),
    }
}

fn pk_of(item: &Item) -> Option<&str> {
    item.get("pk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The notifications table.
#[derive(Clone, Debug)]
pub struct DynamoNotificationStore {
    client: Client,
    table: String,
    backoff: Backoff,
}

impl DynamoNotificationStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoNotificationStore {
            client,
            table: table.into(),
            backoff: Backoff::default(),
        }
    }

    /// How batch calls try again what DynamoDB left unprocessed.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        DynamoNotificationStore { backoff, ..self }
    }

    fn notification_item(n: &Notification) -> Result<Item, PortError> {
        let mut item = to_item("serialize notification", n)?;
        item.insert("pk".into(), s(notification_key(&n.org_id, &n.id)));
        item.insert("kind".into(), s("notification"));
        if n.sweep_at.is_some() {
            item.insert("due_shard".into(), s(due_shard(&n.id)));
        }
        Ok(item)
    }

    fn parse_notification(item: Item) -> Result<Notification, PortError> {
        from_item("deserialize notification", item)
    }

    /// Runs a conditional update that returns the updated notification; when the condition
    /// fails, the notification as it stands instead (`None` if there is none).
    async fn conditional_update(
        &self,
        operation: &'static str,
        request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        org: &OrgId,
        id: &NotificationId,
    ) -> Result<Result<Notification, Option<Notification>>, PortError> {
        match request.return_values(ReturnValue::AllNew).send().await {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| PortError::new(operation, "no attributes returned"))?;
                Ok(Ok(Self::parse_notification(item)?))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Err(self.get(org, id).await?))
            }
            Err(e) => Err(aws(operation, e)),
        }
    }

    /// One notification: a conditional put.
    async fn create_one(&self, n: &Notification) -> Result<Created, PortError> {
        const OP: &str = "dynamodb PutItem notification";
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::notification_item(n)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let existing = match e.into_service_error() {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let existing = match existing {
                    Some(item) => Self::parse_notification(item)?,
                    // an emulator may not return the old item; read it
                    None => self.get(&n.org_id, &n.id).await?.ok_or_else(|| {
                        PortError::new(OP, "conditional check failed but no item exists")
                    })?,
                };
                Ok(Created::Existing(Box::new(existing)))
            }
            Err(e) => Err(aws(OP, e)),
        }
    }

    /// Several notifications of one event: one transaction of conditional puts, so either all
    /// the new ones are stored or none. Those that exist already (the same fact again) are
    /// left out, and the rest written again together.
    async fn create_together(
        &self,
        notifications: &[Notification],
    ) -> Result<Vec<Created>, PortError> {
        const OP: &str = "dynamodb TransactWriteItems notifications";
        let mut existing: HashMap<String, Notification> = HashMap::new();
        // Each round either writes everything left or learns that one more exists.
        for _ in 0..=notifications.len() {
            let new: Vec<&Notification> = notifications
                .iter()
                .filter(|n| !existing.contains_key(n.id.as_str()))
                .collect();
            if new.is_empty() {
                break;
            }
            let mut request = self.client.transact_write_items();
            for n in &new {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(Self::notification_item(n)?))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(|e| PortError::new(OP, e))?;
                request = request.transact_items(TransactWriteItem::builder().put(put).build());
            }
            match request.send().await {
                Ok(_) => {
                    return Ok(notifications
                        .iter()
                        .map(|n| match existing.remove(n.id.as_str()) {
                            Some(e) => Created::Existing(Box::new(e)),
                            None => Created::New,
                        })
                        .collect());
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_transaction_canceled_exception()) =>
                {
                    // which ones exist: read them (the cancellation reasons do not say on every
                    // implementation), and write the others again
                    let keys = new
                        .iter()
                        .map(|n| notification_key(&n.org_id, &n.id))
                        .collect();
                    let found =
                        batch_get_pks(&self.client, &self.backoff, &self.table, keys, true).await?;
                    if found.is_empty() {
                        return Err(aws(OP, e));
                    }
                    for item in found {
                        let n = Self::parse_notification(item)?;
                        existing.insert(n.id.as_str().to_string(), n);
                    }
                }
                Err(e) => return Err(aws(OP, e)),
            }
        }
        Ok(notifications
            .iter()
            .map(|n| match existing.remove(n.id.as_str()) {
                Some(e) => Created::Existing(Box::new(e)),
                None => Created::New,
            })
            .collect())
    }
}

#[async_trait]
impl NotificationStore for DynamoNotificationStore {
    async fn create_all(&self, notifications: &[Notification]) -> Result<Vec<Created>, PortError> {
        match notifications {
            [] => Ok(Vec::new()),
            [n] => Ok(vec![self.create_one(n).await?]),
            _ => self.create_together(notifications).await,
        }
    }

    async fn get(
        &self,
        org: &OrgId,
        id: &NotificationId,
    ) -> Result<Option<Notification>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(notification_key(org, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws("dynamodb GetItem notification", e))?;
        out.item.map(Self::parse_notification).transpose()
    }

    async fn claim(
        &self,
        org: &OrgId,
        id: &NotificationId,
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<ClaimOutcome, PortError> {
        const OP: &str = "dynamodb UpdateItem claim";
        let now_s = time::format(&now);
        let claim = HashMap::from([
            ("token".to_string(), s(token)),
            ("until".to_string(), s(time::format(&lease_until))),
        ]);
        // The same rule as Notification::is_claimable, enforced atomically: the waiting
        // statuses the life cycle lets a claim take, or a held one whose lease ran out.
        let (waiting, waiting_values) = status_in(&waiting_statuses(), "w");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notification_key(org, id)))
            // the lease's end goes into the sweep's index: if this dispatcher dies, the sweep
            // hands the notification to another once the lease is over
            .update_expression(
                "SET #status = :sending, #claim = :claim, updated_at = :now, \
                 sweep_at = :until, due_shard = :shard, revision = if_not_exists(revision, :zero) + :one",
            )
            .condition_expression(format!(
                "attribute_exists(pk) \
                 AND ({waiting} \
                      OR (#status = :sending AND (attribute_not_exists(#claim) OR #claim.#until <= :now))) \
                 AND (attribute_not_exists(scheduled_for) OR scheduled_for <= :now) \
                 AND (attribute_not_exists(next_retry_at) OR next_retry_at <= :now)"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#claim", "claim")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":sending", s(Status::Sending.as_str()))
            .expression_attribute_values(":claim", AttributeValue::M(claim))
            .expression_attribute_values(":until", s(time::format(&lease_until)))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":shard", s(due_shard(id)))
            .expression_attribute_values(":now", s(now_s));
        for (k, v) in waiting_values {
            request = request.expression_attribute_values(k, v);
        }
        Ok(match self.conditional_update(OP, request, org, id).await? {
            Ok(n) => ClaimOutcome::Claimed(Box::new(n)),
            Err(None) => ClaimOutcome::NotFound,
            Err(Some(n)) => ClaimOutcome::NotClaimable(Box::new(n)),
        })
    }

    async fn settle(&self, n: &Notification, token: &str) -> Result<bool, PortError> {
        const OP: &str = "dynamodb UpdateItem settle";
        let mut sets = vec![
            "#status = :status",
            "attempts = :attempts",
            "updated_at = :updated_at",
            "revision = if_not_exists(revision, :zero) + :one",
        ];
        let mut removes = vec!["#claim"];
        let mut values: Vec<(&str, AttributeValue)> = vec![
            (":status", s(n.status.as_str())),
            (":attempts", AttributeValue::N(n.attempts.to_string())),
            (":updated_at", s(time::format(&n.updated_at))),
            (":token", s(token)),
            (":zero", AttributeValue::N("0".into())),
            (":one", AttributeValue::N("1".into())),
        ];
        let optional = [
            (
                "provider_message_id",
                ":provider_message_id",
                n.provider_message_id.clone(),
            ),
            ("last_error", ":last_error", n.last_error.clone()),
            ("note", ":note", n.note.clone()),
            (
                "scheduled_for",
                ":scheduled_for",
                n.scheduled_for.as_ref().map(time::format),
            ),
            ("sent_at", ":sent_at", n.sent_at.as_ref().map(time::format)),
            (
                "failed_at",
                ":failed_at",
                n.failed_at.as_ref().map(time::format),
            ),
            (
                "next_retry_at",
                ":next_retry_at",
                n.next_retry_at.as_ref().map(time::format),
            ),
            // the dead-letters index is sparse: only failed notifications carry dl_org
            (
                "dl_org",
                ":dl_org",
                (n.status == Status::Failed).then(|| n.org_id.to_string()),
            ),
            // so is the sweep's: only notifications waiting for a time carry due_shard
            (
                "sweep_at",
                ":sweep_at",
                n.sweep_at.as_ref().map(time::format),
            ),
            (
                "due_shard",
                ":due_shard",
                n.sweep_at.map(|_| due_shard(&n.id)),
            ),
        ];
        let mut set_clauses: Vec<String> = Vec::new();
        for (attr, placeholder, value) in optional {
            match value {
                Some(v) => {
                    set_clauses.push(format!("{attr} = {placeholder}"));
                    values.push((placeholder, s(v)));
                }
                None => removes.push(attr),
            }
        }
        sets.extend(set_clauses.iter().map(String::as_str));
        // dispatch sends to the recipient's address as it stands then: keep the one it used
        sets.push("address = :address");
        values.push((
            ":address",
            serde_dynamo::to_attribute_value(&n.address).map_err(|e| PortError::new(OP, e))?,
        ));
        let expression = format!("SET {} REMOVE {}", sets.join(", "), removes.join(", "));
        // only to a status the life cycle lets the claimer record
        let (settled_from, from_values) =
            status_in(&Status::sources(n.status, Cause::Settle), "from");
        values.extend(from_values.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notification_key(&n.org_id, &n.id)))
            .update_expression(expression)
            .condition_expression(format!("#claim.#token = :token AND {settled_from}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#claim", "claim")
            .expression_attribute_names("#token", "token");
        for (placeholder, value) in values {
            request = request.expression_attribute_values(placeholder, value);
        }
        guarded(OP, request).await
    }

    async fn reset_for_retry(
        &self,
        org: &OrgId,
        id: &NotificationId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, PortError> {
        const OP: &str = "dynamodb UpdateItem retry";
        let (revivable, revivable_values) = status_in(
            &Status::sources(Status::Pending, Cause::RetryCommand),
            "from",
        );
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notification_key(org, id)))
            .update_expression(
                "SET #status = :pending, attempts = :zero, updated_at = :now, \
                 revision = if_not_exists(revision, :zero) + :one \
                 REMOVE last_error, failed_at, next_retry_at, dl_org, sweep_at, due_shard",
            )
            .condition_expression(revivable)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(Status::Pending.as_str()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", s(time::format(&now)));
        for (k, v) in revivable_values {
            request = request.expression_attribute_values(k, v);
        }
        Ok(match self.conditional_update(OP, request, org, id).await? {
            Ok(n) => RetryOutcome::Reset(Box::new(n)),
            Err(None) => RetryOutcome::NotFound,
            Err(Some(n)) => RetryOutcome::NotFailed(n.status),
        })
    }

    async fn park(
        &self,
        org: &OrgId,
        id: &NotificationId,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let (waiting, waiting_values) = status_in(&waiting_statuses(), "w");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notification_key(org, id)))
            .update_expression("SET sweep_at = :at, due_shard = :shard")
            .condition_expression(waiting)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":at", s(time::format(&at)))
            .expression_attribute_values(":shard", s(due_shard(id)));
        for (k, v) in waiting_values {
            request = request.expression_attribute_values(k, v);
        }
        // no longer waiting: nothing to park
        guarded("dynamodb UpdateItem park", request).await?;
        Ok(())
    }

    async fn record_intake(&self, record: &IntakeRecord) -> Result<(), PortError> {
        let mut item = to_item("serialize intake record", record)?;
        item.insert(
            "pk".into(),
            s(intake_key(record.org_id.as_ref(), &record.event_id)),
        );
        item.insert("kind".into(), s("intake"));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| aws("dynamodb PutItem intake", e))?;
        Ok(())
    }

    async fn get_intake(
        &self,
        org: Option<&OrgId>,
        event_id: &str,
    ) -> Result<Option<IntakeRecord>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(intake_key(org, event_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws("dynamodb GetItem intake", e))?;
        out.item
            .map(|i| from_item("deserialize intake record", i))
            .transpose()
    }
}

#[async_trait]
impl DueIndex for DynamoNotificationStore {
    fn shards(&self) -> u32 {
        DUE_SHARDS
    }

    async fn due(
        &self,
        shard: u32,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<DuePage, PortError> {
        const OP: &str = "dynamodb Query due";
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_shard = :shard AND sweep_at <= :now")
            .expression_attribute_values(":shard", s(format!("{shard:02}")))
            .expression_attribute_values(":now", s(time::format(&now)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| aws(OP, e))?;
        let mut page = DuePage::default();
        for item in out.items.unwrap_or_default() {
            let raw_at = item
                .get("sweep_at")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let key = pk_of(&item).and_then(parse_notification_key);
            let at = DateTime::parse_from_rfc3339(&raw_at).ok();
            match (key, at) {
                (Some((org_id, notification_id)), Some(at)) => page.due.push(DueEntry {
                    org_id,
                    notification_id,
                    sweep_at: at.with_timezone(&Utc),
                }),
                _ => page.unreadable.push(UnreadableEntry {
                    key: pk_of(&item).unwrap_or_default().to_string(),
                    sweep_at: raw_at,
                }),
            }
        }
        Ok(page)
    }

    async fn set_aside(&self, entry: &UnreadableEntry) -> Result<(), PortError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(entry.key.clone()))
            .update_expression("SET sweep_error = :why REMOVE sweep_at, due_shard")
            .condition_expression("sweep_at = :seen")
            .expression_attribute_values(":seen", s(entry.sweep_at.clone()))
            .expression_attribute_values(":why", s("its time could not be read; set aside"));
        guarded("dynamodb UpdateItem set aside", request).await?;
        Ok(())
    }

    async fn mark_enqueued(&self, entry: &DueEntry) -> Result<(), PortError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                "pk",
                s(notification_key(&entry.org_id, &entry.notification_id)),
            )
            .update_expression("REMOVE sweep_at, due_shard")
            .condition_expression("sweep_at = :seen")
            .expression_attribute_values(":seen", s(time::format(&entry.sweep_at)));
        // changed since it was read: it is someone else's now (or due later)
        guarded("dynamodb UpdateItem mark enqueued", request).await?;
        Ok(())
    }
}

/// How long a webhook event's id is remembered for deduplication (providers retry for hours,
/// at most a few days).
const WEBHOOK_MEMORY_DAYS: i64 = 7;
pub const PROVIDER_MESSAGE_INDEX: &str = "provider_message";

#[async_trait]
impl DeliveryStore for DynamoNotificationStore {
    async fn find_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<(OrgId, NotificationId)>, PortError> {
        const OP: &str = "dynamodb Query provider message";
        if provider_message_id.is_empty() {
            return Ok(None);
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PROVIDER_MESSAGE_INDEX)
            .key_condition_expression("provider_message_id = :id")
            .expression_attribute_values(":id", s(provider_message_id))
            .limit(1)
            .send()
            .await
            .map_err(|e| aws(OP, e))?;
        Ok(out
            .items
            .unwrap_or_default()
            .first()
            .and_then(pk_of)
            .and_then(parse_notification_key))
    }

    async fn apply_delivery(
        &self,
        n: &Notification,
        change: &DeliveryChange,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        const OP: &str = "dynamodb UpdateItem delivery";
        let mut sets = vec![
            "updated_at = :at".to_string(),
            "revision = if_not_exists(revision, :zero) + :one".to_string(),
        ];
        let mut values: Vec<(&str, AttributeValue)> = vec![
            (":at", s(time::format(&at))),
            (":zero", AttributeValue::N("0".into())),
            (":one", AttributeValue::N("1".into())),
            (":revision", AttributeValue::N(n.revision.to_string())),
        ];
        if let Some(status) = change.status {
            sets.push("#status = :status".into());
            values.push((":status", s(status.as_str())));
            if let Some(reason) = &change.reason {
                sets.push("last_error = :reason".into());
                values.push((":reason", s(reason.clone())));
            }
            if matches!(status, Status::Failed | Status::Bounced) {
                sets.push("failed_at = :at".into());
            }
            if status == Status::Failed {
                sets.push("dl_org = :org".into());
                values.push((":org", s(n.org_id.to_string())));
            }
        }
        for (flag, attr) in [
            (change.opened, "opened_at"),
            (change.clicked, "clicked_at"),
            (change.complained, "complained_at"),
        ] {
            if flag {
                sets.push(format!("{attr} = if_not_exists({attr}, :at)"));
            }
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notification_key(&n.org_id, &n.id)))
            .update_expression(format!("SET {}", sets.join(", ")))
            // optimistic: only if nothing changed since it was read
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(revision) OR revision = :revision)",
            );
        let mut from_values = Vec::new();
        if let Some(to) = change.status {
            // and only along the life cycle: a provider's report never moves it back
            let (reported_from, v) = status_in(&Status::sources(to, Cause::ProviderEvent), "from");
            from_values = v;
            request = request
                .condition_expression(format!(
                    "attribute_exists(pk) AND (attribute_not_exists(revision) OR revision = :revision) AND {reported_from}"
                ))
                .expression_attribute_names("#status", "status");
        }
        for (k, v) in values {
            request = request.expression_attribute_values(k, v);
        }
        for (k, v) in from_values {
            request = request.expression_attribute_values(k, v);
        }
        guarded(OP, request).await
    }

    async fn get_many(
        &self,
        org: &OrgId,
        ids: &[NotificationId],
    ) -> Result<Vec<Notification>, PortError> {
        let keys: Vec<String> = ids.iter().map(|id| notification_key(org, id)).collect();
        let chunks: Vec<Vec<String>> = keys.chunks(BATCH_GET_LIMIT).map(<[_]>::to_vec).collect();
        let items: Vec<Vec<Item>> = futures::stream::iter(chunks)
            .map(|chunk| batch_get_pks(&self.client, &self.backoff, &self.table, chunk, true))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await?;
        items
            .into_iter()
            .flatten()
            .map(Self::parse_notification)
            .collect()
    }

    async fn seen(
        &self,
        org: &OrgId,
        provider: Provider,
        event_ids: &[String],
    ) -> Result<HashSet<String>, PortError> {
        let by_key: HashMap<String, &String> = event_ids
            .iter()
            .map(|id| (webhook_key(org, provider, id), id))
            .collect();
        let keys: Vec<String> = by_key.keys().cloned().collect();
        let chunks: Vec<Vec<String>> = keys.chunks(BATCH_GET_LIMIT).map(<[_]>::to_vec).collect();
        // eventually consistent: a marker written moments ago may be missed, which only
        // applies an event twice, and applying is idempotent
        let items: Vec<Vec<Item>> = futures::stream::iter(chunks)
            .map(|chunk| batch_get_pks(&self.client, &self.backoff, &self.table, chunk, false))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(items
            .iter()
            .flatten()
            .filter_map(|item| pk_of(item).and_then(|pk| by_key.get(pk)))
            .map(|id| (*id).clone())
            .collect())
    }

    async fn mark_seen(
        &self,
        org: &OrgId,
        provider: Provider,
        event_ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        const OP: &str = "dynamodb BatchWriteItem webhook";
        let expires = (at + chrono::Duration::days(WEBHOOK_MEMORY_DAYS))
            .timestamp()
            .to_string();
        let keys: BTreeSet<String> = event_ids
            .iter()
            .map(|id| webhook_key(org, provider, id))
            .collect();
        let requests: Vec<WriteRequest> = keys
            .into_iter()
            .map(|pk| {
                PutRequest::builder()
                    .item("pk", s(pk))
                    .item("kind", s("webhook"))
                    .item("expires_at", AttributeValue::N(expires.clone()))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<_, _>>()
            .map_err(|e| PortError::new(OP, e))?;
        batch_write(&self.client, &self.backoff, OP, &self.table, requests).await?;
        Ok(())
    }
}

fn webhook_key(org: &OrgId, provider: Provider, event_id: &str) -> String {
    format!("W#{org}#{}#{event_id}", provider.as_str())
}

/// The directory table: customers, organization settings, the suppression list.
#[derive(Clone, Debug)]
pub struct DynamoDirectory {
    client: Client,
    table: String,
    backoff: Backoff,
}

impl DynamoDirectory {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDirectory {
            client,
            table: table.into(),
            backoff: Backoff::default(),
        }
    }

    /// How batch calls try again what DynamoDB left unprocessed.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        DynamoDirectory { backoff, ..self }
    }

    /// The stored items of these things, each found by the key `key_of` gives it, in one
    /// BatchGetItem (per 100 keys); things without an item are left out.
    async fn get_keyed<'a, K>(
        &self,
        things: &'a [K],
        key_of: impl Fn(&K) -> String,
        consistent: bool,
    ) -> Result<Vec<(&'a K, Item)>, PortError> {
        let by_pk: HashMap<String, &K> = things.iter().map(|k| (key_of(k), k)).collect();
        let found = batch_get_pks(
            &self.client,
            &self.backoff,
            &self.table,
            by_pk.keys().cloned().collect(),
            consistent,
        )
        .await?;
        Ok(found
            .into_iter()
            .filter_map(|item| {
                let thing = pk_of(&item).and_then(|pk| by_pk.get(pk).copied())?;
                Some((thing, item))
            })
            .collect())
    }

    async fn get_versioned<T: DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<Versioned<T>>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws("dynamodb GetItem directory", e))?;
        out.item.map(parse_versioned).transpose()
    }

    async fn put_versioned<T: Serialize>(
        &self,
        key: String,
        value: &T,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        const OP: &str = "dynamodb PutItem directory";
        let record = serde_dynamo::to_attribute_value(value).map_err(|e| PortError::new(OP, e))?;
        let next = expected.map_or(1, |v| v + 1);
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("record", record)
            .item("version", AttributeValue::N(next.to_string()));
        request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(Write::Done),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Write::Conflict)
            }
            Err(e) => Err(aws(OP, e)),
        }
    }
}

fn parse_versioned<T: DeserializeOwned>(mut item: Item) -> Result<Versioned<T>, PortError> {
    const OP: &str = "deserialize directory record";
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| PortError::new(OP, "version missing"))?;
    let record = item
        .remove("record")
        .ok_or_else(|| PortError::new(OP, "record missing"))?;
    let value = serde_dynamo::from_attribute_value(record).map_err(|e| PortError::new(OP, e))?;
    Ok(Versioned { value, version })
}

#[async_trait]
impl Directory for DynamoDirectory {
    async fn snapshot(&self, request: &SnapshotRequest) -> Result<Snapshot, PortError> {
        let customers: HashMap<String, &(OrgId, CustomerId)> = request
            .customers
            .iter()
            .map(|k| (customer_key(&k.0, &k.1), k))
            .collect();
        let orgs: HashMap<String, &OrgId> = request.orgs.iter().map(|o| (org_key(o), o)).collect();
        let suppressions: HashMap<String, &(OrgId, SuppressionKey)> = request
            .suppression
            .iter()
            .map(|k| (suppression_key(&k.0, &k.1), k))
            .collect();
        let keys: Vec<String> = customers
            .keys()
            .chain(orgs.keys())
            .chain(suppressions.keys())
            .cloned()
            .collect();
        let mut snapshot = Snapshot::default();
        // consent is read strongly: an opt-out a moment ago counts
        for item in batch_get_pks(&self.client, &self.backoff, &self.table, keys, true).await? {
            let Some(pk) = pk_of(&item).map(str::to_owned) else {
                continue;
            };
            if let Some(k) = customers.get(&pk) {
                let record = parse_versioned::<CustomerRecord>(item)?.value;
                snapshot.customers.insert((*k).clone(), record);
            } else if let Some(o) = orgs.get(&pk) {
                let settings = parse_versioned::<OrgSettings>(item)?.value;
                snapshot.orgs.insert((*o).clone(), settings);
            } else if let Some(k) = suppressions.get(&pk) {
                snapshot.suppressed.insert((*k).clone());
            }
        }
        Ok(snapshot)
    }

    async fn load(
        &self,
        org: &OrgId,
        customer: Option<&CustomerId>,
    ) -> Result<(Option<CustomerRecord>, Option<OrgSettings>), PortError> {
        let customer_pk = customer.map(|c| customer_key(org, c));
        let org_pk = org_key(org);
        let keys: Vec<String> = customer_pk
            .iter()
            .cloned()
            .chain([org_pk.clone()])
            .collect();
        let mut found_customer = None;
        let mut found_org = None;
        for item in batch_get_pks(&self.client, &self.backoff, &self.table, keys, true).await? {
            let pk = pk_of(&item).map(str::to_owned);
            if pk.as_deref() == Some(org_pk.as_str()) {
                found_org = Some(parse_versioned::<OrgSettings>(item)?.value);
            } else if pk.is_some() && pk == customer_pk {
                found_customer = Some(parse_versioned::<CustomerRecord>(item)?.value);
            }
        }
        Ok((found_customer, found_org))
    }

    async fn get_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
    ) -> Result<Option<Versioned<CustomerRecord>>, PortError> {
        self.get_versioned(customer_key(org, customer)).await
    }

    async fn put_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        record: &CustomerRecord,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        self.put_versioned(customer_key(org, customer), record, expected)
            .await
    }

    async fn get_org_settings(
        &self,
        org: &OrgId,
    ) -> Result<Option<Versioned<OrgSettings>>, PortError> {
        self.get_versioned(org_key(org)).await
    }

    async fn put_org_settings(
        &self,
        org: &OrgId,
        settings: &OrgSettings,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        self.put_versioned(org_key(org), settings, expected).await
    }

    async fn suppressed(
        &self,
        org: &OrgId,
        keys: &[SuppressionKey],
    ) -> Result<BTreeSet<SuppressionKey>, PortError> {
        let found = self
            .get_keyed(keys, |k| suppression_key(org, k), false)
            .await?;
        Ok(found.into_iter().map(|(k, _)| k.clone()).collect())
    }

    async fn suppress(
        &self,
        org: &OrgId,
        key: &SuppressionKey,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(suppression_key(org, key)))
            .item("channel", s(key.channel.as_str()))
            .item("reason", s(reason))
            .item("at", s(time::format(&at)))
            .send()
            .await
            .map_err(|e| aws("dynamodb PutItem suppression", e))?;
        Ok(())
    }

    async fn identity_owners(
        &self,
        identities: &[SenderIdentity],
    ) -> Result<BTreeMap<SenderIdentity, OrgId>, PortError> {
        let found = self.get_keyed(identities, identity_key, true).await?;
        Ok(found
            .into_iter()
            .filter_map(|(identity, item)| {
                let owner = item.get("org").and_then(|v| v.as_s().ok())?;
                Some((identity.clone(), OrgId::parse(owner.as_str()).ok()?))
            })
            .collect())
    }

    async fn claim_identity(
        &self,
        org: &OrgId,
        identity: &SenderIdentity,
        at: DateTime<Utc>,
    ) -> Result<OrgId, PortError> {
        const OP: &str = "dynamodb PutItem identity";
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(identity_key(identity)))
            .item("org", s(org.as_str()))
            .item("at", s(time::format(&at)))
            // first come: an identity another organization registered stays theirs
            .condition_expression("attribute_not_exists(pk) OR org = :org")
            .expression_attribute_values(":org", s(org.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(org.clone()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.identity_owners(std::slice::from_ref(identity))
                    .await?
                    .remove(identity)
                    .ok_or_else(|| PortError::new(OP, "the identity's owner vanished"))
            }
            Err(e) => Err(aws(OP, e)),
        }
    }
}
