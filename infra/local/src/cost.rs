//! What a notification costs on AWS: the requests each part of Herald makes for email
//! notifications on the happy path, counted as they leave ([`crate::requests`]), turned into
//! billed units (DynamoDB's read and write units from the items' sizes, EventBridge's
//! entries, Lambda's invocations) and priced at list prices.
//!
//! The scenario: one organization, customers with an email address only, and `n` orders
//! among them, so each order is one email notification. The customers are written first; only the
//! orders are counted, from the event on the bus to the notification sent and projected.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::{Value, json};

use crate::driver::LocalStack;
use crate::error::LocalError;
use crate::requests::{Component, Request, item_size};
use crate::samples::envelope;

/// List prices in us-east-1 (US dollars), as AWS publishes them on each service's pricing page
/// (DynamoDB on-demand after its November 2024 reduction); the date they were written down.
pub const PRICES_DATE: &str = "2026-11-24";
/// Per million DynamoDB on-demand write request units (1 KB each).
const DYNAMODB_WRITE_UNIT: f64 = 0.625;
/// Per million DynamoDB on-demand read request units (4 KB, consistent; eventual is half).
const DYNAMODB_READ_UNIT: f64 = 0.125;
/// Per million SQS standard-queue requests.
const SQS_REQUEST: f64 = 0.40;
/// Per million EventBridge custom events (each entry of `PutEvents`).
const EVENTBRIDGE_EVENT: f64 = 1.00;
/// Per million Secrets Manager API calls ($0.05 per 10,000).
const SECRETS_CALL: f64 = 5.00;
/// Per million Lambda invocations (their duration is `make perf`'s figure, not counted here).
const LAMBDA_INVOCATION: f64 = 0.20;
/// Per million SES emails ($0.10 per 1,000): the provider, shown apart.
const SES_EMAIL: f64 = 100.0;

/// One part's requests to one service, per notification.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    pub component: Component,
    pub service: String,
    /// Requests per notification, by operation.
    pub operations: BTreeMap<String, f64>,
    pub requests: f64,
    /// The billed units: DynamoDB read + write request units, EventBridge entries, or
    /// requests for the services that bill per request.
    pub write_units: f64,
    pub read_units: f64,
    /// US dollars per million notifications.
    pub dollars: f64,
}

/// The cost of `notifications` email notifications.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub notifications: usize,
    pub lines: Vec<Line>,
    /// Lambda invocations per notification, by function.
    pub invocations: BTreeMap<Component, f64>,
    /// The requests of one scheduler sweep (once a minute, whatever is sent).
    pub sweep_requests: f64,
    /// AWS requests per notification, every billed part, the provider's send included.
    pub requests_per_notification: f64,
    pub write_units_per_notification: f64,
    pub read_units_per_notification: f64,
    /// Dollars per million notifications without the provider (SES's send), and the
    /// provider's.
    pub dollars_per_million: f64,
    pub provider_dollars_per_million: f64,
    /// The requests and dollars of Herald's life-cycle events on the bus (the projector's
    /// `PutEvents`), which a deployment may leave out (`LifecycleEvents`).
    pub lifecycle_events_requests: f64,
    pub lifecycle_events_dollars_per_million: f64,
    pub prices_date: &'static str,
}

/// Runs the scenario on the stack and counts what it cost: `n` orders spread over `customers`
/// customers (one each when `customers` is `n`; all for one when it is 1, a burst).
pub async fn email_notifications(
    stack: &LocalStack,
    n: usize,
    customers: usize,
) -> Result<CostReport, LocalError> {
    let org = "org_cost";
    let customers = customers.clamp(1, n.max(1));
    let contacts: Vec<Value> = (0..customers)
        .map(|i| {
            envelope(
                "CustomerContactChanged",
                "customers",
                chrono::Utc::now(),
                json!({"organization_id": org, "customer_id": format!("cus_cost_{i}"),
                       "email": format!("cost-{i}@example.com"), "locale": "en-US"}),
            )
        })
        .collect();
    stack.run(&contacts).await?;
    stack.requests.clear();
    let orders: Vec<Value> = (0..n)
        .map(|i| {
            envelope(
                "OrderCreated",
                "ordering", chrono::Utc::now(),
                json!({"organization_id": org, "customer_id": format!("cus_cost_{}", i % customers),
                       "order_id": format!("ord_cost_{i}"), "grand_total": "10.00", "currency": "USD",
                       "items": [{"sku": "S1", "name": "Thing", "quantity": 1, "unit_price": "10.00"}],
                       "created_at": herald_core::time::format(&chrono::Utc::now())}),
            )
        })
        .collect();
    let reports = stack.run(&orders).await?;
    let sent = reports
        .iter()
        .flat_map(|r| &r.notifications)
        .filter(|n| n.channel == "email" && n.status == "sent")
        .count();
    let requests = stack.requests.requests();
    let sizes = item_sizes(stack, &requests).await?;
    Ok(report(
        sent,
        &requests,
        &stack.requests.invocations(),
        &sizes,
    ))
}

type ItemKey = (String, BTreeMap<String, String>);

/// The size now of every item a request updated or deleted without carrying it whole (an
/// update is billed on the larger of the item before and after; Herald's items only grow).
async fn item_sizes(
    stack: &LocalStack,
    requests: &[Request],
) -> Result<HashMap<ItemKey, usize>, LocalError> {
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.aws);
    let mut sizes = HashMap::new();
    for write in requests.iter().flat_map(|r| &r.writes) {
        let key = (write.table.clone(), write.key.clone());
        if write.size.is_some() || sizes.contains_key(&key) {
            continue;
        }
        let mut get = dynamo.get_item().table_name(&write.table);
        for (name, value) in &write.key {
            if let Some(s) = serde_json::from_str::<Value>(value)
                .ok()
                .and_then(|v| v["S"].as_str().map(str::to_string))
            {
                get = get.key(name, AttributeValue::S(s));
            }
        }
        let item = get
            .send()
            .await
            .map_err(|e| LocalError::aws("GetItem", e))?
            .item;
        // an item deleted since is billed as a small one
        sizes.insert(key, item.as_ref().map_or(1, sdk_item_size));
    }
    Ok(sizes)
}

fn sdk_item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + sdk_value_size(value))
        .sum()
}

fn sdk_value_size(value: &AttributeValue) -> usize {
    let json = match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::L(l) => {
            return 3 + l.iter().map(|e| 1 + sdk_value_size(e)).sum::<usize>();
        }
        AttributeValue::M(m) => {
            return 3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + sdk_value_size(e))
                .sum::<usize>();
        }
        AttributeValue::B(b) => return b.as_ref().len(),
        _ => return 0,
    };
    item_size(&json!({"": json}))
}

/// Write request units of one item write: one per started KB, twice in a transaction.
fn write_units(size: usize, transactional: bool) -> f64 {
    let units = size.max(1).div_ceil(1024) as f64;
    if transactional { 2.0 * units } else { units }
}

/// The requests, units and dollars per notification, by part and service.
pub fn report(
    notifications: usize,
    requests: &[Request],
    invocations: &BTreeMap<Component, u64>,
    sizes: &HashMap<ItemKey, usize>,
) -> CostReport {
    let per = |x: f64| {
        if notifications == 0 {
            0.0
        } else {
            x / notifications as f64
        }
    };
    let mut lines: BTreeMap<(Component, String), Line> = BTreeMap::new();
    // the scheduler's sweep runs every minute whatever is sent: a cost per minute, not per
    // notification (`sweep_requests`)
    let per_notification = |c: Component| c.is_billed() && c != Component::Scheduler;
    for r in requests.iter().filter(|r| per_notification(r.component)) {
        let line = lines
            .entry((r.component, r.service.clone()))
            .or_insert_with(|| Line {
                component: r.component,
                service: r.service.clone(),
                operations: BTreeMap::new(),
                requests: 0.0,
                write_units: 0.0,
                read_units: 0.0,
                dollars: 0.0,
            });
        *line.operations.entry(r.operation.clone()).or_default() += per(1.0);
        line.requests += per(1.0);
        for w in &r.writes {
            let size = w
                .size
                .or_else(|| sizes.get(&(w.table.clone(), w.key.clone())).copied())
                .unwrap_or(1);
            line.write_units += per(write_units(size, w.transactional));
        }
        line.read_units += per(r.reads.map_or(0.0, |reads| reads.units()));
        // a price per million times the count per notification: dollars per million notifications
        line.dollars += per(match r.service.as_str() {
            "dynamodb" => 0.0, // priced from its units below
            "sqs" => SQS_REQUEST,
            "eventbridge" => EVENTBRIDGE_EVENT * r.entries as f64,
            "secretsmanager" => SECRETS_CALL,
            _ => 0.0, // the provider (SES, SNS): shown apart
        });
    }
    for line in lines.values_mut() {
        line.dollars +=
            line.write_units * DYNAMODB_WRITE_UNIT + line.read_units * DYNAMODB_READ_UNIT;
    }
    let per_invocation = invocations;
    let invocations: BTreeMap<Component, f64> = per_invocation
        .iter()
        .filter(|(c, _)| per_notification(**c))
        .map(|(c, n)| (*c, per(*n as f64)))
        .collect();
    let lines: Vec<Line> = lines.into_values().collect();
    let sum = |f: fn(&Line) -> f64| lines.iter().map(f).sum::<f64>();
    let provider_sends = requests
        .iter()
        .filter(|r| r.service == "ses" && r.operation == "SendEmail")
        .count();
    let sweeps = per_invocation
        .get(&Component::Scheduler)
        .copied()
        .unwrap_or(0);
    let sweep_requests = requests
        .iter()
        .filter(|r| r.component == Component::Scheduler)
        .count() as f64
        / sweeps.max(1) as f64;
    let lifecycle_events = |f: fn(&Line) -> f64| {
        lines
            .iter()
            .filter(|l| l.component == Component::Projector && l.service == "eventbridge")
            .map(f)
            .sum::<f64>()
    };
    CostReport {
        notifications,
        sweep_requests,
        lifecycle_events_requests: lifecycle_events(|l| l.requests),
        lifecycle_events_dollars_per_million: lifecycle_events(|l| l.dollars),
        requests_per_notification: sum(|l| l.requests),
        write_units_per_notification: sum(|l| l.write_units),
        read_units_per_notification: sum(|l| l.read_units),
        dollars_per_million: sum(|l| l.dollars)
            + invocations.values().sum::<f64>() * LAMBDA_INVOCATION,
        provider_dollars_per_million: per(provider_sends as f64) * SES_EMAIL,
        lines,
        invocations,
        prices_date: PRICES_DATE,
    }
}

impl CostReport {
    /// The report as a Markdown table, for the README.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| part | service | requests | operations | write units | read units | $ per million |\n|---|---|---|---|---|---|---|\n",
        );
        for l in &self.lines {
            let operations: Vec<String> = l
                .operations
                .iter()
                .map(|(op, n)| format!("{op} {n:.2}"))
                .collect();
            out.push_str(&format!(
                "| {} | {} | {:.2} | {} | {:.2} | {:.2} | {:.2} |\n",
                l.component.as_str(),
                l.service,
                l.requests,
                operations.join(", "),
                l.write_units,
                l.read_units,
                l.dollars
            ));
        }
        let invocations: f64 = self.invocations.values().sum();
        out.push_str(&format!(
            "| Lambda | invocations | {invocations:.2} | {} | | | {:.2} |\n",
            self.invocations
                .iter()
                .map(|(c, n)| format!("{} {n:.2}", c.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            invocations * LAMBDA_INVOCATION
        ));
        out.push_str(&format!(
            "| scheduler | dynamodb | {:.0} per sweep, once a minute whatever is sent | | | | |\n",
            self.sweep_requests
        ));
        out.push_str(&format!(
            "| **total** | | **{:.2}** | | **{:.2}** | **{:.2}** | **{:.2}** (+ {:.2} SES) |\n",
            self.requests_per_notification,
            self.write_units_per_notification,
            self.read_units_per_notification,
            self.dollars_per_million,
            self.provider_dollars_per_million
        ));
        out.push_str(&format!(
            "| without life-cycle events (`LifecycleEvents=none`) | | {:.2} | | {:.2} | {:.2} | {:.2} |\n",
            self.requests_per_notification - self.lifecycle_events_requests,
            self.write_units_per_notification,
            self.read_units_per_notification,
            self.dollars_per_million - self.lifecycle_events_dollars_per_million,
        ));
        out
    }
}
