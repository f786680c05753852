//! The browser halves of npm's web flows: approving `npm login` (the page behind `loginUrl`)
//! and confirming a command for web OTP (the page behind `authUrl`). The signed-in user
//! approves; with 2FA on, approving asks for the second factor too. npm collects the result by
//! polling its own `doneUrl` (`routes/web_login.rs`).

use axum::extract::Path;

use tessera_store::{Handshake, HandshakeKind, User};

use crate::authn::api_tokens;
use crate::authz::gate::{self, Factors, Operation};
use crate::authz::{self, Target};
use crate::config::Signup;
use crate::services::security_log::{self, kind};
use crate::two_factor::second_factor::{self, Origin};
use crate::web::session::encode;
use crate::web::templates::{HandshakePage, MessagePage};
use crate::web::{Form, Web, WebError, WebResult, field};

fn expired() -> WebError {
    WebError::Page {
        status: axum::http::StatusCode::GONE,
        heading: "This request has expired",
        message: "Run the npm command again to get a new link.".into(),
    }
}

async fn open_handshake(web: &Web, id: &str, kind: HandshakeKind) -> Result<Handshake, WebError> {
    let h = web
        .state
        .store
        .handshake(&api_tokens::hash(id))
        .await?
        .ok_or_else(expired)?;
    let now = web.state.clock.now_ms();
    if h.kind != kind
        || h.expires_at <= now
        || h.approved_at.is_some()
        || h.denied_at.is_some()
        || h.used_at.is_some()
    {
        return Err(expired());
    }
    Ok(h)
}

fn message(web: &Web, heading: &str, text: String) -> WebResult {
    Ok(web.page(&MessagePage {
        chrome: web.chrome(),
        heading: heading.into(),
        message: text,
    }))
}

/// Where a key confirms the handshake `id`, when `user` has keys and 2FA asks for a factor.
async fn key_action(web: &Web, id: &str, user: &User) -> Result<Option<String>, WebError> {
    let offered = gate::account_mode(user).is_on()
        && crate::web::security_keys::has_keys(web, user.id).await?;
    Ok(offered.then(|| format!("/-/web/handshake/{id}/key")))
}

fn login_form(
    web: &Web,
    id: &str,
    user: &User,
    error: Option<String>,
    key_action: Option<String>,
) -> HandshakePage {
    HandshakePage {
        chrome: web.chrome(),
        heading: "Log in to npm".into(),
        explanation: format!(
            "npm on a computer is asking to log in to {} as {}. Approve only if you just ran `npm login` or `npm adduser`.",
            web.caller.base_url, user.name
        ),
        error,
        action: format!("/-/web/cli-login/{id}"),
        otp_needed: gate::account_mode(user).is_on(),
        approve_label: "Log in npm",
        key_only: false,
        key_action,
    }
}

/// `GET /-/web/cli-login/:id`: sign in (or up, for `npm adduser`), then approve.
pub async fn login_page(web: Web, Path(id): Path<String>) -> WebResult {
    let h = open_handshake(&web, &id, HandshakeKind::Login).await?;
    let here = format!("/-/web/cli-login/{id}");
    let Some(user) = web.caller.user.clone() else {
        let to = if h.create_account && web.state.config.signup != Signup::Closed {
            "signup"
        } else {
            "signin"
        };
        return Ok(web.redirect(&format!("/-/web/{to}?next={}", encode(&here))));
    };
    let keys = key_action(&web, &id, &user).await?;
    Ok(web.page(&login_form(&web, &id, &user, None, keys)))
}

/// `POST /-/web/cli-login/:id`: approve (with the OTP when 2FA is on) or cancel.
pub async fn login_decide(web: Web, Path(id): Path<String>, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(&format!("/-/web/cli-login/{id}"))?.clone();
    open_handshake(&web, &id, HandshakeKind::Login).await?;
    let state = web.state.clone();
    let hash = api_tokens::hash(&id);
    if field(&form, "decision") == Some("deny") {
        state
            .store
            .deny_handshake(&hash, state.clock.now_ms())
            .await?;
        return message(
            &web,
            "Cancelled",
            "npm was not logged in. It will ask for your user name and password instead.".into(),
        );
    }
    // Approving mints a credential: the same rule as logging in.
    let caller = web.caller_with(field(&form, "otp"));
    if let Err(e) = authz::enforce(&state, &caller, Operation::Login, Target::AccountOf(&user))
        .await
        .map(|a| a.second_factor)
    {
        let keys = key_action(&web, &id, &user).await?;
        let page = login_form(&web, &id, &user, Some(e.message), keys);
        return Ok(web.page_with_status(e.status, &page));
    }
    if !state
        .store
        .approve_handshake(&hash, user.id, state.clock.now_ms(), false)
        .await?
    {
        return Err(expired());
    }
    security_log::record(&state, user.id, &caller, kind::BROWSER_LOGIN_APPROVED, "").await;
    message(
        &web,
        "npm is logged in",
        format!(
            "npm is now logged in as {}. You can close this tab and go back to the terminal.",
            user.name
        ),
    )
}

fn otp_form(
    web: &Web,
    (id, key_only): (&str, bool),
    user: &User,
    error: Option<String>,
    key_action: Option<String>,
) -> HandshakePage {
    HandshakePage {
        chrome: web.chrome(),
        heading: "Confirm an npm command".into(),
        explanation: format!(
            "npm is waiting for you to confirm an operation on {} as {}. Confirm only if you just ran it.",
            web.caller.base_url, user.name
        ),
        error,
        action: format!("/-/web/confirm/{id}"),
        otp_needed: true,
        approve_label: "Confirm",
        key_only,
        key_action,
    }
}

/// `GET /-/web/confirm/:id` (web OTP).
pub async fn otp_page(web: Web, Path(id): Path<String>) -> WebResult {
    let h = open_handshake(&web, &id, HandshakeKind::Otp).await?;
    let user = web.require_user(&format!("/-/web/confirm/{id}"))?.clone();
    if h.user_id != Some(user.id) {
        return Err(WebError::forbidden(
            "This confirmation is for another account. Sign out and sign in as its owner.",
        ));
    }
    let keys = key_action(&web, &id, &user).await?;
    Ok(web.page(&otp_form(&web, (&id, h.needs_key), &user, None, keys)))
}

/// `POST /-/web/confirm/:id`: the second factor, given in the browser.
pub async fn otp_decide(web: Web, Path(id): Path<String>, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(&format!("/-/web/confirm/{id}"))?.clone();
    let h = open_handshake(&web, &id, HandshakeKind::Otp).await?;
    if h.user_id != Some(user.id) {
        return Err(WebError::forbidden(
            "This confirmation is for another account.",
        ));
    }
    let state = web.state.clone();
    let hash = api_tokens::hash(&id);
    if field(&form, "decision") == Some("deny") {
        state
            .store
            .deny_handshake(&hash, state.clock.now_ms())
            .await?;
        return message(
            &web,
            "Cancelled",
            "The npm command was not confirmed.".into(),
        );
    }
    let caller = web.caller_with(None);
    let ip = web.caller.ip.to_string();
    let origin = Origin {
        ip: &ip,
        user_agent: &web.caller.user_agent,
        base_url: None,
    };
    // A confirmation that asks for a key takes nothing else: no code is checked or spent.
    let factors = if h.needs_key {
        Factors::Key
    } else {
        Factors::Any
    };
    if let Err(e) = second_factor::verify_as(
        &state,
        &origin,
        &user,
        &caller.credential_id(),
        field(&form, "otp"),
        false,
        factors,
    )
    .await
    {
        let keys = key_action(&web, &id, &user).await?;
        let page = otp_form(&web, (&id, h.needs_key), &user, Some(e.message), keys);
        return Ok(web.page_with_status(e.status, &page));
    }
    if !state
        .store
        .approve_handshake(&hash, user.id, state.clock.now_ms(), false)
        .await?
    {
        return Err(expired());
    }
    message(
        &web,
        "Confirmed",
        "npm will go on in the terminal. You can close this tab.".into(),
    )
}

/// The open handshake `id` that `user` may approve (a web-OTP one must be theirs).
pub(crate) async fn open_for(web: &Web, id: &str, user: &User) -> Result<Handshake, WebError> {
    let found = web.state.store.handshake(&api_tokens::hash(id)).await?;
    let kind = found.ok_or_else(expired)?.kind;
    let h = open_handshake(web, id, kind).await?;
    if h.kind == HandshakeKind::Otp && h.user_id != Some(user.id) {
        return Err(WebError::forbidden(
            "This confirmation is for another account.",
        ));
    }
    Ok(h)
}

/// Approves the handshake `id` for `user`, whose security key was given, and says so.
pub(crate) async fn approve_with_key(web: &Web, id: &str, h: &Handshake, user: &User) -> WebResult {
    let state = &web.state;
    let hash = api_tokens::hash(id);
    if !state
        .store
        .approve_handshake(&hash, user.id, state.clock.now_ms(), true)
        .await?
    {
        return Err(expired());
    }
    match h.kind {
        HandshakeKind::Login => {
            let caller = web.caller_with(None);
            security_log::record(state, user.id, &caller, kind::BROWSER_LOGIN_APPROVED, "").await;
            message(
                web,
                "npm is logged in",
                format!(
                    "npm is now logged in as {}. You can close this tab and go back to the terminal.",
                    user.name
                ),
            )
        }
        HandshakeKind::Otp => message(
            web,
            "Confirmed",
            "npm will go on in the terminal. You can close this tab.".into(),
        ),
    }
}
