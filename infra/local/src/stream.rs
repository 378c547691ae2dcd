//! Reads the notifications table's stream through the dynamodbstreams API and turns the
//! records into the `DynamoDbEvent` Lambda would hand the projector.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::emulator::REGION;
use crate::error::LocalError;

/// A stream reader that remembers, per shard, the last record it handed out.
pub struct StreamReader {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    positions: Mutex<HashMap<String, String>>,
}

fn failed(operation: &str, e: impl std::error::Error) -> LocalError {
    LocalError::Aws(format!(
        "{operation}: {}",
        aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)
    ))
}

/// An attribute value in DynamoDB's JSON form, as stream events carry it.
fn attribute(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image(m) }),
        // Herald stores no binary attributes.
        _ => json!({ "NULL": true }),
    }
}

fn image(m: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()
}

impl StreamReader {
    pub fn new(aws: &SdkConfig, table: impl Into<String>) -> Self {
        StreamReader {
            streams: aws_sdk_dynamodbstreams::Client::new(aws),
            dynamo: aws_sdk_dynamodb::Client::new(aws),
            table: table.into(),
            positions: Mutex::new(HashMap::new()),
        }
    }

    /// Every record written since the last read, oldest first, as a Lambda event.
    pub async fn read(&self) -> Result<Event, LocalError> {
        let table = self
            .dynamo
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| failed("DescribeTable", e))?;
        let arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| LocalError::Aws(format!("{} has no stream", self.table)))?;
        let stream = self
            .streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .map_err(|e| failed("DescribeStream", e))?;
        let shards = stream
            .stream_description
            .map(|d| d.shards.unwrap_or_default())
            .unwrap_or_default();
        let mut positions = self.positions.lock().await;
        let mut records = Vec::new();
        for shard in shards {
            let Some(shard_id) = shard.shard_id else {
                continue;
            };
            let request = self
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&shard_id);
            let request = match positions.get(&shard_id) {
                Some(seq) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let mut iterator = request
                .send()
                .await
                .map_err(|e| failed("GetShardIterator", e))?
                .shard_iterator;
            while let Some(it) = iterator {
                let out = self
                    .streams
                    .get_records()
                    .shard_iterator(it)
                    .send()
                    .await
                    .map_err(|e| failed("GetRecords", e))?;
                let batch = out.records.unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                for r in batch {
                    let Some(change) = r.dynamodb else { continue };
                    if let Some(seq) = &change.sequence_number {
                        positions.insert(shard_id.clone(), seq.clone());
                    }
                    let mut dynamodb = json!({
                        "Keys": change.keys.as_ref().map(image).unwrap_or_default(),
                        "SequenceNumber": change.sequence_number,
                        "SizeBytes": change.size_bytes.unwrap_or(0),
                        "StreamViewType": change.stream_view_type.map(|v| v.as_str().to_string()),
                        "ApproximateCreationDateTime": change.approximate_creation_date_time.map(|t| t.secs()),
                    });
                    if let Some(new) = &change.new_image {
                        dynamodb["NewImage"] = Value::Object(image(new));
                    }
                    if let Some(old) = &change.old_image {
                        dynamodb["OldImage"] = Value::Object(image(old));
                    }
                    records.push(json!({
                        "eventID": r.event_id,
                        "eventName": r.event_name.map(|n| n.as_str().to_string()),
                        "eventVersion": "1.1",
                        "eventSource": "aws:dynamodb",
                        "awsRegion": REGION,
                        "eventSourceARN": arn,
                        "dynamodb": dynamodb,
                    }));
                }
                iterator = out.next_shard_iterator;
            }
        }
        serde_json::from_value(json!({ "Records": records })).map_err(|e| {
            LocalError::Aws(format!("stream records do not form a DynamoDB event: {e}"))
        })
    }
}
