//! Counting a chaos run from what the providers recorded: every message the emulator's SES
//! and SNS accepted (the requests it answered with a message id, kept by the fault layer as
//! they went on the wire: moto's own dump of what it holds takes minutes once it holds a big
//! run) and the SendGrid and Twilio stand-ins took is matched, by the token in its text and
//! its recipient, to the notification the generator expected. Herald's own table is read only
//! for the expected notifications no provider got, to tell failed, withheld and pending ones
//! from lost ones.

use std::collections::{BTreeMap, HashMap, HashSet};

use herald_core::model::{Channel, Status};
use serde::Serialize;
use serde_json::Value;

use super::generate::{Expected, Fate, tokens_in};

/// One message a provider recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub channel: Channel,
    pub address: String,
    /// The event tokens its text shows.
    pub tokens: Vec<String>,
}

/// Every message the providers recorded: the emails and SMS the emulator accepted (the SES
/// `SendEmail` and SNS `Publish` requests it answered with a message id, as they went on the
/// wire), SendGrid's mails, Twilio's SMS and WhatsApp messages.
pub fn records(
    aws: &[(&str, Vec<u8>)],
    sendgrid: &[Value],
    twilio: &[Vec<(String, String)>],
) -> Vec<Record> {
    let mut out = Vec::new();
    for (service, body) in aws {
        match *service {
            "ses" => {
                let Ok(request) = serde_json::from_slice::<Value>(body) else {
                    continue;
                };
                let text = request["Content"].to_string();
                let tos = request["Destination"]["ToAddresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str);
                for to in tos {
                    out.push(Record {
                        channel: Channel::Email,
                        address: to.to_string(),
                        tokens: tokens_in(&text),
                    });
                }
            }
            _ => {
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(body).unwrap_or_default();
                let field = |name: &str| {
                    form.iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                // a push (to a device endpoint) is no SMS
                if let Some(phone) = field("PhoneNumber") {
                    out.push(Record {
                        channel: Channel::Sms,
                        address: phone.to_string(),
                        tokens: tokens_in(field("Message").unwrap_or_default()),
                    });
                }
            }
        }
    }
    for mail in sendgrid {
        let text = format!("{}\n{}", mail["subject"], mail["content"]);
        let tos = mail["personalizations"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["to"].as_array().into_iter().flatten())
            .filter_map(|t| t["email"].as_str());
        for to in tos {
            out.push(Record {
                channel: Channel::Email,
                address: to.to_string(),
                tokens: tokens_in(&text),
            });
        }
    }
    for form in twilio {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let to = field("To");
        let (channel, address) = match to.strip_prefix("whatsapp:") {
            Some(number) => (Channel::Whatsapp, number),
            None => (Channel::Sms, to),
        };
        out.push(Record {
            channel,
            address: address.to_string(),
            tokens: tokens_in(&format!("{}\n{}", field("Body"), field("ContentVariables"))),
        });
    }
    out
}

/// What became of some notifications, by the providers' records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Every channel of every event: those to send and those consent leaves out.
    pub notifications: usize,
    /// Recorded by the provider (once or more).
    pub sent: usize,
    /// Not recorded; Herald dead-lettered it (an injected rejection, or faults until the
    /// attempts ran out).
    pub failed: usize,
    /// Left out by consent (as the generator expected), or withheld after an injected refusal
    /// suppressed the address.
    pub skipped: usize,
    /// Not recorded; Herald still means to send it.
    pub pending: usize,
    /// Expected and neither sent, failed, skipped nor pending.
    pub lost: usize,
    /// Recorded more than once, beyond one resend per crash after send.
    pub doubled: usize,
    /// Recorded again after its dispatch was killed between the send and its record.
    pub resent_after_crash: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.notifications += other.notifications;
        self.sent += other.sent;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.pending += other.pending;
        self.lost += other.lost;
        self.doubled += other.doubled;
        self.resent_after_crash += other.resent_after_crash;
    }
}

/// The whole count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    pub total: Tally,
    pub by_channel: BTreeMap<&'static str, Tally>,
    /// Messages the providers recorded that no expected send accounts for: to another
    /// address, for a channel consent left out, or with no known token.
    pub unexpected: usize,
    /// The lost and doubled notifications (`token/channel`), to look into.
    pub lost: Vec<String>,
    pub doubled: Vec<String>,
}

/// What Herald's table says of an expected notification no provider recorded (`None`: there
/// is no such notification).
pub type HeraldStatus = Option<Status>;

/// Counts the run: `ids[i]` is the notification id of `expected[i]`; `crashed` the ids whose
/// dispatch was killed after the send; `statuses` Herald's status of the expected sends no
/// provider recorded; `refused` the addresses an injected refusal suppressed.
pub fn count(
    expected: &[Expected],
    ids: &[String],
    records: &[Record],
    crashed: &HashSet<String>,
    statuses: &HashMap<String, HeraldStatus>,
    refused: &HashSet<String>,
) -> Counted {
    let mut by_key: HashMap<(&str, Channel), Vec<&Record>> = HashMap::new();
    let mut counted = Counted::default();
    for r in records {
        if r.tokens.is_empty() {
            counted.unexpected += 1;
        }
        for t in &r.tokens {
            by_key.entry((t.as_str(), r.channel)).or_default().push(r);
        }
    }
    for (e, id) in expected.iter().zip(ids) {
        let mut tally = Tally {
            notifications: 1,
            ..Tally::default()
        };
        let got = by_key
            .remove(&(e.token.as_str(), e.channel))
            .unwrap_or_default();
        let label = || format!("{}/{}", e.token, e.channel.as_str());
        match e.fate {
            Fate::Skip(_) => {
                tally.skipped = 1;
                counted.unexpected += got.len();
            }
            Fate::Send => {
                let to_recipient = got
                    .iter()
                    .filter(|r| e.address.as_deref() == Some(r.address.as_str()))
                    .count();
                counted.unexpected += got.len() - to_recipient;
                if to_recipient > 0 {
                    tally.sent = 1;
                    let again = to_recipient - 1;
                    let allowed = usize::from(crashed.contains(id));
                    tally.resent_after_crash = again.min(allowed);
                    tally.doubled = again - tally.resent_after_crash;
                    if tally.doubled > 0 {
                        counted.doubled.push(label());
                    }
                } else {
                    let was_refused = e.address.as_ref().is_some_and(|a| refused.contains(a));
                    match statuses.get(id) {
                        Some(Some(Status::Failed)) => tally.failed = 1,
                        Some(Some(Status::Skipped)) => tally.skipped = 1,
                        Some(Some(Status::Pending | Status::Sending | Status::Retrying)) => {
                            tally.pending = 1
                        }
                        // intake left the channel out: the address was suppressed by then
                        Some(None) if was_refused => tally.skipped = 1,
                        _ => {
                            tally.lost = 1;
                            counted.lost.push(label());
                        }
                    }
                }
            }
        }
        counted.total.add(&tally);
        counted
            .by_channel
            .entry(e.channel.as_str())
            .or_default()
            .add(&tally);
    }
    counted.unexpected += by_key.values().map(Vec::len).sum::<usize>();
    counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::generate::Kind;

    fn expected(token: &str, channel: Channel, fate: Fate) -> Expected {
        Expected {
            token: token.into(),
            org: "org_a".into(),
            customer: "cus_a".into(),
            kind: Kind::Refund,
            channel,
            address: Some(match channel {
                Channel::Email => "a@example.com".into(),
                _ => "+14155550100".into(),
            }),
            fate,
        }
    }

    fn record(token: &str, channel: Channel, address: &str) -> Record {
        Record {
            channel,
            address: address.into(),
            tokens: vec![token.into()],
        }
    }

    #[test]
    fn a_second_send_is_doubled_unless_a_crash_explains_it() {
        let exp = vec![
            expected("chx0000001", Channel::Email, Fate::Send),
            expected("chx0000002", Channel::Email, Fate::Send),
        ];
        let ids = vec!["ntf_1".to_string(), "ntf_2".to_string()];
        let recs: Vec<Record> = ["chx0000001", "chx0000001", "chx0000002", "chx0000002"]
            .iter()
            .map(|t| record(t, Channel::Email, "a@example.com"))
            .collect();
        let crashed = HashSet::from(["ntf_2".to_string()]);
        let c = count(
            &exp,
            &ids,
            &recs,
            &crashed,
            &HashMap::new(),
            &HashSet::new(),
        );
        assert_eq!(c.total.sent, 2);
        assert_eq!(c.total.doubled, 1);
        assert_eq!(c.total.resent_after_crash, 1);
        assert_eq!(c.doubled, vec!["chx0000001/email".to_string()]);
    }

    #[test]
    fn an_unsent_notification_is_placed_by_herald_s_status_or_lost() {
        let exp: Vec<Expected> = (1..=6)
            .map(|i| expected(&format!("chx000000{i}"), Channel::Sms, Fate::Send))
            .collect();
        let ids: Vec<String> = (1..=6).map(|i| format!("ntf_{i}")).collect();
        let statuses = HashMap::from([
            ("ntf_1".to_string(), Some(Status::Failed)),
            ("ntf_2".to_string(), Some(Status::Retrying)),
            ("ntf_3".to_string(), Some(Status::Skipped)),
            ("ntf_4".to_string(), Some(Status::Sent)),
            ("ntf_5".to_string(), None),
        ]);
        let c = count(&exp, &ids, &[], &HashSet::new(), &statuses, &HashSet::new());
        assert_eq!(
            (
                c.total.failed,
                c.total.pending,
                c.total.skipped,
                c.total.lost
            ),
            (1, 1, 1, 3),
            "sent by Herald's account but by no provider's, never created, never read: lost"
        );
        let refused = HashSet::from(["+14155550100".to_string()]);
        let c = count(&exp, &ids, &[], &HashSet::new(), &statuses, &refused);
        assert_eq!(
            c.total.skipped, 2,
            "never created after a refusal suppressed the number"
        );
    }

    #[test]
    fn a_send_consent_left_out_or_to_another_address_is_unexpected() {
        let exp = vec![
            expected(
                "chx0000001",
                Channel::Sms,
                Fate::Skip("no enabled channels"),
            ),
            expected("chx0000002", Channel::Email, Fate::Send),
        ];
        let ids = vec!["ntf_1".to_string(), "ntf_2".to_string()];
        let recs = vec![
            record("chx0000001", Channel::Sms, "+14155550100"),
            record("chx0000002", Channel::Email, "b@example.com"),
            record("chx0000009", Channel::Email, "a@example.com"),
        ];
        let statuses = HashMap::from([("ntf_2".to_string(), Some(Status::Sent))]);
        let c = count(
            &exp,
            &ids,
            &recs,
            &HashSet::new(),
            &statuses,
            &HashSet::new(),
        );
        assert_eq!(c.unexpected, 3);
        assert_eq!(c.total.skipped, 1);
        assert_eq!(c.total.lost, 1);
        assert_eq!(c.by_channel["email"].notifications, 1);
    }

    #[test]
    fn ses_and_sns_sends_are_read_from_their_requests() {
        let ses = serde_json::json!({
            "FromEmailAddress": "n@herald.example",
            "Destination": {"ToAddresses": ["a@example.com"]},
            "Content": {"Simple": {"Subject": {"Data": "Your order chx0000001 is confirmed"},
                                   "Body": {"Text": {"Data": "…"}}}},
        });
        let aws = vec![
            ("ses", ses.to_string().into_bytes()),
            (
                "sns",
                b"Action=Publish&PhoneNumber=%2B14155550100&Message=ref.+chx0000002".to_vec(),
            ),
            (
                "sns",
                b"Action=Publish&TargetArn=arn%3Aendpoint&Message=chx0000003".to_vec(),
            ),
        ];
        assert_eq!(
            records(&aws, &[], &[]),
            vec![
                record("chx0000001", Channel::Email, "a@example.com"),
                record("chx0000002", Channel::Sms, "+14155550100"),
            ]
        );
    }

    #[test]
    fn whatsapp_and_sms_are_told_apart_by_twilio_s_to() {
        let twilio = vec![
            vec![
                ("To".to_string(), "whatsapp:+14155550100".to_string()),
                (
                    "ContentVariables".to_string(),
                    r#"{"1":"chx0000001"}"#.to_string(),
                ),
            ],
            vec![
                ("To".to_string(), "+14155550100".to_string()),
                ("Body".to_string(), "ref. chx0000002".to_string()),
            ],
        ];
        let recs = records(&[], &[], &twilio);
        assert_eq!(
            recs,
            vec![
                record("chx0000001", Channel::Whatsapp, "+14155550100"),
                record("chx0000002", Channel::Sms, "+14155550100"),
            ]
        );
    }
}
