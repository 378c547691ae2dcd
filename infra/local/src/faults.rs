//! Faults injected into dispatch's sends, for `herald-local chaos`: a layer on dispatch's HTTP
//! client (installed with [`crate::requests::RequestLog::http_client_with`]) answers a share of
//! the SES `SendEmail` and SNS `Publish` calls with the errors those services document, and
//! kills a share of the dispatches that a provider accepted before they record it; the same
//! plan answers a share of the SendGrid and Twilio stand-ins' requests with their documented
//! errors ([`Faults::stand_in_answer`]).
//!
//! Each decision is a pure function of the seed, the request's body and how many times that
//! body was seen before, so a run is reproducible whatever order a batch's concurrent sends
//! take.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use futures::channel::oneshot;
use serde::Serialize;
use serde_json::{Value, json};

use crate::stand_ins::{self, Answer, Provider};

/// What to inject, and how often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    /// The share of provider calls answered with an error instead.
    pub provider_faults: f64,
    /// The share of accepted sends whose dispatch is killed before it records them.
    pub crash_after_send: f64,
}

/// The kinds of fault injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A 5xx: the service failed.
    ServerError,
    /// The service's throttling answer.
    Throttling,
    /// No answer: the connection timed out before the request reached the service.
    Timeout,
    /// The service refused the message itself (SES `MessageRejected`, SNS `InvalidParameter`,
    /// SendGrid's 400): a hard failure.
    Rejection,
    /// The provider refused the recipient (Twilio 21211 invalid number, 21610 STOP): the
    /// address is suppressed.
    RecipientRefused,
    /// The dispatch was killed between the provider's acceptance and its record of it.
    CrashAfterSend,
}

/// A fault that was injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub service: &'static str,
    pub kind: FaultKind,
    /// The address the refused request was for (a recipient refusal suppresses it).
    pub recipient: Option<String>,
    /// The notification a crash left unrecorded.
    pub notification_id: Option<String>,
}

#[derive(Default)]
struct State {
    /// How many times each request body was decided on.
    seen: HashMap<u64, u64>,
    injected: Vec<Injected>,
    /// Notifications whose dispatch was killed once already (a notification is crashed at
    /// most once, so its resend can be recorded).
    crashed: HashSet<String>,
    /// Told when the current dispatch invocation is killed.
    crash_signal: Option<oneshot::Sender<()>>,
    /// The invocation is dead: its next requests never leave.
    dead: bool,
    /// Requests sent on and not yet answered.
    in_flight: usize,
    /// The SES and SNS sends the emulator accepted: service and request body.
    accepted: Vec<(&'static str, Vec<u8>)>,
}

/// The plan and what it injected so far; clones share both.
#[derive(Clone)]
pub struct Faults {
    plan: FaultPlan,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").field("plan", &self.plan).finish()
    }
}

/// A 64-bit FNV-1a hash, finished with splitmix64: stable across builds and platforms.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // a separator, so ["ab", "c"] and ["a", "bc"] differ
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A number in [0, 1) drawn from the seed and these parts.
pub fn fraction(seed: u64, parts: &[&[u8]]) -> f64 {
    let seed = seed.to_le_bytes();
    let mut all: Vec<&[u8]> = vec![&seed];
    all.extend_from_slice(parts);
    (stable_hash(&all) >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    pub fn new(plan: FaultPlan) -> Faults {
        Faults {
            plan,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    pub fn plan(&self) -> FaultPlan {
        self.plan
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every fault injected so far, in order.
    pub fn injected(&self) -> Vec<Injected> {
        self.lock().injected.clone()
    }

    /// How many faults of each kind were injected, per service.
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<FaultKind, usize>> {
        let mut counts: BTreeMap<String, BTreeMap<FaultKind, usize>> = BTreeMap::new();
        for i in self.lock().injected.iter() {
            *counts
                .entry(i.service.to_string())
                .or_default()
                .entry(i.kind)
                .or_default() += 1;
        }
        counts
    }

    /// Arms the crash signal for the next dispatch invocation (alive again): the receiver
    /// completes when the layer kills it.
    pub fn arm_crash(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        state.crash_signal = Some(tx);
        state.dead = false;
        rx
    }

    /// Requests of the killed invocation that had left before it died and are not answered
    /// yet. Whoever drops the invocation waits for none to be left: a request dropped half
    /// way would leave the emulator, which serves one connection at a time, waiting on it.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Sends the request on, counting it in flight until it is answered (or dropped), and
    /// keeping the SES and SNS sends the emulator accepts.
    pub fn send_on(
        &self,
        service: &str,
        operation: &str,
        request: HttpRequest,
        inner: &SharedHttpConnector,
    ) -> HttpConnectorFuture {
        struct InFlight(Faults);
        impl Drop for InFlight {
            fn drop(&mut self) {
                self.0.lock().in_flight -= 1;
            }
        }
        let send = match (service, operation) {
            ("ses", "SendEmail") => Some("ses"),
            ("sns", "Publish") => Some("sns"),
            _ => None,
        }
        .map(|service| (service, request.body().bytes().unwrap_or_default().to_vec()));
        self.lock().in_flight += 1;
        let guard = InFlight(self.clone());
        let sent = inner.call(request);
        HttpConnectorFuture::new(async move {
            let answer = sent.await;
            if let (Ok(response), Some(send)) = (&answer, send)
                && response.status().is_success()
            {
                guard.0.lock().accepted.push(send);
            }
            drop(guard);
            answer
        })
    }

    /// The SES and SNS sends the emulator accepted, as they went on the wire: the service and
    /// the request's body.
    pub fn accepted(&self) -> Vec<(&'static str, Vec<u8>)> {
        self.lock().accepted.clone()
    }

    /// The fault for this request body, if one is drawn: a number in [0, 1) that picks its
    /// kind. Each sight of the same body (an SDK retry, Herald's next attempt) draws again.
    fn draw(&self, body: &[u8]) -> Option<f64> {
        let key = stable_hash(&[body]);
        let nth = {
            let mut state = self.lock();
            let n = state.seen.entry(key).or_default();
            *n += 1;
            *n
        };
        let nth = nth.to_le_bytes();
        let key = key.to_le_bytes();
        (fraction(self.plan.seed, &[b"fault", &key, &nth]) < self.plan.provider_faults)
            .then(|| fraction(self.plan.seed, &[b"kind", &key, &nth]))
    }

    fn note(&self, injected: Injected) {
        self.lock().injected.push(injected);
    }

    /// What the layer does with one of dispatch's AWS requests: `None` sends it on.
    pub fn intercept(
        &self,
        service: &str,
        operation: &str,
        request: &HttpRequest,
    ) -> Option<HttpConnectorFuture> {
        if self.lock().dead {
            // a dead process sends nothing more
            return Some(HttpConnectorFuture::new(std::future::pending()));
        }
        let body = request.body().bytes().unwrap_or_default();
        match (service, operation) {
            ("ses", "SendEmail") => self.ses_fault(body),
            ("sns", "Publish") => self.sns_fault(body),
            ("dynamodb", "UpdateItem") => self.crash_before_settle(body),
            _ => None,
        }
    }

    fn ses_fault(&self, body: &[u8]) -> Option<HttpConnectorFuture> {
        let pick = self.draw(body)?;
        let (kind, status, code, message) = match pick {
            p if p < 0.3 => (
                FaultKind::ServerError,
                503,
                "ServiceUnavailable",
                "Service unavailable",
            ),
            p if p < 0.6 => (
                FaultKind::Throttling,
                429,
                "TooManyRequestsException",
                "Maximum sending rate exceeded.",
            ),
            p if p < 0.85 => (FaultKind::Timeout, 0, "", ""),
            _ => (
                FaultKind::Rejection,
                400,
                "MessageRejected",
                "Email address is not verified.",
            ),
        };
        self.note(Injected {
            service: "ses",
            kind,
            recipient: None,
            notification_id: None,
        });
        if kind == FaultKind::Timeout {
            return Some(timeout());
        }
        // SES v2 (REST-JSON): the code in X-Amzn-ErrorType and the body's __type
        let body = json!({"__type": code, "message": message}).to_string();
        Some(answer(
            status,
            &[
                ("x-amzn-errortype", code),
                ("content-type", "application/json"),
            ],
            body,
        ))
    }

    fn sns_fault(&self, body: &[u8]) -> Option<HttpConnectorFuture> {
        let pick = self.draw(body)?;
        let (kind, status, kind_of_party, code, message) = match pick {
            p if p < 0.3 => (
                FaultKind::ServerError,
                500,
                "Receiver",
                "InternalError",
                "Internal Error",
            ),
            p if p < 0.6 => (
                FaultKind::Throttling,
                400,
                "Sender",
                "Throttling",
                "Rate exceeded",
            ),
            p if p < 0.85 => (FaultKind::Timeout, 0, "", "", ""),
            _ => (
                FaultKind::Rejection,
                400,
                "Sender",
                "InvalidParameter",
                "Invalid parameter: Message too long",
            ),
        };
        self.note(Injected {
            service: "sns",
            kind,
            recipient: None,
            notification_id: None,
        });
        if kind == FaultKind::Timeout {
            return Some(timeout());
        }
        // SNS (query protocol): an XML ErrorResponse
        let body = format!(
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>{kind_of_party}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        );
        Some(answer(status, &[("content-type", "text/xml")], body))
    }

    /// A settle that records a send the provider accepted: for a share of notifications, the
    /// dispatch is killed here, the send made and not recorded.
    fn crash_before_settle(&self, body: &[u8]) -> Option<HttpConnectorFuture> {
        if self.plan.crash_after_send <= 0.0 {
            return None;
        }
        let update: Value = serde_json::from_slice(body).ok()?;
        let settles = update["ConditionExpression"]
            .as_str()
            .is_some_and(|c| c.contains("#claim.#token = :token"));
        let to_sent = update["ExpressionAttributeValues"]
            .as_object()
            .is_some_and(|values| values.values().any(|v| v["S"] == "sent"));
        if !settles || !to_sent {
            return None;
        }
        let notification = notification_id_in(&update["Key"])?;
        if fraction(self.plan.seed, &[b"crash", notification.as_bytes()])
            >= self.plan.crash_after_send
        {
            return None;
        }
        let signal = {
            let mut state = self.lock();
            if !state.crashed.insert(notification.clone()) {
                return None;
            }
            state.injected.push(Injected {
                service: "dispatch",
                kind: FaultKind::CrashAfterSend,
                recipient: None,
                notification_id: Some(notification),
            });
            state.dead = true;
            state.crash_signal.take()
        };
        if let Some(signal) = signal {
            let _ = signal.send(());
        }
        // the invocation is dropped by whoever runs it: the settle never leaves
        Some(HttpConnectorFuture::new(std::future::pending()))
    }

    /// The stand-ins' side: a share of SendGrid's and Twilio's requests answered with their
    /// documented errors (no timeouts: the HTTP providers' clients wait out their own).
    pub fn stand_in_answer(&self, provider: Provider, body: &[u8]) -> Option<Answer> {
        let pick = self.draw(body)?;
        let (service, kind, answer) = match provider {
            Provider::SendGrid => {
                let (kind, answer) = match pick {
                    p if p < 0.35 => (
                        FaultKind::ServerError,
                        stand_ins::sendgrid_answer(500, "Internal server error"),
                    ),
                    p if p < 0.75 => (
                        FaultKind::Throttling,
                        stand_ins::sendgrid_answer(429, "too many requests"),
                    ),
                    _ => (
                        FaultKind::Rejection,
                        Answer {
                            status: axum::http::StatusCode::BAD_REQUEST,
                            body: json!({"errors": [{
                                "message": "The from address does not match a verified Sender Identity.",
                                "field": "from", "help": null}]}),
                        },
                    ),
                };
                ("sendgrid", kind, answer)
            }
            Provider::Twilio => {
                let (kind, answer) = match pick {
                    p if p < 0.35 => (
                        FaultKind::ServerError,
                        stand_ins::twilio_answer(503, 20503, "Service Unavailable"),
                    ),
                    p if p < 0.75 => (
                        FaultKind::Throttling,
                        stand_ins::twilio_answer(429, 20429, "Too Many Requests"),
                    ),
                    p if p < 0.875 => (
                        FaultKind::RecipientRefused,
                        stand_ins::twilio_answer(
                            400,
                            21211,
                            "The 'To' number is not a valid phone number.",
                        ),
                    ),
                    _ => (
                        FaultKind::RecipientRefused,
                        stand_ins::twilio_answer(
                            400,
                            21610,
                            "Attempt to send to unsubscribed recipient",
                        ),
                    ),
                };
                ("twilio", kind, answer)
            }
        };
        let recipient = (kind == FaultKind::RecipientRefused)
            .then(|| twilio_to(body))
            .flatten();
        self.note(Injected {
            service,
            kind,
            recipient,
            notification_id: None,
        });
        Some(answer)
    }

    /// Notes that a killed dispatch left this notification sent and unrecorded, too: it was
    /// sent in the same invocation as the one the crash was drawn for.
    pub fn also_crashed(&self, notification_id: &str) {
        self.lock().crashed.insert(notification_id.to_string());
    }

    /// The notifications a killed dispatch left unrecorded.
    pub fn crashed(&self) -> HashSet<String> {
        self.lock().crashed.clone()
    }
}

/// The `To` of a Twilio request, without its `whatsapp:` prefix.
fn twilio_to(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v.trim_start_matches("whatsapp:").to_string())
}

/// The `ntf_…` id in a DynamoDB key.
fn notification_id_in(key: &Value) -> Option<String> {
    key.as_object()?
        .values()
        .filter_map(|v| v["S"].as_str())
        .find_map(|s| {
            let start = s.find("ntf_")?;
            let id: String = s[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            Some(id)
        })
}

fn answer(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: String,
) -> HttpConnectorFuture {
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let status = aws_smithy_runtime_api::http::StatusCode::from(status);
    let mut response = aws_smithy_runtime_api::http::Response::new(status, SdkBody::from(body));
    for (name, value) in headers {
        response.headers_mut().insert(*name, *value);
    }
    HttpConnectorFuture::ready(Ok(response))
}

#[derive(Debug, thiserror::Error)]
#[error("injected: the connection timed out")]
struct InjectedTimeout;

fn timeout() -> HttpConnectorFuture {
    HttpConnectorFuture::ready(Err(ConnectorError::timeout(Box::new(InjectedTimeout))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_depends_on_the_seed_the_body_and_how_often_it_was_seen() {
        let faults = Faults::new(FaultPlan {
            seed: 7,
            provider_faults: 0.5,
            crash_after_send: 0.0,
        });
        let again = Faults::new(faults.plan());
        let first: Vec<Option<f64>> = (0..50).map(|_| faults.draw(b"a body")).collect();
        let second: Vec<Option<f64>> = (0..50).map(|_| again.draw(b"a body")).collect();
        assert_eq!(first, second, "the same seed draws the same faults");
        let hits = first.iter().filter(|d| d.is_some()).count();
        assert!(
            (10..=40).contains(&hits),
            "about half of 50 sights fail, not all or none: {hits}"
        );
    }

    #[test]
    fn about_the_planned_share_of_distinct_requests_fails() {
        let faults = Faults::new(FaultPlan {
            seed: 1,
            provider_faults: 0.1,
            crash_after_send: 0.0,
        });
        let hits = (0..2000u32)
            .filter(|i| faults.draw(format!("request {i}").as_bytes()).is_some())
            .count();
        assert!((150..=250).contains(&hits), "10% of 2000: {hits}");
    }

    #[test]
    fn no_fault_is_drawn_at_a_share_of_zero() {
        let faults = Faults::new(FaultPlan {
            seed: 1,
            provider_faults: 0.0,
            crash_after_send: 0.0,
        });
        assert!((0..100).all(|i| faults.draw(&[i]).is_none()));
        assert!(faults.injected().is_empty());
    }

    /// An SDK configuration whose requests all go through the fault layer, one attempt each.
    async fn faulty(provider_faults: f64) -> (aws_config::SdkConfig, Faults) {
        let faults = Faults::new(FaultPlan {
            seed: 3,
            provider_faults,
            crash_after_send: 0.0,
        });
        let log = crate::requests::RequestLog::default();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            // nothing listens there: only the injected answers come back
            .endpoint_url("http://127.0.0.1:9")
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "k", "s", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .http_client(
                log.http_client_with(crate::requests::Component::Dispatch, Some(faults.clone())),
            )
            .load()
            .await;
        (config, faults)
    }

    /// The code the SDK read from an injected answer, or `timeout`.
    fn code_of<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        match err {
            SdkError::ServiceError(e) => e.err().code().unwrap_or("unreadable").to_string(),
            SdkError::TimeoutError(_) => "timeout".into(),
            SdkError::DispatchFailure(f) if f.is_timeout() => "timeout".into(),
            SdkError::DispatchFailure(_) => "dispatch failure".into(),
            SdkError::ResponseError(_) => "unreadable response".into(),
            _ => "other".into(),
        }
    }

    #[tokio::test]
    async fn the_sdks_read_the_injected_answers_as_the_services_documented_errors() {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let (config, faults) = faulty(1.0).await;
        let ses = aws_sdk_sesv2::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        let mut codes = std::collections::BTreeSet::new();
        for i in 0..40 {
            let text = Content::builder()
                .data(format!("message {i}"))
                .build()
                .unwrap_or_else(|_| unreachable!());
            let email = ses
                .send_email()
                .from_email_address("n@herald.example")
                .destination(Destination::builder().to_addresses("a@example.com").build())
                .content(
                    EmailContent::builder()
                        .simple(
                            Message::builder()
                                .subject(text.clone())
                                .body(Body::builder().text(text).build())
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await;
            match email {
                Err(e) => codes.insert(format!("ses {}", code_of(&e))),
                Ok(_) => panic!("every call is answered with a fault"),
            };
            let sms = sns
                .publish()
                .phone_number("+14155550100")
                .message(format!("message {i}"))
                .send()
                .await;
            match sms {
                Err(e) => codes.insert(format!("sns {}", code_of(&e))),
                Ok(_) => panic!("every call is answered with a fault"),
            };
        }
        let expected: std::collections::BTreeSet<String> = [
            "ses ServiceUnavailable",
            "ses TooManyRequestsException",
            "ses MessageRejected",
            "ses timeout",
            "sns InternalError",
            "sns Throttling",
            "sns InvalidParameter",
            "sns timeout",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(codes, expected);
        assert_eq!(faults.injected().len(), 80);
        assert!(faults.accepted().is_empty());
    }

    #[test]
    fn a_settle_to_sent_names_its_notification() {
        let key = json!({"pk": {"S": "org_a#ntf_0123abcd"}, "sk": {"S": "n"}});
        assert_eq!(notification_id_in(&key).as_deref(), Some("ntf_0123abcd"));
    }

    #[test]
    fn a_twilio_refusal_names_the_number_it_refused() {
        assert_eq!(
            twilio_to(b"To=whatsapp%3A%2B14155550100&From=x").as_deref(),
            Some("+14155550100")
        );
    }
}
