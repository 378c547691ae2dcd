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
