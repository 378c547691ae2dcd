//! Applies provider events to notifications: find the notification, move it forward, record
//! engagement, suppress addresses that must not be written to again, once per event.
//!
//! A webhook call may carry thousands of events (SendGrid batches them), so a call is applied
//! as a batch: the seen-markers and the notifications are read in batches, each notification's
//! events are folded into one change written once, notifications are written concurrently
//! (bounded), and the seen-markers are written in batches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tracing::{info, warn};

use crate::consent::suppression_key;
use crate::ids::{NotificationId, OrgId};
use crate::model::Provider;
use crate::model::{Notification, Status};
use crate::ports::{Clock, DeliveryStore, Directory, NotificationStore, PortError};
use crate::provider_events::{DeliveryChange, DeliveryKind, ProviderEvent, effect};

/// What one webhook call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookSummary {
    pub applied: usize,
    pub unchanged: usize,
    pub duplicates: usize,
    /// Events for messages Herald does not know (accepted, so the provider stops retrying).
    pub unknown: usize,
    /// Events that arrived before the send was recorded: the provider should try again.
    pub not_ready: usize,
    /// Events whose notification kept changing while they were written (other events for it
    /// applied at the same moment): not marked seen, so the provider's retry applies them.
    pub contended: usize,
    /// Elements of the body Herald does not understand (an event type it does not know, one
    /// about no message): accepted and counted, nothing changed.
    pub ignored: usize,
}

#[derive(Clone)]
pub struct WebhookService {
    pub store: Arc<dyn NotificationStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub directory: Arc<dyn Directory>,
    pub clock: Arc<dyn Clock>,
}

const APPLY_ATTEMPTS: usize = 3;
/// How many notifications are written at once, and how many message ids looked up at once.
pub const WRITE_CONCURRENCY: usize = 32;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    Unchanged,
    /// The send is not recorded yet: not marked seen, so the provider's retry is wanted.
    NotReady,
    /// The notification changed under every attempt to write: not marked seen either.
    Contended,
}

/// One notification's events, in order, folded into the one change they make together, and
/// what each of them did.
pub fn fold(n: &Notification, events: &[&ProviderEvent]) -> (DeliveryChange, Vec<Outcome>) {
    let mut current = n.clone();
    let mut merged = DeliveryChange::default();
    let mut outcomes = Vec::with_capacity(events.len());
    for e in events {
        let change = effect(&current, e);
        if change.is_empty() {
            outcomes.push(Outcome::Unchanged);
            continue;
        }
        if matches!(
            current.status,
            Status::Pending | Status::Sending | Status::Retrying
        ) && e.kind != DeliveryKind::InTransit
        {
            outcomes.push(Outcome::NotReady);
            continue;
        }
        if let Some(status) = change.status {
            current.status = status;
            merged.status = Some(status);
            merged.reason = change.reason.clone();
            merged.code = change.code.clone();
        }
        if change.opened {
            current.opened_at = Some(e.at);
            merged.opened = true;
        }
        if change.clicked {
            current.clicked_at = Some(e.at);
            merged.clicked = true;
        }
        if change.complained {
            current.complained_at = Some(e.at);
            merged.complained = true;
        }
        if merged.suppress.is_none() {
            merged.suppress = change.suppress;
        }
        outcomes.push(Outcome::Changed);
    }
    (merged, outcomes)
}

/// Where an event was found to belong.
enum Located {
    At(NotificationId),
    /// Another organization's message, or none Herald knows.
    Unknown,
    /// Not found yet: looked up again before concluding.
    Unresolved,
}

impl WebhookService {
    /// Applies an organization's events, each notification's in the order given.
    ///
    /// Boxed: the batch's streams borrow the service, and an unboxed future of them is one the
    /// compiler cannot always prove `Send` for its callers.
    pub fn apply<'a>(
        &'a self,
        org: &'a OrgId,
        events: &'a [ProviderEvent],
    ) -> BoxFuture<'a, Result<WebhookSummary, PortError>> {
        self.apply_batch(org, events).boxed()
    }

    async fn apply_batch(
        &self,
        org: &OrgId,
        events: &[ProviderEvent],
    ) -> Result<WebhookSummary, PortError> {
        let mut summary = WebhookSummary::default();
        let fresh = self.unseen(org, events, &mut summary).await?;
        let mut notifications: HashMap<NotificationId, Notification> = HashMap::new();
        let mut located: Vec<Located> = fresh.iter().map(|_| Located::Unresolved).collect();
        let mut to_mark: BTreeMap<Provider, Vec<String>> = BTreeMap::new();
        // a second look for what the first did not find: the send may have been recorded since
        for _ in 0..2 {
            let unresolved: Vec<usize> = (0..fresh.len())
                .filter(|i| matches!(located[*i], Located::Unresolved))
                .collect();
            if unresolved.is_empty() {
                break;
            }
            self.locate(org, &fresh, &unresolved, &mut located, &mut notifications)
                .await?;
            let outcomes = self
                .apply_located(org, &fresh, &unresolved, &located, &notifications)
                .await?;
            for (i, outcome) in outcomes {
                match outcome {
                    Outcome::Changed => summary.applied += 1,
                    Outcome::Unchanged => summary.unchanged += 1,
                    Outcome::NotReady => {
                        summary.not_ready += 1;
                        continue;
                    }
                    Outcome::Contended => {
                        summary.contended += 1;
                        continue;
                    }
                }
                to_mark
                    .entry(fresh[i].provider)
                    .or_default()
                    .push(fresh[i].event_id.clone());
            }
        }
        for (i, l) in located.iter().enumerate() {
            if !matches!(l, Located::At(_)) {
                summary.unknown += 1;
                to_mark
                    .entry(fresh[i].provider)
                    .or_default()
                    .push(fresh[i].event_id.clone());
            }
        }
        if summary.unknown > 0 {
            info!(
                unknown = summary.unknown,
                "events for unknown messages; accepted"
            );
        }
        let now = self.clock.now();
        for (provider, ids) in to_mark {
            self.deliveries.mark_seen(org, provider, &ids, now).await?;
        }
        Ok(summary)
    }

    /// The events not handled before, each once (an event repeated within the call counts as a
    /// duplicate too).
    async fn unseen<'e>(
        &self,
        org: &OrgId,
        events: &'e [ProviderEvent],
        summary: &mut WebhookSummary,
    ) -> Result<Vec<&'e ProviderEvent>, PortError> {
        let mut distinct: Vec<&ProviderEvent> = Vec::with_capacity(events.len());
        let mut in_call: HashSet<(Provider, &str)> = HashSet::new();
        let mut by_provider: BTreeMap<Provider, Vec<String>> = BTreeMap::new();
        for e in events {
            if in_call.insert((e.provider, e.event_id.as_str())) {
                distinct.push(e);
                by_provider
                    .entry(e.provider)
                    .or_default()
                    .push(e.event_id.clone());
            } else {
                summary.duplicates += 1;
            }
        }
        let mut seen: HashSet<(Provider, String)> = HashSet::new();
        for (provider, ids) in by_provider {
            for id in self.deliveries.seen(org, provider, &ids).await? {
                seen.insert((provider, id));
            }
        }
        Ok(distinct
            .into_iter()
            .filter(|e| {
                let dup = seen.contains(&(e.provider, e.event_id.clone()));
                if dup {
                    summary.duplicates += 1;
                }
                !dup
            })
            .collect())
    }

    /// Finds the notifications of the `pending` events: by the id the provider echoes back when
    /// it matches, else by the provider's message id.
    async fn locate(
        &self,
        org: &OrgId,
        events: &[&ProviderEvent],
        pending: &[usize],
        located: &mut [Located],
        notifications: &mut HashMap<NotificationId, Notification>,
    ) -> Result<(), PortError> {
        let hinted: Vec<NotificationId> = pending
            .iter()
            .filter_map(|i| events[*i].notification_hint.clone())
            .filter(|id| !notifications.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.load(org, &hinted, notifications).await?;
        let mut by_message: Vec<usize> = Vec::new();
        for &i in pending {
            let e = events[i];
            let hit = e
                .notification_hint
                .as_ref()
                .and_then(|id| notifications.get(id))
                .filter(|n| {
                    n.provider_message_id.is_none()
                        || n.provider_message_id.as_deref() == Some(&e.provider_message_id)
                });
            match hit {
                Some(n) => located[i] = Located::At(n.id.clone()),
                None => by_message.push(i),
            }
        }
        let message_ids: Vec<String> = by_message
            .iter()
            .map(|i| events[*i].provider_message_id.clone())
            .filter(|m| !m.is_empty())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found: HashMap<String, Option<(OrgId, NotificationId)>> =
            futures::stream::iter(message_ids)
                .map(|m| async move {
                    let hit = self.deliveries.find_by_provider_id(&m).await?;
                    Ok::<_, PortError>((m, hit))
                })
                .buffer_unordered(WRITE_CONCURRENCY)
                .try_collect()
                .await?;
        let mut more = HashSet::new();
        for &i in &by_message {
            match found.get(&events[i].provider_message_id).cloned().flatten() {
                Some((owner, _)) if &owner != org => {
                    warn!(
                        provider = events[i].provider.as_str(),
                        "event for another organization's message; ignored"
                    );
                    located[i] = Located::Unknown;
                }
                Some((_, id)) => {
                    if !notifications.contains_key(&id) {
                        more.insert(id.clone());
                    }
                    located[i] = Located::At(id);
                }
                None => {}
            }
        }
        self.load(org, &more.into_iter().collect::<Vec<_>>(), notifications)
            .await?;
        for &i in pending {
            if let Located::At(id) = &located[i] {
                if !notifications.contains_key(id) {
                    located[i] = Located::Unresolved;
                }
            }
        }
        Ok(())
    }

    async fn load(
        &self,
        org: &OrgId,
        ids: &[NotificationId],
        into: &mut HashMap<NotificationId, Notification>,
    ) -> Result<(), PortError> {
        if ids.is_empty() {
            return Ok(());
        }
        for n in self.deliveries.get_many(org, ids).await? {
            into.insert(n.id.clone(), n);
        }
        Ok(())
    }

    /// Applies the located ones among `pending`, one write per notification, concurrently.
    async fn apply_located(
        &self,
        org: &OrgId,
        events: &[&ProviderEvent],
        pending: &[usize],
        located: &[Located],
        notifications: &HashMap<NotificationId, Notification>,
    ) -> Result<Vec<(usize, Outcome)>, PortError> {
        let mut groups: Vec<(Notification, Vec<usize>)> = Vec::new();
        let mut group_of: HashMap<&NotificationId, usize> = HashMap::new();
        for &i in pending {
            let Located::At(id) = &located[i] else {
                continue;
            };
            let Some(n) = notifications.get(id) else {
                continue;
            };
            let g = *group_of.entry(id).or_insert_with(|| {
                groups.push((n.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let results: Vec<Vec<(usize, Outcome)>> = futures::stream::iter(groups)
            .map(|(n, indices)| async move {
                let group: Vec<&ProviderEvent> = indices.iter().map(|i| events[*i]).collect();
                let outcomes = self.apply_to(org, n, &group).await?;
                Ok::<_, PortError>(indices.into_iter().zip(outcomes).collect())
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(results.into_iter().flatten().collect())
    }

    /// One notification's events: folded, written once (again if it changed meanwhile), and
    /// its address suppressed when they say so. A notification that changes under every
    /// attempt is no fault of the caller's: its events are [`Outcome::Contended`], to be sent
    /// again.
    async fn apply_to(
        &self,
        org: &OrgId,
        mut n: Notification,
        events: &[&ProviderEvent],
    ) -> Result<Vec<Outcome>, PortError> {
        for _ in 0..APPLY_ATTEMPTS {
            let (change, outcomes) = fold(&n, events);
            if change.is_empty() {
                return Ok(outcomes);
            }
            if self
                .deliveries
                .apply_delivery(&n, &change, self.clock.now())
                .await?
            {
                if let (Some(reason), Some(key)) =
                    (&change.suppress, suppression_key(n.channel, &n.address))
                {
                    self.directory
                        .suppress(org, &key, reason, self.clock.now())
                        .await?;
                }
                info!(
                    notification_id = %n.id,
                    provider = events[0].provider.as_str(),
                    events = events.len(),
                    status = ?change.status,
                    suppressed = change.suppress.is_some(),
                    "delivery events applied"
                );
                return Ok(outcomes);
            }
            match self.store.get(org, &n.id).await? {
                Some(now) => n = now,
                None => {
                    return Err(PortError::new(
                        "apply delivery event",
                        "the notification disappeared while it was updated",
                    ));
                }
            }
        }
        warn!(notification_id = %n.id, "delivery events contended; the provider will retry");
        Ok(vec![Outcome::Contended; events.len()])
    }
}
