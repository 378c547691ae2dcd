//! The sweep: enqueue what has come due (scheduled sends, backoffs longer than the queue can
//! hold, leases of dispatchers that died), from a sharded index, never a table scan.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use tracing::{info, warn};

use crate::ports::{Clock, DispatchMessage, DispatchQueue, DueIndex, DuePage, Enqueue, PortError};

/// How much one sweep does.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Entries read per query.
    pub page: usize,
    /// The most one invocation enqueues; the rest waits for the next tick.
    pub budget: usize,
    /// Shards swept at the same time.
    pub concurrency: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            page: 100,
            budget: 20_000,
            concurrency: 8,
        }
    }
}

/// What a sweep did, and how far behind it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    #[serde(with = "crate::time")]
    pub now: DateTime<Utc>,
    pub enqueued: usize,
    /// Due entries left for the next tick because the budget ran out.
    pub remaining: bool,
    /// The oldest due entry left, if any; how late it already is.
    #[serde(with = "crate::time::option", skip_serializing_if = "Option::is_none")]
    pub oldest_due: Option<DateTime<Utc>>,
    pub lag_seconds: i64,
    /// Index entries that could not be read: set aside (and logged), never blocking the rest.
    #[serde(skip_serializing_if = "is_zero")]
    pub unreadable: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What one shard's sweep did.
#[derive(Debug, Clone, Copy, Default)]
struct ShardSweep {
    enqueued: usize,
    unreadable: usize,
    more: bool,
}

pub struct SchedulerService {
    pub index: Arc<dyn DueIndex>,
    pub queue: Arc<dyn DispatchQueue>,
    pub clock: Arc<dyn Clock>,
    pub config: SweepConfig,
}

impl SchedulerService {
    /// Enqueues every entry due now, up to the budget. Safe to run twice at once: each entry
    /// is enqueued before it leaves the index (a crash in between enqueues it again), and
    /// dispatch's claim sends a notification once however many messages name it.
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self) -> Result<SweepReport, PortError> {
        let now = self.clock.now();
        let shards = self.index.shards().max(1);
        let per_shard = self.config.budget.div_ceil(shards as usize).max(1);
        let results: Vec<ShardSweep> = stream::iter(0..shards)
            .map(|shard| self.sweep_shard(shard, now, per_shard))
            .buffer_unordered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        let enqueued = results.iter().map(|r| r.enqueued).sum();
        let unreadable = results.iter().map(|r| r.unreadable).sum();
        let remaining = results.iter().any(|r| r.more);
        let oldest_due = if remaining {
            self.oldest_due(now, shards).await?
        } else {
            None
        };
        let report = SweepReport {
            now,
            enqueued,
            remaining,
            oldest_due,
            lag_seconds: oldest_due.map_or(0, |t| (now - t).num_seconds().max(0)),
            unreadable,
        };
        info!(
            enqueued,
            unreadable,
            remaining,
            lag_seconds = report.lag_seconds,
            "sweep done"
        );
        Ok(report)
    }

    async fn sweep_shard(
        &self,
        shard: u32,
        now: DateTime<Utc>,
        budget: usize,
    ) -> Result<ShardSweep, PortError> {
        let mut done = ShardSweep::default();
        while done.enqueued < budget {
            let limit = self.config.page.min(budget - done.enqueued);
            let DuePage { due, unreadable } = self.index.due(shard, now, limit).await?;
            let read = due.len() + unreadable.len();
            for entry in &unreadable {
                warn!(key = %entry.key, "an index entry that cannot be read; set aside");
                self.index.set_aside(entry).await?;
            }
            done.unreadable += unreadable.len();
            if !due.is_empty() {
                let messages: Vec<Enqueue> = due
                    .iter()
                    .map(|e| Enqueue {
                        message: DispatchMessage {
                            org_id: e.org_id.clone(),
                            notification_id: e.notification_id.clone(),
                        },
                        delay: std::time::Duration::ZERO,
                    })
                    .collect();
                self.queue.enqueue(&messages).await?;
                stream::iter(&due)
                    .map(|e| self.index.mark_enqueued(e))
                    .buffer_unordered(16)
                    .try_collect::<Vec<()>>()
                    .await?;
                done.enqueued += due.len();
            }
            if read < limit {
                return Ok(done);
            }
        }
        // Full budget: more may wait. The next tick carries on where this one stopped.
        done.more = !self.index.due(shard, now, 1).await?.is_empty();
        Ok(done)
    }

    async fn oldest_due(
        &self,
        now: DateTime<Utc>,
        shards: u32,
    ) -> Result<Option<DateTime<Utc>>, PortError> {
        let heads: Vec<DuePage> = stream::iter(0..shards)
            .map(|shard| self.index.due(shard, now, 1))
            .buffer_unordered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(heads
            .into_iter()
            .flat_map(|page| page.due)
            .map(|e| e.sweep_at)
            .min())
    }
}
