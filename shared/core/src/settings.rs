//! Changing an organization's provider settings: read fresh, change one provider, write only
//! if nobody wrote in between, else again.

use thiserror::Error;

use crate::ids::{InvalidValue, OrgId};
use crate::model::Provider;
use crate::ports::{PortError, ProviderSettings, Write};
use crate::providers::{OrgProviders, StoredProviders};

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

/// Sets one provider's settings and keeps the others as they are stored now: read fresh, change,
/// write only if nobody wrote in between, else again.
pub async fn update(
    settings: &dyn ProviderSettings,
    org: &OrgId,
    provider: Provider,
    value: serde_json::Value,
) -> Result<OrgProviders, UpdateError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let StoredProviders {
            mut providers,
            version,
        } = settings.read(org).await?;
        providers
            .set(provider, value.clone())
            .map_err(UpdateError::Invalid)?;
        match settings.write(org, &providers, version.as_deref()).await? {
            Write::Done => return Ok(providers),
            Write::Conflict => continue,
        }
    }
    Err(UpdateError::Conflict)
}
