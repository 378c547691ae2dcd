//! Scheduling: how long a notification waits for its time.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How long from `now` until `t` (zero if it has passed), rounded up to whole seconds so a
/// delayed message never arrives before its time.
pub fn wait(now: DateTime<Utc>, t: DateTime<Utc>) -> Duration {
    let w = (t - now).to_std().unwrap_or(Duration::ZERO);
    Duration::from_secs(w.as_secs() + u64::from(w.subsec_nanos() > 0))
}
