//! The customer feeds: an entry per notification, its read and withdrawn states. The unread
//! count is counted when asked, over the newest entries, rather than kept in a counter: a
//! counter would make every new entry a transaction (twice the write units) and put every
//! notification for a customer on one item.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use chrono::{DateTime, Utc};
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::Status;
use herald_core::ports::{PortError, UNREAD_WINDOW};
use herald_core::projection::{FeedEntry, ViewWrite};
use herald_core::time;

use super::{DynamoViews, Write, feed_pk, feed_sk, key, keyed, s};
use crate::errors::aws;

/// A feed entry's key.
fn entry_key(e: &FeedEntry) -> (String, String) {
    (
        feed_pk(&e.org_id, &e.customer_id),
        feed_sk(&e.created_at, &e.notification_id),
    )
}

/// The status change an entry carries, for an entry that exists already.
fn status_of(e: &FeedEntry) -> ViewWrite {
    ViewWrite::FeedStatus {
        org_id: e.org_id.clone(),
        customer_id: e.customer_id.clone(),
        notification_id: e.notification_id.clone(),
        created_at: e.created_at,
        status: e.status,
        updated_at: e.updated_at,
    }
}

impl DynamoViews {
    /// The puts of a batch's new feed entries, to write with the batch's other puts, and the
    /// status of each entry that exists already (a replay): putting it again would make a
    /// read entry unread, so it takes its status instead, if newer. An entry withheld
    /// (`Skipped`) is created withdrawn and read.
    pub(super) async fn feed_entries(
        &self,
        entries: Vec<&FeedEntry>,
    ) -> Result<(Vec<Write>, Vec<ViewWrite>), PortError> {
        let mut unique: BTreeMap<(String, String), &FeedEntry> = BTreeMap::new();
        for e in entries {
            unique.insert(entry_key(e), e);
        }
        if unique.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let keys = unique
            .keys()
            .map(|(pk, sk)| key(pk.clone(), sk.clone()))
            .collect();
        // a stream shard's batches are handled one at a time: nothing else creates these
        // entries between this read and the puts
        let found = self.existing_keys(keys).await?;
        let mut puts = Vec::new();
        let mut statuses = Vec::new();
        for ((pk, sk), entry) in unique {
            if found.contains(&(pk.clone(), sk.clone())) {
                statuses.push(status_of(entry));
                continue;
            }
            let mut item = keyed(entry, pk.clone(), sk.clone())?;
            if entry.status == Status::Skipped {
                // never sent: not the customer's to see, and not unread
                item.insert("withdrawn".into(), AttributeValue::Bool(true));
                item.insert("read".into(), AttributeValue::Bool(true));
            }
            puts.push(((pk, sk), Some(item)));
        }
        Ok((puts, statuses))
    }

    pub(super) async fn update_feed_status(&self, write: &ViewWrite) -> Result<(), PortError> {
        let ViewWrite::FeedStatus {
            org_id,
            customer_id,
            notification_id,
            created_at,
            status,
            updated_at,
        } = write
        else {
            return Ok(());
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                feed_pk(org_id, customer_id),
                feed_sk(created_at, notification_id),
            )))
            // only forward in time: an older change arriving late leaves the newer state
            .condition_expression("attribute_exists(pk) AND updated_at <= :at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":at", s(time::format(updated_at)));
        request = if *status == Status::Skipped {
            // withheld at send time, never sent: it leaves the feed and counts as unread no more
            request
                .update_expression(
                    "SET #status = :status, updated_at = :at, withdrawn = :true, #read = :true",
                )
                .expression_attribute_names("#read", "read")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
        } else {
            request.update_expression("SET #status = :status, updated_at = :at")
        };
        crate::dynamo::guarded("dynamodb UpdateItem feed status", request).await?;
        Ok(())
    }

    /// Marks an unread entry read; `false` when it is read already or absent.
    pub(super) async fn read_entry(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        created_at: &DateTime<Utc>,
        id: &NotificationId,
    ) -> Result<bool, PortError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(feed_pk(org, customer), feed_sk(created_at, id))))
            .update_expression("SET #read = :true")
            .condition_expression("attribute_exists(pk) AND #read = :false")
            .expression_attribute_names("#read", "read")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        crate::dynamo::guarded("dynamodb UpdateItem feed read", request).await
    }

    /// The unread entries among the customer's newest [`UNREAD_WINDOW`], counted by the
    /// table (a consistent query that returns no items, only the count).
    pub(super) async fn count_unread(
        &self,
        org: &OrgId,
        customer: &CustomerId,
    ) -> Result<u64, PortError> {
        const OP: &str = "dynamodb Query unread";
        let mut unread = 0u64;
        let mut looked_at = 0usize;
        let mut start = None;
        loop {
            let left = UNREAD_WINDOW - looked_at;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .filter_expression("#read = :false AND attribute_not_exists(withdrawn)")
                .expression_attribute_names("#read", "read")
                .expression_attribute_values(":pk", s(feed_pk(org, customer)))
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .scan_index_forward(false)
                .consistent_read(true)
                .select(Select::Count)
                .limit(i32::try_from(left).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws(OP, e))?;
            unread += u64::try_from(out.count).unwrap_or(0);
            looked_at += usize::try_from(out.scanned_count).unwrap_or(left);
            start = out.last_evaluated_key;
            if start.is_none() || looked_at >= UNREAD_WINDOW {
                return Ok(unread);
            }
        }
    }
}
