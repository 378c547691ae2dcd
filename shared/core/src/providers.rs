//! An organization's delivery providers and their credentials. Organizations with SendGrid
//! settings send email through SendGrid, those with Twilio settings send SMS through Twilio
//! (and WhatsApp, when they name a WhatsApp sender); the others use SES and SNS.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::{EmailAddress, InvalidValue, OrgId, PhoneNumber};
use crate::model::Provider;
use crate::rate_limit::RateLimits;
use crate::routing::Routing;

/// A credential: kept out of debug output and logs.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(Secret(s))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendGridSettings {
    pub api_key: Secret,
    /// The signed event webhook's verification key: base64 DER of an ECDSA P-256 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_public_key: Option<String>,
    /// The `From` address; the notification's sender when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: AccountSid,
    /// Signs Twilio's status callbacks too.
    pub auth_token: Secret,
    pub from: PhoneNumber,
    /// The organization's WhatsApp sender (its number registered with WhatsApp through
    /// Twilio); without it the WhatsApp channel is not configured.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whatsapp_sender"
    )]
    pub whatsapp_from: Option<PhoneNumber>,
}

/// `whatsapp_from`, with the field named when it is not a number.
fn whatsapp_sender<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PhoneNumber>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|v| {
            PhoneNumber::parse(v)
                .map_err(|e| serde::de::Error::custom(format!("whatsapp_from: {}", e.0)))
        })
        .transpose()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_set: Option<String>,
    /// The SNS topics whose SES event notifications are accepted for this organization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sns_topic_arns: Vec<String>,
}

/// A Twilio account SID: `AC` and 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AccountSid(String);

impl AccountSid {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        let ok = value.len() == 34
            && value.starts_with("AC")
            && value[2..].chars().all(|c| c.is_ascii_hexdigit());
        if ok {
            Ok(AccountSid(value))
        } else {
            Err(InvalidValue(
                "account_sid must be AC followed by 32 hex digits".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for AccountSid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AccountSid::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The providers an organization has set up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgProviders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sendgrid: Option<SendGridSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio: Option<TwilioSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ses: Option<SesSettings>,
    /// The organization's SNS platform applications for mobile push.
    #[serde(default, skip_serializing_if = "PushApplications::is_empty")]
    pub push: PushApplications,
    /// The providers of each channel in the order they are asked; the deployment's for the
    /// channels it does not name.
    #[serde(default, skip_serializing_if = "Routing::is_empty")]
    pub routing: Routing,
    /// Messages per second and per day of each channel; the deployment's for the channels it
    /// does not name.
    #[serde(default, skip_serializing_if = "RateLimits::is_empty")]
    pub limits: RateLimits,
}

/// SNS platform applications by push platform, as ARNs (`arn:aws:sns:…:app/GCM/name`, the
/// SNS platform is part of the ARN).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushApplications {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<String>,
}

impl PushApplications {
    pub fn is_empty(&self) -> bool {
        self.fcm.is_none() && self.apns.is_none()
    }

    /// Each platform's application: these, or else the deployment's default.
    pub fn or(&self, defaults: &PushApplications) -> PushApplications {
        PushApplications {
            fcm: self.fcm.clone().or_else(|| defaults.fcm.clone()),
            apns: self.apns.clone().or_else(|| defaults.apns.clone()),
        }
    }
}

impl OrgProviders {
    /// Replaces one provider's settings from its JSON form, validated field by field; the
    /// error names the field.
    pub fn set(
        &mut self,
        provider: Provider,
        settings: serde_json::Value,
    ) -> Result<(), InvalidValue> {
        let name = provider.as_str();
        let invalid = |e: crate::json::Refusal| InvalidValue(format!("{name} settings: {e}"));
        let field = |e: InvalidValue| InvalidValue(format!("{name} settings: {}", e.0));
        match provider {
            Provider::Sendgrid => {
                let s: SendGridSettings = crate::json::from_value(&settings).map_err(invalid)?;
                s.validate().map_err(field)?;
                self.sendgrid = Some(s);
            }
            Provider::Twilio => {
                let s: TwilioSettings = crate::json::from_value(&settings).map_err(invalid)?;
                s.validate().map_err(field)?;
                self.twilio = Some(s);
            }
            Provider::Ses => {
                let s: SesSettings = crate::json::from_value(&settings).map_err(invalid)?;
                s.validate().map_err(field)?;
                self.ses = Some(s);
            }
        }
        Ok(())
    }

    /// Which fields of a provider's settings are set, never their values.
    pub fn fields_set(&self, provider: Provider) -> Vec<&'static str> {
        let mut out = Vec::new();
        match provider {
            Provider::Sendgrid => {
                if let Some(s) = &self.sendgrid {
                    out.push("api_key");
                    if s.webhook_public_key.is_some() {
                        out.push("webhook_public_key");
                    }
                    if s.from.is_some() {
                        out.push("from");
                    }
                }
            }
            Provider::Twilio => {
                if let Some(t) = &self.twilio {
                    out.extend(["account_sid", "auth_token", "from"]);
                    if t.whatsapp_from.is_some() {
                        out.push("whatsapp_from");
                    }
                }
            }
            Provider::Ses => {
                if let Some(s) = &self.ses {
                    if s.from.is_some() {
                        out.push("from");
                    }
                    if s.configuration_set.is_some() {
                        out.push("configuration_set");
                    }
                    if !s.sns_topic_arns.is_empty() {
                        out.push("sns_topic_arns");
                    }
                }
            }
        }
        out
    }
}

/// An organization's settings as stored, with the version they were read at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredProviders {
    pub providers: OrgProviders,
    /// The stored version (`None`: nothing is stored yet); a conditional write names it.
    pub version: Option<String>,
}

/// The shortest time between two reads of one organization's settings asked for by
/// [`ProviderSettings::refresh`].
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// The settings read lately, per organization: trusted for `ttl`, read again at most once per
/// `refresh_interval`, and at most `capacity` organizations (so requests naming made-up
/// organizations cannot grow it without end).
#[derive(Debug)]
pub struct SettingsCache {
    ttl: Duration,
    refresh_interval: Duration,
    capacity: usize,
    entries: HashMap<OrgId, (Instant, OrgProviders)>,
}

impl SettingsCache {
    pub fn new(ttl: Duration, refresh_interval: Duration, capacity: usize) -> Self {
        SettingsCache {
            ttl,
            refresh_interval,
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    pub fn set_refresh_interval(&mut self, interval: Duration) {
        self.refresh_interval = interval;
    }

    /// The copy read less than `ttl` ago.
    pub fn fresh(&self, org: &OrgId, now: Instant) -> Option<OrgProviders> {
        self.within(org, now, self.ttl)
    }

    /// The copy read less than the refresh interval ago: reading again would be too soon.
    pub fn recent(&self, org: &OrgId, now: Instant) -> Option<OrgProviders> {
        self.within(org, now, self.refresh_interval)
    }

    fn within(&self, org: &OrgId, now: Instant, age: Duration) -> Option<OrgProviders> {
        self.entries
            .get(org)
            .filter(|(at, _)| now.saturating_duration_since(*at) < age)
            .map(|(_, p)| p.clone())
    }

    /// Keeps a copy read at `now` (including "nothing configured").
    pub fn insert(&mut self, org: &OrgId, providers: OrgProviders, now: Instant) {
        if !self.entries.contains_key(org) && self.entries.len() >= self.capacity {
            let keep = self.ttl.max(self.refresh_interval);
            self.entries
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < keep);
            if self.entries.len() >= self.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(org.clone(), (now, providers));
    }
}

/// A region name as AWS spells them: `us-east-1`, `eu-central-2`, `ap-southeast-4`,
/// `us-gov-west-1`, `cn-north-1`, … (an area, a direction, a number).
pub fn is_aws_region(region: &str) -> bool {
    const AREAS: &[&str] = &[
        "us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn", "us-gov",
    ];
    const DIRECTIONS: &[&str] = &[
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "southeast",
        "northwest",
        "southwest",
    ];
    let Some((rest, number)) = region.rsplit_once('-') else {
        return false;
    };
    let Some((area, direction)) = rest.rsplit_once('-') else {
        return false;
    };
    AREAS.contains(&area)
        && DIRECTIONS.contains(&direction)
        && (1..=2).contains(&number.len())
        && number.chars().all(|c| c.is_ascii_digit())
        && !number.starts_with('0')
}

/// The DNS suffix of a region's endpoints.
pub fn aws_dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// The region of an SNS topic ARN, `arn:aws:sns:<region>:<12-digit account>:<name>`, or why it
/// is not one.
pub fn sns_topic_region(arn: &str) -> Result<&str, InvalidValue> {
    let invalid = || {
        InvalidValue(
            "must be an SNS topic ARN, arn:aws:sns:<region>:<12-digit account>:<topic name>".into(),
        )
    };
    let parts: Vec<&str> = arn.split(':').collect();
    let ["arn", partition, "sns", region, account, name] = parts.as_slice() else {
        return Err(invalid());
    };
    let partition_ok = match *partition {
        "aws" => !region.starts_with("cn-") && !region.starts_with("us-gov-"),
        "aws-cn" => region.starts_with("cn-"),
        "aws-us-gov" => region.starts_with("us-gov-"),
        _ => false,
    };
    let base = name.strip_suffix(".fifo").unwrap_or(*name);
    let name_ok = !base.is_empty()
        && name.len() <= 256
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    if partition_ok && is_aws_region(region) && account_ok && name_ok {
        Ok(*region)
    } else {
        Err(invalid())
    }
}

/// A credential's shape: 1 to `max` visible ASCII characters.
fn check_credential(field: &str, value: &Secret, max: usize) -> Result<(), InvalidValue> {
    let v = value.expose();
    if v.is_empty() || v.len() > max || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(InvalidValue(format!(
            "{field}: must be 1 to {max} visible characters, without spaces"
        )));
    }
    Ok(())
}

/// The most SNS topics an organization may accept SES events from.
pub const MAX_SES_TOPICS: usize = 10;

impl SendGridSettings {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_credential("api_key", &self.api_key, 256)?;
        if let Some(key) = &self.webhook_public_key {
            let parsed = (key.len() <= 512)
                .then(|| crate::provider_events::sendgrid::public_key_point(key).ok())
                .flatten();
            if parsed.is_none() {
                return Err(InvalidValue(
                    "webhook_public_key: must be SendGrid's verification key, a base64 ECDSA P-256 public key".into(),
                ));
            }
        }
        Ok(())
    }
}

impl TwilioSettings {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_credential("auth_token", &self.auth_token, 128)
    }
}

impl SesSettings {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if let Some(set) = &self.configuration_set {
            let ok = !set.is_empty()
                && set.len() <= 64
                && set
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(InvalidValue(
                    "configuration_set: must be 1 to 64 letters, digits, '-' or '_'".into(),
                ));
            }
        }
        if self.sns_topic_arns.len() > MAX_SES_TOPICS {
            return Err(InvalidValue(format!(
                "sns_topic_arns: at most {MAX_SES_TOPICS} topics"
            )));
        }
        for (i, arn) in self.sns_topic_arns.iter().enumerate() {
            sns_topic_region(arn)
                .map_err(|e| InvalidValue(format!("sns_topic_arns[{i}]: {}", e.0)))?;
            if self.sns_topic_arns[..i].contains(arn) {
                return Err(InvalidValue(format!("sns_topic_arns[{i}]: listed twice")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_validated_and_secrets_never_printed() {
        let mut p = OrgProviders::default();
        p.set(
            Provider::Twilio,
            json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "s3cr3t-value", "from": "+14155550100"}),
        )
        .unwrap();
        assert!(!format!("{p:?}").contains("s3cr3t"));
        assert_eq!(
            p.fields_set(Provider::Twilio),
            vec!["account_sid", "auth_token", "from"]
        );
        let err = p
            .set(
                Provider::Twilio,
                json!({"account_sid": "nope", "auth_token": "t", "from": "+14155550100"}),
            )
            .unwrap_err();
        assert!(err.0.contains("account_sid"), "{}", err.0);
        assert!(
            p.set(Provider::Sendgrid, json!({"api_key": "k", "colour": "red"}))
                .is_err()
        );
        assert!(Provider::parse("mailgun").is_err());
    }

    #[test]
    fn a_whatsapp_sender_is_optional_and_an_e164_number() {
        let mut p = OrgProviders::default();
        let twilio = |whatsapp_from: serde_json::Value| {
            json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "t",
                "from": "+14155550100", "whatsapp_from": whatsapp_from})
        };
        let err = p
            .set(Provider::Twilio, twilio(json!("whatsapp:+14155550111")))
            .unwrap_err();
        assert!(
            err.0.contains("whatsapp_from: phone must be in E.164"),
            "{}",
            err.0
        );
        assert_eq!(p, OrgProviders::default(), "nothing was set");
        p.set(Provider::Twilio, twilio(json!("+14155550111")))
            .unwrap();
        assert_eq!(
            p.fields_set(Provider::Twilio),
            vec!["account_sid", "auth_token", "from", "whatsapp_from"]
        );
        assert_eq!(
            p.twilio.as_ref().and_then(|t| t.whatsapp_from.as_ref()),
            Some(&PhoneNumber::parse("+14155550111").unwrap())
        );
        p.set(Provider::Twilio, twilio(serde_json::Value::Null))
            .unwrap();
        assert_eq!(p.twilio.as_ref().unwrap().whatsapp_from, None);
    }

    #[test]
    fn every_settings_field_is_validated_and_the_error_names_it() {
        let mut p = OrgProviders::default();
        let cases = [
            (
                Provider::Sendgrid,
                json!({"api_key": "SG.k", "webhook_public_key": "bm90IGEga2V5"}),
                "webhook_public_key",
            ),
            (
                Provider::Sendgrid,
                json!({"api_key": "SG key with spaces"}),
                "api_key",
            ),
            (
                Provider::Twilio,
                json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "x".repeat(129), "from": "+14155550100"}),
                "auth_token",
            ),
            (
                Provider::Ses,
                json!({"sns_topic_arns": ["*"]}),
                "sns_topic_arns[0]",
            ),
            (
                Provider::Ses,
                json!({"sns_topic_arns": ["arn:aws:sns:us-east-1:123456789012:a", "not-an-arn"]}),
                "sns_topic_arns[1]",
            ),
            (
                Provider::Ses,
                json!({"configuration_set": "x".repeat(65)}),
                "configuration_set",
            ),
        ];
        for (provider, value, field) in cases {
            let err = p.set(provider, value.clone()).unwrap_err();
            assert!(err.0.contains(field), "{value}: {}", err.0);
        }
        assert_eq!(p, OrgProviders::default(), "nothing was set");
        let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
        p.set(
            Provider::Sendgrid,
            json!({"api_key": "SG.k", "webhook_public_key": key}),
        )
        .unwrap();
        p.set(
            Provider::Ses,
            json!({"sns_topic_arns": ["arn:aws:sns:eu-west-1:123456789012:ses-events", "arn:aws-cn:sns:cn-north-1:123456789012:e.fifo"]}),
        )
        .unwrap();
    }

    #[test]
    fn topic_arns_and_regions_parse_as_aws_spells_them() {
        for region in [
            "us-east-1",
            "eu-central-2",
            "ap-southeast-4",
            "us-gov-west-1",
            "cn-north-1",
            "il-central-1",
        ] {
            assert!(is_aws_region(region), "{region}");
        }
        for region in [
            "s3",
            "execute-api",
            "us-east",
            "us-east-01",
            "mars-north-1",
            "",
            "us-east-1.evil",
        ] {
            assert!(!is_aws_region(region), "{region}");
        }
        assert_eq!(
            sns_topic_region("arn:aws:sns:eu-west-1:123456789012:ses").unwrap(),
            "eu-west-1"
        );
        for bad in [
            "*",
            "arn:aws:sns:eu-west-1:12345678901:ses",
            "arn:aws:sqs:eu-west-1:123456789012:ses",
            "arn:aws:sns:eu-west-1:123456789012:",
            "arn:aws:sns:eu-west-1:123456789012:a:b",
            "arn:aws:sns:cn-north-1:123456789012:ses",
            "arn:aws:sns:eu-west-1:123456789012:sp ace",
        ] {
            assert!(sns_topic_region(bad).is_err(), "{bad}");
        }
    }

    fn org(name: &str) -> OrgId {
        OrgId::parse(name).unwrap()
    }

    #[test]
    fn the_cache_keeps_not_configured_too_but_lets_it_be_read_again_after_the_interval() {
        let mut cache = SettingsCache::new(Duration::from_secs(300), Duration::from_secs(5), 100);
        let t0 = Instant::now();
        cache.insert(&org("org_a"), OrgProviders::default(), t0);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            cache.fresh(&org("org_a"), later),
            Some(OrgProviders::default())
        );
        assert_eq!(
            cache.recent(&org("org_a"), t0 + Duration::from_secs(4)),
            Some(OrgProviders::default()),
            "too soon to read again"
        );
        assert_eq!(cache.recent(&org("org_a"), later), None, "may read again");
        assert_eq!(
            cache.fresh(&org("org_a"), t0 + Duration::from_secs(301)),
            None
        );
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_organizations() {
        let mut cache = SettingsCache::new(Duration::from_secs(300), Duration::from_secs(5), 3);
        let t0 = Instant::now();
        for i in 0..10u64 {
            cache.insert(
                &org(&format!("org_{i}")),
                OrgProviders::default(),
                t0 + Duration::from_millis(i),
            );
        }
        assert_eq!(cache.entries.len(), 3);
        assert!(
            cache
                .fresh(&org("org_9"), t0 + Duration::from_secs(1))
                .is_some()
        );
        assert!(
            cache
                .fresh(&org("org_0"), t0 + Duration::from_secs(1))
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_update_keeps_what_another_writer_saved_meanwhile() {
        use crate::ports::ProviderSettings;
        use crate::settings::update;
        use crate::testing::MemoryProviderSettings;
        let store = MemoryProviderSettings::default();
        let acme = org("org_acme");
        // between this update's read and its write, another administrator saves SendGrid
        store.before_next_write(
            acme.clone(),
            Provider::Sendgrid,
            json!({"api_key": "SG.saved-meanwhile"}),
        );
        let written = update(
            &store,
            &acme,
            Provider::Twilio,
            json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "t", "from": "+14155550100"}),
        )
        .await
        .unwrap();
        assert!(written.twilio.is_some());
        let stored = store.read(&acme).await.unwrap().providers;
        assert!(stored.sendgrid.is_some(), "kept: {stored:?}");
        assert!(stored.twilio.is_some());
        assert_eq!(store.conflicts(), 1);
    }
}
