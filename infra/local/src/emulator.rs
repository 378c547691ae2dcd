//! moto's server, the local AWS emulator: started on a free 127.0.0.1 port from the project's
//! virtualenv, or an already running one named by `AWS_ENDPOINT_URL`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use serde::Deserialize;
use std::process::{Child, Command};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EmulatorError {
    #[error(
        "no Python in the virtualenv at {0}: run infra/bootstrap.sh (make run and make test do)"
    )]
    NoVirtualenv(PathBuf),
    #[error("could not start moto's server: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("moto's server did not answer at {0} within {1:?}")]
    NotReady(String, Duration),
    #[error("reading the emulator's sent messages: {0}")]
    Read(#[source] reqwest::Error),
}

/// The region everything local lives in.
pub const REGION: &str = "us-east-1";

/// Serves moto one request at a time, and keeps it alive while Python's stdin is open: when
/// this process ends, however it ends, the pipe closes and the server stops with it.
///
/// One request at a time because moto's threaded server checks a DynamoDB condition and
/// applies the update in separate steps, so two racing conditional writes can both pass;
/// served serially, each request is atomic, as in DynamoDB. (No long polls, then: a
/// `WaitTimeSeconds` receive would hold the whole server.)
const LAUNCHER: &str = r#"
import sys, threading
from moto.server import DomainDispatcherApplication, create_backend_app
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server
server = make_server("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app),
                     threaded=False, request_handler=MotoRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
server.shutdown()
"#;

pub struct Emulator {
    pub endpoint: String,
    child: Option<Child>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The project's virtualenv: `HERALD_VENV`, else `.venv` at the workspace root.
pub fn venv() -> PathBuf {
    std::env::var_os("HERALD_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Emulator {
    /// Uses `AWS_ENDPOINT_URL` when set; otherwise starts moto's server.
    pub async fn start_or_connect() -> Result<Emulator, EmulatorError> {
        match std::env::var("AWS_ENDPOINT_URL") {
            Ok(url) if !url.trim().is_empty() => Emulator::connect(&url).await,
            _ => Emulator::start().await,
        }
    }

    /// Connects to a running emulator.
    pub async fn connect(endpoint: &str) -> Result<Emulator, EmulatorError> {
        let emulator = Emulator {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            child: None,
        };
        emulator.wait_ready(Duration::from_secs(10)).await?;
        Ok(emulator)
    }

    /// Starts a moto server of our own on a free port.
    pub async fn start() -> Result<Emulator, EmulatorError> {
        let python = venv().join("bin/python");
        if !python.exists() {
            return Err(EmulatorError::NoVirtualenv(venv()));
        }
        let port = free_port().map_err(EmulatorError::Spawn)?;
        let log = std::env::var_os("HERALD_EMULATOR_LOG").is_some();
        let child = Command::new(python)
            .arg("-c")
            .arg(LAUNCHER)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .map_err(EmulatorError::Spawn)?;
        let emulator = Emulator {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        emulator.wait_ready(Duration::from_secs(30)).await?;
        Ok(emulator)
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), EmulatorError> {
        let started = Instant::now();
        let url = format!("{}/moto-api/", self.endpoint);
        while started.elapsed() < limit {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EmulatorError::NotReady(self.endpoint.clone(), limit))
    }

    /// The SDK configuration that talks to this emulator.
    pub async fn aws_config(&self) -> SdkConfig {
        self.loader().load().await
    }

    /// The SDK configuration for one part of Herald, whose requests are counted in `log`.
    pub async fn counted_config(
        &self,
        component: crate::requests::Component,
        log: &crate::requests::RequestLog,
    ) -> SdkConfig {
        self.counted_config_with(component, log, None).await
    }

    /// As [`Emulator::counted_config`], with faults injected into the requests
    /// ([`crate::faults`]).
    pub async fn counted_config_with(
        &self,
        component: crate::requests::Component,
        log: &crate::requests::RequestLog,
        faults: Option<crate::faults::Faults>,
    ) -> SdkConfig {
        self.loader()
            .http_client(log.http_client_with(component, faults))
            .load()
            .await
    }

    fn loader(&self) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "herald-local",
            ))
    }

    /// What the emulator "sent": emails through SES and SMS through SNS.
    pub async fn sent(&self) -> Result<Sent, EmulatorError> {
        let data: MotoData = reqwest::get(format!("{}/moto-api/data.json", self.endpoint))
            .await
            .map_err(EmulatorError::Read)?
            .json()
            .await
            .map_err(EmulatorError::Read)?;
        Ok(Sent {
            emails: data.ses.message,
            sms: data.sns.sms,
            push: data.sns.platform_endpoints,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct MotoData {
    #[serde(default)]
    ses: MotoSes,
    #[serde(default)]
    sns: MotoSns,
}

#[derive(Debug, Default, Deserialize)]
struct MotoSes {
    #[serde(default, rename = "Message")]
    message: Vec<SentEmail>,
}

#[derive(Debug, Default, Deserialize)]
struct MotoSns {
    #[serde(default, rename = "SMS")]
    sms: Vec<SentSms>,
    #[serde(default, rename = "PlatformEndpoint")]
    platform_endpoints: Vec<PushEndpoint>,
}

/// A mobile push endpoint as the emulator kept it, with the messages published to it (by
/// message id, in order).
#[derive(Debug, Clone, Deserialize)]
pub struct PushEndpoint {
    pub arn: String,
    pub token: String,
    #[serde(default)]
    pub messages: serde_json::Map<String, serde_json::Value>,
}

/// An email as the emulator kept it.
#[derive(Debug, Clone, Deserialize)]
pub struct SentEmail {
    pub id: String,
    pub source: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub destinations: Destinations,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Destinations {
    #[serde(default, rename = "ToAddresses")]
    pub to: Vec<String>,
}

/// An SMS as the emulator kept it.
#[derive(Debug, Clone, Deserialize)]
pub struct SentSms {
    pub message_id: String,
    pub phone_number: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Sent {
    pub emails: Vec<SentEmail>,
    pub sms: Vec<SentSms>,
    pub push: Vec<PushEndpoint>,
}

impl Sent {
    /// The messages published to the endpoints of this device token, in order.
    pub fn pushes_to(&self, token: &str) -> Vec<String> {
        self.push
            .iter()
            .filter(|e| e.token == token)
            .flat_map(|e| e.messages.values())
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect()
    }

    pub fn emails_to(&self, address: &str) -> Vec<&SentEmail> {
        self.emails
            .iter()
            .filter(|e| e.destinations.to.iter().any(|t| t == address))
            .collect()
    }

    pub fn sms_to(&self, phone: &str) -> Vec<&SentSms> {
        self.sms
            .iter()
            .filter(|s| s.phone_number == phone)
            .collect()
    }

    /// The subject and body the provider got for this provider message id.
    pub fn content_of(&self, provider_message_id: &str) -> Option<(Option<String>, String)> {
        if let Some(e) = self.emails.iter().find(|e| e.id == provider_message_id) {
            return Some((Some(e.subject.clone()), e.body.clone()));
        }
        self.sms
            .iter()
            .find(|s| s.message_id == provider_message_id)
            .map(|s| (None, s.message.clone()))
    }
}
