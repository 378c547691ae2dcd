//! The webhooks function (API Gateway HTTP API): the providers' delivery events, verified,
//! then applied to the notifications they speak of.
//!
//! - `POST /webhooks/sendgrid/{org}`: SendGrid's signed event webhook (ECDSA P-256)
//! - `POST /webhooks/twilio/{org}`: Twilio's status callbacks (HMAC-SHA1)
//! - `POST /webhooks/ses`: SES events through an SNS HTTPS subscription (RSA, SNS certificate),
//!   from the deployment's topics (`HERALD_SES_TOPIC_ARNS`)
//! - `POST /webhooks/ses/{org}`: the same from an organization's own topics (its SES settings'
//!   `sns_topic_arns`); only this route confirms the subscription of such a topic, since a
//!   SubscriptionConfirmation names no organization
//!
//! A bad or missing signature is 401 and changes nothing; a body that does not parse is 400;
//! an element of a batch Herald does not understand is counted and skipped; an event for an
//! unknown message is accepted (200) so the provider stops retrying; an event that arrives
//! before its send is recorded is 503 with `Retry-After`.
//!
//! Settings are cached: a signature that does not verify, or credentials not found, with the
//! cached copy are checked again with the settings read again (at most once every few seconds
//! per organization) before the request is refused.

use std::sync::Arc;

use chrono::Duration;
use herald_adapters::config::{self, ConfigError};
use herald_adapters::{
    DynamoDirectory, DynamoNotificationStore, SecretsManagerSettings, SnsHttpEndpoints,
};
use herald_core::ids::OrgId;
use herald_core::ports::ProviderSettings;
use herald_core::ports::SnsEndpoints;
use herald_core::ports::{Clock, PortError, SystemClock};
use herald_core::provider_events::ses::SnsMessage;
use herald_core::provider_events::{AuthError, sendgrid, ses, twilio};
use herald_core::providers::OrgProviders;
use herald_core::tracking::{WebhookService, WebhookSummary};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use tracing::{error, info, warn};

/// Every route: the OpenAPI document (`infra/openapi.yaml`) describes them.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/webhooks/sendgrid/{org}"),
    ("POST", "/webhooks/twilio/{org}"),
    ("POST", "/webhooks/ses"),
    ("POST", "/webhooks/ses/{org}"),
];

#[derive(Debug, Clone)]
pub struct Config {
    pub notifications_table: String,
    pub directory_table: String,
    pub provider_secrets_prefix: String,
    /// The public base URL the providers call (Twilio signs the URL it requested).
    pub public_base_url: String,
    /// How old a SendGrid timestamp may be.
    pub sendgrid_window: Duration,
    /// SNS topics whose SES events are accepted for any organization (organizations may add
    /// their own in their SES settings).
    pub ses_topic_arns: Vec<String>,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            notifications_table: config::required("HERALD_NOTIFICATIONS_TABLE")?,
            directory_table: config::required("HERALD_DIRECTORY_TABLE")?,
            provider_secrets_prefix: config::required("HERALD_PROVIDER_SECRETS_PREFIX")?,
            public_base_url: config::required("HERALD_PUBLIC_BASE_URL")?,
            sendgrid_window: Duration::seconds(config::parsed(
                "HERALD_SENDGRID_WINDOW_SECONDS",
                300,
                str::parse::<i64>,
            )?),
            ses_topic_arns: config::optional("HERALD_SES_TOPIC_ARNS")
                .map(|v| {
                    v.split(',')
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

pub struct Webhooks {
    pub service: WebhookService,
    pub settings: Arc<dyn ProviderSettings>,
    pub sns: Arc<dyn SnsEndpoints>,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
}

/// Builds the function's dependencies; once per cold start.
pub fn webhooks(config: Config, aws: &aws_config::SdkConfig, clock: Arc<dyn Clock>) -> Webhooks {
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let store = Arc::new(DynamoNotificationStore::new(
        dynamo.clone(),
        &config.notifications_table,
    ));
    Webhooks {
        service: WebhookService {
            store: store.clone(),
            deliveries: store,
            directory: Arc::new(DynamoDirectory::new(dynamo, &config.directory_table)),
            clock: clock.clone(),
        },
        settings: Arc::new(SecretsManagerSettings::new(
            aws_sdk_secretsmanager::Client::new(aws),
            &config.provider_secrets_prefix,
        )),
        sns: Arc::new(SnsHttpEndpoints::new(herald_adapters::http_client())),
        clock,
        config,
    }
}

pub async fn webhooks_from_env() -> Result<Webhooks, Error> {
    let config = Config::from_env()?;
    let aws = config::aws().await;
    Ok(webhooks(config, &aws, Arc::new(SystemClock)))
}

/// A failure that becomes a JSON error answer.
enum Failure {
    Unauthorized(String),
    BadRequest(String),
    NotFound,
    MethodNotAllowed,
    Internal(PortError),
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::Unauthorized(e.to_string())
    }
}

impl From<PortError> for Failure {
    fn from(e: PortError) -> Self {
        Failure::Internal(e)
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?)
}

fn answer(result: Result<WebhookSummary, Failure>) -> Result<Response<Body>, Error> {
    match result {
        Ok(summary) if summary.not_ready > 0 => {
            let mut response = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "not_ready", "message": "a message's send is not recorded yet; retry later", "summary": summary}),
            )?;
            response.headers_mut().insert(
                "retry-after",
                lambda_http::http::HeaderValue::from_static("60"),
            );
            Ok(response)
        }
        Ok(summary) => json_response(StatusCode::OK, json!(summary)),
        Err(Failure::Unauthorized(message)) => json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "unauthorized", "message": message}),
        ),
        Err(Failure::BadRequest(message)) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "message": message}),
        ),
        Err(Failure::NotFound) => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "message": "no such webhook"}),
        ),
        Err(Failure::MethodNotAllowed) => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method_not_allowed", "message": "webhooks are POST"}),
        ),
        Err(Failure::Internal(e)) => {
            // the cause goes to the log; the answer stays opaque
            error!(error = %e, "webhook failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "internal", "message": "internal error"}),
            )
        }
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn org_of(segment: &str) -> Result<OrgId, Failure> {
    OrgId::parse(segment).map_err(|_| Failure::NotFound)
}

/// Whether settings read again might verify what the cached ones did not.
fn worth_reading_again(e: &AuthError) -> bool {
    matches!(
        e,
        AuthError::NotConfigured | AuthError::BadSignature | AuthError::BadKey(_)
    )
}

impl Webhooks {
    /// Runs a check against the organization's settings: the cached copy first and, when it
    /// fails in a way newer settings could fix (a rotated key, credentials added since), the
    /// settings read again (at most once every few seconds per organization).
    async fn with_settings<T>(
        &self,
        org: &OrgId,
        check: impl Fn(&OrgProviders) -> Result<T, AuthError>,
    ) -> Result<T, Failure> {
        let cached = self.settings.get(org).await?;
        match check(&cached) {
            Err(e) if worth_reading_again(&e) => {
                let fresh = self.settings.refresh(org).await?;
                if fresh == cached {
                    return Err(e.into());
                }
                Ok(check(&fresh)?)
            }
            other => Ok(other?),
        }
    }

    async fn sendgrid(&self, org: &OrgId, req: &Request) -> Result<WebhookSummary, Failure> {
        let signature =
            header(req, sendgrid::SIGNATURE_HEADER).ok_or(AuthError::MissingSignature)?;
        let timestamp =
            header(req, sendgrid::TIMESTAMP_HEADER).ok_or(AuthError::MissingSignature)?;
        let body = req.body().as_ref();
        let now = self.clock.now();
        self.with_settings(org, |providers| {
            let key = providers
                .sendgrid
                .as_ref()
                .and_then(|s| s.webhook_public_key.as_deref())
                .ok_or(AuthError::NotConfigured)?;
            sendgrid::verify(
                key,
                timestamp,
                body,
                signature,
                now,
                self.config.sendgrid_window,
            )
        })
        .await?;
        let batch = sendgrid::parse(body).map_err(Failure::BadRequest)?;
        if batch.ignored > 0 {
            info!(
                ignored = batch.ignored,
                understood = batch.events.len(),
                "SendGrid elements Herald does not understand; skipped"
            );
        }
        let mut summary = self.service.apply(org, &batch.events).await?;
        summary.ignored = batch.ignored;
        Ok(summary)
    }

    async fn twilio(&self, org: &OrgId, req: &Request) -> Result<WebhookSummary, Failure> {
        let signature = header(req, twilio::SIGNATURE_HEADER).ok_or(AuthError::MissingSignature)?;
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body().as_ref())
            .map_err(|e| Failure::BadRequest(format!("not a form-encoded body: {e}")))?;
        // the URL Twilio requested: the public base, not the internal host
        let mut url = format!(
            "{}{}",
            self.config.public_base_url.trim_end_matches('/'),
            req.uri().path()
        );
        if let Some(query) = req.uri().query() {
            url.push('?');
            url.push_str(query);
        }
        self.with_settings(org, |providers| {
            let token = providers
                .twilio
                .as_ref()
                .map(|t| &t.auth_token)
                .ok_or(AuthError::NotConfigured)?;
            twilio::verify(&url, &params, token.expose(), signature)
        })
        .await?;
        let mut event = twilio::parse(&params, self.clock.now()).map_err(Failure::BadRequest)?;
        // the StatusCallback URL Herald set names the notification (signed with the rest)
        event.notification_hint = twilio::notification_of(req.uri().query());
        Ok(self.service.apply(org, &[event]).await?)
    }

    /// Whether an organization's SES settings list this topic (read again before saying no:
    /// the topic may have been added moments ago).
    async fn org_topic(&self, org: &OrgId, topic: &str) -> Result<bool, Failure> {
        let listed = |p: &OrgProviders| {
            p.ses
                .as_ref()
                .is_some_and(|s| s.sns_topic_arns.iter().any(|t| t == topic))
        };
        let accepted = self
            .with_settings(org, |p| {
                if listed(p) {
                    Ok(())
                } else {
                    Err(AuthError::NotConfigured)
                }
            })
            .await;
        match accepted {
            Ok(()) => Ok(true),
            Err(Failure::Unauthorized(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// SES events over SNS; `route_org` is the organization of `/webhooks/ses/{org}`.
    async fn ses(
        &self,
        route_org: Option<&OrgId>,
        req: &Request,
    ) -> Result<WebhookSummary, Failure> {
        let message = SnsMessage::parse(req.body().as_ref()).map_err(Failure::BadRequest)?;
        if !ses::trusted_cert_url(&message.signing_cert_url, &message.topic_arn) {
            return Err(Failure::Unauthorized(
                "the signing certificate is not SNS's in the topic's region".into(),
            ));
        }
        let pem = self
            .sns
            .certificate(&message.signing_cert_url)
            .await
            .map_err(|e| {
                warn!(reason = %e, "SNS certificate unavailable");
                Failure::Unauthorized("the signing certificate could not be fetched".into())
            })?;
        ses::verify(&message, &ses::cert_public_key(&pem)?)?;
        let deployment_topic = self.config.ses_topic_arns.contains(&message.topic_arn);
        let refused = || Failure::Unauthorized("the topic is not accepted".into());
        match message.kind.as_str() {
            "SubscriptionConfirmation" => {
                // the confirmation names no organization: an organization's topic is confirmed
                // only on that organization's route, and only if its settings list the topic
                let accepted = deployment_topic
                    || match route_org {
                        Some(org) => self.org_topic(org, &message.topic_arn).await?,
                        None => false,
                    };
                if !accepted {
                    return Err(refused());
                }
                let url = message.subscribe_url.as_deref().unwrap_or_default();
                if !ses::trusted_subscribe_url(url, &message.topic_arn) {
                    return Err(Failure::BadRequest("the SubscribeURL is not SNS's".into()));
                }
                self.sns.confirm_subscription(url).await.map_err(|e| {
                    Failure::Internal(PortError::new("confirm SNS subscription", e))
                })?;
                Ok(WebhookSummary::default())
            }
            "UnsubscribeConfirmation" => Ok(WebhookSummary::default()),
            "Notification" => {
                let delivery =
                    ses::parse(&message, self.clock.now()).map_err(Failure::BadRequest)?;
                let org = match (route_org, delivery.org) {
                    // on an organization's route, events are that organization's only
                    (Some(route), Some(tagged)) if route != &tagged => None,
                    (Some(route), _) => Some(route.clone()),
                    (None, tagged) => tagged,
                };
                let Some(org) = org else {
                    return Ok(WebhookSummary {
                        unknown: 1,
                        ..Default::default()
                    });
                };
                if !deployment_topic && !self.org_topic(&org, &message.topic_arn).await? {
                    return Err(refused());
                }
                Ok(self.service.apply(&org, &[delivery.event]).await?)
            }
            other => Err(Failure::BadRequest(format!(
                "unknown SNS message type {other:?}"
            ))),
        }
    }
}

/// The Lambda handler.
pub async fn handle(w: &Webhooks, req: Request) -> Result<Response<Body>, Error> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let result = match (req.method(), segments.as_slice()) {
        (&Method::POST, ["webhooks", "sendgrid", org]) => match org_of(org) {
            Ok(org) => w.sendgrid(&org, &req).await,
            Err(e) => Err(e),
        },
        (&Method::POST, ["webhooks", "twilio", org]) => match org_of(org) {
            Ok(org) => w.twilio(&org, &req).await,
            Err(e) => Err(e),
        },
        (&Method::POST, ["webhooks", "ses"]) => w.ses(None, &req).await,
        (&Method::POST, ["webhooks", "ses", org]) => match org_of(org) {
            Ok(org) => w.ses(Some(&org), &req).await,
            Err(e) => Err(e),
        },
        (_, ["webhooks", "sendgrid" | "twilio" | "ses", _] | ["webhooks", "ses"]) => {
            Err(Failure::MethodNotAllowed)
        }
        _ => Err(Failure::NotFound),
    };
    answer(result)
}
