//! The customer feeds: an entry per in-app notification, its read and withdrawn states, and
//! the unread count kept with them in one transaction.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::Status;
use herald_core::ports::PortError;
use herald_core::projection::{FeedEntry, ViewWrite};
use herald_core::time;

use super::{DynamoViews, conditional_failed, feed_pk, feed_sk, key, keyed, n, s, unread_key};
use crate::errors::aws;

impl DynamoViews {
    /// A new feed entry and one more unread, together or not at all; an entry that exists
    /// (the same record seen again) changes nothing.
    pub(super) async fn create_feed_entry(&self, entry: &FeedEntry) -> Result<(), PortError> {
        const OP: &str = "dynamodb TransactWriteItems feed";
        let item = keyed(
            entry,
            feed_pk(&entry.org_id, &entry.customer_id),
            feed_sk(&entry.created_at, &entry.notification_id),
        )?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| PortError::new(OP, e))?;
        let (pk, sk) = unread_key(&entry.org_id, &entry.customer_id);
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression("ADD unread :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| PortError::new(OP, e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(aws(OP, e)),
        }
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
