//! `POST /webhooks/twilio/{org}`: Twilio's status callbacks (HMAC-SHA1 over the public URL).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use herald_core::provider_events::{AuthError, ParseError, twilio};

use crate::{Answer, Org, WebhookError, Webhooks};

pub async fn status(
    State(w): State<Webhooks>,
    Org(org): Org,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, WebhookError> {
    let signature = headers
        .get(twilio::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::MissingSignature)?;
    let params: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| ParseError::Shape {
            what: "a form-encoded body",
            reason: "unreadable pairs".into(),
        })?;
    // the URL Twilio requested: the public base, not the internal host
    let mut url = format!(
        "{}{}",
        w.config.public_base_url.trim_end_matches('/'),
        uri.path()
    );
    if let Some(query) = uri.query() {
        url.push('?');
        url.push_str(query);
    }
    w.with_settings(&org, |providers| {
        let token = providers
            .twilio
            .as_ref()
            .map(|t| &t.auth_token)
            .ok_or(AuthError::NotConfigured)?;
        twilio::verify(&url, &params, token.expose(), signature)
    })
    .await?;
    let mut event = twilio::parse(&params, w.clock.now())?;
    // the StatusCallback URL Herald set names the notification (signed with the rest)
    event.notification_hint = twilio::notification_of(uri.query());
    Ok(Answer(w.service.apply(&org, &[event]).await?))
}
