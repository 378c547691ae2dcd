//! `herald-local serve`: the webhooks and api functions on 127.0.0.1, behind a stand-in for
//! API Gateway that turns HTTP requests into API Gateway v2 events (with the JWT authorizer's
//! claims from a development token), while the stage keeps running in the background
//! ([`crate::pump::keep_running`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde_json::{Value, json};

use axum::routing::{get, post};
use base64::Engine;
use herald_adapters::tokens::{KeyIssuer, TokenVerifier};

use crate::dev_tokens;
use crate::driver::{LocalStack, Options, setting};
use crate::emulator::Emulator;
use crate::error::LocalError;
use crate::inbox;
use crate::requests::Component;
use crate::stand_ins::StandIns;
use crate::websocket::{self, WebSocketApi};

/// The API Gateway v2 request context for a request, with the authorizer's claims.
pub fn request_context(
    method: &str,
    path: &str,
    claims: Option<HashMap<String, String>>,
) -> RequestContext {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.method = method.parse().unwrap_or_default();
    context.http.path = Some(path.to_string());
    context.stage = Some("$default".into());
    context.time_epoch = chrono::Utc::now().timestamp_millis();
    if let Some(claims) = claims {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims;
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        context.authorizer = Some(authorizer);
    }
    RequestContext::ApiGatewayV2(context)
}

pub struct Served {
    pub local: Arc<LocalStack>,
    pub webhooks: herald_webhooks::Webhooks,
    pub api: herald_api::Api,
    /// The WebSocket API: its authorizer's token checks (the HTTP api's too), its routes and
    /// its open sockets.
    pub websocket: Arc<WebSocketApi>,
    /// The issuer of the development tokens the stack accepts.
    pub tokens: Arc<KeyIssuer>,
    /// Where the webhooks are reached.
    pub public_base_url: String,
    /// Where the stack is served (`http://127.0.0.1:port`).
    pub served_at: String,
}

impl Served {
    /// The webhooks and the api on the stack's resources, configured as the SAM template
    /// configures them; `public_base_url` is where the webhooks are reached (Twilio's
    /// signatures are checked against it).
    pub async fn new(
        local: Arc<LocalStack>,
        public_base_url: String,
        served_at: String,
    ) -> Result<Served, LocalError> {
        let names = &local.stack.names;
        let counted = |component| local.emulator.counted_config(component, &local.requests);
        let webhooks_aws = counted(Component::Webhooks).await;
        let api_aws = counted(Component::Api).await;
        let realtime_aws = counted(Component::Realtime).await;
        // the authorizer reads the served key set, as it reads the issuer's in AWS
        let verifier = Arc::new(TokenVerifier::new(
            dev_tokens::policy(format!("{served_at}/.well-known/jwks.json")),
            herald_adapters::http_client(),
        ));
        let websocket = Arc::new(WebSocketApi {
            verifier,
            routes: herald_realtime::Routes {
                connections: Arc::new(herald_adapters::DynamoConnections::new(
                    aws_sdk_dynamodb::Client::new(&realtime_aws),
                    names.connections_table(),
                )),
                clock: local.clock.clone(),
            },
            sockets: Default::default(),
        });
        let mut webhooks = herald_webhooks::webhooks(
            herald_webhooks::Config {
                notifications_table: names.notifications_table(),
                directory_table: names.directory_table(),
                provider_secrets_prefix: names.provider_secrets_prefix(),
                public_base_url: public_base_url.clone(),
                sendgrid_window: chrono::Duration::minutes(5),
                ses_topic_arns: vec![LOCAL_SES_TOPIC.into()],
            },
            &webhooks_aws,
            local.clock.clone(),
        );
        // SNS's certificate host is out of reach locally: the local stack signs as SNS itself
        webhooks.sns = Arc::new(LocalSns);
        let default_sender = herald_core::ids::EmailAddress::parse(crate::stack::DEFAULT_SENDER)
            .map_err(|e| LocalError::handler("api", e))?;
        let api = herald_api::api(
            &herald_api::Config {
                notifications_table: names.notifications_table(),
                directory_table: names.directory_table(),
                views_table: names.views_table(),
                templates_table: names.templates_table(),
                dispatch_queue_url: local.stack.dispatch_queue_url.clone(),
                provider_secrets_prefix: names.provider_secrets_prefix(),
                default_sender,
                routing: herald_core::routing::Routing::builtin(),
                rate_limits: local.options.rate_limits.clone(),
                realtime: local.options.realtime(&local.stack.names),
            },
            &api_aws,
            local.clock.clone(),
        )
        .map_err(|e| LocalError::handler("api", e))?;
        Ok(Served {
            local,
            webhooks,
            api,
            websocket,
            tokens: Arc::new(dev_tokens::issuer()?),
            public_base_url,
            served_at,
        })
    }

    /// Gives each sample organization the provider settings in `dir` (`<org>.json`: a body of
    /// `PUT /admin/providers/{provider}` per provider), through that route with an
    /// administrator's token. When the stand-ins play SendGrid, an organization's SendGrid
    /// account is theirs: its events go to the organization's served webhook, signed with
    /// the stand-ins' key, which its settings name.
    pub async fn put_sample_providers(&self, dir: &Path) -> Result<(), LocalError> {
        for sample in crate::samples::providers(dir)? {
            let org = &sample.org;
            for (provider, mut body) in sample.providers {
                if let (Some(stand_ins), "sendgrid") = (&self.local.providers, provider.as_str()) {
                    if let Some(key) = body.get("api_key").and_then(Value::as_str) {
                        stand_ins.sendgrid_account(
                            key,
                            format!("{}/webhooks/sendgrid/{org}", self.public_base_url),
                        );
                    }
                    body["webhook_public_key"] = json!(stand_ins.sendgrid_public_key());
                }
                let (status, answer) = self
                    .admin_put(org, &format!("/admin/providers/{provider}"), &body)
                    .await?;
                if status >= 300 {
                    return Err(LocalError::NotSample {
                        path: sample.path.clone(),
                        why: format!("PUT /admin/providers/{provider} answered {status}: {answer}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Gives each sample organization the templates in `dir` ([`crate::samples::templates`])
    /// through the api, as its administrator would. What the stage already holds is kept (a
    /// `PUT` answered 409): a template edited on a running stage stays as it was edited.
    pub async fn put_sample_templates(&self, dir: &Path) -> Result<(), LocalError> {
        for sample in crate::samples::templates(dir)? {
            for (path, body) in &sample.puts {
                let (status, answer) = self.admin_put(&sample.org, path, body).await?;
                if status >= 300 && status != 409 {
                    return Err(LocalError::NotSample {
                        path: sample.path.clone(),
                        why: format!("PUT {path} answered {status}: {answer}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// A `PUT` to the api as an administrator of `org`: the status and the body.
    async fn admin_put(
        &self,
        org: &str,
        path: &str,
        body: &Value,
    ) -> Result<(u16, String), LocalError> {
        let claims = HashMap::from([
            ("org_id".to_string(), org.to_string()),
            ("role".to_string(), "admin".to_string()),
        ]);
        let request = lambda_http::http::Request::builder()
            .method("PUT")
            .uri(path)
            .header("content-type", "application/json")
            .body(lambda_http::Body::from(body.to_string()))
            .map_err(|e| LocalError::handler("api", e))?
            .with_request_context(request_context("PUT", path, Some(claims)));
        let response =
            herald_api::handle(&self.api, request)
                .await
                .map_err(|e| LocalError::Handler {
                    function: "api",
                    source: e,
                })?;
        let status = response.status().as_u16();
        let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        Ok((status, body))
    }
}

async fn gateway(
    State(served): State<Arc<Served>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // API Gateway's JWT authorizer: the claims of a valid token, or none
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let claims = match token {
        Some(token) => served.websocket.verifier.verify(token).await.ok(),
        None => None,
    };
    let webhook = path.starts_with("/webhooks/");
    let mut request = lambda_http::http::Request::builder()
        .method(method.as_str())
        .uri(uri.to_string());
    for (k, v) in &headers {
        request = request.header(k.as_str(), v.as_bytes());
    }
    let request = match request.body(lambda_http::Body::from(body.to_vec())) {
        Ok(r) => r.with_request_context(request_context(
            method.as_str(),
            &path,
            if webhook { None } else { claims },
        )),
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let answer = if webhook {
        herald_webhooks::handle(&served.webhooks, request).await
    } else {
        herald_api::handle(&served.api, request).await
    };
    match answer {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let mut out = axum::http::Response::builder().status(parts.status.as_u16());
            for (k, v) in &parts.headers {
                out = out.header(k.as_str(), v.as_bytes());
            }
            out.body(axum::body::Body::from(body.as_ref().to_vec()))
                .unwrap_or_else(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The local stack as the command line runs it, served: SendGrid and Twilio played by the
/// stand-ins (unless `HERALD_SENDGRID_BASE_URL` or `HERALD_TWILIO_BASE_URL` name others),
/// calling back to the webhooks, which are served with the api on 127.0.0.1:`port` (0: any
/// free port). The stage runs only when something pumps it ([`crate::pump`]).
pub struct Serving {
    pub local: Arc<LocalStack>,
    pub served: Arc<Served>,
    pub addr: SocketAddr,
    pub server: tokio::task::JoinHandle<()>,
}

/// Where the stand-ins keep SendGrid's signing key, so every process of the local stack signs
/// with the key the sample organizations' settings hold.
fn stand_in_key_file() -> PathBuf {
    crate::keys::file("sendgrid-event-webhook.pk8")
}

impl Serving {
    pub async fn start(emulator: Emulator, stage: &str, port: u16) -> Result<Serving, LocalError> {
        Self::start_with_faults(emulator, stage, port, None).await
    }

    /// As [`Serving::start`], with `faults` injected into dispatch's AWS requests and the
    /// stand-ins' answers (`herald-local chaos`).
    pub async fn start_with_faults(
        emulator: Emulator,
        stage: &str,
        port: u16,
        faults: Option<crate::faults::Faults>,
    ) -> Result<Serving, LocalError> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let addr = listener.local_addr()?;
        let stand_ins = StandIns::start_keeping_key(&stand_in_key_file()).await?;
        stand_ins.call_back();
        if let Some(faults) = faults.clone() {
            stand_ins.inject_faults(Arc::new(move |provider, body: &[u8]| {
                faults.stand_in_answer(provider, body)
            }));
        }
        let mut options = Options {
            dispatch_faults: faults,
            sendgrid_base_url: setting("HERALD_SENDGRID_BASE_URL")
                .unwrap_or_else(|| stand_ins.url().to_string()),
            twilio_base_url: setting("HERALD_TWILIO_BASE_URL")
                .unwrap_or_else(|| stand_ins.url().to_string()),
            // the served stack plays the WebSocket API's management endpoint too
            websocket_endpoint: Some(format!("http://{addr}")),
            ..Options::default()
        };
        // Twilio signatures are checked against the served URL unless a public one is set
        let base = options
            .public_base_url
            .get_or_insert_with(|| format!("http://{addr}"))
            .clone();
        let mut local = LocalStack::start_with(emulator, stage, options).await?;
        local.providers = Some(stand_ins);
        let local = Arc::new(local);
        let served = Arc::new(Served::new(local.clone(), base, format!("http://{addr}")).await?);
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/inbox", get(inbox::page))
            .route("/inbox/herald-inbox.js", get(inbox::script))
            .fallback(gateway)
            .with_state(served.clone())
            .layer(local_pages_cors())
            .merge(
                axum::Router::new()
                    .route("/realtime", get(websocket::connect))
                    .route(
                        "/@connections/{id}",
                        post(websocket::post_to_connection)
                            .get(websocket::get_connection)
                            .delete(websocket::delete_connection),
                    )
                    .with_state(served.websocket.clone()),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Serving {
            local,
            served,
            addr,
            server,
        })
    }
}

/// CORS for pages served from this machine (a web app's dev server on `localhost:5173`, say),
/// as the template's `InboxOrigins` allows named origins in AWS: the same methods and headers.
fn local_pages_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(|origin, _| {
            origin.to_str().is_ok_and(is_local_origin)
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            HeaderName::from_static("content-type"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Whether an `Origin` is a page on this machine.
fn is_local_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && matches!(
                u.host(),
                Some(url::Host::Domain("localhost"))
                    | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                    | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
            )
    })
}

/// `GET /.well-known/jwks.json`: the key set of the development tokens.
async fn jwks(State(served): State<Arc<Served>>) -> axum::Json<Value> {
    axum::Json(served.tokens.jwks())
}

/// The SNS topic the local stack accepts SES events from.
pub const LOCAL_SES_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:herald-local-ses-events";
const LOCAL_SNS_CERT: &[u8] = include_bytes!("../../../tests/fixtures/sns-cert.pem");
const LOCAL_SNS_KEY: &[u8] = include_bytes!("../../../tests/fixtures/sns-key.pk8");

/// SNS's HTTPS endpoints as the local stack plays them: its own signing certificate, and
/// subscriptions confirmed without a call out.
pub struct LocalSns;

#[async_trait::async_trait]
impl herald_core::ports::SnsEndpoints for LocalSns {
    async fn certificate(&self, _url: &str) -> Result<Vec<u8>, herald_core::ports::PortError> {
        Ok(LOCAL_SNS_CERT.to_vec())
    }

    async fn confirm_subscription(&self, _url: &str) -> Result<(), herald_core::ports::PortError> {
        Ok(())
    }
}

/// An SES event as SNS would post it to the webhook, signed with the local certificate.
pub fn ses_event(org: &str, message_id: &str, event: &str) -> Result<Value, LocalError> {
    let event_type = match event {
        "delivery" => "Delivery",
        "bounce" => "Bounce",
        "complaint" => "Complaint",
        "open" => "Open",
        "click" => "Click",
        other => return Err(LocalError::UnknownWebhookEvent(other.to_string())),
    };
    let ses = json!({
        "eventType": event_type,
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General"},
        "mail": {"messageId": message_id, "tags": {"herald_org_id": [org]}},
    });
    let mut message = json!({
        "Type": "Notification",
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": LOCAL_SES_TOPIC,
        "Message": ses.to_string(),
        "Timestamp": herald_core::time::format(&chrono::Utc::now()),
        "SignatureVersion": "2",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-local.pem",
        "Signature": "",
    });
    let parsed: herald_core::provider_events::ses::SnsMessage =
        serde_json::from_value(message.clone())?;
    let canonical = parsed
        .canonical()
        .map_err(|_| LocalError::Signing("the message has no canonical form"))?;
    let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(LOCAL_SNS_KEY)
        .map_err(|_| LocalError::Signing("the local key is not a PKCS#8 RSA key"))?;
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        canonical.as_bytes(),
        &mut signature,
    )
    .map_err(|_| LocalError::Signing("the key refused to sign"))?;
    message["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::is_local_origin;

    #[test]
    fn only_pages_on_this_machine_are_local_origins() {
        for local in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "https://localhost",
            "http://[::1]:8080",
        ] {
            assert!(is_local_origin(local), "{local}");
        }
        for other in [
            "https://app.example.com",
            "http://localhost.example.com",
            "http://127.0.0.2",
            "file://localhost",
            "null",
            "",
        ] {
            assert!(!is_local_origin(other), "{other}");
        }
    }
}
