//! Configuration from the environment, read once per cold start.

use std::env;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A variable parsed with `parse`, or `default` when unset.
pub fn parsed<T, E: std::fmt::Display>(
    name: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(raw) => parse(&raw).map_err(|e| ConfigError::Invalid {
            name,
            message: e.to_string(),
        }),
    }
}

/// The AWS configuration: region, credentials and `AWS_ENDPOINT_URL` from the environment;
/// the HTTPS client trusts the roots `HERALD_TLS_ROOTS` names ([`crate::aws_https`]).
pub async fn aws() -> Result<aws_config::SdkConfig, ConfigError> {
    let roots = crate::aws_https::TlsRoots::from_env()?;
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::aws_https::client(roots))
        .load()
        .await)
}

/// The deployment's routing (`HERALD_DEFAULT_ROUTING`, `email=sendgrid,ses;sms=twilio,sns`),
/// the built-in one when unset: what dispatch asks and the api shows.
pub fn default_routing() -> Result<herald_core::routing::Routing, ConfigError> {
    use herald_core::routing::Routing;
    parsed(
        "HERALD_DEFAULT_ROUTING",
        Routing::builtin(),
        Routing::parse_setting,
    )
}

/// The deployment's rate limits (`HERALD_DEFAULT_RATE_LIMITS`, `sms=5/s,10000/d`), none when
/// unset: what dispatch holds organizations to and the api shows.
pub fn default_rate_limits() -> Result<herald_core::rate_limit::RateLimits, ConfigError> {
    use herald_core::rate_limit::RateLimits;
    parsed(
        "HERALD_DEFAULT_RATE_LIMITS",
        RateLimits::default(),
        RateLimits::parse_setting,
    )
}
