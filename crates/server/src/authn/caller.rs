//! Who is calling: the credential on a request, checked once, as a [`Caller`].
//!
//! Bearer tokens are looked up by hash; Basic credentials are checked with Argon2. A credential
//! that fails (unknown, revoked, expired, locked account, outside its CIDR whitelist) is kept as
//! an error and refused by every endpoint that needs a user. Login, logout and ping don't ask, so a
//! stale token in `.npmrc` never blocks `npm login` (npm sends the
//! token it has, even to the login endpoint).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, header};

use tessera_store::{Token, TokenKind, User};

use crate::authn::api_tokens;
use crate::authn::passwords::{self, PasswordCheck};
use crate::authz::gate::{self, Denial};
use crate::authz::policy;
use crate::http::error::ApiError;
use crate::http::notice;
use crate::state::AppState;
use crate::two_factor::second_factor::{self, Origin};

/// The kind of credential a request carries; an input of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// No credential.
    Anonymous,
    /// A website session (cookie).
    Session,
    /// `Authorization: Basic` with the account password.
    Basic,
    /// A token minted by logging in (`npm login`): the account's session on the command line.
    LoginToken,
    /// A token that was created to be used alone and may write: classic publish tokens,
    /// granular read-write tokens without `bypass_2fa`.
    PublishToken,
    /// A token that refuses every write.
    ReadOnlyToken,
    /// A classic automation token or a granular token with `bypass_2fa`.
    AutomationToken,
    /// A token from a trusted-publishing exchange: it publishes its one package, nothing else.
    OidcToken,
}

impl CredentialKind {
    /// The kind of a stored token.
    pub fn of_token(t: &Token) -> Self {
        if matches!(t.kind, TokenKind::Oidc | TokenKind::OidcStage) {
            CredentialKind::OidcToken
        } else if t.read_only() {
            CredentialKind::ReadOnlyToken
        } else if t.bypass_2fa || t.kind == TokenKind::Automation {
            CredentialKind::AutomationToken
        } else if t.kind == TokenKind::Login {
            CredentialKind::LoginToken
        } else {
            CredentialKind::PublishToken
        }
    }
}

/// The caller of a request, whichever the front end: a token, Basic credentials, or a website
/// session.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated account, if any.
    pub user: Option<User>,
    /// How it was authenticated.
    pub kind: CredentialKind,
    /// The token used, if any.
    pub token: Option<Token>,
    /// Why the presented credential was refused, if it was.
    pub refused: Option<ApiError>,
    /// Hash of the bearer token presented, valid or not (lets `npm logout` drop a stale token).
    pub presented_token_hash: Option<String>,
    pub ip: IpAddr,
    /// The `npm-otp` header, if sent.
    pub otp: Option<String>,
    /// The `user-agent` header.
    pub user_agent: String,
    /// The registry requires 2FA (or a security key) of everyone and this account has none: it
    /// may only set it up. The refusal it gets otherwise.
    pub enrolment_only: Option<Denial>,
    /// The website session (hash of its id), for callers signed in through the website.
    pub session: Option<String>,
    /// The registry's base URL as this request sees it (for links in responses).
    pub base_url: String,
}

impl Caller {
    /// A caller with no credential (yet), from this address and user agent.
    pub fn anonymous(ip: IpAddr, user_agent: String, base_url: String) -> Self {
        Caller {
            user: None,
            kind: CredentialKind::Anonymous,
            token: None,
            refused: None,
            presented_token_hash: None,
            ip,
            otp: None,
            user_agent,
            enrolment_only: None,
            session: None,
            base_url,
        }
    }

    /// Signed in through a website session as `user`.
    pub fn signed_in(&mut self, user: User) {
        self.kind = CredentialKind::Session;
        self.user = Some(user);
    }

    /// No longer signed in.
    pub fn signed_out(&mut self) {
        self.kind = CredentialKind::Anonymous;
        self.user = None;
        self.enrolment_only = None;
    }

    /// The authenticated account, or the 401 npm should see. Refused (403) for an account the
    /// registry policy limits to enrolling in 2FA.
    pub fn require_user(&self) -> Result<&User, ApiError> {
        let user = self.require_account()?;
        if let Some(d) = self.enrolment_only {
            return Err(d.error());
        }
        Ok(user)
    }

    /// The authenticated account, even one limited to enrolment: for the profile, `whoami` and
    /// logout, which `npm profile enable-2fa` needs.
    pub fn require_account(&self) -> Result<&User, ApiError> {
        if let Some(e) = &self.refused {
            return Err(e.clone());
        }
        self.user.as_ref().ok_or_else(ApiError::login_required)
    }

    /// Identifies the credential in use, to bind a consumed OTP step to it: the same credential
    /// may present its code again within the window (one npm command, several requests).
    pub fn credential_id(&self) -> String {
        if let Some(s) = &self.session {
            return format!("session:{s}");
        }
        match (&self.token, &self.user) {
            (Some(t), _) => format!("token:{}", t.token_hash),
            (None, Some(u)) if self.kind == CredentialKind::Basic => {
                basic_credential(u.id, self.ip, &self.user_agent)
            }
            (None, Some(u)) => format!("user:{}", u.id),
            (None, None) => "anonymous".into(),
        }
    }

    /// The npm client's version from `user-agent: npm/11.4.0 node/…`, if it is npm.
    pub fn npm_version(&self) -> Option<(u64, u64, u64)> {
        let v = self
            .user_agent
            .strip_prefix("npm/")?
            .split_whitespace()
            .next()?;
        let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
    }
}

/// The client address: the socket peer, or the first `X-Forwarded-For` entry behind a trusted
/// proxy.
pub fn client_ip(parts: &Parts, trust_proxy: bool) -> IpAddr {
    if trust_proxy
        && let Some(ip) = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .next_back()
            .and_then(forwarded_client)
    {
        return ip;
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Whether the request is npm's couch login (`PUT /-/user/org.couchdb.user:NAME`, with the
/// colon percent-encoded or not: every PUT under `/-/user/` is).
fn is_couch_login(parts: &Parts) -> bool {
    parts.method == Method::PUT && parts.uri.path().starts_with("/-/user/")
}

/// The replay-binding identity of a Basic-auth client. Basic credentials are the password, which
/// several clients may share, so the identity also names the client (address and user agent):
/// a code one client used is refused to another.
pub fn basic_credential(user: i64, ip: IpAddr, user_agent: &str) -> String {
    let h = api_tokens::hash(&format!("{ip}\n{user_agent}"));
    format!("basic:{user}:{}", &h[..16])
}

/// The client address a trusted proxy appended to `X-Forwarded-For`: the last entry. Earlier
/// entries come from the client and prove nothing.
pub fn forwarded_client(header: &str) -> Option<IpAddr> {
    header
        .rsplit(',')
        .next()
        .and_then(|v| v.trim().parse().ok())
}

/// The `npm-otp` header.
static NPM_OTP: HeaderName = HeaderName::from_static("npm-otp");

fn header(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether `ip` lies in one of `cidrs` (an empty list allows every address).
pub fn ip_allowed(ip: IpAddr, cidrs: &[String]) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    cidrs.iter().any(|c| {
        c.parse::<ipnet::IpNet>()
            .map(|n| n.contains(&ip))
            .unwrap_or_else(|_| c.parse::<IpAddr>().map(|a| a == ip).unwrap_or(false))
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts, state.config.trust_proxy);
        let otp = header(&parts.headers, &NPM_OTP).map(|s| s.trim().to_owned());
        let user_agent = header(&parts.headers, &header::USER_AGENT).unwrap_or_default();
        let mut caller = Caller {
            user: None,
            kind: CredentialKind::Anonymous,
            token: None,
            refused: None,
            presented_token_hash: None,
            ip,
            otp,
            user_agent,
            enrolment_only: None,
            session: None,
            // Only authenticated requests and writes (a couch login carries its password in the
            // body) can reach a web-OTP challenge: skip the work for the anonymous reads that
            // make up most of the traffic.
            base_url: if parts.headers.contains_key(header::AUTHORIZATION)
                || !matches!(parts.method, Method::GET | Method::HEAD)
            {
                crate::api::base_url(state, &parts.headers)
            } else {
                String::new()
            },
        };
        let Some(auth) = header(&parts.headers, &header::AUTHORIZATION) else {
            return Ok(caller);
        };
        // boxed: checking a credential is a large future, and most requests carry none
        Box::pin(authenticate(state, parts, &mut caller, &auth)).await?;
        Ok(caller)
    }
}

/// Checks the credential `auth` (the `Authorization` header) and sets `caller` from it.
async fn authenticate(
    state: &AppState,
    parts: &mut Parts,
    caller: &mut Caller,
    auth: &str,
) -> Result<(), ApiError> {
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        authenticate_token(state, caller, value).await?;
    } else if scheme.eq_ignore_ascii_case("basic") && is_couch_login(parts) {
        // The couch login checks the password in its body, then the code, itself. pnpm
        // also sends the password as Basic credentials: checked here too, the code would be
        // spent before the login saw it (and the password attempt counted twice).
    } else if scheme.eq_ignore_ascii_case("basic") {
        authenticate_basic(state, caller, value).await?;
    } else {
        caller.refused = Some(ApiError::unauthorized("Unsupported authorization scheme"));
    }
    if let Some(user) = &caller.user {
        // The registry-wide policy: enforced (enrolment only) or announced (a notice).
        caller.enrolment_only = crate::authz::limited_to_enrolment(state, user).await?;
        let policy = policy::current(state).await?;
        let now = state.clock.now_ms();
        let noticed = parts.method != Method::GET || parts.uri.path() == "/-/whoami";
        if noticed && let Some(text) = policy.grace_notice(user, now) {
            notice::leave(parts, text);
        }
    }
    Ok(())
}

async fn authenticate_token(
    state: &AppState,
    caller: &mut Caller,
    value: &str,
) -> Result<(), ApiError> {
    let invalid = || {
        ApiError::bad_token(
            "This token is invalid, expired or revoked. Run `npm login` to get a new one.",
        )
    };
    if !api_tokens::looks_like_token(value) {
        caller.refused = Some(invalid());
        return Ok(());
    }
    caller.presented_token_hash = Some(api_tokens::hash(value));
    let Some((token, user)) = state.store.token_by_hash(&api_tokens::hash(value)).await? else {
        caller.refused = Some(invalid());
        return Ok(());
    };
    if user.locked {
        caller.refused = Some(ApiError::bad_token(
            "This account is locked. Contact your registry administrator.",
        ));
        return Ok(());
    }
    let expires = crate::services::tokens::expires_at(&token, &state.config.tokens);
    if expires.is_some_and(|e| e <= state.clock.now_ms()) {
        caller.refused = Some(ApiError::bad_token(
            "This token has expired. Create a new one with `npm token create` or `npm login`.",
        ));
        return Ok(());
    }
    if !ip_allowed(caller.ip, &token.cidr_whitelist) {
        caller.refused = Some(ApiError::ip_refused());
        return Ok(());
    }
    caller.kind = CredentialKind::of_token(&token);
    caller.token = Some(token);
    caller.user = Some(user);
    Ok(())
}

async fn authenticate_basic(
    state: &AppState,
    caller: &mut Caller,
    value: &str,
) -> Result<(), ApiError> {
    let decoded = data_encoding::BASE64
        .decode(value.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some((name, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        caller.refused = Some(ApiError::bad_basic());
        return Ok(());
    };
    let ip = caller.ip.to_string();
    let user = state.store.user_by_name(name).await?;
    match passwords::check_throttled(state, user.as_ref(), password, &ip).await {
        Ok(PasswordCheck::Right) => {}
        Ok(PasswordCheck::Wrong { .. }) => {
            caller.refused = Some(ApiError::bad_basic());
            return Ok(());
        }
        Err(e) => {
            caller.refused = Some(e);
            return Ok(());
        }
    }
    let Some(user) = user else { return Ok(()) };
    if user.locked {
        caller.refused = Some(ApiError::unauthorized(
            "This account is locked. Contact your registry administrator.",
        ));
        return Ok(());
    }
    // Basic credentials are the password itself: the gate's rule for them comes first.
    if gate::basic_needs_second_factor(gate::account_mode(&user)) {
        let origin = Origin {
            ip: &ip,
            user_agent: &caller.user_agent,
            base_url: None,
        };
        let credential = basic_credential(user.id, caller.ip, &caller.user_agent);
        if let Err(e) =
            second_factor::verify(state, &origin, &user, &credential, caller.otp.as_deref()).await
        {
            caller.refused = Some(e);
            return Ok(());
        }
    }
    caller.kind = CredentialKind::Basic;
    caller.user = Some(user);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_takes_what_the_proxy_appended() {
        assert_eq!(
            forwarded_client("10.9.9.9, 203.0.113.9"),
            "203.0.113.9".parse().ok()
        );
        assert_eq!(forwarded_client("203.0.113.9"), "203.0.113.9".parse().ok());
        assert_eq!(forwarded_client("10.0.0.1, junk"), None);
    }

    #[test]
    fn basic_credentials_are_per_client() {
        let a = basic_credential(1, "10.0.0.1".parse().unwrap(), "npm/11");
        assert_eq!(
            a,
            basic_credential(1, "10.0.0.1".parse().unwrap(), "npm/11")
        );
        assert_ne!(
            a,
            basic_credential(1, "10.0.0.2".parse().unwrap(), "npm/11")
        );
        assert_ne!(
            a,
            basic_credential(1, "10.0.0.1".parse().unwrap(), "curl/8")
        );
    }

    #[test]
    fn cidr_whitelists() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(ip_allowed(lo, &[]));
        assert!(ip_allowed(lo, &["127.0.0.0/8".into()]));
        assert!(!ip_allowed(lo, &["10.0.0.0/8".into()]));
        assert!(ip_allowed(
            lo,
            &["10.0.0.0/8".into(), "127.0.0.1/32".into()]
        ));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(ip_allowed(mapped, &["127.0.0.0/8".into()]));
        assert!(!ip_allowed(lo, &["garbage".into()]));
    }
}
