//! What a handler takes from a request: the caller (from the authorizer's claims, checked for
//! the route's audience), path parameters, the query and a JSON body, each failing as an
//! [`ApiError`].

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use herald_core::caller::Caller;
use herald_core::ids::{CustomerId, OrgId};
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The caller, from the API Gateway v2 request context's JWT claims (lambda_http puts the
/// context on the request as an extension).
fn caller(parts: &Parts) -> Result<Caller, ApiError> {
    match parts.extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| Caller::from_claims(&jwt.claims))
            .ok_or(ApiError::Unauthorized),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The customer of a `/customers/{customer_id}/…` route: the customer themselves, or an
/// operator or administrator of their organization.
pub struct Customer {
    pub org: OrgId,
    pub customer: CustomerId,
}

impl<S: Send + Sync> FromRequestParts<S> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = caller(parts)?;
        let Path(params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let customer = params
            .get("customer_id")
            .and_then(|c| CustomerId::parse(c.as_str()).ok())
            .ok_or(ApiError::NotFound("customer"))?;
        match caller {
            Caller::Customer { customer: own, .. } if own != customer => Err(ApiError::Forbidden(
                "a customer may only see their own data",
            )),
            caller => Ok(Customer {
                org: caller.org().clone(),
                customer,
            }),
        }
    }
}

/// An operator's (or administrator's) organization.
pub struct Operator(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match caller(parts)? {
            Caller::Customer { .. } => Err(ApiError::Forbidden("operators only")),
            Caller::Operator { org } | Caller::Admin { org } => Ok(Operator(org)),
        }
    }
}

/// An administrator's organization.
pub struct Admin(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match caller(parts)? {
            Caller::Admin { org } => Ok(Admin(org)),
            _ => Err(ApiError::Forbidden("administrators only")),
        }
    }
}

/// The route's path parameters, by name.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// The query's parameters; a query that does not parse reads as none.
pub struct Query(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Query(
            parts
                .uri
                .query()
                .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
                .unwrap_or_default()
                .into_iter()
                .collect(),
        ))
    }
}

/// A JSON body (whatever the content type says).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        json(&bytes).map(Body)
    }
}

/// Parses a JSON body; the error names the field that was wrong (`whatsapp: phone must be…`)
/// and never quotes a value.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    herald_core::json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
}
