//! `herald-local`: run Herald on the local AWS emulator.
#![allow(clippy::print_stdout)] // a command-line tool: standard output is its interface

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use herald_core::ids::{Locale, NotificationType, OrgId};
use herald_core::model::Channel;
use herald_local::chaos::ChaosConfig;
use herald_local::preview::{Preview, PreviewOutcome, PreviewRequest};
use herald_local::pump::PumpLock;
use herald_local::samples::{read_context, read_events, read_samples};
use herald_local::serve::Serving;
use herald_local::{Emulator, EventReport, LocalError, LocalStack};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "herald-local",
    about = "Herald on the local AWS emulator (moto's server)"
)]
struct Cli {
    /// The stage name the resources are created under.
    #[arg(long, default_value = "local", global = true)]
    stage: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Processes every sample in events/intake and prints what each recipient got.
    Up {
        /// The folder of sample events.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/intake"))]
        events: PathBuf,
    },
    /// Puts the events in these files on the bus, runs them to the end and prints one JSON
    /// object per event on standard output.
    Send {
        /// Files holding one event envelope, or a JSON array of them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Runs the scheduler's sweep, and the dispatch that follows it, as if the clock read
    /// TIME (RFC 3339; now when left out); prints what it enqueued and what was sent. Use it
    /// against a running emulator (AWS_ENDPOINT_URL, from `start`) to watch a scheduled
    /// notification go out.
    Tick {
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
    /// Serves the webhooks and the api on 127.0.0.1 (API Gateway's part played locally),
    /// prints the same environment as `start`, and processes what reaches the bus as `start`
    /// does; runs until stopped.
    Serve {
        #[arg(long, default_value_t = 8787)]
        port: u16,
    },
    /// Posts an SES event for a sent email to a served webhook, signed as SNS would sign it
    /// (with the local stack's certificate): to watch a delivery or a bounce arrive.
    Webhook {
        /// The served base URL (printed by `serve`).
        #[arg(long)]
        url: String,
        #[arg(long)]
        org: String,
        /// The email's provider message id (`provider_message_id` in `send`'s output).
        #[arg(long)]
        message_id: String,
        /// delivery, bounce, complaint, open or click.
        #[arg(long, default_value = "delivery")]
        event: String,
    },
    /// Measures what email notifications cost on AWS: runs N orders (one email each) through
    /// the stage, counts every AWS request each function makes and the units AWS bills, and
    /// prints a table per notification at list prices, then one JSON line.
    Cost {
        #[arg(long, default_value_t = 200)]
        notifications: usize,
        /// The customers the orders are for (one per order by default; 1 for a burst to one
        /// customer).
        #[arg(long)]
        customers: Option<usize>,
    },
    /// Measures how long a change to a customer's feed takes to reach their open WebSocket:
    /// connects as a customer, puts N in-app notifications on the bus one after another, and
    /// prints milliseconds from the feed entry's write (and from the bus) to the message on
    /// the socket, then one JSON line.
    Latency {
        #[arg(long, default_value_t = 50)]
        notifications: usize,
    },
    /// Runs N notifying events through a fresh stage while things go wrong (provider faults,
    /// events and dispatch messages delivered twice, dispatches killed after the provider
    /// accepted), counts what the providers recorded against what was expected, and prints
    /// one JSON line last; exits non-zero when a notification was lost or doubled. Always on
    /// an emulator of its own.
    Chaos(ChaosConfig),
    /// Measures each function as a Lambda: runs the release binaries (and a hello-world
    /// function) as processes against a local Lambda Runtime API with real events from the
    /// stage, and prints, per function, its size, cold start, first invocation, warm CPU per
    /// invocation and per notification, and peak memory (medians), then one JSON line.
    Perf {
        /// Where the release binaries are (`make perf` builds them there).
        #[arg(long, default_value_os_t = herald_local::perf::default_bin_dir())]
        bin_dir: PathBuf,
        /// Orders (one email notification each) per repetition.
        #[arg(long, default_value_t = 100)]
        notifications: usize,
        /// How many times each binary is started and measured (in turn, for the medians).
        #[arg(long, default_value_t = 5)]
        repetitions: usize,
    },
    /// Renders a type's templates as a recipient would get them: the built-in ones, or with
    /// `--org` the organization's over them as the stage stores them (read from the running
    /// emulator at AWS_ENDPOINT_URL, which `serve` and `start` print); with the type's sample
    /// context, or the one in FILE.
    Preview {
        #[arg(value_name = "TYPE", value_parser = |s: &str| NotificationType::parse(s))]
        notification_type: NotificationType,
        /// One channel; every channel the type has templates for when left out.
        #[arg(long, value_parser = |s: &str| s.parse::<Channel>())]
        channel: Option<Channel>,
        /// The recipient's locale (the organization's default, else English, when left out).
        #[arg(long, value_parser = |s: &str| Locale::parse(s))]
        locale: Option<Locale>,
        #[arg(long, value_parser = |s: &str| OrgId::parse(s))]
        org: Option<OrgId>,
        /// A JSON object to render with in place of the type's sample context.
        #[arg(long, value_name = "FILE")]
        context: Option<PathBuf>,
        /// One JSON object per channel in place of the text.
        #[arg(long)]
        json: bool,
    },
    /// Prints a development token for `serve`.
    Token {
        #[arg(long)]
        org: String,
        /// A customer's token (their feed, preferences, contact).
        #[arg(long, conflicts_with_all = ["admin", "operator"], required_unless_present_any = ["admin", "operator"])]
        customer: Option<String>,
        /// An operator's token (notifications, retry, dead letters, stats).
        #[arg(long)]
        operator: bool,
        /// An administrator's token (provider settings too).
        #[arg(long, conflicts_with = "operator")]
        admin: bool,
    },
    /// Starts the emulator with Herald's resources, prints the environment for
    /// `cargo lambda watch` (and the bus's name), and processes what reaches the bus as the
    /// deployed stack does; runs until interrupted.
    Start,
}

fn print_human(file: &str, report: &EventReport) {
    let reason = report
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    println!(
        "{file}  {}  → {}{reason}",
        report.detail_type, report.outcome
    );
    for n in &report.notifications {
        let when = n
            .scheduled_for
            .as_deref()
            .map(|t| format!(", scheduled for {t}"))
            .unwrap_or_default();
        let error = n
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let template = match n.template {
            Some(t @ herald_core::model::TemplateRef::Organization { .. }) => format!(" ({t})"),
            _ => String::new(),
        };
        println!(
            "    {} to {} by {}: {}{error}{when}{template}",
            n.notification_type, n.recipient, n.channel, n.status
        );
        if let Some(subject) = &n.subject {
            println!("      subject: {subject}");
        }
        for line in n.body.lines() {
            println!("      | {line}");
        }
        let history: Vec<&str> = n.log.iter().map(|l| l.event.as_str()).collect();
        let feed = if n.in_feed {
            "in the feed"
        } else {
            "not in a feed"
        };
        println!("      log: {}; {feed}", history.join(" → "));
    }
    for s in &report.skipped {
        println!("    {} skipped: {}", s.channel, s.reason);
    }
    for p in &report.published {
        println!("    published {} for {}", p.detail_type, p.notification_id);
    }
}

async fn up(stack: &LocalStack, dir: &Path) -> Result<(), LocalError> {
    let (events, labels) = read_samples(dir)?;
    println!(
        "Herald on the local emulator at {} (stage {})\n",
        stack.emulator.endpoint, stack.stack.names.stage
    );
    let reports = stack.run(&events).await?;
    for (label, report) in labels.iter().zip(&reports) {
        print_human(label, report);
    }
    print_totals(&reports);
    Ok(())
}

/// How many events ended each way, and how many notifications in each status.
fn print_totals(reports: &[EventReport]) {
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for report in reports {
        *outcomes.entry(&report.outcome).or_default() += 1;
        for n in &report.notifications {
            *statuses.entry(&n.status).or_default() += 1;
        }
    }
    let join = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\n{} events: {}", reports.len(), join(&outcomes));
    println!(
        "{} notifications: {}",
        statuses.values().sum::<usize>(),
        join(&statuses)
    );
}

async fn send(stack: &LocalStack, files: &[PathBuf]) -> Result<(), LocalError> {
    let mut events = Vec::new();
    for f in files {
        events.extend(read_events(f)?);
    }
    for r in stack.run(&events).await? {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

async fn tick(stack: &LocalStack, at: Option<DateTime<Utc>>) -> Result<(), LocalError> {
    let report = stack.tick(at).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn serve(serving: Serving) -> Result<(), LocalError> {
    println!(
        "Herald is served at http://{} (emulator {}, stage {}); Ctrl-C stops it.",
        serving.addr, serving.local.emulator.endpoint, serving.local.stack.names.stage
    );
    print_exports(&serving.local);
    keep_running(serving.local).await
}

/// The environment for the functions and for other programs (the bus to put events on).
fn print_exports(stack: &LocalStack) {
    for (k, v) in stack.function_env() {
        println!("export {k}={v}");
    }
    println!("# Ctrl-C stops the emulator.");
    // these lines are read by whoever started us: make sure they leave now
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

/// Runs the stage as AWS would (what reaches the bus is processed) until interrupted.
async fn keep_running(stack: Arc<LocalStack>) -> Result<(), LocalError> {
    tokio::select! {
        _ = herald_local::pump::keep_running(stack) => Ok(()),
        r = tokio::signal::ctrl_c() => Ok(r?),
    }
}

async fn start(serving: Serving) -> Result<(), LocalError> {
    println!(
        "# Herald's resources are up on the emulator, and what reaches the bus is processed. For cargo lambda watch / invoke:"
    );
    print_exports(&serving.local);
    keep_running(serving.local).await
}

/// How long `send`, `up` and `tick` wait for a running `serve` or `start` to let them pump.
const PUMP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The sample organizations' provider settings.
const SAMPLE_PROVIDERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/providers");

/// The sample organizations' own types and templates.
const SAMPLE_TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/templates");

/// The commands that work on the stage's resources: the emulator started (or reached), the
/// stack created and served (the stand-ins for SendGrid and Twilio call back to its webhooks),
/// the sample organizations' providers and templates set, and for those that pump, the stage's
/// pump lock held.
async fn on_stack(stage: &str, command: Command) -> Result<(), LocalError> {
    let emulator = Emulator::start_or_connect().await?;
    let port = match &command {
        Command::Serve { port } => *port,
        _ => 0,
    };
    let serving = Serving::start(emulator, stage, port).await?;
    serving
        .served
        .put_sample_providers(Path::new(SAMPLE_PROVIDERS))
        .await?;
    serving
        .served
        .put_sample_templates(Path::new(SAMPLE_TEMPLATES))
        .await?;
    let stack = serving.local.as_ref();
    // One process pumps a stage at a time: a running `serve` or `start` pauses while these
    // run (herald_local::pump).
    let pumping = || {
        PumpLock::acquire(
            &stack.emulator.endpoint,
            &stack.stack.names.stage,
            PUMP_WAIT,
        )
    };
    match command {
        Command::Up { events } => {
            let _lock = pumping().await?;
            up(stack, &events).await
        }
        Command::Send { files } => {
            let _lock = pumping().await?;
            send(stack, &files).await
        }
        Command::Tick { at } => {
            let _lock = pumping().await?;
            tick(stack, at).await
        }
        Command::Cost {
            notifications,
            customers,
        } => {
            let _lock = pumping().await?;
            let customers = customers.unwrap_or(notifications);
            let report =
                herald_local::cost::email_notifications(stack, notifications, customers).await?;
            println!(
                "{} email notifications, per notification (list prices of {}):\n",
                report.notifications, report.prices_date
            );
            println!("{}", report.table());
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Latency { notifications } => {
            let _lock = pumping().await?;
            let report = herald_local::latency::measure(&serving, notifications.max(1)).await?;
            println!(
                "{} in-app notifications to one open socket:\n",
                report.notifications
            );
            println!("{}", report.table());
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Perf {
            bin_dir,
            notifications,
            repetitions,
        } => {
            let _lock = pumping().await?;
            let options = herald_local::perf::PerfOptions {
                bin_dir,
                notifications,
                repetitions,
            };
            let report = herald_local::perf::run(stack, &options).await?;
            println!(
                "{} repetitions of {} email notifications each, release binaries in {}; medians:\n",
                report.repetitions,
                report.notifications_per_repetition,
                options.bin_dir.display()
            );
            println!("{}", report.table());
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Start => start(serving).await,
        Command::Serve { .. } => serve(serving).await,
        Command::Token { .. }
        | Command::Webhook { .. }
        | Command::Chaos(_)
        | Command::Preview { .. } => Ok(()),
    }
}

/// A development token for `serve` (a customer's unless `operator` or `admin`).
fn token(
    org: String,
    customer: Option<String>,
    operator: bool,
    admin: bool,
) -> Result<String, LocalError> {
    let role = match (admin, operator) {
        (true, _) => "admin",
        (_, true) => "operator",
        _ => "customer",
    };
    let mut claims = HashMap::from([
        ("org_id".to_string(), org),
        ("role".to_string(), role.into()),
    ]);
    if let (Some(c), "customer") = (customer, role) {
        claims.insert("customer_id".into(), c);
    }
    herald_local::dev_tokens::token(&claims)
}

/// Posts an SES event, signed as SNS would sign it, to a served webhook; its status and body.
async fn post_webhook(
    url: &str,
    org: &str,
    message_id: &str,
    event: &str,
) -> Result<String, LocalError> {
    let message = herald_local::serve::ses_event(org, message_id, event)?;
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/ses", url.trim_end_matches('/')))
        .header("content-type", "text/plain; charset=UTF-8")
        .body(message.to_string())
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    Ok(format!("{} {body}", status.as_u16()))
}

/// Prints what a recipient would get by each channel; whether every channel rendered.
async fn preview(
    stage: &str,
    mut request: PreviewRequest,
    context: Option<&Path>,
    org: Option<OrgId>,
    json: bool,
) -> Result<bool, LocalError> {
    request.context = context.map(read_context).transpose()?;
    let previews = herald_local::preview::run(stage, &request, org.as_ref()).await?;
    for p in &previews {
        if json {
            println!("{}", serde_json::to_string(p)?);
        } else {
            print!("{}", p.human());
        }
    }
    Ok(previews
        .iter()
        .all(|p: &Preview| matches!(p.outcome, PreviewOutcome::Rendered { .. })))
}

/// Runs the chaos and prints its summary, then its JSON line; whether it came out clean.
async fn chaos(stage: &str, config: ChaosConfig) -> Result<bool, LocalError> {
    let config = config.check()?;
    let r = herald_local::chaos::run(config, stage).await?;
    let t = &r.total;
    println!(
        "{} events, {} notifications: {} sent, {} failed, {} skipped, {} pending; {} lost, {} doubled, {} resent after a crash, {} unexpected ({:.1} s{})",
        r.events,
        t.notifications,
        t.sent,
        t.failed,
        t.skipped,
        t.pending,
        t.lost,
        t.doubled,
        t.resent_after_crash,
        r.unexpected,
        r.duration_s,
        if r.gave_up {
            ", gave up with work pending"
        } else {
            ""
        }
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(r.is_clean())
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token {
            org,
            customer,
            operator,
            admin,
        } => token(org, customer, operator, admin).map(|t| println!("{t}")),
        Command::Webhook {
            url,
            org,
            message_id,
            event,
        } => post_webhook(&url, &org, &message_id, &event)
            .await
            .map(|answer| println!("{answer}")),
        Command::Chaos(config) => match chaos(&cli.stage, config).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Preview {
            notification_type,
            channel,
            locale,
            org,
            context,
            json,
        } => {
            let request = PreviewRequest {
                notification_type,
                channel,
                locale,
                context: None,
            };
            let previewed = preview(&cli.stage, request, context.as_deref(), org, json).await;
            match previewed {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        command => on_stack(&cli.stage, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-local: {e}");
            ExitCode::FAILURE
        }
    }
}
