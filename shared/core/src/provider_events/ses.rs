//! SES events delivered by SNS over HTTPS: the SNS message's signature, then the SES event.

use std::collections::BTreeMap;

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem};

use super::{AuthError, DeliveryKind, ParseError, ProviderEvent};
use crate::ids::{NotificationId, OrgId};
use crate::model::{ErrorCode, Provider};

/// An SNS message as posted to an HTTPS subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(default, rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl SnsMessage {
    /// The fields every SNS message has.
    const REQUIRED: &[&str] = &[
        "Type",
        "MessageId",
        "TopicArn",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
    ];

    pub fn parse(body: &[u8]) -> Result<SnsMessage, ParseError> {
        serde_json::from_slice(body)
            .map_err(|e| ParseError::json("an SNS message", SnsMessage::REQUIRED, e))
    }

    /// The string SNS signs: the message's fields in their documented order, each as its name,
    /// a newline, its value, a newline.
    pub fn canonical(&self) -> Result<String, AuthError> {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind.as_str() {
            "Notification" => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.extend([
                    ("Timestamp", self.timestamp.as_str()),
                    ("TopicArn", &self.topic_arn),
                    ("Type", &self.kind),
                ]);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let url = self
                    .subscribe_url
                    .as_deref()
                    .ok_or(AuthError::BadSignature)?;
                let token = self.token.as_deref().ok_or(AuthError::BadSignature)?;
                fields.extend([
                    ("SubscribeURL", url),
                    ("Timestamp", self.timestamp.as_str()),
                    ("Token", token),
                    ("TopicArn", &self.topic_arn),
                    ("Type", &self.kind),
                ]);
            }
            _ => return Err(AuthError::BadSignature),
        }
        Ok(fields.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect())
    }
}

/// Whether a URL is SNS's own endpoint in the topic's region: `https://sns.<region>.amazonaws.com`
/// (`.amazonaws.com.cn` in China), where `<region>` is a real region and the `TopicArn`'s, with
/// no user-info, no port and no fragment.
fn sns_endpoint(url: &url::Url, topic_arn: &str) -> bool {
    let Ok(region) = crate::providers::sns_topic_region(topic_arn) else {
        return false;
    };
    let expected = format!("sns.{region}.{}", crate::providers::aws_dns_suffix(region));
    url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && url.fragment().is_none()
        && url.host_str() == Some(expected.as_str())
}

/// Whether a signing certificate may be fetched from this URL: SNS's endpoint in the topic's
/// region (see above), a `.pem` path, no query.
pub fn trusted_cert_url(raw: &str, topic_arn: &str) -> bool {
    let Ok(url) = url::Url::parse(raw) else {
        return false;
    };
    sns_endpoint(&url, topic_arn)
        && url.query().is_none()
        && url.path().len() > "/.pem".len()
        && url.path().ends_with(".pem")
}

/// Whether a SubscribeURL is SNS's ConfirmSubscription in the topic's region.
pub fn trusted_subscribe_url(raw: &str, topic_arn: &str) -> bool {
    let Ok(url) = url::Url::parse(raw) else {
        return false;
    };
    sns_endpoint(&url, topic_arn)
        && url.path() == "/"
        && url
            .query_pairs()
            .any(|(k, v)| k == "Action" && v == "ConfirmSubscription")
}

/// The RSA public key (PKCS#1 DER) of a PEM certificate.
pub fn cert_public_key(pem: &[u8]) -> Result<Vec<u8>, AuthError> {
    let cert = Certificate::from_pem(pem)
        .or_else(|_| Certificate::from_der(pem))
        .map_err(|_| AuthError::BadKey("the signing certificate does not parse"))?;
    Ok(cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec())
}

/// Checks the message's signature with the signing certificate's public key:
/// SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA.
pub fn verify(message: &SnsMessage, public_key: &[u8]) -> Result<(), AuthError> {
    let canonical = message.canonical()?;
    let signature = STANDARD
        .decode(message.signature.trim())
        .map_err(|_| AuthError::BadSignature)?;
    let algorithm = match message.signature_version.as_str() {
        "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "2" => &RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(AuthError::BadSignature),
    };
    UnparsedPublicKey::new(algorithm, public_key)
        .verify(canonical.as_bytes(), &signature)
        .map_err(|_| AuthError::BadSignature)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesEvent {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    notification_type: Option<String>,
    mail: SesMail,
    #[serde(default)]
    bounce: Option<SesBounce>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesMail {
    message_id: String,
    #[serde(default)]
    tags: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: Option<String>,
}

/// An SES event and the organization its tags name.
pub struct SesDelivery {
    pub org: Option<OrgId>,
    pub event: ProviderEvent,
}

/// Parses the SES event inside an SNS notification.
pub fn parse(message: &SnsMessage, now: DateTime<Utc>) -> Result<SesDelivery, ParseError> {
    const REQUIRED: &[&str] = &["mail", "mail.messageId", "bounce.bounceType"];
    let e: SesEvent = serde_json::from_str(&message.message)
        .map_err(|e| ParseError::json("an SES event", REQUIRED, e))?;
    let kind_name = e
        .event_type
        .or(e.notification_type)
        .ok_or(ParseError::Missing("eventType"))?;
    let kind = match kind_name.as_str() {
        "Send" | "DeliveryDelay" | "Rendering Failure" | "Subscription" => DeliveryKind::InTransit,
        "Delivery" => DeliveryKind::Delivered,
        "Bounce" => DeliveryKind::Bounced {
            permanent: e
                .bounce
                .as_ref()
                .is_some_and(|b| b.bounce_type == "Permanent"),
        },
        "Complaint" => DeliveryKind::Complained,
        "Reject" => DeliveryKind::Dropped { suppress: false },
        "Open" => DeliveryKind::Opened,
        "Click" => DeliveryKind::Clicked,
        _ => return Err(ParseError::UnknownType { field: "eventType" }),
    };
    let tag = |name: &str| e.mail.tags.get(name).and_then(|v| v.first()).cloned();
    Ok(SesDelivery {
        org: tag("herald_org_id").and_then(|o| OrgId::parse(o).ok()),
        event: ProviderEvent {
            provider: Provider::Ses,
            event_id: message.message_id.clone(),
            provider_message_id: e.mail.message_id,
            notification_hint: tag("herald_notification_id")
                .and_then(|id| NotificationId::parse(id).ok()),
            kind,
            at: now,
            code: e.bounce.as_ref().and_then(|b| {
                ErrorCode::new(match &b.bounce_sub_type {
                    Some(sub) => format!("{}:{sub}", b.bounce_type),
                    None => b.bounce_type.clone(),
                })
            }),
            reason: e.bounce.map(|b| {
                format!(
                    "{} {}",
                    b.bounce_type,
                    b.bounce_sub_type.unwrap_or_default()
                )
                .trim()
                .to_string()
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &[u8] = include_bytes!("../../../../tests/fixtures/sns-cert.pem");
    const BOUNCE: &str = include_str!("../../../../events/webhooks/ses-bounce-v1.json");

    #[test]
    fn a_sha1_signed_notification_verifies_and_a_changed_byte_does_not() {
        let key = cert_public_key(CERT).unwrap();
        let message = SnsMessage::parse(BOUNCE.as_bytes()).unwrap();
        verify(&message, &key).unwrap();
        let mut changed = message.clone();
        changed.message = changed.message.replacen("Permanent", "Permanenu", 1);
        assert_eq!(verify(&changed, &key), Err(AuthError::BadSignature));
        let mut v2 = message.clone();
        v2.signature_version = "2".into();
        assert_eq!(verify(&v2, &key), Err(AuthError::BadSignature));
        let delivery = parse(&message, Utc::now()).unwrap();
        assert_eq!(delivery.org.unwrap().as_str(), "org_acme");
        assert_eq!(
            delivery.event.kind,
            DeliveryKind::Bounced { permanent: true }
        );
        assert_eq!(
            delivery.event.provider_message_id,
            "0100017c-ses-message-id-0001"
        );
    }

    #[test]
    fn only_sns_certificate_urls_of_the_topics_region_are_trusted() {
        let topic = "arn:aws:sns:us-east-1:123456789012:ses";
        assert!(trusted_cert_url(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            topic
        ));
        assert!(trusted_cert_url(
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
            "arn:aws-cn:sns:cn-north-1:123456789012:ses"
        ));
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://s3.amazonaws.com/x.pem",
            // the S3 bucket named "sns", anyone's
            "https://sns.s3.amazonaws.com/x.pem",
            "https://sns.execute-api.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/?x=.pem",
            "https://user:pw@sns.us-east-1.amazonaws.com/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem#frag",
            "https://sns.us-east-1.amazonaws.com/.pem",
            // another region than the topic's
            "https://sns.eu-west-1.amazonaws.com/x.pem",
            "https://sns.mars-north-1.amazonaws.com/x.pem",
        ] {
            assert!(!trusted_cert_url(bad, topic), "{bad}");
        }
        assert!(!trusted_cert_url(
            "https://sns.us-east-1.amazonaws.com/x.pem",
            "not-an-arn"
        ));
    }

    #[test]
    fn only_sns_subscribe_urls_of_the_topics_region_are_visited() {
        let topic = "arn:aws:sns:eu-west-1:123456789012:ses";
        assert!(trusted_subscribe_url(
            "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t",
            topic
        ));
        for bad in [
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t",
            "https://sns.s3.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.eu-west-1.amazonaws.com/?Action=Publish",
            "https://a@sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.eu-west-1.amazonaws.com/x?Action=ConfirmSubscription",
        ] {
            assert!(!trusted_subscribe_url(bad, topic), "{bad}");
        }
    }
}
