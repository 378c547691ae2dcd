//! Validated values: everything that enters Herald is parsed into one of these at the edge,
//! so the rest of the core never handles a raw string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// Why a value was refused at the edge. The message names the field's rule, never its value
/// when the value may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Identifiers are short, printable and safe to use inside storage keys (no `#`, no spaces).
fn check_identifier(kind: &str, value: &str) -> Result<(), InvalidValue> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(InvalidValue(format!(
            "{kind} must be 1 to 128 characters of letters, digits, '_', '-', '.', ':' or '@'"
        )))
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value = value.into();
                check_identifier($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// An organization (tenant). Every record and key carries one.
    OrgId,
    "organization_id"
);
identifier!(
    /// A customer of an organization, as the producing domains name them.
    CustomerId,
    "customer_id"
);
identifier!(
    /// A notification's id: derived from its business identity, so the same fact gets the same id.
    NotificationId,
    "notification_id"
);
identifier!(
    /// The producer's key that makes an event's notifications unique (order id, refund id, ...).
    BusinessKey,
    "business key"
);

/// A notification type: a folder in the template catalog (`order_confirmation`, `reminder`, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NotificationType(String);

impl NotificationType {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidValue(
                "notification_type must be snake_case letters and digits".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NotificationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NotificationType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An email address with a plausible shape: one `@`, a non-empty local part, a dotted domain,
/// no whitespace. Deliverability is the provider's to judge.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into().trim().to_string();
        let invalid = || InvalidValue("email is not a valid email address".into());
        if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Addresses are personal data: debug output shows only the domain.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.rsplit_once('@').map_or("", |(_, d)| d);
        write!(f, "EmailAddress(***@{domain})")
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A phone number in E.164: `+`, a country code that does not start with 0, 8 to 15 digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        let digits = value.strip_prefix('+').unwrap_or("");
        let ok = (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidValue(
                "phone must be in E.164 form: + then 8 to 15 digits".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = &self.0[self.0.len().saturating_sub(2)..];
        write!(f, "PhoneNumber(+***{tail})")
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A BCP 47 language tag, kept as given (`fr-CA`); the catalog falls back `fr-CA` → `fr` → `en`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Locale(String);

impl Locale {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        let mut parts = value.split(['-', '_']);
        let language_ok = parts.next().is_some_and(|l| {
            (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic())
        });
        let rest_ok = parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if language_ok && rest_ok {
            Ok(Self(value.replace('_', "-")))
        } else {
            Err(InvalidValue(
                "locale must be a BCP 47 tag such as en or fr-CA".into(),
            ))
        }
    }

    pub fn english() -> Self {
        Self("en".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language part, lower-cased (`fr-CA` → `fr`).
    pub fn language(&self) -> String {
        self.0
            .split('-')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    /// The tags to try, most specific first, always ending in `en`.
    pub fn fallbacks(&self) -> Vec<String> {
        self.chain(None)
    }

    /// The tags to try for a recipient of this locale in an organization whose default is
    /// `then`: `fr-CA` → `fr` → the organization's (`de-AT` → `de`) → `en`, each once.
    pub fn chain(&self, then: Option<&Locale>) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(5);
        let tags = [Some(self), then]
            .into_iter()
            .flatten()
            .flat_map(|l| [l.0.clone(), l.language()])
            .chain(["en".to_string()]);
        for tag in tags {
            if !out.contains(&tag) {
                out.push(tag);
            }
        }
        out
    }
}

impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A Twilio Content SID, the id of a pre-approved message template: `HX` and 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ContentSid(String);

impl ContentSid {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        let ok = value.len() == 34
            && value.starts_with("HX")
            && value[2..].chars().all(|c| c.is_ascii_hexdigit());
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidValue(
                "content_sid must be HX followed by 32 hex digits".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ContentSid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_sids_are_hx_and_32_hex_digits() {
        assert!(ContentSid::parse("HX0123456789abcdef0123456789ABCDEF").is_ok());
        for bad in [
            "",
            "HX0123",
            "AC0123456789abcdef0123456789abcdef",
            "HX0123456789abcdef0123456789abcdeg",
            "HX0123456789abcdef0123456789abcdef0",
        ] {
            assert!(ContentSid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_refuse_key_separators_and_empty_values() {
        assert!(OrgId::parse("org_acme").is_ok());
        assert!(OrgId::parse("").is_err());
        assert!(OrgId::parse("org#1").is_err());
        assert!(CustomerId::parse("cus alice").is_err());
    }

    #[test]
    fn email_addresses_need_a_local_part_and_a_dotted_domain() {
        assert!(EmailAddress::parse("alice@example.com").is_ok());
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@exa..mple.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn debug_output_hides_addresses() {
        let email = EmailAddress::parse("alice@example.com").unwrap();
        assert_eq!(format!("{email:?}"), "EmailAddress(***@example.com)");
        let phone = PhoneNumber::parse("+14155550101").unwrap();
        assert!(!format!("{phone:?}").contains("4155550"));
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(PhoneNumber::parse("+14155550101").is_ok());
        for bad in [
            "14155550101",
            "+1",
            "+0123456789",
            "+1415555010a",
            "+1234567890123456",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn locales_fall_back_to_language_then_english() {
        let fr_ca = Locale::parse("fr-CA").unwrap();
        assert_eq!(fr_ca.fallbacks(), vec!["fr-CA", "fr", "en"]);
        assert_eq!(Locale::parse("en").unwrap().fallbacks(), vec!["en"]);
        assert_eq!(Locale::parse("pt_BR").unwrap().as_str(), "pt-BR");
        assert!(Locale::parse("french!").is_err());
    }
}
