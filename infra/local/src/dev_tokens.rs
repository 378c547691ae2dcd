//! The local stack's development tokens: RS256 JWTs from the issuer `herald-local`, signed
//! with a key the local stack keeps (made at first use) and publishes at
//! `/.well-known/jwks.json` when served. The WebSocket authorizer verifies them against that
//! key set exactly as it verifies a real issuer's tokens in AWS; the served HTTP api, playing
//! API Gateway's JWT authorizer, checks them the same way.

use std::collections::HashMap;

use herald_adapters::tokens::{KeyIssuer, TokenPolicy};

use crate::error::LocalError;

/// The development tokens' `iss`.
pub const ISSUER: &str = "herald-local";
/// Their `aud`.
pub const AUDIENCE: &str = "herald-local";
const KEY_ID: &str = "herald-local-1";

/// How long a development token is valid.
pub fn lifetime() -> chrono::Duration {
    chrono::Duration::hours(12)
}

/// The local stack's issuer, with the key it keeps.
pub fn issuer() -> Result<KeyIssuer, LocalError> {
    let unusable = |e: herald_adapters::tokens::TokenError| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
    };
    let key = crate::keys::kept(&crate::keys::file("development-token-key.pk8"), || {
        KeyIssuer::generate(KEY_ID, ISSUER, AUDIENCE)
            .and_then(|i| i.pkcs8())
            .map_err(unusable)
    })?;
    Ok(KeyIssuer::from_pkcs8(&key, KEY_ID, ISSUER, AUDIENCE).map_err(unusable)?)
}

/// The tokens the served stack accepts: its own, with the key set it serves at `jwks_url`.
pub fn policy(jwks_url: String) -> TokenPolicy {
    TokenPolicy {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_url: Some(jwks_url),
    }
}

/// The claims of a customer's token: their own feed, preferences and contact.
pub fn customer_claims(org: &str, customer: &str) -> HashMap<String, String> {
    HashMap::from([
        ("org_id".to_string(), org.to_string()),
        ("role".to_string(), "customer".to_string()),
        ("customer_id".to_string(), customer.to_string()),
    ])
}

/// A development token with these claims.
pub fn token(claims: &HashMap<String, String>) -> Result<String, LocalError> {
    Ok(issuer()?.token(claims, lifetime()))
}
