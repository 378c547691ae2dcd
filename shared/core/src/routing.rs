//! Which providers carry a channel's messages, and in which order: an organization's routing,
//! or the deployment's. Dispatch asks them in turn; a provider-level failure of one passes the
//! message to the next in the same attempt (see [`crate::dispatch`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::InvalidValue;
use crate::model::{Channel, DeliveryService};
use crate::providers::OrgProviders;

/// The most providers one channel's route may list: every provider that serves it.
pub const MAX_ROUTE: usize = 2;

/// An ordered list of providers per channel. A channel it does not name falls to the
/// deployment's routing (an organization's) or to [`Routing::builtin`] (the deployment's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Routing(BTreeMap<Channel, Vec<DeliveryService>>);

impl DeliveryService {
    /// Whether the service can carry the channel's messages.
    pub fn serves(self, channel: Channel) -> bool {
        matches!(
            (self, channel),
            (
                DeliveryService::Ses | DeliveryService::Sendgrid,
                Channel::Email
            ) | (DeliveryService::Sns | DeliveryService::Twilio, Channel::Sms)
                | (DeliveryService::Twilio, Channel::Whatsapp)
                | (DeliveryService::Sns, Channel::Push)
        )
    }

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "ses" => Ok(DeliveryService::Ses),
            "sendgrid" => Ok(DeliveryService::Sendgrid),
            "sns" => Ok(DeliveryService::Sns),
            "twilio" => Ok(DeliveryService::Twilio),
            _ => Err(InvalidValue(
                "expected one of ses, sendgrid, sns, twilio".into(),
            )),
        }
    }

    /// Whether the organization has what the service needs to send on the channel: SES and
    /// SNS send from the deployment's account; SendGrid and Twilio need the organization's
    /// credentials, and WhatsApp its WhatsApp sender.
    pub fn set_up(self, channel: Channel, providers: &OrgProviders) -> bool {
        match self {
            DeliveryService::Ses | DeliveryService::Sns => true,
            DeliveryService::Sendgrid => providers.sendgrid.is_some(),
            DeliveryService::Twilio => providers
                .twilio
                .as_ref()
                .is_some_and(|t| channel != Channel::Whatsapp || t.whatsapp_from.is_some()),
        }
    }
}

impl Routing {
    /// The deployment's routing unless it sets another: an organization's own provider first,
    /// then the deployment's AWS service. An organization that set up only SES and SNS sends
    /// through them alone.
    pub fn builtin() -> Routing {
        use DeliveryService::*;
        Routing(BTreeMap::from([
            (Channel::Email, vec![Sendgrid, Ses]),
            (Channel::Sms, vec![Twilio, Sns]),
            (Channel::Whatsapp, vec![Twilio]),
            (Channel::Push, vec![Sns]),
        ]))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn channel(&self, channel: Channel) -> Option<&[DeliveryService]> {
        self.0.get(&channel).map(Vec::as_slice)
    }

    /// Every channel's route is 1 to [`MAX_ROUTE`] providers that serve the channel, each
    /// once; in-app needs none. The error names the channel and the place in its list.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        for (channel, route) in &self.0 {
            if *channel == Channel::InApp {
                return Err(InvalidValue(
                    "in_app: is delivered by being stored and takes no provider".into(),
                ));
            }
            if route.is_empty() || route.len() > MAX_ROUTE {
                return Err(InvalidValue(format!(
                    "{channel}: must list 1 to {MAX_ROUTE} providers"
                )));
            }
            for (i, provider) in route.iter().enumerate() {
                if !provider.serves(*channel) {
                    return Err(InvalidValue(format!(
                        "{channel}[{i}]: {} does not send {channel}",
                        provider.as_str()
                    )));
                }
                if route[..i].contains(provider) {
                    return Err(InvalidValue(format!(
                        "{channel}[{i}]: {} is listed twice",
                        provider.as_str()
                    )));
                }
            }
        }
        Ok(())
    }

    /// An organization's routing must also name only providers it has set up.
    pub fn validate_for(&self, providers: &OrgProviders) -> Result<(), InvalidValue> {
        self.validate()?;
        for (channel, route) in &self.0 {
            for (i, provider) in route.iter().enumerate() {
                if !provider.set_up(*channel, providers) {
                    return Err(InvalidValue(format!(
                        "{channel}[{i}]: {} is not set up for this organization",
                        provider.as_str()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads the deployment's setting, `email=sendgrid,ses;sms=twilio,sns` (channels not named
    /// keep the built-in route).
    pub fn parse_setting(value: &str) -> Result<Routing, InvalidValue> {
        let mut routing = Routing::builtin();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (channel, providers) = part.split_once('=').ok_or_else(|| {
                InvalidValue(format!("{part:?}: expected channel=provider,provider"))
            })?;
            let channel: Channel = channel
                .trim()
                .parse()
                .map_err(|_| InvalidValue(format!("{:?}: not a channel", channel.trim())))?;
            let route = providers
                .split(',')
                .map(|p| {
                    DeliveryService::parse(p.trim())
                        .map_err(|e| InvalidValue(format!("{channel}: {:?}: {}", p.trim(), e.0)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            routing.0.insert(channel, route);
        }
        routing.validate()?;
        Ok(routing)
    }
}

/// The providers to ask for one message, in order: the organization's route for the channel,
/// else the deployment's, leaving out those the organization has not set up. Empty: the
/// channel is not configured for it.
pub fn route(
    providers: &OrgProviders,
    deployment: &Routing,
    channel: Channel,
) -> Vec<DeliveryService> {
    let listed = providers
        .routing
        .channel(channel)
        .or_else(|| deployment.channel(channel))
        .unwrap_or_default();
    listed
        .iter()
        .copied()
        .filter(|p| p.serves(channel) && p.set_up(channel, providers))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Secret, SendGridSettings};
    use DeliveryService::*;
    use serde_json::json;

    fn with_sendgrid() -> OrgProviders {
        OrgProviders {
            sendgrid: Some(SendGridSettings {
                api_key: Secret::new("SG.key"),
                webhook_public_key: None,
                from: None,
            }),
            ..OrgProviders::default()
        }
    }

    #[test]
    fn the_deployments_route_leaves_out_what_the_organization_has_not_set_up() {
        let builtin = Routing::builtin();
        let bare = OrgProviders::default();
        assert_eq!(route(&bare, &builtin, Channel::Email), vec![Ses]);
        assert_eq!(route(&bare, &builtin, Channel::Sms), vec![Sns]);
        assert_eq!(route(&bare, &builtin, Channel::Whatsapp), vec![]);
        assert_eq!(route(&bare, &builtin, Channel::InApp), vec![]);
        assert_eq!(
            route(&with_sendgrid(), &builtin, Channel::Email),
            vec![Sendgrid, Ses]
        );
    }

    #[test]
    fn an_organizations_route_wins_for_the_channels_it_names() {
        let mut org = with_sendgrid();
        org.routing = serde_json::from_value(json!({"email": ["ses", "sendgrid"]})).unwrap();
        let builtin = Routing::builtin();
        assert_eq!(route(&org, &builtin, Channel::Email), vec![Ses, Sendgrid]);
        assert_eq!(route(&org, &builtin, Channel::Sms), vec![Sns]);
        org.routing = serde_json::from_value(json!({"email": ["sendgrid"]})).unwrap();
        assert_eq!(route(&org, &builtin, Channel::Email), vec![Sendgrid]);
    }

    #[test]
    fn a_routing_names_what_is_wrong_with_it() {
        let check = |v: serde_json::Value| {
            serde_json::from_value::<Routing>(v)
                .unwrap()
                .validate_for(&OrgProviders::default())
                .unwrap_err()
                .0
        };
        assert_eq!(
            check(json!({"sms": ["ses"]})),
            "sms[0]: ses does not send sms"
        );
        assert_eq!(
            check(json!({"email": ["ses", "ses"]})),
            "email[1]: ses is listed twice"
        );
        assert_eq!(
            check(json!({"email": []})),
            "email: must list 1 to 2 providers"
        );
        assert_eq!(
            check(json!({"email": ["sendgrid"]})),
            "email[0]: sendgrid is not set up for this organization"
        );
        assert!(check(json!({"in_app": ["sns"]})).starts_with("in_app:"));
    }

    #[test]
    fn the_deployments_setting_replaces_the_channels_it_names() {
        let routing = Routing::parse_setting("email=ses; sms=sns,twilio").unwrap();
        assert_eq!(routing.channel(Channel::Email), Some(&[Ses][..]));
        assert_eq!(routing.channel(Channel::Sms), Some(&[Sns, Twilio][..]));
        assert_eq!(routing.channel(Channel::Push), Some(&[Sns][..]));
        assert_eq!(Routing::parse_setting("").unwrap(), Routing::builtin());
        assert!(Routing::parse_setting("email").is_err());
        assert!(
            Routing::parse_setting("fax=ses")
                .unwrap_err()
                .0
                .contains("fax")
        );
        assert!(
            Routing::parse_setting("email=pigeon")
                .unwrap_err()
                .0
                .contains("pigeon")
        );
    }
}
