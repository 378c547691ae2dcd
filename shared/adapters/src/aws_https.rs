//! The SDK's HTTPS client, built once per cold start.
//!
//! By default it trusts only the roots that AWS's endpoints chain to (Amazon Trust Services,
//! `certs/amazon-trust-services.pem`, compiled in): five certificates instead of the platform's
//! store of some 150, which the SDK's default client reads and decodes at every cold start (its
//! largest cost, `make perf`), and a smaller set to trust. `HERALD_TLS_ROOTS=system` uses the
//! platform's store instead: for endpoints whose certificates other authorities issue (the
//! China regions) or a proxy that inspects TLS with its own authority.

use std::fmt;
use std::str::FromStr;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{self, ConfigError};

/// The roots AWS documents for clients that keep their own trust store.
pub const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Which authorities the SDK's client trusts (`HERALD_TLS_ROOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// Amazon Trust Services' roots only.
    #[default]
    Aws,
    /// The platform's store.
    System,
}

impl FromStr for TlsRoots {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aws" => Ok(TlsRoots::Aws),
            "system" => Ok(TlsRoots::System),
            other => Err(format!("{other:?} is neither aws nor system")),
        }
    }
}

impl fmt::Display for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsRoots::Aws => "aws",
            TlsRoots::System => "system",
        })
    }
}

impl TlsRoots {
    pub fn from_env() -> Result<TlsRoots, ConfigError> {
        config::parsed("HERALD_TLS_ROOTS", TlsRoots::default(), str::parse)
    }

    fn trust_store(self) -> TrustStore {
        match self {
            TlsRoots::Aws => TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(AMAZON_TRUST_SERVICES),
            TlsRoots::System => TrustStore::empty().with_native_roots(true),
        }
    }
}

/// The client every AWS SDK client of a function shares: rustls on aws-lc-rs, as the SDK's
/// default one, with the roots chosen.
pub fn client(roots: TlsRoots) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build();
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
    match context {
        Ok(context) => builder.tls_context(context).build_https(),
        // building a context only gathers its parts; should it ever refuse, the default roots
        Err(_) => builder.build_https(),
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn the_bundled_roots_are_amazon_trust_services_five_and_all_usable() {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES)
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(certs.len(), 5);
        // what the SDK's client does with them: each must become a trust anchor, or it panics
        let mut roots = rustls::RootCertStore::empty();
        let (added, refused) = roots.add_parsable_certificates(certs);
        assert_eq!((added, refused), (5, 0));
        let text = String::from_utf8_lossy(AMAZON_TRUST_SERVICES);
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(text.contains(&format!("CN = {name}")), "{name}");
        }
    }

    /// Answers one request with an empty JSON object, as an AWS JSON-protocol service would.
    async fn answer_once(listener: tokio::net::TcpListener) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok((mut socket, _)) = listener.accept().await else {
            return String::new();
        };
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // the SDK sends its headers and small body at once; read until the body is complete
        while let Ok(n) = socket.read(&mut buffer).await {
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                body.len() >= length
            });
            if n == 0 || complete {
                break;
            }
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}";
        let _ = socket.write_all(answer.as_bytes()).await;
        String::from_utf8_lossy(&request).to_string()
    }

    #[tokio::test]
    async fn an_sdk_client_on_either_trust_store_builds_and_makes_its_requests() {
        for roots in [TlsRoots::Aws, TlsRoots::System] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server = tokio::spawn(answer_once(listener));
            let config = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
                    aws_sdk_sqs::config::Credentials::new("AKID", "SECRET", None, None, "test"),
                ))
                .endpoint_url(format!("http://{address}"))
                .http_client(client(roots))
                .build();
            // the TLS configuration is built with the client: bad roots would fail here
            let sqs = aws_sdk_sqs::Client::new(&config);
            let listed = sqs.list_queues().send().await.unwrap();
            assert!(listed.queue_urls().is_empty(), "{roots}");
            let request = server.await.unwrap();
            assert!(
                request.contains("AmazonSQS.ListQueues"),
                "{roots}: {request}"
            );
        }
    }

    #[test]
    fn the_roots_setting_is_aws_or_system_and_names_itself() {
        assert_eq!("aws".parse(), Ok(TlsRoots::Aws));
        assert_eq!("system".parse(), Ok(TlsRoots::System));
        assert_eq!(TlsRoots::default(), TlsRoots::Aws);
        for roots in [TlsRoots::Aws, TlsRoots::System] {
            assert_eq!(roots.to_string().parse(), Ok(roots));
        }
        let err = "mozilla".parse::<TlsRoots>().unwrap_err();
        assert!(err.contains("mozilla"), "{err}");
    }
}
