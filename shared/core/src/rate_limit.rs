//! Rate limits per organization and channel: messages per second (a token bucket holding one
//! second's worth) and per day. Over the limit a notification is delayed, back on the queue for
//! the time the bucket says, never dropped and never counted as an attempt.
//!
//! The bucket is kept as the generic cell rate algorithm keeps it, a single instant (the
//! "theoretical arrival time"): the same admissions as a token bucket refilled continuously,
//! and one number to update atomically, so a store takes a batch's messages in one
//! conditional write.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::InvalidValue;
use crate::model::Channel;

/// The highest rate a limit may set: far above any provider's, low enough that the interval
/// between two messages is a whole number of microseconds.
pub const MAX_PER_SECOND: u32 = 10_000;
/// The highest daily count a limit may set.
pub const MAX_PER_DAY: u32 = 100_000_000;

/// One channel's limits; a limit left out does not apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
}

impl ChannelLimit {
    pub fn is_empty(&self) -> bool {
        self.per_second.is_none() && self.per_day.is_none()
    }

    fn validate(&self, channel: Channel) -> Result<(), InvalidValue> {
        let check = |name: &str, value: Option<u32>, max: u32| match value {
            Some(v) if v == 0 || v > max => Err(InvalidValue(format!(
                "{channel}.{name}: must be 1 to {max}"
            ))),
            _ => Ok(()),
        };
        check("per_second", self.per_second, MAX_PER_SECOND)?;
        check("per_day", self.per_day, MAX_PER_DAY)
    }
}

/// The limits of each channel. A channel an organization's limits do not name takes the
/// deployment's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RateLimits(BTreeMap<Channel, ChannelLimit>);

impl RateLimits {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn channel(&self, channel: Channel) -> Option<ChannelLimit> {
        self.0.get(&channel).copied().filter(|l| !l.is_empty())
    }

    /// Every limit within its bounds; in-app, which reaches no provider, takes none.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        for (channel, limit) in &self.0 {
            if *channel == Channel::InApp {
                return Err(InvalidValue("in_app: the feed takes no rate limit".into()));
            }
            limit.validate(*channel)?;
        }
        Ok(())
    }

    /// The deployment's setting: `sms=5/s,10000/d;email=100/s` (a rate per second, per day,
    /// or both, per channel).
    pub fn parse_setting(value: &str) -> Result<RateLimits, InvalidValue> {
        let mut limits = BTreeMap::new();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (channel, spec) = part
                .split_once('=')
                .ok_or_else(|| InvalidValue(format!("{part}: expected channel=rate")))?;
            let channel: Channel = channel
                .trim()
                .parse()
                .map_err(|_| InvalidValue(format!("{part}: unknown channel")))?;
            let mut limit = ChannelLimit::default();
            for rate in spec.split(',').map(str::trim) {
                let number = |unit: &str| {
                    rate.strip_suffix(unit)
                        .and_then(|n| n.trim().parse::<u32>().ok())
                };
                match (number("/s"), number("/d")) {
                    (Some(n), _) => limit.per_second = Some(n),
                    (_, Some(n)) => limit.per_day = Some(n),
                    _ => {
                        return Err(InvalidValue(format!(
                            "{part}: expected a rate like 5/s or 10000/d"
                        )));
                    }
                }
            }
            limits.insert(channel, limit);
        }
        let limits = RateLimits(limits);
        limits.validate()?;
        Ok(limits)
    }
}

/// The limit a channel's messages of an organization are held to: its own, else the
/// deployment's.
pub fn limit_for(
    org: &RateLimits,
    deployment: &RateLimits,
    channel: Channel,
) -> Option<ChannelLimit> {
    org.channel(channel).or_else(|| deployment.channel(channel))
}

/// A bucket as stored: the per-second bucket's theoretical arrival time (none: never used)
/// and the messages counted on its day (a UTC calendar day).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tat: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
    #[serde(default)]
    pub used: u32,
}

/// How much of a batch a bucket lets through now, and when each message left over may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Messages that may go now.
    pub granted: u32,
    /// The per-second pace of the left-over messages: the first's time and the interval.
    pace: Option<(DateTime<Utc>, Duration)>,
    /// How many left-over messages today still has room for; the rest wait for tomorrow.
    day_left: Option<u32>,
    tomorrow: DateTime<Utc>,
}

impl Admission {
    /// Nothing may go before `at`, when the messages are counted again.
    pub fn none(at: DateTime<Utc>) -> Admission {
        Admission {
            granted: 0,
            pace: None,
            day_left: Some(0),
            tomorrow: at,
        }
    }

    /// When the `i`-th message left over (from 0) may go: paced one interval apart, and past
    /// the day's count at the start of the next day (paced from there).
    pub fn free_at(&self, i: u32) -> DateTime<Utc> {
        let step = |from: DateTime<Utc>, n: u32| match self.pace {
            Some((_, t)) => from + t * i32::try_from(n).unwrap_or(i32::MAX),
            None => from,
        };
        match (self.day_left, self.pace) {
            (Some(left), _) if i >= left => step(self.tomorrow, i - left),
            (_, Some((first, _))) => step(first, i),
            _ => self.tomorrow,
        }
    }
}

/// The interval between two messages at `per_second`.
pub fn interval(per_second: u32) -> Duration {
    Duration::microseconds(1_000_000 / i64::from(per_second.clamp(1, MAX_PER_SECOND)))
}

/// Takes up to `want` messages from a bucket at `now` under `limit`: what may go, and the
/// bucket with them counted.
pub fn take(
    bucket: &Bucket,
    now: DateTime<Utc>,
    want: u32,
    limit: ChannelLimit,
) -> (Admission, Bucket) {
    let today = now.date_naive();
    let used = if bucket.day == Some(today) {
        bucket.used
    } else {
        0
    };
    let day_room = limit.per_day.map(|d| d.saturating_sub(used));
    let fits_today = day_room.map_or(want, |room| want.min(room));
    let (granted, tat, pace) = match limit.per_second {
        Some(rate) => {
            let (granted, tat, first_free) = gcra(bucket.tat, now, fits_today, rate);
            (granted, Some(tat), Some((first_free, interval(rate))))
        }
        None => (fits_today, bucket.tat, None),
    };
    let tomorrow = today
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(now, |t| t.and_utc());
    let admission = Admission {
        granted,
        pace,
        day_left: day_room.map(|room| room - granted),
        tomorrow,
    };
    let bucket = Bucket {
        tat,
        day: Some(today),
        used: used.saturating_add(granted),
    };
    (admission, bucket)
}

/// Admits up to `want` messages into a bucket of `per_second` that holds one second's worth,
/// whose theoretical arrival time is `tat`: how many, the new arrival time, and when the first
/// message left over may go.
fn gcra(
    tat: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    want: u32,
    per_second: u32,
) -> (u32, DateTime<Utc>, DateTime<Utc>) {
    let t = interval(per_second);
    // a burst of `per_second` messages at once: the last may run this far ahead of now
    let tolerance = t * i32::try_from(per_second.clamp(1, MAX_PER_SECOND) - 1).unwrap_or(0);
    let start = tat.filter(|tat| *tat > now).unwrap_or(now);
    let ahead = start - now;
    let room = if ahead > tolerance {
        0
    } else {
        let spare = (tolerance - ahead).num_microseconds().unwrap_or(0);
        let step = t.num_microseconds().unwrap_or(1).max(1);
        u32::try_from(spare / step + 1).unwrap_or(u32::MAX)
    };
    let granted = room.min(want);
    let tat = start + t * i32::try_from(granted).unwrap_or(i32::MAX);
    (granted, tat, (tat - tolerance).max(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        // 2026-09-21T13:33:20Z
        DateTime::from_timestamp_millis(1_790_000_000_000 + ms).unwrap_or_default()
    }

    fn per_second(n: u32) -> ChannelLimit {
        ChannelLimit {
            per_second: Some(n),
            per_day: None,
        }
    }

    #[test]
    fn an_idle_bucket_lets_one_seconds_worth_through_at_once_then_one_per_interval() {
        let (first, bucket) = take(&Bucket::default(), at(0), 50, per_second(5));
        assert_eq!(first.granted, 5);
        assert_eq!(bucket.tat, Some(at(1000)));
        assert_eq!(first.free_at(0), at(200));
        assert_eq!(first.free_at(2), at(600));
        // 200 ms later one more fits, then none
        let (next, bucket) = take(&bucket, at(200), 45, per_second(5));
        assert_eq!(next.granted, 1);
        assert_eq!(take(&bucket, at(200), 44, per_second(5)).0.granted, 0);
    }

    #[test]
    fn fifty_messages_at_five_a_second_take_about_ten_seconds() {
        let mut bucket = Bucket::default();
        let mut sent = 0;
        let mut seconds = 0;
        while sent < 50 {
            let (a, b) = take(&bucket, at(seconds * 1000), 50 - sent, per_second(5));
            sent += a.granted;
            bucket = b;
            seconds += 1;
        }
        assert_eq!(seconds, 10);
    }

    #[test]
    fn past_the_days_count_messages_wait_for_the_next_utc_day() {
        let limit = ChannelLimit {
            per_second: Some(10),
            per_day: Some(12),
        };
        let (a, bucket) = take(&Bucket::default(), at(0), 10, limit);
        assert_eq!((a.granted, bucket.used), (10, 10));
        let (b, bucket) = take(&bucket, at(5_000), 10, limit);
        assert_eq!(b.granted, 2);
        let midnight = "2026-09-22T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(b.free_at(0), midnight);
        assert_eq!(b.free_at(3), midnight + Duration::milliseconds(300));
        // the next day counts afresh
        let (c, bucket) = take(&bucket, midnight, 10, limit);
        assert_eq!((c.granted, bucket.used), (10, 10));
    }

    #[test]
    fn a_daily_limit_alone_lets_everything_through_until_the_count() {
        let limit = ChannelLimit {
            per_second: None,
            per_day: Some(3),
        };
        let (a, _) = take(&Bucket::default(), at(0), 5, limit);
        assert_eq!(a.granted, 3);
        assert_eq!(
            a.free_at(1),
            "2026-09-22T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn limits_name_the_channel_and_bound_in_their_error() {
        let err = RateLimits::parse_setting("sms=0/s").unwrap_err();
        assert_eq!(err.0, "sms.per_second: must be 1 to 10000");
        assert!(RateLimits::parse_setting("in_app=5/s").is_err());
        assert!(RateLimits::parse_setting("sms=5 a second").is_err());
        let limits = RateLimits::parse_setting("sms=5/s,10000/d; email=100/s").unwrap();
        assert_eq!(
            limits.channel(Channel::Sms),
            Some(ChannelLimit {
                per_second: Some(5),
                per_day: Some(10_000)
            })
        );
        assert_eq!(limits.channel(Channel::Push), None);
    }
}
