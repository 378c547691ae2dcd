//! `herald-local perf`: what each function costs as a Lambda. Each release binary runs as its
//! own process against a local Lambda Runtime API ([`runtime_api`]) with the functions'
//! environment pointing at the local stack, and gets real events: intake orders for seeded
//! customers, dispatch the SQS batches built from what intake put on the dispatch queue, the
//! projector the notifications table's stream in batches of 100, the scheduler its scheduled
//! event; beside them a hello-world `lambda_runtime` binary (`perf-hello`) that echoes its
//! payload, the floor. Each repetition starts every binary afresh in turn (cold starts
//! interleaved), and the figures are medians over the repetitions:
//!
//! - size: the binary's bytes;
//! - cold start: from exec to the process's first poll of the runtime API, and the CPU it used;
//! - first invocation: from handing out the first event to its answer;
//! - warm CPU: the process's CPU from each later event to its next poll ([`process`]), per
//!   invocation and per notification;
//! - peak memory: the highest resident set size (`VmHWM`).
//!
//! The emulator answers slower than AWS, so times that include requests (cold start's
//! configuration, the first invocation) are relative figures; CPU is the process's own.

pub mod function;
pub mod process;
pub mod runtime_api;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use axum::body::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;

use crate::driver::{LocalStack, delete_messages, sqs_event};
use crate::error::LocalError;
use crate::samples::envelope;
use crate::stream::StreamReader;
use function::Running;
use runtime_api::{Outcome, RuntimeApiError};

/// The scheduler's scheduled event, as EventBridge sends it each minute.
const SCHEDULED_EVENT: &str = include_str!("../../../../events/scheduler/tick.json");
/// The records one projector invocation gets (template.yaml's BatchSize), and messages one
/// dispatch invocation gets.
const STREAM_BATCH: usize = 100;
const QUEUE_BATCH: usize = 10;
/// The scheduler's invocations per repetition (it runs once a minute whatever is sent).
const SWEEPS: usize = 10;
/// How long a dispatch message received for a batch stays hidden from the next receive.
const RECEIVED_HIDDEN_SECONDS: i32 = 600;
const ORG: &str = "org_perf";

#[derive(Debug, Error)]
pub enum PerfError {
    #[error("{path}: no such function binary (`make perf` builds them)")]
    NoBinary { path: PathBuf },
    #[error(transparent)]
    RuntimeApi(#[from] RuntimeApiError),
    #[error("the log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {function}: {source}")]
    Spawn {
        function: &'static str,
        source: std::io::Error,
    },
    #[error("{function} is gone")]
    Gone { function: &'static str },
    #[error("{function} exited ({status}) instead of doing this: {doing}; its output is in {log}")]
    Exited {
        function: &'static str,
        doing: &'static str,
        status: String,
        log: PathBuf,
    },
    #[error("{function} did not {doing} within {limit:?}")]
    TimedOut {
        function: &'static str,
        doing: &'static str,
        limit: Duration,
    },
    #[error("{function} reported an init error ({error_type}); its output is in {log}")]
    InitFailed {
        function: &'static str,
        error_type: String,
        log: PathBuf,
    },
    #[error(
        "{function} answered an invocation with an error ({error_type}: {message}); its output is in {log}"
    )]
    InvocationFailed {
        function: &'static str,
        error_type: String,
        message: String,
        log: PathBuf,
    },
    #[error("{function} answered a batch with failed items: {answer}")]
    FailedItems {
        function: &'static str,
        answer: String,
    },
    #[error("reading /proc for {function}: {source}")]
    Proc {
        function: &'static str,
        source: std::io::Error,
    },
    #[error("the dispatch queue held {found} messages after intake, not {expected}")]
    Enqueued { expected: usize, found: usize },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct PerfOptions {
    /// Where the release binaries are (`target/release`).
    pub bin_dir: PathBuf,
    /// Orders (one email notification each) per repetition.
    pub notifications: usize,
    pub repetitions: usize,
}

/// The functions measured, in the order each repetition starts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Hello,
    Intake,
    Dispatch,
    Projector,
    Scheduler,
}

const FUNCTIONS: [Function; 5] = [
    Function::Hello,
    Function::Intake,
    Function::Dispatch,
    Function::Projector,
    Function::Scheduler,
];

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Hello => "hello",
            Function::Intake => "intake",
            Function::Dispatch => "dispatch",
            Function::Projector => "projector",
            Function::Scheduler => "scheduler",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Function::Hello => "perf-hello",
            other => other.name(),
        }
    }
}

/// One repetition of one function.
#[derive(Debug, Clone, Default)]
struct Sample {
    cold_start: Duration,
    init_cpu: Duration,
    first_invocation: Duration,
    warm_cpu: Duration,
    warm_invocations: usize,
    /// Notifications the warm invocations handled (none for hello and the scheduler).
    warm_notifications: Option<f64>,
    peak_memory_kb: u64,
}

/// One function's figures: medians over the repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub function: &'static str,
    pub binary_bytes: u64,
    pub cold_start_ms: f64,
    pub init_cpu_ms: f64,
    pub first_invocation_ms: f64,
    /// None when no repetition had a warm invocation (too few events for a second one).
    pub warm_cpu_per_invocation_ms: Option<f64>,
    /// None for the functions that handle no notifications (hello, the scheduler).
    pub warm_cpu_per_notification_ms: Option<f64>,
    pub peak_memory_mb: f64,
    /// Warm invocations measured, over all repetitions.
    pub warm_invocations: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PerfReport {
    pub date: String,
    pub repetitions: usize,
    pub notifications_per_repetition: usize,
    pub functions: Vec<Figures>,
}

fn customer(i: usize) -> String {
    format!("cus_perf_{i}")
}

/// `n` orders, one per seeded customer, each one email notification.
fn orders(repetition: usize, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            envelope(
                "OrderCreated",
                "ordering", chrono::Utc::now(),
                json!({"organization_id": ORG, "customer_id": customer(i),
                       "order_id": format!("ord_perf_{repetition}_{i}"), "grand_total": "10.00", "currency": "USD",
                       "items": [{"sku": "S1", "name": "Thing", "quantity": 1, "unit_price": "10.00"}],
                       "created_at": herald_core::time::format(&chrono::Utc::now())}),
            )
        })
        .collect()
}

/// An SQS batch of these events, as the bus rule's queue holds them.
fn intake_batch(events: &[Value]) -> SqsEvent {
    let messages: Vec<aws_sdk_sqs::types::Message> = events
        .iter()
        .map(|event| {
            aws_sdk_sqs::types::Message::builder()
                .message_id(uuid::Uuid::new_v4().to_string())
                .receipt_handle("perf")
                .body(event.to_string())
                .build()
        })
        .collect();
    sqs_event(&messages)
}

fn bytes(value: &impl Serialize) -> Result<Bytes, LocalError> {
    Ok(Bytes::from(serde_json::to_vec(value)?))
}

fn milliseconds(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A batch answer's failed items (`batchItemFailures`), which the run does not expect.
fn check_batch(function: &'static str, outcome: &Outcome) -> Result<(), PerfError> {
    if let Outcome::Response(body) = outcome {
        let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if answer["batchItemFailures"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            return Err(PerfError::FailedItems {
                function,
                answer: answer.to_string(),
            });
        }
    }
    Ok(())
}

/// The harness: the stack, the binaries, the logs.
struct Harness<'a> {
    stack: &'a LocalStack,
    env: Vec<(&'static str, String)>,
    bin_dir: PathBuf,
    logs: PathBuf,
    stream: StreamReader,
    sqs: aws_sdk_sqs::Client,
}

impl Harness<'_> {
    fn binary(&self, function: Function) -> PathBuf {
        self.bin_dir.join(function.binary())
    }

    async fn launch(&self, function: Function) -> Result<Running, PerfError> {
        let log = self.logs.join(format!("{}.log", function.name()));
        Running::launch(function.name(), &self.binary(function), &self.env, &log).await
    }

    /// Runs `events` through a fresh process of `function`: the first is its first
    /// invocation, the rest are warm. `notifications` says how many notifications each event
    /// carries, when it is counted per notification.
    async fn sample(
        &self,
        function: Function,
        events: Vec<Bytes>,
        notifications: Option<&dyn Fn(usize) -> f64>,
    ) -> Result<(Sample, Vec<Outcome>), LocalError> {
        let mut running = self.launch(function).await?;
        let mut sample = Sample {
            cold_start: running.cold_start,
            init_cpu: running.init_cpu,
            ..Sample::default()
        };
        let mut outcomes = Vec::with_capacity(events.len());
        let mut warm_notifications = 0.0;
        for (i, event) in events.into_iter().enumerate() {
            let measured = running.invoke(event).await?;
            if i == 0 {
                sample.first_invocation = measured.duration;
            } else {
                sample.warm_cpu += measured.cpu;
                sample.warm_invocations += 1;
                warm_notifications += notifications.map_or(0.0, |n| n(i));
            }
            outcomes.push(measured.outcome);
        }
        sample.warm_notifications = notifications.map(|_| warm_notifications);
        sample.peak_memory_kb = running.peak_memory_kb()?;
        running.stop().await;
        Ok((sample, outcomes))
    }

    /// Every message on the dispatch queue, as SQS event batches of ten.
    async fn dispatch_batches(&self, expected: usize) -> Result<Vec<SqsEvent>, LocalError> {
        let queue = &self.stack.stack.dispatch_queue_url;
        let mut messages = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(QUEUE_BATCH as i32)
                .visibility_timeout(RECEIVED_HIDDEN_SECONDS)
                .send()
                .await
                .map_err(|e| LocalError::aws("ReceiveMessage", e))?;
            let received = out.messages.unwrap_or_default();
            if received.is_empty() {
                break;
            }
            messages.extend(received);
        }
        if messages.len() != expected {
            return Err(PerfError::Enqueued {
                expected,
                found: messages.len(),
            }
            .into());
        }
        Ok(messages.chunks(QUEUE_BATCH).map(sqs_event).collect())
    }

    /// Deletes a batch's messages, as the event source mapping does after a clean answer.
    async fn delete(&self, batch: &SqsEvent) -> Result<(), LocalError> {
        let receipts = batch
            .records
            .iter()
            .filter_map(|r| r.receipt_handle.clone())
            .collect();
        delete_messages(&self.sqs, &self.stack.stack.dispatch_queue_url, receipts).await
    }

    /// One repetition: every function in turn, each a fresh process.
    async fn repetition(
        &self,
        repetition: usize,
        n: usize,
    ) -> Result<Vec<(Function, Sample)>, LocalError> {
        let orders = orders(repetition, n);
        let mut samples = Vec::new();

        let hello_events = orders.iter().map(bytes).collect::<Result<Vec<_>, _>>()?;
        let (hello, _) = self.sample(Function::Hello, hello_events, None).await?;
        samples.push((Function::Hello, hello));

        // the orders as the intake queue's event source mapping hands them over: ten a batch
        let batches: Vec<SqsEvent> = orders.chunks(10).map(intake_batch).collect();
        let sizes: Vec<f64> = batches.iter().map(|b| b.records.len() as f64).collect();
        let events = batches.iter().map(bytes).collect::<Result<Vec<_>, _>>()?;
        let (intake, outcomes) = self
            .sample(Function::Intake, events, Some(&|i| sizes[i]))
            .await?;
        for outcome in &outcomes {
            check_batch("intake", outcome)?;
        }
        samples.push((Function::Intake, intake));

        let batches = self.dispatch_batches(n).await?;
        let sizes: Vec<f64> = batches.iter().map(|b| b.records.len() as f64).collect();
        let events = batches.iter().map(bytes).collect::<Result<Vec<_>, _>>()?;
        let (dispatch, outcomes) = self
            .sample(Function::Dispatch, events, Some(&|i| sizes[i]))
            .await?;
        for (batch, outcome) in batches.iter().zip(&outcomes) {
            check_batch("dispatch", outcome)?;
            self.delete(batch).await?;
        }
        samples.push((Function::Dispatch, dispatch));

        // what intake and dispatch wrote, as the stream's event source mapping hands it over
        let mut stream = self.stream.read().await?;
        let records = std::mem::take(&mut stream.records);
        // a batch's share of the notifications: its records over the records per notification
        let per_record = n as f64 / records.len().max(1) as f64;
        let batches: Vec<_> = records
            .chunks(STREAM_BATCH)
            .map(|chunk| {
                let mut batch = stream.clone();
                batch.records = chunk.to_vec();
                batch
            })
            .collect();
        let sizes: Vec<f64> = batches
            .iter()
            .map(|b| b.records.len() as f64 * per_record)
            .collect();
        let events = batches.iter().map(bytes).collect::<Result<Vec<_>, _>>()?;
        let (projector, outcomes) = self
            .sample(Function::Projector, events, Some(&|i| sizes[i]))
            .await?;
        for outcome in &outcomes {
            check_batch("projector", outcome)?;
        }
        samples.push((Function::Projector, projector));

        let sweeps = vec![Bytes::from_static(SCHEDULED_EVENT.as_bytes()); SWEEPS];
        let (scheduler, _) = self.sample(Function::Scheduler, sweeps, None).await?;
        samples.push((Function::Scheduler, scheduler));
        Ok(samples)
    }
}

/// Seeds the customers, then runs the repetitions and reports each function's medians.
pub async fn run(stack: &LocalStack, options: &PerfOptions) -> Result<PerfReport, LocalError> {
    for function in FUNCTIONS {
        let path = options.bin_dir.join(function.binary());
        if !path.is_file() {
            return Err(PerfError::NoBinary { path }.into());
        }
    }
    let logs = std::env::temp_dir().join("herald-local").join("perf");
    std::fs::create_dir_all(&logs).map_err(|source| LocalError::File {
        path: logs.clone(),
        source,
    })?;
    for function in FUNCTIONS {
        // each run's output alone
        let path = logs.join(format!("{}.log", function.name()));
        std::fs::write(&path, b"").map_err(|source| LocalError::File { path, source })?;
    }
    let n = options.notifications.max(1);
    // directory events first: the customers, through the in-process intake
    let contacts: Vec<Value> = (0..n)
        .map(|i| {
            envelope(
                "CustomerContactChanged",
                "customers",
                chrono::Utc::now(),
                json!({"organization_id": ORG, "customer_id": customer(i),
                       "email": format!("perf-{i}@example.com"), "locale": "en-US"}),
            )
        })
        .collect();
    stack.run(&contacts).await?;
    let harness = Harness {
        stack,
        env: stack.function_env(),
        bin_dir: options.bin_dir.clone(),
        logs,
        stream: StreamReader::new(&stack.aws, stack.stack.names.notifications_table()),
        sqs: aws_sdk_sqs::Client::new(&stack.aws),
    };
    // the stream from here on: what the seeding wrote is not the projector's to measure
    harness.stream.read().await?;
    let mut samples: Vec<(Function, Sample)> = Vec::new();
    for repetition in 0..options.repetitions.max(1) {
        samples.extend(harness.repetition(repetition, n).await?);
    }
    let mut functions = Vec::new();
    for function in FUNCTIONS {
        let of: Vec<&Sample> = samples
            .iter()
            .filter(|(f, _)| *f == function)
            .map(|(_, s)| s)
            .collect();
        let binary_bytes = std::fs::metadata(harness.binary(function))
            .map(|m| m.len())
            .unwrap_or_default();
        functions.push(figures(function.name(), binary_bytes, &of));
    }
    Ok(PerfReport {
        date: chrono::Utc::now().date_naive().to_string(),
        repetitions: options.repetitions.max(1),
        notifications_per_repetition: n,
        functions,
    })
}

/// One function's medians over its repetitions' samples.
fn figures(function: &'static str, binary_bytes: u64, of: &[&Sample]) -> Figures {
    let each = |f: &dyn Fn(&Sample) -> f64| median(of.iter().map(|s| f(s)).collect());
    // a repetition whose only invocation was the first has no warm figure
    let warm: Vec<&Sample> = of
        .iter()
        .copied()
        .filter(|s| s.warm_invocations > 0)
        .collect();
    let warm_median = |f: &dyn Fn(&Sample) -> Option<f64>| {
        let values: Vec<f64> = warm.iter().filter_map(|s| f(s)).collect();
        (!values.is_empty()).then(|| median(values))
    };
    Figures {
        function,
        binary_bytes,
        cold_start_ms: each(&|s| milliseconds(s.cold_start)),
        init_cpu_ms: each(&|s| milliseconds(s.init_cpu)),
        first_invocation_ms: each(&|s| milliseconds(s.first_invocation)),
        warm_cpu_per_invocation_ms: warm_median(&|s| {
            Some(milliseconds(s.warm_cpu) / s.warm_invocations as f64)
        }),
        warm_cpu_per_notification_ms: warm_median(&|s| {
            let notifications = s.warm_notifications?;
            (notifications > 0.0).then(|| milliseconds(s.warm_cpu) / notifications)
        }),
        peak_memory_mb: each(&|s| s.peak_memory_kb as f64 / 1024.0),
        warm_invocations: of.iter().map(|s| s.warm_invocations).sum(),
    }
}

impl PerfReport {
    /// The figures as a Markdown table, for the README.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| function | binary MiB | cold start ms | init CPU ms | first invocation ms | warm CPU ms per invocation | warm CPU ms per notification | peak memory MB |\n|---|---|---|---|---|---|---|---|\n",
        );
        for f in &self.functions {
            let figure =
                |ms: Option<f64>| ms.map_or_else(|| "–".to_string(), |ms| format!("{ms:.3}"));
            out.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1} |\n",
                f.function,
                f.binary_bytes as f64 / (1024.0 * 1024.0),
                f.cold_start_ms,
                f.init_cpu_ms,
                f.first_invocation_ms,
                figure(f.warm_cpu_per_invocation_ms),
                figure(f.warm_cpu_per_notification_ms),
                f.peak_memory_mb,
            ));
        }
        out
    }
}

/// Where `make perf` puts the binaries: `$CARGO_TARGET_DIR/release`, or the workspace's
/// `target/release`.
pub fn default_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("release")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    fn sample(cold_ms: u64, warm_ms: u64, warm_invocations: usize, notifications: f64) -> Sample {
        Sample {
            cold_start: Duration::from_millis(cold_ms),
            warm_cpu: Duration::from_millis(warm_ms),
            warm_invocations,
            warm_notifications: Some(notifications),
            peak_memory_kb: 2048,
            ..Sample::default()
        }
    }

    #[test]
    fn figures_are_medians_and_a_repetition_without_warm_invocations_has_no_warm_figure() {
        let samples = [
            sample(10, 40, 4, 40.0),
            sample(30, 0, 0, 0.0),
            sample(20, 90, 3, 30.0),
        ];
        let of: Vec<&Sample> = samples.iter().collect();
        let f = figures("dispatch", 1, &of);
        assert_eq!(f.cold_start_ms, 20.0);
        // 10 and 30 ms per invocation, 1 and 3 ms per notification: the third repetition's
        // missing warm figure is not a zero
        assert_eq!(f.warm_cpu_per_invocation_ms, Some(20.0));
        assert_eq!(f.warm_cpu_per_notification_ms, Some(2.0));
        assert_eq!(f.peak_memory_mb, 2.0);
        assert_eq!(f.warm_invocations, 7);
        let cold_only = [sample(10, 0, 0, 0.0)];
        let of: Vec<&Sample> = cold_only.iter().collect();
        assert_eq!(
            figures("projector", 1, &of).warm_cpu_per_invocation_ms,
            None
        );
    }

    #[test]
    fn a_batch_answer_with_failed_items_fails_the_run() {
        let clean = Outcome::Response(Bytes::from_static(br#"{"batchItemFailures":[]}"#));
        assert!(check_batch("dispatch", &clean).is_ok());
        let failed = Outcome::Response(Bytes::from_static(
            br#"{"batchItemFailures":[{"itemIdentifier":"m1"}]}"#,
        ));
        assert!(matches!(
            check_batch("dispatch", &failed),
            Err(PerfError::FailedItems { .. })
        ));
    }
}
