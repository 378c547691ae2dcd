//! Rate limits in dispatch: a batch's messages of each limited channel of an organization are
//! counted in its bucket at once; those past what it grants wait, with no attempt spent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tracing::{info, warn};

use super::{DispatchError, DispatchOutcome, DispatchService, Held, Routes};
use crate::consent::Verdict;
use crate::ids::OrgId;
use crate::model::{Channel, Notification, Status};
use crate::rate_limit::{Admission, ChannelLimit};

/// Whether a notification that may leave goes now or waits for its rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Pass {
    Go,
    Wait(DateTime<Utc>),
}

/// How long messages wait when their rate limit's bucket could not be counted: never sent
/// past a limit, so they wait a moment and are counted again.
const LIMITER_UNAVAILABLE_WAIT: chrono::Duration = chrono::Duration::seconds(1);

impl DispatchService {
    /// Whether each notification that may leave goes now or waits for its channel's rate
    /// limit: the messages of each limited channel of an organization are counted in its
    /// bucket at once, those past what it grants wait for the times it gives.
    pub(super) async fn passes(
        &self,
        claims: &[Result<Result<Held, DispatchOutcome>, DispatchError>],
        verdicts: &[Option<Verdict>],
        routes: &Routes,
        now: DateTime<Utc>,
    ) -> Vec<Pass> {
        let mut limited: BTreeMap<(&OrgId, Channel), (ChannelLimit, Vec<usize>)> = BTreeMap::new();
        for (i, (claim, verdict)) in claims.iter().zip(verdicts).enumerate() {
            let (Ok(Ok(held)), Some(Verdict::Send(_))) = (claim, verdict) else {
                continue;
            };
            let n = &held.notification;
            let limit = routes
                .get(&(n.org_id.clone(), n.channel))
                .and_then(|r| r.limit);
            if let Some(limit) = limit {
                limited
                    .entry((&n.org_id, n.channel))
                    .or_insert_with(|| (limit, Vec::new()))
                    .1
                    .push(i);
            }
        }
        let mut passes = vec![Pass::Go; claims.len()];
        let counted = join_all(limited.into_iter().map(|((org, channel), (limit, at))| async move {
            let want = u32::try_from(at.len()).unwrap_or(u32::MAX);
            let admission = self
                .rate_limiter
                .take(org, channel, want, limit, now)
                .await
                .unwrap_or_else(|e| {
                    warn!(%org, %channel, error = %e, "rate limit bucket unavailable; the messages wait");
                    Admission::none(now + LIMITER_UNAVAILABLE_WAIT)
                });
            (admission, at)
        }))
        .await;
        for (admission, at) in counted {
            for (k, i) in (0u32..).zip(at) {
                if let Some(over) = k.checked_sub(admission.granted) {
                    passes[i] = Pass::Wait(admission.free_at(over));
                }
            }
        }
        passes
    }

    /// Over the rate limit: the notification waits for the time its bucket gave, as it was
    /// (pending, or retrying after an attempt), with no attempt spent.
    pub(super) async fn throttle(
        &self,
        mut n: Notification,
        token: String,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DispatchOutcome, DispatchError> {
        n.status = if n.attempts == 0 {
            Status::Pending
        } else {
            Status::Retrying
        };
        n.next_retry_at = Some(until);
        n.sweep_at = Some(until);
        let requeued = self.settle_until(&n, &token, until, now).await?;
        info!(channel = %n.channel, %until, "delayed by the rate limit");
        Ok(DispatchOutcome::Throttled { until, requeued })
    }
}
