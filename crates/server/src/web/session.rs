//! Website sessions: a random id (≥ 190 bits) in an HttpOnly, SameSite=Lax cookie (`__Host-`
//! prefixed and Secure behind an https `public_url`), only its hash stored server-side. Sessions
//! have an idle and an absolute timeout; the id rotates on sign-in and on every 2FA change.
//!
//! Every POST carries a CSRF token and an `Origin` (or `Referer`) that must be the registry's
//! own. The token is the session's; visitors without a session (the sign-in and sign-up forms)
//! get a random form token in a cookie of its own instead, so that showing a form writes no
//! row: a session is stored only once a form posted with that token succeeds.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use subtle::ConstantTimeEq;

use tessera_store::{Session, SessionStage, User};

use crate::authn::api_tokens;
use crate::authn::caller::{Caller, client_ip};
use crate::authz::gate::Operation;
use crate::state::AppState;
use crate::web::WebError;

/// Cookie name over plain http.
pub const COOKIE: &str = "tessera_session";
/// Cookie name behind https (the `__Host-` prefix needs `Secure` and `Path=/`).
pub const SECURE_COOKIE: &str = "__Host-tessera_session";
/// The form token's cookie over plain http (visitors without a session).
pub const FORM_COOKIE: &str = "tessera_form";
/// The form token's cookie behind https.
pub const SECURE_FORM_COOKIE: &str = "__Host-tessera_form";
/// A partial sign-in (password accepted, second factor awaited) lasts this long.
pub const PARTIAL_MS: i64 = 5 * 60 * 1000;
/// Wrong codes a partial sign-in allows before the password is asked again.
pub const PARTIAL_ATTEMPTS: i64 = 5;

/// Where a request comes from: its `Origin` header, else the origin of its `Referer`
/// (`scheme://host[:port]`). Browsers send `Origin` with every form POST.
fn request_origin(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(o.to_owned());
    }
    let r = headers.get(header::REFERER)?.to_str().ok()?;
    let after = r.find("://")? + 3;
    let end = r[after..].find('/').map_or(r.len(), |i| after + i);
    Some(r[..end].to_owned())
}

/// The website's view of a request: the caller (the same type the npm API uses, of kind
/// `Session` once signed in), its session row, and the request's origin.
pub struct Web {
    pub state: AppState,
    /// Who is calling: the signed-in user (full sessions only), address, user agent, base URL.
    pub caller: Caller,
    /// The session, if the cookie named a live one.
    pub session: Option<Session>,
    /// The request's `Origin` header.
    origin: Option<String>,
    /// The form token from its cookie, for visitors without a session.
    form_token: Option<String>,
    /// Cookies to set on the response (a new or rotated session, a cleared one, a form token).
    pub set_cookie: Vec<HeaderValue>,
}

fn secure(state: &AppState) -> bool {
    state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

fn cookie_name(state: &AppState) -> &'static str {
    if secure(state) { SECURE_COOKIE } else { COOKIE }
}

fn form_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        SECURE_FORM_COOKIE
    } else {
        FORM_COOKIE
    }
}

fn read_cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            line.split(';').map(str::trim).find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| v.to_owned())
            })
        })
}

impl FromRequestParts<AppState> for Web {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let now = state.clock.now_ms();
        let mut web = Web {
            state: state.clone(),
            caller: Caller::anonymous(
                client_ip(parts, state.config.trust_proxy),
                parts
                    .headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
                crate::api::base_url(state, &parts.headers),
            ),
            session: None,
            origin: request_origin(&parts.headers),
            form_token: read_cookie(parts, form_cookie_name(state))
                .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_alphanumeric())),
            set_cookie: Vec::new(),
        };
        let Some(raw) = read_cookie(parts, cookie_name(state)) else {
            return Ok(web);
        };
        if raw.len() > 128 {
            return Ok(web);
        }
        let hash = api_tokens::hash(&raw);
        let Some(session) = state
            .store
            .session(&hash)
            .await
            .map_err(WebError::internal)?
        else {
            return Ok(web);
        };
        let idle = state.config.web.session_idle.as_ms();
        let max = state.config.web.session_max.as_ms();
        let expired = now - session.last_seen_at > idle
            || now - session.created_at > max
            || (session.stage == SessionStage::Partial && now - session.created_at > PARTIAL_MS);
        if expired {
            state
                .store
                .delete_session(&hash)
                .await
                .map_err(WebError::internal)?;
            return Ok(web);
        }
        if session.stage == SessionStage::Full {
            let user = match session.user_id {
                Some(id) => state
                    .store
                    .user_by_id(id)
                    .await
                    .map_err(WebError::internal)?,
                None => None,
            };
            match user {
                Some(u) if !u.locked => {
                    web.caller.enrolment_only = crate::authz::limited_to_enrolment(state, &u)
                        .await
                        .map_err(WebError::from)?;
                    web.caller.signed_in(u);
                }
                _ => {
                    state
                        .store
                        .delete_session(&hash)
                        .await
                        .map_err(WebError::internal)?;
                    return Ok(web);
                }
            }
        }
        if now - session.last_seen_at > 60_000 {
            state
                .store
                .touch_session(&hash, now)
                .await
                .map_err(WebError::internal)?;
        }
        web.caller.session = Some(session.id_hash.clone());
        web.session = Some(session);
        Ok(web)
    }
}

/// A new session row with a fresh id and CSRF token; returns the cookie value too.
fn new_session(
    user: Option<i64>,
    stage: SessionStage,
    now: i64,
    return_to: Option<String>,
) -> (String, Session) {
    let raw = api_tokens::random_base62(32);
    let s = Session {
        id_hash: api_tokens::hash(&raw),
        user_id: user,
        stage,
        csrf: api_tokens::random_base62(32),
        created_at: now,
        last_seen_at: now,
        authenticated_at: now,
        otp_attempts: 0,
        return_to,
    };
    (raw, s)
}

impl Web {
    fn cookie(&self, raw: &str) -> HeaderValue {
        let secure = if secure(&self.state) { "; Secure" } else { "" };
        let v = format!(
            "{}={raw}; Path=/; HttpOnly; SameSite=Lax{secure}",
            cookie_name(&self.state)
        );
        HeaderValue::from_str(&v).expect("a cookie of base62 characters")
    }

    /// Makes sure a form shown to a visitor without a session can be posted: a random form
    /// token in its own cookie (nothing is stored; see the module's doc).
    pub fn prepare_form(&mut self) {
        if self.session.is_some() || self.form_token.is_some() {
            return;
        }
        let token = api_tokens::random_base62(32);
        let secure = if secure(&self.state) { "; Secure" } else { "" };
        let v = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}",
            form_cookie_name(&self.state)
        );
        self.set_cookie
            .push(HeaderValue::from_str(&v).expect("a cookie of base62 characters"));
        self.form_token = Some(token);
    }

    /// A fresh session id for the next stage (the old id dies): sign-in and 2FA changes.
    pub async fn rotate(
        &mut self,
        user: Option<i64>,
        stage: SessionStage,
        return_to: Option<String>,
    ) -> Result<(), WebError> {
        let now = self.state.clock.now_ms();
        let (raw, s) = self.prepared_rotation(user, stage, return_to, now);
        self.commit_rotation(raw, s).await
    }

    /// The id the next rotation will use, made in advance so that a second factor verified
    /// during sign-in is bound to the session that results from it.
    pub fn prepared_rotation(
        &self,
        user: Option<i64>,
        stage: SessionStage,
        return_to: Option<String>,
        now: i64,
    ) -> (String, Session) {
        new_session(user, stage, now, return_to)
    }

    /// Stores a prepared rotation.
    pub async fn commit_rotation(&mut self, raw: String, s: Session) -> Result<(), WebError> {
        let old = self
            .session
            .as_ref()
            .map(|s| s.id_hash.clone())
            .unwrap_or_default();
        self.state
            .store
            .rotate_session(&old, &s)
            .await
            .map_err(WebError::internal)?;
        self.set_cookie.push(self.cookie(&raw));
        if s.stage == SessionStage::Full {
            let user = match s.user_id {
                Some(id) => self
                    .state
                    .store
                    .user_by_id(id)
                    .await
                    .map_err(WebError::internal)?,
                None => None,
            };
            match user {
                Some(u) => self.caller.signed_in(u),
                None => self.caller.signed_out(),
            }
        }
        self.caller.session = Some(s.id_hash.clone());
        self.session = Some(s);
        Ok(())
    }

    /// Ends the session and clears the cookie.
    pub async fn end(&mut self) -> Result<(), WebError> {
        if let Some(s) = self.session.take() {
            self.state
                .store
                .delete_session(&s.id_hash)
                .await
                .map_err(WebError::internal)?;
        }
        let secure = if secure(&self.state) { "; Secure" } else { "" };
        let v = format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
            cookie_name(&self.state)
        );
        self.set_cookie.extend(HeaderValue::from_str(&v).ok());
        self.caller.signed_out();
        self.caller.session = None;
        Ok(())
    }

    /// The CSRF token of the session's forms (the form token without a session).
    pub fn csrf(&self) -> String {
        self.session
            .as_ref()
            .map(|s| s.csrf.clone())
            .or_else(|| self.form_token.clone())
            .unwrap_or_default()
    }

    /// Checks a form POST: the browser's `Origin` (or, without one, the origin of its
    /// `Referer`) must be this site's, and the form must carry the session's CSRF token.
    pub fn check_post(&self, form_token: Option<&str>) -> Result<(), WebError> {
        match self.origin.as_deref() {
            Some(o) if o == self.caller.base_url => {}
            Some(_) => return Err(WebError::forbidden("This form was sent from another site.")),
            None => {
                return Err(WebError::forbidden(
                    "This request did not say which site sent it (no Origin or Referer header), \
                     so it was refused. Submit the form from this site's page in a browser.",
                ));
            }
        }
        let expected = match (&self.session, &self.form_token) {
            (Some(session), _) => session.csrf.as_str(),
            (None, Some(token)) => token.as_str(),
            (None, None) => {
                return Err(WebError::forbidden(
                    "Your session has expired. Reload the page and try again.",
                ));
            }
        };
        let given = form_token.unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) || given.is_empty() {
            return Err(WebError::forbidden(
                "This form has expired or was not sent by this site. Reload the page and try again.",
            ));
        }
        Ok(())
    }

    /// The signed-in user, or a redirect to the sign-in page that comes back to `here`.
    pub fn require_user(&self, here: &str) -> Result<&User, WebError> {
        match &self.caller.user {
            Some(u)
                if self.caller.enrolment_only.is_none() || here.starts_with("/-/web/account") =>
            {
                Ok(u)
            }
            Some(_) => Err(WebError::redirect("/-/web/account/2fa")),
            None => Err(WebError::redirect(&format!(
                "/-/web/signin?next={}",
                encode(here)
            ))),
        }
    }

    /// Refuses security changes when the last proof of a factor is older than the
    /// re-authentication window: the user confirms with a password or a one-time password.
    pub fn require_recent_auth(&self, here: &str) -> Result<(), WebError> {
        let window = self.state.config.web.reauth.as_ms();
        let fresh = self
            .session
            .as_ref()
            .is_some_and(|s| self.state.clock.now_ms() - s.authenticated_at <= window);
        if fresh {
            Ok(())
        } else {
            Err(WebError::redirect(&format!(
                "/-/web/reauth?next={}",
                encode(here)
            )))
        }
    }

    /// The caller for this session, with the one-time password typed in a form.
    pub fn caller_with(&self, otp: Option<&str>) -> Caller {
        let mut caller = self.caller.clone();
        caller.otp = otp.map(|o| o.trim().to_owned()).filter(|o| !o.is_empty());
        caller.session = self.session.as_ref().map(|s| s.id_hash.clone());
        caller
    }

    /// Whether `op` would ask this user for a one-time password (to show the field).
    pub async fn needs_otp(&self, op: Operation) -> bool {
        self.caller.user.is_some()
            && crate::authz::asks_otp(&self.state, &self.caller_with(None), op).await
    }
}

/// Percent-encodes a local path for a `next` parameter.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A `next` target, if it is a page of this website (never another site).
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let n = next?;
    (n.starts_with("/-/web/") && !n.contains("//") && !n.contains('\\') && n.len() < 512)
        .then(|| n.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_site() {
        assert_eq!(
            safe_next(Some("/-/web/account")).as_deref(),
            Some("/-/web/account")
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/-/web//evil",
            "/demo",
            "/-/web/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
        assert_eq!(safe_next(None), None);
    }
}
