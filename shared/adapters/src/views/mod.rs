//! The views table on DynamoDB: the audit log, customer feeds with their unread counts, daily
//! statistics and dead letters, written idempotently from the projector's batches.
//!
//! Keys (`pk`, `sk`):
//! - log entries of one batch: `LOG#org#notification`, `revision#event` of the first (`entries`: the list)
//! - feed entry: `FEED#org#customer`, `created_at#notification` (the unread ones counted when asked)
//! - a batch's outcomes of one counter (`outcomes`: notification → SMS segments):
//!   `STATS#org#day#shard`, `type#channel#outcome#hash of the notifications`, counted when asked
//! - dead letter: `DL#org`, `failed_at#notification`

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::try_join_all;
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::ports::PortError;
use herald_core::ports::{PageError, Views};
use herald_core::projection::{DeadLetter, FeedEntry, LogEntry, StatCount, ViewWrite};
use herald_core::time;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::errors::aws;

mod feed;
mod stats;

type Item = HashMap<String, AttributeValue>;
/// A put (or, without an item, a delete) of the item with this key.
type Write = ((String, String), Option<Item>);

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn keyed<T: Serialize>(value: &T, pk: String, sk: String) -> Result<Item, PortError> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| PortError::new("serialize view", e))?;
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    Ok(item)
}

fn parse<T: DeserializeOwned>(item: Item) -> Result<T, PortError> {
    serde_dynamo::from_item(item).map_err(|e| PortError::new("deserialize view", e))
}

fn log_key(e: &LogEntry) -> (String, String) {
    (
        format!("LOG#{}#{}", e.org_id, e.notification_id),
        format!("{:06}#{}", e.revision, e.event),
    )
}

/// The attribute of a log item holding its entries.
const LOG_ENTRIES: &str = "entries";

/// Where an entry stands in its notification's log, and what makes two entries the same.
fn log_order(e: &LogEntry) -> (u32, String) {
    (e.revision, e.event.clone())
}

/// One item for a notification's log entries of one batch, keyed by the first: a batch
/// replayed whole writes the same item again; one retried with other bounds may repeat an
/// entry in a second item, which the log shows once.
fn log_item(entries: &[&LogEntry]) -> Result<Write, PortError> {
    let Some(first) = entries.first() else {
        return Err(PortError::new(
            "serialize view",
            std::io::Error::other("a log item without entries"),
        ));
    };
    let (pk, sk) = log_key(first);
    let mut item = key(pk.clone(), sk.clone());
    item.insert(
        LOG_ENTRIES.into(),
        serde_dynamo::to_attribute_value(entries)
            .map_err(|e| PortError::new("serialize view", e))?,
    );
    Ok(((pk, sk), Some(item)))
}

fn feed_pk(org: &OrgId, customer: &CustomerId) -> String {
    format!("FEED#{org}#{customer}")
}

fn feed_sk(created_at: &DateTime<Utc>, id: &NotificationId) -> String {
    format!("{}#{id}", time::format(created_at))
}

fn dead_letter_key(
    org: &OrgId,
    id: &NotificationId,
    failed_at: &DateTime<Utc>,
) -> (String, String) {
    (
        format!("DL#{org}"),
        format!("{}#{id}", time::format(failed_at)),
    )
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

#[derive(Clone, Debug)]
pub struct DynamoViews {
    client: Client,
    table: String,
    backoff: Backoff,
}

impl DynamoViews {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoViews {
            client,
            table: table.into(),
            backoff: Backoff::default(),
        }
    }

    /// How batch calls and the counters' transaction try again what did not go through.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        DynamoViews { backoff, ..self }
    }

    /// Which of these keys hold an item (a consistent read), as (`pk`, `sk`).
    async fn existing_keys(
        &self,
        keys: Vec<Item>,
    ) -> Result<BTreeSet<(String, String)>, PortError> {
        Ok(
            crate::dynamo::batch_get(&self.client, &self.backoff, &self.table, keys, true)
                .await?
                .iter()
                .filter_map(|i| {
                    Some((
                        i.get("pk")?.as_s().ok()?.clone(),
                        i.get("sk")?.as_s().ok()?.clone(),
                    ))
                })
                .collect(),
        )
    }

    /// Puts and deletes, batched; a key written twice in one batch keeps its last write.
    async fn batch_write(&self, writes: Vec<Write>) -> Result<(), PortError> {
        const OP: &str = "dynamodb BatchWriteItem views";
        let mut by_key: BTreeMap<(String, String), Option<Item>> = BTreeMap::new();
        for (k, item) in writes {
            by_key.insert(k, item);
        }
        let requests: Vec<WriteRequest> = by_key
            .into_iter()
            .map(|((pk, sk), item)| match item {
                Some(item) => PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build()),
                None => DeleteRequest::builder()
                    .set_key(Some(key(pk, sk)))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build()),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| PortError::new(OP, e))?;
        crate::dynamo::batch_write(&self.client, &self.backoff, OP, &self.table, requests).await
    }

    async fn query(
        &self,
        pk: String,
        forward: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(forward)
                .set_limit(limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws("dynamodb Query views", e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| items.len() >= l) {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl Views for DynamoViews {
    async fn apply(&self, writes: &[ViewWrite]) -> Result<(), PortError> {
        let mut batch = Vec::new();
        let mut creates = Vec::new();
        let mut statuses = Vec::new();
        let mut outcomes = Vec::new();
        // a notification's log entries of the batch, in order: one item for them all
        let mut logs: BTreeMap<(&OrgId, &NotificationId), Vec<&LogEntry>> = BTreeMap::new();
        for w in writes {
            match w {
                ViewWrite::Log(e) => logs
                    .entry((&e.org_id, &e.notification_id))
                    .or_default()
                    .push(e),
                ViewWrite::DeadLetterPut(d) => {
                    let (pk, sk) = dead_letter_key(&d.org_id, &d.notification_id, &d.failed_at);
                    batch.push(((pk.clone(), sk.clone()), Some(keyed(d, pk, sk)?)));
                }
                ViewWrite::DeadLetterDelete {
                    org_id,
                    notification_id,
                    failed_at,
                } => batch.push((dead_letter_key(org_id, notification_id, failed_at), None)),
                ViewWrite::FeedCreate(entry) => creates.push(entry),
                ViewWrite::FeedStatus { .. } => statuses.push(w),
                ViewWrite::Stat(e) => outcomes.push(e),
            }
        }
        batch.extend(Self::stat_writes(outcomes));
        for entries in logs.into_values() {
            batch.push(log_item(&entries)?);
        }
        let (feed_puts, replayed) = self.feed_entries(creates).await?;
        batch.extend(feed_puts);
        self.batch_write(batch).await?;
        // at most one status per notification in a stream batch: no need to bound them
        try_join_all(
            statuses
                .into_iter()
                .chain(&replayed)
                .map(|w| self.update_feed_status(w)),
        )
        .await?;
        Ok(())
    }

    async fn log(&self, org: &OrgId, id: &NotificationId) -> Result<Vec<LogEntry>, PortError> {
        let mut entries: Vec<LogEntry> = Vec::new();
        for item in self.query(format!("LOG#{org}#{id}"), true, None).await? {
            match item.get(LOG_ENTRIES) {
                Some(list) => entries.extend(
                    serde_dynamo::from_attribute_value::<_, Vec<LogEntry>>(list.clone())
                        .map_err(|e| PortError::new("deserialize view", e))?,
                ),
                None => entries.push(parse(item)?),
            }
        }
        // a batch retried with other bounds wrote some entries into two items: each once
        entries.sort_by_key(log_order);
        entries.dedup_by(|a, b| log_order(a) == log_order(b));
        Ok(entries)
    }

    async fn feed(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, PortError> {
        self.query(feed_pk(org, customer), false, Some(limit))
            .await?
            .into_iter()
            .filter(|item| !item.contains_key("withdrawn"))
            .map(parse)
            .collect()
    }

    async fn unread(&self, org: &OrgId, customer: &CustomerId) -> Result<u64, PortError> {
        self.count_unread(org, customer).await
    }

    async fn feed_page(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<FeedEntry>, Option<String>), PageError> {
        const OP: &str = "dynamodb Query feed";
        let pk = feed_pk(org, customer);
        let start = match cursor {
            None => None,
            Some(c) => {
                let sk = URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or(PageError::BadCursor)?;
                Some(key(pk.clone(), sk))
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| aws(OP, e))?;
        let next = out
            .last_evaluated_key
            .and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .map(|sk| URL_SAFE_NO_PAD.encode(sk));
        // withheld notifications were never sent: not the customer's to see
        let entries = out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter(|item| !item.contains_key("withdrawn"))
            .map(parse)
            .collect::<Result<_, PortError>>()?;
        Ok((entries, next))
    }

    async fn mark_read(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        created_at: DateTime<Utc>,
        id: &NotificationId,
    ) -> Result<bool, PortError> {
        self.read_entry(org, customer, &created_at, id).await
    }

    async fn stats(&self, org: &OrgId, day: NaiveDate) -> Result<Vec<StatCount>, PortError> {
        self.count_stats(org, day).await
    }

    async fn dead_letters(&self, org: &OrgId, limit: usize) -> Result<Vec<DeadLetter>, PortError> {
        self.query(format!("DL#{org}"), false, Some(limit))
            .await?
            .into_iter()
            .map(parse)
            .collect()
    }
}
