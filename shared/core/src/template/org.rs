//! An organization's own templates and types: checked before they are stored, compiled into
//! a sandbox of the organization's own ([`super::sandbox`]), and resolved over the built-in
//! catalog ([`super::Templates`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sandbox::{self, Capped, Part, Problem};
use super::variables::{self, ALWAYS_THERE, Variable};
use super::{Catalog, RawParts, RenderContext, RenderError, TemplateSpec};
use crate::ids::{Locale, NotificationType};
use crate::model::Channel;

/// The parts of a template as an organization writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Parts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    /// Email only: the HTML alternative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

impl Parts {
    fn each(&self) -> impl Iterator<Item = (Part, &str)> {
        [
            (Part::Subject, self.subject.as_deref()),
            (Part::Body, Some(self.body.as_str())),
            (Part::Html, self.html.as_deref()),
        ]
        .into_iter()
        .filter_map(|(part, source)| Some((part, source?)))
    }
}

/// An organization's template for a type, channel and locale, as stored: each change is a
/// new version, and going back to the built-in one is a version without parts (`deleted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgTemplate {
    pub notification_type: NotificationType,
    pub channel: Channel,
    pub locale: Locale,
    pub parts: Parts,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    pub deleted: bool,
}

/// A notification type an organization defined, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgType {
    pub notification_type: NotificationType,
    pub spec: TemplateSpec,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

/// What an organization has stored: its types, and its templates (those gone back to the
/// built-in one included, with the version a change must replace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub types: Vec<OrgType>,
    pub templates: Vec<OrgTemplate>,
}

impl Stored {
    /// The versions it holds, in a stable order: equal stamps, equal catalogs.
    pub fn stamp(&self) -> Vec<(String, u64)> {
        let mut stamp: Vec<(String, u64)> = self
            .types
            .iter()
            .map(|t| (t.notification_type.to_string(), t.version))
            .chain(self.templates.iter().map(|t| {
                let key = format!(
                    "{}/{}/{}",
                    t.notification_type,
                    t.channel,
                    t.locale.as_str()
                );
                (key, t.version)
            }))
            .collect();
        stamp.sort();
        stamp
    }

    pub fn template(
        &self,
        notification_type: &NotificationType,
        channel: Channel,
        locale: &Locale,
    ) -> Option<&OrgTemplate> {
        self.templates.iter().find(|t| {
            &t.notification_type == notification_type && t.channel == channel && &t.locale == locale
        })
    }

    pub fn org_type(&self, notification_type: &NotificationType) -> Option<&OrgType> {
        self.types
            .iter()
            .find(|t| &t.notification_type == notification_type)
    }
}

/// The bounds of what an organization may store, beside each part's size
/// ([`Part::max_source`]).
pub const MAX_TYPES: usize = 50;
pub const MAX_TEMPLATES: usize = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An organization's templates compiled for rendering: built once per change of what it
/// stored, shared by every event of the organization.
pub struct OrgCatalog {
    env: Environment<'static>,
    specs: BTreeMap<NotificationType, TemplateSpec>,
    /// (type, channel) → locale → the version of the organization's template there.
    locales: BTreeMap<(NotificationType, Channel), BTreeMap<String, u64>>,
    /// Templates stored that do not compile (written other than through the api): their
    /// events are rejected with this reason rather than sent with another text.
    broken: BTreeMap<String, String>,
    stamp: Vec<(String, u64)>,
}

impl std::fmt::Debug for OrgCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgCatalog")
            .field("stamp", &self.stamp)
            .finish()
    }
}

impl OrgCatalog {
    /// Compiles what an organization stored. A type that shadows a built-in one is left out
    /// (the api refuses it), and a template that breaks the sandbox's rules or does not parse
    /// is kept as broken.
    pub fn compile(builtin: &Catalog, stored: &Stored) -> OrgCatalog {
        let mut env = sandbox::environment();
        let specs: BTreeMap<NotificationType, TemplateSpec> = stored
            .types
            .iter()
            .filter(|t| builtin.spec(&t.notification_type).is_none())
            .map(|t| (t.notification_type.clone(), t.spec.clone()))
            .collect();
        let mut locales: BTreeMap<(NotificationType, Channel), BTreeMap<String, u64>> =
            BTreeMap::new();
        let mut broken = BTreeMap::new();
        for t in stored.templates.iter().filter(|t| !t.deleted) {
            if !writable(t.channel) {
                continue;
            }
            let locale = t.locale.as_str();
            for (part, source) in t.parts.each() {
                let name = name(&t.notification_type, locale, t.channel, part);
                let problem = sandbox::screen(part, source).into_iter().next();
                let compiled = match problem {
                    Some(p) => Err(p.to_string()),
                    None => env
                        .add_template_owned(name.clone(), source.to_string())
                        .map_err(|e| format!("{part}: {}", sandbox::summary(&e))),
                };
                if let Err(reason) = compiled {
                    broken.insert(base(&t.notification_type, locale, t.channel), reason);
                }
            }
            locales
                .entry((t.notification_type.clone(), t.channel))
                .or_default()
                .insert(locale.to_string(), t.version);
        }
        OrgCatalog {
            env,
            specs,
            locales,
            broken,
            stamp: stored.stamp(),
        }
    }

    /// An organization that stored nothing.
    pub fn empty() -> OrgCatalog {
        OrgCatalog {
            env: Environment::empty(),
            specs: BTreeMap::new(),
            locales: BTreeMap::new(),
            broken: BTreeMap::new(),
            stamp: Vec::new(),
        }
    }

    /// The versions it was compiled from (see [`Stored::stamp`]).
    pub fn stamp(&self) -> &[(String, u64)] {
        &self.stamp
    }

    /// One of the organization's own types.
    pub fn spec(&self, notification_type: &NotificationType) -> Option<&TemplateSpec> {
        self.specs.get(notification_type)
    }

    pub(super) fn locales(
        &self,
        key: &(NotificationType, Channel),
    ) -> Option<&BTreeMap<String, u64>> {
        self.locales.get(key)
    }

    /// The organization's parts for a type and channel in a locale it has a template for.
    pub(super) fn render_at(
        &self,
        notification_type: &NotificationType,
        channel: Channel,
        locale: &str,
        version: u64,
        ctx: &minijinja::Value,
    ) -> Result<RawParts, RenderError> {
        let base = base(notification_type, locale, channel);
        let failed = |message: String| RenderError::Failed {
            template: format!("{base} (the organization's version {version})"),
            message,
        };
        if let Some(reason) = self.broken.get(&base) {
            return Err(failed(reason.clone()));
        }
        let mut rendered = BTreeMap::new();
        for part in Part::ALL {
            let name = name(notification_type, locale, channel, part);
            if self.env.get_template(&name).is_err() {
                continue;
            }
            let text = render(&self.env, &name, part, ctx)
                .map_err(|e| failed(format!("{part}: {}", sandbox::summary(&e))))?;
            rendered.insert(part, text);
        }
        Ok(RawParts {
            subject: rendered.remove(&Part::Subject),
            body: rendered.remove(&Part::Body).unwrap_or_default(),
            html: rendered
                .remove(&Part::Html)
                .filter(|_| channel == Channel::Email),
            whatsapp: None,
        })
    }
}

/// A type an organization defines, as it writes it (`PUT /templates/{type}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeDefinition {
    /// Its default channels.
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    #[serde(default)]
    pub sample: Map<String, Value>,
}

impl TypeDefinition {
    /// What is wrong with it, each naming its field; none: it may be stored.
    pub fn check(&self, notification_type: &NotificationType, builtin: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        if builtin.spec(notification_type).is_some() {
            problems.push(format!(
                "type: {notification_type} is a built-in type; its variables are the event contract's"
            ));
        }
        if self.channels.is_empty() {
            problems.push("channels: name at least one channel".into());
        }
        for (i, channel) in self.channels.iter().enumerate() {
            if !writable(*channel) {
                problems.push(format!(
                    "channels[{i}]: a WhatsApp message is a template WhatsApp approved, not one an organization writes"
                ));
            } else if self.channels[..i].contains(channel) {
                problems.push(format!("channels[{i}]: {channel} is named twice"));
            }
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            problems.push(format!(
                "description: at most {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        if self.variables.len() > variables::MAX_VARIABLES {
            problems.push(format!("variables: at most {}", variables::MAX_VARIABLES));
        }
        for name in self.variables.keys() {
            if let Err(e) = variables::check_name(name) {
                problems.push(format!("variables.{name}: {e}"));
            }
        }
        if crate::json::size(&self.sample) > crate::event::MAX_CONTEXT_BYTES {
            problems.push(format!(
                "sample: at most {} KB as JSON",
                crate::event::MAX_CONTEXT_BYTES / 1024
            ));
        } else if let Err(e) = variables::check_context(&self.variables, &self.sample, "sample") {
            problems.push(e);
        }
        problems
    }

    pub fn into_spec(self) -> TemplateSpec {
        TemplateSpec {
            channels: self.channels,
            internal: self.internal,
            description: self.description,
            whatsapp: None,
            variables: self.variables,
            sample: self.sample,
        }
    }
}

/// The channels whose text an organization may write: a WhatsApp message a business starts is
/// a template WhatsApp approved, so its text is not Herald's to change.
pub fn writable(channel: Channel) -> bool {
    channel != Channel::Whatsapp
}

/// A template's name without its part: `order_confirmation/fr/email`.
fn base(notification_type: &NotificationType, locale: &str, channel: Channel) -> String {
    format!("{notification_type}/{locale}/{channel}")
}

/// The name a part is compiled under: the suffix decides its escaping.
fn name(
    notification_type: &NotificationType,
    locale: &str,
    channel: Channel,
    part: Part,
) -> String {
    format!("{}.{part}.j2", base(notification_type, locale, channel))
}

/// The line of the first tag that reads `variable`, for an error that points at it.
fn line_of(source: &str, variable: &str) -> Option<usize> {
    sandbox::tags(source)
        .into_iter()
        .find(|tag| {
            tag.inner
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .any(|word| word.split('.').next() == Some(variable))
        })
        .map(|tag| tag.line)
}

/// Every problem of a template for `spec`'s type on `channel`: the parts the channel takes,
/// the sandbox's rules, syntax, variables the type does not have (each with its line), and a
/// render with the type's sample context that fails or writes too much. Nothing is stored or
/// sent by this; an empty list means the template may be stored.
pub fn check(
    notification_type: &NotificationType,
    spec: &TemplateSpec,
    channel: Channel,
    locale: &Locale,
    parts: &Parts,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let at = |part, message: String| Problem {
        part,
        line: None,
        message,
    };
    if !writable(channel) {
        problems.push(at(
            Part::Body,
            "a WhatsApp message is the template WhatsApp approved; its text cannot be changed here"
                .into(),
        ));
        return problems;
    }
    if !spec.channels.contains(&channel) {
        problems.push(at(
            Part::Body,
            format!("{notification_type} is not sent by {channel}"),
        ));
        return problems;
    }
    if parts.subject.is_some()
        && !matches!(channel, Channel::Email | Channel::Push | Channel::InApp)
    {
        problems.push(at(Part::Subject, format!("{channel} has no subject")));
    }
    if parts.subject.is_none() && channel == Channel::Email {
        problems.push(at(Part::Subject, "an email needs a subject".into()));
    }
    if parts.html.is_some() && channel != Channel::Email {
        problems.push(at(Part::Html, "only an email has an HTML part".into()));
    }
    if parts.body.trim().is_empty() {
        problems.push(at(Part::Body, "must not be empty".into()));
    }
    let mut env = sandbox::environment();
    let mut compiled = Vec::new();
    for (part, source) in parts.each() {
        let screened = sandbox::screen(part, source);
        if !screened.is_empty() {
            problems.extend(screened);
            continue;
        }
        let name = name(notification_type, locale.as_str(), channel, part);
        if let Err(e) = env.add_template_owned(name.clone(), source.to_string()) {
            problems.push(Problem {
                part,
                line: e.line(),
                message: format!("syntax error: {}", e.detail().unwrap_or("")),
            });
            continue;
        }
        compiled.push((part, name, source));
    }
    // the type's variables, and the functions the sandbox keeps (`range`)
    let known: BTreeSet<&str> = spec
        .variables
        .keys()
        .map(String::as_str)
        .chain(ALWAYS_THERE)
        .chain(env.globals().map(|(name, _)| name))
        .collect();
    for (part, name, source) in &compiled {
        let Ok(template) = env.get_template(name) else {
            continue;
        };
        for variable in template.undeclared_variables(false) {
            if !known.contains(variable.as_str()) {
                problems.push(Problem {
                    part: *part,
                    line: line_of(source, &variable),
                    message: format!("{variable} is not a variable of {notification_type}"),
                });
            }
        }
    }
    if problems.is_empty() {
        let ctx = RenderContext::value(locale, None, &spec.sample);
        for (part, name, _) in &compiled {
            if let Err(e) = render(&env, name, *part, &ctx) {
                problems.push(Problem {
                    part: *part,
                    line: e.line(),
                    message: format!("does not render with the sample: {}", sandbox::describe(&e)),
                });
            }
        }
    }
    problems
}

/// Renders one part in the sandbox, within its output bound.
pub(super) fn render(
    env: &Environment<'static>,
    name: &str,
    part: Part,
    ctx: &minijinja::Value,
) -> Result<String, minijinja::Error> {
    let template = env.get_template(name)?;
    let mut out = Capped::new(part.max_output());
    template.render_captured_to(ctx, &mut out)?;
    // minijinja writes whole strings
    Ok(String::from_utf8_lossy(&out.out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Catalog;

    fn order_spec() -> (NotificationType, TemplateSpec) {
        let catalog = Catalog::embedded().unwrap();
        let t = NotificationType::parse("order_confirmation").unwrap();
        let spec = catalog.spec(&t).unwrap().clone();
        (t, spec)
    }

    fn email(subject: &str, body: &str) -> Parts {
        Parts {
            subject: Some(subject.into()),
            body: body.into(),
            html: None,
        }
    }

    #[test]
    fn a_template_of_the_types_variables_that_renders_is_accepted() {
        let (t, spec) = order_spec();
        let parts = Parts {
            html: Some("<p>{{ order_id }}: {{ grand_total | money(currency) }}</p>".into()),
            ..email(
                "Order {{ order_id }}",
                "{% for item in items %}{{ item.name }} x{{ item.quantity }}\n{% endfor %}",
            )
        };
        assert_eq!(
            check(&t, &spec, Channel::Email, &Locale::english(), &parts),
            []
        );
    }

    #[test]
    fn an_unknown_variable_is_named_with_its_line() {
        let (t, spec) = order_spec();
        let parts = email("Order {{ order_id }}", "Hello\n\n{{ customer_name }}");
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["body line 3: customer_name is not a variable of order_confirmation"]
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let (t, spec) = order_spec();
        let parts = email("Order {{ order_id }}", "one\ntwo {% if %}\n");
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].part, problems[0].line), (Part::Body, Some(2)));
        assert!(
            problems[0].message.starts_with("syntax error"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_template_that_loops_for_ever_is_refused_for_its_fuel() {
        let (t, spec) = order_spec();
        let parts = email(
            "x",
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
        );
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("ran out of fuel"),
            "{problems:?}"
        );
        // a range past the sandbox's bound stops at once, with its own reason
        let parts = email("x", "{% for a in range(100000000) %}{% endfor %}");
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert!(
            problems[0]
                .message
                .contains("range gives at most 1000 numbers"),
            "{problems:?}"
        );
    }

    /// The sandbox leaves what a notification needs: every built-in template passes as an
    /// organization's own, well within its fuel.
    #[test]
    fn every_built_in_template_would_pass_as_an_organizations() {
        let catalog = Catalog::embedded().unwrap();
        let source = |name: String| {
            catalog
                .env
                .get_template(&name)
                .ok()
                .map(|t| t.source().to_string())
        };
        let mut most_fuel = 0;
        for ((t, channel), locales) in &catalog.locales {
            if !writable(*channel) {
                continue;
            }
            let spec = catalog.spec(t).unwrap();
            for locale in locales {
                let base = format!("{t}/{locale}/{channel}");
                let parts = Parts {
                    subject: source(format!("{base}.subject.j2")),
                    body: source(format!("{base}.body.j2")).unwrap(),
                    html: source(format!("{base}.html.j2")),
                };
                let locale = Locale::parse(locale.as_str()).unwrap();
                assert_eq!(check(t, spec, *channel, &locale, &parts), [], "{base}");
                let mut env = sandbox::environment();
                env.add_template_owned("b.html.j2", parts.html.unwrap_or(parts.body))
                    .unwrap();
                let ctx = RenderContext::value(&locale, None, &spec.sample);
                let captured = env
                    .get_template("b.html.j2")
                    .unwrap()
                    .render_captured_to(&ctx, std::io::sink())
                    .unwrap();
                most_fuel = most_fuel.max(captured.state().fuel_levels().unwrap().0);
            }
        }
        assert!(most_fuel * 50 < sandbox::FUEL, "{most_fuel}");
        println!("the most fuel a built-in template uses: {most_fuel}");
    }

    #[test]
    fn parts_follow_the_channel() {
        let (t, spec) = order_spec();
        let problems = check(
            &t,
            &spec,
            Channel::Whatsapp,
            &Locale::english(),
            &email("a", "b"),
        );
        assert!(problems[0].message.contains("WhatsApp approved"));
        let no_subject = Parts {
            subject: None,
            ..email("", "b")
        };
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &no_subject);
        assert_eq!(problems[0].to_string(), "subject: an email needs a subject");
        let problems = check(
            &t,
            &spec,
            Channel::Sms,
            &Locale::english(),
            &email("a", "b"),
        );
        assert_eq!(
            problems[0].to_string(),
            "body: order_confirmation is not sent by sms"
        );
    }
}
