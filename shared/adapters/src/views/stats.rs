//! The daily statistics: for each stream batch, one item per counter listing the notifications
//! that reached its outcome (with an SMS's segments), put with the batch's other writes and
//! counted when asked. A batch of a hundred outcomes costs a write unit or two, not a hundred.
//!
//! An item is named by its content (a hash of the notifications it lists): a batch replayed
//! whole puts the same item again, and one retried with other bounds puts another item that
//! names some notifications a second time; counting counts each notification once. No item
//! ever replaces another with fewer notifications. Counters would need a marker per outcome
//! written in a transaction with them (four write units per outcome) and would put a whole
//! organization's day on a few items.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use futures::future::try_join_all;
use herald_core::ids::OrgId;
use herald_core::model::Channel;
use herald_core::ports::PortError;
use herald_core::projection::{StatCount, StatEvent, StatKey, StatOutcome};
use uuid::Uuid;

use super::{DynamoViews, Item, Write, key, n};

/// A day's items are spread over this many partitions, so a busy organization's writes are
/// not held to one partition's throughput; counting reads them all.
const STAT_SHARDS: u32 = 16;

/// At most this many notifications in one item (about 45 bytes each: well under DynamoDB's
/// 400 KB an item).
const OUTCOMES_PER_ITEM: usize = 1000;

/// The attribute listing an item's notifications, each with its SMS segments (0 for others).
const OUTCOMES: &str = "outcomes";
/// Sent and delivered items: each notification's milliseconds from creation to the outcome.
const LATENCIES: &str = "latency";

/// The namespace of the items' content hashes (a UUID v5 of the sorted notification ids).
const STATS_NAMESPACE: Uuid = Uuid::from_u128(0x6865_7261_6c64_2d73_7461_7473_2d76_3100);

fn stats_pk(org: &OrgId, day: NaiveDate, shard: u32) -> String {
    format!("STATS#{org}#{day}#{shard}")
}

fn shard_of(name: &str) -> u32 {
    name.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % STAT_SHARDS
}

/// `type#channel#outcome#name`: the counter an item adds to, then which item it is.
fn outcome_sk(k: &StatKey, name: &str) -> String {
    format!(
        "{}#{}#{}#{name}",
        k.notification_type,
        k.channel,
        k.outcome.as_str()
    )
}

/// The counter an item's sort key names, and the rest of the key: the item's name (before
/// items listed their notifications, the one notification it counted).
fn counter_of(org: &OrgId, day: NaiveDate, sk: &str) -> Option<(StatKey, String)> {
    let mut parts = sk.rsplitn(4, '#');
    let name = parts.next()?.to_string();
    let outcome: StatOutcome =
        serde_json::from_value(serde_json::Value::String(parts.next()?.to_string())).ok()?;
    let channel: Channel = parts.next()?.parse().ok()?;
    let notification_type = parts.next()?.to_string();
    let key = StatKey {
        org_id: org.clone(),
        day,
        notification_type,
        channel,
        outcome,
    };
    Some((key, name))
}

fn number(value: &AttributeValue) -> Option<u64> {
    value.as_n().ok()?.parse().ok()
}

/// The latencies an item lists, by notification (none in older items).
fn latencies_of(item: &Item) -> Vec<(String, u64)> {
    item.get(LATENCIES)
        .and_then(|l| l.as_m().ok())
        .map(|listed| {
            listed
                .iter()
                .filter_map(|(id, ms)| Some((id.clone(), number(ms)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The notifications an item counts, with their segments.
fn outcomes_of(item: &Item, name: String) -> Option<Vec<(String, u64)>> {
    match item.get(OUTCOMES) {
        Some(listed) => listed
            .as_m()
            .ok()?
            .iter()
            .map(|(id, segments)| Some((id.clone(), number(segments)?)))
            .collect(),
        // an item of one outcome, keyed by its notification
        None => Some(vec![(
            name,
            item.get("segments").and_then(number).unwrap_or(0),
        )]),
    }
}

impl DynamoViews {
    /// The puts of a batch's outcomes: one item per counter (per thousand notifications).
    pub(super) fn stat_writes(events: Vec<&StatEvent>) -> Vec<Write> {
        let mut counters: BTreeMap<&StatKey, BTreeMap<&str, &StatEvent>> = BTreeMap::new();
        for e in events {
            counters
                .entry(&e.key)
                .or_default()
                .insert(e.notification_id.as_str(), e);
        }
        let mut writes = Vec::new();
        for (counter, outcomes) in counters {
            let outcomes: Vec<(&str, &StatEvent)> = outcomes.into_iter().collect();
            for chunk in outcomes.chunks(OUTCOMES_PER_ITEM) {
                let ids: Vec<&str> = chunk.iter().map(|(id, _)| *id).collect();
                let name = Uuid::new_v5(&STATS_NAMESPACE, ids.join(",").as_bytes())
                    .simple()
                    .to_string();
                let pk = stats_pk(&counter.org_id, counter.day, shard_of(&name));
                let sk = outcome_sk(counter, &name);
                let mut item = key(pk.clone(), sk.clone());
                let listed = chunk
                    .iter()
                    .map(|(id, e)| (id.to_string(), n(u64::from(e.sms_segments))))
                    .collect();
                item.insert(OUTCOMES.into(), AttributeValue::M(listed));
                let latencies: HashMap<String, AttributeValue> = chunk
                    .iter()
                    .filter_map(|(id, e)| Some((id.to_string(), n(e.latency_ms?))))
                    .collect();
                if !latencies.is_empty() {
                    item.insert(LATENCIES.into(), AttributeValue::M(latencies));
                }
                writes.push(((pk, sk), Some(item)));
            }
        }
        writes
    }

    /// The day's counters: every shard read, each notification counted once per counter.
    pub(super) async fn count_stats(
        &self,
        org: &OrgId,
        day: NaiveDate,
    ) -> Result<Vec<StatCount>, PortError> {
        let shards =
            try_join_all((0..STAT_SHARDS).map(|s| self.query(stats_pk(org, day, s), true, None)))
                .await?;
        let mut counters: BTreeMap<StatKey, BTreeMap<String, u64>> = BTreeMap::new();
        let mut latencies: BTreeMap<StatKey, BTreeMap<String, u64>> = BTreeMap::new();
        for item in shards.into_iter().flatten() {
            let (counter, outcomes) = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| counter_of(org, day, sk))
                .and_then(|(counter, name)| Some((counter, outcomes_of(&item, name)?)))
                .ok_or_else(|| PortError::new("deserialize stats", "an outcome item"))?;
            latencies
                .entry(counter.clone())
                .or_default()
                .extend(latencies_of(&item));
            counters.entry(counter).or_default().extend(outcomes);
        }
        Ok(counters
            .into_iter()
            .map(|(key, outcomes)| {
                // each notification's latency once, however many items list it
                let latencies_ms = latencies
                    .remove(&key)
                    .map(|by_id| by_id.into_values().collect())
                    .unwrap_or_default();
                StatCount {
                    key,
                    count: outcomes.len() as u64,
                    sms_segments: outcomes.values().sum(),
                    latencies_ms,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_key_names_its_counter_back() {
        let org = OrgId::parse("org_acme").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let key = StatKey {
            org_id: org.clone(),
            day,
            notification_type: "order_confirmation".into(),
            channel: Channel::Sms,
            outcome: StatOutcome::Delivered,
        };
        let name = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            counter_of(&org, day, &outcome_sk(&key, name)),
            Some((key, name.to_string()))
        );
        assert_eq!(counter_of(&org, day, "nonsense"), None);
        assert!(shard_of(name) < STAT_SHARDS);
    }
}
