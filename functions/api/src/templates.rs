//! The organization's templates and types: administrators write, operators read and preview,
//! customers never. Every write is checked before it is stored ([`org::check`],
//! [`TypeDefinition::check`]) and written only over the version it replaces (`base_version`):
//! two administrators editing at once get a 409, not a lost update.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use herald_core::ids::{Locale, NotificationType, OrgId};
use herald_core::model::{Channel, TemplateRef};
use herald_core::ports::Write;
use herald_core::template::org::{
    self, MAX_TEMPLATES, MAX_TYPES, OrgTemplate, OrgType, Parts, Stored, TypeDefinition,
};
use herald_core::template::{Message, OrgCatalog, TemplateSpec, Templates, variables};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Api;
use crate::error::ApiError;
use crate::request::{Admin, Operator, Path, Query, json};

#[derive(Deserialize)]
pub struct TypeName {
    #[serde(rename = "type")]
    notification_type: String,
}

#[derive(Deserialize)]
pub struct TemplateName {
    #[serde(rename = "type")]
    notification_type: String,
    channel: String,
    locale: String,
}

fn type_of(name: &str) -> Result<NotificationType, ApiError> {
    NotificationType::parse(name).map_err(|e| ApiError::BadRequest(format!("type: {}", e.0)))
}

fn channel_of(name: &str) -> Result<Channel, ApiError> {
    name.parse().map_err(|e: herald_core::ids::InvalidValue| {
        ApiError::BadRequest(format!("channel: {}", e.0))
    })
}

fn locale_of(name: &str) -> Result<Locale, ApiError> {
    Locale::parse(name).map_err(|e| ApiError::BadRequest(format!("locale: {}", e.0)))
}

/// A type the organization can send: built-in, or its own (a stored type never shadows a
/// built-in one). Read from what is stored, without compiling its templates.
fn spec_of<'a>(
    api: &'a Api,
    stored: &'a Stored,
    t: &NotificationType,
) -> Result<&'a TemplateSpec, ApiError> {
    api.catalog
        .spec(t)
        .or_else(|| stored.org_type(t).map(|o| &o.spec))
        .ok_or(ApiError::NotFound("notification type"))
}

/// The version a write replaces: the one the caller names in `base_version`, which must be
/// the current one. Writing where nothing is (or only a deletion) needs none.
fn replaces(
    what: &str,
    current: Option<(u64, bool)>,
    base_version: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match (current, base_version) {
        (None, None) => Ok(None),
        (Some((version, true)), None) => Ok(Some(version)),
        (Some((version, _)), Some(base)) if base == version => Ok(Some(version)),
        (Some((version, _)), _) => Err(ApiError::Conflict(format!(
            "{what} is at version {version}: send base_version {version} to replace it"
        ))),
        (None, Some(_)) => Err(ApiError::Conflict(format!(
            "{what} has no version yet: send no base_version"
        ))),
    }
}

fn written(what: &str, write: Write) -> Result<(), ApiError> {
    match write {
        Write::Done => Ok(()),
        Write::Conflict => Err(ApiError::Conflict(format!(
            "{what} changed meanwhile: read it again"
        ))),
    }
}

/// `base_version` taken out of a JSON body, the rest left to its type.
fn split_base_version(body: &[u8]) -> Result<(Option<u64>, Value), ApiError> {
    let mut value: Value = json(body)?;
    let base = match value.as_object_mut().and_then(|o| o.remove("base_version")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::BadRequest("base_version: expected a version number".into())
        })?),
    };
    Ok((base, value))
}

fn template_json(t: &OrgTemplate) -> Value {
    json!({
        "channel": t.channel, "locale": t.locale, "version": t.version,
        "subject": t.parts.subject, "body": t.parts.body, "html": t.parts.html,
        "updated_at": herald_core::time::format(&t.updated_at),
    })
}

/// What a type says of itself, and which of its channels and locales the organization wrote.
fn type_json(
    t: &NotificationType,
    spec: &TemplateSpec,
    own: Option<&OrgType>,
    stored: &Stored,
    api: &Api,
) -> Value {
    let overrides: Vec<Value> = stored
        .templates
        .iter()
        .filter(|o| &o.notification_type == t && !o.deleted)
        .map(|o| json!({"channel": o.channel, "locale": o.locale, "version": o.version}))
        .collect();
    let builtin_locales: BTreeMap<Channel, Vec<&str>> = match own {
        Some(_) => BTreeMap::new(),
        None => spec
            .channels
            .iter()
            .map(|c| (*c, api.catalog.locales(t, *c).collect()))
            .collect(),
    };
    json!({
        "type": t,
        "source": if own.is_some() { "organization" } else { "builtin" },
        "version": own.map(|o| o.version),
        "channels": spec.channels,
        "internal": spec.internal,
        "description": spec.description,
        "builtin_locales": builtin_locales,
        "overrides": overrides,
    })
}

/// `GET /templates`: every type the organization can send, and what it overrode.
pub async fn list(
    State(api): State<Api>,
    Operator(org): Operator,
) -> Result<Json<Value>, ApiError> {
    let stored = api.templates.stored(&org, false).await?;
    let mut types: Vec<Value> = api
        .catalog
        .notification_types()
        .filter_map(|t| Some(type_json(t, api.catalog.spec(t)?, None, &stored, &api)))
        .collect();
    types.extend(
        stored
            .types
            .iter()
            .filter(|o| api.catalog.spec(&o.notification_type).is_none())
            .map(|o| type_json(&o.notification_type, &o.spec, Some(o), &stored, &api)),
    );
    Ok(Json(json!({"types": types})))
}

/// `GET /templates/{type}`: the type, its variables and sample, and the organization's
/// templates of it.
pub async fn show(
    State(api): State<Api>,
    Operator(org): Operator,
    Path(TypeName { notification_type }): Path<TypeName>,
) -> Result<Json<Value>, ApiError> {
    let t = type_of(&notification_type)?;
    let stored = api.templates.stored(&org, false).await?;
    let spec = spec_of(&api, &stored, &t)?;
    let mut answer = type_json(&t, spec, stored.org_type(&t), &stored, &api);
    answer["variables"] = json!(spec.variables);
    answer["sample"] = json!(spec.sample);
    answer["templates"] = stored
        .templates
        .iter()
        .filter(|o| o.notification_type == t && !o.deleted)
        .map(template_json)
        .collect();
    Ok(Json(answer))
}

/// `PUT /templates/{type}`: defines or changes a type of the organization's own. Its stored
/// templates must still pass against the new definition.
pub async fn put_type(
    State(api): State<Api>,
    Admin(org): Admin,
    Path(TypeName { notification_type }): Path<TypeName>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let t = type_of(&notification_type)?;
    let (base_version, body) = split_base_version(&body)?;
    let definition: TypeDefinition =
        serde_json::from_value(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let problems = definition.check(&t, &api.catalog);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems.join("; ")));
    }
    let spec = definition.into_spec();
    let stored = api.templates.stored(&org, true).await?;
    let current = stored.org_type(&t);
    if current.is_none() && stored.types.len() >= MAX_TYPES {
        return Err(ApiError::BadRequest(format!(
            "type: an organization may define at most {MAX_TYPES} types"
        )));
    }
    // the templates already written for the type must still hold
    let mut broken = Vec::new();
    for o in stored
        .templates
        .iter()
        .filter(|o| o.notification_type == t && !o.deleted)
    {
        for p in org::check(&t, &spec, o.channel, &o.locale, &o.parts) {
            broken.push(format!("{}/{}: {p}", o.channel, o.locale.as_str()));
        }
    }
    if !broken.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "the type's templates would not pass: {}",
            broken.join("; ")
        )));
    }
    let replaced = replaces(
        &t.to_string(),
        current.map(|c| (c.version, false)),
        base_version,
    )?;
    let org_type = OrgType {
        notification_type: t.clone(),
        spec,
        version: replaced.map_or(1, |v| v + 1),
        updated_at: api.clock.now(),
    };
    written(
        &t.to_string(),
        api.templates.put_type(&org, &org_type, replaced).await?,
    )?;
    let mut stored = stored;
    stored.types.retain(|o| o.notification_type != t);
    stored.types.push(org_type.clone());
    Ok(Json(type_json(
        &t,
        &org_type.spec,
        Some(&org_type),
        &stored,
        &api,
    )))
}

/// A template as an administrator writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    subject: Option<String>,
    body: String,
    html: Option<String>,
}

/// `PUT /templates/{type}/{channel}/{locale}`: the organization's template there, checked
/// (parts, sandbox rules, syntax, variables, a render of the sample) before it is stored.
pub async fn put_template(
    State(api): State<Api>,
    Admin(org): Admin,
    Path(name): Path<TemplateName>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (t, channel, locale) = (
        type_of(&name.notification_type)?,
        channel_of(&name.channel)?,
        locale_of(&name.locale)?,
    );
    let (base_version, body) = split_base_version(&body)?;
    let body: TemplateBody =
        serde_json::from_value(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let parts = Parts {
        subject: body.subject,
        body: body.body,
        html: body.html,
    };
    let stored = api.templates.stored(&org, true).await?;
    let spec = spec_of(&api, &stored, &t)?;
    let problems = org::check(&t, spec, channel, &locale, &parts);
    if !problems.is_empty() {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ApiError::BadRequest(listed.join("; ")));
    }
    let current = stored.template(&t, channel, &locale);
    let live = stored.templates.iter().filter(|o| !o.deleted).count();
    if current.is_none_or(|c| c.deleted) && live >= MAX_TEMPLATES {
        return Err(ApiError::BadRequest(format!(
            "an organization may have at most {MAX_TEMPLATES} templates"
        )));
    }
    let what = format!("{t}/{channel}/{}", locale.as_str());
    let replaced = replaces(&what, current.map(|c| (c.version, c.deleted)), base_version)?;
    let template = OrgTemplate {
        notification_type: t,
        channel,
        locale,
        parts,
        version: replaced.map_or(1, |v| v + 1),
        updated_at: api.clock.now(),
        deleted: false,
    };
    written(
        &what,
        api.templates
            .put_template(&org, &template, replaced)
            .await?,
    )?;
    Ok(Json(template_json(&template)))
}

/// `DELETE /templates/{type}/{channel}/{locale}[?base_version=N]`: back to the built-in
/// template (a version without parts, so the history stays whole).
pub async fn delete_template(
    State(api): State<Api>,
    Admin(org): Admin,
    Path(name): Path<TemplateName>,
    Query(query): Query,
) -> Result<Json<Value>, ApiError> {
    let (t, channel, locale) = (
        type_of(&name.notification_type)?,
        channel_of(&name.channel)?,
        locale_of(&name.locale)?,
    );
    let base_version = query
        .get("base_version")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::BadRequest("base_version: expected a version number".into()))
        })
        .transpose()?;
    let stored = api.templates.stored(&org, true).await?;
    let current = stored
        .template(&t, channel, &locale)
        .filter(|c| !c.deleted)
        .ok_or(ApiError::NotFound("template of the organization"))?;
    let what = format!("{t}/{channel}/{}", locale.as_str());
    if base_version.is_some_and(|b| b != current.version) {
        return Err(ApiError::Conflict(format!(
            "{what} is at version {}: send base_version {} to delete it",
            current.version, current.version
        )));
    }
    let gone = OrgTemplate {
        parts: Parts::default(),
        version: current.version + 1,
        updated_at: api.clock.now(),
        deleted: true,
        ..current.clone()
    };
    written(
        &what,
        api.templates
            .put_template(&org, &gone, Some(current.version))
            .await?,
    )?;
    Ok(Json(json!({
        "type": gone.notification_type, "channel": channel, "locale": gone.locale,
        "version": gone.version, "deleted": true,
    })))
}

/// What a preview renders: a type, channel and locale, a draft or what is stored, and a
/// context or the type's sample.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    #[serde(rename = "type")]
    notification_type: String,
    channel: String,
    #[serde(default)]
    locale: Option<String>,
    /// A draft to render in place of what is stored.
    #[serde(default)]
    template: Option<TemplateBody>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

/// `POST /templates/preview`: the message a recipient would get, the SMS segments it costs,
/// and every problem found. Nothing is stored.
pub async fn preview(
    State(api): State<Api>,
    Operator(org): Operator,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PreviewBody = json(&body)?;
    let t = type_of(&body.notification_type)?;
    let channel = channel_of(&body.channel)?;
    let locale = body
        .locale
        .as_deref()
        .map(locale_of)
        .transpose()?
        .unwrap_or_else(Locale::english);
    let mut stored = api.templates.stored(&org, false).await?;
    let mut problems: Vec<String> = Vec::new();
    if let Some(draft) = body.template {
        let parts = Parts {
            subject: draft.subject,
            body: draft.body,
            html: draft.html,
        };
        let spec = spec_of(&api, &stored, &t)?;
        problems.extend(
            org::check(&t, spec, channel, &locale, &parts)
                .iter()
                .map(ToString::to_string),
        );
        // the draft in place of what is stored, as intake would resolve it
        stored
            .templates
            .retain(|o| !(o.notification_type == t && o.channel == channel && o.locale == locale));
        stored.templates.push(OrgTemplate {
            notification_type: t.clone(),
            channel,
            locale: locale.clone(),
            parts,
            version: 0,
            updated_at: api.clock.now(),
            deleted: false,
        });
    }
    let catalog = OrgCatalog::compile(&api.catalog, &stored);
    let templates = Templates::new(&api.catalog, Some(&catalog));
    let spec = templates
        .spec(&t)
        .ok_or(ApiError::NotFound("notification type"))?;
    let context = body.context.unwrap_or_else(|| spec.sample.clone());
    if let Err(e) = variables::check_context(&spec.variables, &context, "context") {
        problems.push(e);
    }
    let settings = api
        .directory
        .get_org_settings(&org)
        .await?
        .map(|v| v.value)
        .unwrap_or_default();
    let org_locale = settings.default_locale.as_ref().map(|s| s.value.clone());
    let rendered = templates.render(&Message {
        notification_type: &t,
        channel,
        locale: &locale,
        org_locale: org_locale.as_ref(),
        timezone: None,
        context: &context,
        sms_cap: settings.sms_segment_cap(),
    });
    let mut answer = match rendered {
        Ok(r) => json!({
            "subject": r.subject, "text": r.body, "html": r.html,
            "sms_segments": r.sms_segments, "locale": r.locale,
            "template": match r.template {
                TemplateRef::Organization { version: 0 } => json!({"source": "draft"}),
                other => json!(other),
            },
        }),
        Err(e) => {
            problems.push(e.to_string());
            json!({"subject": null, "text": null, "html": null, "sms_segments": null})
        }
    };
    problems.dedup();
    answer["problems"] = json!(problems);
    Ok(Json(answer))
}

/// The first of these types the organization cannot send (neither built-in nor its own), if
/// any; its own types are read only when a type is not built-in.
pub async fn unknown_type<'a>(
    api: &Api,
    org: &OrgId,
    types: impl IntoIterator<Item = &'a NotificationType>,
) -> Result<Option<&'a NotificationType>, ApiError> {
    let not_builtin: Vec<&NotificationType> = types
        .into_iter()
        .filter(|t| api.catalog.spec(t).is_none())
        .collect();
    if not_builtin.is_empty() {
        return Ok(None);
    }
    let stored = api.templates.stored(org, false).await?;
    Ok(not_builtin
        .into_iter()
        .find(|t| stored.org_type(t).is_none()))
}
