//! An organization's delivery providers and their credentials. Organizations with SendGrid
//! settings send email through SendGrid, those with Twilio settings send SMS through Twilio;
//! the others use SES and SNS.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::{EmailAddress, InvalidValue, OrgId, PhoneNumber};
use crate::ports::PortError;

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
}

/// The providers Herald can be set up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Sendgrid,
    Twilio,
    Ses,
}

impl Provider {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "sendgrid" => Ok(Provider::Sendgrid),
            "twilio" => Ok(Provider::Twilio),
            "ses" => Ok(Provider::Ses),
            other => Err(InvalidValue(format!(
                "unknown provider {other:?}: expected sendgrid, twilio or ses"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Sendgrid => "sendgrid",
            Provider::Twilio => "twilio",
            Provider::Ses => "ses",
        }
    }
}

impl OrgProviders {
    /// Replaces one provider's settings from its JSON form, validated.
    pub fn set(
        &mut self,
        provider: Provider,
        settings: serde_json::Value,
    ) -> Result<(), InvalidValue> {
        let invalid =
            |e: serde_json::Error| InvalidValue(format!("{} settings: {e}", provider.as_str()));
        match provider {
            Provider::Sendgrid => {
                self.sendgrid = Some(serde_json::from_value(settings).map_err(invalid)?)
            }
            Provider::Twilio => {
                self.twilio = Some(serde_json::from_value(settings).map_err(invalid)?)
            }
            Provider::Ses => self.ses = Some(serde_json::from_value(settings).map_err(invalid)?),
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
                if self.twilio.is_some() {
                    out.extend(["account_sid", "auth_token", "from"]);
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

/// Where provider settings and credentials are kept (Secrets Manager).
#[async_trait]
pub trait ProviderSettings: Send + Sync {
    async fn get(&self, org: &OrgId) -> Result<OrgProviders, PortError>;

    async fn put(&self, org: &OrgId, providers: &OrgProviders) -> Result<(), PortError>;
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
}
