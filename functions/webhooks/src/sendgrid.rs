//! `POST /webhooks/sendgrid/{org}`: SendGrid's signed event webhook (ECDSA P-256).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use herald_core::provider_events::{AuthError, sendgrid};
use tracing::info;

use crate::{Answer, Org, WebhookError, Webhooks};

pub async fn events(
    State(w): State<Webhooks>,
    Org(org): Org,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, WebhookError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header(sendgrid::SIGNATURE_HEADER).ok_or(AuthError::MissingSignature)?;
    let timestamp = header(sendgrid::TIMESTAMP_HEADER).ok_or(AuthError::MissingSignature)?;
    let now = w.clock.now();
    w.with_settings(&org, |providers| {
        let key = providers
            .sendgrid
            .as_ref()
            .and_then(|s| s.webhook_public_key.as_deref())
            .ok_or(AuthError::NotConfigured)?;
        sendgrid::verify(
            key,
            timestamp,
            &body,
            signature,
            now,
            w.config.sendgrid_window,
        )
    })
    .await?;
    let batch = sendgrid::parse(&body)?;
    if batch.ignored > 0 {
        info!(
            ignored = batch.ignored,
            understood = batch.events.len(),
            "SendGrid elements Herald does not understand; skipped"
        );
    }
    let mut summary = w.service.apply(&org, &batch.events).await?;
    summary.ignored = batch.ignored;
    Ok(Answer(summary))
}
