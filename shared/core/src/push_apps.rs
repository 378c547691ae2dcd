//! An organization's push platform applications (`PUT /admin/providers/fcm` and `…/apns`): the
//! credentials, validated field by field, go to SNS; the application's ARN is kept in the
//! organization's provider settings. Credentials are never stored by Herald nor answered.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::ids::{EmailAddress, InvalidValue, OrgId};
use crate::model::Platform;
use crate::ports::{PlatformApplications, ProviderSettings, Write};
use crate::providers::{OrgProviders, Secret, StoredProviders};
use crate::push::SnsPlatform;
use crate::settings::UpdateError;

/// The longest credential accepted (a service account JSON is about 2.5 KB).
const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

fn invalid(field: &str, why: &str) -> InvalidValue {
    InvalidValue(format!("{field}: {why}"))
}

fn private_key(field: &str, key: &str) -> Result<(), InvalidValue> {
    let key = key.trim();
    if key.len() > MAX_CREDENTIAL_BYTES {
        return Err(invalid(field, "too long"));
    }
    if key.starts_with("-----BEGIN PRIVATE KEY-----") && key.ends_with("-----END PRIVATE KEY-----")
    {
        Ok(())
    } else {
        Err(invalid(field, "not a PEM private key"))
    }
}

/// `PUT /admin/providers/fcm`: the FCM v1 service account JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmSettings {
    pub service_account_json: Secret,
}

#[derive(Deserialize)]
struct ServiceAccount {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
}

impl FcmSettings {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let field = "service_account_json";
        let raw = self.service_account_json.expose();
        if raw.len() > MAX_CREDENTIAL_BYTES {
            return Err(invalid(field, "too long"));
        }
        let account: ServiceAccount =
            serde_json::from_str(raw).map_err(|_| invalid(field, "not a JSON object"))?;
        if account.kind.as_deref() != Some("service_account") {
            return Err(invalid(field, "type must be service_account"));
        }
        if account.project_id.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(field, "project_id is missing"));
        }
        private_key(
            "service_account_json: private_key",
            account.private_key.as_deref().unwrap_or_default(),
        )?;
        EmailAddress::parse(account.client_email.as_deref().unwrap_or_default())
            .map_err(|_| invalid(field, "client_email is not an email address"))?;
        Ok(())
    }
}

/// `PUT /admin/providers/apns`: token authentication with a signing key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsSettings {
    pub signing_key: Secret,
    pub key_id: String,
    pub team_id: String,
    pub bundle_id: String,
    #[serde(default)]
    pub sandbox: bool,
}

fn apple_id(field: &str, value: &str) -> Result<(), InvalidValue> {
    if value.len() == 10 && value.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(invalid(field, "must be 10 letters or digits"))
    }
}

fn bundle_id(value: &str) -> Result<(), InvalidValue> {
    let parts: Vec<&str> = value.split('.').collect();
    let valid = value.len() <= 155
        && parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "bundle_id",
            "must be a reverse-DNS name (com.example.app)",
        ))
    }
}

impl ApnsSettings {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        private_key("signing_key", self.signing_key.expose())?;
        apple_id("key_id", &self.key_id)?;
        apple_id("team_id", &self.team_id)?;
        bundle_id(&self.bundle_id)
    }
}

/// The platform and SNS attributes of validated settings.
pub fn application_attributes(
    platform: Platform,
    settings: Value,
) -> Result<(SnsPlatform, BTreeMap<String, String>), InvalidValue> {
    let name = match platform {
        Platform::Fcm => "fcm",
        Platform::Apns => "apns",
    };
    let parse_error = |e: crate::json::Refusal| InvalidValue(format!("{name} settings: {e}"));
    let field = |e: InvalidValue| InvalidValue(format!("{name} settings: {}", e.0));
    let mut attributes = BTreeMap::new();
    match platform {
        Platform::Fcm => {
            let s: FcmSettings = crate::json::from_value(&settings).map_err(parse_error)?;
            s.validate().map_err(field)?;
            attributes.insert(
                "PlatformCredential".into(),
                s.service_account_json.expose().to_string(),
            );
            Ok((SnsPlatform::Gcm, attributes))
        }
        Platform::Apns => {
            let s: ApnsSettings = crate::json::from_value(&settings).map_err(parse_error)?;
            s.validate().map_err(field)?;
            attributes.insert(
                "PlatformCredential".into(),
                s.signing_key.expose().trim().to_string(),
            );
            attributes.insert("PlatformPrincipal".into(), s.key_id);
            attributes.insert("ApplePlatformTeamID".into(), s.team_id);
            attributes.insert("ApplePlatformBundleID".into(), s.bundle_id);
            let sns = match s.sandbox {
                true => SnsPlatform::ApnsSandbox,
                false => SnsPlatform::Apns,
            };
            Ok((sns, attributes))
        }
    }
}

/// Creates or updates the organization's platform application for `platform` with these
/// settings and keeps its ARN in the provider settings (read fresh, written only if nobody
/// wrote in between, else again).
pub async fn set_application(
    settings: &dyn ProviderSettings,
    applications: &dyn PlatformApplications,
    org: &OrgId,
    platform: Platform,
    value: Value,
) -> Result<OrgProviders, UpdateError> {
    let (sns, attributes) =
        application_attributes(platform, value).map_err(UpdateError::Invalid)?;
    let name = format!(
        "herald-{}-{}",
        org.as_str().replace('_', "-"),
        sns.key().to_ascii_lowercase()
    );
    for _ in 0..5 {
        let StoredProviders {
            mut providers,
            version,
        } = settings.read(org).await?;
        let slot = match platform {
            Platform::Fcm => &mut providers.push.fcm,
            Platform::Apns => &mut providers.push.apns,
        };
        let arn = applications
            .put(slot.as_deref(), &name, sns, &attributes)
            .await?;
        *slot = Some(arn);
        match settings.write(org, &providers, version.as_deref()).await? {
            Write::Done => return Ok(providers),
            Write::Conflict => continue,
        }
    }
    Err(UpdateError::Conflict)
}

/// What `GET` answers: whether the platform application is set, and its SNS platform.
pub fn application_answer(providers: &OrgProviders, platform: Platform) -> Value {
    let arn = match platform {
        Platform::Fcm => providers.push.fcm.as_deref(),
        Platform::Apns => providers.push.apns.as_deref(),
    };
    serde_json::json!({
        "provider": match platform { Platform::Fcm => "fcm", Platform::Apns => "apns" },
        "configured": arn.is_some(),
        "platform": arn.and_then(SnsPlatform::of_application).map(SnsPlatform::key),
        "application_arn": arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGT\n-----END PRIVATE KEY-----";

    fn account() -> Value {
        json!({"type": "service_account", "project_id": "acme", "private_key": KEY,
               "client_email": "push@acme.iam.gserviceaccount.com"})
    }

    fn fcm(account: &Value) -> Result<(SnsPlatform, BTreeMap<String, String>), InvalidValue> {
        application_attributes(
            Platform::Fcm,
            json!({"service_account_json": account.to_string()}),
        )
    }

    fn apns(
        change: impl FnOnce(&mut Value),
    ) -> Result<(SnsPlatform, BTreeMap<String, String>), InvalidValue> {
        let mut v = json!({"signing_key": KEY, "key_id": "ABCDE12345", "team_id": "TEAM123456",
                           "bundle_id": "com.acme.app", "sandbox": true});
        change(&mut v);
        application_attributes(Platform::Apns, v)
    }

    #[test]
    fn a_service_account_becomes_a_gcm_platform_credential() {
        let (platform, attributes) = fcm(&account()).unwrap();
        assert_eq!(platform, SnsPlatform::Gcm);
        assert_eq!(attributes["PlatformCredential"], account().to_string());
    }

    #[test]
    fn each_missing_service_account_field_is_named() {
        for (field, expected) in [
            ("type", "type must be service_account"),
            ("project_id", "project_id"),
            ("private_key", "private_key"),
            ("client_email", "client_email"),
        ] {
            let mut a = account();
            a.as_object_mut().unwrap().remove(field);
            let e = fcm(&a).unwrap_err().0;
            assert!(e.contains(expected), "{field}: {e}");
            assert!(!e.contains("MIGT"), "no key in an error: {e}");
        }
    }

    #[test]
    fn apns_token_settings_become_their_attributes() {
        let (platform, attributes) = apns(|_| {}).unwrap();
        assert_eq!(platform, SnsPlatform::ApnsSandbox);
        assert_eq!(attributes["PlatformPrincipal"], "ABCDE12345");
        assert_eq!(attributes["ApplePlatformTeamID"], "TEAM123456");
        assert_eq!(attributes["ApplePlatformBundleID"], "com.acme.app");
        let (platform, _) = apns(|v| v["sandbox"] = json!(false)).unwrap();
        assert_eq!(platform, SnsPlatform::Apns);
    }

    #[test]
    fn bad_apns_fields_are_named() {
        let cases: [(&str, Value, &str); 4] = [
            ("signing_key", json!("not a key"), "signing_key"),
            ("key_id", json!("SHORT"), "key_id"),
            ("team_id", json!("TEAM-12345"), "team_id"),
            ("bundle_id", json!("acme"), "bundle_id"),
        ];
        for (field, value, expected) in cases {
            let e = apns(|v| v[field] = value).unwrap_err().0;
            assert!(e.contains(expected), "{field}: {e}");
        }
        let e = apns(|v| v["extra"] = json!(1)).unwrap_err().0;
        assert!(e.contains("extra"), "{e}");
    }
}
