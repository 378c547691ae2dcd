//! The inbox's demo page: `GET /inbox?customer=…[&org=…]` shows `<herald-inbox>` signed in
//! with a development token for that customer (of the sample organization by default), on
//! the served api and WebSocket.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use herald_core::ids::{CustomerId, OrgId};

use crate::serve::Served;

const PAGE: &str = include_str!("../../../shared/inbox/demo.html");
const SCRIPT: &str = include_str!("../../../shared/inbox/herald-inbox.js");

/// The organization the demo signs in to unless the query names another.
pub const SAMPLE_ORG: &str = "org_acme";

fn escaped(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `GET /inbox?customer=…[&org=…]`
pub async fn page(
    State(served): State<Arc<Served>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let customer = match query.get("customer").map(CustomerId::parse) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, e.0).into_response(),
        None => {
            return (
                StatusCode::BAD_REQUEST,
                "customer: the page shows a customer's inbox (/inbox?customer=cus_alice)",
            )
                .into_response();
        }
    };
    let org = match OrgId::parse(query.get("org").map_or(SAMPLE_ORG, String::as_str)) {
        Ok(o) => o,
        Err(e) => return (StatusCode::BAD_REQUEST, e.0).into_response(),
    };
    let claims = crate::dev_tokens::customer_claims(org.as_str(), customer.as_str());
    let token = served.tokens.token(&claims, crate::dev_tokens::lifetime());
    let base = &served.served_at;
    let realtime = format!("{}/realtime", base.replacen("http", "ws", 1));
    let html = [
        ("{{api}}", base.as_str()),
        ("{{realtime}}", realtime.as_str()),
        ("{{token}}", token.as_str()),
        ("{{customer}}", customer.as_str()),
        ("{{org}}", org.as_str()),
    ]
    .iter()
    .fold(PAGE.to_string(), |page, (placeholder, value)| {
        page.replace(placeholder, &escaped(value))
    });
    Html(html).into_response()
}

/// `GET /inbox/herald-inbox.js`
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}
