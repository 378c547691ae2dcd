//! Reading an event's detail: every refusal names the event's detail-type and the field, and
//! never quotes the value (which may be personal data).

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{EventError, FUTURE_LIMIT, PAST_LIMIT, SHOWN_LIMIT};
use crate::json::without_value;

/// Reads one event's detail as seen at `now` (Herald's clock bounds the instants it carries).
pub(super) struct Reader<'a> {
    pub(super) detail_type: &'a str,
    pub(super) now: DateTime<Utc>,
}

impl Reader<'_> {
    /// Reads `value` as a `T`; `prefix` locates it in the detail (`detail.context`).
    pub(super) fn at<T: DeserializeOwned>(
        &self,
        prefix: &str,
        value: &Value,
    ) -> Result<T, EventError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let missing = inner
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'));
            self.invalid(match missing {
                Some(field) => format!("{} is missing", field_path(prefix, &path, Some(field))),
                None => format!(
                    "{}: {}",
                    field_path(prefix, &path, None),
                    without_value(&inner)
                ),
            })
        })
    }

    /// Reads the whole detail as a `T`.
    pub(super) fn detail<T: DeserializeOwned>(&self, detail: &Value) -> Result<T, EventError> {
        self.at("detail", detail)
    }

    pub(super) fn invalid(&self, message: String) -> EventError {
        EventError::InvalidDetail {
            detail_type: self.detail_type.to_string(),
            message,
        }
    }

    /// Refuses an instant that schedules a send outside `now - PAST_LIMIT ..= now +
    /// FUTURE_LIMIT`, naming the field.
    pub(super) fn plausible(
        &self,
        field: &str,
        t: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, EventError> {
        self.within(field, t, PAST_LIMIT, FUTURE_LIMIT)
    }

    /// Refuses an instant that is only shown further than `SHOWN_LIMIT` from now.
    pub(super) fn shown(&self, field: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, EventError> {
        self.within(field, t, SHOWN_LIMIT, SHOWN_LIMIT)
    }

    fn within(
        &self,
        field: &str,
        t: DateTime<Utc>,
        past: Duration,
        future: Duration,
    ) -> Result<DateTime<Utc>, EventError> {
        if t < self.now - past || t > self.now + future {
            return Err(self.invalid(format!(
                "{field} must lie between {} days before and {} days after now",
                past.num_days(),
                future.num_days()
            )));
        }
        Ok(t)
    }
}

/// Where in the detail a field sits: `detail.items[0].unit_price`.
fn field_path(prefix: &str, path: &str, field: Option<&str>) -> String {
    let mut out = prefix.to_string();
    if path != "." {
        if !path.starts_with('[') {
            out.push('.');
        }
        out.push_str(path);
    }
    if let Some(field) = field {
        out.push('.');
        out.push_str(field);
    }
    out
}

/// Null means absent: drops null members of every object, at any depth.
pub(super) fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}
