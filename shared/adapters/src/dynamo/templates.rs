//! The templates table: each organization's own templates and types under one partition
//! (`T#org`), read in one query, and every version of a template under its own (`H#org#…`).
//!
//! A change is one transaction: the current item, written only over the version it replaces,
//! and the new version's copy in the history.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use herald_core::ids::{Locale, NotificationType, OrgId};
use herald_core::model::Channel;
use herald_core::ports::{PortError, TemplateStore, Write};
use herald_core::template::TemplateSpec;
use herald_core::template::org::{OrgTemplate, OrgType, Parts, Stored};
use serde::{Deserialize, Serialize};

use crate::errors::aws;

use super::{Item, from_item, s, to_item};

#[derive(Clone, Debug)]
pub struct DynamoTemplates {
    client: Client,
    table: String,
}

/// The partition of everything an organization stored.
fn org_key(org: &OrgId) -> String {
    format!("T#{org}")
}

/// A template's place in its organization's partition: `order_confirmation#email#fr`.
fn template_sort_key(t: &NotificationType, channel: Channel, locale: &Locale) -> String {
    format!("{t}#{channel}#{}", locale.as_str())
}

/// A type's place: its name (type names have no `#`).
fn type_sort_key(t: &NotificationType) -> String {
    t.to_string()
}

/// The history of what is at `sort_key`, one item per version.
fn history_key(org: &OrgId, sort_key: &str) -> String {
    format!("H#{org}#{sort_key}")
}

/// Versions as sort keys, in order.
fn version_key(version: u64) -> String {
    format!("{version:020}")
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    Template(TemplateItem),
    Type(TypeItem),
}

#[derive(Serialize, Deserialize)]
struct TemplateItem {
    #[serde(rename = "type")]
    notification_type: NotificationType,
    channel: Channel,
    locale: Locale,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default)]
    body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    html: Option<String>,
    version: u64,
    #[serde(with = "herald_core::time")]
    updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

#[derive(Serialize, Deserialize)]
struct TypeItem {
    #[serde(rename = "type")]
    notification_type: NotificationType,
    spec: TemplateSpec,
    version: u64,
    #[serde(with = "herald_core::time")]
    updated_at: DateTime<Utc>,
}

impl DynamoTemplates {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTemplates {
            client,
            table: table.into(),
        }
    }

    /// Writes `body` at `sort_key` over version `replaces`, and its copy in the history.
    async fn put_versioned(
        &self,
        org: &OrgId,
        sort_key: String,
        body: &Entry,
        version: u64,
        replaces: Option<u64>,
    ) -> Result<Write, PortError> {
        const OP: &str = "dynamodb TransactWriteItems templates";
        let item = |pk: String, sk: String| -> Result<Item, PortError> {
            let mut item = to_item(OP, body)?;
            item.insert("pk".into(), s(pk));
            item.insert("sk".into(), s(sk));
            Ok(item)
        };
        let mut current = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(org_key(org), sort_key.clone())?));
        current = match replaces {
            None => current.condition_expression("attribute_not_exists(pk)"),
            Some(v) => current
                .condition_expression("version = :replaces")
                .expression_attribute_values(":replaces", AttributeValue::N(v.to_string())),
        };
        let history = Put::builder().table_name(&self.table).set_item(Some(item(
            history_key(org, &sort_key),
            version_key(version),
        )?));
        let put = |p: aws_sdk_dynamodb::types::builders::PutBuilder| {
            p.build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| PortError::new(OP, e))
        };
        let sent = self
            .client
            .transact_write_items()
            .transact_items(put(current)?)
            .transact_items(put(history)?)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Write::Done),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if conflicted(c.cancellation_reasons()) =>
                {
                    Ok(Write::Conflict)
                }
                _ => Err(aws(OP, e)),
            },
        }
    }
}

/// Whether a transaction was cancelled by the current version's condition or by a concurrent
/// write of the same item (some implementations give no reasons: then it was the condition,
/// the only one the transaction has).
fn conflicted(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> bool {
    reasons.is_empty()
        || reasons.iter().any(|r| {
            matches!(
                r.code(),
                Some("ConditionalCheckFailed" | "TransactionConflict")
            )
        })
}

#[async_trait]
impl TemplateStore for DynamoTemplates {
    async fn stored(&self, org: &OrgId, consistent: bool) -> Result<Stored, PortError> {
        const OP: &str = "dynamodb Query templates";
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(org_key(org)))
            .consistent_read(consistent)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| aws(OP, e))?;
        let mut stored = Stored::default();
        for item in items {
            match from_item(OP, item)? {
                Entry::Template(t) => stored.templates.push(OrgTemplate {
                    notification_type: t.notification_type,
                    channel: t.channel,
                    locale: t.locale,
                    parts: Parts {
                        subject: t.subject,
                        body: t.body,
                        html: t.html,
                    },
                    version: t.version,
                    updated_at: t.updated_at,
                    deleted: t.deleted,
                }),
                Entry::Type(t) => stored.types.push(OrgType {
                    notification_type: t.notification_type,
                    spec: t.spec,
                    version: t.version,
                    updated_at: t.updated_at,
                }),
            }
        }
        Ok(stored)
    }

    async fn put_template(
        &self,
        org: &OrgId,
        template: &OrgTemplate,
        replaces: Option<u64>,
    ) -> Result<Write, PortError> {
        let body = Entry::Template(TemplateItem {
            notification_type: template.notification_type.clone(),
            channel: template.channel,
            locale: template.locale.clone(),
            subject: template.parts.subject.clone(),
            body: template.parts.body.clone(),
            html: template.parts.html.clone(),
            version: template.version,
            updated_at: template.updated_at,
            deleted: template.deleted,
        });
        let sort_key = template_sort_key(
            &template.notification_type,
            template.channel,
            &template.locale,
        );
        self.put_versioned(org, sort_key, &body, template.version, replaces)
            .await
    }

    async fn put_type(
        &self,
        org: &OrgId,
        org_type: &OrgType,
        replaces: Option<u64>,
    ) -> Result<Write, PortError> {
        let body = Entry::Type(TypeItem {
            notification_type: org_type.notification_type.clone(),
            spec: org_type.spec.clone(),
            version: org_type.version,
            updated_at: org_type.updated_at,
        });
        let sort_key = type_sort_key(&org_type.notification_type);
        self.put_versioned(org, sort_key, &body, org_type.version, replaces)
            .await
    }
}
