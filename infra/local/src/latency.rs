//! How long a change to a customer's feed takes to reach their open socket on the served local
//! stack: from the moment the projector's write of the feed entry is durable (its DynamoDB
//! answer came back, [`crate::requests::AnsweredWrite`]) to the `notification.created`
//! message read off a WebSocket client connected as the inbox connects. What lies between is
//! what runs in AWS too: the projector's look-up of the customer's connections and unread
//! count, `PostToConnection`, and the WebSocket API's frame to the client.
//!
//! The stream's own delay (the Lambda poller's, up to the batching window in AWS) is not in
//! it: locally the stream is read as soon as dispatch is done. The time from the event put on
//! the bus to the socket is shown beside it, for the whole path.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::error::LocalError;
use crate::requests::Component;
use crate::samples::envelope;
use crate::serve::Serving;

/// The organization and customer the measurement notifies (their feed is the stage's own).
const ORG: &str = "org_latency";
const CUSTOMER: &str = "cus_latency";
/// How long a message may take before the measurement gives up on it.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Milliseconds over the notifications measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Spread {
        samples.sort();
        let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).copied().map_or(0.0, ms)
        };
        Spread {
            min: at(0.0),
            median: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub notifications: usize,
    /// From the feed entry's write to the message on the socket.
    pub feed_write_to_socket_ms: Spread,
    /// From the event put on the bus to the message on the socket (intake, dispatch, the
    /// projector; the stream read at once).
    pub bus_to_socket_ms: Spread,
}

impl LatencyReport {
    pub fn table(&self) -> String {
        let row = |name: &str, s: &Spread| {
            format!(
                "{name:<24} {:>8.1} {:>8.1} {:>8.1} {:>8.1}\n",
                s.min, s.median, s.p95, s.max
            )
        };
        format!(
            "{:<24} {:>8} {:>8} {:>8} {:>8}\n{}{}",
            "ms",
            "min",
            "median",
            "p95",
            "max",
            row("feed write -> socket", &self.feed_write_to_socket_ms),
            row("bus -> socket", &self.bus_to_socket_ms),
        )
    }
}

/// Connects to the served stack's WebSocket API as the customer, then puts `n` in-app
/// notifications for them on the bus one after another, timing each to its message.
pub async fn measure(serving: &Serving, n: usize) -> Result<LatencyReport, LocalError> {
    let local = &serving.local;
    local
        .run(&[event(
            "CustomerContactChanged",
            "customers",
            json!({"customer_id": CUSTOMER, "email": "latency@example.com", "locale": "en"}),
        )])
        .await?;
    let token = serving.served.tokens.token(
        &crate::dev_tokens::customer_claims(ORG, CUSTOMER),
        chrono::Duration::hours(1),
    );
    let url = format!("ws://{}/realtime?token={token}", serving.addr);
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| LocalError::Latency(format!("the WebSocket did not open: {e}")))?;
    let mut received = listen(socket);

    let mut feed_to_socket = Vec::with_capacity(n);
    let mut bus_to_socket = Vec::with_capacity(n);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..n {
        let put = Instant::now();
        let reports = local
            .run(&[event(
                "NotificationRequested",
                "latency",
                json!({
                    "customer_id": CUSTOMER, "idempotency_key": format!("latency-{run}-{i}"),
                    "notification_type": "reminder", "channels": ["in_app"],
                    "context": {"reminder_id": format!("rem_{i}"), "severity": "low", "title": "Latency", "body": format!("Message {i}")},
                }),
            )])
            .await?;
        let id = reports
            .first()
            .and_then(|r| r.notifications.first())
            .map(|n| n.id.clone())
            .ok_or_else(|| LocalError::Latency("the event made no notification".into()))?;
        let arrived = created(&mut received, &id).await?;
        let written = feed_written(local, &id)?;
        feed_to_socket.push(arrived.saturating_duration_since(written));
        bus_to_socket.push(arrived.saturating_duration_since(put));
    }
    Ok(LatencyReport {
        notifications: n,
        feed_write_to_socket_ms: Spread::of(feed_to_socket),
        bus_to_socket_ms: Spread::of(bus_to_socket),
    })
}

fn event(detail_type: &str, source: &str, mut detail: Value) -> Value {
    detail["organization_id"] = json!(ORG);
    envelope(detail_type, source, Utc::now(), detail)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads the socket in a task of its own, so each message is timed as it arrives.
fn listen(mut socket: Socket) -> mpsc::UnboundedReceiver<(Instant, Value)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            let at = Instant::now();
            let Message::Text(text) = frame else {
                continue;
            };
            if let Ok(message) = serde_json::from_str(&text)
                && tx.send((at, message)).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// When the `notification.created` message of notification `id` arrived.
async fn created(
    received: &mut mpsc::UnboundedReceiver<(Instant, Value)>,
    id: &str,
) -> Result<Instant, LocalError> {
    let wait = async {
        while let Some((at, message)) = received.recv().await {
            if message["type"] == "notification.created"
                && message["notification"]["notification_id"] == id
            {
                return Ok(at);
            }
        }
        Err(LocalError::Latency("the socket closed".into()))
    };
    tokio::time::timeout(GIVE_UP, wait).await.map_err(|_| {
        LocalError::Latency(format!("no notification.created for {id} in {GIVE_UP:?}"))
    })?
}

/// When the projector's first write of notification `id`'s feed entry was answered.
fn feed_written(local: &crate::driver::LocalStack, id: &str) -> Result<Instant, LocalError> {
    local
        .requests
        .answered_writes()
        .into_iter()
        .filter(|a| a.component == Component::Projector)
        .find(|a| {
            a.writes.iter().any(|w| {
                w.key.get("pk").is_some_and(|pk| pk.contains("FEED#"))
                    && w.key.get("sk").is_some_and(|sk| sk.contains(id))
            })
        })
        .map(|a| a.at)
        .ok_or_else(|| LocalError::Latency(format!("no feed write of {id} was seen")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_reads_its_quantiles_from_the_sorted_samples() {
        let samples = (1..=20).rev().map(Duration::from_millis).collect();
        assert_eq!(
            Spread::of(samples),
            Spread {
                min: 1.0,
                median: 11.0,
                p95: 19.0,
                max: 20.0
            }
        );
    }
}
