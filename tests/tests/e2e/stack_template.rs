//! The local stack stands up what infra/template.yaml declares.

use aws_sdk_sqs::types::QueueAttributeName;
use herald_e2e::Harness;
use herald_local::stack::{
    DEAD_LETTERS_INDEX, DEFAULT_SENDER, DISPATCH_MAX_RECEIVES, DISPATCH_VISIBILITY_TIMEOUT,
    INTAKE_PATTERN, Names, SENDER_DOMAIN,
};
use serde_yaml::Value;

fn template() -> Value {
    serde_yaml::from_str(include_str!("../../../infra/template.yaml"))
        .expect("template.yaml parses")
}

/// `!Sub "herald-${Stage}-x"` as the plain string.
fn sub(v: &Value) -> String {
    match v {
        Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().unwrap().to_string(),
        other => other.as_str().unwrap_or_default().to_string(),
    }
}

fn keys(schema: &Value) -> Vec<(String, String)> {
    schema
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_string(),
                k["KeyType"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn names_and_settings_match_the_template() {
    let t = template();
    let r = &t["Resources"];
    let names = Names::new("${Stage}");
    assert_eq!(sub(&r["HeraldBus"]["Properties"]["Name"]), names.bus());
    assert_eq!(
        sub(&r["NotificationsTable"]["Properties"]["TableName"]),
        names.notifications_table()
    );
    assert_eq!(
        sub(&r["DirectoryTable"]["Properties"]["TableName"]),
        names.directory_table()
    );
    assert_eq!(
        sub(&r["ViewsTable"]["Properties"]["TableName"]),
        names.views_table()
    );
    assert_eq!(
        sub(&r["ProjectorDeadLetterQueue"]["Properties"]["QueueName"]),
        names.projector_dlq()
    );
    assert_eq!(
        sub(&r["DispatchQueue"]["Properties"]["QueueName"]),
        names.dispatch_queue()
    );
    assert_eq!(
        sub(&r["DispatchDeadLetterQueue"]["Properties"]["QueueName"]),
        names.dispatch_dlq()
    );
    assert_eq!(
        sub(&r["IntakeDeadLetterQueue"]["Properties"]["QueueName"]),
        names.intake_dlq()
    );
    let q = &r["DispatchQueue"]["Properties"];
    assert_eq!(
        q["VisibilityTimeout"].as_u64(),
        Some(u64::from(DISPATCH_VISIBILITY_TIMEOUT))
    );
    assert_eq!(
        q["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(u64::from(DISPATCH_MAX_RECEIVES))
    );
    let pattern =
        &r["IntakeFunction"]["Properties"]["Events"]["HeraldEvents"]["Properties"]["Pattern"];
    let pattern: serde_json::Value = serde_json::to_value(pattern).unwrap();
    assert_eq!(
        pattern,
        serde_json::from_str::<serde_json::Value>(INTAKE_PATTERN).unwrap()
    );
    assert_eq!(
        t["Parameters"]["SenderDomain"]["Default"].as_str(),
        Some(SENDER_DOMAIN)
    );
    assert_eq!(
        t["Parameters"]["DefaultSender"]["Default"].as_str(),
        Some(DEFAULT_SENDER)
    );
}

#[test]
fn every_variable_a_function_reads_is_set_by_the_template() {
    let t = template();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .clone();
    let env_of = |function: &str| {
        let mut vars: Vec<String> = globals
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        if let Some(own) =
            t["Resources"][function]["Properties"]["Environment"]["Variables"].as_mapping()
        {
            vars.extend(own.keys().map(|k| k.as_str().unwrap().to_string()));
        }
        vars
    };
    let intake = env_of("IntakeFunction");
    for v in [
        "HERALD_NOTIFICATIONS_TABLE",
        "HERALD_DIRECTORY_TABLE",
        "HERALD_DISPATCH_QUEUE_URL",
        "HERALD_DEFAULT_SENDER",
    ] {
        assert!(intake.iter().any(|x| x == v), "intake lacks {v}");
    }
    let dispatch = env_of("DispatchFunction");
    for v in [
        "HERALD_NOTIFICATIONS_TABLE",
        "HERALD_DISPATCH_QUEUE_URL",
        "HERALD_RETRY_MAX_ATTEMPTS",
        "HERALD_RETRY_BASE_SECONDS",
        "HERALD_RETRY_FACTOR",
        "HERALD_RETRY_CAP_SECONDS",
        "HERALD_PROVIDER_SECRETS_PREFIX",
    ] {
        assert!(dispatch.iter().any(|x| x == v), "dispatch lacks {v}");
    }
    let scheduler = env_of("SchedulerFunction");
    for v in [
        "HERALD_NOTIFICATIONS_TABLE",
        "HERALD_DISPATCH_QUEUE_URL",
        "HERALD_SWEEP_BUDGET",
    ] {
        assert!(scheduler.iter().any(|x| x == v), "scheduler lacks {v}");
    }
    assert!(
        env_of("ProjectorFunction")
            .iter()
            .any(|x| x == "HERALD_VIEWS_TABLE")
    );
    let due = &t["Resources"]["NotificationsTable"]["Properties"]["GlobalSecondaryIndexes"][1];
    assert_eq!(
        due["IndexName"].as_str(),
        Some(herald_local::stack::DUE_INDEX)
    );
}

#[tokio::test]
async fn the_emulator_holds_the_tables_and_queues_the_template_declares() {
    let h = Harness::new().await;
    let t = template();
    let r = &t["Resources"];
    let dynamo = aws_sdk_dynamodb::Client::new(&h.local.aws);
    let names = &h.local.stack.names;

    for (logical, table) in [
        ("NotificationsTable", names.notifications_table()),
        ("DirectoryTable", names.directory_table()),
        ("ViewsTable", names.views_table()),
    ] {
        let declared = &r[logical]["Properties"];
        let d = dynamo
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        let actual: Vec<(String, String)> = d
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_string(),
                    k.key_type().as_str().to_string(),
                )
            })
            .collect();
        assert_eq!(actual, keys(&declared["KeySchema"]), "{logical} keys");
        let declared_indexes: Vec<(String, Vec<(String, String)>)> =
            declared["GlobalSecondaryIndexes"]
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .map(|i| {
                            (
                                i["IndexName"].as_str().unwrap().to_string(),
                                keys(&i["KeySchema"]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
        let actual_indexes: Vec<(String, Vec<(String, String)>)> = d
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                let k = i
                    .key_schema()
                    .iter()
                    .map(|k| {
                        (
                            k.attribute_name().to_string(),
                            k.key_type().as_str().to_string(),
                        )
                    })
                    .collect();
                (i.index_name().unwrap_or_default().to_string(), k)
            })
            .collect();
        assert_eq!(actual_indexes, declared_indexes, "{logical} indexes");
        let declared_stream = declared["StreamSpecification"]["StreamViewType"].as_str();
        let actual_stream = d
            .stream_specification()
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_string());
        assert_eq!(
            actual_stream.as_deref(),
            declared_stream,
            "{logical} stream"
        );
    }
    assert!(
        r["NotificationsTable"]["Properties"]["GlobalSecondaryIndexes"][0]["IndexName"].as_str()
            == Some(DEAD_LETTERS_INDEX)
    );

    let sqs = aws_sdk_sqs::Client::new(&h.local.aws);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&h.local.stack.dispatch_queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        attrs[&QueueAttributeName::VisibilityTimeout],
        DISPATCH_VISIBILITY_TIMEOUT.to_string()
    );
    let redrive: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        redrive["maxReceiveCount"].as_u64(),
        Some(u64::from(DISPATCH_MAX_RECEIVES))
    );
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&names.dispatch_dlq())
    );
}

#[test]
fn the_http_api_routes_are_the_handlers_routes() {
    let t = template();
    let mut routed = std::collections::BTreeSet::new();
    for function in ["ApiFunction", "WebhooksFunction"] {
        for (_, event) in t["Resources"][function]["Properties"]["Events"]
            .as_mapping()
            .unwrap()
        {
            let p = &event["Properties"];
            routed.insert((
                p["Method"].as_str().unwrap().to_uppercase(),
                p["Path"].as_str().unwrap().to_string(),
            ));
        }
    }
    let served: std::collections::BTreeSet<(String, String)> = herald_api::routes()
        .into_iter()
        .chain(herald_webhooks::routes())
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routed, served);
}
