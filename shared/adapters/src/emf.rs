//! Measures as CloudWatch embedded metric format documents, one JSON line each on standard
//! output: the function's log, from which CloudWatch extracts the metrics (no PutMetricData
//! call, nothing to wait for). A batch's measures are added up per organization and written
//! at once, the organization a property of each document (searchable in the logs, not a
//! dimension), the channel, provider and code its dimensions.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use herald_core::ids::OrgId;
use herald_core::ports::Meter;
use herald_core::telemetry::{Measure, Metric, Unit};
use metrics::Label;
use metrics_cloudwatch_embedded::{Builder, Collector};
use tracing::warn;

/// The namespace when `HERALD_METRICS_NAMESPACE` does not name one.
pub const DEFAULT_NAMESPACE: &str = "Herald";

/// The namespace the functions write their metrics in: `HERALD_METRICS_NAMESPACE` (the
/// template sets `Herald/<stage>`), else [`DEFAULT_NAMESPACE`].
pub fn namespace_from_env() -> String {
    crate::config::optional("HERALD_METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into())
}

const ORG_PROPERTY: &str = "org_id";

/// The process's collector: the `metrics` facade has one recorder per process.
static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();
/// One batch's measures are recorded and written at a time, so a document holds one
/// organization's and nothing of another meter's.
static WRITING: Mutex<()> = Mutex::new(());

fn collector(namespace: &str) -> Option<&'static Collector> {
    *COLLECTOR.get_or_init(|| {
        let collector = Builder::new()
            .cloudwatch_namespace(namespace.to_string())
            .init()
            .map_err(|e| warn!(error = %e, "metrics are not written"))
            .ok()?;
        // each metric with its unit, before it is first written
        for metric in Metric::ALL {
            let unit = match metric.unit() {
                Unit::Count => metrics::Unit::Count,
                Unit::Milliseconds => metrics::Unit::Milliseconds,
                Unit::Seconds => metrics::Unit::Seconds,
            };
            if metric.is_distribution() {
                metrics::describe_histogram!(metric.as_str(), unit, "");
            } else {
                metrics::describe_counter!(metric.as_str(), unit, "");
            }
        }
        Some(collector)
    })
}

/// Where the documents go.
#[derive(Clone)]
enum Out {
    Stdout,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// Writes measures in CloudWatch's embedded metric format.
pub struct EmfMeter {
    collector: Option<&'static Collector>,
    out: Out,
}

impl EmfMeter {
    /// To standard output, in `namespace` (the first meter of a process sets it for all).
    pub fn stdout(namespace: &str) -> EmfMeter {
        EmfMeter {
            collector: collector(namespace),
            out: Out::Stdout,
        }
    }

    /// Into a buffer, to read what would be logged.
    pub fn buffer(namespace: &str, buffer: Arc<Mutex<Vec<u8>>>) -> EmfMeter {
        EmfMeter {
            collector: collector(namespace),
            out: Out::Buffer(buffer),
        }
    }

    fn write(&self, collector: &Collector) -> std::io::Result<()> {
        match &self.out {
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                collector.flush(&mut out)?;
                out.flush()
            }
            Out::Buffer(buffer) => {
                collector.flush(&mut *buffer.lock().unwrap_or_else(PoisonError::into_inner))
            }
        }
    }
}

fn labels(m: &Measure) -> Vec<Label> {
    let mut labels = Vec::with_capacity(3);
    if let Some(channel) = m.channel {
        labels.push(Label::new("channel", channel.as_str()));
    }
    if let Some(provider) = m.provider {
        labels.push(Label::new("provider", provider.as_str()));
    }
    if let Some(code) = &m.code {
        labels.push(Label::new("code", code.clone()));
    }
    labels
}

impl Meter for EmfMeter {
    fn record(&self, measures: Vec<Measure>) {
        let Some(collector) = self.collector else {
            return;
        };
        if measures.is_empty() {
            return;
        }
        let mut by_org: BTreeMap<Option<OrgId>, Vec<Measure>> = BTreeMap::new();
        for m in measures {
            by_org.entry(m.org.clone()).or_default().push(m);
        }
        let _writing = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
        for (org, measures) in by_org {
            match &org {
                Some(org) => collector.set_property(ORG_PROPERTY, org.as_str()),
                None => collector.remove_property(ORG_PROPERTY),
            };
            for m in &measures {
                let name = m.metric.as_str();
                if m.metric.is_distribution() {
                    metrics::histogram!(name, labels(m)).record(m.value);
                } else {
                    // counts are whole numbers
                    metrics::counter!(name, labels(m)).increment(m.value.max(0.0) as u64);
                }
            }
            if let Err(e) = self.write(collector) {
                warn!(error = %e, "metrics could not be written");
            }
        }
        collector.remove_property(ORG_PROPERTY);
    }
}

#[cfg(test)]
mod tests {
    use herald_core::model::{Channel, DeliveryService, ErrorCode};
    use serde_json::Value;

    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    /// What the embedded metric format's specification asks of a document, each rule it
    /// breaks: the `_aws` metadata with a millisecond timestamp and its metric directives;
    /// each directive's namespace, dimension sets (at most 30 keys, each a string member of
    /// the root) and metric definitions (at most 100, each naming a root member that is a
    /// number or up to 100 numbers, with a CloudWatch unit).
    fn spec_problems(doc: &Value) -> Vec<String> {
        const UNITS: [&str; 27] = [
            "Seconds",
            "Microseconds",
            "Milliseconds",
            "Bytes",
            "Kilobytes",
            "Megabytes",
            "Gigabytes",
            "Terabytes",
            "Bits",
            "Kilobits",
            "Megabits",
            "Gigabits",
            "Terabits",
            "Percent",
            "Count",
            "Bytes/Second",
            "Kilobytes/Second",
            "Megabytes/Second",
            "Gigabytes/Second",
            "Terabytes/Second",
            "Bits/Second",
            "Kilobits/Second",
            "Megabits/Second",
            "Gigabits/Second",
            "Terabits/Second",
            "Count/Second",
            "None",
        ];
        let mut problems = Vec::new();
        let mut problem = |p: String| problems.push(p);
        let Some(root) = doc.as_object() else {
            return vec!["the document is not an object".into()];
        };
        let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
            return vec!["_aws: missing or not an object".into()];
        };
        if !aws.get("Timestamp").is_some_and(Value::is_u64) {
            problem("_aws.Timestamp: not a number of milliseconds".into());
        }
        let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
            problem("_aws.CloudWatchMetrics: missing or not an array".into());
            return problems;
        };
        for (i, d) in directives.iter().enumerate() {
            let at = format!("_aws.CloudWatchMetrics[{i}]");
            if !d["Namespace"]
                .as_str()
                .is_some_and(|n| (1..=1024).contains(&n.len()))
            {
                problem(format!(
                    "{at}.Namespace: not a string of 1 to 1024 characters"
                ));
            }
            match d["Dimensions"].as_array() {
                None => problem(format!("{at}.Dimensions: not an array")),
                Some(sets) => {
                    for set in sets {
                        let keys = set.as_array().cloned().unwrap_or_default();
                        if set.as_array().is_none() || keys.len() > 30 {
                            problem(format!(
                                "{at}.Dimensions: a set of more than 30 keys or not an array"
                            ));
                        }
                        for key in keys {
                            let member = key.as_str().and_then(|k| root.get(k));
                            if !member.is_some_and(Value::is_string) {
                                problem(format!(
                                    "{at}.Dimensions: {key} is not a string member of the root"
                                ));
                            }
                        }
                    }
                }
            }
            let metrics = d["Metrics"].as_array().cloned().unwrap_or_default();
            if d["Metrics"].as_array().is_none() || metrics.len() > 100 {
                problem(format!("{at}.Metrics: not an array of at most 100"));
            }
            for m in metrics {
                let name = m["Name"].as_str().unwrap_or_default();
                let values = match root.get(name) {
                    Some(Value::Array(values)) => values.clone(),
                    Some(value) => vec![value.clone()],
                    None => Vec::new(),
                };
                if values.is_empty() || values.len() > 100 || !values.iter().all(Value::is_number) {
                    problem(format!(
                        "{at}.Metrics: {name:?} is not a number or up to 100 numbers on the root"
                    ));
                }
                if m.get("Unit")
                    .is_some_and(|u| !u.as_str().is_some_and(|u| UNITS.contains(&u)))
                {
                    problem(format!(
                        "{at}.Metrics: {name:?} has an unknown unit {}",
                        m["Unit"]
                    ));
                }
            }
        }
        problems
    }

    #[test]
    fn every_metric_is_written_as_the_specification_describes() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let meter = EmfMeter::buffer("Herald/test", buffer.clone());
        let code = ErrorCode::new("http_503").unwrap();
        meter.record(
            Metric::ALL
                .iter()
                .map(|&metric| {
                    Measure::of(metric, 3.0)
                        .org(&org("org_acme"))
                        .provider(DeliveryService::Ses)
                        .code(&code)
                })
                .collect(),
        );
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let docs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for doc in &docs {
            assert_eq!(spec_problems(doc), Vec::<String>::new(), "{doc}");
        }
        for metric in Metric::ALL {
            assert!(
                docs.iter().any(|d| d.get(metric.as_str()).is_some()),
                "{metric:?} in {text}"
            );
        }
        // the check itself finds what breaks the specification
        let mut broken = docs[0].clone();
        broken["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0] = serde_json::json!(["missing"]);
        broken["_aws"]["Timestamp"] = "now".into();
        assert_eq!(spec_problems(&broken).len(), 2, "{broken}");
    }

    #[test]
    fn a_batch_is_written_per_organization_with_its_dimensions_and_the_org_as_a_property() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let meter = EmfMeter::buffer("Herald/test", buffer.clone());
        let sent = |o: &str| Measure {
            channel: Some(Channel::Email),
            provider: Some(DeliveryService::Ses),
            org: Some(org(o)),
            ..Measure::count(Metric::Sent)
        };
        let latency = Measure::of(Metric::SentLatency, 1250.0).org(&org("org_acme"));
        let error = Measure::count(Metric::ProviderError)
            .provider(DeliveryService::Sendgrid)
            .code(&ErrorCode::new("http_503").unwrap())
            .org(&org("org_beta"));
        meter.record(vec![
            sent("org_acme"),
            sent("org_acme"),
            latency,
            sent("org_beta"),
            error,
        ]);

        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let docs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let find = |org: &str, metric: &str| {
            docs.iter()
                .find(|d| d["org_id"] == org && d.get(metric).is_some())
                .unwrap_or_else(|| panic!("{org} {metric} in {text}"))
        };
        let acme = find("org_acme", "Sent");
        assert_eq!(acme["Sent"], 2, "added up within the batch");
        assert_eq!(
            (&acme["channel"], &acme["provider"]),
            (&"email".into(), &"ses".into())
        );
        let namespace = &acme["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(namespace["Namespace"], "Herald/test");
        assert_eq!(
            namespace["Dimensions"][0],
            serde_json::json!(["channel", "provider"])
        );
        assert_eq!(namespace["Metrics"][0]["Unit"], "Count");
        let latency = find("org_acme", "SentLatency");
        assert_eq!(latency["SentLatency"], serde_json::json!([1250.0]));
        assert_eq!(
            latency["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(find("org_beta", "Sent")["Sent"], 1);
        assert_eq!(find("org_beta", "ProviderError")["code"], "http_503");
        assert!(
            docs.iter()
                .all(|d| !d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
                    .as_array()
                    .unwrap()
                    .contains(&"org_id".into())),
            "the organization is never a dimension"
        );
    }
}
