//! Provider events on the notifications table: finding a message's notification, applying
//! changes along the life cycle, remembering event ids.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use herald_core::ids::{NotificationId, OrgId};
use herald_core::model::{Cause, Notification, Provider, Status};
use herald_core::ports::DeliveryStore;
use herald_core::ports::PortError;
use herald_core::provider_events::DeliveryChange;
use herald_core::time;

use crate::errors::aws;

use super::{
    BATCH_CONCURRENCY, BATCH_GET_LIMIT, Item, batch_get_pks, batch_write, guarded,
    notification_key, parse_notification_key, pk_of, s, status_in,
};

/// How long a webhook event's id is remembered for deduplication (providers retry for hours,
/// at most a few days).
const WEBHOOK_MEMORY_DAYS: i64 = 7;
pub const PROVIDER_MESSAGE_INDEX: &str = "provider_message";

#[async_trait]
impl DeliveryStore for super::DynamoNotificationStore {
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
        let mut removes: Vec<&str> = Vec::new();
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
                match &change.code {
                    Some(code) => {
                        sets.push("error_code = :code".into());
                        values.push((":code", s(code.to_string())));
                    }
                    None => removes.push("error_code"),
                }
            }
            if matches!(status, Status::Failed | Status::Bounced) {
                sets.push("failed_at = :at".into());
            }
            if status == Status::Failed {
                sets.push("dl_org = :org".into());
                values.push((":org", s(n.org_id.to_string())));
            }
        }
        if change.suppress.is_some() {
            sets.push("suppressed_at = if_not_exists(suppressed_at, :at)".into());
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
            .update_expression(match removes.as_slice() {
                [] => format!("SET {}", sets.join(", ")),
                removes => format!("SET {} REMOVE {}", sets.join(", "), removes.join(", ")),
            })
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
