//! Another try for what a batch call left undone (unprocessed items or keys, failed entries):
//! exponential backoff with full jitter, as AWS advises, in a bounded number of attempts.
//! What is still undone after the last one is reported as an error, never dropped.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use herald_core::ports::PortError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How often, and after how long a wait, a batch call sends again what was left undone.
///
/// The wait before retry `n` (1-based) is drawn uniformly from `0..=min(cap, base × 2^(n-1))`
/// ("full jitter"), so callers throttled together spread out instead of retrying in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    attempts: u32,
    base: Duration,
    cap: Duration,
    rng: Arc<Mutex<StdRng>>,
}

impl Default for Backoff {
    /// Five attempts, waits from up to 50 ms growing to at most 2 s.
    fn default() -> Self {
        Backoff::new(5, Duration::from_millis(50), Duration::from_secs(2))
    }
}

impl Backoff {
    /// `attempts` sends in all (at least one), the first wait drawn from `0..=base`, no wait
    /// longer than `cap`; the randomness seeded from the operating system.
    pub fn new(attempts: u32, base: Duration, cap: Duration) -> Self {
        Backoff {
            attempts: attempts.max(1),
            base,
            cap,
            rng: Arc::new(Mutex::new(StdRng::from_os_rng())),
        }
    }

    /// The same, with the jitter drawn from a generator seeded with `seed` (for tests).
    pub fn seeded(self, seed: u64) -> Self {
        Backoff {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            ..self
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before retry `retry` (1 for the second attempt).
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2_u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.cap);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        let drawn = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0..=ceiling_us);
        Duration::from_micros(drawn)
    }

    /// Sends `pending` with `attempt`, then what each attempt left undone, until nothing is
    /// left or the attempts run out; returns what every attempt gave back. An attempt's own
    /// error ends the call at once.
    pub(crate) async fn until_done<T, R, F, Fut>(
        &self,
        operation: &'static str,
        pending: Vec<T>,
        attempt: F,
    ) -> Result<Vec<R>, PortError>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Round<T, R>, PortError>>,
    {
        let total = pending.len();
        let last = self.leaving_undone(pending, attempt).await?;
        if last.left.is_empty() {
            return Ok(last.done);
        }
        Err(PortError::new(
            operation,
            Unprocessed {
                left: last.left.len(),
                total,
                attempts: self.attempts,
                why: last.why.unwrap_or_else(|| "throttled".into()),
            },
        ))
    }

    /// The same, answering what was still undone after the last attempt (and why) instead of
    /// failing: for callers that report the entries that failed one by one.
    pub(crate) async fn leaving_undone<T, R, F, Fut>(
        &self,
        pending: Vec<T>,
        mut attempt: F,
    ) -> Result<Round<T, R>, PortError>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Round<T, R>, PortError>>,
    {
        let mut pending = pending;
        let mut done = Vec::new();
        let mut why = None;
        for n in 0..self.attempts {
            if pending.is_empty() {
                break;
            }
            if n > 0 {
                let wait = self.delay(n);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let round = attempt(pending).await?;
            done.extend(round.done);
            pending = round.left;
            why = round.why;
        }
        Ok(Round {
            done,
            left: pending,
            why,
        })
    }
}

/// What one attempt of a batch call did: what it gave back, and what it left undone (and why).
pub(crate) struct Round<T, R> {
    pub done: Vec<R>,
    pub left: Vec<T>,
    pub why: Option<String>,
}

impl<T, R> Round<T, R> {
    pub fn new(done: Vec<R>, left: Vec<T>) -> Self {
        Round {
            done,
            left,
            why: None,
        }
    }

    pub fn because(self, why: impl Into<String>) -> Self {
        Round {
            why: Some(why.into()),
            ..self
        }
    }
}

/// Part of a batch call still undone after its last attempt. The whole call may be tried
/// again later; writes that went through are idempotent.
#[derive(Debug, thiserror::Error)]
#[error("{left} of {total} stayed unprocessed after {attempts} attempts ({why})")]
pub struct Unprocessed {
    pub left: usize,
    pub total: usize,
    pub attempts: u32,
    pub why: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn quick() -> Backoff {
        Backoff::new(4, Duration::from_millis(1), Duration::from_millis(3)).seeded(7)
    }

    #[test]
    fn waits_grow_exponentially_up_to_the_cap_and_never_exceed_it() {
        let b = Backoff::new(10, Duration::from_millis(10), Duration::from_millis(80)).seeded(1);
        for _ in 0..200 {
            assert!(b.delay(1) <= Duration::from_millis(10));
            assert!(b.delay(2) <= Duration::from_millis(20));
            assert!(b.delay(3) <= Duration::from_millis(40));
            assert!(b.delay(9) <= Duration::from_millis(80));
            assert!(b.delay(u32::MAX) <= Duration::from_millis(80));
        }
        // full jitter: the whole range is used, not only its top
        let late: Vec<Duration> = (0..200).map(|_| b.delay(9)).collect();
        assert!(late.iter().any(|d| *d < Duration::from_millis(40)));
        assert!(late.iter().any(|d| *d > Duration::from_millis(40)));
    }

    #[test]
    fn the_same_seed_draws_the_same_waits() {
        let draw = |b: Backoff| (1..6).map(|n| b.delay(n)).collect::<Vec<_>>();
        assert_eq!(draw(quick()), draw(quick()));
    }

    #[test]
    fn no_base_means_no_wait() {
        let b = Backoff::new(3, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(b.delay(1), Duration::ZERO);
        assert_eq!(b.delay(30), Duration::ZERO);
    }

    #[tokio::test]
    async fn what_was_left_is_sent_again_until_done() {
        let mut sent = Vec::new();
        let done = quick()
            .until_done("op", vec![1, 2, 3], |pending: Vec<u32>| {
                sent.push(pending.clone());
                async move {
                    // each attempt does the first and leaves the rest
                    let (first, rest) = pending.split_at(1);
                    Ok(Round::new(first.to_vec(), rest.to_vec()))
                }
            })
            .await
            .unwrap();
        assert_eq!(done, vec![1, 2, 3]);
        assert_eq!(sent, vec![vec![1, 2, 3], vec![2, 3], vec![3]]);
    }

    #[tokio::test]
    async fn what_is_still_left_after_the_last_attempt_is_reported() {
        let mut calls = 0;
        let err = quick()
            .until_done(
                "dynamodb BatchWriteItem",
                vec![1, 2, 3, 4, 5, 6],
                |pending: Vec<u32>| {
                    calls += 1;
                    let left = pending[1..].to_vec();
                    async move { Ok(Round::<u32, ()>::new(vec![], left).because("SlowDown")) }
                },
            )
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(calls, 4);
        assert_eq!(
            err,
            "dynamodb BatchWriteItem failed: 2 of 6 stayed unprocessed after 4 attempts (SlowDown)"
        );
    }

    #[tokio::test]
    async fn an_attempts_own_error_ends_the_call() {
        let mut calls = 0;
        let err = quick()
            .until_done("op", vec![1], |_: Vec<u32>| {
                calls += 1;
                async { Err::<Round<u32, ()>, _>(PortError::new("op", "throttled")) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.to_string(), "op failed: throttled");
    }
}
