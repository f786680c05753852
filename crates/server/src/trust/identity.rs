//! CI identity tokens (OIDC JWTs) for trusted publishing: which configured issuer made one, its
//! signature against that issuer's published keys, and its registered claims.
//!
//! The issuer is chosen by the token's unverified `iss`, among `[[oidc.issuers]]` only (none is
//! trusted by default). Its keys come from `<issuer>/.well-known/openid-configuration` (or the
//! configured `jwks_url`), cached per instance and fetched again when a token names an unknown
//! key, at most once a minute. Then: an asymmetric algorithm the key allows, the signature, `iss`,
//! `aud` (`npm:<registry host>`), `exp`, `nbf` and `iat` against the registry's clock with 30 s
//! of leeway, and `jti`, used once (in the store, so across instances).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::OidcIssuer;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Leeway on `exp`, `nbf` and `iat`.
const LEEWAY_S: i64 = 30;
/// The shortest time between two fetches of an issuer's keys.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// The largest identity token considered.
const MAX_TOKEN: usize = 16 * 1024;
/// How long fetched keys are trusted before they are fetched again (a key the issuer dropped
/// stops counting by then).
const KEYS_LIVE: Duration = Duration::from_secs(3600);
/// The largest discovery document or key set read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// The longest lifetime an identity token may claim.
const MAX_LIFETIME_S: i64 = 24 * 3600;

/// A verified identity token.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The configured issuer that made it.
    pub issuer: OidcIssuer,
    /// All of its claims.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// A claim as text (numbers too, as GitHub's ids may come either way).
    pub fn claim(&self, name: &str) -> Option<String> {
        match self.claims.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// The exchange's error, in the words npm logs.
pub fn refused(status: u16, why: impl std::fmt::Display) -> ApiError {
    let status =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::UNAUTHORIZED);
    ApiError::new(status, format!("OIDC token exchange error - {why}"))
}

/// Issuers' keys, as last fetched, per instance.
#[derive(Default)]
pub struct IssuerKeys {
    cached: Mutex<HashMap<String, (Instant, JwkSet)>>,
    /// When each issuer's keys were last asked for, answered or not.
    attempts: Mutex<HashMap<String, Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    client: std::sync::OnceLock<reqwest::Client>,
}

impl IssuerKeys {
    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client")
        })
    }

    /// The key `kid` of `issuer`, while its set is younger than [`KEYS_LIVE`].
    fn fresh(&self, issuer: &str, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        self.cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(issuer)
            .filter(|(at, _)| at.elapsed() < KEYS_LIVE)
            .and_then(|(_, set)| set.find(kid).cloned())
    }

    /// The key `kid` of `issuer`: from the cache, else fetched (one fetch at a time, at most
    /// once a minute per issuer, answered or not).
    async fn key(
        &self,
        issuer: &OidcIssuer,
        kid: &str,
    ) -> Result<jsonwebtoken::jwk::Jwk, ApiError> {
        if let Some(k) = self.fresh(&issuer.issuer, kid) {
            return Ok(k);
        }
        let _one = self.fetching.lock().await;
        if let Some(k) = self.fresh(&issuer.issuer, kid) {
            return Ok(k);
        }
        let unknown = || refused(401, format!("unknown signing key {kid:?}"));
        {
            let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            if attempts
                .get(&issuer.issuer)
                .is_some_and(|at| at.elapsed() < REFETCH_AFTER)
            {
                return Err(unknown());
            }
            attempts.insert(issuer.issuer.clone(), Instant::now());
        }
        let set = self.fetch(issuer).await?;
        self.cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(issuer.issuer.clone(), (Instant::now(), set.clone()));
        set.find(kid).cloned().ok_or_else(unknown)
    }

    async fn fetch(&self, issuer: &OidcIssuer) -> Result<JwkSet, ApiError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(issuer = %issuer.issuer, error = %e, "{what}");
            refused(
                500,
                format!("the keys of {} could not be fetched", issuer.issuer),
            )
        };
        let jwks_url = match &issuer.jwks_url {
            Some(u) => u.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.issuer.trim_end_matches('/')
                );
                let body = self
                    .get(&discovery)
                    .await
                    .map_err(|e| unavailable("OIDC discovery failed", &e))?;
                let doc: Value = serde_json::from_slice(&body)
                    .map_err(|e| unavailable("OIDC discovery is not JSON", &e))?;
                if doc["issuer"].as_str() != Some(issuer.issuer.as_str()) {
                    return Err(unavailable(
                        "OIDC discovery names another issuer",
                        &doc["issuer"],
                    ));
                }
                let uri = doc["jwks_uri"].as_str().unwrap_or("");
                if !acceptable_url(uri) {
                    return Err(unavailable("OIDC discovery's jwks_uri is not https", &uri));
                }
                uri.to_owned()
            }
        };
        let body = self
            .get(&jwks_url)
            .await
            .map_err(|e| unavailable("OIDC keys could not be fetched", &e))?;
        serde_json::from_slice(&body).map_err(|e| unavailable("OIDC keys are not a JWK set", &e))
    }

    /// A document of at most [`MAX_DOCUMENT`] bytes.
    async fn get(&self, url: &str) -> Result<bytes::Bytes, String> {
        let res = self
            .client()
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        if res
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT as u64)
        {
            return Err("too large".into());
        }
        let body = res.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_DOCUMENT {
            return Err("too large".into());
        }
        Ok(body)
    }
}

/// An issuer or key URL: https, or http on a loopback address (a test, or a sidecar).
pub fn acceptable_url(s: &str) -> bool {
    let Ok(u) = url::Url::parse(s) else {
        return false;
    };
    match (u.scheme(), u.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(d))) => d == "localhost",
        _ => false,
    }
}

/// The audience this registry's identity tokens must name: `npm:<host>` of `public_url`, or of
/// the listen address when it is a specific one. Never from request headers, which the caller
/// chooses.
pub fn audience(config: &crate::config::Config) -> Result<String, ApiError> {
    if let Some(u) = &config.public_url {
        let host = url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .ok_or_else(|| refused(500, "public_url has no host"))?;
        return Ok(format!("npm:{host}"));
    }
    let ip = config.listen.ip();
    if ip.is_unspecified() {
        return Err(refused(
            500,
            "this registry has no public_url, so it cannot tell which audience its identity \
             tokens must name; its administrator sets public_url",
        ));
    }
    Ok(match ip {
        std::net::IpAddr::V4(v4) => format!("npm:{v4}"),
        std::net::IpAddr::V6(v6) => format!("npm:[{v6}]"),
    })
}

/// The unverified payload, to pick the issuer.
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies `token` for the registry whose audience is `audience` (`npm:<host>`).
pub async fn verify(state: &AppState, token: &str, audience: &str) -> Result<Identity, ApiError> {
    if token.len() > MAX_TOKEN {
        return Err(refused(400, "the identity token is too large"));
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| refused(400, "the identity token is not a JWT"))?;
    let unverified =
        unverified_claims(token).ok_or_else(|| refused(400, "the identity token is not a JWT"))?;
    let iss = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| refused(400, "the identity token has no issuer"))?;
    let issuer = state
        .config
        .oidc
        .issuers
        .iter()
        .find(|i| i.issuer == iss)
        .ok_or_else(|| {
            refused(
                401,
                format!("{iss} is not a trusted issuer on this registry"),
            )
        })?
        .clone();
    let allowed = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
    ];
    if !allowed.contains(&header.alg) {
        return Err(refused(
            401,
            format!("algorithm {:?} is not accepted", header.alg),
        ));
    }
    let kid = header
        .kid
        .ok_or_else(|| refused(401, "the identity token names no signing key"))?;
    let jwk = state.oidc_keys.key(&issuer, &kid).await?;
    // a signing key, for this algorithm when it names one
    if jwk.common.public_key_use == Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        || jwk
            .common
            .key_algorithm
            .is_some_and(|a| format!("{a:?}") != format!("{:?}", header.alg))
    {
        return Err(refused(
            401,
            format!("signing key {kid:?} is not for {:?}", header.alg),
        ));
    }
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| refused(401, format!("signing key {kid:?} cannot be used")))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[iss]);
    validation.set_audience(&[audience]);
    // times are checked below against the registry's clock
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims = ["iss", "aud", "exp", "iat"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAudience => refused(
                401,
                format!("the identity token is not for this registry ({audience})"),
            ),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                refused(401, "the identity token's signature is not valid")
            }
            other => refused(401, format!("the identity token is not valid ({other:?})")),
        },
    )?;
    let claims = data.claims;
    let now = state.clock.now_ms() / 1000;
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = time("exp").ok_or_else(|| refused(401, "the identity token has no expiry"))?;
    if exp > now.saturating_add(MAX_LIFETIME_S) {
        return Err(refused(401, "the identity token claims to live too long"));
    }
    if exp.saturating_add(LEEWAY_S) < now {
        return Err(refused(401, "the identity token has expired"));
    }
    if time("nbf").is_some_and(|nbf| nbf - LEEWAY_S > now)
        || time("iat").is_some_and(|iat| iat - LEEWAY_S > now)
    {
        return Err(refused(401, "the identity token is not valid yet"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .ok_or_else(|| refused(401, "the identity token has no jti"))?;
    let jti_hash = crate::authn::api_tokens::hash(&format!("{iss} {jti}"));
    if !state
        .store
        .use_jti(&jti_hash, (exp + LEEWAY_S) * 1000, now.saturating_mul(1000))
        .await?
    {
        return Err(refused(401, "this identity token was already exchanged"));
    }
    Ok(Identity { issuer, claims })
}
