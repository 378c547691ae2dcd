//! The directory table: customers, organization settings, the suppression list and the
//! owners of sending identities.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use herald_core::consent::SuppressionKey;
use herald_core::directory::{CustomerRecord, OrgSettings, Versioned};
use herald_core::identity::SenderIdentity;
use herald_core::ids::{CustomerId, OrgId};
use herald_core::ports::{Directory, PortError, Snapshot, SnapshotRequest, Write};
use herald_core::time;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::errors::aws;

use super::{
    Item, applied, batch_get_pks, customer_key, get_one, identity_key, org_key, pk_of, s,
    suppression_key,
};

/// The directory table: customers, organization settings, the suppression list.
#[derive(Clone, Debug)]
pub struct DynamoDirectory {
    client: Client,
    table: String,
    backoff: Backoff,
}

impl DynamoDirectory {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDirectory {
            client,
            table: table.into(),
            backoff: Backoff::default(),
        }
    }

    /// How batch calls try again what DynamoDB left unprocessed.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        DynamoDirectory { backoff, ..self }
    }

    /// The stored items of these things, each found by the key `key_of` gives it, in one
    /// BatchGetItem (per 100 keys); things without an item are left out.
    async fn get_keyed<'a, K>(
        &self,
        things: &'a [K],
        key_of: impl Fn(&K) -> String,
        consistent: bool,
    ) -> Result<Vec<(&'a K, Item)>, PortError> {
        let by_pk: HashMap<String, &K> = things.iter().map(|k| (key_of(k), k)).collect();
        let found = batch_get_pks(
            &self.client,
            &self.backoff,
            &self.table,
            by_pk.keys().cloned().collect(),
            consistent,
        )
        .await?;
        Ok(found
            .into_iter()
            .filter_map(|item| {
                let thing = pk_of(&item).and_then(|pk| by_pk.get(pk).copied())?;
                Some((thing, item))
            })
            .collect())
    }

    async fn get_versioned<T: DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<Versioned<T>>, PortError> {
        get_one(&self.client, &self.table, key, "dynamodb GetItem directory")
            .await?
            .map(parse_versioned)
            .transpose()
    }

    async fn put_versioned<T: Serialize>(
        &self,
        key: String,
        value: &T,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        const OP: &str = "dynamodb PutItem directory";
        let record = serde_dynamo::to_attribute_value(value).map_err(|e| PortError::new(OP, e))?;
        let next = expected.map_or(1, |v| v + 1);
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("record", record)
            .item("version", AttributeValue::N(next.to_string()));
        request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        Ok(match applied(OP, request.send().await)? {
            Some(_) => Write::Done,
            None => Write::Conflict,
        })
    }
}

fn parse_versioned<T: DeserializeOwned>(mut item: Item) -> Result<Versioned<T>, PortError> {
    const OP: &str = "deserialize directory record";
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| PortError::new(OP, "version missing"))?;
    let record = item
        .remove("record")
        .ok_or_else(|| PortError::new(OP, "record missing"))?;
    let value = serde_dynamo::from_attribute_value(record).map_err(|e| PortError::new(OP, e))?;
    Ok(Versioned { value, version })
}

#[async_trait]
impl Directory for DynamoDirectory {
    async fn snapshot(&self, request: &SnapshotRequest) -> Result<Snapshot, PortError> {
        let customers: HashMap<String, &(OrgId, CustomerId)> = request
            .customers
            .iter()
            .map(|k| (customer_key(&k.0, &k.1), k))
            .collect();
        let orgs: HashMap<String, &OrgId> = request.orgs.iter().map(|o| (org_key(o), o)).collect();
        let suppressions: HashMap<String, &(OrgId, SuppressionKey)> = request
            .suppression
            .iter()
            .map(|k| (suppression_key(&k.0, &k.1), k))
            .collect();
        let keys: Vec<String> = customers
            .keys()
            .chain(orgs.keys())
            .chain(suppressions.keys())
            .cloned()
            .collect();
        let mut snapshot = Snapshot::default();
        // consent is read strongly: an opt-out a moment ago counts
        for item in batch_get_pks(&self.client, &self.backoff, &self.table, keys, true).await? {
            let Some(pk) = pk_of(&item).map(str::to_owned) else {
                continue;
            };
            if let Some(k) = customers.get(&pk) {
                let record = parse_versioned::<CustomerRecord>(item)?.value;
                snapshot.customers.insert((*k).clone(), record);
            } else if let Some(o) = orgs.get(&pk) {
                let settings = parse_versioned::<OrgSettings>(item)?.value;
                snapshot.orgs.insert((*o).clone(), settings);
            } else if let Some(k) = suppressions.get(&pk) {
                snapshot.suppressed.insert((*k).clone());
            }
        }
        Ok(snapshot)
    }

    async fn get_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
    ) -> Result<Option<Versioned<CustomerRecord>>, PortError> {
        self.get_versioned(customer_key(org, customer)).await
    }

    async fn put_customer(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        record: &CustomerRecord,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        self.put_versioned(customer_key(org, customer), record, expected)
            .await
    }

    async fn get_org_settings(
        &self,
        org: &OrgId,
    ) -> Result<Option<Versioned<OrgSettings>>, PortError> {
        self.get_versioned(org_key(org)).await
    }

    async fn put_org_settings(
        &self,
        org: &OrgId,
        settings: &OrgSettings,
        expected: Option<u64>,
    ) -> Result<Write, PortError> {
        self.put_versioned(org_key(org), settings, expected).await
    }

    async fn suppressed(
        &self,
        org: &OrgId,
        keys: &[SuppressionKey],
    ) -> Result<BTreeSet<SuppressionKey>, PortError> {
        let found = self
            .get_keyed(keys, |k| suppression_key(org, k), false)
            .await?;
        Ok(found.into_iter().map(|(k, _)| k.clone()).collect())
    }

    async fn suppress(
        &self,
        org: &OrgId,
        key: &SuppressionKey,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(suppression_key(org, key)))
            .item("channel", s(key.channel.as_str()))
            .item("reason", s(reason))
            .item("at", s(time::format(&at)))
            .send()
            .await
            .map_err(|e| aws("dynamodb PutItem suppression", e))?;
        Ok(())
    }

    async fn identity_owners(
        &self,
        identities: &[SenderIdentity],
    ) -> Result<BTreeMap<SenderIdentity, OrgId>, PortError> {
        let found = self.get_keyed(identities, identity_key, true).await?;
        Ok(found
            .into_iter()
            .filter_map(|(identity, item)| {
                let owner = item.get("org").and_then(|v| v.as_s().ok())?;
                Some((identity.clone(), OrgId::parse(owner.as_str()).ok()?))
            })
            .collect())
    }

    async fn claim_identity(
        &self,
        org: &OrgId,
        identity: &SenderIdentity,
        at: DateTime<Utc>,
    ) -> Result<OrgId, PortError> {
        const OP: &str = "dynamodb PutItem identity";
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(identity_key(identity)))
            .item("org", s(org.as_str()))
            .item("at", s(time::format(&at)))
            // first come: an identity another organization registered stays theirs
            .condition_expression("attribute_not_exists(pk) OR org = :org")
            .expression_attribute_values(":org", s(org.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(org.clone()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.identity_owners(std::slice::from_ref(identity))
                    .await?
                    .remove(identity)
                    .ok_or_else(|| PortError::new(OP, "the identity's owner vanished"))
            }
            Err(e) => Err(aws(OP, e)),
        }
    }
}
