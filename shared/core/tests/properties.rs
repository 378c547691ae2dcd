#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! Properties of every parser of outside input in the core: the event contract (an EventBridge
//! event's envelope and each detail-type's detail, as intake reads them) and the three webhook
//! bodies (SendGrid's event array, Twilio's status form, SES over SNS). Whatever arrives, they
//! never panic; a refusal names the field that was wrong and never quotes a value.
//!
//! Every string value the strategies make carries [`SECRET`], so that an error quoting a value
//! shows.

use std::path::PathBuf;
use std::sync::LazyLock;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

use herald_core::event::{EventEnvelope, EventError, IncomingEvent};
use herald_core::model::Provider;
use herald_core::provider_events::ses::{self, SnsMessage};
use herald_core::provider_events::{ParseError, sendgrid, twilio};

/// Cases per property: enough to walk every sample's fields, few enough for a debug build to
/// run the whole file in seconds.
const CASES: u32 = 256;

/// In every string value the strategies make; no error text may contain it.
const SECRET: &str = "Zq7";

/// The detail-types of the contract, and one it does not have.
const DETAIL_TYPES: &[&str] = &[
    "CustomerContactChanged",
    "NotificationPreferencesChanged",
    "DeviceRegistered",
    "DeviceUnregistered",
    "OrganizationSettingsChanged",
    "OrderCreated",
    "OrderDelivered",
    "RefundIssued",
    "ChargebackOpened",
    "TicketPurchased",
    "ReminderDue",
    "NotificationRequested",
    "InvoicePainted",
];

/// Field names the parsers read, so that arbitrary objects reach past the first missing field.
const FIELDS: &[&str] = &[
    "organization_id",
    "customer_id",
    "email",
    "phone",
    "whatsapp",
    "locale",
    "timezone",
    "channels",
    "unsubscribed",
    "quiet_hours",
    "start",
    "end",
    "platform",
    "token",
    "operations_email",
    "default_locale",
    "sender_email",
    "sms_max_segments",
    "order_id",
    "grand_total",
    "currency",
    "items",
    "sku",
    "name",
    "quantity",
    "unit_price",
    "created_at",
    "delivered_at",
    "refund_id",
    "amount",
    "chargeback_id",
    "reason",
    "ticket_id",
    "event_name",
    "starts_at",
    "seats",
    "reminder_id",
    "severity",
    "title",
    "body",
    "action_url",
    "idempotency_key",
    "notification_type",
    "context",
    "scheduled_for",
    "critical",
    // the webhooks'
    "event",
    "sg_event_id",
    "sg_message_id",
    "timestamp",
    "type",
    "herald_notification_id",
    "eventType",
    "notificationType",
    "mail",
    "messageId",
    "tags",
    "bounce",
    "bounceType",
    "bounceSubType",
];

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

fn repository(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The intake samples (`events/intake/*.json`) as EventBridge delivers them.
static SAMPLES: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repository("events/intake"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect()
});

/// The samples meant to be refused start with 9 (`90-rejected-…`).
fn meant_to_parse(name: &str) -> bool {
    !name.starts_with('9')
}

/// The envelope intake makes of a raw event (`herald_intake::envelope`, which the core cannot
/// depend on).
fn envelope_of(raw: &Value) -> EventEnvelope {
    EventEnvelope {
        id: raw["id"].as_str().unwrap_or_default().to_string(),
        detail_type: raw["detail-type"].as_str().unwrap_or_default().to_string(),
        source: raw["source"].as_str().unwrap_or_default().to_string(),
        time: raw["time"].as_str().map(|t| t.parse().unwrap()),
        detail: raw["detail"].clone(),
    }
}

/// Herald's clock for a sample: a little after the sample was published.
fn now_for(envelope: &EventEnvelope) -> DateTime<Utc> {
    envelope.time.unwrap() + Duration::seconds(30)
}

/// A step into a JSON value.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every place in `value` (its own place excluded), as steps from it.
fn places(value: &Value) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    let mut walk = |children: Vec<(Step, &Value)>| {
        for (step, child) in children {
            out.push(vec![step.clone()]);
            for mut rest in places(child) {
                rest.insert(0, step.clone());
                out.push(rest);
            }
        }
    };
    match value {
        Value::Object(map) => walk(map.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect()),
        Value::Array(items) => walk(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (Step::Index(i), v))
                .collect(),
        ),
        _ => {}
    }
    out
}

/// How the contract's messages write a place: `detail.items[0].unit_price`.
fn written(prefix: &str, place: &[Step]) -> String {
    let mut out = prefix.to_string();
    for step in place {
        match step {
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn at_mut<'a>(value: &'a mut Value, place: &[Step]) -> &'a mut Value {
    place.iter().fold(value, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// What a mutation does to one place of a sample.
#[derive(Clone)]
enum Mutation {
    Drop,
    Replace(Value),
}

/// Short enough for a failure message: a huge string or deep nesting is summarized.
impl std::fmt::Debug for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mutation::Drop => f.write_str("Drop"),
            Mutation::Replace(v) => {
                let text = v.to_string();
                match text.char_indices().nth(80) {
                    Some((cut, _)) => write!(f, "Replace({}… {} bytes)", &text[..cut], text.len()),
                    None => write!(f, "Replace({text})"),
                }
            }
        }
    }
}

fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// `[[[…]]]`, as deep as a JSON body may nest when the Lambda runtime reads it (serde_json's
/// limit is 128).
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(SECRET), |inner, _| Value::Array(vec![inner]))
}

/// Values of every type, a huge string, numbers and dates out of bounds (deep nesting is
/// added by [`replacement`]).
fn replacements() -> Vec<Value> {
    vec![
        json!(true),
        json!(12345),
        json!(-1),
        json!(0),
        json!(2.5),
        json!(1e300),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(4_294_967_296_u64),
        json!(format!("{SECRET} carol@example.com +14155550101")),
        json!(SECRET),
        json!(""),
        json!("   "),
        json!([]),
        json!([format!("{SECRET}a")]),
        json!({}),
        json!({"k": format!("{SECRET}v")}),
        json!(format!("{SECRET}{}", "x".repeat(20_000))),
        nested(120),
        json!("9999-12-31T23:59:59Z"),
        json!("0001-01-01T00:00:00Z"),
        json!("1970-01-01T00:00:00Z"),
        json!("2026-13-01T00:00:00Z"),
        json!("2026-11-20T25:00:00Z"),
        json!("2026-11-20"),
        json!("+262143-12-31T23:59:59Z"),
    ]
}

/// One of [`replacements`], or nesting of any depth up to the limit.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(replacements()),
        1 => (1usize..=120).prop_map(nested),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::Drop),
        4 => replacement().prop_map(Mutation::Replace),
    ]
}

/// Applies `mutation` at `place`; `false` when it changes nothing.
fn mutate(detail: &mut Value, place: &[Step], mutation: &Mutation) -> bool {
    let (last, parent) = place.split_last().unwrap();
    match mutation {
        Mutation::Drop => match (at_mut(detail, parent), last) {
            (Value::Object(map), Step::Key(k)) => map.remove(k).is_some(),
            (Value::Array(items), Step::Index(i)) => {
                items.remove(*i);
                true
            }
            _ => false,
        },
        Mutation::Replace(value) => {
            let target = at_mut(detail, place);
            if kind(target) == kind(value) && value.as_str().is_none_or(|s| !s.contains(SECRET)) {
                // a date or number of the same type: still a change unless equal
                if target == value {
                    return false;
                }
            }
            *target = value.clone();
            true
        }
    }
}

/// The text of a refusal, checked for what every refusal must hold: no value quoted.
fn refusal(e: &EventError) -> String {
    let text = e.to_string();
    assert!(!text.contains(SECRET), "a refusal quotes a value: {text}");
    text
}

/// Arbitrary JSON, with the parsers' field names among the keys and [`SECRET`] in every
/// string.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,16}".prop_map(|s| Value::String(format!("{SECRET}{s}"))),
        "\\PC{0,8}".prop_map(|s| Value::String(format!("{SECRET}{s}"))),
        replacement(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..10)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
    ]
}

/// An arbitrary object, usually of a valid organization so that the detail-type's own fields
/// are read.
fn any_detail() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(key(), any_json(), 0..14),
        any::<bool>(),
    )
        .prop_map(|(fields, with_org)| {
            let mut map: Map<String, Value> = fields.into_iter().collect();
            if with_org {
                map.insert("organization_id".into(), json!("org_acme"));
            }
            Value::Object(map)
        })
}

fn now() -> DateTime<Utc> {
    "2026-11-20T10:00:30Z".parse().unwrap()
}

/// Checks that a sample mutated at `place` parses, or is refused by the name of that place.
fn refused_by_name(
    name: &str,
    envelope: &EventEnvelope,
    now: DateTime<Utc>,
    place: &[Step],
    mutation: &Mutation,
) {
    if let Err(e) = IncomingEvent::parse(envelope, now) {
        let text = refusal(&e);
        let field = written("detail", place);
        // a context is also bounded as a whole
        let context_bound = place.first() == Some(&Step::Key("context".into()))
            && text.starts_with("detail.context must be at most");
        assert!(
            text.contains(&field) || context_bound,
            "{name}: {mutation:?} at {field} was refused as {text:?}"
        );
    }
}

/// Every place of every sample, dropped and replaced by each of [`replacements`]: what the
/// property below samples, walked whole.
#[test]
fn every_place_of_every_sample_mutated_is_refused_by_its_name() {
    let mutations: Vec<Mutation> = std::iter::once(Mutation::Drop)
        .chain(replacements().into_iter().map(Mutation::Replace))
        .collect();
    for (name, raw) in SAMPLES.iter().filter(|(name, _)| meant_to_parse(name)) {
        let original = envelope_of(raw);
        let now = now_for(&original);
        for place in places(&original.detail) {
            for mutation in &mutations {
                let mut envelope = original.clone();
                if mutate(&mut envelope.detail, &place, mutation) {
                    refused_by_name(name, &envelope, now, &place, mutation);
                }
            }
        }
    }
}

#[test]
fn every_sample_meant_to_parse_parses_and_the_others_name_their_field() {
    for (name, raw) in SAMPLES.iter() {
        let envelope = envelope_of(raw);
        let result = IncomingEvent::parse(&envelope, now_for(&envelope));
        if meant_to_parse(name) {
            assert!(result.is_ok(), "{name}: {result:?}");
        } else {
            let err = result.unwrap_err();
            let text = refusal(&err);
            assert!(
                text.contains("detail") || matches!(err, EventError::UnknownDetailType(_)),
                "{name}: {text}"
            );
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A sample with one field dropped, of another type, huge, deeply nested, or a number or
    /// date out of bounds: parsed or refused by the name of that field (or, for an instant,
    /// the name of the one computed from it).
    #[test]
    fn a_mutated_sample_is_refused_by_the_name_of_what_changed(
        sample in prop::sample::select((0..SAMPLES.len()).collect::<Vec<_>>()),
        which in any::<Index>(),
        mutation in mutation(),
    ) {
        let (name, raw) = &SAMPLES[sample];
        prop_assume!(meant_to_parse(name));
        let mut envelope = envelope_of(raw);
        let now = now_for(&envelope);
        let all = places(&envelope.detail);
        let place = &all[which.index(all.len())];
        prop_assume!(mutate(&mut envelope.detail, place, &mutation));
        refused_by_name(name, &envelope, now, place, &mutation);
    }

    /// An envelope's time anywhere: a directory event from the future is refused by the name
    /// `time`; anything else is read as if it were now.
    #[test]
    fn an_envelope_time_out_of_bounds_is_named(
        sample in prop::sample::select((0..SAMPLES.len()).collect::<Vec<_>>()),
        seconds in prop_oneof![
            Just(i64::from(i32::MAX) * 100),
            Just(-i64::from(i32::MAX) * 100),
            -10_000_000_000_i64..10_000_000_000,
        ],
    ) {
        let (name, raw) = &SAMPLES[sample];
        prop_assume!(meant_to_parse(name));
        let mut envelope = envelope_of(raw);
        let now = now_for(&envelope);
        envelope.time = DateTime::from_timestamp(seconds, 0);
        if let Err(e) = IncomingEvent::parse(&envelope, now) {
            let text = refusal(&e);
            prop_assert!(text.starts_with("time "), "{name}: {text}");
            prop_assert!(envelope.time.unwrap() > now);
        }
    }

    /// Any detail under any detail-type: parsed, or refused with a reason that says where.
    #[test]
    fn any_detail_is_parsed_or_refused_by_field(
        detail_type in prop::sample::select(DETAIL_TYPES),
        detail in prop_oneof![1 => any_json(), 6 => any_detail()],
    ) {
        let envelope = EventEnvelope {
            id: "evt-1".into(),
            detail_type: detail_type.into(),
            source: "ordering".into(),
            time: Some(now()),
            detail,
        };
        match IncomingEvent::parse(&envelope, now()) {
            Ok(_) => {}
            Err(e) => {
                let text = refusal(&e);
                match &e {
                    EventError::UnknownDetailType(t) => prop_assert_eq!(t.as_str(), "InvoicePainted"),
                    EventError::InvalidDetail { message, .. } => {
                        prop_assert!(message.starts_with("detail."), "{}", message)
                    }
                    _ => prop_assert!(text.starts_with("detail"), "{}", text),
                }
            }
        }
    }
}

// ---- the webhooks ----

const SES_BOUNCE: &str = include_str!("../../../events/webhooks/ses-bounce-v1.json");

/// The fields of a SendGrid event without which Herald cannot use it.
const SENDGRID_REQUIRED: &[&str] = &["event", "sg_event_id", "sg_message_id", "timestamp"];

/// An SNS message's fields that every type has.
const SNS_REQUIRED: &[&str] = &[
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
];

fn sendgrid_event() -> impl Strategy<Value = Value> {
    let event = prop_oneof![
        prop::sample::select(
            &[
                "processed",
                "deferred",
                "delivered",
                "bounce",
                "dropped",
                "open",
                "click",
                "spamreport",
                "unsubscribe",
                "group_unsubscribe",
                "group_resubscribe",
                "account_status_change",
            ][..]
        )
        .prop_map(Value::from),
        any_json(),
    ];
    (
        event,
        prop_oneof!["[a-zA-Z0-9.]{0,24}".prop_map(Value::from), any_json()],
        prop_oneof!["[a-zA-Z0-9.]{0,40}".prop_map(Value::from), any_json()],
        prop_oneof![any::<i64>().prop_map(Value::from), any_json()],
        prop::collection::btree_map(key(), any_json(), 0..4),
        prop::collection::vec(prop::sample::select(SENDGRID_REQUIRED), 0..2),
    )
        .prop_map(
            |(event, sg_event_id, sg_message_id, timestamp, extra, dropped)| {
                let mut map: Map<String, Value> = extra.into_iter().collect();
                map.insert("event".into(), event);
                map.insert("sg_event_id".into(), sg_event_id);
                map.insert("sg_message_id".into(), sg_message_id);
                map.insert("timestamp".into(), timestamp);
                for field in dropped {
                    map.remove(field);
                }
                Value::Object(map)
            },
        )
}

/// Pairs as a form may carry them: the status callback's names, repeated, empty or not.
fn form_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        prop::sample::select(
            &[
                "MessageSid",
                "MessageStatus",
                "ErrorCode",
                "AccountSid",
                "To"
            ][..]
        )
        .prop_map(str::to_string),
        "\\PC{0,12}",
    ];
    let value = prop_oneof![
        prop::sample::select(
            &[
                "delivered",
                "sent",
                "undelivered",
                "failed",
                "read",
                "21610",
                "63016",
                ""
            ][..]
        )
        .prop_map(str::to_string),
        "[0-9]{0,12}",
        "\\PC{0,40}",
    ];
    prop::collection::vec((name, value), 0..8)
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes: an array's elements are each used or counted as ignored; anything else is
    /// refused as not an event array, without quoting it.
    #[test]
    fn sendgrid_any_bytes_are_parsed_or_refused_as_a_shape(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any_json().prop_map(|v| v.to_string().into_bytes()),
    ]) {
        match sendgrid::parse(&body) {
            Ok(batch) => {
                let elements = serde_json::from_slice::<Vec<Value>>(&body).unwrap().len();
                prop_assert_eq!(batch.events.len() + batch.ignored, elements);
            }
            Err(e) => {
                let is_shape = matches!(e, ParseError::Shape { what: "a SendGrid event array", .. });
                prop_assert!(is_shape, "{:?}", e);
                prop_assert!(!e.to_string().contains(SECRET), "{}", e);
                prop_assert!(serde_json::from_slice::<Vec<Value>>(&body).is_err());
            }
        }
    }

    /// An array of events, some without what Herald needs: those are ignored, the others used.
    #[test]
    fn sendgrid_events_without_a_required_field_are_ignored(
        events in prop::collection::vec(sendgrid_event(), 0..8)
    ) {
        let body = serde_json::to_vec(&events).unwrap();
        let batch = sendgrid::parse(&body).unwrap();
        prop_assert_eq!(batch.events.len() + batch.ignored, events.len());
        let incomplete = events
            .iter()
            .filter(|e| SENDGRID_REQUIRED.iter().any(|f| e.get(f).is_none()))
            .count();
        prop_assert!(batch.ignored >= incomplete);
        for e in &batch.events {
            prop_assert!(!e.provider_message_id.is_empty() && !e.event_id.is_empty());
        }
    }

    /// Any form: a status without a `MessageSid` or a `MessageStatus` is refused by that name,
    /// an `ErrorCode` that is not a number by that name, anything else is used.
    #[test]
    fn twilio_any_form_is_parsed_or_refused_by_field(pairs in form_pairs()) {
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let result = twilio::parse(&pairs, now());
        match (first("MessageSid"), first("MessageStatus"), first("ErrorCode")) {
            (None, _, _) => prop_assert_eq!(result.unwrap_err(), ParseError::Missing("MessageSid")),
            (_, None, _) => prop_assert_eq!(result.unwrap_err(), ParseError::Missing("MessageStatus")),
            (_, _, Some(code)) if code.parse::<u32>().is_err() => {
                prop_assert_eq!(result.unwrap_err(), ParseError::NotANumber("ErrorCode"))
            }
            (Some(sid), Some(_), _) => prop_assert_eq!(result.unwrap().provider_message_id, sid),
        }
    }

    /// Any bytes as an SNS message: parsed, or refused without quoting them.
    #[test]
    fn sns_any_bytes_are_parsed_or_refused_without_quoting(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any_json().prop_map(|v| v.to_string().into_bytes()),
    ]) {
        if let Err(e) = SnsMessage::parse(&body) {
            prop_assert!(!e.to_string().contains(SECRET), "{}", e);
        }
    }

    /// The sample SNS message without one of its required fields is refused by that field's
    /// name; with any other change it parses or is refused as a shape.
    #[test]
    fn sns_a_missing_field_is_named(
        field in prop::sample::select(SNS_REQUIRED),
        which in any::<Index>(),
        replacement in replacement(),
    ) {
        let sample: Value = serde_json::from_str(SES_BOUNCE).unwrap();
        let mut without = sample.clone();
        without.as_object_mut().unwrap().remove(field);
        let err = SnsMessage::parse(&serde_json::to_vec(&without).unwrap()).unwrap_err();
        prop_assert_eq!(err, ParseError::Missing(field));

        let mut changed = sample;
        let map = changed.as_object_mut().unwrap();
        let key = map.keys().nth(which.index(map.len())).unwrap().clone();
        map.insert(key.clone(), replacement);
        if let Err(e) = SnsMessage::parse(&serde_json::to_vec(&changed).unwrap()) {
            prop_assert!(!e.to_string().contains(SECRET), "{}", e);
            let is_shape = matches!(e, ParseError::Shape { .. });
            prop_assert!(is_shape, "{} at {}: {:?}", key, key, e);
        }
    }

    /// The SES event inside: any JSON, or the sample's with one place dropped or changed, is
    /// parsed, or refused by the missing field's name, or as a shape, never quoting it.
    #[test]
    fn ses_any_event_is_parsed_or_refused_by_field(
        message in prop_oneof![
            any_json(),
            (any::<Index>(), mutation()).prop_map(|(which, mutation)| {
                let sample: Value = serde_json::from_str(SES_BOUNCE).unwrap();
                let mut event: Value = serde_json::from_str(sample["Message"].as_str().unwrap()).unwrap();
                let all = places(&event);
                let place = all[which.index(all.len())].clone();
                mutate(&mut event, &place, &mutation);
                event
            }),
        ],
    ) {
        let mut sns = SnsMessage::parse(SES_BOUNCE.as_bytes()).unwrap();
        sns.message = message.to_string();
        match ses::parse(&sns, now()) {
            Ok(delivery) => prop_assert_eq!(delivery.event.provider, Provider::Ses),
            Err(ParseError::Missing(field)) => {
                let absent = match field {
                    "mail" => message.get("mail").is_none(),
                    "mail.messageId" => message["mail"].get("messageId").is_none(),
                    "bounce.bounceType" => message["bounce"].get("bounceType").is_none(),
                    "eventType" => message.get("eventType").is_none() && message.get("notificationType").is_none(),
                    _ => false,
                };
                prop_assert!(absent, "{} is there: {}", field, message);
            }
            Err(e) => prop_assert!(!e.to_string().contains(SECRET), "{}", e),
        }
    }
}

#[test]
fn ses_events_without_a_required_field_name_it() {
    let sample: Value = serde_json::from_str(SES_BOUNCE).unwrap();
    let event: Value = serde_json::from_str(sample["Message"].as_str().unwrap()).unwrap();
    let mut sns = SnsMessage::parse(SES_BOUNCE.as_bytes()).unwrap();
    for (place, field) in [
        (vec!["mail"], "mail"),
        (vec!["mail", "messageId"], "mail.messageId"),
        (vec!["bounce", "bounceType"], "bounce.bounceType"),
        (vec!["eventType"], "eventType"),
    ] {
        let mut without = event.clone();
        let (last, parent) = place.split_last().unwrap();
        let parent = parent.iter().fold(&mut without, |v, k| &mut v[*k]);
        parent.as_object_mut().unwrap().remove(*last);
        sns.message = without.to_string();
        assert_eq!(
            ses::parse(&sns, now()).err(),
            Some(ParseError::Missing(field)),
            "{field}"
        );
    }
}

// ---- what the properties found, kept as plain cases ----

fn contact_changed(detail: Value) -> Result<IncomingEvent, EventError> {
    let envelope = EventEnvelope {
        id: "evt-1".into(),
        detail_type: "CustomerContactChanged".into(),
        source: "crm".into(),
        time: Some(now()),
        detail,
    };
    IncomingEvent::parse(&envelope, now())
}

#[test]
fn a_timezone_that_is_not_one_is_refused_without_quoting_it() {
    let err = contact_changed(
        json!({"organization_id": "org_acme", "customer_id": "cus_1", "timezone": "Zq7 +14155550101"}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "detail.timezone: timezone is not an IANA time zone name (such as Europe/Paris)"
    );
}

#[test]
fn a_channel_preference_of_the_wrong_type_is_named_by_its_channel() {
    let envelope = EventEnvelope {
        id: "evt-1".into(),
        detail_type: "NotificationPreferencesChanged".into(),
        source: "crm".into(),
        time: Some(now()),
        detail: json!({"organization_id": "org_acme", "customer_id": "cus_1",
            "channels": {"email": true, "sms": 12345}, "unsubscribed": []}),
    };
    let err = IncomingEvent::parse(&envelope, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "detail.channels.sms: expected a boolean, found integer"
    );
}

#[test]
fn an_sns_message_without_its_type_names_it() {
    let mut sample: Value = serde_json::from_str(SES_BOUNCE).unwrap();
    sample.as_object_mut().unwrap().remove("Type");
    assert_eq!(
        SnsMessage::parse(sample.to_string().as_bytes()).unwrap_err(),
        ParseError::Missing("Type")
    );
}
