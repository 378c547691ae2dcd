//! The `$connect` authorizer (a Lambda REQUEST authorizer): the token in the query, verified
//! against the issuer's keys, and the feed its holder may listen to. A customer listens to
//! their own; an operator to the customer the query names (`customer=`), in their own
//! organization. An administrator's token, for the api's settings, opens no socket.
//!
//! No token or a bad one answers "Unauthorized" (API Gateway's 401); a valid token that may not
//! listen to the feed asked for, a Deny policy (403). Either way nothing is stored: `$connect`
//! never runs.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use herald_adapters::config::{self, ConfigError};
use herald_adapters::tokens::{TokenError, TokenPolicy, TokenVerifier};
use herald_core::caller::Caller;
use herald_core::ids::CustomerId;
use herald_core::realtime::Listener;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::json;
use tracing::info;

/// The tokens the deployment accepts, from the environment: `HERALD_JWT_ISSUER`,
/// `HERALD_JWT_AUDIENCE` (the HTTP api's `JwtIssuer` and `JwtAudience`) and, when the issuer
/// publishes no OpenID configuration, `HERALD_JWKS_URL`.
pub fn policy_from_env() -> Result<TokenPolicy, ConfigError> {
    Ok(TokenPolicy {
        issuer: config::required("HERALD_JWT_ISSUER")?,
        audience: config::required("HERALD_JWT_AUDIENCE")?,
        jwks_url: config::optional("HERALD_JWKS_URL"),
    })
}

/// What the authorizer decides about a connection.
#[derive(Debug)]
pub enum Verdict {
    /// The connection may open, listening to this feed.
    Allow(Listener),
    /// A valid token that may not listen to the feed asked for (403).
    Deny(&'static str),
    /// No token, or one that is not valid (401).
    Unauthorized(TokenError),
}

/// The verdict on a token (`token=`) and the customer asked for (`customer=`, optional for a
/// customer, who may only name themselves).
pub async fn authorize(
    verifier: &TokenVerifier,
    token: Option<&str>,
    customer: Option<&str>,
) -> Verdict {
    let claims = match verifier.verify(token.unwrap_or_default()).await {
        Ok(claims) => claims,
        Err(e) => return Verdict::Unauthorized(e),
    };
    let asked = match customer.map(CustomerId::parse).transpose() {
        Ok(asked) => asked,
        Err(_) => return Verdict::Deny("customer is not a customer id"),
    };
    match (Caller::from_claims(&claims), asked) {
        (Some(Caller::Customer { org, customer }), asked)
            if asked.as_ref().is_none_or(|a| a == &customer) =>
        {
            Verdict::Allow(Listener {
                org_id: org,
                customer_id: customer,
            })
        }
        (Some(Caller::Customer { .. }), _) => Verdict::Deny("a customer listens to their own feed"),
        (Some(Caller::Operator { org }), Some(customer)) => Verdict::Allow(Listener {
            org_id: org,
            customer_id: customer,
        }),
        (Some(Caller::Operator { .. }), None) => {
            Verdict::Deny("an operator names the customer to listen to (customer=)")
        }
        (Some(Caller::Admin { .. }), _) => Verdict::Deny("only customers and operators connect"),
        (None, _) => Verdict::Deny("the token names no caller"),
    }
}

/// The Lambda handler: API Gateway's request in, a policy (and the listener as its context,
/// which the routes read) or "Unauthorized" out.
pub async fn handle(
    verifier: &TokenVerifier,
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    let request = event.payload;
    let query = &request.query_string_parameters;
    let verdict = authorize(verifier, query.first("token"), query.first("customer")).await;
    let method_arn = request.method_arn.unwrap_or_default();
    match verdict {
        Verdict::Allow(listener) => {
            info!(org_id = %listener.org_id, customer_id = %listener.customer_id, "connection allowed");
            Ok(response(
                IamPolicyEffect::Allow,
                &method_arn,
                Some(&listener),
            ))
        }
        Verdict::Deny(reason) => {
            info!(reason, "connection denied");
            Ok(response(IamPolicyEffect::Deny, &method_arn, None))
        }
        Verdict::Unauthorized(e) => {
            info!(reason = %e, "connection unauthorized");
            // the message API Gateway turns into a 401
            Err("Unauthorized".into())
        }
    }
}

fn response(
    effect: IamPolicyEffect,
    method_arn: &str,
    listener: Option<&Listener>,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_string()];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(
        listener
            .map(|l| l.customer_id.to_string())
            .unwrap_or_else(|| "nobody".into()),
    );
    response.policy_document = policy;
    // the routes' `requestContext.authorizer`: strings only, as API Gateway requires
    response.context = match listener {
        Some(l) => json!({"org_id": l.org_id, "customer_id": l.customer_id}),
        None => json!({}),
    };
    response
}

/// The listener an allowed connection's route events carry (`requestContext.authorizer`).
pub fn listener_of(
    authorizer: &std::collections::HashMap<String, serde_json::Value>,
) -> Option<Listener> {
    Some(Listener {
        org_id: herald_core::ids::OrgId::parse(authorizer.get("org_id")?.as_str()?).ok()?,
        customer_id: CustomerId::parse(authorizer.get("customer_id")?.as_str()?).ok()?,
    })
}
