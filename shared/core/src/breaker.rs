//! Circuit breakers, one per organization and provider, shared by every dispatcher through the
//! [`Breakers`] port: provider-level failures within a window open the breaker for a cooling
//! period, during which dispatch skips the provider without calling it; then one probe goes
//! through (half-open), and its answer closes the breaker or opens it again.
//!
//! Dispatch reads the state through [`BreakerBoard`], a cache of a few seconds, so a provider
//! that works costs no request: the store is written only when something failed, and read
//! once per cache period per organization.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;
use crate::model::DeliveryService;
use crate::ports::Breakers;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Provider-level failures within `window` that open the breaker.
    pub failures_to_open: u32,
    pub window: Duration,
    /// How long an open breaker keeps the provider out before a probe.
    pub cooling: Duration,
    /// How long a probe holds the half-open breaker before another may try.
    pub probe_lease: Duration,
    /// How long a dispatcher trusts the state it read.
    pub cache_ttl: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures_to_open: 5,
            window: Duration::from_secs(60),
            cooling: Duration::from_secs(60),
            probe_lease: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(5),
        }
    }
}

/// A breaker as stored. The default is closed with no failures: what a provider that never
/// failed has (and has no item for).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// Provider-level failures since `window_start`.
    pub failures: u32,
    #[serde(
        default,
        with = "crate::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub window_start: Option<DateTime<Utc>>,
    /// Set while open (and half-open, once it has passed).
    #[serde(
        default,
        with = "crate::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_until: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "crate::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub opened_at: Option<DateTime<Utc>>,
    /// The half-open probe's lease.
    #[serde(
        default,
        with = "crate::time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub probe_until: Option<DateTime<Utc>>,
}

/// What a breaker lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// Keep the provider out until then.
    Open {
        until: DateTime<Utc>,
    },
    /// The cooling period is over: one probe may go (whoever takes it first).
    HalfOpen,
}

impl BreakerState {
    pub fn gate(&self, now: DateTime<Utc>) -> Gate {
        match self.open_until {
            None => Gate::Closed,
            Some(until) if now < until => Gate::Open { until },
            Some(_) => match self.probe_until {
                Some(lease) if now < lease => Gate::Open { until: lease },
                _ => Gate::HalfOpen,
            },
        }
    }

    /// Whether a success has anything to close or reset.
    pub fn is_clean(&self) -> bool {
        self.failures == 0 && self.open_until.is_none()
    }
}

/// What recording a failure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub state: BreakerState,
    /// This failure opened the breaker (it was closed, or a probe failed).
    pub opened: bool,
}

/// The breakers' state as this dispatcher last read or wrote it, over the shared store.
pub struct BreakerBoard {
    store: Arc<dyn Breakers>,
    policy: BreakerPolicy,
    seen: Mutex<HashMap<(OrgId, DeliveryService), Seen>>,
}

/// A breaker's state and when it was read.
type Seen = (DateTime<Utc>, BreakerState);

/// Organizations whose state is kept at most: beyond, the oldest copies go.
const CACHED: usize = 4096;

impl BreakerBoard {
    pub fn new(store: Arc<dyn Breakers>, policy: BreakerPolicy) -> Self {
        BreakerBoard {
            store,
            policy,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, read_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        read_at <= now && now < read_at + chrono_of(self.policy.cache_ttl)
    }

    fn cached(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        now: DateTime<Utc>,
    ) -> Option<BreakerState> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(&(org.clone(), provider))
            .filter(|(at, _)| self.fresh(*at, now))
            .map(|(_, state)| state.clone())
    }

    fn keep(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        state: BreakerState,
        now: DateTime<Utc>,
    ) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= CACHED {
            seen.retain(|_, (at, _)| self.fresh(*at, now));
        }
        seen.insert((org.clone(), provider), (now, state));
    }

    /// Reads the breakers of these providers that are not cached, together: a dispatcher
    /// calls it once per batch with every route the batch takes. A failed read leaves them
    /// uncached, and so closed (a breaker protects, it never stops sending).
    pub async fn prefetch(&self, keys: &[(OrgId, DeliveryService)], now: DateTime<Utc>) {
        let mut missing: Vec<(OrgId, DeliveryService)> = keys
            .iter()
            .filter(|(org, p)| self.cached(org, *p, now).is_none())
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return;
        }
        match self.store.read(&missing).await {
            Ok(mut read) => {
                for (org, provider) in missing {
                    let state = read.remove(&(org.clone(), provider)).unwrap_or_default();
                    self.keep(&org, provider, state, now);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "breakers unreadable; every provider is let through")
            }
        }
    }

    /// A breaker's state as last read (closed when never read or unreadable).
    pub fn state(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        now: DateTime<Utc>,
    ) -> BreakerState {
        self.cached(org, provider, now).unwrap_or_default()
    }

    /// How long a message passed over for another's probe waits: the probe's lease.
    pub fn probe_wait(&self) -> chrono::Duration {
        chrono_of(self.policy.probe_lease)
    }

    /// Takes the half-open breaker's probe: whether this dispatcher may call the provider.
    pub async fn take_probe(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        now: DateTime<Utc>,
    ) -> bool {
        let lease = now + chrono_of(self.policy.probe_lease);
        match self.store.take_probe(org, provider, now, lease).await {
            Ok(Some(state)) => {
                self.keep(org, provider, state, now);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "breaker probe unreadable; the provider is kept out");
                false
            }
        }
    }

    /// Records a provider-level failure; whether it opened the breaker.
    pub async fn failed(&self, org: &OrgId, provider: DeliveryService, now: DateTime<Utc>) -> bool {
        match self.store.failure(org, provider, now, &self.policy).await {
            Ok(recorded) => {
                if recorded.opened {
                    tracing::warn!(
                        %org,
                        provider = provider.as_str(),
                        until = ?recorded.state.open_until,
                        "circuit breaker opened: the provider is passed over until then"
                    );
                }
                self.keep(org, provider, recorded.state, now);
                recorded.opened
            }
            Err(e) => {
                tracing::warn!(error = %e, "breaker failure not recorded");
                false
            }
        }
    }

    /// Records a success: closes the breaker, if the state this dispatcher saw had anything
    /// to close (a working provider's success writes nothing).
    pub async fn succeeded(
        &self,
        org: &OrgId,
        provider: DeliveryService,
        seen: &BreakerState,
        now: DateTime<Utc>,
    ) {
        if seen.is_clean() {
            return;
        }
        match self.store.close(org, provider).await {
            Ok(()) => self.keep(org, provider, BreakerState::default(), now),
            Err(e) => tracing::warn!(error = %e, "breaker not closed"),
        }
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A failure applied to a state, as every store applies it: within the window it counts one
/// more, else it starts a new window; reaching the policy's count opens a closed breaker, and
/// a failure after the cooling period (a probe's) opens it again.
pub fn after_failure(
    mut state: BreakerState,
    now: DateTime<Utc>,
    policy: &BreakerPolicy,
) -> Recorded {
    let window_open = state
        .window_start
        .is_some_and(|start| now < start + chrono_of(policy.window));
    if window_open {
        state.failures = state.failures.saturating_add(1);
    } else {
        state.failures = 1;
        state.window_start = Some(now);
    }
    let opened = match state.open_until {
        Some(until) if now < until => false, // open already
        Some(_) => true,                     // cooled: the probe (or a late caller) failed
        None => state.failures >= policy.failures_to_open,
    };
    if opened {
        state.open_until = Some(now + chrono_of(policy.cooling));
        state.opened_at = Some(now);
        state.probe_until = None;
    }
    Recorded { state, opened }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + i64::from(s), 0).unwrap_or_default()
    }

    #[test]
    fn five_failures_in_the_window_open_it_for_the_cooling_period_then_one_probe() {
        let policy = BreakerPolicy::default();
        let mut state = BreakerState::default();
        for s in 0..4 {
            let r = after_failure(state, t(s), &policy);
            assert!(!r.opened);
            state = r.state;
        }
        assert_eq!(state.gate(t(4)), Gate::Closed);
        let r = after_failure(state, t(4), &policy);
        assert!(r.opened);
        assert_eq!(r.state.gate(t(5)), Gate::Open { until: t(64) });
        assert_eq!(r.state.gate(t(64)), Gate::HalfOpen);
        // a probe holds it; its failure opens it again
        let mut probing = r.state.clone();
        probing.probe_until = Some(t(94));
        assert_eq!(probing.gate(t(70)), Gate::Open { until: t(94) });
        let again = after_failure(probing, t(70), &policy);
        assert!(again.opened);
        assert_eq!(again.state.gate(t(71)), Gate::Open { until: t(130) });
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_open_it() {
        let policy = BreakerPolicy::default();
        let mut state = BreakerState::default();
        for s in [0, 30, 61, 90, 125, 150] {
            let r = after_failure(state, t(s), &policy);
            assert!(!r.opened, "at {s}");
            state = r.state;
        }
        assert!(state.failures < 5);
    }
}
