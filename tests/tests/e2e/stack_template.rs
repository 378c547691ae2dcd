//! The local stack stands up what infra/template.yaml declares.

use aws_sdk_sqs::types::QueueAttributeName;
use herald_e2e::Harness;
use herald_e2e::sam::{keys, template};
use herald_local::stack::{DEAD_LETTERS_INDEX, DISPATCH_MAX_RECEIVES, DISPATCH_VISIBILITY_TIMEOUT};

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
