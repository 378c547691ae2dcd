//! A customer's feed: a page of it, and marking entries read.

use axum::Json;
use axum::extract::State;
use herald_core::ids::{CustomerId, NotificationId, OrgId};
use herald_core::model::{Notification, Recipient};
use herald_core::projection::{FeedEntry, feed_entry};
use herald_core::realtime::{FeedEvent, Listener};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Api;
use crate::error::ApiError;
use crate::request::{Customer, Path, Query};

/// The most entries a page holds.
pub const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 20;

/// `GET /customers/{customer_id}/notifications?limit=&cursor=`
pub async fn page(
    State(api): State<Api>,
    Customer { org, customer }: Customer,
    Query(q): Query,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {MAX_PAGE}")))?,
        None => DEFAULT_PAGE,
    };
    let (items, next) = api
        .views
        .feed_page(&org, &customer, limit, q.get("cursor").map(String::as_str))
        .await?;
    let unread = api.views.unread(&org, &customer).await?;
    Ok(Json(
        json!({"items": items, "unread": unread, "next_cursor": next}),
    ))
}

#[derive(Deserialize)]
pub struct Entry {
    id: String,
}

/// `POST /customers/{customer_id}/notifications/{id}/read`
pub async fn read_one(
    State(api): State<Api>,
    who: Customer,
    Path(Entry { id }): Path<Entry>,
) -> Result<Json<Value>, ApiError> {
    let n = owned_notification(&api, &who, &id).await?;
    let Customer { org, customer } = who;
    let marked = api
        .views
        .mark_read(&org, &customer, n.created_at, &n.id)
        .await?;
    let unread = api.views.unread(&org, &customer).await?;
    if marked {
        let entry = feed_entry(&n).map(|e| FeedEntry { read: true, ..e });
        tell_open_connections(&api, &org, &customer, entry, unread).await;
    }
    Ok(Json(json!({"id": n.id, "read": true, "unread": unread})))
}

/// Tells the customer's open connections (other tabs, other devices) of a read: one entry,
/// or all of them (`None`), with the unread count the answer carries.
async fn tell_open_connections(
    api: &Api,
    org: &OrgId,
    customer: &CustomerId,
    entry: Option<FeedEntry>,
    unread: u64,
) {
    if let Some(realtime) = &api.realtime {
        let listener = Listener {
            org_id: org.clone(),
            customer_id: customer.clone(),
        };
        realtime
            .tell(&FeedEvent::Read { listener, entry }, unread)
            .await;
    }
}

/// The customer's own notification, as their feed shows it (never an internal one).
async fn owned_notification(api: &Api, who: &Customer, id: &str) -> Result<Notification, ApiError> {
    let id = NotificationId::parse(id).map_err(|_| ApiError::NotFound("notification"))?;
    let n = api
        .store
        .get(&who.org, &id)
        .await?
        .ok_or(ApiError::NotFound("notification"))?;
    match &n.recipient {
        Recipient::Customer(c) if c == &who.customer && !n.internal => Ok(n),
        _ => Err(ApiError::NotFound("notification")),
    }
}

/// `POST /customers/{customer_id}/notifications/read-all`
pub async fn read_all(
    State(api): State<Api>,
    Customer { org, customer }: Customer,
) -> Result<Json<Value>, ApiError> {
    let mut marked = 0;
    let mut cursor: Option<String> = None;
    loop {
        let (items, next) = api
            .views
            .feed_page(&org, &customer, MAX_PAGE, cursor.as_deref())
            .await?;
        for e in items.iter().filter(|e| !e.read) {
            if api
                .views
                .mark_read(&org, &customer, e.created_at, &e.notification_id)
                .await?
            {
                marked += 1;
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let unread = api.views.unread(&org, &customer).await?;
    if marked > 0 {
        tell_open_connections(&api, &org, &customer, None, unread).await;
    }
    Ok(Json(json!({"marked": marked, "unread": unread})))
}
