//! The daily statistics: each notification's outcome counted once (with an SMS's segments),
//! its marker and its counter written in one transaction.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use herald_core::ports::PortError;
use herald_core::projection::{StatEvent, StatKey};

use super::{
    DynamoViews, Item, STATS_PER_TRANSACTION, cancelled_for_another_try, conditional_failed, key,
    n, stats_pk, stats_sk,
};
use crate::backoff::Round;
use crate::errors::aws;

/// The marker that says a notification's outcome was counted.
fn marker_key(e: &StatEvent) -> Item {
    key(
        format!("STATMARK#{}#{}", e.key.org_id, e.notification_id),
        e.key.outcome.as_str().to_string(),
    )
}

impl DynamoViews {
    /// Counts each notification's outcome once: a marker per (notification, outcome) and the
    /// day's counters move in one transaction; markers that exist already (a replay) drop out,
    /// a transaction cancelled by a conflict or throttling is tried again with backoff, and
    /// increments still not counted after the last attempt are reported.
    pub(super) async fn count(&self, events: Vec<&StatEvent>) -> Result<(), PortError> {
        const OP: &str = "dynamodb TransactWriteItems stats";
        let mut unique: BTreeMap<(String, String), &StatEvent> = BTreeMap::new();
        for e in events {
            unique.insert(
                (
                    e.notification_id.to_string(),
                    e.key.outcome.as_str().to_string(),
                ),
                e,
            );
        }
        let events: Vec<&StatEvent> = unique.into_values().collect();
        for chunk in events.chunks(STATS_PER_TRANSACTION) {
            self.backoff
                .until_done(OP, chunk.to_vec(), |pending| self.count_once(pending))
                .await?;
        }
        Ok(())
    }

    /// One transaction of markers and counters: what it left uncounted.
    async fn count_once<'a>(
        &self,
        pending: Vec<&'a StatEvent>,
    ) -> Result<Round<&'a StatEvent, ()>, PortError> {
        const OP: &str = "dynamodb TransactWriteItems stats";
        let mut actions = Vec::new();
        for e in &pending {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(marker_key(e)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| PortError::new(OP, e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        // per counter: the notifications and their SMS segments
        let mut counts: BTreeMap<&StatKey, (u64, u64)> = BTreeMap::new();
        for e in &pending {
            let (count, segments) = counts.entry(&e.key).or_default();
            *count += 1;
            *segments += u64::from(e.sms_segments);
        }
        for (k, (count, segments)) in counts {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(stats_pk(&k.org_id, k.day), stats_sk(k))))
                .update_expression("ADD #count :n, #segments :segments SET #key = :key")
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#segments", "sms_segments")
                .expression_attribute_names("#key", "key")
                .expression_attribute_values(":n", n(count))
                .expression_attribute_values(":segments", n(segments))
                .expression_attribute_values(
                    ":key",
                    serde_dynamo::to_attribute_value(k).map_err(|e| PortError::new(OP, e))?,
                )
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
                // drop the events already counted, and try the rest again
                let left = self.not_yet_counted(&pending).await?;
                Ok(Round::new(Vec::new(), left).because("markers written meanwhile"))
            }
            Err(e) => match cancelled_for_another_try(&e) {
                Some(why) => Ok(Round::new(Vec::new(), pending).because(why)),
                None => Err(aws(OP, e)),
            },
        }
    }

    async fn not_yet_counted<'a>(
        &self,
        events: &[&'a StatEvent],
    ) -> Result<Vec<&'a StatEvent>, PortError> {
        let keys: Vec<Item> = events.iter().map(|e| marker_key(e)).collect();
        let found = self.existing_keys(keys).await?;
        Ok(events
            .iter()
            .filter(|e| {
                let k = marker_key(e);
                let pk = k.get("pk").and_then(|v| v.as_s().ok());
                let sk = k.get("sk").and_then(|v| v.as_s().ok());
                !matches!((pk, sk), (Some(pk), Some(sk)) if found.contains(&(pk.clone(), sk.clone())))
            })
            .copied()
            .collect())
    }
}
