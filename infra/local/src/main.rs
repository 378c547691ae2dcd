//! `herald-local`: run Herald on the local AWS emulator.
#![allow(clippy::print_stdout)] // a command-line tool: standard output is its interface

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herald_local::{Emulator, EventReport, LocalStack};
use serde_json::Value;
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
        at: Option<chrono::DateTime<chrono::Utc>>,
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
    /// Prints a development token for `serve`.
    Token {
        #[arg(long)]
        org: String,
        /// A customer's token (their feed, preferences, contact).
        #[arg(long, conflicts_with_all = ["admin", "operator"])]
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

fn read_events(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(events)) => Ok(events),
        Ok(event @ Value::Object(_)) => Ok(vec![event]),
        Ok(_) => Err(format!(
            "{}: expected an event object or an array of events",
            path.display()
        )),
        Err(e) => Err(format!("{}: not JSON: {e}", path.display())),
    }
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
        println!(
            "    {} to {} by {}: {}{error}{when}",
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
}

async fn up(stack: &LocalStack, dir: &Path) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut events = Vec::new();
    let mut labels = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in read_events(f)? {
            events.push(e);
            labels.push(name.clone());
        }
    }
    println!(
        "Herald on the local emulator at {} (stage {})\n",
        stack.emulator.endpoint, stack.stack.names.stage
    );
    let reports = stack.run(&events).await.map_err(|e| e.to_string())?;
    let mut counts = std::collections::BTreeMap::new();
    let mut statuses = std::collections::BTreeMap::new();
    for (label, report) in labels.iter().zip(&reports) {
        print_human(label, report);
        *counts.entry(report.outcome.clone()).or_insert(0) += 1;
        for n in &report.notifications {
            *statuses.entry(n.status.clone()).or_insert(0) += 1;
        }
    }
    let join = |m: &std::collections::BTreeMap<String, i32>| {
        m.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\n{} events: {}", reports.len(), join(&counts));
    println!(
        "{} notifications: {}",
        statuses.values().sum::<i32>(),
        join(&statuses)
    );
    Ok(())
}

async fn send(stack: &LocalStack, files: &[PathBuf]) -> Result<(), String> {
    let mut events = Vec::new();
    for f in files {
        events.extend(read_events(f)?);
    }
    let reports = stack.run(&events).await.map_err(|e| e.to_string())?;
    for r in reports {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    }
    Ok(())
}

async fn tick(stack: &LocalStack, at: Option<chrono::DateTime<chrono::Utc>>) -> Result<(), String> {
    let report = stack.tick(at).await.map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn serve(stack: LocalStack, port: u16) -> Result<(), String> {
    use std::sync::Arc;
    let public_base = stack.options.public_base_url.clone();
    let stack = Arc::new(stack);
    // Port 0: any free port, chosen now so the served URL is known before serving.
    let port = match port {
        0 => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port(),
        p => p,
    };
    // Twilio signatures are checked against the served URL unless a public one is configured.
    let base = public_base.unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let names = &stack.stack.names;
    let webhooks = herald_webhooks::webhooks(
        herald_webhooks::Config {
            notifications_table: names.notifications_table(),
            directory_table: names.directory_table(),
            provider_secrets_prefix: names.provider_secrets_prefix(),
            public_base_url: base.clone(),
            sendgrid_window: chrono::Duration::minutes(5),
            ses_topic_arns: vec![herald_local::serve::LOCAL_SES_TOPIC.into()],
        },
        &stack.aws,
        stack.clock.clone(),
    );
    // SNS's certificate host is out of reach locally: the local stack signs as SNS itself
    let mut webhooks = webhooks;
    webhooks.sns = std::sync::Arc::new(herald_local::serve::LocalSns);
    let api = herald_api::api(
        &herald_api::Config {
            notifications_table: names.notifications_table(),
            directory_table: names.directory_table(),
            views_table: names.views_table(),
            dispatch_queue_url: stack.stack.dispatch_queue_url.clone(),
            provider_secrets_prefix: names.provider_secrets_prefix(),
            default_sender: herald_core::ids::EmailAddress::parse(
                herald_local::stack::DEFAULT_SENDER,
            )
            .map_err(|e| e.to_string())?,
        },
        &stack.aws,
        stack.clock.clone(),
    )
    .map_err(|e| e.to_string())?;
    let served = herald_local::serve::Served {
        local: stack.clone(),
        webhooks,
        api,
    };
    let (addr, _server) = herald_local::serve::serve(served, port)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Herald is served at http://{addr} (emulator {}, stage {}); Ctrl-C stops it.",
        stack.emulator.endpoint, stack.stack.names.stage
    );
    print_exports(&stack);
    keep_running(stack).await
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
async fn keep_running(stack: std::sync::Arc<LocalStack>) -> Result<(), String> {
    tokio::select! {
        _ = herald_local::pump::keep_running(stack) => Ok(()),
        r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string()),
    }
}

/// How long `send`, `up` and `tick` wait for a running `serve` or `start` to let them pump.
const PUMP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

async fn post_webhook(
    url: &str,
    org: &str,
    message_id: &str,
    event: &str,
) -> Result<String, String> {
    let message = herald_local::serve::ses_event(org, message_id, event)?;
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/ses", url.trim_end_matches('/')))
        .header("content-type", "text/plain; charset=UTF-8")
        .body(message.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok(format!("{} {body}", status.as_u16()))
}

async fn start(stack: LocalStack) -> Result<(), String> {
    println!(
        "# Herald's resources are up on the emulator, and what reaches the bus is processed. For cargo lambda watch / invoke:"
    );
    print_exports(&stack);
    keep_running(std::sync::Arc::new(stack)).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Token {
        org,
        customer,
        operator,
        admin,
    } = &cli.command
    {
        let role = if *admin {
            "admin"
        } else if *operator {
            "operator"
        } else {
            "customer"
        };
        let mut claims = std::collections::HashMap::from([
            ("org_id".to_string(), org.clone()),
            ("role".to_string(), role.to_string()),
        ]);
        match (role, customer) {
            ("customer", Some(c)) => {
                claims.insert("customer_id".into(), c.clone());
            }
            ("customer", None) => {
                eprintln!(
                    "herald-local: a customer token needs --customer (or use --operator / --admin)"
                );
                return ExitCode::FAILURE;
            }
            _ => {}
        }
        println!("{}", herald_local::serve::dev_token(&claims));
        return ExitCode::SUCCESS;
    }
    if let Command::Webhook {
        url,
        org,
        message_id,
        event,
    } = &cli.command
    {
        return match post_webhook(url, org, message_id, event).await {
            Ok(answer) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("herald-local: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = async {
        let emulator = Emulator::start_or_connect()
            .await
            .map_err(|e| e.to_string())?;
        let stack = LocalStack::start(emulator, &cli.stage)
            .await
            .map_err(|e| e.to_string())?;
        // One process pumps a stage at a time: a running `serve` or `start` pauses while
        // these run (herald_local::pump).
        let pumping = || {
            herald_local::pump::PumpLock::acquire(
                &stack.emulator.endpoint,
                &stack.stack.names.stage,
                PUMP_WAIT,
            )
        };
        match &cli.command {
            Command::Up { events } => {
                let _lock = pumping().await.map_err(|e| e.to_string())?;
                up(&stack, events).await
            }
            Command::Send { files } => {
                let _lock = pumping().await.map_err(|e| e.to_string())?;
                send(&stack, files).await
            }
            Command::Tick { at } => {
                let _lock = pumping().await.map_err(|e| e.to_string())?;
                tick(&stack, *at).await
            }
            Command::Start => start(stack).await,
            Command::Serve { port } => serve(stack, *port).await,
            Command::Token { .. } | Command::Webhook { .. } => Ok(()),
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-local: {e}");
            ExitCode::FAILURE
        }
    }
}
