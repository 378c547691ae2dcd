//! Mobile push through SNS platform applications (FCM and APNS): the payload of each platform,
//! and the sender that publishes a notification to each of the recipient's devices.
//!
//! A notification is sent when at least one device accepted it, retried (soft) when a platform
//! throttled or failed and no device refused it for good, failed (hard) when no device could
//! take it. A retry goes only to the devices that have not accepted it yet
//! ([`Notification::push_accepted`]). A device whose endpoint the platform disabled is
//! unregistered, and the others still get the notification.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::ids::{CustomerId, OrgId};
use crate::model::{Address, DeliveryService, Device, Notification, Platform, Recipient};
use crate::ports::{
    ChannelSender, Clock, Directory, PortError, ProviderSettings, PushEndpoints, PushRefusal,
    Receipt, SendError, Views, Write,
};
use crate::providers::PushApplications;

/// The largest payload FCM and APNS take for a notification.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// A title longer than this is cut (before the body is cut to fit the payload).
pub const MAX_TITLE_BYTES: usize = 256;

const ELLIPSIS: &str = "…";

/// An SNS platform, as named in a platform application's ARN and in a JSON message's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsPlatform {
    Gcm,
    Apns,
    ApnsSandbox,
}

impl SnsPlatform {
    pub fn key(self) -> &'static str {
        match self {
            SnsPlatform::Gcm => "GCM",
            SnsPlatform::Apns => "APNS",
            SnsPlatform::ApnsSandbox => "APNS_SANDBOX",
        }
    }

    /// The platform of a platform application, from its ARN (`arn:aws:sns:…:app/GCM/name`).
    pub fn of_application(arn: &str) -> Option<Self> {
        let (_, rest) = arn.split_once(":app/")?;
        match rest.split('/').next()? {
            "GCM" => Some(SnsPlatform::Gcm),
            "APNS" => Some(SnsPlatform::Apns),
            "APNS_SANDBOX" => Some(SnsPlatform::ApnsSandbox),
            _ => None,
        }
    }
}

/// What a push shows and carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushContent {
    pub title: String,
    pub body: String,
    /// Ids only: the notification id, its type, an action URL.
    pub data: BTreeMap<String, String>,
    /// The customer's unread count in the feed.
    pub badge: u64,
}

/// Cuts `text` to at most `max_bytes` at a whole word, ending with an ellipsis; a text that
/// fits is returned as it is. A single word longer than the limit is cut at a character.
pub fn cut(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let Some(room) = max_bytes.checked_sub(ELLIPSIS.len()) else {
        return String::new();
    };
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = &text[..end];
    // back to the last whole word when the cut falls inside one
    let whole = if text[end..].starts_with(char::is_whitespace) {
        prefix
    } else {
        prefix
            .rfind(char::is_whitespace)
            .map_or(prefix, |i| &prefix[..i])
    };
    let kept = match whole.trim_end() {
        "" => prefix,
        kept => kept,
    };
    format!("{kept}{ELLIPSIS}")
}

fn platform_payload(
    platform: SnsPlatform,
    title: &str,
    body: &str,
    content: &PushContent,
) -> Value {
    match platform {
        SnsPlatform::Gcm => {
            let mut data = content.data.clone();
            // Android shows no badge from the notification itself: the app reads it from the data
            data.insert("badge".into(), content.badge.to_string());
            json!({"fcmV1Message": {"message": {
                "notification": {"title": title, "body": body},
                "data": data,
            }}})
        }
        SnsPlatform::Apns | SnsPlatform::ApnsSandbox => {
            let mut payload = json!({"aps": {
                "alert": {"title": title, "body": body},
                "badge": content.badge,
                "sound": "default",
            }});
            if let Value::Object(map) = &mut payload {
                for (k, v) in &content.data {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
            }
            payload
        }
    }
}

/// The platform's payload (title and body cut to fit [`MAX_PAYLOAD_BYTES`]).
pub fn payload(platform: SnsPlatform, content: &PushContent) -> Value {
    let title = cut(&content.title, MAX_TITLE_BYTES);
    let mut budget = content.body.len();
    loop {
        let body = cut(&content.body, budget);
        let value = platform_payload(platform, &title, &body, content);
        let size = value.to_string().len();
        if size <= MAX_PAYLOAD_BYTES || budget == 0 {
            return value;
        }
        // escaping makes the payload grow faster than the body: shrink by the excess
        budget = budget.saturating_sub((size - MAX_PAYLOAD_BYTES).max(1));
    }
}

/// The SNS message (`MessageStructure=json`): the platform's payload as a string under its
/// platform's key, and the body under `default`, which SNS requires.
pub fn message(platform: SnsPlatform, content: &PushContent) -> String {
    let payload = payload(platform, content);
    let body = match platform {
        SnsPlatform::Gcm => payload["fcmV1Message"]["message"]["notification"]["body"].clone(),
        SnsPlatform::Apns | SnsPlatform::ApnsSandbox => payload["aps"]["alert"]["body"].clone(),
    };
    let mut message = serde_json::Map::new();
    message.insert("default".into(), body);
    message.insert(platform.key().into(), Value::String(payload.to_string()));
    Value::Object(message).to_string()
}

/// The endpoint's id: the last part of its ARN (what the notification records, ids only).
pub fn endpoint_id(endpoint_arn: &str) -> String {
    endpoint_arn
        .rsplit('/')
        .next()
        .unwrap_or(endpoint_arn)
        .to_string()
}

/// Sends push notifications through the organization's platform applications (or the
/// deployment's defaults), one publish per device endpoint.
pub struct PushSender {
    pub endpoints: Arc<dyn PushEndpoints>,
    pub directory: Arc<dyn Directory>,
    pub views: Arc<dyn Views>,
    pub settings: Arc<dyn ProviderSettings>,
    /// The deployment's platform applications for organizations without their own.
    pub defaults: PushApplications,
    pub clock: Arc<dyn Clock>,
}

/// What became of the devices of one send.
#[derive(Default)]
struct Outcomes {
    accepted: BTreeMap<String, String>,
    soft: Option<SendError>,
    hard: Option<SendError>,
    disabled: Vec<Device>,
    created: Vec<(Device, String)>,
    unconfigured: usize,
}

fn refusal(e: PushRefusal) -> SendError {
    let (error, code) = match e {
        PushRefusal::EndpointDisabled => (
            SendError::hard("the endpoint is disabled"),
            Some("EndpointDisabled".to_string()),
        ),
        PushRefusal::Soft { reason, code } => (SendError::soft(reason), code),
        PushRefusal::Hard { reason, code } => (SendError::hard(reason), code),
    };
    match code {
        Some(code) => error.with_code(code),
        None => error,
    }
}

impl PushSender {
    fn application(apps: &PushApplications, platform: Platform) -> Option<&String> {
        match platform {
            Platform::Fcm => apps.fcm.as_ref(),
            Platform::Apns => apps.apns.as_ref(),
        }
    }

    async fn to_device(
        &self,
        n: &Notification,
        device: &Device,
        apps: &PushApplications,
        content: &PushContent,
        out: &mut Outcomes,
    ) {
        let Some(application) = Self::application(apps, device.platform) else {
            out.unconfigured += 1;
            return;
        };
        let Some(platform) = SnsPlatform::of_application(application) else {
            out.hard = Some(SendError::hard(
                "the push platform application's ARN names no known platform",
            ));
            return;
        };
        let endpoint = match &device.endpoint_arn {
            Some(arn) => arn.clone(),
            // registered before the organization had a platform application: made now
            None => match self
                .endpoints
                .create_endpoint(application, &device.token)
                .await
            {
                Ok(arn) => {
                    out.created.push((device.clone(), arn.clone()));
                    arn
                }
                Err(e) => return self.refused(device, e, out),
            },
        };
        let id = endpoint_id(&endpoint);
        if n.push_accepted.contains_key(&id) {
            return;
        }
        match self
            .endpoints
            .publish(&endpoint, &message(platform, content))
            .await
        {
            Ok(message_id) => {
                out.accepted.insert(id, message_id.unwrap_or_default());
            }
            Err(e) => self.refused(device, e, out),
        }
    }

    fn refused(&self, device: &Device, e: PushRefusal, out: &mut Outcomes) {
        match e {
            PushRefusal::EndpointDisabled => out.disabled.push(device.clone()),
            e @ PushRefusal::Soft { .. } => out.soft = Some(refusal(e)),
            e @ PushRefusal::Hard { .. } => out.hard = Some(refusal(e)),
        }
    }

    /// Keeps the endpoints made, unregisters the devices whose endpoints are disabled, and
    /// deletes those endpoints. Whatever fails here is found again at the next send.
    async fn remember(&self, org: &OrgId, customer: &CustomerId, out: &Outcomes) {
        if out.created.is_empty() && out.disabled.is_empty() {
            return;
        }
        if let Err(e) = self.update_devices(org, customer, out).await {
            warn!(error = %e, "the customer's devices could not be updated");
        }
        for device in &out.disabled {
            if let Some(arn) = &device.endpoint_arn
                && let Err(e) = self.endpoints.delete_endpoint(arn).await
            {
                warn!(error = %e, endpoint_id = %endpoint_id(arn), "a disabled endpoint could not be deleted");
            }
        }
    }

    async fn update_devices(
        &self,
        org: &OrgId,
        customer: &CustomerId,
        out: &Outcomes,
    ) -> Result<(), PortError> {
        for _ in 0..3 {
            let Some(stored) = self.directory.get_customer(org, customer).await? else {
                return Ok(());
            };
            let mut record = stored.value;
            let now = self.clock.now();
            let mut changed = false;
            for (device, arn) in &out.created {
                changed |= record.set_endpoint(device, arn);
            }
            for device in &out.disabled {
                changed |= record.drop_device(device, now);
            }
            if !changed {
                return Ok(());
            }
            match self
                .directory
                .put_customer(org, customer, &record, Some(stored.version))
                .await?
            {
                Write::Done => return Ok(()),
                Write::Conflict => continue,
            }
        }
        Err(PortError::new(
            "update the customer's devices",
            "the record kept changing",
        ))
    }
}

#[async_trait]
impl ChannelSender for PushSender {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        let Address::Devices(devices) = &n.address else {
            return Err(SendError::hard("push notification without devices"));
        };
        let unavailable = |e: PortError| {
            warn!(error = %e, "push settings or feed unavailable");
            SendError::soft("push settings or feed unavailable")
        };
        let apps = self
            .settings
            .get(&n.org_id)
            .await
            .map_err(unavailable)?
            .push
            .or(&self.defaults);
        if apps.is_empty() {
            return Err(SendError::hard(format!(
                "channel {} is not configured",
                n.channel
            )));
        }
        let badge = match &n.recipient {
            Recipient::Customer(c) => self.views.unread(&n.org_id, c).await.map_err(unavailable)?,
            Recipient::Operations => 0,
        };
        let mut data = BTreeMap::new();
        data.insert("notification_id".to_string(), n.id.to_string());
        data.insert("type".to_string(), n.notification_type.to_string());
        let content = PushContent {
            title: n.subject.clone().unwrap_or_default(),
            body: n.body.clone(),
            data,
            badge,
        };
        let mut out = Outcomes::default();
        for device in devices {
            self.to_device(n, device, &apps, &content, &mut out).await;
        }
        if let Recipient::Customer(c) = &n.recipient {
            self.remember(&n.org_id, c, &out).await;
        }
        info!(
            accepted = out.accepted.len(),
            disabled = out.disabled.len(),
            unconfigured = out.unconfigured,
            "pushed"
        );
        let first_id = out
            .accepted
            .values()
            .chain(n.push_accepted.values())
            .find(|id| !id.is_empty())
            .cloned();
        let any_accepted = !out.accepted.is_empty() || !n.push_accepted.is_empty();
        let Outcomes {
            accepted,
            soft,
            hard,
            disabled,
            ..
        } = out;
        let result = if let Some(mut soft) = soft {
            soft.push_accepted = accepted;
            Err(soft)
        } else if any_accepted {
            let mut receipt = match first_id {
                Some(id) => Receipt::with_id(id),
                None => Receipt::without_id(),
            };
            receipt.push_accepted = accepted;
            Ok(receipt)
        } else if let Some(hard) = hard {
            Err(hard)
        } else if !disabled.is_empty() {
            Err(SendError::hard("every device's endpoint is disabled")
                .with_code("EndpointDisabled"))
        } else {
            Err(SendError::hard(format!(
                "channel {} is not configured for the recipient's devices",
                n.channel
            )))
        };
        result
            .map(|r| r.via(DeliveryService::Sns))
            .map_err(|e| e.via(DeliveryService::Sns))
    }
}

/// Keeps devices' platform endpoints in step with their registration: made when a device is
/// registered (if its organization, or the deployment, has a platform application for its
/// platform), deleted when it is unregistered. A failure here loses nothing: a device without
/// an endpoint gets one at its next push, and a leftover endpoint is never published to.
pub struct DeviceEndpoints {
    pub endpoints: Arc<dyn PushEndpoints>,
    pub settings: Arc<dyn ProviderSettings>,
    pub defaults: PushApplications,
}

impl DeviceEndpoints {
    /// After a registration was applied: makes the device's endpoint and keeps it with the
    /// device, unless it has one or is no longer registered.
    pub async fn registered(
        &self,
        directory: &dyn Directory,
        org: &OrgId,
        customer: &CustomerId,
        device: &Device,
    ) {
        if let Err(e) = self.make_endpoint(directory, org, customer, device).await {
            warn!(error = %e, "the device's endpoint was not made; it is made at its next push");
        }
    }

    async fn make_endpoint(
        &self,
        directory: &dyn Directory,
        org: &OrgId,
        customer: &CustomerId,
        device: &Device,
    ) -> Result<(), PortError> {
        let stored = directory.get_customer(org, customer).await?;
        let needs_endpoint = stored.as_ref().is_some_and(|s| {
            s.value
                .devices
                .get(&device.key())
                .is_some_and(|d| d.value.registered && d.value.device.endpoint_arn.is_none())
        });
        if !needs_endpoint {
            return Ok(());
        }
        let apps = self.settings.get(org).await?.push.or(&self.defaults);
        let Some(application) = PushSender::application(&apps, device.platform) else {
            return Ok(());
        };
        let arn = self
            .endpoints
            .create_endpoint(application, &device.token)
            .await
            .map_err(|e| PortError::new("sns CreatePlatformEndpoint", e))?;
        for _ in 0..3 {
            let Some(stored) = directory.get_customer(org, customer).await? else {
                return Ok(());
            };
            let mut record = stored.value;
            if !record.set_endpoint(device, &arn) {
                return Ok(());
            }
            if directory
                .put_customer(org, customer, &record, Some(stored.version))
                .await?
                == Write::Done
            {
                info!(endpoint_id = %endpoint_id(&arn), "device endpoint made");
                return Ok(());
            }
        }
        Err(PortError::new(
            "keep the device's endpoint",
            "the record kept changing",
        ))
    }

    /// The endpoint of a device as stored, if it has one.
    pub async fn endpoint_of(
        &self,
        directory: &dyn Directory,
        org: &OrgId,
        customer: &CustomerId,
        device: &Device,
    ) -> Result<Option<String>, PortError> {
        Ok(directory
            .get_customer(org, customer)
            .await?
            .and_then(|s| s.value.devices.get(&device.key()).cloned())
            .and_then(|d| d.value.device.endpoint_arn))
    }

    /// After an unregistration was applied: deletes the endpoint the device had, if the
    /// device is now unregistered (a later registration may have won).
    pub async fn unregistered(
        &self,
        directory: &dyn Directory,
        org: &OrgId,
        customer: &CustomerId,
        device: &Device,
        endpoint_arn: &str,
    ) -> Result<(), PortError> {
        let still_registered = directory
            .get_customer(org, customer)
            .await?
            .and_then(|s| s.value.devices.get(&device.key()).cloned())
            .is_some_and(|d| d.value.registered);
        if still_registered {
            return Ok(());
        }
        self.endpoints.delete_endpoint(endpoint_arn).await?;
        info!(endpoint_id = %endpoint_id(endpoint_arn), "device endpoint deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(title: &str, body: &str, badge: u64) -> PushContent {
        let mut data = BTreeMap::new();
        data.insert("notification_id".to_string(), "ntf_1".to_string());
        PushContent {
            title: title.into(),
            body: body.into(),
            data,
            badge,
        }
    }

    #[test]
    fn platforms_are_read_from_application_arns() {
        let arn = |p: &str| format!("arn:aws:sns:eu-west-1:123456789012:app/{p}/herald");
        assert_eq!(
            SnsPlatform::of_application(&arn("GCM")),
            Some(SnsPlatform::Gcm)
        );
        assert_eq!(
            SnsPlatform::of_application(&arn("APNS")),
            Some(SnsPlatform::Apns)
        );
        assert_eq!(
            SnsPlatform::of_application(&arn("APNS_SANDBOX")),
            Some(SnsPlatform::ApnsSandbox)
        );
        assert_eq!(SnsPlatform::of_application(&arn("ADM")), None);
        assert_eq!(SnsPlatform::of_application("nonsense"), None);
    }

    #[test]
    fn fcm_payload_is_an_fcm_v1_message_with_ids_and_badge_in_data() {
        let message: Value =
            serde_json::from_str(&message(SnsPlatform::Gcm, &content("T", "B", 3))).unwrap();
        assert_eq!(message["default"], "B");
        let gcm: Value = serde_json::from_str(message["GCM"].as_str().unwrap()).unwrap();
        assert_eq!(
            gcm,
            json!({"fcmV1Message": {"message": {
                "notification": {"title": "T", "body": "B"},
                "data": {"notification_id": "ntf_1", "badge": "3"},
            }}})
        );
    }

    #[test]
    fn apns_payload_has_an_alert_badge_and_sound_under_its_platform_key() {
        for platform in [SnsPlatform::Apns, SnsPlatform::ApnsSandbox] {
            let message: Value =
                serde_json::from_str(&message(platform, &content("T", "B", 7))).unwrap();
            let apns: Value =
                serde_json::from_str(message[platform.key()].as_str().unwrap()).unwrap();
            assert_eq!(
                apns,
                json!({"aps": {"alert": {"title": "T", "body": "B"}, "badge": 7, "sound": "default"},
                       "notification_id": "ntf_1"})
            );
        }
    }

    #[test]
    fn cut_keeps_whole_words_and_ends_with_an_ellipsis() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("hello wonderful world", 14), "hello…");
        assert_eq!(cut("hello world again", 15), "hello world…");
        assert_eq!(cut("abcdefghij", 8), "abcde…");
        assert!(cut("é".repeat(10).as_str(), 8).ends_with(ELLIPSIS));
    }

    #[test]
    fn a_long_body_is_cut_to_keep_the_payload_under_4_kb() {
        let body = "word ".repeat(2000);
        let title = "title ".repeat(100);
        for platform in [SnsPlatform::Gcm, SnsPlatform::Apns] {
            let payload = payload(platform, &content(&title, &body, 1));
            assert!(payload.to_string().len() <= MAX_PAYLOAD_BYTES);
            let text = payload.to_string();
            assert!(text.contains("word…"), "{platform:?}");
            assert!(text.contains("title…"), "{platform:?}");
        }
    }

    #[test]
    fn quotes_that_grow_when_escaped_still_fit() {
        let body = "\"q\" ".repeat(1500);
        let payload = payload(SnsPlatform::Apns, &content("t", &body, 0));
        assert!(payload.to_string().len() <= MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn endpoint_ids_are_the_last_part_of_the_arn() {
        assert_eq!(
            endpoint_id("arn:aws:sns:eu-west-1:1:endpoint/GCM/app/0b1c2d"),
            "0b1c2d"
        );
    }
}
