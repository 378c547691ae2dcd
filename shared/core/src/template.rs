//! The template catalog and its strict rendering.
//!
//! Layout (embedded at build time from `templates/`):
//! `<type>/template.json` (channels, internal flag), `<type>/<locale>/<channel>.subject.j2`
//! (email, push, in-app), `<type>/<locale>/<channel>.body.j2` (text) and, for email only,
//! `<type>/<locale>/email.html.j2` (an HTML alternative, rendered with autoescape on: a value
//! from an event never becomes markup). A missing variable is an error naming it, never a blank.
//!
//! WhatsApp messages a business starts must be templates WhatsApp approved: a type with the
//! `whatsapp` channel names, in its `template.json`, the Twilio Content SID of its approved
//! template per locale and what each of the template's numbered variables shows
//! ([`WhatsappSpec`]); its `whatsapp.body.j2` is Herald's copy of the approved text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono_tz::Tz;
use minijinja::value::{Enumerator, Object, Value as JinjaValue};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::ids::{ContentSid, Locale, NotificationType};
use crate::model::{Channel, TemplateRef, WhatsappContent};
use crate::sms::{self, SegmentCap};

pub mod cache;
mod filters;
pub mod org;
pub use org::OrgCatalog;
pub mod sandbox;
pub mod variables;

pub use filters::format_money;
use filters::{date_filter, datetime_filter, money_filter};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalog_files.rs"));
}

// Cargo shares a build script's output between checkouts of the workspace at different paths
// that use one target directory; the script reruns when built from another working directory
// (build.rs), and this refuses a catalog listed in another checkout should it not have.
const _: () = assert!(
    same_text(
        embedded::LISTED_FROM,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates")
    ),
    "the template catalog was listed in another checkout: run `cargo clean -p herald-core`"
);

const fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// What the catalog says of a notification type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSpec {
    /// The channels the type has templates for, which are also its default channels.
    pub channels: Vec<Channel>,
    /// Internal notifications go to the organization, never into a customer feed.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub description: String,
    /// The approved WhatsApp templates, for a type with the `whatsapp` channel.
    #[serde(default)]
    pub whatsapp: Option<WhatsappSpec>,
    /// What its templates may read from the event's context (a built-in type's: what the event
    /// contract defines).
    #[serde(default)]
    pub variables: BTreeMap<String, variables::Variable>,
    /// A context its templates render with in a preview and in the checks of a new template.
    #[serde(default)]
    pub sample: Map<String, Value>,
}

/// A type's approved WhatsApp templates (`"whatsapp"` in its `template.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappSpec {
    /// Catalog locale → the Twilio Content SID of the template approved in that language; one
    /// for every locale with a `whatsapp.body.j2`, and no other.
    pub content_sid: BTreeMap<String, ContentSid>,
    /// The template's numbered variables, `"1"` to `"n"`, each an expression over the event's
    /// variables (`order_id`, `grand_total | money(currency)`), rendered as the templates are.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// The most numbered variables a WhatsApp template may have in the catalog.
pub const MAX_WHATSAPP_VARIABLES: usize = 10;

/// The most characters a WhatsApp template variable's value may have: a longer value is cut at
/// a word, with an ellipsis (WhatsApp refuses a template whose text and values pass 1024).
pub const MAX_WHATSAPP_VARIABLE_CHARS: usize = 256;

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("template catalog: {file}: {message}")]
    Invalid { file: String, message: String },
    #[error("template catalog: {notification_type} has no English {channel} body")]
    MissingEnglish {
        notification_type: String,
        channel: Channel,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    #[error("unknown notification type {0:?}")]
    UnknownType(String),
    #[error("{notification_type} has no {channel} template")]
    UnsupportedChannel {
        notification_type: String,
        channel: Channel,
    },
    #[error("template {template} needs variable(s) the event lacks: {}", .missing.join(", "))]
    MissingVariables {
        template: String,
        missing: Vec<String>,
    },
    /// A value the template reads is not in the event (an attribute of a list entry, say).
    #[error("template {template} needs a value the event lacks: {variable} (line {line})")]
    MissingValue {
        template: String,
        variable: String,
        line: usize,
    },
    #[error("template {template} failed to render: {message}")]
    Failed { template: String, message: String },
    /// WhatsApp refuses a template variable without a value.
    #[error("template {template} renders WhatsApp variable {variable} empty")]
    EmptyWhatsappVariable { template: String, variable: String },
}

/// The most a WhatsApp body may hold: Twilio refuses longer bodies. (An SMS is cut to its
/// organization's segment cap instead, at most ten segments, well within this.)
pub const MAX_SMS_CHARS: usize = 1600;

/// Cuts `text` to at most `max` characters, at a word boundary, with an ellipsis.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max || max == 0 {
        return text.to_string();
    }
    let keep: String = text.chars().take(max - 1).collect();
    // back to the last whole word, unless that would throw away most of the text
    let cut = match keep.rfind(char::is_whitespace) {
        Some(i) if i >= keep.len() / 2 => &keep[..i],
        _ => keep.as_str(),
    };
    format!("{}…", cut.trim_end())
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    /// Email only, when the type has an HTML template in the chosen locale.
    pub html: Option<String>,
    /// SMS only: the segments the body is billed as.
    pub sms_segments: Option<u32>,
    /// The catalog locale actually used after fallback (`fr` for `fr-CA`).
    pub locale: String,
    /// WhatsApp only: the approved template in that locale and its variables' values.
    pub whatsapp: Option<WhatsappContent>,
    /// The template it was rendered from.
    pub template: TemplateRef,
}

/// What a message is rendered for.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub notification_type: &'a NotificationType,
    pub channel: Channel,
    /// The recipient's locale (else the organization's, else English).
    pub locale: &'a Locale,
    /// The organization's default locale: tried after the recipient's language, before English.
    pub org_locale: Option<&'a Locale>,
    pub timezone: Option<Tz>,
    pub context: &'a Map<String, Value>,
    pub sms_cap: SegmentCap,
}

/// A message's parts as its templates wrote them, before the channel's bounds.
struct RawParts {
    subject: Option<String>,
    body: String,
    html: Option<String>,
    whatsapp: Option<WhatsappContent>,
}

impl RawParts {
    /// The message as sent: the subject on one trimmed line, the body cut to the channel.
    fn finish(self, m: &Message<'_>, locale: &str, template: TemplateRef) -> Rendered {
        let body = self.body.trim_end();
        let body = match m.channel {
            // typography GSM-7 lacks would double what the SMS costs
            Channel::Sms => sms::fit(&sms::plain(body), m.sms_cap),
            Channel::Whatsapp => fit(body, MAX_SMS_CHARS),
            _ => body.to_string(),
        };
        Rendered {
            sms_segments: (m.channel == Channel::Sms).then(|| sms::segments(&body)),
            subject: self.subject.map(|s| s.trim().to_string()),
            body,
            html: self.html,
            locale: locale.to_string(),
            whatsapp: self.whatsapp,
            template,
        }
    }
}

/// The templates an organization's messages render from: its own over the built-in catalog.
///
/// For a recipient's locale chain (`fr-CA` → `fr` → the organization's default locale →
/// `en`), the first locale with a template wins, and in a locale the organization's template
/// beats the built-in one. A type of the organization's own has only its templates.
#[derive(Debug, Clone, Copy)]
pub struct Templates<'a> {
    builtin: &'a Catalog,
    org: Option<&'a OrgCatalog>,
}

impl<'a> Templates<'a> {
    pub fn new(builtin: &'a Catalog, org: Option<&'a OrgCatalog>) -> Self {
        Templates { builtin, org }
    }

    /// A type's spec: a built-in type's, else the organization's own type's.
    pub fn spec(&self, notification_type: &NotificationType) -> Option<&'a TemplateSpec> {
        self.builtin
            .spec(notification_type)
            .or_else(|| self.org?.spec(notification_type))
    }

    /// Whether the type is one the organization defined.
    pub fn is_custom(&self, notification_type: &NotificationType) -> bool {
        self.builtin.spec(notification_type).is_none()
            && self
                .org
                .is_some_and(|o| o.spec(notification_type).is_some())
    }

    /// Renders a message from the template its locale chain resolves to.
    pub fn render(&self, m: &Message<'_>) -> Result<Rendered, RenderError> {
        let t = m.notification_type;
        let spec = self
            .spec(t)
            .ok_or_else(|| RenderError::UnknownType(t.to_string()))?;
        let unsupported = || RenderError::UnsupportedChannel {
            notification_type: t.to_string(),
            channel: m.channel,
        };
        if !spec.channels.contains(&m.channel) {
            return Err(unsupported());
        }
        let key = (t.clone(), m.channel);
        let builtin = self.builtin.locales.get(&key);
        let own = self.org.and_then(|o| Some((o, o.locales(&key)?)));
        let ctx = RenderContext::value(m.locale, m.timezone, m.context);
        for locale in m.locale.chain(m.org_locale) {
            if let Some((org, version)) = own.and_then(|(o, l)| Some((o, *l.get(&locale)?))) {
                let raw = org.render_at(t, m.channel, &locale, version, &ctx)?;
                return Ok(raw.finish(m, &locale, TemplateRef::Organization { version }));
            }
            if builtin.is_some_and(|l| l.contains(&locale)) {
                let raw = self.builtin.render_at(spec, m, &locale, &ctx)?;
                return Ok(raw.finish(m, &locale, TemplateRef::Builtin));
            }
        }
        Err(unsupported())
    }
}

/// The catalog with its compiled templates. Build it once per cold start.
pub struct Catalog {
    env: Environment<'static>,
    specs: BTreeMap<NotificationType, TemplateSpec>,
    /// (type, channel) → the locales that have a body template.
    locales: BTreeMap<(NotificationType, Channel), BTreeSet<String>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("specs", &self.specs)
            .finish()
    }
}

fn invalid(file: &str, message: impl Into<String>) -> CatalogError {
    CatalogError::Invalid {
        file: file.to_string(),
        message: message.into(),
    }
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Catalog::from_files(
            embedded::FILES
                .iter()
                .map(|(n, c)| (n.to_string(), c.to_string())),
        )
    }

    /// A catalog from `(path, content)` pairs laid out as under `templates/`.
    pub fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalog, CatalogError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(escape_by_suffix);
        env.add_filter("money", money_filter);
        env.add_filter("date", date_filter);
        env.add_filter("datetime", datetime_filter);
        let mut specs = BTreeMap::new();
        let mut locales: BTreeMap<(NotificationType, Channel), BTreeSet<String>> = BTreeMap::new();
        let mut html_bodies: Vec<(String, NotificationType, String)> = Vec::new();
        for (path, content) in files {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                [ty, "template.json"] => {
                    let t = NotificationType::parse(*ty).map_err(|e| invalid(&path, e.0))?;
                    let spec: TemplateSpec = serde_json::from_str(&content)
                        .map_err(|e| invalid(&path, e.to_string()))?;
                    specs.insert(t, spec);
                }
                [ty, locale, file] => {
                    let t = NotificationType::parse(*ty).map_err(|e| invalid(&path, e.0))?;
                    Locale::parse(*locale).map_err(|e| invalid(&path, e.0))?;
                    let stem = file
                        .strip_suffix(".j2")
                        .ok_or_else(|| invalid(&path, "templates end in .j2"))?;
                    let (channel, part) = stem.split_once('.').ok_or_else(|| {
                        invalid(&path, "expected <channel>.subject.j2 or <channel>.body.j2")
                    })?;
                    let channel: Channel = channel
                        .parse()
                        .map_err(|e: crate::ids::InvalidValue| invalid(&path, e.0))?;
                    match part {
                        "body" => {
                            locales
                                .entry((t, channel))
                                .or_default()
                                .insert(locale.to_string());
                        }
                        "subject" => {}
                        "html" if channel == Channel::Email => {
                            html_bodies.push((path.clone(), t.clone(), locale.to_string()));
                        }
                        "html" => {
                            return Err(invalid(&path, "only email templates have an html part"));
                        }
                        other => {
                            return Err(invalid(&path, format!("unknown template part {other:?}")));
                        }
                    }
                    env.add_template_owned(path.clone(), content)
                        .map_err(|e| invalid(&path, e.to_string()))?;
                }
                _ => {}
            }
        }
        // an HTML body is an alternative to a text one, never the only body
        for (path, t, locale) in html_bodies {
            let has_text = locales
                .get(&(t, Channel::Email))
                .is_some_and(|l| l.contains(&locale));
            if !has_text {
                return Err(invalid(&path, "an html body needs email.body.j2 beside it"));
            }
        }
        for (t, spec) in &specs {
            check_whatsapp(&mut env, t, spec, &locales)?;
            for channel in &spec.channels {
                let has_english = locales
                    .get(&(t.clone(), *channel))
                    .is_some_and(|l| l.contains("en"));
                if !has_english {
                    return Err(CatalogError::MissingEnglish {
                        notification_type: t.to_string(),
                        channel: *channel,
                    });
                }
            }
        }
        check_variables(&env, &specs)?;
        Ok(Catalog {
            env,
            specs,
            locales,
        })
    }

    pub fn spec(&self, notification_type: &NotificationType) -> Option<&TemplateSpec> {
        self.specs.get(notification_type)
    }

    pub fn notification_types(&self) -> impl Iterator<Item = &NotificationType> {
        self.specs.keys()
    }

    /// The locales the catalog has a type's templates in on a channel.
    pub fn locales(
        &self,
        notification_type: &NotificationType,
        channel: Channel,
    ) -> impl Iterator<Item = &str> {
        self.locales
            .get(&(notification_type.clone(), channel))
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Renders the message for a type, channel and locale (with fallback) from `context`, from
    /// the built-in catalog alone; an SMS body is cut to `sms_cap` segments.
    pub fn render(
        &self,
        notification_type: &NotificationType,
        channel: Channel,
        locale: &Locale,
        timezone: Option<Tz>,
        context: &Map<String, Value>,
        sms_cap: SegmentCap,
    ) -> Result<Rendered, RenderError> {
        Templates::new(self, None).render(&Message {
            notification_type,
            channel,
            locale,
            org_locale: None,
            timezone,
            context,
            sms_cap,
        })
    }

    /// The built-in parts for a type and channel in a locale it has.
    fn render_at(
        &self,
        spec: &TemplateSpec,
        m: &Message<'_>,
        chosen: &str,
        ctx: &JinjaValue,
    ) -> Result<RawParts, RenderError> {
        let (notification_type, channel, context) = (m.notification_type, m.channel, m.context);
        let unsupported = || RenderError::UnsupportedChannel {
            notification_type: notification_type.to_string(),
            channel,
        };
        let base = format!("{notification_type}/{chosen}/{channel}");
        let subject_name = format!("{base}.subject.j2");
        let subject = match self.env.get_template(&subject_name) {
            Ok(t) => Some(self.render_one(&subject_name, &t, ctx, context)?),
            Err(_) => None,
        };
        let body_name = format!("{base}.body.j2");
        let body_template = self
            .env
            .get_template(&body_name)
            .map_err(|_| unsupported())?;
        let body = self.render_one(&body_name, &body_template, ctx, context)?;
        let html_name = format!("{base}.html.j2");
        let html = match self.env.get_template(&html_name) {
            Ok(t) if channel == Channel::Email => {
                Some(self.render_one(&html_name, &t, ctx, context)?)
            }
            _ => None,
        };
        let whatsapp = match (channel, &spec.whatsapp) {
            (Channel::Whatsapp, Some(w)) => {
                Some(self.whatsapp_content(notification_type, w, chosen, ctx, context)?)
            }
            // the catalog refuses the channel without its templates
            (Channel::Whatsapp, None) => return Err(unsupported()),
            _ => None,
        };
        Ok(RawParts {
            subject,
            body,
            html,
            whatsapp,
        })
    }

    /// The approved template for the chosen locale and its variables rendered: runs of ASCII
    /// whitespace made one space (WhatsApp refuses new lines and tabs in a value; the no-break
    /// spaces of French amounts stay), each cut to [`MAX_WHATSAPP_VARIABLE_CHARS`], none empty.
    fn whatsapp_content(
        &self,
        notification_type: &NotificationType,
        spec: &WhatsappSpec,
        locale: &str,
        ctx: &JinjaValue,
        context: &Map<String, Value>,
    ) -> Result<WhatsappContent, RenderError> {
        let content_sid = spec.content_sid.get(locale).cloned().ok_or_else(|| {
            RenderError::UnsupportedChannel {
                notification_type: notification_type.to_string(),
                channel: Channel::Whatsapp,
            }
        })?;
        let mut variables = BTreeMap::new();
        for number in spec.variables.keys() {
            let name = whatsapp_variable_template(notification_type, number);
            let template = self
                .env
                .get_template(&name)
                .map_err(|e| RenderError::Failed {
                    template: name.clone(),
                    message: e.to_string(),
                })?;
            let raw = self.render_one(&name, &template, ctx, context)?;
            let value = raw.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
            if value.is_empty() {
                return Err(RenderError::EmptyWhatsappVariable {
                    template: name,
                    variable: number.clone(),
                });
            }
            variables.insert(number.clone(), fit(&value, MAX_WHATSAPP_VARIABLE_CHARS));
        }
        Ok(WhatsappContent {
            content_sid,
            variables,
        })
    }

    fn render_one(
        &self,
        name: &str,
        template: &minijinja::Template<'_, '_>,
        ctx: &JinjaValue,
        context: &Map<String, Value>,
    ) -> Result<String, RenderError> {
        template.render(ctx).map_err(|e| {
            if e.kind() == ErrorKind::UndefinedError {
                let mut missing: Vec<String> = template
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|v| !context.contains_key(v) && v != "locale" && v != "timezone")
                    .collect();
                missing.sort();
                if !missing.is_empty() {
                    return RenderError::MissingVariables {
                        template: name.to_string(),
                        missing,
                    };
                }
                // declared, but a part of it is missing: name what the template read there
                let expression = e.range().and_then(|r| {
                    let source = template.source();
                    let end = r.end.min(source.len());
                    let open = source.get(..end)?.rfind("{{").map_or(r.start, |i| i + 2);
                    let text = source.get(open..end)?;
                    let variable: String = text
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.'))
                        .collect();
                    Some(variable)
                });
                if let Some(variable) = expression.filter(|v| !v.is_empty()) {
                    return RenderError::MissingValue {
                        template: name.to_string(),
                        variable,
                        line: e.line().unwrap_or_default(),
                    };
                }
            }
            RenderError::Failed {
                template: name.to_string(),
                message: e.to_string(),
            }
        })
    }
}

/// What a template sees: the event's context, and `locale` and `timezone` over it. One map
/// looked up by name; its values are converted once per message, not per template.
#[derive(Debug)]
struct RenderContext {
    locale: JinjaValue,
    timezone: JinjaValue,
    values: BTreeMap<String, JinjaValue>,
}

impl RenderContext {
    fn value(locale: &Locale, timezone: Option<Tz>, context: &Map<String, Value>) -> JinjaValue {
        JinjaValue::from_object(RenderContext {
            locale: JinjaValue::from(locale.as_str()),
            timezone: JinjaValue::from(timezone.map_or("UTC", |tz| tz.name())),
            values: context
                .iter()
                .map(|(k, v)| (k.clone(), JinjaValue::from_serialize(v)))
                .collect(),
        })
    }
}

impl Object for RenderContext {
    fn get_value(self: &Arc<Self>, key: &JinjaValue) -> Option<JinjaValue> {
        match key.as_str()? {
            "locale" => Some(self.locale.clone()),
            "timezone" => Some(self.timezone.clone()),
            name => self.values.get(name).cloned(),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<JinjaValue> = self.values.keys().map(|k| k.as_str().into()).collect();
        keys.extend(["locale", "timezone"].map(JinjaValue::from));
        Enumerator::Values(keys)
    }
}

/// Each type declares its variables and a sample context of them, and its templates read no
/// other: what an organization's template for the type may read is then known.
fn check_variables(
    env: &Environment<'static>,
    specs: &BTreeMap<NotificationType, TemplateSpec>,
) -> Result<(), CatalogError> {
    for (t, spec) in specs {
        let file = format!("{t}/template.json");
        if spec.variables.is_empty() {
            return Err(invalid(&file, "declares no variables"));
        }
        variables::check_context(&spec.variables, &spec.sample, "sample")
            .map_err(|e| invalid(&file, e))?;
        let prefix = format!("{t}/");
        for (name, template) in env.templates() {
            if !name.starts_with(&prefix) {
                continue;
            }
            let unknown = template.undeclared_variables(false).into_iter().find(|v| {
                !spec.variables.contains_key(v) && !variables::ALWAYS_THERE.contains(&v.as_str())
            });
            if let Some(v) = unknown {
                return Err(invalid(name, format!("reads {v}, not a variable of {t}")));
            }
        }
    }
    Ok(())
}

/// HTML parts escape what they print; text parts print the event's values as they are.
fn escape_by_suffix(name: &str) -> AutoEscape {
    if name.ends_with(".html.j2") {
        AutoEscape::Html
    } else {
        AutoEscape::None
    }
}

/// The name under which a WhatsApp variable's expression is compiled.
fn whatsapp_variable_template(notification_type: &NotificationType, number: &str) -> String {
    format!("{notification_type}/template.json#whatsapp.variables.{number}")
}

/// A type's WhatsApp section agrees with its channels and its bodies: present exactly when the
/// type has the channel, a Content SID for each locale with a WhatsApp body (and no other), the
/// variables numbered 1 to n (at most [`MAX_WHATSAPP_VARIABLES`]), each a bare expression that
/// compiles.
fn check_whatsapp(
    env: &mut Environment<'static>,
    notification_type: &NotificationType,
    spec: &TemplateSpec,
    locales: &BTreeMap<(NotificationType, Channel), BTreeSet<String>>,
) -> Result<(), CatalogError> {
    let file = format!("{notification_type}/template.json");
    let wanted = spec.channels.contains(&Channel::Whatsapp);
    let whatsapp = match (&spec.whatsapp, wanted) {
        (None, false) => return Ok(()),
        (None, true) => {
            return Err(invalid(
                &file,
                "the whatsapp channel needs a \"whatsapp\" section: content_sid per locale and variables",
            ));
        }
        (Some(_), false) => {
            return Err(invalid(
                &file,
                "a \"whatsapp\" section without the whatsapp channel in channels",
            ));
        }
        (Some(w), true) => w,
    };
    let bodies = locales
        .get(&(notification_type.clone(), Channel::Whatsapp))
        .cloned()
        .unwrap_or_default();
    let sids: BTreeSet<String> = whatsapp.content_sid.keys().cloned().collect();
    if let Some(locale) = bodies.difference(&sids).next() {
        return Err(invalid(
            &file,
            format!(
                "whatsapp.content_sid has no template for locale {locale}, which has a whatsapp body"
            ),
        ));
    }
    if let Some(locale) = sids.difference(&bodies).next() {
        return Err(invalid(
            &file,
            format!("whatsapp.content_sid.{locale}: no whatsapp body for this locale"),
        ));
    }
    if whatsapp.variables.len() > MAX_WHATSAPP_VARIABLES {
        return Err(invalid(
            &file,
            format!("whatsapp.variables: at most {MAX_WHATSAPP_VARIABLES}"),
        ));
    }
    let numbered =
        (1..=whatsapp.variables.len()).all(|i| whatsapp.variables.contains_key(&i.to_string()));
    if !numbered {
        return Err(invalid(
            &file,
            "whatsapp.variables must be numbered \"1\" to \"n\", as the template's placeholders are",
        ));
    }
    for (number, expression) in &whatsapp.variables {
        let bare = !expression.trim().is_empty()
            && !["{{", "}}", "{%", "%}", "{#", "#}"]
                .iter()
                .any(|m| expression.contains(m));
        if !bare {
            return Err(invalid(
                &file,
                format!("whatsapp.variables.{number}: must be an expression such as order_id"),
            ));
        }
        let name = whatsapp_variable_template(notification_type, number);
        env.add_template_owned(name, format!("{{{{ {expression} }}}}"))
            .map_err(|e| invalid(&file, format!("whatsapp.variables.{number}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::embedded().unwrap()
    }

    fn t(s: &str) -> NotificationType {
        NotificationType::parse(s).unwrap()
    }

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn order() -> Map<String, Value> {
        ctx(json!({
            "customer_id": "cus_1", "order_id": "ord_1001", "grand_total": "59.90", "currency": "USD",
            "items": [{"sku": "s1", "name": "Mug", "quantity": 2, "unit_price": "19.95"}],
            "created_at": "2026-11-20T09:59:00Z"
        }))
    }

    #[test]
    fn every_type_in_the_catalog_renders_its_english_and_french_templates() {
        let c = catalog();
        let types: Vec<_> = c.notification_types().map(|t| t.to_string()).collect();
        for expected in [
            "chargeback_opened",
            "order_confirmation",
            "refund_issued",
            "reminder",
            "review_prompt",
            "ticket_confirmation",
        ] {
            assert!(
                types.iter().any(|t| t == expected),
                "{expected} missing from {types:?}"
            );
        }
        assert!(c.spec(&t("chargeback_opened")).unwrap().internal);
    }

    #[test]
    fn order_confirmation_renders_amounts_for_the_locale() {
        let c = catalog();
        let en = c
            .render(
                &t("order_confirmation"),
                Channel::Email,
                &Locale::parse("en-US").unwrap(),
                None,
                &order(),
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(en.locale, "en");
        assert!(en.subject.as_deref().unwrap().contains("ord_1001"));
        assert!(en.body.contains("$59.90"), "{}", en.body);
        let fr = c
            .render(
                &t("order_confirmation"),
                Channel::Email,
                &Locale::parse("fr-CA").unwrap(),
                None,
                &order(),
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(fr.locale, "fr");
        assert!(fr.body.contains("59,90\u{a0}$"), "{}", fr.body);
    }

    #[test]
    fn unknown_locales_fall_back_to_english() {
        let r = catalog()
            .render(
                &t("order_confirmation"),
                Channel::Email,
                &Locale::parse("de-DE").unwrap(),
                None,
                &order(),
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(r.locale, "en");
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let mut context = order();
        context.remove("grand_total");
        let err = catalog()
            .render(
                &t("order_confirmation"),
                Channel::Email,
                &Locale::english(),
                None,
                &context,
                SegmentCap::DEFAULT,
            )
            .unwrap_err();
        match err {
            RenderError::MissingVariables { missing, .. } => {
                assert_eq!(missing, vec!["grand_total"])
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_missing_value_inside_a_list_is_named() {
        let c = catalog();
        let mut context = order();
        context["items"] = json!([{"sku": "a", "name": "A", "quantity": 1}]);
        let err = c
            .render(
                &t("order_confirmation"),
                Channel::Email,
                &Locale::english(),
                None,
                &context,
                SegmentCap::DEFAULT,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "template order_confirmation/en/email.body.j2 needs a value the event lacks: item.unit_price (line 6)"
        );
    }

    #[test]
    fn whatsapp_bodies_are_cut_to_fit_at_a_word() {
        let long = "word ".repeat(400);
        let cut = fit(long.trim_end(), MAX_SMS_CHARS);
        assert!(cut.chars().count() <= MAX_SMS_CHARS);
        assert!(cut.ends_with("word…"), "{}", &cut[cut.len() - 12..]);
        assert_eq!(fit("short", MAX_SMS_CHARS), "short");
    }

    fn reminder(title: &str, body: &str) -> Map<String, Value> {
        ctx(
            json!({"reminder_id": "r", "severity": "critical", "title": title, "body": body,
            "action_url": "https://acme.example/r?a=1&b=2"}),
        )
    }

    #[test]
    fn sms_bodies_are_cut_to_the_segment_cap_and_counted() {
        let c = catalog();
        let render = |context: &Map<String, Value>, cap: u64| {
            c.render(
                &t("reminder"),
                Channel::Sms,
                &Locale::english(),
                None,
                context,
                SegmentCap::new(cap).unwrap(),
            )
            .unwrap()
        };
        let long = reminder("Pay", &"please pay ".repeat(180));
        let sms = render(&long, 3);
        assert_eq!(sms.sms_segments, Some(3));
        assert_eq!(crate::sms::segments(&sms.body), 3);
        assert!(sms.body.ends_with("..."), "GSM-7 keeps a GSM-7 ellipsis");
        assert!(sms.body.starts_with("URGENT: Pay - please pay"));
        let sms = render(&long, 1);
        assert_eq!(sms.sms_segments, Some(1));
        assert!(sms.body.chars().count() <= 160);
        // short enough: untouched, one segment
        let short = render(&reminder("Pay", "today"), 1);
        assert_eq!(short.sms_segments, Some(1));
        assert!(short.body.ends_with("r?a=1&b=2"), "{}", short.body);
        // other channels are not counted
        let email = c
            .render(
                &t("reminder"),
                Channel::Email,
                &Locale::english(),
                None,
                &long,
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(email.sms_segments, None);
    }

    #[test]
    fn html_bodies_escape_event_values_and_text_bodies_keep_them() {
        let c = catalog();
        let context = reminder("<script>alert(1)</script>", "Tom & Jerry's \"bill\"");
        for locale in ["en", "fr"] {
            let r = c
                .render(
                    &t("reminder"),
                    Channel::Email,
                    &Locale::parse(locale).unwrap(),
                    None,
                    &context,
                    SegmentCap::DEFAULT,
                )
                .unwrap();
            let html = r.html.expect("the reminder has an HTML body");
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
                "{html}"
            );
            assert!(!html.contains("<script>"), "{html}");
            assert!(
                html.contains("Tom &amp; Jerry&#x27;s &quot;bill&quot;"),
                "{html}"
            );
            assert!(
                html.contains("https:&#x2f;&#x2f;acme.example&#x2f;r?a=1&amp;b=2"),
                "{html}"
            );
            assert!(r.body.contains("<script>alert(1)</script>"), "{}", r.body);
            assert!(r.body.contains("Tom & Jerry's \"bill\""), "{}", r.body);
            assert!(r.subject.unwrap().contains("<script>alert(1)</script>"));
        }
    }

    #[test]
    fn types_without_an_html_template_keep_plain_text() {
        let refund = ctx(
            json!({"customer_id": "c", "refund_id": "rf", "order_id": "o", "amount": "5", "currency": "EUR"}),
        );
        let r = catalog()
            .render(
                &t("refund_issued"),
                Channel::Email,
                &Locale::english(),
                None,
                &refund,
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(r.html, None);
        let in_app = catalog()
            .render(
                &t("reminder"),
                Channel::InApp,
                &Locale::english(),
                None,
                &reminder("a", "b"),
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(in_app.html, None);
    }

    #[test]
    fn an_html_part_is_for_email_beside_a_text_body() {
        let files = |extra: &[(&str, &str)]| {
            let mut files = vec![
                (
                    "x/template.json".to_string(),
                    r#"{"channels": ["email", "sms"], "variables": {"n": {"type": "string", "required": false}}}"#.to_string(),
                ),
                ("x/en/email.body.j2".to_string(), "hi".to_string()),
                ("x/en/sms.body.j2".to_string(), "hi".to_string()),
            ];
            files.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
            Catalog::from_files(files)
        };
        assert!(files(&[("x/en/email.html.j2", "<p>hi</p>")]).is_ok());
        let err = files(&[("x/en/sms.html.j2", "<p>hi</p>")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("only email templates have an html part"),
            "{err}"
        );
        let err = files(&[("x/fr/email.html.j2", "<p>hi</p>")]).unwrap_err();
        assert!(
            err.to_string().contains("needs email.body.j2 beside it"),
            "{err}"
        );
    }

    #[test]
    fn channels_without_templates_are_refused() {
        let err = catalog()
            .render(
                &t("order_confirmation"),
                Channel::Sms,
                &Locale::english(),
                None,
                &order(),
                SegmentCap::DEFAULT,
            )
            .unwrap_err();
        assert!(matches!(err, RenderError::UnsupportedChannel { .. }));
    }

    /// A one-type catalog with a WhatsApp channel: `template.json`'s whatsapp section as given,
    /// English (and maybe French) bodies.
    fn whatsapp_catalog(whatsapp: Value, locales: &[&str]) -> Result<Catalog, CatalogError> {
        let mut files = vec![(
            "x/template.json".to_string(),
            json!({"channels": ["whatsapp"], "whatsapp": whatsapp, "variables": {"name": {"type": "string"}}, "sample": {"name": "Ada"}}).to_string(),
        )];
        for locale in locales {
            files.push((
                format!("x/{locale}/whatsapp.body.j2"),
                "Hello {{ name }}".to_string(),
            ));
        }
        Catalog::from_files(files)
    }

    const SID_EN: &str = "HX0123456789abcdef0123456789abcdef";
    const SID_FR: &str = "HXfedcba9876543210fedcba9876543210";

    #[test]
    fn whatsapp_renders_the_locales_template_and_its_variables() {
        let c = catalog();
        let r = c
            .render(
                &t("order_confirmation"),
                Channel::Whatsapp,
                &Locale::parse("fr-CA").unwrap(),
                None,
                &order(),
                SegmentCap::DEFAULT,
            )
            .unwrap();
        let spec = c.spec(&t("order_confirmation")).unwrap();
        let content = r.whatsapp.unwrap();
        assert_eq!(
            Some(&content.content_sid),
            spec.whatsapp.as_ref().unwrap().content_sid.get("fr")
        );
        assert_eq!(
            content.variables,
            BTreeMap::from([
                ("1".to_string(), "ord_1001".to_string()),
                ("2".to_string(), "59,90\u{a0}$".to_string()),
            ])
        );
        let email = c
            .render(
                &t("order_confirmation"),
                Channel::Email,
                &Locale::english(),
                None,
                &order(),
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(email.whatsapp, None);
    }

    #[test]
    fn whatsapp_values_are_one_line_bounded_and_never_empty() {
        let c = catalog();
        let reminder = |title: &str, body: String| {
            ctx(json!({"reminder_id": "r", "severity": "critical", "title": title, "body": body}))
        };
        let r = c
            .render(
                &t("reminder"),
                Channel::Whatsapp,
                &Locale::english(),
                None,
                &reminder("Pay\n\tnow", "please pay ".repeat(100)),
                SegmentCap::DEFAULT,
            )
            .unwrap();
        let variables = r.whatsapp.unwrap().variables;
        assert_eq!(variables["1"], "Pay now");
        assert!(variables["2"].chars().count() <= MAX_WHATSAPP_VARIABLE_CHARS);
        assert!(variables["2"].ends_with("pay…"), "{}", variables["2"]);
        let err = c
            .render(
                &t("reminder"),
                Channel::Whatsapp,
                &Locale::english(),
                None,
                &reminder(" \n ", "b".into()),
                SegmentCap::DEFAULT,
            )
            .unwrap_err();
        assert!(
            matches!(&err, RenderError::EmptyWhatsappVariable { variable, .. } if variable == "1"),
            "{err:?}"
        );
        let mut missing = order();
        missing.remove("currency");
        let err = c
            .render(
                &t("order_confirmation"),
                Channel::Whatsapp,
                &Locale::english(),
                None,
                &missing,
                SegmentCap::DEFAULT,
            )
            .unwrap_err();
        assert!(err.to_string().contains("currency"), "{err}");
    }

    #[test]
    fn the_catalog_refuses_whatsapp_templates_it_could_not_send() {
        let good =
            || json!({"content_sid": {"en": SID_EN, "fr": SID_FR}, "variables": {"1": "name"}});
        whatsapp_catalog(good(), &["en", "fr"]).unwrap();
        let cases = [
            (
                json!({"content_sid": {"en": "HX123"}, "variables": {}}),
                "content_sid",
            ),
            (
                json!({"content_sid": {"en": SID_EN}, "variables": {}}),
                "locale fr",
            ),
            (
                json!({"content_sid": {"en": SID_EN, "fr": SID_FR, "de": SID_FR}, "variables": {}}),
                "content_sid.de",
            ),
            (
                json!({"content_sid": {"en": SID_EN, "fr": SID_FR}, "variables": {"2": "name"}}),
                "numbered",
            ),
            (
                json!({"content_sid": {"en": SID_EN, "fr": SID_FR}, "variables": {"1": "name }}{{ x"}}),
                "variables.1",
            ),
            (
                json!({"content_sid": {"en": SID_EN, "fr": SID_FR}, "variables": {"1": "name |"}}),
                "variables.1",
            ),
            (
                json!({"content_sid": {"en": SID_EN, "fr": SID_FR}, "sid": SID_EN}),
                "unknown field",
            ),
            (Value::Null, "needs a \"whatsapp\" section"),
        ];
        for (whatsapp, expected) in cases {
            let err = whatsapp_catalog(whatsapp.clone(), &["en", "fr"]).unwrap_err();
            assert!(err.to_string().contains(expected), "{whatsapp}: {err}");
        }
        let many: Map<String, Value> = (1..=MAX_WHATSAPP_VARIABLES + 1)
            .map(|i| (i.to_string(), json!("name")))
            .collect();
        let err = whatsapp_catalog(
            json!({"content_sid": {"en": SID_EN}, "variables": many}),
            &["en"],
        )
        .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        let without_channel = Catalog::from_files([
            (
                "x/template.json".to_string(),
                json!({"channels": ["sms"], "whatsapp": good()}).to_string(),
            ),
            ("x/en/sms.body.j2".to_string(), "Hi".to_string()),
        ])
        .unwrap_err();
        assert!(
            without_channel
                .to_string()
                .contains("without the whatsapp channel"),
            "{without_channel}"
        );
    }

    #[test]
    fn dates_follow_language_and_time_zone() {
        let c = Catalog::from_files([
            (
                "x/template.json".to_string(),
                r#"{"channels": ["sms"], "variables": {"at": {"type": "datetime"}}, "sample": {"at": "2026-12-06T00:30:00Z"}}"#.to_string(),
            ),
            (
                "x/en/sms.body.j2".to_string(),
                "{{ at | date }} / {{ at | datetime }}".to_string(),
            ),
            (
                "x/fr/sms.body.j2".to_string(),
                "{{ at | date }} / {{ at | datetime }}".to_string(),
            ),
        ])
        .unwrap();
        let context = ctx(json!({"at": "2026-12-06T00:30:00Z"}));
        let ny: Tz = "America/New_York".parse().unwrap();
        let en = c
            .render(
                &t("x"),
                Channel::Sms,
                &Locale::english(),
                Some(ny),
                &context,
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(
            en.body,
            "December 5, 2026 / December 5, 2026 at 7:30 PM (EST)"
        );
        let fr = c
            .render(
                &t("x"),
                Channel::Sms,
                &Locale::parse("fr").unwrap(),
                None,
                &context,
                SegmentCap::DEFAULT,
            )
            .unwrap();
        assert_eq!(fr.body, "6 décembre 2026 / 6 décembre 2026 à 0 h 30 (UTC)");
    }
}
