//! API tokens: what a new token may do ([`TokenSpec`], read from a request's fields), minting
//! it, the login token a sign-in hands out, creating one for an account (password, then the
//! door's OTP), revoking one, and its one-line summary. Shared by the npm API, the website and
//! `tessera admin`.
//!
//! Both shapes of `npm token create` are read: npm ≤ 10's `{password, readonly,
//! cidr_whitelist}` and npm 11's granular fields. The website's form uses the same field names.

use serde_json::{Map, Value};

use tessera_store::{NewToken, Permission, Token, TokenGrants, TokenKind, User};

use crate::authn::api_tokens;
use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::token_scope;
use crate::authz::{self, Target};
use crate::clock::iso8601;
use crate::config::{Lifetimes, Span, TokenConfig};
use crate::http::error::{ApiError, ApiResult};
use crate::npm::names;
use crate::services::security_log::{self, kind};
use crate::state::AppState;

/// Longest token lifetime accepted, in days.
const MAX_EXPIRY_DAYS: i64 = 3650;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What a new token may do.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub kind: TokenKind,
    pub name: Option<String>,
    pub description: Option<String>,
    pub readonly: bool,
    /// Skips the OTP on package writes.
    pub bypass_2fa: bool,
    pub cidr_whitelist: Vec<String>,
    pub grants: TokenGrants,
    pub expires_at: Option<i64>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            kind: TokenKind::Publish,
            name: None,
            description: None,
            readonly: false,
            bypass_2fa: false,
            cidr_whitelist: Vec::new(),
            grants: TokenGrants::default(),
            expires_at: None,
        }
    }
}

/// Mints and stores a token for `user`; returns the value (shown once) and the stored row.
pub async fn issue(state: &AppState, user: &User, spec: TokenSpec) -> ApiResult<(String, Token)> {
    let minted = api_tokens::mint();
    let token = state
        .store
        .create_token(
            NewToken {
                user_id: user.id,
                token_hash: minted.hash,
                display_prefix: minted.display_prefix,
                kind: spec.kind,
                name: spec.name,
                description: spec.description,
                readonly: spec.readonly,
                bypass_2fa: spec.bypass_2fa,
                cidr_whitelist: spec.cidr_whitelist,
                grants: spec.grants,
                expires_at: spec.expires_at,
            },
            state.clock.now_ms(),
        )
        .await?;
    Ok((minted.value, token))
}

/// One page of `user`'s tokens, newest first, and how many there are in all; the sessions
/// `npm login` minted only with `logins` (`npm token list` does not show them, as on npmjs).
pub async fn list(
    state: &AppState,
    user: &User,
    logins: bool,
    offset: i64,
    limit: i64,
) -> ApiResult<(Vec<Token>, i64)> {
    Ok(state
        .store
        .list_tokens(user.id, logins, offset, limit)
        .await?)
}

/// When `t` expires. A login session lives at most `tokens.login_expiry` from its creation,
/// whatever was stored when it was minted: sessions from before a lifetime was configured (or
/// from a longer one) end with the rest.
pub fn expires_at(t: &Token, limits: &TokenConfig) -> Option<i64> {
    let session_end = (t.kind == TokenKind::Login)
        .then_some(limits.login_expiry)
        .flatten()
        .map(|l| t.created_at.saturating_add(l.as_ms()));
    match (t.expires_at, session_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The token a sign-in hands out (`npm login`, the browser login), with the configured lifetime.
pub async fn issue_login_token(state: &AppState, user: &User) -> ApiResult<(String, Token)> {
    let now = state.clock.now_ms();
    let spec = TokenSpec {
        kind: TokenKind::Login,
        expires_at: state.config.tokens.login_expiry.map(|l| now + l.as_ms()),
        ..TokenSpec::default()
    };
    issue(state, user, spec).await
}

/// What a token may do and until when, in a few words. `npm token list` prints only a token's
/// prefix, id, name and creation date, so the listing carries this in `name`
/// (`ci (read-write: demo, @acme · bypasses 2FA · expires 2027-02-26)`); the plain name stays
/// in `token_name`, and every field is in `npm token list --json`.
pub fn summary(t: &Token) -> String {
    let mut parts = Vec::new();
    match t.kind {
        TokenKind::Login => parts.push("login".to_owned()),
        TokenKind::Publish => parts.push("publish".to_owned()),
        TokenKind::ReadOnly => parts.push("read-only".to_owned()),
        TokenKind::Automation => parts.push("automation".to_owned()),
        TokenKind::Oidc => parts.push("trusted publishing".to_owned()),
        TokenKind::OidcStage => parts.push("trusted publishing (staging only)".to_owned()),
        TokenKind::Granular => {
            let g = &t.grants;
            let perm = g
                .packages_and_scopes_permission
                .unwrap_or(Permission::ReadWrite)
                .as_str();
            let mut targets: Vec<String> = g.packages.clone();
            targets.extend(g.scopes.iter().cloned());
            if g.packages_all || (targets.is_empty() && g.orgs.is_empty()) {
                parts.push(format!("{perm}: all packages"));
            } else if !targets.is_empty() {
                parts.push(format!("{perm}: {}", targets.join(", ")));
            }
            if !g.orgs.is_empty() {
                let op = g.orgs_permission.unwrap_or(Permission::ReadWrite).as_str();
                parts.push(format!("orgs {op}: {}", g.orgs.join(", ")));
            }
        }
    }
    if t.bypass_2fa {
        parts.push("bypasses 2FA".into());
    }
    parts.push(match t.expires_at {
        Some(e) => format!("expires {}", &iso8601(e)[..10]),
        None => "no expiry".into(),
    });
    match t.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{name} ({})", parts.join(" · ")),
        // Unnamed (every login token): the kind leads, so the list has no empty names.
        None => {
            let lead = format!("{} token", t.kind.as_str());
            if parts.first().is_some_and(|p| *p == t.kind.as_str()) {
                parts.remove(0);
            }
            format!("{lead} ({})", parts.join(" · "))
        }
    }
}

const GRANULAR_KEYS: &[&str] = &[
    "name",
    "description",
    "expires",
    "packages",
    "packages_all",
    "scopes",
    "orgs",
    "packages_and_scopes_permission",
    "orgs_permission",
    "bypass_2fa",
];

fn opt_string(body: &Map<String, Value>, k: &str, max: usize) -> ApiResult<Option<String>> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => {
            Ok(Some(s.clone()).filter(|s| !s.is_empty()))
        }
        Some(Value::String(_)) => Err(ApiError::bad_request(format!(
            "{k} is longer than {max} characters"
        ))),
        Some(_) => Err(ApiError::bad_request(format!("{k} must be a string"))),
    }
}

fn string_list(body: &Map<String, Value>, k: &str) -> ApiResult<Vec<String>> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| ApiError::bad_request(format!("{k} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request(format!(
            "{k} must be a list of strings"
        ))),
    }
}

fn flag(body: &Map<String, Value>, k: &str) -> ApiResult<bool> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!("{k} must be true or false"))),
    }
}

/// The kind of token asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requested {
    /// A classic token that may publish.
    #[default]
    Publish,
    /// A classic read-only token.
    ReadOnly,
    /// A classic automation token.
    Automation,
    /// A granular token (npm 11): limits and permissions of its own.
    Granular,
}

/// A request for a new token, as each front end reads it from its own input (npm's JSON body,
/// the website's form). [`TokenRequest::spec`] checks it against the rules and the limits.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// What kind of token.
    pub kind: Requested,
    /// A name to list it by (up to 256 characters).
    pub name: Option<String>,
    /// What it is for (up to 1,024 characters).
    pub description: Option<String>,
    /// Its lifetime in days as written (1 to the maximum); none: the default.
    pub expires: Option<String>,
    /// Addresses or CIDR ranges it may be used from; none: anywhere.
    pub cidr_whitelist: Vec<String>,
    /// Granular: packages it reaches.
    pub packages: Vec<String>,
    /// Granular: every package of the account.
    pub packages_all: bool,
    /// Granular: scopes it reaches (`@acme` or `acme`).
    pub scopes: Vec<String>,
    /// Granular: organisations it reaches.
    pub orgs: Vec<String>,
    /// Granular: its permission on its packages and scopes.
    pub packages_and_scopes_permission: Option<Permission>,
    /// Granular: its permission on its organisations' packages.
    pub orgs_permission: Option<Permission>,
    /// Granular: publishes without the second factor.
    pub bypass_2fa: bool,
}

/// Reads a permission word, or says which words there are.
pub fn parse_permission(field: &str, word: &str) -> ApiResult<Permission> {
    Permission::parse(word).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{field} must be no-access, read-only or read-write, not {word:?}"
        ))
    })
}

impl TokenRequest {
    /// Reads either shape of npm's `POST /-/npm/v1/tokens` body: npm ≤ 10's classic
    /// `{readonly, cidr_whitelist}` (or `type: automation`), and npm 11's granular fields.
    pub fn from_json(body: &Map<String, Value>) -> ApiResult<TokenRequest> {
        // A classic token is asked for with `readonly` (npm ≤ 10 always sends it) or the
        // automation type; it may still carry a name, a description and an expiry.
        let classic = body.contains_key("readonly")
            || body.contains_key("automation")
            || body.get("type").and_then(Value::as_str) == Some("automation")
            || !GRANULAR_KEYS.iter().any(|k| body.contains_key(*k));
        let expires = match body.get("expires") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        };
        let mut request = TokenRequest {
            name: opt_string(body, "name", 256)?,
            description: opt_string(body, "description", 1024)?,
            expires,
            cidr_whitelist: string_list(body, "cidr_whitelist")?,
            ..TokenRequest::default()
        };
        if classic {
            if let Some(k) = GRANULAR_KEYS
                .iter()
                .find(|k| !["name", "description", "expires"].contains(k) && body.contains_key(**k))
            {
                return Err(ApiError::bad_request(format!(
                    "{k} applies to granular tokens only, not to classic publish, read-only or \
                     automation tokens"
                )));
            }
            let readonly = flag(body, "readonly")?;
            // Classic automation tokens: `{"type": "automation"}` (or `"automation": true`).
            let automation = flag(body, "automation")?
                || body.get("type").and_then(Value::as_str) == Some("automation");
            request.kind = match (readonly, automation) {
                (true, true) => {
                    return Err(ApiError::bad_request(
                        "A token cannot be both read-only and automation",
                    ));
                }
                (true, false) => Requested::ReadOnly,
                (false, true) => Requested::Automation,
                (false, false) => Requested::Publish,
            };
            return Ok(request);
        }
        let permission = |k: &str| -> ApiResult<Option<Permission>> {
            opt_string(body, k, 32)?
                .map(|w| parse_permission(k, &w))
                .transpose()
        };
        Ok(TokenRequest {
            kind: Requested::Granular,
            packages: string_list(body, "packages")?,
            packages_all: flag(body, "packages_all")?,
            scopes: string_list(body, "scopes")?,
            orgs: string_list(body, "orgs")?,
            packages_and_scopes_permission: permission("packages_and_scopes_permission")?,
            orgs_permission: permission("orgs_permission")?,
            bypass_2fa: flag(body, "bypass_2fa")?,
            ..request
        })
    }

    /// When a token asked to expire `expires` days from `now` expires, within `rules` (a token
    /// that may write and a read-only one have their own).
    fn expiry(expires: Option<&str>, now: i64, rules: Lifetimes) -> ApiResult<Option<i64>> {
        let max_days = rules.max.map_or(MAX_EXPIRY_DAYS, Span::whole_days);
        // Without a default, a token lives as long as the maximum allows (forever only when
        // there is no maximum either).
        let default_expiry = rules.default.or(rules.max).map(|d| now + d.as_ms());
        Ok(match expires.map(str::trim) {
            None | Some("") => default_expiry,
            Some(text) => {
                let days = text
                    .parse::<i64>()
                    .ok()
                    .filter(|d| (1..=max_days).contains(d))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "expires must be a number of days from 1 to {max_days}"
                        ))
                    })?;
                Some(now + days * DAY_MS)
            }
        })
    }

    /// Checks the request against the rules (names, ranges, lengths) and the registry's
    /// lifetime limits at `now`.
    pub fn spec(self, now: i64, limits: &TokenConfig) -> ApiResult<TokenSpec> {
        let expires = self.expires.clone();
        for (field, value, max) in [
            ("name", &self.name, 256),
            ("description", &self.description, 1024),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                return Err(ApiError::bad_request(format!(
                    "{field} is longer than {max} characters"
                )));
            }
        }
        let mut cidrs = self.cidr_whitelist;
        for c in &mut cidrs {
            let net: ipnet::IpNet = c
                .parse()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ApiError::bad_request(format!("Invalid CIDR range {c:?}")))?;
            *c = net.to_string();
        }
        let name = self.name.filter(|n| !n.is_empty());
        let description = self.description.filter(|d| !d.is_empty());
        let classic = |kind| -> ApiResult<TokenSpec> {
            let readonly = kind == TokenKind::ReadOnly;
            Ok(TokenSpec {
                kind,
                readonly,
                name: name.clone(),
                description: description.clone(),
                cidr_whitelist: cidrs.clone(),
                expires_at: Self::expiry(expires.as_deref(), now, limits.lifetimes(readonly))?,
                ..TokenSpec::default()
            })
        };
        match self.kind {
            Requested::Publish => return classic(TokenKind::Publish),
            Requested::ReadOnly => return classic(TokenKind::ReadOnly),
            Requested::Automation => return classic(TokenKind::Automation),
            Requested::Granular => {}
        }
        for p in &self.packages {
            names::validate_package_name(p)
                .map_err(|e| ApiError::bad_request(format!("Invalid package {p:?}: {e}")))?;
        }
        let mut scopes = self.scopes;
        for s in &mut scopes {
            let bare = s.trim_start_matches('@').to_owned();
            names::validate_package_name(&format!("@{bare}/x"))
                .map_err(|_| ApiError::bad_request(format!("Invalid scope {s:?}")))?;
            *s = format!("@{bare}");
        }
        let grants = TokenGrants {
            packages: self.packages,
            packages_all: self.packages_all,
            scopes,
            orgs: self.orgs,
            packages_and_scopes_permission: self.packages_and_scopes_permission,
            orgs_permission: self.orgs_permission,
        };
        let readonly = !token_scope::can_write_somewhere(&grants);
        let expires_at = Self::expiry(expires.as_deref(), now, limits.lifetimes(readonly))?;
        Ok(TokenSpec {
            kind: TokenKind::Granular,
            name,
            description,
            readonly,
            bypass_2fa: self.bypass_2fa,
            cidr_whitelist: cidrs,
            grants,
            expires_at,
        })
    }
}

/// Reads npm's token-create body (either shape) into a checked spec.
pub fn parse_spec(
    body: &Map<String, Value>,
    now: i64,
    limits: &TokenConfig,
) -> ApiResult<TokenSpec> {
    TokenRequest::from_json(body)?.spec(now, limits)
}

/// Creates a token for the caller's account from `request`: the request checked, the door's
/// refusals, the `password`, then the second factor (the OTP when 2FA is on), then the token.
/// Returns the value (shown once) and the stored token.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    password: &str,
    request: TokenRequest,
) -> ApiResult<(String, Token)> {
    let user = caller.require_user()?;
    if password.is_empty() {
        return Err(ApiError::bad_request(
            "Your password is required to create a token",
        ));
    }
    let spec = request.spec(state.clock.now_ms(), &state.config.tokens)?;
    authz::precheck(state, caller, Operation::TokenCreate, Target::Account).await?;
    crate::two_factor::enrolment::check_password(state, caller, user, Some(password)).await?;
    authz::enforce(state, caller, Operation::TokenCreate, Target::Account).await?;
    let (value, token) = issue(state, user, spec).await?;
    tracing::info!(user = %user.name, kind = token.kind.as_str(), "token created");
    security_log::record(
        state,
        user.id,
        caller,
        kind::TOKEN_CREATED,
        token.kind.as_str(),
    )
    .await;
    Ok((value, token))
}

/// Revokes one of the caller's tokens, named by key (hex SHA-256) or by its full value.
pub async fn revoke(state: &AppState, caller: &Caller, key: &str) -> ApiResult<()> {
    let user = caller.require_user()?;
    // The door's refusals before the lookup: a credential that may not revoke learns nothing
    // about which tokens exist.
    let permit = authz::authorize(state, caller, Operation::TokenRevoke, Target::Account).await?;
    let hash = if api_tokens::looks_like_token(key) {
        api_tokens::hash(key)
    } else if api_tokens::looks_like_key(key) {
        key.to_owned()
    } else {
        return Err(ApiError::not_found_msg("Unknown token id or value"));
    };
    match state.store.token_by_hash(&hash).await? {
        Some((_, owner)) if owner.id == user.id => {}
        _ => return Err(ApiError::not_found_msg("Unknown token id or value")),
    }
    permit.confirm(state, caller).await?;
    state.store.delete_token(user.id, &hash).await?;
    tracing::info!(user = %user.name, "token revoked");
    security_log::record(state, user.id, caller, kind::TOKEN_REVOKED, "").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn limits() -> TokenConfig {
        TokenConfig::default()
    }

    /// A stored token of `kind`, made at `created_at`, expiring at `expires_at`.
    fn stored(kind: TokenKind, created_at: i64, expires_at: Option<i64>) -> Token {
        Token {
            id: 1,
            user_id: 1,
            token_hash: String::new(),
            display_prefix: String::new(),
            kind,
            name: None,
            description: None,
            readonly: false,
            bypass_2fa: false,
            cidr_whitelist: vec![],
            grants: TokenGrants::default(),
            expires_at,
            created_at,
            updated_at: 0,
        }
    }

    #[test]
    fn unnamed_tokens_are_listed_by_their_kind() {
        let t = stored(TokenKind::Login, 0, None);
        assert_eq!(summary(&t), "login token (no expiry)");
        let named = Token {
            name: Some("ci".into()),
            kind: TokenKind::Automation,
            ..t
        };
        assert_eq!(summary(&named), "ci (automation · no expiry)");
    }

    #[test]
    fn expiry_defaults_and_maximum() {
        let cfg = TokenConfig {
            default_expiry: Some(Span::days(7)),
            max_expiry: Some(Span::days(30)),
            ..TokenConfig::default()
        };
        let s = parse_spec(&obj(json!({"password":"x"})), 0, &cfg).unwrap();
        assert_eq!(
            s.expires_at,
            Some(7 * DAY_MS),
            "classic tokens get the default"
        );
        let s = parse_spec(&obj(json!({"name":"a"})), 0, &cfg).unwrap();
        assert_eq!(s.expires_at, Some(7 * DAY_MS));
        assert!(parse_spec(&obj(json!({"name":"a","expires":31})), 0, &cfg).is_err());
        let s = parse_spec(&obj(json!({"name":"a","expires":30})), 0, &cfg).unwrap();
        assert_eq!(s.expires_at, Some(30 * DAY_MS));
        let capped = TokenConfig {
            default_expiry: None,
            max_expiry: Some(Span::days(30)),
            ..TokenConfig::default()
        };
        assert_eq!(
            parse_spec(&obj(json!({"password":"x"})), 0, &capped)
                .unwrap()
                .expires_at,
            Some(30 * DAY_MS),
            "a maximum applies even without a default"
        );
        let none = TokenConfig {
            default_expiry: None,
            max_expiry: None,
            ..TokenConfig::default()
        };
        assert_eq!(
            parse_spec(&obj(json!({"password":"x"})), 0, &none)
                .unwrap()
                .expires_at,
            None
        );
    }

    #[test]
    fn a_login_session_ends_after_the_configured_lifetime_whatever_was_stored() {
        let t = stored;
        let cfg = TokenConfig::default();
        let h12 = 12 * 3600 * 1000;
        // minted before sessions had a lifetime: it ends 12 hours after it was made
        assert_eq!(
            expires_at(&t(TokenKind::Login, 1000, None), &cfg),
            Some(1000 + h12)
        );
        // minted under a longer lifetime: the shorter one holds
        assert_eq!(
            expires_at(&t(TokenKind::Login, 0, Some(10 * DAY_MS)), &cfg),
            Some(h12)
        );
        assert_eq!(expires_at(&t(TokenKind::Login, 0, Some(5)), &cfg), Some(5));
        // other tokens keep what was stored
        assert_eq!(expires_at(&t(TokenKind::Granular, 0, None), &cfg), None);
        assert_eq!(
            expires_at(&t(TokenKind::Publish, 0, Some(10 * DAY_MS)), &cfg),
            Some(10 * DAY_MS)
        );
        let forever = TokenConfig {
            login_expiry: None,
            ..TokenConfig::default()
        };
        assert_eq!(expires_at(&t(TokenKind::Login, 0, None), &forever), None);
    }

    #[test]
    fn read_only_tokens_have_their_own_lifetimes() {
        let cfg = TokenConfig::default();
        let days = |body: Value| {
            parse_spec(&obj(body), 0, &cfg)
                .map(|s| s.expires_at.map(|e| e / DAY_MS))
                .map_err(|e| e.message)
        };
        // npm's figures: write tokens 7 days, at most 90; read-only 30 days, no maximum
        assert_eq!(days(json!({"password":"x"})), Ok(Some(7)));
        assert_eq!(days(json!({"password":"x","readonly":true})), Ok(Some(30)));
        assert_eq!(days(json!({"name":"a"})), Ok(Some(7)));
        assert_eq!(
            days(
                json!({"name":"a","packages_and_scopes_permission":"read-only","packages_all":true})
            ),
            Ok(Some(30))
        );
        assert_eq!(days(json!({"type":"automation"})), Ok(Some(7)));
        assert!(days(json!({"name":"a","expires":91})).is_err());
        assert_eq!(days(json!({"name":"a","expires":90})), Ok(Some(90)));
        assert_eq!(
            days(json!({"password":"x","readonly":true,"expires":400})),
            Ok(Some(400))
        );
        assert!(days(json!({"password":"x","readonly":true,"expires":3651})).is_err());
        // read-only on packages but writing to an organisation: a write token
        let mixed = json!({"name":"a","packages_all":true,"packages_and_scopes_permission":"read-only","orgs":["acme"],"orgs_permission":"read-write"});
        assert_eq!(days(mixed.clone()), Ok(Some(7)));
        let mut long = mixed;
        long["expires"] = json!(400);
        assert!(days(long).is_err());
    }

    #[test]
    fn classic_tokens_take_a_name_and_an_expiry_but_no_grants() {
        let s = parse_spec(
            &obj(json!({"password":"x","readonly":true,"name":"mirror","expires":3})),
            0,
            &limits(),
        )
        .unwrap();
        assert_eq!(s.kind, TokenKind::ReadOnly);
        assert_eq!(s.name.as_deref(), Some("mirror"));
        assert_eq!(s.expires_at, Some(3 * DAY_MS));
        let s = parse_spec(
            &obj(json!({"type":"automation","name":"ci","description":"release job"})),
            0,
            &limits(),
        )
        .unwrap();
        assert_eq!(s.kind, TokenKind::Automation);
        assert_eq!(s.description.as_deref(), Some("release job"));
        let e = parse_spec(
            &obj(json!({"type":"automation","packages":["demo"]})),
            0,
            &limits(),
        )
        .unwrap_err();
        assert!(e.message.contains("granular tokens only"), "{}", e.message);
        assert!(
            parse_spec(
                &obj(json!({"readonly":false,"bypass_2fa":true})),
                0,
                &limits()
            )
            .is_err()
        );
    }

    #[test]
    fn automation_and_org_tokens() {
        let s = parse_spec(
            &obj(json!({"password":"x","type":"automation"})),
            0,
            &limits(),
        )
        .unwrap();
        assert_eq!(s.kind, TokenKind::Automation);
        assert!(
            parse_spec(
                &obj(json!({"password":"x","automation":true,"readonly":true})),
                0,
                &limits()
            )
            .is_err()
        );
        let s = parse_spec(
            &obj(json!({"name":"a","packages_and_scopes_permission":"read-only","orgs":["acme"],"orgs_permission":"read-write"})),
            0,
            &limits(),
        )
        .unwrap();
        assert!(!s.readonly, "it may write to the org's packages");
    }

    #[test]
    fn classic_shape() {
        let s = parse_spec(
            &obj(json!({"password":"x","readonly":true,"cidr_whitelist":["10.0.0.0/8"]})),
            0,
            &limits(),
        )
        .unwrap();
        assert_eq!(s.kind, TokenKind::ReadOnly);
        assert!(s.readonly);
        assert_eq!(s.cidr_whitelist, vec!["10.0.0.0/8".to_string()]);
        let s = parse_spec(
            &obj(json!({"password":"x","readonly":false,"cidr_whitelist":[]})),
            0,
            &limits(),
        )
        .unwrap();
        assert_eq!(s.kind, TokenKind::Publish);
    }

    #[test]
    fn granular_shape_is_stored() {
        let s = parse_spec(
            &obj(
                json!({"name":"ci","password":"x","description":"for ci","packages":["demo"],
                "scopes":["alice"],"orgs":["acme"],"packages_and_scopes_permission":"read-write",
                "orgs_permission":"read-only","expires":30,"cidr_whitelist":["192.168.0.0/16"],
                "bypass_2fa":true}),
            ),
            1000,
            &limits(),
        )
        .unwrap();
        assert_eq!(s.kind, TokenKind::Granular);
        assert_eq!(s.name.as_deref(), Some("ci"));
        assert_eq!(s.grants.scopes, vec!["@alice".to_string()]);
        assert_eq!(s.expires_at, Some(1000 + 30 * DAY_MS));
        assert!(s.bypass_2fa);
        assert!(!s.readonly);
        let s = parse_spec(&obj(json!({"name":null,"password":"x"})), 0, &limits()).unwrap();
        assert_eq!(s.kind, TokenKind::Granular);
        assert_eq!(s.name, None);
    }

    #[test]
    fn an_unknown_permission_is_a_bad_request() {
        for k in ["packages_and_scopes_permission", "orgs_permission"] {
            let e = parse_spec(&obj(json!({"name":"a", k:"write"})), 0, &limits()).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(
                e.message.contains(k) && e.message.contains("read-write"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_typed_request_is_checked_like_npm_s_body() {
        let long = TokenRequest {
            kind: Requested::Granular,
            name: Some("x".repeat(257)),
            ..TokenRequest::default()
        };
        assert!(long.spec(0, &limits()).is_err());
        let bad_scope = TokenRequest {
            kind: Requested::Granular,
            scopes: vec!["Bad Scope".into()],
            ..TokenRequest::default()
        };
        assert!(bad_scope.spec(0, &limits()).is_err());
        let read_only = TokenRequest {
            kind: Requested::ReadOnly,
            expires: Some(" 3 ".into()),
            name: Some(String::new()),
            ..TokenRequest::default()
        }
        .spec(0, &limits())
        .unwrap();
        assert_eq!(read_only.kind, TokenKind::ReadOnly);
        assert!(read_only.readonly);
        assert_eq!(read_only.expires_at, Some(3 * DAY_MS));
        assert_eq!(read_only.name, None, "an empty name is no name");
        assert!(parse_permission("orgs_permission", "write").is_err());
    }

    #[test]
    fn bad_fields_are_refused() {
        for bad in [
            json!({"password":"x","cidr_whitelist":["nope"]}),
            json!({"name":"a","expires":0}),
            json!({"name":"a","expires":99999}),
            json!({"name":"a","packages":["Bad Name"]}),
            json!({"name":"a","packages_and_scopes_permission":"admin"}),
            json!({"name":"a","bypass_2fa":"yes"}),
            json!({"name":5}),
        ] {
            assert!(
                parse_spec(&obj(bad.clone()), 0, &limits()).is_err(),
                "{bad}"
            );
        }
    }
}
