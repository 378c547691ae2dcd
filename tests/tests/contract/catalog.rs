//! Every template renders with its sample context, in every locale of the catalog: each
//! notification type's context comes from the intake samples in `events/intake/`, so a
//! template that reads a variable its event does not carry fails here, HTML bodies included.
//! A type with the WhatsApp channel renders its approved template's Content SID and variables in
//! each language, and Herald's copy of the text (`whatsapp.body.j2`) shows every value sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use herald_core::event::{EventKind, IncomingEvent, NotifyRequest};
use herald_core::ids::{Locale, NotificationType};
use herald_core::model::Channel;
use herald_core::sms::{self, SegmentCap};
use herald_core::template::{Catalog, MAX_WHATSAPP_VARIABLE_CHARS};
use serde_json::Value;

fn root(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(folder)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
}

/// The types the sample organizations define themselves (`events/templates`): their templates
/// are the organizations', not the catalog's.
fn organizations_types() -> BTreeSet<String> {
    entries(&root("events/templates"))
        .into_iter()
        .flat_map(|path| {
            let sample: Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            sample["types"]
                .as_object()
                .map(|types| types.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect()
}

/// One sample request per built-in notification type, from the intake samples.
fn sample_requests() -> BTreeMap<NotificationType, NotifyRequest> {
    let now = "2026-11-20T12:00:00Z".parse().unwrap();
    let own = organizations_types();
    let mut requests = BTreeMap::new();
    for path in entries(&root("events/intake")) {
        let event: EventBridgeEvent<Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let envelope = herald_intake::envelope(&event);
        if let Ok(IncomingEvent {
            kind: EventKind::Notify(request),
            ..
        }) = IncomingEvent::parse(&envelope, now)
        {
            if own.contains(request.notification_type.as_str()) {
                continue;
            }
            requests
                .entry(request.notification_type.clone())
                .or_insert(request);
        }
    }
    requests
}

/// The locales each type has a folder for under `templates/`.
fn locales_of(notification_type: &NotificationType) -> Vec<String> {
    entries(&root("templates").join(notification_type.as_str()))
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_template_renders_with_its_sample_context_in_every_locale() {
    let catalog = Catalog::embedded().unwrap();
    let requests = sample_requests();
    let types: BTreeSet<&NotificationType> = catalog.notification_types().collect();
    assert_eq!(
        types,
        requests.keys().collect(),
        "every type has an intake sample, and every sample's type is in the catalog"
    );
    let mut html_rendered = 0;
    for (notification_type, request) in &requests {
        let spec = catalog.spec(notification_type).unwrap();
        for locale in locales_of(notification_type) {
            let folder = root("templates")
                .join(notification_type.as_str())
                .join(&locale);
            for channel in &spec.channels {
                let what = format!("{notification_type} {channel} in {locale}");
                let rendered = catalog
                    .render(
                        notification_type,
                        *channel,
                        &Locale::parse(&locale).unwrap(),
                        None,
                        &request.context,
                        SegmentCap::DEFAULT,
                    )
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(rendered.locale, locale, "{what}: its own template");
                assert!(!rendered.body.trim().is_empty(), "{what}: an empty body");
                let has_html = *channel == Channel::Email && folder.join("email.html.j2").exists();
                match (&rendered.html, has_html) {
                    (Some(html), true) => {
                        html_rendered += 1;
                        assert!(html.starts_with("<!DOCTYPE html>"), "{what}: {html}");
                        // inline styles only: nothing fetched from elsewhere when it is opened
                        for outside in ["<img", "<link", "<script", "url(", "<style"] {
                            assert!(!html.contains(outside), "{what}: {outside} in {html}");
                        }
                    }
                    (None, false) => {}
                    (html, _) => panic!("{what}: template present {has_html}, rendered {html:?}"),
                }
                if *channel == Channel::Sms {
                    assert_eq!(rendered.sms_segments, Some(sms::segments(&rendered.body)));
                }
            }
        }
    }
    // reminder and order_confirmation, in English and French
    assert!(html_rendered >= 4, "{html_rendered} HTML bodies rendered");
}

#[test]
fn whatsapp_templates_render_their_content_sid_and_the_values_their_text_shows() {
    let catalog = Catalog::embedded().unwrap();
    let mut checked = BTreeSet::new();
    for (notification_type, req) in sample_requests() {
        let path = &notification_type;
        let spec = catalog.spec(&req.notification_type).unwrap();
        if !spec.channels.contains(&Channel::Whatsapp) {
            continue;
        }
        let sids = &spec.whatsapp.as_ref().unwrap().content_sid;
        for language in ["en", "fr"] {
            let rendered = catalog
                .render(
                    &req.notification_type,
                    Channel::Whatsapp,
                    &Locale::parse(language).unwrap(),
                    None,
                    &req.context,
                    SegmentCap::DEFAULT,
                )
                .unwrap();
            let content = rendered.whatsapp.unwrap();
            assert_eq!(Some(&content.content_sid), sids.get(language), "{path:?}");
            assert!(!content.variables.is_empty(), "{path:?}");
            for (number, value) in &content.variables {
                assert!(
                    rendered.body.contains(value.as_str()),
                    "{path:?} {language}: variable {number} is not in the text"
                );
                assert!(value.chars().count() <= MAX_WHATSAPP_VARIABLE_CHARS);
            }
        }
        checked.insert(req.notification_type.to_string());
    }
    assert_eq!(
        checked.into_iter().collect::<Vec<_>>(),
        ["order_confirmation", "reminder"]
    );
}
