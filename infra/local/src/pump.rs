//! Who pumps a stage. Locally the event sources are played by whichever process reads them:
//! the intake queue (the bus rule's target), the dispatch queue and the table's stream. Two
//! processes doing it at once compete: each takes messages the other was waiting for, and
//! `send` reports notifications another process is still in the middle of.
//!
//! So one process at a time pumps a stage of an emulator, holding this lock: `serve` and
//! `start` take it for each one-second round and skip the round while another holds it;
//! `send`, `up` and `tick` take it for their whole run, so a running `serve` or `start` pauses
//! meanwhile and takes over again when they are done. The lock is an exclusive lock on a file
//! in the temporary directory, named after the emulator's address and the stage (the emulator
//! listens on 127.0.0.1, so every process that shares it is on this machine); the system
//! releases it when its process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::info;

use crate::error::LocalError;

/// Held while its process pumps the stage; dropping it lets the next one in.
#[derive(Debug)]
pub struct PumpLock {
    _file: File,
}

/// The lock file of a stage on an emulator.
pub fn lock_path(endpoint: &str, stage: &str) -> PathBuf {
    let address = endpoint
        .trim()
        .trim_end_matches('/')
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .replace("localhost", "127.0.0.1");
    let name: String = format!("{address}-{stage}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::env::temp_dir()
        .join("herald-local")
        .join(format!("{name}.lock"))
}

fn lock_error(path: &std::path::Path, e: std::io::Error) -> LocalError {
    LocalError::PumpLock {
        path: path.to_path_buf(),
        source: e,
    }
}

impl PumpLock {
    /// The lock if no other process holds it now.
    pub fn try_acquire(endpoint: &str, stage: &str) -> Result<Option<PumpLock>, LocalError> {
        let path = lock_path(endpoint, stage);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| lock_error(&path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| lock_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(PumpLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(lock_error(&path, e)),
        }
    }

    /// The lock, waiting up to `limit` for the process that holds it (a running `serve` or
    /// `start` lets go at the end of its round, within a second or two).
    pub async fn acquire(
        endpoint: &str,
        stage: &str,
        limit: Duration,
    ) -> Result<PumpLock, LocalError> {
        let started = Instant::now();
        let mut told = false;
        loop {
            if let Some(lock) = Self::try_acquire(endpoint, stage)? {
                return Ok(lock);
            }
            if started.elapsed() >= limit {
                return Err(LocalError::Busy {
                    stage: stage.to_string(),
                    endpoint: endpoint.to_string(),
                    waited: limit,
                });
            }
            if !told {
                info!(
                    stage,
                    "another herald-local process is pumping this stage: waiting for its round to end"
                );
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Keeps the stage moving as AWS would, for `serve` and `start`: every second, what reached
/// the bus goes to intake, the dispatch queue to dispatch and the stream to the projector;
/// every minute the scheduler sweeps. Each round holds the [`PumpLock`]; a round another
/// process holds it for is skipped. Runs until dropped.
pub async fn keep_running(local: std::sync::Arc<crate::driver::LocalStack>) {
    const ROUND: Duration = Duration::from_secs(1);
    const SWEEP_EVERY: Duration = Duration::from_secs(60);
    let mut last_sweep = Instant::now();
    loop {
        tokio::time::sleep(ROUND).await;
        let lock = match PumpLock::try_acquire(&local.emulator.endpoint, &local.stack.names.stage) {
            Ok(Some(lock)) => lock,
            Ok(None) => continue, // a `send`, `up` or `tick` is running: it pumps meanwhile
            Err(e) => {
                tracing::warn!(error = %e, "background round skipped");
                continue;
            }
        };
        let sweep = last_sweep.elapsed() >= SWEEP_EVERY;
        let result = async {
            local.pump_intake_queue().await?;
            if sweep {
                local.tick(None).await.map(|_| ())
            } else {
                local.drain_dispatch().await?;
                local.hear_from_providers().await;
                local.project().await.map(|_| ())
            }
        }
        .await;
        drop(lock);
        if sweep {
            last_sweep = Instant::now();
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "background round failed");
        }
    }
}
