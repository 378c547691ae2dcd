//! What a chaos run puts on the bus, and what Herald should make of it: organizations (half
//! sending through AWS, half through SendGrid and Twilio), their customers (contact events,
//! some with preferences that turn channels off, some unsubscribed from a type), then orders
//! and refunds among them. Every notifying event carries a token of its own (its business
//! key), which every message it causes shows, so a provider's record names the event it came
//! from.

use chrono::{DateTime, Utc};
use herald_core::model::Channel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::samples::envelope;

/// How an organization's messages leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// SES for email, SNS for SMS (the deployment's own; no WhatsApp sender).
    Aws,
    /// SendGrid for email, Twilio for SMS and WhatsApp (the stand-ins).
    Http,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub route: Route,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub email: bool,
    pub sms: bool,
    pub whatsapp: bool,
    pub unsubscribed: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub org: usize,
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub whatsapp: Option<String>,
    pub locale: &'static str,
    /// `None`: never sent preferences (email and the feed only).
    pub preferences: Option<Preferences>,
}

/// The notifying events a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `OrderCreated`: `order_confirmation` by email and WhatsApp.
    Order,
    /// `RefundIssued`: `refund_issued` by email and SMS.
    Refund,
}

impl Kind {
    pub fn notification_type(self) -> &'static str {
        match self {
            Kind::Order => "order_confirmation",
            Kind::Refund => "refund_issued",
        }
    }

    /// The type's default channels (templates/<type>/template.json).
    pub fn channels(self) -> [Channel; 2] {
        match self {
            Kind::Order => [Channel::Email, Channel::Whatsapp],
            Kind::Refund => [Channel::Email, Channel::Sms],
        }
    }
}

/// What Herald should do with one channel of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// A message to the provider.
    Send,
    /// Nothing sent: consent or a missing address leaves the channel out.
    Skip(&'static str),
}

/// One channel of one notifying event, as the generator expects it to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub token: String,
    pub org: String,
    pub customer: String,
    pub kind: Kind,
    pub channel: Channel,
    /// The address the message goes to (`None` when the customer has none for the channel).
    pub address: Option<String>,
    pub fate: Fate,
}

/// A whole run's events and expectations.
#[derive(Debug, Clone)]
pub struct Plan {
    pub orgs: Vec<Org>,
    pub customers: Vec<Customer>,
    /// Organization settings, contacts and preferences, to run first.
    pub directory: Vec<Value>,
    /// The notifying events, each once.
    pub events: Vec<Value>,
    pub expected: Vec<Expected>,
}

/// The token of the `i`-th notifying event: fixed width, so no token is part of another.
pub fn token(i: usize) -> String {
    format!("chx{i:07}")
}

/// The tokens in a message's text, each once, in order.
pub fn tokens_in(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("chx") {
        let candidate = &rest[start..];
        let digits = candidate[3..]
            .chars()
            .take(7)
            .take_while(char::is_ascii_digit)
            .count();
        if digits == 7 {
            let t = candidate[..10].to_string();
            if !found.contains(&t) {
                found.push(t);
            }
        }
        rest = &candidate[3..];
    }
    found
}

/// How many customers a run of `events` events has: about two events each.
pub fn customer_count(events: usize, orgs: usize) -> usize {
    (events / 2).clamp(orgs.max(1) * 2, 5000)
}

/// The events of a run and what should become of them, from the seed alone.
pub fn generate(events: usize, orgs: usize, seed: u64, now: DateTime<Utc>) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let orgs: Vec<Org> = (0..orgs.max(1))
        .map(|i| Org {
            id: format!("org_chaos_{i}"),
            // the first sends through AWS, the second through SendGrid and Twilio, …
            route: if i % 2 == 0 { Route::Aws } else { Route::Http },
        })
        .collect();
    let customers: Vec<Customer> = (0..customer_count(events, orgs.len()))
        .map(|i| customer(&mut rng, i, i % orgs.len(), orgs[i % orgs.len()].route))
        .collect();
    // directory events a minute in the past, preferences a second after the contact
    let contact_time = now - chrono::Duration::minutes(1);
    let mut directory: Vec<Value> = orgs
        .iter()
        .map(|o| {
            envelope(
                "OrganizationSettingsChanged",
                "admin",
                contact_time,
                json!({"organization_id": o.id, "operations_email": format!("ops@{}.example", o.id.replace('_', "-")),
                       "default_locale": "en"}),
            )
        })
        .collect();
    for c in &customers {
        let org = &orgs[c.org].id;
        directory.push(envelope(
            "CustomerContactChanged",
            "customers",
            contact_time,
            json!({"organization_id": org, "customer_id": c.id, "email": c.email,
                   "phone": c.phone, "whatsapp": c.whatsapp, "locale": c.locale}),
        ));
        if let Some(p) = &c.preferences {
            directory.push(envelope(
                "NotificationPreferencesChanged",
                "customers",
                contact_time + chrono::Duration::seconds(1),
                json!({"organization_id": org, "customer_id": c.id,
                       "channels": {"email": p.email, "sms": p.sms, "whatsapp": p.whatsapp, "in_app": true},
                       "unsubscribed": p.unsubscribed}),
            ));
        }
    }
    let mut notifying = Vec::with_capacity(events);
    let mut expected = Vec::with_capacity(events * 2);
    for i in 0..events {
        let c = &customers[rng.random_range(0..customers.len())];
        let org = &orgs[c.org];
        let kind = if rng.random_bool(0.6) {
            Kind::Order
        } else {
            Kind::Refund
        };
        let token = token(i);
        let amount = format!(
            "{}.{:02}",
            rng.random_range(1..500),
            rng.random_range(0..100)
        );
        notifying.push(match kind {
            Kind::Order => envelope(
                "OrderCreated",
                "ordering",
                now,
                json!({"organization_id": org.id, "customer_id": c.id, "order_id": token,
                       "grand_total": amount, "currency": "USD",
                       "items": [{"sku": "SKU-1", "name": "Thing", "quantity": 1, "unit_price": amount}],
                       "created_at": herald_core::time::format(&now)}),
            ),
            Kind::Refund => envelope(
                "RefundIssued",
                "payments",
                now,
                json!({"organization_id": org.id, "customer_id": c.id, "refund_id": token,
                       "order_id": token, "amount": amount, "currency": "USD"}),
            ),
        });
        for channel in kind.channels() {
            let (address, fate) = expect(c, kind, channel);
            expected.push(Expected {
                token: token.clone(),
                org: org.id.clone(),
                customer: c.id.clone(),
                kind,
                channel,
                address,
                fate,
            });
        }
    }
    Plan {
        orgs,
        customers,
        directory,
        events: notifying,
        expected,
    }
}

fn customer(rng: &mut StdRng, i: usize, org: usize, route: Route) -> Customer {
    let email = rng
        .random_bool(0.9)
        .then(|| format!("chaos-{i}@customers.example"));
    let phone = rng
        .random_bool(0.7)
        .then(|| format!("+1415{:07}", 1_000_000 + i));
    // only an organization with a WhatsApp sender (Twilio's) gets WhatsApp numbers
    let whatsapp = (route == Route::Http && rng.random_bool(0.6))
        .then(|| format!("+1628{:07}", 1_000_000 + i));
    let locale = if rng.random_bool(0.8) {
        "en-US"
    } else {
        "fr-CA"
    };
    let preferences = rng.random_bool(0.75).then(|| {
        let mut unsubscribed = Vec::new();
        if rng.random_bool(0.08) {
            unsubscribed.push(Kind::Order.notification_type());
        }
        if rng.random_bool(0.08) {
            unsubscribed.push(Kind::Refund.notification_type());
        }
        Preferences {
            email: rng.random_bool(0.85),
            sms: rng.random_bool(0.75),
            whatsapp: rng.random_bool(0.75),
            unsubscribed,
        }
    });
    Customer {
        org,
        id: format!("cus_chaos_{i}"),
        email,
        phone,
        whatsapp,
        locale,
        preferences,
    }
}

/// What Herald should do with one channel of an event for this customer (events/README.md,
/// "Channel selection"): unsubscribed, then the channels enabled (email only for a customer
/// without preferences), then an address.
pub fn expect(c: &Customer, kind: Kind, channel: Channel) -> (Option<String>, Fate) {
    let address = match channel {
        Channel::Email => c.email.clone(),
        Channel::Sms => c.phone.clone(),
        Channel::Whatsapp => c.whatsapp.clone(),
        Channel::Push | Channel::InApp => None,
    };
    let enabled = match &c.preferences {
        Some(p) if p.unsubscribed.contains(&kind.notification_type()) => {
            return (address, Fate::Skip("unsubscribed"));
        }
        None => matches!(channel, Channel::Email | Channel::InApp),
        Some(p) => match channel {
            Channel::Email => p.email,
            Channel::Sms => p.sms,
            Channel::Whatsapp => p.whatsapp,
            Channel::Push | Channel::InApp => false,
        },
    };
    let fate = match (enabled, &address) {
        (false, _) => Fate::Skip("no enabled channels"),
        (true, None) => Fate::Skip("no address"),
        (true, Some(_)) => Fate::Send,
    };
    (address, fate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        generate(200, 4, seed, now)
    }

    #[test]
    fn the_same_seed_makes_the_same_run() {
        let (a, b) = (plan(42), plan(42));
        assert_eq!(a.customers, b.customers);
        assert_eq!(a.expected, b.expected);
        let details = |p: &Plan| {
            p.events
                .iter()
                .map(|e| e["detail"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(details(&a), details(&b));
        assert_ne!(plan(43).expected, a.expected, "another seed, another run");
    }

    #[test]
    fn every_event_has_one_expectation_per_channel_of_its_type_and_a_token_of_its_own() {
        let p = plan(7);
        assert_eq!(p.events.len(), 200);
        assert_eq!(p.expected.len(), 400);
        for (i, e) in p.events.iter().enumerate() {
            let shown = e["detail"].to_string();
            assert_eq!(tokens_in(&shown), vec![token(i)]);
        }
        // a run mixes sends and skips on every channel
        for channel in [Channel::Email, Channel::Sms, Channel::Whatsapp] {
            let of = |fate: fn(&Fate) -> bool| {
                p.expected
                    .iter()
                    .filter(|x| x.channel == channel && fate(&x.fate))
                    .count()
            };
            assert!(of(|f| *f == Fate::Send) > 0, "{channel:?} sends");
            assert!(of(|f| *f != Fate::Send) > 0, "{channel:?} skips");
        }
    }

    #[test]
    fn only_twilio_organizations_have_whatsapp_numbers() {
        let p = plan(3);
        for c in &p.customers {
            if p.orgs[c.org].route == Route::Aws {
                assert_eq!(c.whatsapp, None);
            }
        }
    }

    fn customer(preferences: Option<Preferences>) -> Customer {
        Customer {
            org: 0,
            id: "cus_x".into(),
            email: Some("x@example.com".into()),
            phone: Some("+14155550100".into()),
            whatsapp: None,
            locale: "en-US",
            preferences,
        }
    }

    #[test]
    fn channels_follow_the_contracts_selection_rules() {
        let none = customer(None);
        assert_eq!(expect(&none, Kind::Refund, Channel::Email).1, Fate::Send);
        assert_eq!(
            expect(&none, Kind::Refund, Channel::Sms).1,
            Fate::Skip("no enabled channels"),
            "no preferences: never SMS"
        );
        let prefs = Preferences {
            email: false,
            sms: true,
            whatsapp: true,
            unsubscribed: vec!["order_confirmation"],
        };
        let c = customer(Some(prefs));
        assert_eq!(expect(&c, Kind::Refund, Channel::Sms).1, Fate::Send);
        assert_eq!(
            expect(&c, Kind::Refund, Channel::Email).1,
            Fate::Skip("no enabled channels")
        );
        assert_eq!(
            expect(&c, Kind::Order, Channel::Email).1,
            Fate::Skip("unsubscribed")
        );
        let mut no_whatsapp = c.clone();
        no_whatsapp.preferences = Some(Preferences {
            unsubscribed: vec![],
            ..c.preferences.clone().unwrap_or_else(|| unreachable!())
        });
        assert_eq!(
            expect(&no_whatsapp, Kind::Order, Channel::Whatsapp).1,
            Fate::Skip("no address"),
            "a phone alone never gets WhatsApp"
        );
    }

    #[test]
    fn tokens_are_found_whole_and_once() {
        assert_eq!(
            tokens_in("order chx0000012 and ref chx0000012, chx12 chx0000345"),
            vec!["chx0000012".to_string(), "chx0000345".to_string()]
        );
        assert!(tokens_in("no token here, chx123").is_empty());
    }
}
