//! The customer feeds: an entry per in-app notification, its read and withdrawn states, and
//! the unread count kept with them in one transaction.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::Status;
use herald_core::ports::PortError;
use herald_core::projection::{FeedEntry, ViewWrite};
use herald_core::time;

use super::{
    DynamoViews, FEED_PER_TRANSACTION, cancelled_for_another_try, conditional_failed, feed_pk,
    feed_sk, key, keyed, n, s, unread_key,
};
use crate::backoff::Round;
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
    /// A batch's new feed entries and, per customer, that many more unread, together or not
    /// at all: one transaction for up to [`FEED_PER_TRANSACTION`] entries, so a customer who
    /// gets many notifications at once moves their count once per batch instead of once per
    /// entry in transactions that collide. An entry withheld (`Skipped`) is created withdrawn
    /// and counts for nothing. An entry that exists already (a replay) takes its status
    /// instead, if newer.
    pub(super) async fn create_feed_entries(
        &self,
        entries: Vec<&FeedEntry>,
    ) -> Result<(), PortError> {
        const OP: &str = "dynamodb TransactWriteItems feed";
        let mut unique: BTreeMap<(String, String), &FeedEntry> = BTreeMap::new();
        for e in entries {
            unique.insert(entry_key(e), e);
        }
        let entries: Vec<&FeedEntry> = unique.into_values().collect();
        for chunk in entries.chunks(FEED_PER_TRANSACTION) {
            let existing = self
                .backoff
                .until_done(OP, chunk.to_vec(), |pending| self.create_once(pending))
                .await?;
            for entry in existing {
                self.update_feed_status(&status_of(entry)).await?;
            }
        }
        Ok(())
    }

    /// One transaction of entries and counts: the entries it found made before, and what it
    /// left undone.
    async fn create_once<'a>(
        &self,
        pending: Vec<&'a FeedEntry>,
    ) -> Result<Round<&'a FeedEntry, &'a FeedEntry>, PortError> {
        const OP: &str = "dynamodb TransactWriteItems feed";
        let mut actions = Vec::new();
        let mut unread: BTreeMap<(&OrgId, &CustomerId), u64> = BTreeMap::new();
        for entry in &pending {
            let (pk, sk) = entry_key(entry);
            let mut item = keyed(entry, pk, sk)?;
            if entry.status == Status::Skipped {
                // never sent: not the customer's to see, and not unread
                item.insert("withdrawn".into(), AttributeValue::Bool(true));
                item.insert("read".into(), AttributeValue::Bool(true));
            } else {
                *unread
                    .entry((&entry.org_id, &entry.customer_id))
                    .or_default() += 1;
            }
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| PortError::new(OP, e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        for ((org, customer), count) in unread {
            let (pk, sk) = unread_key(org, customer);
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .update_expression("ADD unread :count")
                .expression_attribute_values(":count", n(count))
                .build()
                .map_err(|e| PortError::new(OP, e))?;
            actions.push(TransactWriteItem::builder().update(update).build());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
        {
            Ok(_) => Ok(Round::new(Vec::new(), Vec::new())),
            Err(e) if conditional_failed(&e) => {
                // made before: those take their status; the rest go again without them
                let (existing, left) = self.split_existing(pending).await?;
                Ok(Round::new(existing, left).because("entries written meanwhile"))
            }
            Err(e) => match cancelled_for_another_try(&e) {
                Some(why) => Ok(Round::new(Vec::new(), pending).because(why)),
                None => Err(aws(OP, e)),
            },
        }
    }

    /// The entries that exist already, and those that do not.
    async fn split_existing<'a>(
        &self,
        entries: Vec<&'a FeedEntry>,
    ) -> Result<(Vec<&'a FeedEntry>, Vec<&'a FeedEntry>), PortError> {
        let keys = entries
            .iter()
            .map(|e| {
                let (pk, sk) = entry_key(e);
                key(pk, sk)
            })
            .collect();
        let found = self.existing_keys(keys).await?;
        Ok(entries
            .into_iter()
            .partition(|e| found.contains(&entry_key(e))))
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
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                feed_pk(org_id, customer_id),
                feed_sk(created_at, notification_id),
            )))
            .update_expression("SET #status = :status, updated_at = :at")
            // only forward in time: an older change arriving late leaves the newer state
            .condition_expression("attribute_exists(pk) AND updated_at <= :at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":at", s(time::format(updated_at)));
        crate::dynamo::guarded("dynamodb UpdateItem feed status", request).await?;
        if *status == Status::Skipped {
            self.withdraw_feed_entry(org_id, customer_id, created_at, notification_id)
                .await?;
        }
        Ok(())
    }

    /// Applies `update` (which sets `#read` true) to an unread feed entry and takes one off the
    /// unread count, together or not at all; `false` when the entry is read already or absent.
    pub(super) async fn read_and_uncount(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        created_at: &DateTime<Utc>,
        id: &NotificationId,
        update: &str,
    ) -> Result<bool, PortError> {
        const OP: &str = "dynamodb TransactWriteItems read";
        let entry = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(feed_pk(org, customer), feed_sk(created_at, id))))
            .update_expression(update)
            .condition_expression("attribute_exists(pk) AND #read = :false")
            .expression_attribute_names("#read", "read")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .build()
            .map_err(|e| PortError::new(OP, e))?;
        let (pk, sk) = unread_key(org, customer);
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression("ADD unread :minus")
            .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
            .build()
            .map_err(|e| PortError::new(OP, e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(entry).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(aws(OP, e)),
        }
    }

    /// A notification withheld at send time was never sent: its entry leaves the customer's
    /// feed, and counts as unread no more. The entry is marked, not deleted, so a replay of
    /// its creation finds it and changes nothing; the unread count moves once, with the mark.
    pub(super) async fn withdraw_feed_entry(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        created_at: &DateTime<Utc>,
        id: &NotificationId,
    ) -> Result<(), PortError> {
        let uncounted = self
            .read_and_uncount(
                org,
                customer,
                created_at,
                id,
                "SET withdrawn = :true, #read = :true",
            )
            .await?;
        if !uncounted {
            // read already (or withdrawn before): mark it, the count stays
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(feed_pk(org, customer), feed_sk(created_at, id))))
                .update_expression("SET withdrawn = :true")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":true", AttributeValue::Bool(true));
            crate::dynamo::guarded("dynamodb UpdateItem feed withdraw", request).await?;
        }
        Ok(())
    }
}
