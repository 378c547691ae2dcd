//! The catalog's WhatsApp templates agree with what they stand for: for every sample event of
//! a type with the WhatsApp channel, each language renders its approved template's Content SID
//! and variables, and Herald's copy of the text (`whatsapp.body.j2`) shows every value sent.

use std::path::Path;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use herald_core::event::{EventKind, IncomingEvent};
use herald_core::ids::Locale;
use herald_core::model::Channel;
use herald_core::template::{Catalog, MAX_WHATSAPP_VARIABLE_CHARS};
use serde_json::Value;

#[test]
fn whatsapp_templates_render_their_content_sid_and_the_values_their_text_shows() {
    let catalog = Catalog::embedded().unwrap();
    let now = "2026-11-20T12:00:00Z".parse().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/intake");
    let mut checked = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let event: EventBridgeEvent<Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Ok(IncomingEvent {
            kind: EventKind::Notify(req),
            ..
        }) = IncomingEvent::parse(&herald_intake::envelope(&event), now)
        else {
            continue;
        };
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
