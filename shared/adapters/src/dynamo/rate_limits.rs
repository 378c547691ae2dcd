//! The rate limits' buckets in the directory table, an item per organization and channel
//! (`R#org#channel`) holding the per-second bucket's arrival time and the day's count.
//!
//! A batch's messages of one channel are counted with one put conditional on the version this
//! dispatcher last saw. Counts only grow, so a bucket that looked full from here is full in the
//! store too and costs no call; when another dispatcher wrote first, the failed condition
//! returns the item as it is now and the count is made again on it.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};
use herald_core::ids::OrgId;
use herald_core::model::Channel;
use herald_core::ports::{PortError, RateLimiter};
use herald_core::rate_limit::{Admission, Bucket, ChannelLimit, take};
use serde::{Deserialize, Serialize};

use crate::errors::aws;

use super::{Item, from_item, get_one, if_at_version, to_item};

/// How many times a batch is counted again after another dispatcher's count came first.
const CONFLICTS_TOLERATED: u32 = 8;

/// A bucket as last seen: its version (0: not stored) and state.
type Seen = (u64, Bucket);

pub struct DynamoRateLimiter {
    client: Client,
    table: String,
    /// The buckets as this dispatcher last wrote or read them: where its next count starts.
    seen: Mutex<HashMap<(OrgId, Channel), Seen>>,
}

/// A bucket's item: its state and the version its conditional writes check.
#[derive(Serialize, Deserialize)]
struct Stored {
    pk: String,
    version: u64,
    #[serde(flatten)]
    bucket: Bucket,
}

fn bucket_key(org: &OrgId, channel: Channel) -> String {
    format!("R#{org}#{channel}")
}

impl DynamoRateLimiter {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRateLimiter {
            client,
            table: table.into(),
            seen: Mutex::default(),
        }
    }

    fn seen(&self, key: &(OrgId, Channel)) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn remember(&self, key: (OrgId, Channel), seen: Seen) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, seen);
    }

    /// Puts the bucket if the item is still at `version` (0: still absent). `Ok(None)` when
    /// it applied, else the item as it is now (`None` inside when the store did not return it).
    async fn put_if_unchanged(
        &self,
        stored: &Stored,
        version: u64,
    ) -> Result<Option<Option<Item>>, PortError> {
        const OP: &str = "dynamodb PutItem rate limit";
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(OP, stored)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = if_at_version(request, version);
        match request.send().await {
            Ok(_) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Some(failed.item.clone()))
                }
                _ => Err(aws(OP, e)),
            },
        }
    }
}

fn parse(item: Item) -> Result<Seen, PortError> {
    let stored: Stored = from_item("dynamodb PutItem rate limit", item)?;
    Ok((stored.version, stored.bucket))
}

#[async_trait]
impl RateLimiter for DynamoRateLimiter {
    async fn take(
        &self,
        org: &OrgId,
        channel: Channel,
        want: u32,
        limit: ChannelLimit,
        now: DateTime<Utc>,
    ) -> Result<Admission, PortError> {
        let key = (org.clone(), channel);
        let pk = bucket_key(org, channel);
        let mut seen = self.seen(&key).unwrap_or_default();
        for _ in 0..=CONFLICTS_TOLERATED {
            let (version, bucket) = &seen;
            let (admission, counted) = take(bucket, now, want, limit);
            if admission.granted == 0 {
                return Ok(admission);
            }
            let stored = Stored {
                pk: pk.clone(),
                version: version + 1,
                bucket: counted,
            };
            match self.put_if_unchanged(&stored, *version).await? {
                None => {
                    self.remember(key, (stored.version, stored.bucket));
                    return Ok(admission);
                }
                Some(Some(now_stored)) => seen = parse(now_stored)?,
                // a store that does not return the item on a failed condition: read it
                Some(None) => {
                    seen = match get_one(
                        &self.client,
                        &self.table,
                        pk.clone(),
                        "dynamodb GetItem rate limit",
                    )
                    .await?
                    {
                        Some(item) => parse(item)?,
                        None => Seen::default(),
                    }
                }
            }
            self.remember(key.clone(), seen.clone());
        }
        Err(PortError::new(
            "count messages in a rate limit's bucket",
            "other dispatchers' counts kept coming first",
        ))
    }
}
