//! The HTTP api (API Gateway HTTP API with a JWT authorizer): the customer feed, preferences
//! and contacts, notification detail and retry, dead letters, statistics, provider settings.
//!
//! The caller's identity comes from the authorizer's verified claims: `org_id` (every
//! caller), `role` (`customer`, `operator` or `admin`) and, for customers, `customer_id`.
//! A customer reads only their own feed; nobody reads across organizations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use herald_adapters::config::{self, ConfigError};
use herald_adapters::{
    DynamoDirectory, DynamoNotificationStore, DynamoViews, SecretsManagerSettings, SesIdentities,
    SqsDispatchQueue,
};
use herald_core::consent::SuppressionKey;
use herald_core::directory::{CustomerUpdate, Origin, QuietHours, TimeZone};
use herald_core::directory_update::update_customer;
use herald_core::identity::{self, SenderIdentity};
use herald_core::ids::{
    CustomerId, EmailAddress, Locale, NotificationId, NotificationType, OrgId, PhoneNumber,
};
use herald_core::model::Provider;
use herald_core::model::{Channel, Notification, Recipient};
use herald_core::ports::ProviderSettings;
use herald_core::ports::SendingIdentities;
use herald_core::ports::Views;
use herald_core::ports::{
    Clock, Directory, DispatchMessage, DispatchQueue, Enqueue, NotificationStore, PortError,
    RetryOutcome, SystemClock,
};
use herald_core::settings::{self, UpdateError};
use herald_core::template::Catalog;
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::error;

/// Every route: the OpenAPI document (`infra/openapi.yaml`) describes exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/customers/{customer_id}/notifications"),
    ("POST", "/customers/{customer_id}/notifications/{id}/read"),
    ("POST", "/customers/{customer_id}/notifications/read-all"),
    ("GET", "/customers/{customer_id}/preferences"),
    ("PUT", "/customers/{customer_id}/preferences"),
    ("GET", "/customers/{customer_id}/contact"),
    ("PUT", "/customers/{customer_id}/contact"),
    ("GET", "/notifications/{id}"),
    ("POST", "/notifications/{id}/retry"),
    ("GET", "/dead-letters"),
    ("GET", "/stats"),
    ("GET", "/admin/providers/{provider}"),
    ("PUT", "/admin/providers/{provider}"),
    ("GET", "/admin/identities/{identity}"),
    ("PUT", "/admin/identities/{identity}"),
];

#[derive(Debug, Clone)]
pub struct Config {
    pub notifications_table: String,
    pub directory_table: String,
    pub views_table: String,
    pub dispatch_queue_url: String,
    pub provider_secrets_prefix: String,
    /// The deployment's own sender, which every organization may use.
    pub default_sender: EmailAddress,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            notifications_table: config::required("HERALD_NOTIFICATIONS_TABLE")?,
            directory_table: config::required("HERALD_DIRECTORY_TABLE")?,
            views_table: config::required("HERALD_VIEWS_TABLE")?,
            dispatch_queue_url: config::required("HERALD_DISPATCH_QUEUE_URL")?,
            provider_secrets_prefix: config::required("HERALD_PROVIDER_SECRETS_PREFIX")?,
            default_sender: EmailAddress::parse(config::required("HERALD_DEFAULT_SENDER")?)
                .map_err(|e| ConfigError::Invalid {
                    name: "HERALD_DEFAULT_SENDER",
                    message: e.0,
                })?,
        })
    }
}

pub struct Api {
    pub store: Arc<dyn NotificationStore>,
    pub directory: Arc<dyn Directory>,
    pub views: Arc<dyn Views>,
    pub queue: Arc<dyn DispatchQueue>,
    pub settings: Arc<dyn ProviderSettings>,
    pub identities: Arc<dyn SendingIdentities>,
    pub catalog: Arc<Catalog>,
    pub clock: Arc<dyn Clock>,
    pub default_sender: EmailAddress,
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
        views: Arc::new(DynamoViews::new(dynamo, &config.views_table)),
        queue: Arc::new(SqsDispatchQueue::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dispatch_queue_url,
        )),
        settings: Arc::new(SecretsManagerSettings::new(
            aws_sdk_secretsmanager::Client::new(aws),
            &config.provider_secrets_prefix,
        )),
        identities: Arc::new(SesIdentities::new(aws_sdk_sesv2::Client::new(aws))),
        catalog: Arc::new(Catalog::embedded()?),
        clock,
        default_sender: config.default_sender.clone(),
    })
}

pub async fn api_from_env() -> Result<Api, Error> {
    let config = Config::from_env()?;
    api(&config, &config::aws().await, Arc::new(SystemClock))
}

/// Who is calling, from the authorizer's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Customer { org: OrgId, customer: CustomerId },
    Operator { org: OrgId },
    Admin { org: OrgId },
}

impl Caller {
    pub fn org(&self) -> &OrgId {
        match self {
            Caller::Customer { org, .. } | Caller::Operator { org } | Caller::Admin { org } => org,
        }
    }

    /// The identity in a set of verified claims.
    pub fn from_claims(claims: &HashMap<String, String>) -> Option<Caller> {
        let org = OrgId::parse(claims.get("org_id")?.as_str()).ok()?;
        match claims.get("role").map(String::as_str).unwrap_or("customer") {
            "admin" => Some(Caller::Admin { org }),
            "operator" => Some(Caller::Operator { org }),
            "customer" => Some(Caller::Customer {
                customer: CustomerId::parse(claims.get("customer_id")?.as_str()).ok()?,
                org,
            }),
            _ => None,
        }
    }
}

fn caller(req: &Request) -> Option<Caller> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            let claims = &ctx.authorizer.as_ref()?.jwt.as_ref()?.claims;
            Caller::from_claims(claims)
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// An error answer: `{ "error": code, "message": … }`.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    Forbidden(&'static str),
    NotFound(&'static str),
    NoRoute,
    Conflict(String),
    Internal(PortError),
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        ApiError::Internal(e)
    }
}

fn respond(status: StatusCode, body: &Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?)
}

fn error_response(e: ApiError) -> Result<Response<Body>, Error> {
    let (status, code, message) = match e {
        ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
        ApiError::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid token is required".into(),
        ),
        ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.into()),
        ApiError::NotFound(what) => (
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        ),
        ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route", "no such route".into()),
        ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
        ApiError::Internal(e) => {
            error!(error = %e, "api request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".into(),
            )
        }
    };
    respond(status, &json!({"error": code, "message": message}))
}

fn query(req: &Request) -> HashMap<String, String> {
    req.uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn body_json<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    serde_json::from_slice(req.body().as_ref())
        .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
}

fn customer_of(segment: &str, caller: &Caller) -> Result<CustomerId, ApiError> {
    let customer = CustomerId::parse(segment).map_err(|_| ApiError::NotFound("customer"))?;
    match caller {
        Caller::Customer { customer: own, .. } if own != &customer => Err(ApiError::Forbidden(
            "a customer may only see their own data",
        )),
        _ => Ok(customer),
    }
}

fn operator(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Customer { .. } => Err(ApiError::Forbidden("operators only")),
        _ => Ok(()),
    }
}

fn admin(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin { .. } => Ok(()),
        _ => Err(ApiError::Forbidden("administrators only")),
    }
}

#[derive(Serialize)]
struct NotificationView<'a> {
    id: &'a NotificationId,
    #[serde(rename = "type")]
    notification_type: &'a NotificationType,
    recipient: &'a str,
    channel: Channel,
    status: &'a str,
    subject: &'a Option<String>,
    body: &'a str,
    attempts: u32,
    created_at: String,
    scheduled_for: Option<String>,
    sent_at: Option<String>,
    provider_message_id: &'a Option<String>,
    last_error: &'a Option<String>,
    opened_at: Option<String>,
    clicked_at: Option<String>,
}

fn view(n: &Notification) -> NotificationView<'_> {
    let t = |v: &Option<chrono::DateTime<chrono::Utc>>| v.as_ref().map(herald_core::time::format);
    NotificationView {
        id: &n.id,
        notification_type: &n.notification_type,
        recipient: n.recipient.label(),
        channel: n.channel,
        status: n.status.as_str(),
        subject: &n.subject,
        body: &n.body,
        attempts: n.attempts,
        created_at: herald_core::time::format(&n.created_at),
        scheduled_for: t(&n.scheduled_for),
        sent_at: t(&n.sent_at),
        provider_message_id: &n.provider_message_id,
        last_error: &n.last_error,
        opened_at: t(&n.opened_at),
        clicked_at: t(&n.clicked_at),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferencesBody {
    channels: BTreeMap<Channel, bool>,
    #[serde(default)]
    unsubscribed: BTreeSet<NotificationType>,
    #[serde(default)]
    quiet_hours: Option<QuietHours>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    email: Option<EmailAddress>,
    phone: Option<PhoneNumber>,
    locale: Option<Locale>,
    timezone: Option<TimeZone>,
}

const MAX_PAGE: usize = 100;
const MAX_STATS_DAYS: i64 = 31;

impl Api {
    async fn feed(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let q = query(req);
        let limit = match q.get("limit") {
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_PAGE).contains(l))
                .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {MAX_PAGE}")))?,
            None => 20,
        };
        let (items, next) = self
            .views
            .feed_page(org, customer, limit, q.get("cursor").map(String::as_str))
            .await
            .map_err(|e| {
                if e.to_string().contains("cursor") {
                    ApiError::BadRequest("invalid cursor".into())
                } else {
                    ApiError::Internal(e)
                }
            })?;
        let unread = self.views.unread(org, customer).await?;
        Ok(json!({"items": items, "unread": unread, "next_cursor": next}))
    }

    async fn owned_notification(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        id: &str,
    ) -> Result<Notification, ApiError> {
        let id = NotificationId::parse(id).map_err(|_| ApiError::NotFound("notification"))?;
        let n = self
            .store
            .get(org, &id)
            .await?
            .ok_or(ApiError::NotFound("notification"))?;
        match &n.recipient {
            Recipient::Customer(c) if c == customer && !n.internal => Ok(n),
            _ => Err(ApiError::NotFound("notification")),
        }
    }

    async fn read_one(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        id: &str,
    ) -> Result<Value, ApiError> {
        let n = self.owned_notification(org, customer, id).await?;
        self.views
            .mark_read(org, customer, n.created_at, &n.id)
            .await?;
        Ok(json!({"id": n.id, "read": true, "unread": self.views.unread(org, customer).await?}))
    }

    async fn read_all(&self, org: &OrgId, customer: &CustomerId) -> Result<Value, ApiError> {
        let mut marked = 0;
        let mut cursor: Option<String> = None;
        loop {
            let (items, next) = self
                .views
                .feed_page(org, customer, MAX_PAGE, cursor.as_deref())
                .await?;
            for e in items.iter().filter(|e| !e.read) {
                if self
                    .views
                    .mark_read(org, customer, e.created_at, &e.notification_id)
                    .await?
                {
                    marked += 1;
                }
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(json!({"marked": marked, "unread": self.views.unread(org, customer).await?}))
    }

    async fn preferences(&self, org: &OrgId, customer: &CustomerId) -> Result<Value, ApiError> {
        let record = self
            .directory
            .get_customer(org, customer)
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        Ok(match record.preferences {
            None => json!({"channels": {}, "unsubscribed": [], "quiet_hours": null, "set": false}),
            Some(p) => json!({
                "channels": p.channels.iter().map(|(c, s)| (c.as_str(), s.value)).collect::<BTreeMap<_, _>>(),
                "unsubscribed": p.unsubscribed.as_ref().map(|s| s.value.clone()).unwrap_or_default(),
                "quiet_hours": p.quiet_hours(),
                "set": true,
            }),
        })
    }

    async fn put_preferences(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let body: PreferencesBody = body_json(req)?;
        if let Some(unknown) = body
            .unsubscribed
            .iter()
            .find(|t| self.catalog.spec(t).is_none())
        {
            return Err(ApiError::BadRequest(format!(
                "unknown notification type {:?}",
                unknown.as_str()
            )));
        }
        let update = CustomerUpdate::Preferences {
            channels: body.channels,
            unsubscribed: body.unsubscribed,
            quiet_hours: body.quiet_hours,
        };
        self.update(org, customer, update, "update preferences")
            .await?;
        self.preferences(org, customer).await
    }

    /// Applies the customer's own change: it always applies, whatever the stored fields' times
    /// (a directory event stamped in the future never locks a customer out of their own record).
    async fn update(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        update: CustomerUpdate,
        operation: &'static str,
    ) -> Result<(), ApiError> {
        update_customer(
            self.directory.as_ref(),
            org,
            customer,
            update,
            Origin::Owner {
                now: self.clock.now(),
            },
        )
        .await
        .map_err(|e| ApiError::Internal(PortError::new(operation, e)))
    }

    async fn contact(&self, org: &OrgId, customer: &CustomerId) -> Result<Value, ApiError> {
        let r = self
            .directory
            .get_customer(org, customer)
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        // the addresses' standing: bounced, complained or opted out addresses are suppressed
        let mut keys = Vec::new();
        if let Some(e) = &r.email {
            keys.push(SuppressionKey {
                channel: Channel::Email,
                address: e.value.as_str().to_ascii_lowercase(),
            });
        }
        if let Some(p) = &r.phone {
            for channel in [Channel::Sms, Channel::Whatsapp] {
                keys.push(SuppressionKey {
                    channel,
                    address: p.value.as_str().to_string(),
                });
            }
        }
        let suppressed: Vec<Channel> = if keys.is_empty() {
            Vec::new()
        } else {
            self.directory
                .suppressed(org, &keys)
                .await?
                .into_iter()
                .map(|k| k.channel)
                .collect()
        };
        Ok(json!({
            "email": r.email.map(|s| s.value),
            "phone": r.phone.map(|s| s.value),
            "locale": r.locale.map(|s| s.value),
            "timezone": r.timezone.map(|s| s.value),
            "suppressed": suppressed,
        }))
    }

    async fn put_contact(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let body: ContactBody = body_json(req)?;
        let update = CustomerUpdate::Contact {
            email: body.email,
            phone: body.phone,
            locale: body.locale,
            timezone: body.timezone,
        };
        self.update(org, customer, update, "update contact").await?;
        self.contact(org, customer).await
    }

    async fn notification(&self, org: &OrgId, id: &str) -> Result<Value, ApiError> {
        let id = NotificationId::parse(id).map_err(|_| ApiError::NotFound("notification"))?;
        let n = self
            .store
            .get(org, &id)
            .await?
            .ok_or(ApiError::NotFound("notification"))?;
        let log = self.views.log(org, &id).await?;
        Ok(json!({"notification": view(&n), "log": log}))
    }

    async fn retry(&self, org: &OrgId, id: &str) -> Result<(StatusCode, Value), ApiError> {
        let id = NotificationId::parse(id).map_err(|_| ApiError::NotFound("notification"))?;
        match self
            .store
            .reset_for_retry(org, &id, self.clock.now())
            .await?
        {
            RetryOutcome::NotFound => Err(ApiError::NotFound("notification")),
            RetryOutcome::NotFailed(status) => Err(ApiError::Conflict(format!(
                "only failed notifications can be retried; this one is {status}"
            ))),
            RetryOutcome::Reset(n) => {
                let message = DispatchMessage {
                    org_id: org.clone(),
                    notification_id: n.id.clone(),
                };
                self.queue
                    .enqueue(&[Enqueue {
                        message,
                        delay: std::time::Duration::ZERO,
                    }])
                    .await?;
                Ok((
                    StatusCode::ACCEPTED,
                    json!({"id": n.id, "status": n.status.as_str(), "attempts": n.attempts}),
                ))
            }
        }
    }

    async fn stats(&self, org: &OrgId, req: &Request) -> Result<Value, ApiError> {
        let q = query(req);
        let today = self.clock.now().date_naive();
        let day = |name: &str| -> Result<NaiveDate, ApiError> {
            match q.get(name) {
                None => Ok(today),
                Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                    ApiError::BadRequest(format!("{name} must be a date as YYYY-MM-DD"))
                }),
            }
        };
        let (from, to) = (day("from")?, day("to")?);
        if to < from || (to - from) >= Duration::days(MAX_STATS_DAYS) {
            return Err(ApiError::BadRequest(format!(
                "from..to must be 1 to {MAX_STATS_DAYS} days, in order"
            )));
        }
        let mut days = Vec::new();
        let mut d = from;
        while d <= to {
            let counts: Vec<Value> = self
                .views
                .stats(org, d)
                .await?
                .into_iter()
                .map(|c| json!({"type": c.key.notification_type, "channel": c.key.channel, "outcome": c.key.outcome, "count": c.count}))
                .collect();
            days.push(json!({"day": d.to_string(), "counts": counts}));
            d += Duration::days(1);
        }
        Ok(json!({"from": from.to_string(), "to": to.to_string(), "days": days}))
    }

    async fn provider(
        &self,
        org: &OrgId,
        name: &str,
        put: Option<&Request>,
    ) -> Result<Value, ApiError> {
        let provider = Provider::parse(name).map_err(|_| ApiError::NotFound("provider"))?;
        let providers = match put {
            // read fresh and written only if nobody wrote in between: another provider's
            // settings saved meanwhile are kept
            Some(req) => {
                let settings: Value = body_json(req)?;
                settings::update(self.settings.as_ref(), org, provider, settings)
                    .await
                    .map_err(|e| match e {
                        UpdateError::Invalid(e) => ApiError::BadRequest(e.0),
                        UpdateError::Conflict => ApiError::Conflict(e.to_string()),
                        UpdateError::Port(e) => ApiError::Internal(e),
                    })?
            }
            None => self.settings.read(org).await?.providers,
        };
        let fields = providers.fields_set(provider);
        // credentials are never returned: only which fields are set
        Ok(
            json!({"provider": provider.as_str(), "configured": !fields.is_empty(), "fields_set": fields}),
        )
    }

    /// SES sends for every organization from one account: a `from` must be an identity the
    /// organization registered (SendGrid's `from` is checked by the organization's own
    /// SendGrid account).
    async fn check_sender(
        &self,
        org: &OrgId,
        provider: &str,
        req: &Request,
    ) -> Result<(), ApiError> {
        if provider != "ses" {
            return Ok(());
        }
        let body: Value = body_json(req)?;
        let Some(from) = body.get("from").and_then(Value::as_str) else {
            return Ok(());
        };
        let from = EmailAddress::parse(from)
            .map_err(|_| ApiError::BadRequest("from: not a valid email address".into()))?;
        let owners = self
            .directory
            .identity_owners(&SenderIdentity::covering(&from))
            .await?;
        if identity::may_send_from(&owners, org, &from, &self.default_sender) {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!(
                "from {}",
                identity::NOT_OWNED
            )))
        }
    }

    /// Registers a sending identity for the organization: first come, and never another's.
    async fn register_identity(&self, org: &OrgId, raw: &str) -> Result<Value, ApiError> {
        let identity = SenderIdentity::parse(raw).map_err(|e| ApiError::BadRequest(e.0))?;
        let owner = self.directory.claim_identity(org, &identity).await?;
        if &owner != org {
            return Err(ApiError::Conflict(
                "this identity is registered by another organization".into(),
            ));
        }
        let status = self.identities.register(&identity).await?;
        Ok(
            json!({"identity": identity, "verified": status.verified, "dkim_tokens": status.dkim_tokens}),
        )
    }

    async fn identity(&self, org: &OrgId, raw: &str) -> Result<Value, ApiError> {
        let identity = SenderIdentity::parse(raw).map_err(|_| ApiError::NotFound("identity"))?;
        let owners = self
            .directory
            .identity_owners(std::slice::from_ref(&identity))
            .await?;
        if owners.get(&identity) != Some(org) {
            return Err(ApiError::NotFound("identity"));
        }
        let status = self
            .identities
            .status(&identity)
            .await?
            .ok_or(ApiError::NotFound("identity"))?;
        Ok(
            json!({"identity": identity, "verified": status.verified, "dkim_tokens": status.dkim_tokens}),
        )
    }

    async fn route(&self, req: &Request) -> Result<(StatusCode, Value), ApiError> {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        let known = ROUTES.iter().any(|(m, template)| {
            let t: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
            t.len() == segments.len()
                && t.iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
                && *m == method.as_str()
        });
        if !known {
            return Err(ApiError::NoRoute);
        }
        let caller = caller(req).ok_or(ApiError::Unauthorized)?;
        let org = caller.org().clone();
        let ok = |v: Value| Ok((StatusCode::OK, v));
        match (method, segments.as_slice()) {
            (Method::GET, ["customers", c, "notifications"]) => {
                ok(self.feed(&org, &customer_of(c, &caller)?, req).await?)
            }
            (Method::POST, ["customers", c, "notifications", "read-all"]) => {
                ok(self.read_all(&org, &customer_of(c, &caller)?).await?)
            }
            (Method::POST, ["customers", c, "notifications", id, "read"]) => {
                ok(self.read_one(&org, &customer_of(c, &caller)?, id).await?)
            }
            (Method::GET, ["customers", c, "preferences"]) => {
                ok(self.preferences(&org, &customer_of(c, &caller)?).await?)
            }
            (Method::PUT, ["customers", c, "preferences"]) => ok(self
                .put_preferences(&org, &customer_of(c, &caller)?, req)
                .await?),
            (Method::GET, ["customers", c, "contact"]) => {
                ok(self.contact(&org, &customer_of(c, &caller)?).await?)
            }
            (Method::PUT, ["customers", c, "contact"]) => ok(self
                .put_contact(&org, &customer_of(c, &caller)?, req)
                .await?),
            (Method::GET, ["notifications", id]) => {
                operator(&caller)?;
                ok(self.notification(&org, id).await?)
            }
            (Method::POST, ["notifications", id, "retry"]) => {
                operator(&caller)?;
                self.retry(&org, id).await
            }
            (Method::GET, ["dead-letters"]) => {
                operator(&caller)?;
                ok(json!({"items": self.views.dead_letters(&org, MAX_PAGE).await?}))
            }
            (Method::GET, ["stats"]) => {
                operator(&caller)?;
                ok(self.stats(&org, req).await?)
            }
            (Method::GET, ["admin", "providers", p]) => {
                admin(&caller)?;
                ok(self.provider(&org, p, None).await?)
            }
            (Method::PUT, ["admin", "providers", p]) => {
                admin(&caller)?;
                self.check_sender(&org, p, req).await?;
                ok(self.provider(&org, p, Some(req)).await?)
            }
            (Method::GET, ["admin", "identities", i]) => {
                admin(&caller)?;
                ok(self.identity(&org, i).await?)
            }
            (Method::PUT, ["admin", "identities", i]) => {
                admin(&caller)?;
                ok(self.register_identity(&org, i).await?)
            }
            _ => Err(ApiError::NoRoute),
        }
    }
}

/// The Lambda handler.
pub async fn handle(api: &Api, req: Request) -> Result<Response<Body>, Error> {
    match api.route(&req).await {
        Ok((status, body)) => respond(status, &body),
        Err(e) => error_response(e),
    }
}
