//! The catalog's filters: amounts and dates in the recipient's language and time zone, each
//! refusing a missing or malformed value with the template's error rather than printing it.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use minijinja::value::Value as JinjaValue;
use minijinja::{ErrorKind, State};

fn filter_error(message: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message)
}

/// Strict mode still hands an undefined value to a filter; refuse it as a missing variable.
fn reject_undefined(value: &JinjaValue) -> Result<(), minijinja::Error> {
    if value.is_undefined() {
        Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "undefined value passed to a filter",
        ))
    } else {
        Ok(())
    }
}

/// The language a filter formats in: French conventions for `fr`, English for any other.
fn state_language(state: &State) -> &'static str {
    let french = state.lookup("locale").is_some_and(|v| {
        v.as_str()
            .and_then(|tag| tag.split('-').next())
            .is_some_and(|language| language.eq_ignore_ascii_case("fr"))
    });
    if french { "fr" } else { "en" }
}

fn state_timezone(state: &State) -> Tz {
    state
        .lookup("timezone")
        .and_then(|v| v.as_str().and_then(|s| s.parse::<Tz>().ok()))
        .unwrap_or(Tz::UTC)
}

/// `{{ amount | money(currency) }}`: a decimal amount in the recipient's language.
pub(super) fn money_filter(
    state: &State,
    value: JinjaValue,
    currency: JinjaValue,
) -> Result<String, minijinja::Error> {
    reject_undefined(&value)?;
    reject_undefined(&currency)?;
    let currency = currency
        .as_str()
        .ok_or_else(|| filter_error(format!("money: {currency} is not a currency code")))?;
    let number;
    let text = match value.as_str() {
        Some(s) => s,
        None if value.is_number() => {
            number = value.to_string();
            &number
        }
        None => return Err(filter_error(format!("money: {value} is not an amount"))),
    };
    format_money(text, currency, state_language(state))
        .ok_or_else(|| filter_error(format!("money: {text:?} is not a decimal amount")))
}

/// Formats a decimal amount without going through floating point.
pub fn format_money(amount: &str, currency: &str, language: &str) -> Option<String> {
    if !crate::event::is_decimal(amount) {
        return None;
    }
    let minor_digits = match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" => 0,
        _ => 2,
    };
    let negative = amount.starts_with('-');
    let digits = amount.trim_start_matches('-');
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    // the amount in minor units, rounded half up at the currency's minor unit
    let minor = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(minor_digits);
    let mut scaled: u128 = 0;
    for digit in whole.bytes().chain(minor) {
        scaled = scaled
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
    }
    let round_up = fraction
        .as_bytes()
        .get(minor_digits)
        .is_some_and(|&c| c >= b'5');
    let scaled = scaled.checked_add(u128::from(round_up))?;
    let divisor = 10u128.pow(minor_digits as u32);
    let (units, cents) = (scaled / divisor, scaled % divisor);
    let french = language == "fr";
    let symbol = match currency {
        "USD" | "CAD" | "AUD" => Some("$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        _ => None,
    };
    let mut out = String::with_capacity(amount.len() + 16);
    if negative && scaled > 0 {
        out.push('-');
    }
    if !french {
        out.push_str(symbol.unwrap_or(currency));
        if symbol.is_none() {
            out.push('\u{a0}');
        }
    }
    let units = units.to_string();
    let group = if french { '\u{202f}' } else { ',' };
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            out.push(group);
        }
        out.push(c);
    }
    if minor_digits > 0 {
        out.push(if french { ',' } else { '.' });
        // writing to a String cannot fail
        let _ = write!(out, "{cents:0minor_digits$}");
    }
    if french {
        out.push('\u{a0}');
        out.push_str(symbol.unwrap_or(currency));
    }
    Some(out)
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

fn parse_instant(value: &JinjaValue) -> Result<DateTime<Utc>, minijinja::Error> {
    reject_undefined(value)?;
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| filter_error(format!("{value} is not an RFC 3339 time")))
}

fn format_date(t: DateTime<Tz>, language: &str) -> String {
    let month = t.month0() as usize;
    if language == "fr" {
        format!("{} {} {}", t.day(), MONTHS_FR[month], t.year())
    } else {
        format!("{} {}, {}", MONTHS_EN[month], t.day(), t.year())
    }
}

/// `{{ ts | date }}`: the date in the recipient's time zone and language.
pub(super) fn date_filter(state: &State, value: JinjaValue) -> Result<String, minijinja::Error> {
    let t = parse_instant(&value)?.with_timezone(&state_timezone(state));
    Ok(format_date(t, state_language(state)))
}

/// `{{ ts | datetime }}`: the date and time in the recipient's time zone and language.
pub(super) fn datetime_filter(
    state: &State,
    value: JinjaValue,
) -> Result<String, minijinja::Error> {
    let language = state_language(state);
    let t = parse_instant(&value)?.with_timezone(&state_timezone(state));
    let zone = t.format("%Z");
    Ok(if language == "fr" {
        format!(
            "{} à {} h {:02} ({zone})",
            format_date(t, language),
            t.hour(),
            t.minute()
        )
    } else {
        let (pm, hour) = t.hour12();
        format!(
            "{} at {}:{:02} {} ({zone})",
            format_date(t, language),
            hour,
            t.minute(),
            if pm { "PM" } else { "AM" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_without_floats() {
        assert_eq!(format_money("59.9", "USD", "en").unwrap(), "$59.90");
        assert_eq!(
            format_money("1234567.891", "EUR", "en").unwrap(),
            "€1,234,567.89"
        );
        assert_eq!(
            format_money("1234.5", "EUR", "fr").unwrap(),
            "1\u{202f}234,50\u{a0}€"
        );
        assert_eq!(format_money("0.005", "USD", "en").unwrap(), "$0.01");
        assert_eq!(format_money("1000", "JPY", "en").unwrap(), "¥1,000");
        assert_eq!(format_money("12", "CHF", "en").unwrap(), "CHF\u{a0}12.00");
        assert_eq!(format_money("-5.25", "GBP", "en").unwrap(), "-£5.25");
        assert_eq!(format_money("-0.001", "USD", "en").unwrap(), "$0.00");
        assert!(format_money("abc", "USD", "en").is_none());
        // more digits than any amount: refused, not wrapped
        assert!(format_money(&"9".repeat(40), "USD", "en").is_none());
    }
}
