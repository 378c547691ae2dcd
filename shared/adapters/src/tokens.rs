//! Token checks for the WebSocket authorizer: what API Gateway's JWT authorizer does for the
//! HTTP api, which a WebSocket API does not offer. A token is an RS256/384/512 JWT signed by
//! one of the issuer's published keys (its JWKS), from that issuer, for this audience (`aud`,
//! or `client_id` as in Cognito's access tokens), and within its `nbf`..`exp`.
//!
//! The key set is read once per warm function and read again when a token names a key it
//! does not hold (the issuer rotated its keys), at most once a minute so that tokens with
//! made-up key ids cannot make the function hammer the issuer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::Mutex;

/// How long after a read of the key set an unknown key id may cause another.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// Leeway on `exp` and `nbf`, for clocks that differ a little.
const LEEWAY_SECONDS: u64 = 30;

/// The tokens a deployment accepts.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// The `iss` every token carries (`HERALD_JWT_ISSUER`, the SAM parameter `JwtIssuer`).
    pub issuer: String,
    /// Its `aud`, or `client_id` (`HERALD_JWT_AUDIENCE`).
    pub audience: String,
    /// Where the issuer publishes its keys; by default, the `jwks_uri` of its OpenID
    /// configuration (`{issuer}/.well-known/openid-configuration`).
    pub jwks_url: Option<String>,
}

/// Why a token was refused: the authorizer answers 401 to each, and logs only the kind.
#[derive(Debug, Error)]
pub enum TokenError {
    #[error("no token")]
    Missing,
    #[error("the token is not a JWT signed with an RSA key")]
    Malformed,
    #[error("the token's key is not one of the issuer's")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is from another issuer")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token lacks {0}")]
    MissingClaim(String),
    /// The issuer's keys could not be read: not the token's fault, but nobody gets in.
    #[error("the issuer's keys could not be read: {0}")]
    KeysUnavailable(String),
}

struct Keys {
    set: JwkSet,
    read_at: Instant,
}

/// Verifies tokens against the issuer's keys, kept for the life of the warm function.
pub struct TokenVerifier {
    policy: TokenPolicy,
    /// `None`: the keys held are the only ones (no issuer to read).
    http: Option<reqwest::Client>,
    keys: Mutex<Option<Keys>>,
}

#[derive(Deserialize)]
struct OpenIdConfiguration {
    jwks_uri: String,
}

impl TokenVerifier {
    pub fn new(policy: TokenPolicy, http: reqwest::Client) -> Self {
        TokenVerifier {
            policy,
            http: Some(http),
            keys: Mutex::new(None),
        }
    }

    /// A verifier that holds these keys and never reads others (tests, the local stack's
    /// own tokens).
    pub fn with_keys(policy: TokenPolicy, set: JwkSet) -> Self {
        TokenVerifier {
            policy,
            http: None,
            keys: Mutex::new(Some(Keys {
                set,
                read_at: Instant::now(),
            })),
        }
    }

    /// The token's claims, strings and numbers as strings (as the HTTP api's authorizer
    /// hands them on), if it is one this deployment accepts.
    pub async fn verify(&self, token: &str) -> Result<HashMap<String, String>, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let algorithms = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
        if !algorithms.contains(&header.alg) {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = algorithms.to_vec();
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.policy.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        // `aud` or `client_id`: checked below, as the JWT authorizer does
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<HashMap<String, Value>>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
                _ => TokenError::Malformed,
            })?;
        let claims = data.claims;
        if !for_audience(&claims, &self.policy.audience) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
                Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect())
    }

    /// The key the token names: from the keys held, or from the issuer's keys read again.
    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut keys = self.keys.lock().await;
        let held = keys.as_ref().and_then(|k| k.set.find(kid)).cloned();
        let jwk = match held {
            Some(jwk) => jwk,
            None => {
                let stale = keys
                    .as_ref()
                    .is_none_or(|k| k.read_at.elapsed() >= REFETCH_AFTER);
                let Some(http) = self.http.as_ref().filter(|_| stale) else {
                    return Err(TokenError::UnknownKey);
                };
                let set = self.read_keys(http).await?;
                let found = set.find(kid).cloned();
                *keys = Some(Keys {
                    set,
                    read_at: Instant::now(),
                });
                found.ok_or(TokenError::UnknownKey)?
            }
        };
        DecodingKey::from_jwk(&jwk).map_err(|_| TokenError::UnknownKey)
    }

    async fn read_keys(&self, http: &reqwest::Client) -> Result<JwkSet, TokenError> {
        let url = match &self.policy.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.policy.issuer.trim_end_matches('/')
                );
                get_json::<OpenIdConfiguration>(http, &discovery)
                    .await?
                    .jwks_uri
            }
        };
        get_json(http, &url).await
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, TokenError> {
    let unavailable = |e: reqwest::Error| TokenError::KeysUnavailable(e.without_url().to_string());
    http.get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(unavailable)?
        .json()
        .await
        .map_err(unavailable)
}

fn for_audience(claims: &HashMap<String, Value>, audience: &str) -> bool {
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    aud || claims.get("client_id").and_then(Value::as_str) == Some(audience)
}

/// An issuer of tokens signed with one RSA key (RS256), and the key set that verifies them:
/// the local stack's development tokens, and the tests' tokens from the right and the wrong
/// issuer.
pub struct KeyIssuer {
    key: aws_lc_rs::rsa::KeyPair,
    kid: String,
    issuer: String,
    audience: String,
}

impl KeyIssuer {
    /// An issuer with a new 2048-bit key.
    pub fn generate(kid: &str, issuer: &str, audience: &str) -> Result<Self, TokenError> {
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| TokenError::KeysUnavailable("no RSA key could be made".into()))?;
        Ok(Self::with_key(key, kid, issuer, audience))
    }

    /// An issuer with a PKCS#8 (DER) key.
    pub fn from_pkcs8(
        der: &[u8],
        kid: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, TokenError> {
        let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
            .map_err(|_| TokenError::KeysUnavailable("the key is not a PKCS#8 RSA key".into()))?;
        Ok(Self::with_key(key, kid, issuer, audience))
    }

    /// Its key, PKCS#8 (DER), to keep.
    pub fn pkcs8(&self) -> Result<Vec<u8>, TokenError> {
        use aws_lc_rs::encoding::AsDer;
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = self
            .key
            .as_der()
            .map_err(|_| TokenError::KeysUnavailable("the key cannot be encoded".into()))?;
        Ok(der.as_ref().to_vec())
    }

    fn with_key(key: aws_lc_rs::rsa::KeyPair, kid: &str, issuer: &str, audience: &str) -> Self {
        KeyIssuer {
            key,
            kid: kid.into(),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// The policy that accepts this issuer's tokens.
    pub fn policy(&self) -> TokenPolicy {
        TokenPolicy {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks_url: None,
        }
    }

    /// The key set an issuer publishes (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> Value {
        use aws_lc_rs::signature::KeyPair;
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let public = self.key.public_key();
        serde_json::json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        }]})
    }

    /// A token with these claims besides `iss`, `aud`, `iat` and `exp` (`lifetime` from now;
    /// negative for an expired one).
    pub fn token(&self, claims: &HashMap<String, String>, lifetime: chrono::Duration) -> String {
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = chrono::Utc::now();
        let mut payload: serde_json::Map<String, Value> = claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        payload.insert("iss".into(), self.issuer.clone().into());
        payload.insert("aud".into(), self.audience.clone().into());
        payload.insert("iat".into(), now.timestamp().into());
        payload.insert("exp".into(), (now + lifetime).timestamp().into());
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(Value::Object(payload).to_string().as_bytes())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut signature = vec![0; self.key.public_modulus_len()];
        // signing with a well-formed key into a buffer of its modulus' length cannot fail
        let _ = self.key.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &rng,
            signing_input.as_bytes(),
            &mut signature,
        );
        format!("{signing_input}.{}", b64(&signature))
    }

    /// The key set, as the verifier takes it.
    pub fn key_set(&self) -> Result<JwkSet, TokenError> {
        serde_json::from_value(self.jwks())
            .map_err(|_| TokenError::KeysUnavailable("the key set does not parse".into()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn issuer() -> KeyIssuer {
        KeyIssuer::generate("k1", "https://id.example.com", "herald").unwrap()
    }

    fn customer() -> HashMap<String, String> {
        HashMap::from([
            ("org_id".to_string(), "org_acme".to_string()),
            ("customer_id".to_string(), "cus_1".to_string()),
        ])
    }

    fn verifier(of: &KeyIssuer, policy: TokenPolicy) -> TokenVerifier {
        TokenVerifier::with_keys(policy, of.key_set().unwrap())
    }

    #[tokio::test]
    async fn a_token_of_the_issuer_for_the_audience_gives_its_claims() {
        let issuer = issuer();
        let claims = verifier(&issuer, issuer.policy())
            .verify(&issuer.token(&customer(), chrono::Duration::minutes(5)))
            .await
            .unwrap();
        assert_eq!(claims["customer_id"], "cus_1");
        assert_eq!(claims["iss"], "https://id.example.com");
    }

    #[tokio::test]
    async fn tokens_expired_for_another_audience_or_issuer_or_key_are_refused() {
        let issuer = issuer();
        let token = issuer.token(&customer(), chrono::Duration::minutes(5));
        let v = |policy| verifier(&issuer, policy);
        let expired = issuer.token(&customer(), chrono::Duration::minutes(-5));
        assert!(matches!(
            v(issuer.policy()).verify(&expired).await,
            Err(TokenError::Expired)
        ));
        let mut other_audience = issuer.policy();
        other_audience.audience = "billing".into();
        assert!(matches!(
            v(other_audience).verify(&token).await,
            Err(TokenError::WrongAudience)
        ));
        let mut other_issuer = issuer.policy();
        other_issuer.issuer = "https://evil.example.com".into();
        assert!(matches!(
            v(other_issuer).verify(&token).await,
            Err(TokenError::WrongIssuer)
        ));
        // the same key id, another key
        let impostor = KeyIssuer::generate("k1", "https://id.example.com", "herald").unwrap();
        assert!(matches!(
            v(issuer.policy())
                .verify(&impostor.token(&customer(), chrono::Duration::minutes(5)))
                .await,
            Err(TokenError::BadSignature)
        ));
        let unknown = KeyIssuer::generate("k2", "https://id.example.com", "herald").unwrap();
        assert!(matches!(
            v(issuer.policy())
                .verify(&unknown.token(&customer(), chrono::Duration::minutes(5)))
                .await,
            Err(TokenError::UnknownKey)
        ));
        assert!(matches!(
            v(issuer.policy()).verify("").await,
            Err(TokenError::Missing)
        ));
    }

    #[tokio::test]
    async fn a_token_signed_with_an_hmac_of_the_public_key_is_refused() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let issuer = issuer();
        let genuine = issuer.token(&customer(), chrono::Duration::minutes(5));
        let payload = genuine.split('.').nth(1).unwrap();
        let header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
        let input = format!("{header}.{payload}");
        let key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            issuer.jwks().to_string().as_bytes(),
        );
        let forged = format!(
            "{input}.{}",
            b64(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref())
        );
        assert!(matches!(
            verifier(&issuer, issuer.policy()).verify(&forged).await,
            Err(TokenError::Malformed)
        ));
    }

    #[test]
    fn cognito_access_tokens_name_the_audience_as_client_id() {
        let claims = HashMap::from([("client_id".to_string(), Value::from("herald"))]);
        assert!(for_audience(&claims, "herald"));
        let listed = HashMap::from([("aud".to_string(), serde_json::json!(["x", "herald"]))]);
        assert!(for_audience(&listed, "herald"));
        assert!(!for_audience(&HashMap::new(), "herald"));
    }

    #[test]
    fn a_kept_key_signs_as_the_issuer_it_came_from() {
        let issuer = issuer();
        let again = KeyIssuer::from_pkcs8(
            &issuer.pkcs8().unwrap(),
            "k1",
            "https://id.example.com",
            "herald",
        )
        .unwrap();
        assert_eq!(issuer.jwks(), again.jwks());
    }
}
