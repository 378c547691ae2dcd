//! `herald-local preview`: what a recipient would get from a type's templates, the built-in
//! ones or an organization's as the stage stores them, resolved and rendered as intake does.

use herald_adapters::{DynamoDirectory, DynamoTemplates};
use herald_core::directory::OrgSettings;
use herald_core::ids::{Locale, NotificationType, OrgId};
use herald_core::model::{Channel, TemplateRef};
use herald_core::ports::{Directory, TemplateStore};
use herald_core::template::org::{OrgCatalog, Stored};
use herald_core::template::{Catalog, Message, Rendered, Templates, variables};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Emulator;
use crate::error::LocalError;
use crate::stack::Names;

/// What to preview.
#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub notification_type: NotificationType,
    /// One channel, or every channel the type has templates for.
    pub channel: Option<Channel>,
    /// The recipient's locale; the organization's default (else English) when left out.
    pub locale: Option<Locale>,
    /// The context to render with; the type's sample when left out.
    pub context: Option<Map<String, Value>>,
}

/// What a recipient would get by one channel, or why nothing would go.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub channel: Channel,
    #[serde(flatten)]
    pub outcome: PreviewOutcome,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewOutcome {
    Rendered {
        locale: String,
        template: TemplateRef,
        subject: Option<String>,
        text: String,
        html: Option<String>,
        sms_segments: Option<u32>,
    },
    /// The event that asked for it would be rejected with this reason.
    Problem(String),
}

/// An organization's templates and settings as a stage stores them.
#[derive(Debug, Default)]
pub struct OrgTemplates {
    pub stored: Stored,
    pub settings: OrgSettings,
}

impl OrgTemplates {
    /// Reads them from the stage on a running emulator.
    pub async fn read(emulator: &Emulator, stage: &str, org: &OrgId) -> Result<Self, LocalError> {
        let aws = emulator.aws_config().await;
        let names = Names::new(stage);
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let templates = DynamoTemplates::new(dynamo.clone(), names.templates_table());
        let directory = DynamoDirectory::new(dynamo, names.directory_table());
        Ok(OrgTemplates {
            stored: templates.stored(org, true).await?,
            settings: directory
                .get_org_settings(org)
                .await?
                .map(|v| v.value)
                .unwrap_or_default(),
        })
    }
}

/// Previews with the built-in catalog, and with `org`, that organization's templates as the
/// stage on the running emulator (`AWS_ENDPOINT_URL`) stores them.
pub async fn run(
    stage: &str,
    request: &PreviewRequest,
    org: Option<&OrgId>,
) -> Result<Vec<Preview>, LocalError> {
    let builtin = Catalog::embedded().map_err(|e| LocalError::handler("preview", e))?;
    let org_templates = match org {
        Some(org) => {
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .map_err(|_| LocalError::NoRunningStack("--org"))?;
            let emulator = Emulator::connect(&endpoint).await?;
            OrgTemplates::read(&emulator, stage, org).await?
        }
        None => OrgTemplates::default(),
    };
    preview(&builtin, &org_templates, request).map_err(LocalError::Preview)
}

/// Renders the type for each channel asked; an unknown type, or a context the type's variables
/// refuse, is an error (intake would reject such an event whatever the channel).
pub fn preview(
    builtin: &Catalog,
    org: &OrgTemplates,
    request: &PreviewRequest,
) -> Result<Vec<Preview>, String> {
    let catalog = OrgCatalog::compile(builtin, &org.stored);
    let templates = Templates::new(builtin, Some(&catalog));
    let t = &request.notification_type;
    let spec = templates.spec(t).ok_or_else(|| {
        format!("unknown notification type {t}: neither built-in nor the organization's own")
    })?;
    let context = request.context.as_ref().unwrap_or(&spec.sample);
    variables::check_context(&spec.variables, context, "context")?;
    let org_locale = org.settings.default_locale.as_ref().map(|s| &s.value);
    let english = Locale::english();
    let locale = request.locale.as_ref().or(org_locale).unwrap_or(&english);
    let channels = match request.channel {
        Some(c) => vec![c],
        None => spec.channels.clone(),
    };
    Ok(channels
        .into_iter()
        .map(|channel| {
            let rendered = templates.render(&Message {
                notification_type: t,
                channel,
                locale,
                org_locale,
                timezone: None,
                context,
                sms_cap: org.settings.sms_segment_cap(),
            });
            Preview {
                channel,
                outcome: match rendered {
                    Ok(r) => rendered_outcome(r),
                    Err(e) => PreviewOutcome::Problem(e.to_string()),
                },
            }
        })
        .collect())
}

fn rendered_outcome(r: Rendered) -> PreviewOutcome {
    PreviewOutcome::Rendered {
        locale: r.locale,
        template: r.template,
        subject: r.subject,
        text: r.body,
        html: r.html,
        sms_segments: r.sms_segments,
    }
}

impl Preview {
    /// The preview as a person reads it: the channel, the template and locale it came from, the
    /// subject, then the text (and the HTML of an email).
    pub fn human(&self) -> String {
        let mut out = String::new();
        match &self.outcome {
            PreviewOutcome::Problem(why) => {
                out.push_str(&format!("{}: not sent: {why}\n", self.channel));
            }
            PreviewOutcome::Rendered {
                locale,
                template,
                subject,
                text,
                html,
                sms_segments,
            } => {
                let segments = sms_segments
                    .map(|n| format!(", {n} SMS segment{}", if n == 1 { "" } else { "s" }))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{} ({locale}, {template}{segments})\n",
                    self.channel
                ));
                if let Some(subject) = subject {
                    out.push_str(&format!("  subject: {subject}\n"));
                }
                for line in text.lines() {
                    out.push_str(&format!("  | {line}\n"));
                }
                if let Some(html) = html {
                    out.push_str("  html:\n");
                    for line in html.lines() {
                        out.push_str(&format!("  > {line}\n"));
                    }
                }
            }
        }
        out
    }
}
