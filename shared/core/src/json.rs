//! Reading JSON from outside (an api body, provider settings): a refusal says where, as a path
//! (`channels.email`, `sns_topic_arns[2]`), and what was expected, never the value it found
//! (which may be personal data or a credential). And the size a value takes as JSON, for the
//! bounds put on what is accepted and stored.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

/// Why JSON was refused: the path and what was expected (`channels.email: expected a boolean,
/// found string`), or the missing field (`quiet_hours.end is missing`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The size of a value as JSON, counted without keeping the bytes (`usize::MAX` for a value
/// that does not serialize, so any bound refuses it).
pub fn size(value: &impl Serialize) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// Reads a body as a `T`; nothing but whitespace may follow the value.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(refusal)?;
    reader
        .end()
        .map_err(|e| Refusal(without_value(&without_position(&e))))?;
    Ok(value)
}

/// Reads a JSON value as a `T`.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, Refusal> {
    serde_path_to_error::deserialize(value).map_err(refusal)
}

fn refusal(e: serde_path_to_error::Error<serde_json::Error>) -> Refusal {
    let path = e.path().to_string();
    let inner = without_position(e.inner());
    let at = |what: &str| match path.as_str() {
        "." => what.to_string(),
        _ => format!("{path}.{what}"),
    };
    // serde's message for a field of ours: the name is ours, never the body's
    if let Some((field, _)) = inner
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        return Refusal(format!("{} is missing", at(field)));
    }
    let message = without_value(&inner);
    Refusal(match path.as_str() {
        "." => message,
        _ => format!("{path}: {message}"),
    })
}

/// serde_json's message without the position it appends (the path says where).
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&position) {
        Some(rest) if e.line() > 0 => rest.to_string(),
        _ => message,
    }
}

/// serde's own messages quote the value they refused; keep what was expected and the kind of
/// what was found, never the value itself.
pub fn without_value(message: &str) -> String {
    let kind = |found: &str| {
        found
            .split(['`', '"'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            return if prefix == "invalid type: " {
                format!("expected {expected}, found {}", kind(found))
            } else {
                format!("expected {expected}")
            };
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        channels: BTreeMap<String, bool>,
        start: Option<u8>,
    }

    #[test]
    fn a_size_is_the_length_of_the_json_written() {
        let value = serde_json::json!({"name": "Zoë \"Z\"", "items": [1, 2.5, null], "ok": true});
        assert_eq!(size(&value), serde_json::to_vec(&value).unwrap().len());
        assert_eq!(size(&""), 2);
        // a map with keys JSON cannot hold does not serialize: no bound lets it through
        let unkeyed: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert_eq!(size(&unkeyed), usize::MAX);
    }

    #[test]
    fn a_refusal_names_the_path_and_never_the_value() {
        let err =
            from_slice::<Body>(br#"{"channels": {"email": "carol@example.com"}}"#).unwrap_err();
        assert_eq!(err.0, "channels.email: expected a boolean, found string");
        let err = from_slice::<Body>(br#"{"channels": {}, "start": 4155550101}"#).unwrap_err();
        assert_eq!(err.0, "start: expected u8");
        let err = from_value::<Body>(&serde_json::json!({})).unwrap_err();
        assert_eq!(err.0, "channels is missing");
        let err = from_slice::<Body>(br#""carol@example.com""#).unwrap_err();
        assert_eq!(err.0, "expected struct Body, found string");
        let err = from_slice::<Body>(br#"{"channels": {}} x"#).unwrap_err();
        assert_eq!(err.0, "trailing characters");
    }
}
