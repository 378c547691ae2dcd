//! The connections table: an item per open connection under its listener (`W#org#customer`,
//! sorted by connection id), so a broadcast reads a customer's connections with one Query.
//! Items carry a TTL a little past API Gateway's two-hour limit: a lost `$disconnect` leaves
//! nothing behind for long.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::ports::{Connections, PortError};
use herald_core::realtime::{Connection, ConnectionId, Listener};

use crate::errors::aws;

use super::s;

#[derive(Clone, Debug)]
pub struct DynamoConnections {
    client: Client,
    table: String,
}

fn listener_key(l: &Listener) -> String {
    format!("W#{}#{}", l.org_id, l.customer_id)
}

impl DynamoConnections {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoConnections {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl Connections for DynamoConnections {
    async fn add(&self, c: &Connection) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(listener_key(&c.listener)))
            .item("sk", s(c.id.as_str()))
            .item(
                "connected_at",
                s(herald_core::time::format(&c.connected_at)),
            )
            .item(
                "expires_at",
                AttributeValue::N(c.expires_at().timestamp().to_string()),
            )
            .send()
            .await
            .map_err(|e| aws("dynamodb PutItem connection", e))?;
        Ok(())
    }

    async fn remove(&self, listener: &Listener, id: &ConnectionId) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(listener_key(listener)))
            .key("sk", s(id.as_str()))
            .send()
            .await
            .map_err(|e| aws("dynamodb DeleteItem connection", e))?;
        Ok(())
    }

    async fn listening(&self, listener: &Listener) -> Result<Vec<ConnectionId>, PortError> {
        const OP: &str = "dynamodb Query connections";
        // A customer has a few connections (a tab, a phone): one page of ids; the items'
        // TTL may lag, so those past it are left out here.
        let now = chrono::Utc::now().timestamp();
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(listener_key(listener)))
            .projection_expression("sk, expires_at")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| aws(OP, e))?;
            let expired = item
                .get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|t| t < now);
            let id = item.get("sk").and_then(|v| v.as_s().ok());
            match id.map(|id| ConnectionId::parse(id.as_str())) {
                Some(Ok(id)) if !expired => ids.push(id),
                Some(Ok(_)) => {}
                _ => return Err(PortError::new(OP, "a connection item has no valid id")),
            }
        }
        Ok(ids)
    }
}
