//! The HTTP api (API Gateway HTTP API with a JWT authorizer): the customer feed, preferences
//! and contacts, notification detail and retry, dead letters, statistics, provider settings.
//!
//! The caller's identity comes from the authorizer's verified claims: `org_id` (every
//! caller), `role` (`customer`, `operator` or `admin`) and, for customers, `customer_id`.
//! A customer reads only their own feed; nobody reads across organizations.
//!
//! Every route is one line of [`table`]: its method, its path and its handler, whose
//! extractors say who may call it ([`request::Customer`], [`request::Operator`],
//! [`request::Admin`]). The handlers live by resource: [`feed`], [`customer`] (preferences and
//! contact), [`operations`], [`admin`]; errors become answers in [`error`].

pub mod admin;
pub mod customer;
pub mod error;
pub mod feed;
pub mod operations;
pub mod request;
pub mod templates;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{self, MethodRouter};
use herald_adapters::config::{self, ConfigError};
use herald_adapters::websocket::RealtimeConfig;
use herald_adapters::{
    DynamoDirectory, DynamoNotificationStore, DynamoTemplates, DynamoViews, SecretsManagerSettings,
    SesIdentities, SqsDispatchQueue,
};
use herald_core::ids::EmailAddress;
use herald_core::ports::ProviderSettings;
use herald_core::ports::SendingIdentities;
use herald_core::ports::{Clock, Directory, DispatchQueue, NotificationStore, SystemClock};
use herald_core::ports::{TemplateStore, Views};
use herald_core::rate_limit::RateLimits;
use herald_core::realtime::Realtime;
use herald_core::routing::Routing;
use herald_core::template::Catalog;
use lambda_http::tower::ServiceExt;
use lambda_http::{Body, Error, Request, Response};

pub use error::ApiError;

#[derive(Debug, Clone)]
pub struct Config {
    pub notifications_table: String,
    pub directory_table: String,
    pub views_table: String,
    /// The organizations' own templates and types.
    pub templates_table: String,
    pub dispatch_queue_url: String,
    pub provider_secrets_prefix: String,
    /// The deployment's own sender, which every organization may use.
    pub default_sender: EmailAddress,
    /// The deployment's routing (`HERALD_DEFAULT_ROUTING`), shown beside an organization's.
    pub routing: Routing,
    /// The deployment's rate limits (`HERALD_DEFAULT_RATE_LIMITS`), shown beside an
    /// organization's.
    pub rate_limits: RateLimits,
    /// The customers' open WebSocket connections, told of what they read.
    pub realtime: Option<RealtimeConfig>,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            notifications_table: config::required("HERALD_NOTIFICATIONS_TABLE")?,
            directory_table: config::required("HERALD_DIRECTORY_TABLE")?,
            views_table: config::required("HERALD_VIEWS_TABLE")?,
            templates_table: config::required("HERALD_TEMPLATES_TABLE")?,
            dispatch_queue_url: config::required("HERALD_DISPATCH_QUEUE_URL")?,
            provider_secrets_prefix: config::required("HERALD_PROVIDER_SECRETS_PREFIX")?,
            default_sender: EmailAddress::parse(config::required("HERALD_DEFAULT_SENDER")?)
                .map_err(|e| ConfigError::Invalid {
                    name: "HERALD_DEFAULT_SENDER",
                    message: e.0,
                })?,
            routing: config::default_routing()?,
            rate_limits: config::default_rate_limits()?,
            realtime: RealtimeConfig::from_env(),
        })
    }
}

/// The api's dependencies (cheap to clone: the router's state).
#[derive(Clone)]
pub struct Api {
    pub store: Arc<dyn NotificationStore>,
    pub directory: Arc<dyn Directory>,
    pub views: Arc<dyn Views>,
    pub queue: Arc<dyn DispatchQueue>,
    pub settings: Arc<dyn ProviderSettings>,
    pub identities: Arc<dyn SendingIdentities>,
    /// Organizations' push platform applications (SNS).
    pub push_applications: Arc<dyn herald_core::ports::PlatformApplications>,
    pub catalog: Arc<Catalog>,
    /// The organizations' own templates and types, over the catalog.
    pub templates: Arc<dyn TemplateStore>,
    pub clock: Arc<dyn Clock>,
    pub default_sender: EmailAddress,
    pub routing: Routing,
    pub rate_limits: RateLimits,
    /// Where reads are broadcast to the customer's open connections, if anywhere.
    pub realtime: Option<Realtime>,
}

/// Builds the api's dependencies; once per cold start.
pub fn api(
    config: &Config,
    aws: &aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Result<Api, Error> {
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    Ok(Api {
        store: Arc::new(DynamoNotificationStore::new(
            dynamo.clone(),
            &config.notifications_table,
        )),
        directory: Arc::new(DynamoDirectory::new(
            dynamo.clone(),
            &config.directory_table,
        )),
        views: Arc::new(DynamoViews::new(dynamo.clone(), &config.views_table)),
        templates: Arc::new(DynamoTemplates::new(dynamo, &config.templates_table)),
        queue: Arc::new(SqsDispatchQueue::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dispatch_queue_url,
        )),
        settings: Arc::new(SecretsManagerSettings::new(
            aws_sdk_secretsmanager::Client::new(aws),
            &config.provider_secrets_prefix,
        )),
        identities: Arc::new(SesIdentities::new(aws_sdk_sesv2::Client::new(aws))),
        push_applications: Arc::new(herald_adapters::SnsPlatformApplications::new(
            aws_sdk_sns::Client::new(aws),
        )),
        catalog: Arc::new(Catalog::embedded()?),
        clock,
        default_sender: config.default_sender.clone(),
        routing: config.routing.clone(),
        rate_limits: config.rate_limits.clone(),
        realtime: config.realtime.as_ref().map(|r| r.realtime(aws)),
    })
}

pub async fn api_from_env() -> Result<Api, Error> {
    let config = Config::from_env()?;
    api(&config, &config::aws().await?, Arc::new(SystemClock))
}

/// A route: its method and path (as API Gateway, the SAM template and the OpenAPI document
/// write them; axum reads `{name}` as a path parameter) and its handler.
struct Route {
    method: &'static str,
    path: &'static str,
    handler: MethodRouter<Api>,
}

fn get<H: Handler<T, Api>, T: 'static>(path: &'static str, handler: H) -> Route {
    Route {
        method: "GET",
        path,
        handler: routing::get(handler),
    }
}

fn put<H: Handler<T, Api>, T: 'static>(path: &'static str, handler: H) -> Route {
    Route {
        method: "PUT",
        path,
        handler: routing::put(handler),
    }
}

fn delete<H: Handler<T, Api>, T: 'static>(path: &'static str, handler: H) -> Route {
    Route {
        method: "DELETE",
        path,
        handler: routing::delete(handler),
    }
}

fn post<H: Handler<T, Api>, T: 'static>(path: &'static str, handler: H) -> Route {
    Route {
        method: "POST",
        path,
        handler: routing::post(handler),
    }
}

/// Every route of the api, each written once.
fn table() -> Vec<Route> {
    vec![
        get("/customers/{customer_id}/notifications", feed::page),
        post(
            "/customers/{customer_id}/notifications/{id}/read",
            feed::read_one,
        ),
        post(
            "/customers/{customer_id}/notifications/read-all",
            feed::read_all,
        ),
        get(
            "/customers/{customer_id}/preferences",
            customer::preferences,
        ),
        put(
            "/customers/{customer_id}/preferences",
            customer::put_preferences,
        ),
        get("/customers/{customer_id}/contact", customer::contact),
        put("/customers/{customer_id}/contact", customer::put_contact),
        get("/notifications/{id}", operations::notification),
        post("/notifications/{id}/retry", operations::retry),
        get("/dead-letters", operations::dead_letters),
        get("/stats", operations::stats),
        get("/admin/providers/{provider}", admin::provider),
        put("/admin/providers/{provider}", admin::put_provider),
        get("/admin/routing", admin::routing),
        put("/admin/routing", admin::put_routing),
        get("/admin/rate-limits", admin::rate_limits),
        put("/admin/rate-limits", admin::put_rate_limits),
        get("/admin/identities/{identity}", admin::identity),
        put("/admin/identities/{identity}", admin::register_identity),
        get("/templates", templates::list),
        post("/templates/preview", templates::preview),
        get("/templates/{type}", templates::show),
        put("/templates/{type}", templates::put_type),
        put(
            "/templates/{type}/{channel}/{locale}",
            templates::put_template,
        ),
        delete(
            "/templates/{type}/{channel}/{locale}",
            templates::delete_template,
        ),
    ]
}

/// Every route as (method, path): the OpenAPI document (`infra/openapi.yaml`) and the SAM
/// template describe exactly these.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    table().iter().map(|r| (r.method, r.path)).collect()
}

/// The api as an axum router: an unknown path answers 404, a known one with another method
/// 405, both as JSON errors.
pub fn router(api: Api) -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NoRoute })
        // API Gateway and Lambda bound the payload
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

/// Answers one request (an API Gateway v2 event as lambda_http reads it) through the router:
/// what the Lambda runs, and what the local stack and the tests call.
pub async fn handle(api: &Api, req: Request) -> Result<Response<Body>, Error> {
    let response = router(api.clone()).oneshot(req).await?;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    Ok(Response::from_parts(parts, Body::from(bytes.to_vec())))
}
