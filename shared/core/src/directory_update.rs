//! Directory updates: read, merge, write-if-unchanged, so that concurrent changes of one
//! record all land and an older change never overwrites a newer one (see [`Origin`]).

use thiserror::Error;

use crate::directory::{CustomerRecord, CustomerUpdate, OrgSettings, OrgSettingsUpdate, Origin};
use crate::ids::{CustomerId, OrgId};
use crate::ports::{Directory, PortError, Write};

/// How often a contended record is read and written again before giving up.
const ATTEMPTS: usize = 5;

#[derive(Debug, Error)]
pub enum UpdateError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("the directory record kept changing under concurrent updates; try again")]
    Contended,
}

/// Applies a change to a customer: read, merge, write-if-unchanged, so concurrent updates of
/// one customer both land and an older change never overwrites a newer one.
pub async fn update_customer(
    directory: &dyn Directory,
    org: &OrgId,
    customer: &CustomerId,
    update: CustomerUpdate,
    origin: Origin,
) -> Result<(), UpdateError> {
    for _ in 0..ATTEMPTS {
        let stored = directory.get_customer(org, customer).await?;
        let (mut record, version) = match stored {
            Some(v) => (v.value, Some(v.version)),
            None => (CustomerRecord::default(), None),
        };
        if !record.apply(update.clone(), origin) {
            return Ok(());
        }
        if directory
            .put_customer(org, customer, &record, version)
            .await?
            == Write::Done
        {
            return Ok(());
        }
    }
    Err(UpdateError::Contended)
}

/// Applies a change to an organization's settings, the same way.
pub async fn update_org(
    directory: &dyn Directory,
    org: &OrgId,
    update: OrgSettingsUpdate,
    origin: Origin,
) -> Result<(), UpdateError> {
    for _ in 0..ATTEMPTS {
        let stored = directory.get_org_settings(org).await?;
        let (mut settings, version) = match stored {
            Some(v) => (v.value, Some(v.version)),
            None => (OrgSettings::default(), None),
        };
        if !settings.apply(update.clone(), origin) {
            return Ok(());
        }
        if directory.put_org_settings(org, &settings, version).await? == Write::Done {
            return Ok(());
        }
    }
    Err(UpdateError::Contended)
}
