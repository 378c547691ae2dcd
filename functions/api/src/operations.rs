//! Operators' routes: a notification with its log, retrying a failed one, dead letters and
//! daily statistics.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use herald_core::ids::{NotificationId, NotificationType};
use herald_core::model::{
    Channel, DeliveryService, ErrorCode, Notification, ProviderTry, TemplateRef,
};
use herald_core::ports::{DispatchMessage, Enqueue, RetryOutcome};
use herald_core::time::format;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Api;
use crate::error::ApiError;
use crate::feed::MAX_PAGE;
use crate::request::{Operator, Path, Query};

const MAX_STATS_DAYS: i64 = 31;

/// A notification as operators see it: no address, no personal data beyond the recipient's id.
#[derive(Serialize)]
struct NotificationView<'a> {
    id: &'a NotificationId,
    #[serde(rename = "type")]
    notification_type: &'a NotificationType,
    recipient: &'a str,
    channel: Channel,
    status: &'a str,
    subject: &'a Option<String>,
    body: &'a str,
    /// SMS only: the segments the body is billed as.
    #[serde(skip_serializing_if = "Option::is_none")]
    sms_segments: Option<u32>,
    /// Email only: whether an HTML alternative goes beside the text body.
    has_html: bool,
    attempts: u32,
    /// The template it was rendered from: built-in, or the organization's version N.
    template: Option<TemplateRef>,
    /// When the event that asked for it happened; its latencies count from there.
    event_at: Option<String>,
    created_at: String,
    scheduled_for: Option<String>,
    sent_at: Option<String>,
    /// The provider that sent it (or refused it for good).
    provider: Option<DeliveryService>,
    provider_message_id: &'a Option<String>,
    last_error: &'a Option<String>,
    error_code: &'a Option<ErrorCode>,
    /// The providers that did not take it, each try in order (failover shows here).
    tried: &'a [ProviderTry],
    opened_at: Option<String>,
    clicked_at: Option<String>,
}

fn view(n: &Notification) -> NotificationView<'_> {
    let t = |v: &Option<DateTime<Utc>>| v.as_ref().map(format);
    NotificationView {
        id: &n.id,
        notification_type: &n.notification_type,
        recipient: n.recipient.label(),
        channel: n.channel,
        status: n.status.as_str(),
        subject: &n.subject,
        body: &n.body,
        sms_segments: n.sms_segments,
        has_html: n.has_html || n.html_body.is_some(),
        attempts: n.attempts,
        template: n.template,
        event_at: t(&n.event_at),
        created_at: format(&n.created_at),
        scheduled_for: t(&n.scheduled_for),
        sent_at: t(&n.sent_at),
        provider: n.provider,
        provider_message_id: &n.provider_message_id,
        last_error: &n.last_error,
        error_code: &n.error_code,
        tried: &n.tried,
        opened_at: t(&n.opened_at),
        clicked_at: t(&n.clicked_at),
    }
}

#[derive(Deserialize)]
pub struct Id {
    id: String,
}

fn notification_id(raw: &str) -> Result<NotificationId, ApiError> {
    NotificationId::parse(raw).map_err(|_| ApiError::NotFound("notification"))
}

/// `GET /notifications/{id}`
pub async fn notification(
    State(api): State<Api>,
    Operator(org): Operator,
    Path(Id { id }): Path<Id>,
) -> Result<Json<Value>, ApiError> {
    let id = notification_id(&id)?;
    let n = api
        .store
        .get(&org, &id)
        .await?
        .ok_or(ApiError::NotFound("notification"))?;
    let log = api.views.log(&org, &id).await?;
    Ok(Json(json!({"notification": view(&n), "log": log})))
}

/// `POST /notifications/{id}/retry`: a failed notification, pending again (202).
pub async fn retry(
    State(api): State<Api>,
    Operator(org): Operator,
    Path(Id { id }): Path<Id>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = notification_id(&id)?;
    let n = match api
        .store
        .reset_for_retry(&org, &id, api.clock.now())
        .await?
    {
        RetryOutcome::NotFound => return Err(ApiError::NotFound("notification")),
        RetryOutcome::NotFailed(status) => {
            return Err(ApiError::Conflict(format!(
                "only failed notifications can be retried; this one is {status}"
            )));
        }
        RetryOutcome::Reset(n) => n,
    };
    let message = DispatchMessage {
        org_id: org.clone(),
        notification_id: n.id.clone(),
    };
    api.queue
        .enqueue(&[Enqueue {
            message,
            delay: std::time::Duration::ZERO,
        }])
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": n.id, "status": n.status.as_str(), "attempts": n.attempts})),
    ))
}

/// `GET /dead-letters`
pub async fn dead_letters(
    State(api): State<Api>,
    Operator(org): Operator,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": api.views.dead_letters(&org, MAX_PAGE).await?}),
    ))
}

/// `GET /stats?from=&to=`: daily counts per type, channel and outcome, with SMS segments.
pub async fn stats(
    State(api): State<Api>,
    Operator(org): Operator,
    Query(q): Query,
) -> Result<Json<Value>, ApiError> {
    let today = api.clock.now().date_naive();
    let day = |name: &str| -> Result<NaiveDate, ApiError> {
        match q.get(name) {
            None => Ok(today),
            Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| ApiError::BadRequest(format!("{name} must be a date as YYYY-MM-DD"))),
        }
    };
    let (from, to) = (day("from")?, day("to")?);
    if to < from || (to - from) >= Duration::days(MAX_STATS_DAYS) {
        return Err(ApiError::BadRequest(format!(
            "from..to must be 1 to {MAX_STATS_DAYS} days, in order"
        )));
    }
    let mut days = Vec::new();
    let mut d = from;
    while d <= to {
        let day_counts = api.views.stats(&org, d).await?;
        let counts: Vec<Value> = day_counts
            .iter()
            .map(|c| json!({"type": c.key.notification_type, "channel": c.key.channel, "outcome": c.key.outcome, "count": c.count, "sms_segments": c.sms_segments}))
            .collect();
        let channels = herald_core::stats::by_channel(&day_counts);
        days.push(json!({"day": d.to_string(), "counts": counts, "channels": channels}));
        d += Duration::days(1);
    }
    Ok(Json(
        json!({"from": from.to_string(), "to": to.to_string(), "days": days}),
    ))
}
