//! Changing an organization's provider settings (one provider's, the routing, or the rate
//! limits): read fresh, change, write only if nobody wrote in between, else again.

use thiserror::Error;

use crate::ids::{InvalidValue, OrgId};
use crate::model::Provider;
use crate::ports::{PortError, ProviderSettings, Write};
use crate::providers::{OrgProviders, StoredProviders};
use crate::rate_limit::RateLimits;
use crate::routing::Routing;

/// How many times a settings update reads and writes again when someone else wrote meanwhile.
const UPDATE_ATTEMPTS: usize = 5;

/// Why a settings update did not happen.
#[derive(Debug, Error)]
pub enum UpdateError {
    #[error("{0}")]
    Invalid(InvalidValue),
    #[error("the settings kept changing while they were written; try again")]
    Conflict,
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Sets one provider's settings and keeps the others as they are stored now.
pub async fn update(
    settings: &dyn ProviderSettings,
    org: &OrgId,
    provider: Provider,
    value: serde_json::Value,
) -> Result<OrgProviders, UpdateError> {
    modify(settings, org, |providers| {
        providers.set(provider, value.clone())
    })
    .await
}

/// Sets the organization's routing, checked against the providers it has set up now.
pub async fn set_routing(
    settings: &dyn ProviderSettings,
    org: &OrgId,
    routing: Routing,
) -> Result<OrgProviders, UpdateError> {
    modify(settings, org, |providers| {
        routing.validate_for(providers)?;
        providers.routing = routing.clone();
        Ok(())
    })
    .await
}

/// Sets the organization's rate limits, each within its bounds.
pub async fn set_rate_limits(
    settings: &dyn ProviderSettings,
    org: &OrgId,
    limits: RateLimits,
) -> Result<OrgProviders, UpdateError> {
    limits.validate().map_err(UpdateError::Invalid)?;
    modify(settings, org, |providers| {
        providers.limits = limits.clone();
        Ok(())
    })
    .await
}

/// Changes the settings as stored now: read fresh, change, write only if nobody wrote in
/// between, else again (the change is made again on what they wrote).
async fn modify(
    settings: &dyn ProviderSettings,
    org: &OrgId,
    change: impl Fn(&mut OrgProviders) -> Result<(), InvalidValue>,
) -> Result<OrgProviders, UpdateError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let StoredProviders {
            mut providers,
            version,
        } = settings.read(org).await?;
        change(&mut providers).map_err(UpdateError::Invalid)?;
        match settings.write(org, &providers, version.as_deref()).await? {
            Write::Done => return Ok(providers),
            Write::Conflict => continue,
        }
    }
    Err(UpdateError::Conflict)
}
