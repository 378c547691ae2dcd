//! Every file in `events/` is a real event as its function receives it, and the intake samples
//! end as events/README.md says (the rejected ones with the reason it gives).

use std::path::{Path, PathBuf};

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use herald_core::event::{EventError, IncomingEvent};
use herald_core::ports::DispatchMessage;
use herald_core::provider_events::ses::SnsMessage;
use serde_json::Value;

fn samples(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no samples in events/{folder}");
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_folder_of_samples_is_read_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut folders: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        [
            "dispatch",
            "intake",
            "intake-queue",
            "projector",
            "providers",
            "realtime",
            "scheduler",
            "templates",
            "webhooks"
        ]
    );
}

/// Each file is an organization's provider settings, one `PUT /admin/providers/{provider}`
/// body per provider, and each body passes the checks that route makes.
#[test]
fn provider_samples_are_valid_settings_of_an_organization_with_intake_samples() {
    use herald_core::model::{Platform, Provider};
    use herald_core::providers::OrgProviders;
    let intake: Vec<String> = samples("intake").iter().map(|p| read(p)).collect();
    for path in samples("providers") {
        let org = path.file_stem().unwrap().to_string_lossy().into_owned();
        herald_core::ids::OrgId::parse(&org).unwrap();
        assert!(
            intake
                .iter()
                .any(|e| e.contains(&format!("\"organization_id\": \"{org}\""))),
            "{org} has no intake samples"
        );
        let providers: serde_json::Map<String, Value> = serde_json::from_str(&read(&path)).unwrap();
        assert!(!providers.is_empty(), "{}", path.display());
        for (name, body) in providers {
            let checked = match name.as_str() {
                "fcm" => {
                    herald_core::push_apps::application_attributes(Platform::Fcm, body).map(|_| ())
                }
                "apns" => {
                    herald_core::push_apps::application_attributes(Platform::Apns, body).map(|_| ())
                }
                other => OrgProviders::default().set(
                    Provider::parse(other).unwrap_or_else(|_| panic!("{other}: not a provider")),
                    body,
                ),
            };
            checked.unwrap_or_else(|e| panic!("{}: {name}: {}", path.display(), e.0));
        }
    }
}

/// Each file is an organization's own types and templates (`PUT /templates/...` bodies): every
/// type and template passes the checks the api makes before it stores one, and each type
/// renders by each of its channels, in each locale it has, from the organization's templates
/// with the context its intake sample carries.
#[test]
fn template_samples_pass_the_apis_checks_and_render_their_intake_samples() {
    use herald_core::ids::{Locale, NotificationType};
    use herald_core::model::{Channel, TemplateRef};
    use herald_core::sms::SegmentCap;
    use herald_core::template::org::{
        self, OrgCatalog, OrgTemplate, OrgType, Parts, Stored, TypeDefinition,
    };
    use herald_core::template::{Catalog, Message, Templates};

    let builtin = Catalog::embedded().unwrap();
    let now = "2026-11-20T12:00:00Z".parse().unwrap();
    let requests: Vec<(String, herald_core::event::NotifyRequest)> = samples("intake")
        .iter()
        .filter_map(|p| {
            let event: EventBridgeEvent<Value> = serde_json::from_str(&read(p)).unwrap();
            match IncomingEvent::parse(&herald_intake::envelope(&event), now) {
                Ok(IncomingEvent {
                    org_id,
                    kind: herald_core::event::EventKind::Notify(r),
                    ..
                }) => Some((org_id.as_str().to_string(), r)),
                _ => None,
            }
        })
        .collect();
    for path in samples("templates") {
        let org = path.file_stem().unwrap().to_string_lossy().into_owned();
        let sample: serde_json::Map<String, Value> = serde_json::from_str(&read(&path)).unwrap();
        let mut stored = Stored::default();
        for (name, body) in sample["types"].as_object().unwrap() {
            let t = NotificationType::parse(name).unwrap();
            let definition: TypeDefinition = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(
                definition.check(&t, &builtin),
                Vec::<String>::new(),
                "{org}: {t}"
            );
            stored.types.push(OrgType {
                notification_type: t,
                spec: definition.into_spec(),
                version: 1,
                updated_at: now,
            });
        }
        for (name, body) in sample["templates"].as_object().unwrap() {
            let [t, channel, locale] = name.split('/').collect::<Vec<_>>()[..] else {
                panic!("{org}: {name} is not type/channel/locale");
            };
            let t = NotificationType::parse(t).unwrap();
            let channel: Channel = channel.parse().unwrap();
            let locale = Locale::parse(locale).unwrap();
            let parts: Parts = serde_json::from_value(body.clone()).unwrap();
            let spec = builtin
                .spec(&t)
                .or_else(|| Some(&stored.org_type(&t)?.spec))
                .unwrap_or_else(|| panic!("{org}: {t} is neither built-in nor defined here"));
            let problems = org::check(&t, spec, channel, &locale, &parts);
            assert!(problems.is_empty(), "{org}: {name}: {problems:?}");
            stored.templates.push(OrgTemplate {
                notification_type: t,
                channel,
                locale,
                parts,
                version: 1,
                updated_at: now,
                deleted: false,
            });
        }
        let catalog = OrgCatalog::compile(&builtin, &stored);
        let templates = Templates::new(&builtin, Some(&catalog));
        for o in &stored.types {
            let t = &o.notification_type;
            let (_, request) = requests
                .iter()
                .find(|(o, r)| r.notification_type == *t && *o == org)
                .unwrap_or_else(|| panic!("{org}: {t} has no intake sample"));
            for template in stored
                .templates
                .iter()
                .filter(|x| x.notification_type == *t)
            {
                let rendered = templates
                    .render(&Message {
                        notification_type: t,
                        channel: template.channel,
                        locale: &template.locale,
                        org_locale: None,
                        timezone: None,
                        context: &request.context,
                        sms_cap: SegmentCap::default(),
                    })
                    .unwrap_or_else(|e| panic!("{org}: {t} {}: {e}", template.channel));
                assert_eq!(rendered.template, TemplateRef::Organization { version: 1 });
                assert_eq!(rendered.locale, template.locale.as_str());
            }
        }
    }
}

#[test]
fn intake_samples_are_eventbridge_events_that_end_as_the_contract_says() {
    // the samples tell one story on 2026-11-20
    let now = "2026-11-20T12:00:00Z".parse().unwrap();
    for path in samples("intake") {
        let event: EventBridgeEvent<Value> = serde_json::from_str(&read(&path)).unwrap();
        let envelope = herald_intake::envelope(&event);
        let parsed = IncomingEvent::parse(&envelope, now);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match name.as_str() {
            "90-rejected-missing-organization.json" => {
                assert_eq!(parsed, Err(EventError::MissingOrganization))
            }
            "91-rejected-bad-grand-total.json" => assert_eq!(
                parsed.unwrap_err().to_string(),
                "detail.grand_total: expected a decimal amount (at most 24 characters) as a string or number, found a boolean"
            ),
            "92-rejected-unknown-detail-type.json" => assert_eq!(
                parsed,
                Err(EventError::UnknownDetailType("InvoicePainted".into()))
            ),
            _ => assert!(parsed.is_ok(), "{name}: {parsed:?}"),
        }
    }
}

#[test]
fn dispatch_samples_are_sqs_batches_of_dispatch_messages() {
    for path in samples("dispatch") {
        let event: SqsEvent = serde_json::from_str(&read(&path)).unwrap();
        let bodies: Vec<Result<DispatchMessage, _>> = event
            .records
            .iter()
            .map(|r| serde_json::from_str::<DispatchMessage>(r.body.as_deref().unwrap()))
            .collect();
        let poison = path.ends_with("sqs-poison.json");
        assert_eq!(bodies.len(), 2, "{path:?}");
        assert!(bodies[0].is_ok());
        assert_eq!(bodies[1].is_err(), poison, "{path:?}");
    }
}

/// What intake's Lambda gets: the bus rule's deliveries to the intake queue, each body one of
/// the intake samples as it is (the poison one's last body is not an event at all).
#[test]
fn intake_queue_samples_are_sqs_batches_of_the_intake_samples() {
    let events: Vec<Value> = samples("intake")
        .iter()
        .map(|p| serde_json::from_str(&read(p)).unwrap())
        .collect();
    for path in samples("intake-queue") {
        let batch: SqsEvent = serde_json::from_str(&read(&path)).unwrap();
        let poison = path.ends_with("sqs-poison.json");
        assert_eq!(batch.records.len(), 2, "{path:?}");
        for (i, record) in batch.records.iter().enumerate() {
            let body = record.body.as_deref().unwrap();
            let event = serde_json::from_str::<EventBridgeEvent<Value>>(body);
            if poison && i == 1 {
                assert!(event.is_err(), "{path:?}");
            } else {
                let event: Value = serde_json::from_str(body).unwrap();
                assert!(
                    events.contains(&event),
                    "{path:?}: record {i} is an intake sample"
                );
            }
        }
    }
}

#[test]
fn the_scheduler_sample_is_a_scheduled_event() {
    for path in samples("scheduler") {
        let event: EventBridgeEvent<Value> = serde_json::from_str(&read(&path)).unwrap();
        assert_eq!(event.detail_type, "Scheduled Event");
    }
}

#[test]
fn the_projector_sample_is_a_stream_batch_of_notifications() {
    for path in samples("projector") {
        let event: DynamoDbEvent = serde_json::from_str(&read(&path)).unwrap();
        assert_eq!(event.records.len(), 3);
        for record in &event.records {
            let image: herald_core::model::Notification =
                serde_dynamo::from_item(record.change.new_image.clone()).unwrap();
            assert!(image.id.as_str().starts_with("ntf_"));
        }
    }
}

#[test]
fn the_webhook_sample_is_an_sns_message() {
    for path in samples("webhooks") {
        let message = SnsMessage::parse(read(&path).as_bytes()).unwrap();
        assert_eq!(message.kind, "Notification");
    }
}

/// The WebSocket API's samples: the authorizer's request (its token a placeholder, so
/// refused) and the routes' events, run through the real handlers in order.
#[tokio::test]
async fn realtime_samples_are_what_api_gateway_sends_the_websocket_functions() {
    use std::sync::Arc;

    use aws_lambda_events::apigw::{
        ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayWebsocketProxyRequest,
    };
    use herald_adapters::tokens::{KeyIssuer, TokenVerifier};
    use herald_core::testing::{FixedClock, MemoryConnections};

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/realtime");
    let file = |name: &str| read(&dir.join(name));
    let authorizer: ApiGatewayCustomAuthorizerRequestTypeRequest =
        serde_json::from_str(&file("authorizer-connect.json")).unwrap();
    let issuer = KeyIssuer::generate("herald-local-1", "herald-local", "herald-local").unwrap();
    let verifier = TokenVerifier::with_keys(issuer.policy(), issuer.key_set().unwrap());
    let verdict = herald_realtime::authorizer::handle(
        &verifier,
        lambda_runtime::LambdaEvent::new(authorizer, Default::default()),
    )
    .await;
    assert_eq!(verdict.unwrap_err().to_string(), "Unauthorized");

    let connections = Arc::new(MemoryConnections::default());
    let routes = herald_realtime::Routes {
        connections: connections.clone(),
        clock: FixedClock::at("2026-11-24T10:00:00Z".parse().unwrap()),
    };
    let mut answers = Vec::new();
    let mut open = Vec::new();
    for name in ["connect.json", "ping.json", "disconnect.json"] {
        let event: ApiGatewayWebsocketProxyRequest = serde_json::from_str(&file(name)).unwrap();
        let answer = routes.route(event).await;
        answers.push((answer.status_code, answer.body));
        open.push(
            connections
                .open
                .lock()
                .unwrap()
                .values()
                .map(|s| s.len())
                .sum::<usize>(),
        );
    }
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    assert_eq!(
        answers[1].1,
        Some(aws_lambda_events::encodings::Body::Text(
            r#"{"type":"pong"}"#.into()
        ))
    );
    assert_eq!(open, vec![1, 1, 0]);
}
