//! One function binary run as Lambda runs it: a process with the function's environment and
//! `AWS_LAMBDA_RUNTIME_API` pointing at a local runtime API of its own, measured from the
//! outside (when it first polls, the CPU it has used, its peak memory).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::process::{Child, Command};

use super::PerfError;
use super::process::{cpu_time, peak_memory_kb};
use super::runtime_api::{Notice, Outcome, RuntimeApi};

/// The memory Lambda is configured with (template.yaml's `MemorySize`), as the runtime is told.
const MEMORY_MB: &str = "256";
/// How long a process may take to first poll, and an invocation to be answered, before the
/// run gives up on it (a guard against a hung process, far above any real figure).
const LIMIT: Duration = Duration::from_secs(120);

/// A running function process between its polls.
pub struct Running {
    pub name: &'static str,
    child: Child,
    pid: u32,
    api: RuntimeApi,
    log: PathBuf,
    /// From exec to the first `GET /next`.
    pub cold_start: Duration,
    /// The CPU it used to get there.
    pub init_cpu: Duration,
}

/// One invocation as measured: its outcome and times, and the CPU the process used from
/// receiving the event to polling for the next one.
pub struct Measured {
    pub outcome: Outcome,
    pub duration: Duration,
    pub cpu: Duration,
}

impl Running {
    /// Starts `binary` with `env`, its output appended to `log`, and waits for its first poll.
    pub async fn launch(
        name: &'static str,
        binary: &Path,
        env: &[(&'static str, String)],
        log: &Path,
    ) -> Result<Running, PerfError> {
        let api = RuntimeApi::start(name, LIMIT).await?;
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| PerfError::Log {
                path: log.to_path_buf(),
                source,
            })?;
        let errors = output.try_clone().map_err(|source| PerfError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let mut command = Command::new(binary);
        // Lambda's environment: the function's variables and the runtime's, nothing inherited
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = command.spawn().map_err(|source| PerfError::Spawn {
            function: name,
            source,
        })?;
        let pid = child.id().ok_or(PerfError::Gone { function: name })?;
        let mut running = Running {
            name,
            child,
            pid,
            api,
            log: log.to_path_buf(),
            cold_start: Duration::ZERO,
            init_cpu: Duration::ZERO,
        };
        let polled = running.polled("start").await?;
        running.cold_start = polled.saturating_duration_since(spawned);
        running.init_cpu = running.cpu()?;
        Ok(running)
    }

    fn cpu(&self) -> Result<Duration, PerfError> {
        cpu_time(self.pid).map_err(|source| PerfError::Proc {
            function: self.name,
            source,
        })
    }

    /// The highest resident memory of the process so far, in kilobytes.
    pub fn peak_memory_kb(&self) -> Result<u64, PerfError> {
        peak_memory_kb(self.pid).map_err(|source| PerfError::Proc {
            function: self.name,
            source,
        })
    }

    /// Waits for the process's next poll; it is then idle until it gets an invocation.
    async fn polled(&mut self, doing: &'static str) -> Result<Instant, PerfError> {
        let notice = tokio::select! {
            notice = self.api.next_notice() => notice,
            status = self.child.wait() => return Err(self.exited(doing, status)),
            _ = tokio::time::sleep(LIMIT) => return Err(PerfError::TimedOut { function: self.name, doing, limit: LIMIT }),
        };
        match notice {
            Some(Notice::Polled(at)) => Ok(at),
            Some(Notice::InitFailed(error)) => Err(PerfError::InitFailed {
                function: self.name,
                error_type: error.error_type,
                log: self.log.clone(),
            }),
            None => Err(PerfError::Gone {
                function: self.name,
            }),
        }
    }

    fn exited(
        &self,
        doing: &'static str,
        status: std::io::Result<std::process::ExitStatus>,
    ) -> PerfError {
        PerfError::Exited {
            function: self.name,
            doing,
            status: status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            log: self.log.clone(),
        }
    }

    /// Hands the process one event and measures it up to its next poll. An error the function
    /// answers with fails the run.
    pub async fn invoke(&mut self, payload: impl Into<Bytes>) -> Result<Measured, PerfError> {
        let before = self.cpu()?;
        let invocation = tokio::select! {
            invocation = self.api.invoke(payload) => invocation?,
            status = self.child.wait() => return Err(self.exited("invoke", status)),
            _ = tokio::time::sleep(LIMIT) => return Err(PerfError::TimedOut { function: self.name, doing: "answer an invocation", limit: LIMIT }),
        };
        self.polled("poll again").await?;
        let cpu = self.cpu()?.saturating_sub(before);
        if let Outcome::Error(error) = &invocation.outcome {
            return Err(PerfError::InvocationFailed {
                function: self.name,
                error_type: error.error_type.clone(),
                message: error.error_message.clone(),
                log: self.log.clone(),
            });
        }
        Ok(Measured {
            duration: invocation.duration(),
            outcome: invocation.outcome,
            cpu,
        })
    }

    /// Ends the process.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
