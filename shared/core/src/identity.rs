//! Sending identities: an email address or a whole domain that SES verifies, and the one
//! organization that owns each. In a shared SES account every verified identity can send, so
//! Herald keeps who may: an organization sends only from an identity it registered, or from
//! the deployment's default sender.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{EmailAddress, InvalidValue, OrgId};

/// An email address or a domain, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SenderIdentity(String);

impl SenderIdentity {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let value = value.trim().to_ascii_lowercase();
        if value.contains('@') {
            let address = EmailAddress::parse(value.as_str()).map_err(|_| {
                InvalidValue("identity must be an email address or a domain".into())
            })?;
            return Ok(SenderIdentity(address.as_str().to_string()));
        }
        // a domain: the part of an address after its @
        let probe = format!("x@{value}");
        if value.len() > 253 || EmailAddress::parse(probe).is_err() {
            return Err(InvalidValue(
                "identity must be an email address or a domain".into(),
            ));
        }
        Ok(SenderIdentity(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identities that cover a `From` address: the address itself and its domain.
    pub fn covering(from: &EmailAddress) -> Vec<SenderIdentity> {
        let address = from.as_str().to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d.to_string());
        std::iter::once(address)
            .chain(domain)
            .map(SenderIdentity)
            .collect()
    }
}

impl fmt::Display for SenderIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SenderIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SenderIdentity::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why a `From` address was refused.
pub const NOT_OWNED: &str = "is not a sending identity of this organization: register the address or its domain (PUT /admin/identities/{identity}) or use the deployment's default sender";

/// Whether `org` may send from `from`: the deployment's default sender, or an address whose
/// own identity or domain the organization owns (`owners`: the owners of
/// [`SenderIdentity::covering`] the address).
pub fn may_send_from(
    owners: &BTreeMap<SenderIdentity, OrgId>,
    org: &OrgId,
    from: &EmailAddress,
    default_sender: &EmailAddress,
) -> bool {
    from.as_str().eq_ignore_ascii_case(default_sender.as_str())
        || SenderIdentity::covering(from)
            .iter()
            .any(|i| owners.get(i) == Some(org))
}

/// Where an identity stands with the email provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityStatus {
    /// The provider sends from it (its verification or DNS records are in place).
    pub verified: bool,
    /// The DKIM tokens to publish as CNAME records, for a domain.
    pub dkim_tokens: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_addresses_or_domains_in_lower_case() {
        assert_eq!(
            SenderIdentity::parse("Billing@Acme.Example")
                .unwrap()
                .as_str(),
            "billing@acme.example"
        );
        assert_eq!(
            SenderIdentity::parse("acme.example").unwrap().as_str(),
            "acme.example"
        );
        for bad in ["", "acme", "a b.example", "@acme.example", "x@"] {
            assert!(SenderIdentity::parse(bad).is_err(), "{bad}");
        }
        let from = EmailAddress::parse("Security@Acme.example").unwrap();
        let covering: Vec<String> = SenderIdentity::covering(&from)
            .into_iter()
            .map(|i| i.0)
            .collect();
        assert_eq!(covering, vec!["security@acme.example", "acme.example"]);
    }
}
