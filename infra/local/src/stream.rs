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
        let arn = self.stream_arn().await?;
        let mut positions = self.positions.lock().await;
        let mut records = Vec::new();
        for shard_id in self.shards(&arn).await? {
            let after = positions.get(&shard_id).cloned();
            let (read, last) = self.read_shard(&arn, &shard_id, after).await?;
            records.extend(read);
            if let Some(last) = last {
                positions.insert(shard_id, last);
            }
        }
        serde_json::from_value(json!({ "Records": records })).map_err(LocalError::StreamEvent)
    }

    async fn stream_arn(&self) -> Result<String, LocalError> {
        let table = self
            .dynamo
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| LocalError::aws("DescribeTable", e))?;
        table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| LocalError::NoStream {
                table: self.table.clone(),
            })
    }

    async fn shards(&self, arn: &str) -> Result<Vec<String>, LocalError> {
        let stream = self
            .streams
            .describe_stream()
            .stream_arn(arn)
            .send()
            .await
            .map_err(|e| LocalError::aws("DescribeStream", e))?;
        Ok(stream
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|shard| shard.shard_id)
            .collect())
    }

    /// A shard's records after the sequence number `after` (from its start without one), as
    /// Lambda records, and the last one's sequence number.
    async fn read_shard(
        &self,
        arn: &str,
        shard_id: &str,
        after: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), LocalError> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard_id);
        let request = match after {
            Some(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = request
            .send()
            .await
            .map_err(|e| LocalError::aws("GetShardIterator", e))?
            .shard_iterator;
        let mut records = Vec::new();
        let mut last = None;
        while let Some(it) = iterator {
            let out = self
                .streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .map_err(|e| LocalError::aws("GetRecords", e))?;
            let batch = out.records.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for r in batch {
                if let Some(seq) = r.dynamodb.as_ref().and_then(|c| c.sequence_number.clone()) {
                    last = Some(seq);
                }
                records.extend(lambda_record(r, arn));
            }
            iterator = out.next_shard_iterator;
        }
        Ok((records, last))
    }
}

/// A stream record as Lambda hands it to a function (`None` for one without a change).
fn lambda_record(r: aws_sdk_dynamodbstreams::types::Record, arn: &str) -> Option<Value> {
    let change = r.dynamodb?;
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
    Some(json!({
        "eventID": r.event_id,
        "eventName": r.event_name.map(|n| n.as_str().to_string()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "eventSourceARN": arn,
        "dynamodb": dynamodb,
    }))
}
