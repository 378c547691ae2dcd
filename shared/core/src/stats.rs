//! A day's figures per channel, from its counters: what was sent, delivered, bounced and
//! complained of, the bounce and complaint rates among what was sent, and percentiles of the
//! time from a notification's creation to its sending and to its delivery.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::Channel;
use crate::projection::{StatCount, StatOutcome};

/// Milliseconds at the 50th, 90th and 99th percentiles (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
}

impl Percentiles {
    /// `None` for no values.
    pub fn of(mut values: Vec<u64>) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let rank = |p: usize| {
            // the smallest value with at least p% of the values at or below it
            let at = (values.len() * p).div_ceil(100).max(1) - 1;
            values[at.min(values.len() - 1)]
        };
        Some(Percentiles {
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
        })
    }
}

/// One channel's day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelDay {
    pub sent: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub complained: u64,
    /// Bounced and complained among sent; absent when nothing was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complaint_rate: Option<f64>,
    /// From creation to the provider's acceptance, and to the delivery report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_sent_ms: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_delivered_ms: Option<Percentiles>,
}

/// The day's figures of each channel that had any, over every notification type.
pub fn by_channel(counts: &[StatCount]) -> BTreeMap<Channel, ChannelDay> {
    let mut days: BTreeMap<Channel, (ChannelDay, Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for c in counts {
        let (day, to_sent, to_delivered) = days.entry(c.key.channel).or_default();
        match c.key.outcome {
            StatOutcome::Sent => {
                day.sent += c.count;
                to_sent.extend(&c.latencies_ms);
            }
            StatOutcome::Delivered => {
                day.delivered += c.count;
                to_delivered.extend(&c.latencies_ms);
            }
            StatOutcome::Bounced => day.bounced += c.count,
            StatOutcome::Complained => day.complained += c.count,
            StatOutcome::Failed | StatOutcome::Skipped => {}
        }
    }
    days.into_iter()
        .map(|(channel, (mut day, to_sent, to_delivered))| {
            // counts of a day: far below 2^52, exact in an f64
            let rate = |n: u64| (day.sent > 0).then(|| n as f64 / day.sent as f64);
            day.bounce_rate = rate(day.bounced);
            day.complaint_rate = rate(day.complained);
            day.to_sent_ms = Percentiles::of(to_sent);
            day.to_delivered_ms = Percentiles::of(to_delivered);
            (channel, day)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::NaiveDate;

    use super::*;
    use crate::ids::OrgId;
    use crate::projection::StatKey;

    fn count(channel: Channel, outcome: StatOutcome, n: u64, latencies_ms: Vec<u64>) -> StatCount {
        StatCount {
            key: StatKey {
                org_id: OrgId::parse("org_acme").unwrap(),
                day: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
                notification_type: "order_confirmation".into(),
                channel,
                outcome,
            },
            count: n,
            sms_segments: 0,
            latencies_ms,
        }
    }

    #[test]
    fn percentiles_are_the_nearest_rank() {
        let p = Percentiles::of((1..=100).collect()).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50, 90, 99));
        let one = Percentiles::of(vec![7]).unwrap();
        assert_eq!((one.p50, one.p99), (7, 7));
        assert_eq!(Percentiles::of(Vec::new()), None);
    }

    #[test]
    fn rates_are_among_what_was_sent_over_every_type() {
        let days = by_channel(&[
            count(Channel::Email, StatOutcome::Sent, 150, (1..=150).collect()),
            count(Channel::Email, StatOutcome::Sent, 50, vec![10_000; 50]),
            count(Channel::Email, StatOutcome::Bounced, 10, vec![]),
            count(Channel::Email, StatOutcome::Complained, 1, vec![]),
            count(Channel::Sms, StatOutcome::Failed, 3, vec![]),
        ]);
        let email = &days[&Channel::Email];
        assert_eq!((email.sent, email.bounced, email.complained), (200, 10, 1));
        assert_eq!(email.bounce_rate, Some(0.05));
        assert_eq!(email.complaint_rate, Some(0.005));
        assert_eq!(email.to_sent_ms.unwrap().p50, 100);
        assert_eq!(email.to_sent_ms.unwrap().p90, 10_000);
        assert_eq!(email.to_delivered_ms, None);
        // a channel with nothing sent has no rates
        assert_eq!(days[&Channel::Sms].bounce_rate, None);
    }
}
