//! The notifications, directory, templates and connections tables on DynamoDB.
//!
//! Keys carry the organization first (`N#org#id`), so no read can cross organizations and
//! items spread over partitions. Conditional writes carry the invariants: a notification is
//! created once, claimed by one dispatcher at a time, and settled only by its claimer.

mod breakers;
mod compressed;
mod connections;
mod deliveries;
mod directory;
mod notifications;
mod rate_limits;
mod templates;

pub use breakers::DynamoBreakers;
pub use connections::DynamoConnections;
pub use deliveries::PROVIDER_MESSAGE_INDEX;
pub use directory::DynamoDirectory;
pub use notifications::DynamoNotificationStore;
pub use rate_limits::DynamoRateLimiter;
pub use templates::DynamoTemplates;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use futures::{StreamExt, TryStreamExt};
use herald_core::consent::SuppressionKey;
use herald_core::identity::SenderIdentity;
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::Status;
use herald_core::ports::PortError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::{Backoff, Round};
use crate::errors::aws;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The largest number of keys one BatchGetItem may ask for.
pub(super) const BATCH_GET_LIMIT: usize = 100;
/// The largest number of writes one BatchWriteItem may carry.
pub(super) const BATCH_WRITE_LIMIT: usize = 25;
/// How many batch requests one call sends at once.
pub(super) const BATCH_CONCURRENCY: usize = 8;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn to_item<T: Serialize>(operation: &'static str, value: &T) -> Result<Item, PortError> {
    serde_dynamo::to_item(value).map_err(|e| PortError::new(operation, e))
}

pub(super) fn from_item<T: DeserializeOwned>(
    operation: &'static str,
    item: Item,
) -> Result<T, PortError> {
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
pub(super) fn parse_notification_key(pk: &str) -> Option<(OrgId, NotificationId)> {
    let rest = pk.strip_prefix("N#")?;
    let (org, id) = rest.split_once('#')?;
    Some((OrgId::parse(org).ok()?, NotificationId::parse(id).ok()?))
}

pub(super) fn customer_key(org: &OrgId, customer: &CustomerId) -> String {
    format!("C#{org}#{customer}")
}

pub(super) fn org_key(org: &OrgId) -> String {
    format!("O#{org}")
}

/// A sending identity's owner: one item per identity, across organizations, since an identity
/// is the same in the shared SES account whoever registered it.
pub(super) fn identity_key(identity: &SenderIdentity) -> String {
    format!("I#{identity}")
}

pub(super) fn suppression_key(org: &OrgId, key: &SuppressionKey) -> String {
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
pub(super) fn status_in(
    statuses: &[Status],
    prefix: &str,
) -> (String, Vec<(String, AttributeValue)>) {
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

/// A consistent read of the item with this key.
pub(super) async fn get_one(
    client: &Client,
    table: &str,
    pk: String,
    operation: &'static str,
) -> Result<Option<Item>, PortError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| aws(operation, e))?;
    Ok(out.item)
}

/// An update expression, built a clause at a time: `SET a = :a, … REMOVE b, …` and its values.
#[derive(Debug, Default)]
pub(super) struct Update {
    sets: Vec<String>,
    removes: Vec<&'static str>,
    pub(super) values: Vec<(String, AttributeValue)>,
}

impl Update {
    /// `attr = :attr` (a `#name` attribute takes the placeholder `:name`).
    pub(super) fn set(&mut self, attr: &'static str, value: AttributeValue) {
        let placeholder = format!(":{}", attr.trim_start_matches('#'));
        self.sets.push(format!("{attr} = {placeholder}"));
        self.values.push((placeholder, value));
    }

    /// `attr = expression`, whose placeholders are given with [`Update::value`].
    pub(super) fn set_expression(&mut self, attr: &'static str, expression: &str) {
        self.sets.push(format!("{attr} = {expression}"));
    }

    pub(super) fn value(&mut self, placeholder: &str, value: AttributeValue) {
        self.values.push((placeholder.to_string(), value));
    }

    pub(super) fn remove(&mut self, attr: &'static str) {
        self.removes.push(attr);
    }

    /// Sets a string attribute, or removes it when there is none.
    pub(super) fn set_or_remove(&mut self, attr: &'static str, value: Option<String>) {
        match value {
            Some(v) => self.set(attr, s(v)),
            None => self.remove(attr),
        }
    }

    pub(super) fn expression(&self) -> String {
        let mut out = String::new();
        if !self.sets.is_empty() {
            out.push_str("SET ");
            out.push_str(&self.sets.join(", "));
        }
        if !self.removes.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("REMOVE ");
            out.push_str(&self.removes.join(", "));
        }
        out
    }
}

/// The statuses of a notification that waits for its time.
pub(super) fn waiting_statuses() -> Vec<Status> {
    Status::ALL
        .into_iter()
        .filter(|st| st.is_waiting())
        .collect()
}

/// Reads many keys (`pk` only) of one table; see [`batch_get`].
pub(super) async fn batch_get_pks(
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

/// A write's error that may be its condition not holding.
pub(crate) trait ConditionFailed {
    fn condition_failed(&self) -> bool;
}

impl ConditionFailed for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailed for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// A conditional write's answer: its output when it applied, `None` when its condition did
/// not hold (the item changed meanwhile, or is not in the expected state).
pub(crate) fn applied<O, E, R>(
    operation: &'static str,
    result: Result<O, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
) -> Result<Option<O>, PortError>
where
    E: ConditionFailed + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().is_some_and(E::condition_failed) => Ok(None),
        Err(e) => Err(aws(operation, e)),
    }
}

/// A put of an item kept with a version: applied only if the item is still at `version` (0:
/// still absent), so concurrent writers each see whether theirs came first.
pub(super) fn if_at_version(
    request: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    version: u64,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    if version == 0 {
        request.condition_expression("attribute_not_exists(pk)")
    } else {
        request
            .condition_expression("version = :read")
            .expression_attribute_values(":read", AttributeValue::N(version.to_string()))
    }
}

/// Sends a conditional update: `true` when it applied, `false` when its condition did not
/// hold.
pub(crate) async fn guarded(
    operation: &'static str,
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> Result<bool, PortError> {
    Ok(applied(operation, request.send().await)?.is_some())
}

pub(super) fn pk_of(item: &Item) -> Option<&str> {
    item.get("pk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
