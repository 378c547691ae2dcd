//! The notifications table: notifications (created once, claimed by one dispatcher, settled
//! by their claimer), intake records, and the sweep's index.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, Utc};
use herald_core::ids::{NotificationId, OrgId};
use herald_core::model::{Cause, Notification, Status};
use herald_core::ports::{
    ClaimOutcome, Created, DueEntry, DueIndex, DuePage, HtmlOf, NotificationStore, PortError,
    RetryOutcome, UnreadableEntry,
};
use herald_core::record::IntakeRecord;
use herald_core::time;

use crate::backoff::Backoff;
use crate::errors::aws;

use super::compressed::{deflated, inflated};
use super::{
    DUE_INDEX, DUE_SHARDS, Item, Update, batch_get_pks, batch_write, due_shard, from_item, get_one,
    guarded, intake_key, notification_key, parse_notification_key, pk_of, s, status_in, to_item,
    waiting_statuses,
};

/// The notifications table.
#[derive(Clone, Debug)]
pub struct DynamoNotificationStore {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) backoff: Backoff,
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
        // the intake record keeps it (see `Notification::has_html`)
        item.remove(HTML_BODY);
        item.insert("pk".into(), s(notification_key(&n.org_id, &n.id)));
        item.insert("kind".into(), s("notification"));
        if n.sweep_at.is_some() {
            item.insert("due_shard".into(), s(due_shard(&n.id)));
        }
        Ok(item)
    }

    pub(super) fn parse_notification(item: Item) -> Result<Notification, PortError> {
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
        let key = notification_key(org, id);
        get_one(
            &self.client,
            &self.table,
            key,
            "dynamodb GetItem notification",
        )
        .await?
        .map(Self::parse_notification)
        .transpose()
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
        let update = settled(n).map_err(|e| PortError::new(OP, e))?;
        // only to a status the life cycle lets the claimer record
        let (settled_from, from_values) =
            status_in(&Status::sources(n.status, Cause::Settle), "from");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(notification_key(&n.org_id, &n.id)))
            .update_expression(update.expression())
            .condition_expression(format!("#claim.#token = :token AND {settled_from}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#claim", "claim")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(token));
        for (placeholder, value) in update.values.into_iter().chain(from_values) {
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
                 REMOVE last_error, error_code, failed_at, next_retry_at, dl_org, sweep_at, due_shard",
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

    async fn record_intakes(&self, records: &[IntakeRecord]) -> Result<(), PortError> {
        const OP: &str = "dynamodb BatchWriteItem intake";
        // one write per key: BatchWriteItem refuses a key twice (an event delivered twice in
        // one batch), and the later record is as good as the earlier
        let mut by_key: BTreeMap<String, Item> = BTreeMap::new();
        for record in records {
            let mut item = to_item("serialize intake record", record)?;
            if !record.html_bodies.is_empty() {
                let html = record
                    .html_bodies
                    .iter()
                    .map(|(id, body)| (id.to_string(), deflated(body)))
                    .collect();
                item.insert(HTML_BODIES.into(), AttributeValue::M(html));
            }
            let pk = intake_key(record.org_id.as_ref(), &record.event_id);
            item.insert("pk".into(), s(pk.clone()));
            item.insert("kind".into(), s("intake"));
            by_key.insert(pk, item);
        }
        let requests = by_key
            .into_values()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PortError::new(OP, e))?;
        batch_write(&self.client, &self.backoff, OP, &self.table, requests).await
    }

    async fn get_intake(
        &self,
        org: Option<&OrgId>,
        event_id: &str,
    ) -> Result<Option<IntakeRecord>, PortError> {
        let key = intake_key(org, event_id);
        get_one(&self.client, &self.table, key, "dynamodb GetItem intake")
            .await?
            .map(parse_intake_record)
            .transpose()
    }

    async fn html_bodies(
        &self,
        wanted: &[HtmlOf],
    ) -> Result<BTreeMap<NotificationId, String>, PortError> {
        const OP: &str = "dynamodb BatchGetItem html";
        let keys: BTreeSet<String> = wanted
            .iter()
            .map(|w| intake_key(Some(&w.org_id), &w.event_id))
            .collect();
        // consistent: the record was written just before the notification was enqueued
        let records = batch_get_pks(
            &self.client,
            &self.backoff,
            &self.table,
            keys.into_iter().collect(),
            true,
        )
        .await?;
        let mut kept: HashMap<&str, &AttributeValue> = HashMap::new();
        for record in &records {
            if let Some(AttributeValue::M(bodies)) = record.get(HTML_BODIES) {
                kept.extend(bodies.iter().map(|(id, body)| (id.as_str(), body)));
            }
        }
        let mut found = BTreeMap::new();
        for w in wanted {
            if let Some(body) = kept.get(w.notification_id.as_str()) {
                found.insert(w.notification_id.clone(), inflated(OP, body)?);
            }
        }
        Ok(found)
    }
}

/// The notification's attribute the table does not keep, and the record's that keeps it.
const HTML_BODY: &str = "html_body";
const HTML_BODIES: &str = "html_bodies";

fn parse_intake_record(mut item: Item) -> Result<IntakeRecord, PortError> {
    const OP: &str = "deserialize intake record";
    let html = match item.remove(HTML_BODIES) {
        Some(AttributeValue::M(bodies)) => bodies,
        _ => HashMap::new(),
    };
    let mut record: IntakeRecord = from_item(OP, item)?;
    for (id, body) in html {
        let id = NotificationId::parse(&id).map_err(|e| PortError::new(OP, e))?;
        record.html_bodies.insert(id, inflated(OP, &body)?);
    }
    Ok(record)
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

/// A settled notification's fields, as one update: what dispatch decided (status, attempts,
/// the provider's id, the error, the next try) and the indexes that follow from it. Absent
/// optional fields are removed, so a field set by an earlier try does not outlive it.
fn settled(n: &Notification) -> Result<Update, serde_dynamo::Error> {
    let mut update = Update::default();
    update.set("#status", s(n.status.as_str()));
    update.set("attempts", AttributeValue::N(n.attempts.to_string()));
    update.set("updated_at", s(time::format(&n.updated_at)));
    update.set_expression("revision", "if_not_exists(revision, :zero) + :one");
    update.value(":zero", AttributeValue::N("0".into()));
    update.value(":one", AttributeValue::N("1".into()));
    update.remove("#claim");
    let instant = |t: &Option<chrono::DateTime<chrono::Utc>>| t.as_ref().map(time::format);
    update.set_or_remove("provider_message_id", n.provider_message_id.clone());
    update.set_or_remove("last_error", n.last_error.clone());
    update.set_or_remove("error_code", n.error_code.as_ref().map(|c| c.to_string()));
    update.set_or_remove("provider", n.provider.map(|p| p.as_str().to_string()));
    update.set_or_remove("suppressed_at", instant(&n.suppressed_at));
    update.set_or_remove("note", n.note.clone());
    update.set_or_remove("scheduled_for", instant(&n.scheduled_for));
    update.set_or_remove("sent_at", instant(&n.sent_at));
    update.set_or_remove("failed_at", instant(&n.failed_at));
    update.set_or_remove("next_retry_at", instant(&n.next_retry_at));
    // the dead-letters index is sparse: only failed notifications carry dl_org
    update.set_or_remove(
        "dl_org",
        (n.status == Status::Failed).then(|| n.org_id.to_string()),
    );
    // so is the sweep's: only notifications waiting for a time carry due_shard
    update.set_or_remove("sweep_at", instant(&n.sweep_at));
    update.set_or_remove("due_shard", n.sweep_at.map(|_| due_shard(&n.id)));
    if n.tried.is_empty() {
        update.remove("tried");
    } else {
        update.set("tried", serde_dynamo::to_attribute_value(&n.tried)?);
    }
    if n.push_accepted.is_empty() {
        update.remove("push_accepted");
    } else {
        update.set(
            "push_accepted",
            serde_dynamo::to_attribute_value(&n.push_accepted)?,
        );
    }
    // dispatch sends to the recipient's address as it stands then: keep the one it used
    update.set("address", serde_dynamo::to_attribute_value(&n.address)?);
    Ok(update)
}
