//! Failover: a message goes to the providers of its route in turn, within one attempt, until
//! one takes it or one refuses it for a reason no other provider would change (the message, or
//! its recipient). Only a provider-level failure (busy, down, credentials, account) passes it on.
//!
//! Each provider's circuit breaker is consulted first: an open one is passed over without a
//! call, a half-open one lets one probe through, and every answer is reported back to it.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;

use crate::breaker::{BreakerBoard, Gate};
use crate::model::{Channel, DeliveryService, ErrorCode, FailureKind, Notification, ProviderTry};
use crate::ports::{ChannelSender, Receipt, SendError};

/// The sender of each provider on each channel it serves. In-app needs none: it is delivered
/// by being stored.
#[derive(Clone, Default)]
pub struct Senders(BTreeMap<(Channel, DeliveryService), Arc<dyn ChannelSender>>);

impl Senders {
    pub fn new() -> Self {
        Senders::default()
    }

    /// `provider` sends the channel's messages through `sender`.
    pub fn with(
        mut self,
        channel: Channel,
        provider: DeliveryService,
        sender: Arc<dyn ChannelSender>,
    ) -> Self {
        self.0.insert((channel, provider), sender);
        self
    }

    pub fn get(
        &self,
        channel: Channel,
        provider: DeliveryService,
    ) -> Option<&Arc<dyn ChannelSender>> {
        self.0.get(&(channel, provider))
    }
}

/// The code a provider passed over for its open breaker is recorded with.
pub const CIRCUIT_OPEN: &str = "circuit_open";

/// What asking a route's providers came to: the answer that ends the attempt, and the
/// providers that failed or were passed over before it.
pub(super) struct Walk {
    pub answer: Result<Receipt, SendError>,
    pub tried: Vec<ProviderTry>,
    /// Set when no provider was asked because every breaker held its provider out: the
    /// earliest time one lets a message through again.
    pub held_until: Option<DateTime<Utc>>,
    /// The providers whose breaker this walk's failures opened.
    pub opened: Vec<DeliveryService>,
}

/// A sender panicked: the attempt ends without an answer.
pub(super) struct Panicked {
    pub provider: DeliveryService,
    pub tried: Vec<ProviderTry>,
}

/// Asks the providers of `route` in turn. An empty route: the channel is not configured for
/// the organization, a hard failure.
pub(super) async fn walk(
    senders: &Senders,
    breakers: &BreakerBoard,
    route: &[DeliveryService],
    n: &Notification,
    now: DateTime<Utc>,
) -> Result<Walk, Panicked> {
    let mut tried = Vec::new();
    let mut last = None;
    let mut asked = false;
    let mut held_until: Option<DateTime<Utc>> = None;
    let mut opened = Vec::new();
    for &provider in route {
        let Some(sender) = senders.get(n.channel, provider) else {
            continue; // a provider this deployment did not build a sender for
        };
        let seen = breakers.state(&n.org_id, provider, now);
        let let_through = match seen.gate(now) {
            Gate::Closed => None,
            Gate::HalfOpen if breakers.take_probe(&n.org_id, provider, now).await => None,
            Gate::HalfOpen => Some(now + breakers.probe_wait()),
            Gate::Open { until } => Some(until),
        };
        if let Some(until) = let_through {
            held_until = Some(held_until.map_or(until, |h| h.min(until)));
            tried.push(ProviderTry {
                attempt: n.attempts,
                provider,
                kind: FailureKind::Soft,
                code: ErrorCode::new(CIRCUIT_OPEN),
            });
            continue;
        }
        asked = true;
        let answer = match AssertUnwindSafe(sender.send(n)).catch_unwind().await {
            Ok(answer) => answer,
            Err(_) => return Err(Panicked { provider, tried }),
        };
        let answer = answer.map(|r| r.via(provider)).map_err(|e| e.via(provider));
        match answer {
            Err(e) if e.kind.at_provider() => {
                if breakers.failed(&n.org_id, provider, now).await {
                    opened.push(provider);
                }
                tried.push(ProviderTry {
                    attempt: n.attempts,
                    provider,
                    kind: e.kind,
                    code: e.code.clone(),
                });
                last = Some(e);
            }
            answer => {
                // an answer about the message or its recipient: the provider works
                breakers.succeeded(&n.org_id, provider, &seen, now).await;
                return Ok(Walk {
                    answer,
                    tried,
                    held_until: None,
                    opened,
                });
            }
        }
    }
    let held_until = held_until.filter(|_| !asked);
    let answer = Err(last.unwrap_or_else(|| match held_until {
        Some(_) => SendError::soft(format!(
            "every {} provider is held out by its circuit breaker",
            n.channel
        ))
        .with_code(CIRCUIT_OPEN),
        None => SendError::hard(format!("channel {} is not configured", n.channel)),
    }));
    Ok(Walk {
        answer,
        tried,
        held_until,
        opened,
    })
}
