//! Local stand-ins for SendGrid's and Twilio's APIs, for the local stack and the tests alike.
//! They check each request as the providers document it (authentication, content type,
//! required fields and their format), answer as the providers do, errors included, and record
//! what they accepted. A test may script the next answers.
//!
//! Told to call back ([`StandIns::call_back`]), they also play the providers' side of
//! delivery tracking: for each message they accepted, Twilio's signed status callbacks to the
//! message's `StatusCallback` (`sent`, then `delivered`) and SendGrid's signed event webhook
//! (`processed`, then `delivered`) to the account's webhook URL. The calls wait until
//! [`StandIns::deliver_callbacks`], so whoever drives the stage decides when the providers
//! answer: after the send is recorded, as in AWS, where the callbacks come seconds later.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tracing::warn;

mod sendgrid;
mod twilio;

pub use sendgrid::{SENDGRID_KEY, SendGridSigner};
pub use twilio::{TWILIO_SID, TWILIO_TOKEN};

/// A scripted answer: an HTTP status and, for errors, the provider's error body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// SendGrid's error answer, for scripting (a status that is not one is a 500).
pub fn sendgrid_answer(status: u16, message: &str) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body: json!({"errors": [{"message": message, "field": null, "help": null}]}),
    }
}

/// Twilio's error answer, for scripting (a status that is not one is a 500).
pub fn twilio_answer(status: u16, code: u32, message: &str) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body: json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}),
    }
}

/// The provider a stand-in request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    SendGrid,
    Twilio,
}

/// Decides, for a request that passed the provider's checks, whether it gets an error answer
/// instead of being accepted (`herald-local chaos` injects faults through it). It is given
/// the provider and the request's body as sent.
pub type Faults = Arc<dyn Fn(Provider, &[u8]) -> Option<Answer> + Send + Sync>;

/// How often a provider calls back before giving up on a webhook that keeps refusing (SendGrid
/// retries for a day; here a call is retried at the next few deliveries).
const CALLBACK_ATTEMPTS: u32 = 5;

/// A provider's call to one of Herald's webhooks, waiting to be made.
#[derive(Debug, Clone)]
struct Callback {
    /// The provider's message id: one message's calls are made in order.
    message: String,
    url: String,
    request: CallbackRequest,
    attempts: u32,
}

#[derive(Debug, Clone)]
enum CallbackRequest {
    /// Twilio's status callback: form parameters, signed with the account's auth token.
    Twilio(Vec<(String, String)>),
    /// SendGrid's event webhook: a JSON array of events, signed with the timestamp.
    SendGrid(Value),
}

/// What one [`StandIns::deliver_callbacks`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Calls the webhook answered with a 2xx.
    pub delivered: usize,
    /// Calls refused or unanswered, kept for the next delivery.
    pub pending: usize,
    /// Calls refused too often, given up.
    pub abandoned: usize,
}

#[derive(Default)]
struct Inner {
    sendgrid: Vec<Value>,
    twilio: Vec<Vec<(String, String)>>,
    script: VecDeque<Answer>,
    faults: Option<Faults>,
    next_id: u64,
    /// Whether accepted messages call back.
    calls_back: bool,
    /// Each SendGrid account (its API key) and its event webhook URL, if it has one.
    sendgrid_accounts: HashMap<String, Option<String>>,
    callbacks: VecDeque<Callback>,
}

#[derive(Clone)]
pub struct StandIns {
    inner: Arc<Mutex<Inner>>,
    url: String,
    signer: Arc<SendGridSigner>,
    http: reqwest::Client,
}

impl StandIns {
    /// Starts the stand-ins on a free 127.0.0.1 port, with a fresh SendGrid signing key; they
    /// run until the runtime ends.
    pub async fn start() -> std::io::Result<StandIns> {
        Self::start_with(SendGridSigner::new()?).await
    }

    /// As [`StandIns::start`], with the SendGrid signing key kept in this file (made there the
    /// first time), so that every process of the local stack signs with the key the sample
    /// organization's settings hold.
    pub async fn start_keeping_key(key_file: &Path) -> std::io::Result<StandIns> {
        Self::start_with(SendGridSigner::kept_in(key_file)?).await
    }

    async fn start_with(signer: SendGridSigner) -> std::io::Result<StandIns> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let inner = Inner {
            sendgrid_accounts: HashMap::from([(SENDGRID_KEY.to_string(), None)]),
            ..Inner::default()
        };
        let stand_ins = StandIns {
            inner: Arc::new(Mutex::new(inner)),
            url,
            signer: Arc::new(signer),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v3/mail/send", post(sendgrid::send))
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio::send),
            )
            .with_state(stand_ins.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(stand_ins)
    }

    /// Where they listen: the base URL for both SendGrid and Twilio.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SendGrid event webhook's verification key, as SendGrid shows it (base64 DER).
    pub fn sendgrid_public_key(&self) -> String {
        self.signer.public_key()
    }

    /// From now on, accepted messages call back: Twilio to each message's `StatusCallback`,
    /// SendGrid to the event webhook of the account that sent it.
    pub fn call_back(&self) {
        self.lock().calls_back = true;
    }

    /// A SendGrid account (its API key) whose events go to this webhook URL.
    pub fn sendgrid_account(&self, api_key: &str, event_webhook: impl Into<String>) {
        self.lock()
            .sendgrid_accounts
            .insert(api_key.to_string(), Some(event_webhook.into()));
    }

    /// The next requests get these answers instead of the normal one (after the checks).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.lock().script.extend(answers);
    }

    /// From now on, a request the script does not answer is put to `faults`, which may answer
    /// it with an error instead of accepting it.
    pub fn inject_faults(&self, faults: Faults) {
        self.lock().faults = Some(faults);
    }

    /// The JSON bodies SendGrid accepted.
    pub fn sendgrid_requests(&self) -> Vec<Value> {
        self.lock().sendgrid.clone()
    }

    /// The form fields Twilio accepted.
    pub fn twilio_requests(&self) -> Vec<Vec<(String, String)>> {
        self.lock().twilio.clone()
    }

    /// Makes the calls waiting, in order; a call the webhook refuses (a 5xx while the send is
    /// not recorded yet, say) holds back the later calls about its message until the next
    /// delivery, as the providers retry.
    pub async fn deliver_callbacks(&self) -> Delivery {
        let due: Vec<Callback> = self.lock().callbacks.drain(..).collect();
        let mut delivery = Delivery::default();
        let mut held: HashSet<String> = HashSet::new();
        let mut kept = Vec::new();
        for mut call in due {
            if held.contains(&call.message) {
                kept.push(call);
                continue;
            }
            match self.post(&call).await {
                Ok(status) if status.is_success() => {
                    delivery.delivered += 1;
                    continue;
                }
                Ok(status) => warn!(status = status.as_u16(), "a webhook refused a callback"),
                Err(e) => warn!(error = %e, "a callback could not be made"),
            }
            call.attempts += 1;
            if call.attempts >= CALLBACK_ATTEMPTS {
                delivery.abandoned += 1;
            } else {
                held.insert(call.message.clone());
                kept.push(call);
            }
        }
        delivery.pending = kept.len();
        let mut inner = self.lock();
        for call in kept.into_iter().rev() {
            inner.callbacks.push_front(call);
        }
        delivery
    }

    async fn post(&self, call: &Callback) -> reqwest::Result<StatusCode> {
        let request = match &call.request {
            CallbackRequest::Twilio(params) => twilio::callback(&self.http, &call.url, params),
            CallbackRequest::SendGrid(events) => {
                sendgrid::callback(&self.http, &self.signer, &call.url, events)
            }
        };
        let status = request.send().await?.status();
        Ok(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // a test that panicked while holding it leaves nothing half-written worth refusing
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer a request gets instead of the normal one: the script's next, else the
    /// injected fault's, if any.
    fn scripted(&self, provider: Provider, body: &[u8]) -> Option<Answer> {
        let (scripted, faults) = {
            let mut inner = self.lock();
            (inner.script.pop_front(), inner.faults.clone())
        };
        // the hook runs without the lock: it may take its own
        scripted.or_else(|| faults.and_then(|f| f(provider, body)))
    }

    fn next_id(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        inner.next_id
    }

    /// Queues a message's calls, when accepted messages call back.
    fn queue_callbacks(&self, message: &str, url: &str, requests: Vec<CallbackRequest>) {
        let mut inner = self.lock();
        if !inner.calls_back {
            return;
        }
        inner
            .callbacks
            .extend(requests.into_iter().map(|request| Callback {
                message: message.to_string(),
                url: url.to_string(),
                request,
                attempts: 0,
            }));
    }
}
