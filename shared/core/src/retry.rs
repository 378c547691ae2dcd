//! When a soft failure is tried again.

use std::time::Duration;

use thiserror::Error;

/// Exponential backoff with upward jitter: attempt `n` (1-based) that failed softly waits
/// `min(base × factor^(n-1), cap)` plus up to `jitter` of that, so retries of many
/// notifications that failed together spread out instead of arriving as one burst.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. After the last one a soft failure is final.
    pub max_attempts: u32,
    pub base: Duration,
    pub factor: u32,
    pub cap: Duration,
    /// The largest share of the delay added at random (0.1 = up to 10% more).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 5 minutes, 30 minutes, 2 hours, then give up.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base: Duration::from_secs(300),
            factor: 6,
            cap: Duration::from_secs(7200),
            jitter: 0.1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid retry policy: {0}")]
pub struct InvalidPolicy(String);

impl RetryPolicy {
    pub fn new(
        max_attempts: u32,
        base: Duration,
        factor: u32,
        cap: Duration,
    ) -> Result<Self, InvalidPolicy> {
        if max_attempts == 0 {
            return Err(InvalidPolicy("max_attempts must be at least 1".into()));
        }
        if factor == 0 {
            return Err(InvalidPolicy("factor must be at least 1".into()));
        }
        if cap < base {
            return Err(InvalidPolicy("cap must not be below base".into()));
        }
        Ok(RetryPolicy {
            max_attempts,
            base,
            factor,
            cap,
            jitter: 0.1,
        })
    }

    /// The wait before the next try after `attempts` tries have failed softly, or `None` when
    /// there are no tries left.
    /// `chance` is drawn uniformly from [0, 1) (the jitter's share of it).
    pub fn delay_after(&self, attempts: u32, chance: f64) -> Option<Duration> {
        if attempts == 0 || attempts >= self.max_attempts {
            return None;
        }
        let exponent = attempts - 1;
        let grown = self
            .factor
            .checked_pow(exponent)
            .and_then(|f| self.base.checked_mul(f))
            .unwrap_or(self.cap);
        let delay = grown.min(self.cap);
        let extra = delay.mul_f64(self.jitter.max(0.0) * chance.clamp(0.0, 1.0));
        Some(delay + extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_default_waits_5_minutes_30_minutes_then_2_hours_then_gives_up() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        let mins = |d: Duration| d.as_secs() / 60;
        let d1 = p.delay_after(1, rng.random::<f64>()).unwrap();
        let d2 = p.delay_after(2, rng.random::<f64>()).unwrap();
        let d3 = p.delay_after(3, rng.random::<f64>()).unwrap();
        assert!((5..6).contains(&mins(d1)), "{d1:?}");
        assert!((30..34).contains(&mins(d2)), "{d2:?}");
        assert!((120..133).contains(&mins(d3)), "{d3:?}");
        assert_eq!(p.delay_after(4, rng.random::<f64>()), None);
    }

    #[test]
    fn jitter_only_adds_and_stays_within_its_share() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let d = p.delay_after(1, rng.random::<f64>()).unwrap();
            assert!(d >= Duration::from_secs(300) && d <= Duration::from_secs(330));
        }
    }

    #[test]
    fn huge_exponents_stop_at_the_cap() {
        let p = RetryPolicy {
            max_attempts: 100,
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            p.delay_after(60, rng.random::<f64>()),
            Some(Duration::from_secs(7200))
        );
    }

    #[test]
    fn nonsense_policies_are_refused() {
        assert!(RetryPolicy::new(0, Duration::from_secs(1), 2, Duration::from_secs(10)).is_err());
        assert!(RetryPolicy::new(3, Duration::from_secs(10), 2, Duration::from_secs(1)).is_err());
    }
}
