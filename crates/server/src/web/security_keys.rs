//! Security keys and passkeys on the website: adding one from the 2FA page (the first turns 2FA
//! on and shows the recovery codes; an account with 2FA on proves a second factor first), and
//! signing in with one after the password. The browser side is `static/keys.js`: it fetches
//! the ceremony's options as JSON, runs it, and posts the answer with the page's form.

use axum::Json;
use axum::extract::Path;
use axum::http::HeaderMap;
use serde_json::Value;

use tessera_store::{KeyRemoval, SessionStage, TwoFactorMode, User};

use crate::authz::gate::{self, Operation};
use crate::authz::{self, Target};
use crate::http::error::ApiError;
use crate::services::security_log::{self, kind};
use crate::two_factor::enrolment;
use crate::two_factor::security_keys::{self, Answer, AssertionFailed};
use crate::web::account::{recovery_page, rotate, tfa_error};
use crate::web::handshake;
use crate::web::session::PARTIAL_ATTEMPTS;
use crate::web::{Form, Web, WebError, WebResult, field, raw_field};

const TFA: &str = "/-/web/account/2fa";

/// What a ceremony is bound to: this browser's session.
pub(crate) fn bound(web: &Web) -> String {
    let id = web.session.as_ref().map_or("", |s| s.id_hash.as_str());
    format!("session:{id}")
}

/// Through the door for `op` on the account: its refusals first, then the second factor, from
/// one of the account's keys when the form carries a key's answer, else from the form's code.
/// `Err` holds the page to answer with.
pub(crate) async fn through_door(
    web: &Web,
    user: &User,
    caller: &crate::authn::caller::Caller,
    op: Operation,
    key_answer: Answer<'_>,
) -> Result<(), WebResult> {
    let permit = match authz::authorize(&web.state, caller, op, Target::Account).await {
        Ok(p) => p,
        Err(e) => return Err(tfa_error(web, user, e).await),
    };
    if key_answer.credential.is_empty() {
        return match permit.confirm(&web.state, caller).await {
            Ok(_) => Ok(()),
            Err(e) => Err(tfa_error(web, user, e).await),
        };
    }
    let ip = web.caller.ip.to_string();
    match permit.confirm_with_key(&web.state, key_answer, &ip).await {
        Ok((_, key)) => {
            security_log::record(&web.state, user.id, caller, kind::KEY_USED, key.name).await;
            Ok(())
        }
        Err(f) => Err(refused(web, user, f).await),
    }
}

/// The browser's answer in `form` (its fields `ceremony` and `credential`).
pub(crate) fn answer<'a>(
    user: &'a User,
    bound_to: &'a str,
    base_url: &'a str,
    form: &'a Form,
    ceremony: &str,
    credential: &str,
) -> Answer<'a> {
    Answer {
        user,
        bound_to,
        base_url,
        ceremony: field(form, ceremony).unwrap_or(""),
        credential: raw_field(form, credential).unwrap_or(""),
    }
}

/// The options to assert with one of `user`'s keys, in a ceremony bound to `bound_to`.
async fn assertion_options(
    web: &Web,
    user: &User,
    bound_to: &str,
) -> Result<Json<Value>, ApiError> {
    let found =
        security_keys::begin_assertion(&web.state, user, bound_to, &web.caller.base_url).await?;
    let (id, options) =
        found.ok_or_else(|| ApiError::bad_request("This account has no security key."))?;
    Ok(Json(Value::Object(options_json(id, options)?)))
}

/// A website refusal as the JSON answer the script shows.
fn as_api(e: WebError) -> ApiError {
    match e {
        WebError::Redirect(_) => ApiError::forbidden(
            "Confirm it is you first: reload the page and sign in or re-enter your password.",
        ),
        WebError::Page {
            status, message, ..
        } => ApiError::new(status, message),
    }
}

fn options_json(
    ceremony: String,
    options: impl serde::Serialize,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let Value::Object(mut body) = serde_json::to_value(options).map_err(ApiError::internal)? else {
        return Err(ApiError::internal("options are not an object"));
    };
    body.insert("ceremony".into(), ceremony.into());
    Ok(body)
}

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

/// `POST /-/web/account/keys/begin`: the options to create a key (and, when the account has
/// keys, to assert with one of them first).
pub async fn begin_add(web: Web, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    web.check_post(csrf_header(&headers)).map_err(as_api)?;
    let user = web.require_user(TFA).map_err(as_api)?.clone();
    web.require_recent_auth(TFA).map_err(as_api)?;
    let state = &web.state;
    let base = &web.caller.base_url;
    let (id, options) = security_keys::begin_registration(state, &user, &bound(&web), base).await?;
    let mut body = options_json(id, options)?;
    if gate::account_mode(&user).is_on()
        && let Some((aid, assert)) =
            security_keys::begin_assertion(state, &user, &bound(&web), base).await?
    {
        body.insert("assert".into(), Value::Object(options_json(aid, assert)?));
    }
    Ok(Json(Value::Object(body)))
}

/// Logs a refused assertion and renders its message on the 2FA page.
async fn refused(web: &Web, user: &User, f: AssertionFailed) -> WebResult {
    security_log::record(&web.state, user.id, &web.caller, kind::KEY_FAILED, f.detail).await;
    tfa_error(web, user, f.error).await
}

/// `POST /-/web/account/keys`: registers the key the browser made. The password always; with
/// 2FA on, also one of the account's keys or a one-time password or recovery code.
pub async fn add(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let state = web.state.clone();
    let caller = web.caller_with(field(&form, "otp"));
    if let Err(e) =
        enrolment::check_password(&state, &caller, &user, raw_field(&form, "password")).await
    {
        return tfa_error(&web, &user, e).await;
    }
    let base = web.caller.base_url.clone();
    let bound_to = bound(&web);
    // 2FA off: enrolment (no code); on: a second factor, in any mode.
    let op = Operation::KeyAdd;
    let key_answer = answer(
        &user,
        &bound_to,
        &base,
        &form,
        "assert_ceremony",
        "assertion",
    );
    if let Err(page) = through_door(&web, &user, &caller, op, key_answer).await {
        return page;
    }
    let mode = TwoFactorMode::parse(field(&form, "mode").unwrap_or("auth-and-writes"))
        .unwrap_or(TwoFactorMode::AuthAndWrites);
    let answer = answer(&user, &bound_to, &base, &form, "ceremony", "credential");
    let name = field(&form, "name").unwrap_or("");
    let registered = match security_keys::finish_registration(&state, answer, name, mode).await {
        Ok(r) => r,
        Err(e) => {
            let detail = format!("security key: registration refused ({})", e.message);
            security_log::record(&state, user.id, &caller, kind::KEY_FAILED, detail).await;
            return tfa_error(&web, &user, e).await;
        }
    };
    state
        .store
        .touch_user(user.id, state.clock.now_ms())
        .await?;
    security_log::record(
        &state,
        user.id,
        &caller,
        kind::KEY_ADDED,
        registered.key.name.clone(),
    )
    .await;
    rotate(&mut web).await?;
    match registered.recovery_codes {
        Some(codes) => {
            security_log::record(&state, user.id, &caller, kind::TFA_ENABLED, mode.as_str()).await;
            Ok(web.page(&recovery_page(
                &web,
                "Two-factor authentication is on",
                codes,
            )))
        }
        None => Ok(web.redirect(TFA)),
    }
}

/// `POST /-/web/account/keys/confirm/begin`: the options to confirm a change with one of the
/// signed-in account's keys.
pub async fn begin_confirm(web: Web, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    web.check_post(csrf_header(&headers)).map_err(as_api)?;
    let user = web.require_user(TFA).map_err(as_api)?.clone();
    web.require_recent_auth(TFA).map_err(as_api)?;
    assertion_options(&web, &user, &bound(&web)).await
}

/// `POST /-/web/account/keys/remove`: removes a key, confirmed with a key (possibly the same)
/// or a one-time password or recovery code. Removing the last second factor turns 2FA off.
pub async fn remove(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let state = web.state.clone();
    let caller = web.caller_with(field(&form, "otp"));
    let base = web.caller.base_url.clone();
    let bound_to = bound(&web);
    // the key to remove is checked first: a bad id spends no second factor
    let id: i64 = field(&form, "id").and_then(|v| v.parse().ok()).unwrap_or(0);
    let keys = state.store.security_keys(user.id).await?;
    let Some(key) = keys.into_iter().find(|k| k.id == id) else {
        return tfa_error(&web, &user, ApiError::not_found_msg("No such key.")).await;
    };
    let key_answer = answer(&user, &bound_to, &base, &form, "ceremony", "credential");
    if let Err(page) = through_door(&web, &user, &caller, Operation::KeyRemove, key_answer).await {
        return page;
    }
    let removal = state.store.remove_security_key(user.id, id).await?;
    state
        .store
        .touch_user(user.id, state.clock.now_ms())
        .await?;
    security_log::record(&state, user.id, &caller, kind::KEY_REMOVED, key.name).await;
    if removal == KeyRemoval::RemovedLastFactor {
        security_log::record(
            &state,
            user.id,
            &caller,
            kind::TFA_DISABLED,
            "last key removed",
        )
        .await;
    }
    rotate(&mut web).await?;
    Ok(web.redirect(TFA))
}

/// The account waiting for its second factor after the password (a partial sign-in).
async fn partial_user(web: &Web) -> Result<Option<User>, WebError> {
    let id = web
        .session
        .as_ref()
        .filter(|s| s.stage == SessionStage::Partial)
        .and_then(|s| s.user_id);
    match id {
        Some(id) => Ok(web.state.store.user_by_id(id).await?),
        None => Ok(None),
    }
}

/// `POST /-/web/signin/key/begin`: the options to sign in with one of the account's keys.
pub async fn begin_signin(web: Web, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    web.check_post(csrf_header(&headers)).map_err(as_api)?;
    let user = partial_user(&web)
        .await
        .map_err(as_api)?
        .ok_or_else(|| ApiError::forbidden("Sign in with your password first."))?;
    assertion_options(&web, &user, &bound(&web)).await
}

/// `POST /-/web/signin/key`: the second step of a sign-in, with a key.
pub async fn signin(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let Some(user) = partial_user(&web).await? else {
        return Ok(web.redirect("/-/web/signin"));
    };
    let state = web.state.clone();
    let return_to = web.session.as_ref().and_then(|s| s.return_to.clone());
    let base = web.caller.base_url.clone();
    let bound_to = bound(&web);
    let answer = answer(&user, &bound_to, &base, &form, "ceremony", "credential");
    match login_with_key(&web, &user, answer, "sign-in").await {
        Ok(key) => {
            web.rotate(Some(user.id), SessionStage::Full, None).await?;
            let caller = web.caller.clone();
            security_log::record(&state, user.id, &caller, kind::KEY_USED, key.name.clone()).await;
            security_log::record(
                &state,
                user.id,
                &caller,
                kind::WEB_SIGNIN,
                format!("password and security key ({})", key.name),
            )
            .await;
            Ok(web.redirect(return_to.as_deref().unwrap_or("/-/web/account")))
        }
        Err(f) => {
            security_log::record(&state, user.id, &web.caller, kind::KEY_FAILED, f.detail).await;
            // Wrong answers count with wrong codes against the partial sign-in.
            let hash = web.session.as_ref().map(|s| s.id_hash.clone());
            let attempts = state
                .store
                .bump_session_otp_attempts(&hash.unwrap_or_default())
                .await?;
            if attempts >= PARTIAL_ATTEMPTS {
                web.end().await?;
                return Ok(web.redirect("/-/web/signin"));
            }
            Ok(web.page_with_status(
                f.error.status,
                &crate::web::templates::SigninOtpPage {
                    chrome: web.chrome(),
                    error: Some(f.error.message),
                    has_keys: true,
                },
            ))
        }
    }
}

/// What a handshake's key confirmation is bound to: the handshake and this browser's session.
fn handshake_bound(web: &Web, id: &str) -> String {
    format!(
        "handshake:{}:{}",
        crate::authn::api_tokens::hash(id),
        bound(web)
    )
}

/// `POST /-/web/handshake/{id}/key/begin`: the options to confirm npm's login or command with
/// one of the signed-in account's keys.
pub async fn begin_handshake(
    web: Web,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    web.check_post(csrf_header(&headers)).map_err(as_api)?;
    let here = format!("/-/web/handshake/{id}");
    let user = web.require_user(&here).map_err(as_api)?.clone();
    handshake::open_for(&web, &id, &user)
        .await
        .map_err(as_api)?;
    assertion_options(&web, &user, &handshake_bound(&web, &id)).await
}

/// `POST /-/web/handshake/{id}/key`: approves npm's login or command with a key.
pub async fn approve_handshake(web: Web, Path(id): Path<String>, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let here = format!("/-/web/handshake/{id}");
    let user = web.require_user(&here)?.clone();
    let h = handshake::open_for(&web, &id, &user).await?;
    let state = web.state.clone();
    let ip = web.caller.ip.to_string();
    let base = web.caller.base_url.clone();
    let bound_to = handshake_bound(&web, &id);
    let answer = answer(&user, &bound_to, &base, &form, "ceremony", "credential");
    // approving npm's login mints a credential: the door's Login rule, as the code form does; a
    // web-OTP confirmation is the second factor itself, checked as the code form checks it
    let result = if h.kind == tessera_store::HandshakeKind::Login {
        login_with_key(&web, &user, answer, "npm login").await
    } else {
        security_keys::finish_assertion(&state, answer, &ip).await
    };
    match result {
        Ok(key) => {
            security_log::record(&state, user.id, &web.caller, kind::KEY_USED, key.name).await;
            handshake::approve_with_key(&web, &id, &h, &user).await
        }
        Err(f) => {
            security_log::record(&state, user.id, &web.caller, kind::KEY_FAILED, f.detail).await;
            Err(WebError::Page {
                status: f.error.status,
                heading: "Not confirmed",
                message: f.error.message,
            })
        }
    }
}

/// Whether `user` has keys, for the pages that offer them.
pub async fn has_keys(web: &Web, user: i64) -> Result<bool, WebError> {
    Ok(security_keys::has_keys(&web.state, user).await?)
}

/// The door's Login rule for `user` (a sign-in, or approving npm's login), with a key's answer
/// as its second factor; `what` names it in the security log.
async fn login_with_key(
    web: &Web,
    user: &User,
    answer: Answer<'_>,
    what: &str,
) -> Result<tessera_store::SecurityKeyRecord, AssertionFailed> {
    let caller = web.caller_with(None);
    let ip = web.caller.ip.to_string();
    match authz::authorize(
        &web.state,
        &caller,
        Operation::Login,
        Target::AccountOf(user),
    )
    .await
    {
        Ok(permit) => permit
            .confirm_with_key(&web.state, answer, &ip)
            .await
            .map(|(_, key)| key),
        Err(error) => Err(AssertionFailed {
            error,
            detail: format!("security key: {what} refused by the rules"),
        }),
    }
}
