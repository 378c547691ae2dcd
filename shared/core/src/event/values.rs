//! The bounded values an event's detail is made of: amounts, currencies, text, lists, instants
//! and links, each refused with what was expected when it does not fit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A decimal amount as producers send it: `"59.90"` or `59.9`. Kept as text, never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(pub String);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "expected a decimal amount (at most 24 characters) as a string or number";
        let text = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "{EXPECTED}, found {}",
                    kind_of(&other)
                )));
            }
        };
        if text.len() <= 24 && is_decimal(&text) {
            Ok(Amount(text))
        } else {
            Err(serde::de::Error::custom(EXPECTED))
        }
    }
}

pub(crate) fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.chars().all(|c| c.is_ascii_digit())
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An ISO 4217 code: three capital letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(pub String);

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency(s))
        } else {
            Err(serde::de::Error::custom(
                "expected an ISO 4217 currency code (three capital letters)",
            ))
        }
    }
}

/// Non-empty text of at most `MAX` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MAX: usize>(pub String);

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            Err(serde::de::Error::custom("must not be empty"))
        } else if s.chars().count() > MAX {
            Err(serde::de::Error::custom(format!(
                "must be at most {MAX} characters"
            )))
        } else {
            Ok(Text(s))
        }
    }
}

/// A list of at most `MAX` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Bounded<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        if items.len() > MAX {
            return Err(serde::de::Error::custom(format!(
                "must have at most {MAX} entries"
            )));
        }
        Ok(Bounded(items))
    }
}

/// An RFC 3339 instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Instant(t.with_timezone(&Utc)))
            .map_err(|_| {
                serde::de::Error::custom(
                    "expected an RFC 3339 timestamp such as 2026-11-20T10:00:00Z",
                )
            })
    }
}

/// A link: an absolute http or https URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link(pub String);

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Text::<2048>(s) = Text::deserialize(d)?;
        match url::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {
                Ok(Link(s))
            }
            _ => Err(serde::de::Error::custom(
                "expected an absolute http or https URL",
            )),
        }
    }
}
