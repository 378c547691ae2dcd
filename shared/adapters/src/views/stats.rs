//! The daily statistics: an item per notification and outcome (with an SMS's segments), put
//! with the batch's other writes, and counted when asked. Counters would need a marker per
//! outcome written in a transaction with them (four write units where this takes one) and
//! would put a whole organization's day on a few items.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::future::try_join_all;
use herald_core::ids::{NotificationId, OrgId};
use herald_core::model::Channel;
use herald_core::ports::PortError;
use herald_core::projection::{StatCount, StatEvent, StatKey, StatOutcome};

use super::{DynamoViews, Write, key, n};

/// A day's outcomes are spread over this many partitions, so a busy organization's writes
/// are not held to one partition's throughput; counting reads them all.
const STAT_SHARDS: u32 = 16;

fn stats_pk(org: &OrgId, day: NaiveDate, shard: u32) -> String {
    format!("STATS#{org}#{day}#{shard}")
}

fn shard_of(id: &NotificationId) -> u32 {
    id.as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % STAT_SHARDS
}

/// `type#channel#outcome#notification`: the counter an outcome goes to, then whose it is.
fn outcome_sk(k: &StatKey, id: &NotificationId) -> String {
    format!(
        "{}#{}#{}#{id}",
        k.notification_type,
        k.channel,
        k.outcome.as_str()
    )
}

/// The counter an outcome item's sort key names.
fn counter_of(org: &OrgId, day: NaiveDate, sk: &str) -> Option<StatKey> {
    let mut parts = sk.rsplitn(4, '#');
    let _notification = parts.next()?;
    let outcome: StatOutcome =
        serde_json::from_value(serde_json::Value::String(parts.next()?.to_string())).ok()?;
    let channel: Channel = parts.next()?.parse().ok()?;
    let notification_type = parts.next()?.to_string();
    Some(StatKey {
        org_id: org.clone(),
        day,
        notification_type,
        channel,
        outcome,
    })
}

impl DynamoViews {
    /// The puts of a batch's outcomes: a replayed one is the same item again, so nothing is
    /// counted twice.
    pub(super) fn stat_writes(events: Vec<&StatEvent>) -> Vec<Write> {
        events
            .into_iter()
            .map(|e| {
                let pk = stats_pk(&e.key.org_id, e.key.day, shard_of(&e.notification_id));
                let sk = outcome_sk(&e.key, &e.notification_id);
                let mut item = key(pk.clone(), sk.clone());
                if e.sms_segments > 0 {
                    item.insert("segments".into(), n(u64::from(e.sms_segments)));
                }
                ((pk, sk), Some(item))
            })
            .collect()
    }

    /// The day's counters: every shard read, its outcomes counted.
    pub(super) async fn count_stats(
        &self,
        org: &OrgId,
        day: NaiveDate,
    ) -> Result<Vec<StatCount>, PortError> {
        let shards =
            try_join_all((0..STAT_SHARDS).map(|s| self.query(stats_pk(org, day, s), true, None)))
                .await?;
        let mut counts: BTreeMap<StatKey, (u64, u64)> = BTreeMap::new();
        for item in shards.into_iter().flatten() {
            let counter = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| counter_of(org, day, sk))
                .ok_or_else(|| PortError::new("deserialize stats", "an outcome's key"))?;
            let segments = item
                .get("segments")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let (count, sms_segments) = counts.entry(counter).or_default();
            *count += 1;
            *sms_segments += segments;
        }
        Ok(counts
            .into_iter()
            .map(|(key, (count, sms_segments))| StatCount {
                key,
                count,
                sms_segments,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcomes_key_names_its_counter_back() {
        let org = OrgId::parse("org_acme").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let key = StatKey {
            org_id: org.clone(),
            day,
            notification_type: "order_confirmation".into(),
            channel: Channel::Sms,
            outcome: StatOutcome::Delivered,
        };
        let id = NotificationId::parse("ntf_0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(counter_of(&org, day, &outcome_sk(&key, &id)), Some(key));
        assert_eq!(counter_of(&org, day, "nonsense"), None);
        assert!(shard_of(&id) < STAT_SHARDS);
    }
}
