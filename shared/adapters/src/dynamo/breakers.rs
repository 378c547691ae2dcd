//! The circuit breakers in the directory table, an item per organization and provider
//! (`B#org#provider`), present only while a provider has failed lately: a provider that works
//! has none, so reading the breakers of a route costs one small BatchGetItem per cache period.
//!
//! A failure is counted with a read and a put conditional on the version read, tried again on
//! a conflict, so failures recorded by many dispatchers at once are each counted. Taking the
//! half-open probe is one conditional update: whichever dispatcher's lands first probes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use herald_core::breaker::{BreakerPolicy, BreakerState, Recorded, after_failure};
use herald_core::ids::OrgId;
use herald_core::model::DeliveryService;
use herald_core::ports::{Breakers, PortError};
use herald_core::time;
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::errors::aws;

use super::{Item, applied, batch_get_pks, from_item, get_one, if_at_version, pk_of, s, to_item};

/// How many times a failure is counted again after another dispatcher's write came first.
const CONFLICTS_TOLERATED: u32 = 8;

#[derive(Clone, Debug)]
pub struct DynamoBreakers {
    client: Client,
    table: String,
    backoff: Backoff,
}

/// A breaker's item: its state and the version its conditional writes check.
#[derive(Serialize, Deserialize)]
struct Stored {
    pk: String,
    version: u64,
    #[serde(flatten)]
    state: BreakerState,
}

fn breaker_key(org: &OrgId, provider: DeliveryService) -> String {
    format!("B#{org}#{}", provider.as_str())
}

impl DynamoBreakers {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoBreakers {
            client,
            table: table.into(),
            backoff: Backoff::default(),
        }
    }

    /// How reads try again what DynamoDB left unprocessed.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        DynamoBreakers { backoff, ..self }
    }

    /// Puts the state if the item is still at `version` (0: still absent); `false` when
    /// another write came first.
    async fn put_if_unchanged(&self, stored: &Stored, version: u64) -> Result<bool, PortError> {
        const OP: &str = "dynamodb PutItem breaker";
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(OP, stored)?));
        let request = if_at_version(request, version);
        Ok(applied(OP, request.send().await)?.is_some())
    }
}

fn parse(operation: &'static str, item: Item) -> Result<Stored, PortError> {
    from_item(operation, item)
}

#[async_trait]
impl Breakers for DynamoBreakers {
    async fn read(
        &self,
        keys: &[(OrgId, DeliveryService)],
    ) -> Result<BTreeMap<(OrgId, DeliveryService), BreakerState>, PortError> {
        const OP: &str = "dynamodb BatchGetItem breakers";
        let keyed: BTreeMap<String, &(OrgId, DeliveryService)> =
            keys.iter().map(|k| (breaker_key(&k.0, k.1), k)).collect();
        let items = batch_get_pks(
            &self.client,
            &self.backoff,
            &self.table,
            keyed.keys().cloned().collect(),
            false,
        )
        .await?;
        let mut states = BTreeMap::new();
        for item in items {
            let Some(key) = pk_of(&item).and_then(|pk| keyed.get(pk)).copied() else {
                continue;
            };
            states.insert(key.clone(), parse(OP, item)?.state);
        }
        Ok(states)
    }

    async fn failure(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        now: DateTime<Utc>,
        policy: &BreakerPolicy,
    ) -> Result<Recorded, PortError> {
        const OP: &str = "dynamodb GetItem breaker";
        let pk = breaker_key(org, provider);
        for _ in 0..=CONFLICTS_TOLERATED {
            let (version, state) = match get_one(&self.client, &self.table, pk.clone(), OP).await? {
                Some(item) => {
                    let stored = parse(OP, item)?;
                    (stored.version, stored.state)
                }
                None => (0, BreakerState::default()),
            };
            let recorded = after_failure(state, now, policy);
            let stored = Stored {
                pk: pk.clone(),
                version: version + 1,
                state: recorded.state.clone(),
            };
            if self.put_if_unchanged(&stored, version).await? {
                return Ok(recorded);
            }
        }
        Err(PortError::new(
            "count a provider's failure on its breaker",
            "other dispatchers' writes kept coming first",
        ))
    }

    async fn take_probe(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<BreakerState>, PortError> {
        const OP: &str = "dynamodb UpdateItem breaker probe";
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(breaker_key(org, provider)))
            .update_expression("SET probe_until = :lease, version = version + :one")
            .condition_expression(
                "open_until <= :now AND (attribute_not_exists(probe_until) OR probe_until <= :now)",
            )
            .expression_attribute_values(":lease", s(time::format(&lease_until)))
            .expression_attribute_values(":now", s(time::format(&now)))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        applied(OP, out)?
            .map(|out| Ok(parse(OP, out.attributes.unwrap_or_default())?.state))
            .transpose()
    }

    async fn close(&self, org: &OrgId, provider: DeliveryService) -> Result<(), PortError> {
        const OP: &str = "dynamodb DeleteItem breaker";
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(breaker_key(org, provider)))
            .send()
            .await
            .map_err(|e| aws(OP, e))?;
        Ok(())
    }
}
