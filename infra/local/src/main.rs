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
    /// Starts the emulator with Herald's resources and prints the environment for
    /// `cargo lambda watch`; runs until interrupted.
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

async fn start(stack: &LocalStack) -> Result<(), String> {
    println!("# Herald's resources are up on the emulator. For cargo lambda watch / invoke:");
    for (k, v) in stack.function_env() {
        println!("export {k}={v}");
    }
    println!("# Ctrl-C stops the emulator.");
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = async {
        let emulator = Emulator::start_or_connect()
            .await
            .map_err(|e| e.to_string())?;
        let stack = LocalStack::start(emulator, &cli.stage)
            .await
            .map_err(|e| e.to_string())?;
        match &cli.command {
            Command::Up { events } => up(&stack, events).await,
            Command::Send { files } => send(&stack, files).await,
            Command::Start => start(&stack).await,
            Command::Tick { at } => tick(&stack, *at).await,
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
