//! The connections table: one item per listening customer (`W#org#customer`, sk `open`)
//! with an attribute per open connection, `c#<connection id>`, holding when it expires. A
//! stream batch's customers are then read together with one BatchGetItem, where an item per
//! connection would take a Query per customer.
//!
//! A connection expires a little past API Gateway's two-hour limit: a lost `$disconnect`
//! leaves an attribute that reads skip once expired, and that the customer's next connection
//! removes. The item's TTL is its newest connection's expiry, so a customer who stops
//! connecting leaves nothing behind for long, and one who keeps connecting keeps an item of
//! the last two hours' connections.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use herald_core::ports::{Connections, PortError};
use herald_core::realtime::{Connection, ConnectionId, Listener};
use tracing::warn;

use crate::backoff::Backoff;
use crate::errors::aws;

use super::{Item, batch_get, s};

/// The sort key of a customer's item.
const OPEN: &str = "open";
/// The prefix of a connection's attribute.
const CONNECTION: &str = "c#";

#[derive(Clone, Debug)]
pub struct DynamoConnections {
    client: Client,
    table: String,
    backoff: Backoff,
}

fn listener_key(l: &Listener) -> String {
    format!("W#{}#{}", l.org_id, l.customer_id)
}

fn key(l: &Listener) -> Item {
    HashMap::from([("pk".into(), s(listener_key(l))), ("sk".into(), s(OPEN))])
}

impl DynamoConnections {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoConnections {
            client,
            table: table.into(),
            backoff: Backoff::default(),
        }
    }
}

/// When each connection an item holds expires (epoch seconds; none when unreadable).
fn connections_of(item: &Item) -> impl Iterator<Item = (&str, Option<i64>)> {
    item.iter().filter_map(|(name, value)| {
        let id = name.strip_prefix(CONNECTION)?;
        Some((id, value.as_n().ok().and_then(|n| n.parse::<i64>().ok())))
    })
}

/// The open connections an item holds: those not expired at `now` (epoch seconds).
fn open_connections(item: &Item, now: i64) -> Result<Vec<ConnectionId>, PortError> {
    let mut ids = Vec::new();
    for (id, expires) in connections_of(item) {
        let id = ConnectionId::parse(id).map_err(|e| {
            PortError::new(
                "dynamodb connections",
                format!("a connection attribute: {e}"),
            )
        })?;
        if expires.is_some_and(|t| t >= now) {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// The attributes of the connections an item holds that expired before `now`, or whose
/// expiry cannot be read.
fn expired_connections(item: &Item, now: i64) -> Vec<String> {
    connections_of(item)
        .filter(|(_, expires)| expires.is_none_or(|t| t < now))
        .map(|(id, _)| format!("{CONNECTION}{id}"))
        .collect()
}

impl DynamoConnections {
    /// Removes these connection attributes from a customer's item, when there are any; with
    /// no item, there is nothing to remove (an update would create one).
    async fn forget(&self, listener: &Listener, attributes: &[String]) -> Result<(), PortError> {
        if attributes.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = (0..attributes.len()).map(|i| format!("#c{i}")).collect();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(listener)))
            .update_expression(format!("REMOVE {}", names.join(", ")))
            .condition_expression("attribute_exists(pk)");
        for (name, attribute) in names.iter().zip(attributes) {
            request = request.expression_attribute_names(name, attribute);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("dynamodb UpdateItem remove connection", e)),
        }
    }
}

#[async_trait]
impl Connections for DynamoConnections {
    async fn add(&self, c: &Connection) -> Result<(), PortError> {
        // the newest connection expires last: its expiry is the item's TTL
        let expires = AttributeValue::N(c.expires_at().timestamp().to_string());
        let before = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&c.listener)))
            .update_expression("SET #connection = :expires, expires_at = :expires")
            .expression_attribute_names("#connection", format!("{CONNECTION}{}", c.id))
            .expression_attribute_values(":expires", expires)
            // the item as it was, at no read cost: its expired connections, if any
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| aws("dynamodb UpdateItem add connection", e))?;
        let now = chrono::Utc::now().timestamp();
        let added = format!("{CONNECTION}{}", c.id);
        let expired: Vec<String> = before
            .attributes
            .map(|item| expired_connections(&item, now))
            .unwrap_or_default()
            .into_iter()
            .filter(|a| *a != added)
            .collect();
        if let Err(e) = self.forget(&c.listener, &expired).await {
            // the connection is recorded; the next one removes what is left over
            warn!(org_id = %c.listener.org_id, customer_id = %c.listener.customer_id, error = %e, "expired connections not removed");
        }
        Ok(())
    }

    async fn remove(&self, listener: &Listener, id: &ConnectionId) -> Result<(), PortError> {
        self.forget(listener, &[format!("{CONNECTION}{id}")]).await
    }

    async fn listening(
        &self,
        listeners: &[Listener],
    ) -> Result<BTreeMap<Listener, Vec<ConnectionId>>, PortError> {
        if listeners.is_empty() {
            return Ok(BTreeMap::new());
        }
        let by_key: HashMap<String, &Listener> =
            listeners.iter().map(|l| (listener_key(l), l)).collect();
        let keys = by_key.values().map(|l| key(l)).collect();
        let items = batch_get(&self.client, &self.backoff, &self.table, keys, false).await?;
        let now = chrono::Utc::now().timestamp();
        let mut listening = BTreeMap::new();
        for item in items {
            let listener = item
                .get("pk")
                .and_then(|pk| pk.as_s().ok())
                .and_then(|pk| by_key.get(pk));
            let Some(listener) = listener else {
                return Err(PortError::new(
                    "dynamodb BatchGetItem connections",
                    "an item that was not asked for",
                ));
            };
            let ids = open_connections(&item, now)?;
            if !ids.is_empty() {
                listening.insert((*listener).clone(), ids);
            }
        }
        Ok(listening)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn an_item_holds_its_unexpired_connections_and_nothing_else() {
        let item: Item = HashMap::from([
            ("pk".into(), s("W#org_a#cus_a")),
            ("sk".into(), s(OPEN)),
            ("expires_at".into(), AttributeValue::N("200".into())),
            ("c#BBB=".into(), AttributeValue::N("200".into())),
            ("c#AAA=".into(), AttributeValue::N("100".into())),
            ("c#OLD=".into(), AttributeValue::N("99".into())),
        ]);
        let ids = open_connections(&item, 100).unwrap();
        assert_eq!(
            ids,
            vec![
                ConnectionId::parse("AAA=").unwrap(),
                ConnectionId::parse("BBB=").unwrap()
            ]
        );
        let bad: Item = HashMap::from([("c#not an id".into(), AttributeValue::N("200".into()))]);
        assert!(open_connections(&bad, 100).is_err());

        let mut expired = expired_connections(&item, 100);
        expired.sort();
        assert_eq!(expired, vec!["c#OLD=".to_string()]);
        let unreadable: Item = HashMap::from([("c#AAA=".into(), s("soon"))]);
        assert_eq!(expired_connections(&unreadable, 100), vec!["c#AAA="]);
    }
}
