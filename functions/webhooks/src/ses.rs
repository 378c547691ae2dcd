//! `POST /webhooks/ses` and `POST /webhooks/ses/{org}`: SES events through an SNS HTTPS
//! subscription (RSA, SNS's certificate), from the deployment's topics or from an
//! organization's own (its SES settings' `sns_topic_arns`); only the organization's route
//! confirms the subscription of such a topic, since a SubscriptionConfirmation names no
//! organization.

use axum::body::Bytes;
use axum::extract::State;
use herald_core::ids::OrgId;
use herald_core::provider_events::ses::{self, SnsMessage};
use herald_core::provider_events::{AuthError, ParseError};
use herald_core::providers::OrgProviders;
use herald_core::tracking::WebhookSummary;
use tracing::warn;

use crate::{Answer, Org, WebhookError, Webhooks};

/// `POST /webhooks/ses`: events from the deployment's topics (`HERALD_SES_TOPIC_ARNS`), or
/// from a topic listed in the settings of the organization the event's tags name.
pub async fn deployment_topic(
    State(w): State<Webhooks>,
    body: Bytes,
) -> Result<Answer, WebhookError> {
    receive(&w, None, &body).await.map(Answer)
}

/// `POST /webhooks/ses/{org}`: events from an organization's own topics.
pub async fn organization_topic(
    State(w): State<Webhooks>,
    Org(org): Org,
    body: Bytes,
) -> Result<Answer, WebhookError> {
    receive(&w, Some(&org), &body).await.map(Answer)
}

/// Whether an organization's SES settings list this topic (read again before saying no:
/// the topic may have been added moments ago).
async fn org_topic(w: &Webhooks, org: &OrgId, topic: &str) -> Result<bool, WebhookError> {
    let listed = |p: &OrgProviders| {
        p.ses
            .as_ref()
            .is_some_and(|s| s.sns_topic_arns.iter().any(|t| t == topic))
    };
    let accepted = w
        .with_settings(org, |p| {
            if listed(p) {
                Ok(())
            } else {
                Err(AuthError::NotConfigured)
            }
        })
        .await;
    match accepted {
        Ok(()) => Ok(true),
        Err(WebhookError::Unauthorized(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// SES events over SNS; `route_org` is the organization of `/webhooks/ses/{org}`.
async fn receive(
    w: &Webhooks,
    route_org: Option<&OrgId>,
    body: &[u8],
) -> Result<WebhookSummary, WebhookError> {
    let message = SnsMessage::parse(body)?;
    verify(w, &message).await?;
    match message.kind.as_str() {
        "SubscriptionConfirmation" => confirm(w, route_org, &message).await,
        "UnsubscribeConfirmation" => Ok(WebhookSummary::default()),
        "Notification" => apply(w, route_org, &message).await,
        _ => Err(ParseError::UnknownType { field: "Type" }.into()),
    }
}

/// SNS's signature, with a certificate fetched only from SNS in the topic's region.
async fn verify(w: &Webhooks, message: &SnsMessage) -> Result<(), WebhookError> {
    if !ses::trusted_cert_url(&message.signing_cert_url, &message.topic_arn) {
        return Err(AuthError::UntrustedCertificate.into());
    }
    let pem = w
        .sns
        .certificate(&message.signing_cert_url)
        .await
        .map_err(|e| {
            warn!(reason = %e, "SNS certificate unavailable");
            WebhookError::from(AuthError::CertificateUnavailable)
        })?;
    Ok(ses::verify(message, &ses::cert_public_key(&pem)?)?)
}

fn refused() -> WebhookError {
    AuthError::TopicNotAccepted.into()
}

/// Confirms a subscription. The confirmation names no organization: an organization's topic is
/// confirmed only on that organization's route, and only if its settings list the topic.
async fn confirm(
    w: &Webhooks,
    route_org: Option<&OrgId>,
    message: &SnsMessage,
) -> Result<WebhookSummary, WebhookError> {
    let accepted = w.config.ses_topic_arns.contains(&message.topic_arn)
        || match route_org {
            Some(org) => org_topic(w, org, &message.topic_arn).await?,
            None => false,
        };
    if !accepted {
        return Err(refused());
    }
    let url = message.subscribe_url.as_deref().unwrap_or_default();
    if !ses::trusted_subscribe_url(url, &message.topic_arn) {
        return Err(WebhookError::BadRequest("the SubscribeURL is not SNS's"));
    }
    w.sns.confirm_subscription(url).await?;
    Ok(WebhookSummary::default())
}

/// Applies an SES event to the notification it speaks of, for the organization the route or
/// the event's tags name.
async fn apply(
    w: &Webhooks,
    route_org: Option<&OrgId>,
    message: &SnsMessage,
) -> Result<WebhookSummary, WebhookError> {
    let delivery = ses::parse(message, w.clock.now())?;
    let org = match (route_org, delivery.org) {
        // on an organization's route, events are that organization's only
        (Some(route), Some(tagged)) if route != &tagged => None,
        (Some(route), _) => Some(route.clone()),
        (None, tagged) => tagged,
    };
    let Some(org) = org else {
        return Ok(WebhookSummary {
            unknown: 1,
            ..Default::default()
        });
    };
    let deployment_topic = w.config.ses_topic_arns.contains(&message.topic_arn);
    if !deployment_topic && !org_topic(w, &org, &message.topic_arn).await? {
        return Err(refused());
    }
    Ok(w.service.apply(&org, &[delivery.event]).await?)
}
