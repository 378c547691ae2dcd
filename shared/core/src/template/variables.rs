//! A notification type's variables: the names its templates may read from the event's context,
//! each with its kind. A built-in type's come from the event contract (its `template.json`
//! declares them, and a test holds them to the contract); an organization's own type declares
//! its own, and its events' contexts are checked against them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    String,
    Number,
    Integer,
    Boolean,
    /// An RFC 3339 instant, as a string (`date` and `datetime` format it).
    Datetime,
    /// A decimal amount, as a string or a number (`money` formats it).
    Amount,
    /// An ISO 4217 currency code.
    Currency,
    List,
    Object,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::String => value.is_string(),
            Kind::Number => value.is_number(),
            Kind::Integer => value.is_i64() || value.is_u64(),
            Kind::Boolean => value.is_boolean(),
            Kind::Datetime => value
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            Kind::Amount => match value {
                Value::Number(_) => true,
                Value::String(s) => s.parse::<f64>().is_ok_and(f64::is_finite) && s.len() <= 24,
                _ => false,
            },
            Kind::Currency => value
                .as_str()
                .is_some_and(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())),
            Kind::List => value.is_array(),
            Kind::Object => value.is_object(),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Integer => "an integer",
            Kind::Boolean => "true or false",
            Kind::Datetime => "an RFC 3339 date and time",
            Kind::Amount => "a decimal amount (a string or a number)",
            Kind::Currency => "a three-letter ISO 4217 currency code",
            Kind::List => "a list",
            Kind::Object => "an object",
        }
    }
}

/// One variable of a type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(default = "required_by_default")]
    pub required: bool,
}

fn required_by_default() -> bool {
    true
}

/// The most variables a type may declare.
pub const MAX_VARIABLES: usize = 50;

/// The names every template may read beside its type's variables.
pub const ALWAYS_THERE: [&str; 2] = ["locale", "timezone"];

/// A variable's name: a lower-case identifier a template can write bare.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !starts || !rest || name.len() > 64 {
        return Err(format!(
            "{name:?} must be a lower-case identifier of at most 64 characters (a-z, 0-9, _)"
        ));
    }
    if ALWAYS_THERE.contains(&name) || matches!(name, "loop" | "true" | "false" | "none") {
        return Err(format!("{name:?} is a name every template already has"));
    }
    Ok(())
}

/// Checks a context against a type's variables: each required one present, each present one
/// of its kind, nothing undeclared. The error names the field under `at` (`detail.context`).
pub fn check_context(
    variables: &BTreeMap<String, Variable>,
    context: &Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    for (name, variable) in variables {
        match context.get(name) {
            None | Some(Value::Null) if variable.required => {
                return Err(format!("{at}.{name} is missing"));
            }
            None | Some(Value::Null) => {}
            Some(value) if !variable.kind.accepts(value) => {
                return Err(format!(
                    "{at}.{name}: expected {}",
                    variable.kind.expected()
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(name) = context.keys().find(|k| !variables.contains_key(*k)) {
        return Err(format!(
            "{at}.{name}: not a variable of this notification type"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars() -> BTreeMap<String, Variable> {
        serde_json::from_value(json!({
            "plan": {"type": "string"}, "renews_at": {"type": "datetime"},
            "price": {"type": "amount"}, "note": {"type": "string", "required": false}
        }))
        .unwrap()
    }

    #[test]
    fn a_context_is_checked_field_by_field() {
        let ok = json!({"plan": "pro", "renews_at": "2026-12-01T00:00:00Z", "price": "9.90"});
        assert_eq!(
            check_context(&vars(), ok.as_object().unwrap(), "detail.context"),
            Ok(())
        );
        for (context, error) in [
            (
                json!({"renews_at": "2026-12-01T00:00:00Z", "price": 9}),
                "detail.context.plan is missing",
            ),
            (
                json!({"plan": "pro", "renews_at": "soon", "price": 9}),
                "detail.context.renews_at: expected an RFC 3339 date and time",
            ),
            (
                json!({"plan": "pro", "renews_at": "2026-12-01T00:00:00Z", "price": 9, "x": 1}),
                "detail.context.x: not a variable of this notification type",
            ),
        ] {
            assert_eq!(
                check_context(&vars(), context.as_object().unwrap(), "detail.context"),
                Err(error.to_string())
            );
        }
    }

    #[test]
    fn names_are_identifiers_a_template_can_write() {
        assert!(check_name("renews_at").is_ok());
        for bad in ["Renews", "1st", "a-b", "locale", "loop", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
