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
        ("TemplatesTable", names.templates_table()),
        ("ConnectionsTable", names.connections_table()),
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

/// The metrics an alarm watches: (namespace, name, dimension names) of its metric or of
/// each metric of its math.
fn watched(alarm: &serde_yaml::Value) -> Vec<(String, String, Vec<String>)> {
    let one = |m: &serde_yaml::Value| {
        let dims = m["Dimensions"]
            .as_sequence()
            .map(|d| {
                d.iter()
                    .map(|d| d["Name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        (
            herald_e2e::sam::sub(&m["Namespace"]),
            m["MetricName"].as_str().unwrap().to_string(),
            dims,
        )
    };
    match alarm["Metrics"].as_sequence() {
        Some(metrics) => metrics
            .iter()
            .filter(|m| m.get("MetricStat").is_some())
            .map(|m| one(&m["MetricStat"]["Metric"]))
            .collect(),
        None => vec![one(alarm)],
    }
}

#[test]
fn every_alarm_watches_a_metric_that_is_written_and_tells_the_alarm_topic() {
    use herald_core::telemetry::Metric;
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let of_type = |kind: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r["Type"] == kind)
            .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
    };
    let written: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
    let mut watched_all = Vec::new();
    for (name, alarm) in of_type("AWS::CloudWatch::Alarm") {
        let p = &alarm["Properties"];
        for action in ["AlarmActions", "OKActions"] {
            let topic = &p[action][0];
            assert_eq!(
                serde_yaml::to_string(topic).unwrap().trim(),
                "!Ref AlarmTopic",
                "{name} {action}"
            );
        }
        for (namespace, metric, dims) in watched(p) {
            if namespace == "Herald/${Stage}" {
                assert!(written.contains(&metric.as_str()), "{name}: {metric}");
                assert!(
                    dims.iter()
                        .all(|d| ["channel", "provider", "code"].contains(&d.as_str())),
                    "{name}: {dims:?}"
                );
            }
            watched_all.push((namespace, metric, dims));
        }
    }
    // every dead-letter queue and every function is watched
    for (queue, _) in of_type("AWS::SQS::Queue").filter(|(q, _)| q.ends_with("DeadLetterQueue")) {
        let alarm = format!(
            "{}DeadLettersAlarm",
            queue.trim_end_matches("DeadLetterQueue")
        );
        assert!(resources.contains_key(alarm.as_str()), "{queue}: {alarm}");
    }
    let functions = of_type("AWS::Serverless::Function").count();
    for metric in ["Errors", "Throttles"] {
        let watching = watched_all
            .iter()
            .filter(|(ns, m, _)| ns == "AWS/Lambda" && m == metric)
            .count();
        assert_eq!(watching, functions, "{metric}");
    }
    // the dashboard shows only metrics that are written
    let body =
        herald_e2e::sam::sub(&t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]);
    let dashboard: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut shown = std::collections::BTreeSet::new();
    for widget in dashboard["widgets"].as_array().unwrap() {
        let text = widget["properties"]["metrics"].to_string();
        for part in text.split("MetricName=\\\"").skip(1) {
            let metric = &part[..part.find('\\').unwrap()];
            assert!(written.contains(&metric), "{metric}");
            shown.insert(metric.to_string());
        }
    }
    // every metric dispatch, the projector and the webhooks write is on a widget
    assert_eq!(shown.len(), written.len() - 1, "{shown:?}"); // SchedulerLag: a plain metric
}
