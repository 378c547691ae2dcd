//! Every AWS request each part of Herald makes, counted as it leaves: each function's clients
//! are built on an `SdkConfig` whose HTTP client notes the request (its service and
//! operation, and for DynamoDB writes the items written) before sending it on. The SDK has no
//! interceptor that applies to every client of a config, so the count is taken where every
//! client's requests pass: the HTTP connector.
//!
//! The counts are what AWS would bill: each attempt is a request, retries included.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use serde::Serialize;
use serde_json::Value;

/// Who made a request: one of Herald's functions, the Lambda event source that feeds one (in
/// AWS the poller's requests are billed too), or the local stack's own plumbing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Intake,
    Dispatch,
    /// The intake queue's event source mapping: receives and deletes.
    IntakeQueue,
    /// The dispatch queue's event source mapping: receives and deletes.
    DispatchQueue,
    Scheduler,
    Projector,
    Webhooks,
    Api,
    /// The WebSocket API's routes.
    Realtime,
    /// What only the local stack does (reading the stream, its own queues, reports).
    Local,
}

impl Component {
    /// Whether AWS bills this part's requests to the deployment (the local plumbing stands in
    /// for work AWS does for free or that the deployment does not do).
    pub fn is_billed(self) -> bool {
        self != Component::Local
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Intake => "intake",
            Component::Dispatch => "dispatch",
            Component::IntakeQueue => "intake queue",
            Component::DispatchQueue => "dispatch queue",
            Component::Scheduler => "scheduler",
            Component::Projector => "projector",
            Component::Webhooks => "webhooks",
            Component::Api => "api",
            Component::Realtime => "realtime",
            Component::Local => "local",
        }
    }
}

/// One item a DynamoDB write request wrote (or deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemWrite {
    pub table: String,
    /// The item's key, as DynamoDB JSON.
    pub key: BTreeMap<String, String>,
    /// The item's size when the request carries the whole item (a put), in bytes as DynamoDB
    /// counts them.
    pub size: Option<usize>,
    /// Written in a transaction: DynamoDB bills twice the units.
    pub transactional: bool,
}

/// The items a DynamoDB read request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ItemReads {
    /// Items asked for (a query or scan counts as one: Herald's pages are small).
    pub items: usize,
    pub consistent: bool,
    pub transactional: bool,
}

impl ItemReads {
    /// Read request units, each item taken as at most 4 KB: half a unit eventually
    /// consistent, one consistent, two in a transaction.
    pub fn units(&self) -> f64 {
        let per_item = match (self.transactional, self.consistent) {
            (true, _) => 2.0,
            (false, true) => 1.0,
            (false, false) => 0.5,
        };
        per_item * self.items as f64
    }
}

/// One request as it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub component: Component,
    pub service: String,
    pub operation: String,
    pub writes: Vec<ItemWrite>,
    pub reads: Option<ItemReads>,
    /// The entries of an EventBridge `PutEvents` (EventBridge bills per entry).
    pub entries: usize,
}

/// The requests counted so far, shared by every config made with it, and the functions'
/// invocations (Lambda bills each).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    requests: Arc<Mutex<Vec<Request>>>,
    invocations: Arc<Mutex<BTreeMap<Component, u64>>>,
    answered_writes: Arc<Mutex<Vec<AnsweredWrite>>>,
}

/// A DynamoDB write request as its answer came back: when what it wrote was durable
/// (`herald-local latency` times the feed's changes from here).
#[derive(Debug, Clone)]
pub struct AnsweredWrite {
    pub at: std::time::Instant,
    pub component: Component,
    pub writes: Vec<ItemWrite>,
}

impl RequestLog {
    /// An HTTP client that counts `component`'s requests here and sends them on.
    pub fn http_client(&self, component: Component) -> SharedHttpClient {
        self.http_client_with(component, None)
    }

    /// As [`RequestLog::http_client`], with `faults` deciding, after each request is counted,
    /// whether it is sent on or answered otherwise (`herald-local chaos`).
    pub fn http_client_with(
        &self,
        component: Component,
        faults: Option<crate::faults::Faults>,
    ) -> SharedHttpClient {
        let inner = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build_https();
        SharedHttpClient::new(Counting {
            component,
            log: self.clone(),
            inner,
            faults,
        })
    }

    /// Every request counted so far, in the order they left.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().clone()
    }

    /// The DynamoDB write requests answered so far, in the order their answers came.
    pub fn answered_writes(&self) -> Vec<AnsweredWrite> {
        self.answered_lock().clone()
    }

    /// Forgets what was counted: the next figures start from here.
    pub fn clear(&self) {
        self.lock().clear();
        self.invocations_lock().clear();
        self.answered_lock().clear();
    }

    fn answered_lock(&self) -> std::sync::MutexGuard<'_, Vec<AnsweredWrite>> {
        self.answered_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes one invocation of a function.
    pub fn invoked(&self, component: Component) {
        *self.invocations_lock().entry(component).or_default() += 1;
    }

    /// Notes the bus rule's deliveries to the intake queue: a `SendMessage` per event, billed
    /// to the deployment, that EventBridge makes (the emulator, here) with no client of ours.
    pub fn delivered_by_rule(&self, events: usize) {
        for _ in 0..events {
            self.record(Request {
                component: Component::IntakeQueue,
                service: "sqs".into(),
                operation: "SendMessage".into(),
                writes: Vec::new(),
                reads: None,
                entries: 0,
            });
        }
    }

    /// The invocations of each function so far.
    pub fn invocations(&self) -> BTreeMap<Component, u64> {
        self.invocations_lock().clone()
    }

    fn invocations_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Component, u64>> {
        self.invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many requests each component made, per service and operation.
    pub fn counts(&self) -> BTreeMap<(Component, String, String), u64> {
        let mut counts = BTreeMap::new();
        for r in self.lock().iter() {
            *counts
                .entry((r.component, r.service.clone(), r.operation.clone()))
                .or_default() += 1;
        }
        counts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, request: Request) {
        self.lock().push(request);
    }
}

#[derive(Debug)]
struct Counting {
    component: Component,
    log: RequestLog,
    inner: SharedHttpClient,
    faults: Option<crate::faults::Faults>,
}

impl HttpClient for Counting {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector {
            component: self.component,
            log: self.log.clone(),
            inner: self.inner.http_connector(settings, components),
            faults: self.faults.clone(),
        })
    }
}

#[derive(Debug)]
struct CountingConnector {
    component: Component,
    log: RequestLog,
    inner: SharedHttpConnector,
    faults: Option<crate::faults::Faults>,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let described = describe(self.component, &request);
        let answer = match &self.faults {
            Some(faults) => {
                match faults.intercept(&described.service, &described.operation, &request) {
                    Some(answer) => answer,
                    None => faults.send_on(
                        &described.service,
                        &described.operation,
                        request,
                        &self.inner,
                    ),
                }
            }
            None => self.inner.call(request),
        };
        let writes = (!described.writes.is_empty()).then(|| described.writes.clone());
        self.log.record(described);
        let Some(writes) = writes else {
            return answer;
        };
        let (log, component) = (self.log.clone(), self.component);
        HttpConnectorFuture::new(async move {
            let answered = answer.await;
            log.answered_lock().push(AnsweredWrite {
                at: std::time::Instant::now(),
                component,
                writes,
            });
            answered
        })
    }
}

/// The service and operation of a request, from what the protocol puts on the wire: the
/// `X-Amz-Target` header of the JSON protocols (DynamoDB, its streams, SQS, EventBridge,
/// Secrets Manager), the `Action` of the query protocol (SNS), the method and path of SES v2's
/// REST protocol; the service from the signature's credential scope otherwise.
fn describe(component: Component, request: &HttpRequest) -> Request {
    let body = request.body().bytes().unwrap_or_default();
    let (service, operation) = match request.headers().get("x-amz-target") {
        Some(target) => {
            let (prefix, operation) = target.split_once('.').unwrap_or((target, ""));
            let service = match prefix {
                "DynamoDB_20120810" => "dynamodb",
                "DynamoDBStreams_20120810" => "dynamodbstreams",
                "AmazonSQS" => "sqs",
                "AWSEvents" => "eventbridge",
                "secretsmanager" => "secretsmanager",
                other => other,
            };
            (service.to_string(), operation.to_string())
        }
        None => {
            let service = signing_service(request).unwrap_or("unknown").to_string();
            let operation = match service.as_str() {
                "sns" => form_action(body).unwrap_or_else(|| "unknown".into()),
                _ => rest_operation(request.method(), request.uri()),
            };
            (service, operation)
        }
    };
    let (writes, reads) = if service == "dynamodb" {
        (
            dynamodb_writes(&operation, body),
            dynamodb_reads(&operation, body),
        )
    } else {
        (Vec::new(), None)
    };
    let entries = match (service.as_str(), operation.as_str()) {
        ("eventbridge", "PutEvents") => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["Entries"].as_array().map(Vec::len))
            .unwrap_or(0),
        _ => 0,
    };
    Request {
        component,
        service,
        operation,
        writes,
        reads,
        entries,
    }
}

/// The service of a SigV4 signature's credential scope (`…/<date>/<region>/<service>/aws4_request`).
fn signing_service(request: &HttpRequest) -> Option<&str> {
    let auth = request.headers().get("authorization")?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    scope.split('/').nth(3)
}

fn form_action(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v)
}

/// SES v2's operations Herald uses, by method and path; any other as its method and path.
fn rest_operation(method: &str, uri: &str) -> String {
    let path = uri
        .split("://")
        .nth(1)
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(uri);
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["v2", "email", "outbound-emails"]) => "SendEmail".into(),
        ("GET", ["v2", "email", "identities", _]) => "GetEmailIdentity".into(),
        ("POST", ["v2", "email", "identities"]) => "CreateEmailIdentity".into(),
        _ => format!(
            "{method} /{}",
            segments
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("/")
        ),
    }
}

/// The items a DynamoDB write request writes.
fn dynamodb_writes(operation: &str, body: &[u8]) -> Vec<ItemWrite> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let table = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_string();
    match operation {
        "PutItem" => vec![put(&table(&request), &request["Item"], false)],
        "UpdateItem" | "DeleteItem" => vec![keyed(&table(&request), &request["Key"], false)],
        "TransactWriteItems" => request["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                if let Some(p) = item.get("Put") {
                    Some(put(&table(p), &p["Item"], true))
                } else {
                    // a transaction's condition check is billed as a write of its item
                    let op = ["Update", "Delete", "ConditionCheck"]
                        .iter()
                        .find_map(|k| item.get(*k))?;
                    Some(keyed(&table(op), &op["Key"], true))
                }
            })
            .collect(),
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, requests)| {
                requests
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(move |r| {
                        if let Some(p) = r.get("PutRequest") {
                            Some(put(table, &p["Item"], false))
                        } else {
                            r.get("DeleteRequest")
                                .map(|d| keyed(table, &d["Key"], false))
                        }
                    })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The items a DynamoDB read request reads.
fn dynamodb_reads(operation: &str, body: &[u8]) -> Option<ItemReads> {
    let request = serde_json::from_slice::<Value>(body).ok()?;
    let consistent = |v: &Value| v["ConsistentRead"].as_bool().unwrap_or(false);
    let reads = |items, consistent, transactional| ItemReads {
        items,
        consistent,
        transactional,
    };
    match operation {
        "GetItem" | "Query" | "Scan" => Some(reads(1, consistent(&request), false)),
        "BatchGetItem" => {
            let tables = request["RequestItems"].as_object()?;
            let items = tables
                .values()
                .map(|t| t["Keys"].as_array().map_or(0, Vec::len))
                .sum();
            Some(reads(items, tables.values().any(consistent), false))
        }
        "TransactGetItems" => Some(reads(
            request["TransactItems"].as_array().map_or(0, Vec::len),
            true,
            true,
        )),
        _ => None,
    }
}

fn put(table: &str, item: &Value, transactional: bool) -> ItemWrite {
    ItemWrite {
        table: table.to_string(),
        key: key_of(item),
        size: Some(item_size(item)),
        transactional,
    }
}

fn keyed(table: &str, key: &Value, transactional: bool) -> ItemWrite {
    ItemWrite {
        table: table.to_string(),
        key: key_of(key),
        size: None,
        transactional,
    }
}

/// The item's key attributes (Herald's tables key on `pk` and `sk`).
fn key_of(item: &Value) -> BTreeMap<String, String> {
    ["pk", "sk"]
        .iter()
        .filter_map(|k| Some((k.to_string(), item.get(*k)?.to_string())))
        .collect()
}

/// An item's size as DynamoDB bills it: each attribute's name plus its value (a string's
/// UTF-8 bytes; a number about one byte per two digits plus one; a boolean or null one byte;
/// a list or map three bytes plus one per element plus its elements, names included).
pub fn item_size(item: &Value) -> usize {
    item.as_object()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| name.len() + value_size(value))
                .sum()
        })
        .unwrap_or(0)
}

fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        // base64 on the wire: the bytes stored are three for every four characters
        ("B", Value::String(s)) => {
            s.len() / 4 * 3 - s.chars().rev().take_while(|c| *c == '=').count()
        }
        ("N", Value::String(n)) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        ("BOOL", _) | ("NULL", _) => 1,
        ("SS", Value::Array(v)) | ("BS", Value::Array(v)) => {
            v.iter().filter_map(Value::as_str).map(str::len).sum()
        }
        ("NS", Value::Array(v)) => v
            .iter()
            .filter_map(Value::as_str)
            .map(|n| n.len().div_ceil(2) + 1)
            .sum(),
        ("L", Value::Array(v)) => 3 + v.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        ("M", Value::Object(m)) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_items_size_counts_names_and_values_as_dynamodb_does() {
        // AWS's example: a string attribute "name" of "abc" is 4 + 3 bytes
        assert_eq!(item_size(&json!({"name": {"S": "abc"}})), 7);
        assert_eq!(item_size(&json!({"n": {"N": "12345"}})), 1 + 4);
        assert_eq!(item_size(&json!({"b": {"B": "AAEC"}})), 1 + 3);
        assert_eq!(item_size(&json!({"b": {"B": "AAE="}})), 1 + 2);
        assert_eq!(
            item_size(&json!({"m": {"M": {"a": {"BOOL": true}}}})),
            1 + 3 + 1 + 1 + 1
        );
    }

    #[test]
    fn a_transaction_names_each_item_it_writes() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}, "v": {"S": "xyz"}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "c"}, "sk": {"S": "d"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "e"}}}},
        ]});
        let writes = dynamodb_writes("TransactWriteItems", body.to_string().as_bytes());
        assert_eq!(writes.len(), 3, "a condition check is billed as a write");
        assert!(writes.iter().all(|w| w.transactional));
        assert_eq!(writes[0].size, Some(2 + 1 + 2 + 1 + 1 + 3));
        assert_eq!(writes[1].size, None);
        assert_eq!(writes[2].key.len(), 1);
    }

    #[test]
    fn ses_v2_paths_name_their_operations() {
        assert_eq!(
            rest_operation("POST", "http://127.0.0.1:5000/v2/email/outbound-emails"),
            "SendEmail"
        );
        assert_eq!(
            rest_operation(
                "GET",
                "http://127.0.0.1:5000/v2/email/identities/x.example?a=b"
            ),
            "GetEmailIdentity"
        );
    }
}
