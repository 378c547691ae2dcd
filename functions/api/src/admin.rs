//! Administrators' routes: provider settings, routing, rate limits and sending identities.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use herald_core::identity::{self, SenderIdentity};
use herald_core::ids::{EmailAddress, OrgId};
use herald_core::model::{Channel, Platform, Provider};
use herald_core::providers::OrgProviders;
use herald_core::push_apps;
use herald_core::rate_limit::{self, RateLimits};
use herald_core::routing::{self, Routing};
use herald_core::settings;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Api;
use crate::error::ApiError;
use crate::request::{Admin, Path, json};

#[derive(Deserialize)]
pub struct ProviderName {
    provider: String,
}

fn provider_of(name: &str) -> Result<Provider, ApiError> {
    Provider::parse(name).map_err(|_| ApiError::NotFound("provider"))
}

/// The push platforms, set up under the providers' routes (`fcm`, `apns`).
fn push_platform_of(name: &str) -> Option<Platform> {
    match name {
        "fcm" => Some(Platform::Fcm),
        "apns" => Some(Platform::Apns),
        _ => None,
    }
}

/// Which fields are set; credentials are never returned.
fn settings_answer(providers: &OrgProviders, provider: Provider) -> Json<Value> {
    let fields = providers.fields_set(provider);
    Json(
        json!({"provider": provider.as_str(), "configured": !fields.is_empty(), "fields_set": fields}),
    )
}

/// `GET /admin/providers/{provider}`
pub async fn provider(
    State(api): State<Api>,
    Admin(org): Admin,
    Path(ProviderName { provider }): Path<ProviderName>,
) -> Result<Json<Value>, ApiError> {
    if let Some(platform) = push_platform_of(&provider) {
        let providers = api.settings.read(&org).await?.providers;
        return Ok(Json(push_apps::application_answer(&providers, platform)));
    }
    let provider = provider_of(&provider)?;
    let providers = api.settings.read(&org).await?.providers;
    Ok(settings_answer(&providers, provider))
}

/// `PUT /admin/providers/{provider}`: read fresh and written only if nobody wrote in between,
/// so another provider's settings saved meanwhile are kept.
pub async fn put_provider(
    State(api): State<Api>,
    Admin(org): Admin,
    Path(ProviderName { provider }): Path<ProviderName>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if let Some(platform) = push_platform_of(&provider) {
        let settings: Value = json(&body)?;
        let providers = push_apps::set_application(
            api.settings.as_ref(),
            api.push_applications.as_ref(),
            &org,
            platform,
            settings,
        )
        .await?;
        return Ok(Json(push_apps::application_answer(&providers, platform)));
    }
    let provider = provider_of(&provider)?;
    let settings: Value = json(&body)?;
    if provider == Provider::Ses {
        check_sender(&api, &org, &settings).await?;
    }
    let providers = settings::update(api.settings.as_ref(), &org, provider, settings).await?;
    Ok(settings_answer(&providers, provider))
}

/// The organization's own routing, and the route each channel takes with it and the
/// deployment's (the providers the organization has not set up left out).
fn routing_answer(api: &Api, providers: &OrgProviders) -> Json<Value> {
    let effective: serde_json::Map<String, Value> = Channel::ALL
        .into_iter()
        .filter(|c| *c != Channel::InApp)
        .map(|c| {
            let route = routing::route(providers, &api.routing, c);
            (c.to_string(), json!(route))
        })
        .collect();
    Json(json!({"routing": providers.routing, "effective": effective}))
}

/// `GET /admin/routing`
pub async fn routing(State(api): State<Api>, Admin(org): Admin) -> Result<Json<Value>, ApiError> {
    let providers = api.settings.read(&org).await?.providers;
    Ok(routing_answer(&api, &providers))
}

/// `PUT /admin/routing`: the providers of each channel in order (`{"email": ["ses",
/// "sendgrid"]}`), replacing the organization's routing; a channel left out takes the
/// deployment's route, `{}` all of them.
pub async fn put_routing(
    State(api): State<Api>,
    Admin(org): Admin,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let routing: Routing = json(&body)?;
    let providers = settings::set_routing(api.settings.as_ref(), &org, routing).await?;
    Ok(routing_answer(&api, &providers))
}

/// The organization's own rate limits, and the limits each channel is held to with them and
/// the deployment's.
fn rate_limits_answer(api: &Api, providers: &OrgProviders) -> Json<Value> {
    let effective: serde_json::Map<String, Value> = Channel::ALL
        .into_iter()
        .filter_map(|c| {
            let limit = rate_limit::limit_for(&providers.limits, &api.rate_limits, c)?;
            Some((c.to_string(), json!(limit)))
        })
        .collect();
    Json(json!({"limits": providers.limits, "effective": effective}))
}

/// `GET /admin/rate-limits`
pub async fn rate_limits(
    State(api): State<Api>,
    Admin(org): Admin,
) -> Result<Json<Value>, ApiError> {
    let providers = api.settings.read(&org).await?.providers;
    Ok(rate_limits_answer(&api, &providers))
}

/// `PUT /admin/rate-limits`: messages per second and per day of each channel (`{"sms":
/// {"per_second": 5, "per_day": 10000}}`), replacing the organization's limits; a channel
/// left out takes the deployment's, `{}` all of them.
pub async fn put_rate_limits(
    State(api): State<Api>,
    Admin(org): Admin,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let limits: RateLimits = json(&body)?;
    let providers = settings::set_rate_limits(api.settings.as_ref(), &org, limits).await?;
    Ok(rate_limits_answer(&api, &providers))
}

/// SES sends for every organization from one account: a `from` must be an identity the
/// organization registered (SendGrid's `from` is checked by the organization's own
/// SendGrid account).
async fn check_sender(api: &Api, org: &OrgId, settings: &Value) -> Result<(), ApiError> {
    let Some(from) = settings.get("from").and_then(Value::as_str) else {
        return Ok(());
    };
    let from = EmailAddress::parse(from)
        .map_err(|_| ApiError::BadRequest("from: not a valid email address".into()))?;
    let owners = api
        .directory
        .identity_owners(&SenderIdentity::covering(&from))
        .await?;
    if identity::may_send_from(&owners, org, &from, &api.default_sender) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "from {}",
            identity::NOT_OWNED
        )))
    }
}

#[derive(Deserialize)]
pub struct IdentityName {
    identity: String,
}

/// `GET /admin/identities/{identity}`: one of the organization's own identities.
pub async fn identity(
    State(api): State<Api>,
    Admin(org): Admin,
    Path(IdentityName { identity }): Path<IdentityName>,
) -> Result<Json<Value>, ApiError> {
    let identity = SenderIdentity::parse(&identity).map_err(|_| ApiError::NotFound("identity"))?;
    let owners = api
        .directory
        .identity_owners(std::slice::from_ref(&identity))
        .await?;
    if owners.get(&identity) != Some(&org) {
        return Err(ApiError::NotFound("identity"));
    }
    let status = api
        .identities
        .status(&identity)
        .await?
        .ok_or(ApiError::NotFound("identity"))?;
    Ok(Json(
        json!({"identity": identity, "verified": status.verified, "dkim_tokens": status.dkim_tokens}),
    ))
}

/// `PUT /admin/identities/{identity}`: registers a sending identity for the organization, first
/// come, and never another's.
pub async fn register_identity(
    State(api): State<Api>,
    Admin(org): Admin,
    Path(IdentityName { identity }): Path<IdentityName>,
) -> Result<Json<Value>, ApiError> {
    let identity = SenderIdentity::parse(&identity).map_err(|e| ApiError::BadRequest(e.0))?;
    let owner = api
        .directory
        .claim_identity(&org, &identity, api.clock.now())
        .await?;
    if owner != org {
        return Err(ApiError::Conflict(
            "this identity is registered by another organization".into(),
        ));
    }
    let status = api.identities.register(&identity).await?;
    Ok(Json(
        json!({"identity": identity, "verified": status.verified, "dkim_tokens": status.dkim_tokens}),
    ))
}
