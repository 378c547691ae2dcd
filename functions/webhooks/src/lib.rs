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
//!
//! Every route is one line of [`table`]: its path and its handler, one module per provider
//! ([`sendgrid`], [`twilio`], [`ses`]); answers and errors become HTTP in [`error`].

pub mod error;
pub mod sendgrid;
pub mod ses;
pub mod twilio;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::routing::{self, MethodRouter};
use chrono::Duration;
use herald_adapters::config::{self, ConfigError};
use herald_adapters::emf::EmfMeter;
use herald_adapters::{
    DynamoDirectory, DynamoNotificationStore, SecretsManagerSettings, SnsHttpEndpoints,
};
use herald_core::ids::OrgId;
use herald_core::model::{DeliveryService, Provider};
use herald_core::ports::SnsEndpoints;
use herald_core::ports::{Clock, SystemClock};
use herald_core::ports::{Meter, NoMeter, ProviderSettings};
use herald_core::provider_events::AuthError;
use herald_core::providers::OrgProviders;
use herald_core::telemetry::{Measure, Metric};
use herald_core::tracking::WebhookService;
use lambda_http::tower::ServiceExt;
use lambda_http::{Body, Error, Request, Response};

pub use error::{Answer, WebhookError};

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

/// The function's dependencies (cheap to clone: the router's state).
#[derive(Clone)]
pub struct Webhooks {
    pub service: WebhookService,
    pub settings: Arc<dyn ProviderSettings>,
    pub sns: Arc<dyn SnsEndpoints>,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    /// What each request came to, by provider.
    pub meter: Arc<dyn Meter>,
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
        meter: Arc::new(NoMeter),
    }
}

pub async fn webhooks_from_env() -> Result<Webhooks, Error> {
    let config = Config::from_env()?;
    let aws = config::aws().await?;
    let mut webhooks = webhooks(config, &aws, Arc::new(SystemClock));
    webhooks.meter = Arc::new(EmfMeter::stdout(&herald_adapters::emf::namespace_from_env()));
    Ok(webhooks)
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
    pub(crate) async fn with_settings<T>(
        &self,
        org: &OrgId,
        check: impl Fn(&OrgProviders) -> Result<T, AuthError>,
    ) -> Result<T, WebhookError> {
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
}

/// The organization of a `/webhooks/…/{org}` route (an id that does not parse names no webhook).
pub struct Org(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for Org {
    type Rejection = WebhookError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebhookError> {
        let axum::extract::Path(org) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| WebhookError::NotFound)?;
        OrgId::parse(org)
            .map(Org)
            .map_err(|_| WebhookError::NotFound)
    }
}

/// A route: its path (as API Gateway, the SAM template and the OpenAPI document write it) and
/// its handler; webhooks are POST.
struct Route {
    path: &'static str,
    handler: MethodRouter<Webhooks>,
}

fn post<H: Handler<T, Webhooks>, T: 'static>(path: &'static str, handler: H) -> Route {
    Route {
        path,
        handler: routing::post(handler),
    }
}

/// Every route of the webhooks, each written once.
fn table() -> Vec<Route> {
    vec![
        post("/webhooks/sendgrid/{org}", sendgrid::events),
        post("/webhooks/twilio/{org}", twilio::status),
        post("/webhooks/ses", ses::deployment_topic),
        post("/webhooks/ses/{org}", ses::organization_topic),
    ]
}

/// Every route as (method, path): the OpenAPI document (`infra/openapi.yaml`) and the SAM
/// template describe exactly these.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    table().iter().map(|r| ("POST", r.path)).collect()
}

/// The webhooks as an axum router: an unknown path answers 404, a known one with another
/// method 405, both as JSON errors.
pub fn router(webhooks: Webhooks) -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .method_not_allowed_fallback(|| async { WebhookError::MethodNotAllowed })
        .fallback(|| async { WebhookError::NotFound })
        // API Gateway and Lambda bound the payload
        .layer(DefaultBodyLimit::disable())
        .with_state(webhooks)
}

/// Answers one request (an API Gateway v2 event as lambda_http reads it) through the router:
/// what the Lambda runs, and what the local stack and the tests call.
pub async fn handle(w: &Webhooks, req: Request) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_string();
    let response = router(w.clone()).oneshot(req).await?;
    w.meter.record(
        webhook_measure(&path, response.status())
            .into_iter()
            .collect(),
    );
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    Ok(Response::from_parts(parts, Body::from(bytes.to_vec())))
}

/// What a webhook request came to, by provider: `accepted` (applied, or a repeat), `refused`
/// (a signature, body or organization that does not hold), or `failed` (the provider sends it
/// again).
fn webhook_measure(path: &str, status: axum::http::StatusCode) -> Option<Measure> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (Some("webhooks"), Some(provider)) = (parts.next(), parts.next()) else {
        return None;
    };
    let provider = DeliveryService::from(Provider::parse(provider).ok()?);
    let outcome = if status.is_success() {
        "accepted"
    } else if status.is_client_error() {
        "refused"
    } else {
        "failed"
    };
    let measure = Measure {
        code: Some(outcome.into()),
        ..Measure::count(Metric::Webhook).provider(provider)
    };
    Some(match parts.next().and_then(|o| OrgId::parse(o).ok()) {
        Some(org) => measure.org(&org),
        None => measure,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_webhook_is_measured_by_provider_and_outcome_with_its_organization() {
        let m = webhook_measure("/webhooks/sendgrid/org_acme", StatusCode::OK).unwrap();
        assert_eq!(
            (m.metric, m.provider, m.code.as_deref()),
            (
                Metric::Webhook,
                Some(DeliveryService::Sendgrid),
                Some("accepted")
            )
        );
        assert_eq!(m.org.map(|o| o.to_string()).as_deref(), Some("org_acme"));
        let refused = webhook_measure("/webhooks/twilio/org_acme", StatusCode::UNAUTHORIZED);
        assert_eq!(refused.unwrap().code.as_deref(), Some("refused"));
        let ses = webhook_measure("/webhooks/ses", StatusCode::SERVICE_UNAVAILABLE).unwrap();
        assert_eq!((ses.code.as_deref(), ses.org), (Some("failed"), None));
        assert_eq!(
            webhook_measure("/webhooks/fax/org_acme", StatusCode::NOT_FOUND),
            None
        );
        assert_eq!(webhook_measure("/elsewhere", StatusCode::NOT_FOUND), None);
    }
}
