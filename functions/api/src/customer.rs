//! A customer's preferences and contact details.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use herald_core::consent::SuppressionKey;
use herald_core::directory::{CustomerUpdate, Origin, QuietHours, TimeZone};
use herald_core::directory_update::update_customer;
use herald_core::ids::{CustomerId, EmailAddress, Locale, NotificationType, OrgId, PhoneNumber};
use herald_core::model::Channel;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Api;
use crate::error::ApiError;
use crate::request::{Body, Customer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    channels: BTreeMap<Channel, bool>,
    #[serde(default)]
    unsubscribed: BTreeSet<NotificationType>,
    #[serde(default)]
    quiet_hours: Option<QuietHours>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    email: Option<EmailAddress>,
    phone: Option<PhoneNumber>,
    whatsapp: Option<PhoneNumber>,
    locale: Option<Locale>,
    timezone: Option<TimeZone>,
}

/// `GET /customers/{customer_id}/preferences`
pub async fn preferences(
    State(api): State<Api>,
    Customer { org, customer }: Customer,
) -> Result<Json<Value>, ApiError> {
    read_preferences(&api, &org, &customer).await.map(Json)
}

async fn read_preferences(
    api: &Api,
    org: &OrgId,
    customer: &CustomerId,
) -> Result<Value, ApiError> {
    let record = api
        .directory
        .get_customer(org, customer)
        .await?
        .map(|v| v.value)
        .unwrap_or_default();
    Ok(match record.preferences {
        None => json!({"channels": {}, "unsubscribed": [], "quiet_hours": null, "set": false}),
        Some(p) => json!({
            "channels": p.channels.iter().map(|(c, s)| (c.as_str(), s.value)).collect::<BTreeMap<_, _>>(),
            "unsubscribed": p.unsubscribed.as_ref().map(|s| s.value.clone()).unwrap_or_default(),
            "quiet_hours": p.quiet_hours(),
            "set": true,
        }),
    })
}

/// `PUT /customers/{customer_id}/preferences`
pub async fn put_preferences(
    State(api): State<Api>,
    Customer { org, customer }: Customer,
    Body(body): Body<PreferencesBody>,
) -> Result<Json<Value>, ApiError> {
    if let Some(unknown) = crate::templates::unknown_type(&api, &org, &body.unsubscribed).await? {
        return Err(ApiError::BadRequest(format!(
            "unsubscribed: unknown notification type {:?}",
            unknown.as_str()
        )));
    }
    let update = CustomerUpdate::Preferences {
        channels: body.channels,
        unsubscribed: body.unsubscribed,
        quiet_hours: body.quiet_hours,
    };
    apply(&api, &org, &customer, update).await?;
    read_preferences(&api, &org, &customer).await.map(Json)
}

/// Applies the customer's own change: it always applies, whatever the stored fields' times
/// (a directory event stamped in the future never locks a customer out of their own record).
async fn apply(
    api: &Api,
    org: &OrgId,
    customer: &CustomerId,
    update: CustomerUpdate,
) -> Result<(), ApiError> {
    let origin = Origin::Owner {
        now: api.clock.now(),
    };
    Ok(update_customer(api.directory.as_ref(), org, customer, update, origin).await?)
}

/// `GET /customers/{customer_id}/contact`
pub async fn contact(
    State(api): State<Api>,
    Customer { org, customer }: Customer,
) -> Result<Json<Value>, ApiError> {
    read_contact(&api, &org, &customer).await.map(Json)
}

async fn read_contact(api: &Api, org: &OrgId, customer: &CustomerId) -> Result<Value, ApiError> {
    let r = api
        .directory
        .get_customer(org, customer)
        .await?
        .map(|v| v.value)
        .unwrap_or_default();
    // the addresses' standing: bounced, complained or opted out addresses are suppressed
    let mut keys = Vec::new();
    if let Some(e) = &r.email {
        keys.push(SuppressionKey {
            channel: Channel::Email,
            address: e.value.as_str().to_ascii_lowercase(),
        });
    }
    if let Some(p) = &r.phone {
        keys.push(SuppressionKey {
            channel: Channel::Sms,
            address: p.value.as_str().to_string(),
        });
    }
    if let Some(w) = &r.whatsapp {
        keys.push(SuppressionKey {
            channel: Channel::Whatsapp,
            address: w.value.as_str().to_string(),
        });
    }
    let suppressed: Vec<Channel> = if keys.is_empty() {
        Vec::new()
    } else {
        api.directory
            .suppressed(org, &keys)
            .await?
            .into_iter()
            .map(|k| k.channel)
            .collect()
    };
    Ok(json!({
        "email": r.email.map(|s| s.value),
        "phone": r.phone.map(|s| s.value),
        "whatsapp": r.whatsapp.map(|s| s.value),
        "locale": r.locale.map(|s| s.value),
        "timezone": r.timezone.map(|s| s.value),
        "suppressed": suppressed,
    }))
}

/// `PUT /customers/{customer_id}/contact`
pub async fn put_contact(
    State(api): State<Api>,
    Customer { org, customer }: Customer,
    Body(body): Body<ContactBody>,
) -> Result<Json<Value>, ApiError> {
    let update = CustomerUpdate::Contact {
        email: body.email,
        phone: body.phone,
        whatsapp: body.whatsapp,
        locale: body.locale,
        timezone: body.timezone,
    };
    apply(&api, &org, &customer, update).await?;
    read_contact(&api, &org, &customer).await.map(Json)
}
