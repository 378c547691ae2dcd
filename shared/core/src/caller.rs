//! Who is calling, from a token's verified claims: the HTTP api's JWT authorizer hands them on
//! to the api, and the WebSocket authorizer verifies them itself. Both read them here.

use std::collections::HashMap;

use crate::ids::{CustomerId, OrgId};

/// A caller of Herald's apis.
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

    /// The identity in a set of verified claims: `org_id` (every caller), `role` (`customer`,
    /// the default, `operator` or `admin`) and, for customers, `customer_id`.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_customer_is_the_default_role_and_needs_a_customer_id() {
        let c = Caller::from_claims(&claims(&[("org_id", "org_acme"), ("customer_id", "cus_1")]));
        assert!(matches!(c, Some(Caller::Customer { .. })));
        assert_eq!(
            Caller::from_claims(&claims(&[("org_id", "org_acme")])),
            None
        );
    }

    #[test]
    fn unknown_roles_and_bad_ids_are_nobody() {
        assert_eq!(
            Caller::from_claims(&claims(&[("org_id", "org_acme"), ("role", "root")])),
            None
        );
        assert_eq!(
            Caller::from_claims(&claims(&[("org_id", "not an id"), ("role", "admin")])),
            None
        );
        assert!(matches!(
            Caller::from_claims(&claims(&[("org_id", "org_acme"), ("role", "operator")])),
            Some(Caller::Operator { .. })
        ));
    }
}
