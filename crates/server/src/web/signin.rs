//! Signing in (password, then the second factor when 2FA is on), signing out, signing up, and
//! re-authenticating before security changes. Throttled by the same counters as the npm API;
//! the errors never say which of user name or password was wrong.

use axum::extract::Query;
use std::collections::HashMap;

use tessera_store::SessionStage;

use crate::authz::gate::{self, Operation};
use crate::authz::{self, Target};
use crate::config::Signup;
use crate::services::accounts::{self, Channel, Client, SignInError, SignUp, SignUpError};
use crate::services::security_log::{self, kind};
use crate::two_factor::enrolment;
use crate::two_factor::second_factor::{self, Origin, Satisfied};
use crate::web::security_keys::has_keys;
use crate::web::session::{PARTIAL_ATTEMPTS, safe_next};
use crate::web::templates::{ReauthPage, SigninOtpPage, SigninPage, SignupPage};
use crate::web::{Form, Web, WebError, WebResult, field, raw_field};

const WRONG: &str = "Incorrect user name or password.";

fn signin_page(web: &Web, error: Option<String>, name: &str, next: &str) -> SigninPage {
    SigninPage {
        chrome: web.chrome(),
        error,
        name: name.to_owned(),
        signup_open: web.state.config.signup != Signup::Closed,
        next: next.to_owned(),
    }
}

/// `GET /-/web/signin`.
pub async fn form(mut web: Web, Query(q): Query<HashMap<String, String>>) -> WebResult {
    let next = safe_next(q.get("next").map(String::as_str)).unwrap_or_default();
    if web.caller.user.is_some() {
        return Ok(web.redirect(if next.is_empty() {
            "/-/web/account"
        } else {
            &next
        }));
    }
    web.prepare_form();
    Ok(web.page(&signin_page(&web, None, "", &next)))
}

/// `POST /-/web/signin`: the password step.
pub async fn submit(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let name = field(&form, "name").unwrap_or("").to_owned();
    let password = raw_field(&form, "password").unwrap_or("").to_owned();
    let next = safe_next(field(&form, "next"));
    let state = web.state.clone();
    let ip = web.caller.ip.to_string();
    let client = Client {
        ip: &ip,
        user_agent: &web.caller.user_agent,
    };
    let found = state.store.user_by_name(&name).await?;
    let next_or_empty = next.as_deref().unwrap_or("").to_owned();
    let user =
        match accounts::check_password(&state, found, &password, client, Channel::Website).await {
            Ok(u) => u,
            Err(SignInError::Wrong) => {
                return Ok(web.page(&signin_page(
                    &web,
                    Some(WRONG.into()),
                    &name,
                    &next_or_empty,
                )));
            }
            Err(SignInError::Locked) => {
                let msg = "This account is locked. Contact your registry administrator.";
                return Ok(web.page(&signin_page(&web, Some(msg.into()), &name, "")));
            }
            Err(SignInError::Refused(e)) => {
                return Ok(web.page(&signin_page(&web, Some(e.message), &name, &next_or_empty)));
            }
        };
    if gate::account_mode(&user).is_on() {
        web.rotate(Some(user.id), SessionStage::Partial, next)
            .await?;
        return Ok(web.redirect("/-/web/signin/otp"));
    }
    web.rotate(Some(user.id), SessionStage::Full, None).await?;
    security_log::record_from(
        &state,
        user.id,
        &ip,
        &web.caller.user_agent,
        kind::WEB_SIGNIN,
        Satisfied::describe(None),
    )
    .await;
    Ok(web.redirect(next.as_deref().unwrap_or("/-/web/account")))
}

fn partial_user(web: &Web) -> Option<i64> {
    web.session
        .as_ref()
        .filter(|s| s.stage == SessionStage::Partial)
        .and_then(|s| s.user_id)
}

/// `GET /-/web/signin/otp`.
pub async fn otp_form(web: Web) -> WebResult {
    let Some(uid) = partial_user(&web) else {
        return Ok(web.redirect("/-/web/signin"));
    };
    Ok(web.page(&SigninOtpPage {
        chrome: web.chrome(),
        error: None,
        has_keys: has_keys(&web, uid).await?,
    }))
}

/// `POST /-/web/signin/otp`: the second-factor step. The code is bound to the session it starts.
pub async fn otp_submit(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let Some(uid) = partial_user(&web) else {
        return Ok(web.redirect("/-/web/signin"));
    };
    let state = web.state.clone();
    let user = state
        .store
        .user_by_id(uid)
        .await?
        .ok_or_else(WebError::not_found)?;
    let now = state.clock.now_ms();
    let return_to = web.session.as_ref().and_then(|s| s.return_to.clone());
    let (raw, next_session) = web.prepared_rotation(Some(uid), SessionStage::Full, None, now);
    let mut caller = web.caller_with(field(&form, "otp"));
    caller.session = Some(next_session.id_hash.clone());
    // Where the registry takes only a key (or a recovery code), the refusal of a code says so.
    let mut key_only = false;
    let result =
        match authz::authorize(&state, &caller, Operation::Login, Target::AccountOf(&user)).await {
            Ok(permit) => {
                key_only = permit.factors().is_some_and(|f| !f.takes_totp());
                permit
                    .confirm(&state, &caller)
                    .await
                    .map(|a| a.second_factor)
            }
            Err(e) => Err(e),
        };
    match result {
        Ok(how) => {
            web.commit_rotation(raw, next_session).await?;
            security_log::record(
                &state,
                user.id,
                &caller,
                kind::WEB_SIGNIN,
                Satisfied::describe(how),
            )
            .await;
            Ok(web.redirect(return_to.as_deref().unwrap_or("/-/web/account")))
        }
        Err(e) if e.status.as_u16() == 429 || key_only => Ok(web.page(&SigninOtpPage {
            chrome: web.chrome(),
            error: Some(e.message),
            has_keys: has_keys(&web, uid).await?,
        })),
        Err(_) => {
            let hash = web
                .session
                .as_ref()
                .map(|s| s.id_hash.clone())
                .unwrap_or_default();
            let attempts = state.store.bump_session_otp_attempts(&hash).await?;
            if attempts >= PARTIAL_ATTEMPTS {
                web.end().await?;
                web.prepare_form();
                let msg = "Too many wrong codes. Sign in again.".to_owned();
                return Ok(web.page(&signin_page(&web, Some(msg), &user.name, "")));
            }
            let msg = "That code is not valid or was already used. Enter the current code, or a recovery code.";
            Ok(web.page(&SigninOtpPage {
                chrome: web.chrome(),
                error: Some(msg.into()),
                has_keys: has_keys(&web, uid).await?,
            }))
        }
    }
}

/// `POST /-/web/signout`.
pub async fn signout(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    web.end().await?;
    Ok(web.redirect("/-/web/"))
}

fn signup_page(
    web: &Web,
    error: Option<String>,
    name: &str,
    email: &str,
    next: &str,
    secret: &str,
) -> SignupPage {
    SignupPage {
        chrome: web.chrome(),
        error,
        name: name.into(),
        email: email.into(),
        min_password: web.state.config.min_password_length,
        invitation: web.state.config.signup == Signup::Invitation,
        next: next.into(),
        secret: secret.into(),
    }
}

/// The answer to an invitation link that no longer works.
fn stale_invitation() -> WebError {
    WebError::Page {
        status: axum::http::StatusCode::NOT_FOUND,
        heading: "Invitation not valid",
        message: "This invitation link is not valid: it was already used, replaced by a newer \
                  one, or it has expired. Ask your administrator for a new invitation."
            .into(),
    }
}

/// `GET /-/web/signup`.
pub async fn signup_form(mut web: Web, Query(q): Query<HashMap<String, String>>) -> WebResult {
    if web.state.config.signup == Signup::Closed {
        return Err(WebError::forbidden(
            "Sign-up is closed on this registry. Ask an administrator for an account.",
        ));
    }
    let next = safe_next(q.get("next").map(String::as_str)).unwrap_or_default();
    web.prepare_form();
    Ok(web.page(&signup_page(&web, None, "", "", &next, "")))
}

/// `POST /-/web/signup`.
pub async fn signup_submit(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    if web.state.config.signup == Signup::Closed {
        return Err(WebError::forbidden("Sign-up is closed on this registry."));
    }
    let name = field(&form, "name").unwrap_or("").to_owned();
    create_account(web, &form, name, None).await
}

/// `GET /-/web/invitation/{secret}`: the sign-up form of one invitation, its name fixed.
pub async fn invitation_form(
    mut web: Web,
    axum::extract::Path(secret): axum::extract::Path<String>,
) -> WebResult {
    let now = web.state.clock.now_ms();
    let hash = crate::authn::api_tokens::hash(&secret);
    let found = web.state.store.invitation(&hash, now).await?;
    let invitation = found.ok_or_else(stale_invitation)?;
    if web.state.config.signup != Signup::Invitation {
        return Err(WebError::forbidden(
            "Sign-up on this registry is not by invitation any more. Ask your administrator.",
        ));
    }
    web.prepare_form();
    let page = signup_page(&web, None, &invitation.name, &invitation.email, "", &secret);
    Ok(web.page(&page))
}

/// `POST /-/web/invitation/{secret}`: creates the invited account and signs it in.
pub async fn invitation_submit(
    web: Web,
    axum::extract::Path(secret): axum::extract::Path<String>,
    form: Form,
) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let now = web.state.clock.now_ms();
    let hash = crate::authn::api_tokens::hash(&secret);
    let found = web.state.store.invitation(&hash, now).await?;
    let invitation = found.ok_or_else(stale_invitation)?;
    create_account(web, &form, invitation.name, Some(secret)).await
}

/// Signs up `name` with the form's email and password (through an invitation's `secret` when
/// sign-up is by invitation) and signs the new account in.
async fn create_account(
    mut web: Web,
    form: &Form,
    name: String,
    secret: Option<String>,
) -> WebResult {
    let state = web.state.clone();
    let email = field(form, "email").unwrap_or("").to_owned();
    let password = raw_field(form, "password").unwrap_or("").to_owned();
    let next = safe_next(field(form, "next"));
    let shown_secret = secret.clone().unwrap_or_default();
    let fail = |web: &Web, msg: String| {
        Ok(web.page(&signup_page(
            web,
            Some(msg),
            &name,
            &email,
            next.as_deref().unwrap_or(""),
            &shown_secret,
        )))
    };
    let input = SignUp {
        name: name.clone(),
        email: email.clone(),
        password,
        admin: false,
        invitation: secret.clone(),
    };
    let user = match accounts::sign_up(&state, input, Channel::Website).await {
        Ok(u) => u,
        Err(SignUpError::Invalid(m)) => return fail(&web, m),
        Err(SignUpError::Closed) => {
            return Err(WebError::forbidden("Sign-up is closed on this registry."));
        }
        Err(SignUpError::NotInvited) if secret.is_some() => return Err(stale_invitation()),
        Err(SignUpError::NotInvited) => {
            return fail(
                &web,
                "Sign-up on this registry is by invitation: open the invitation link your \
                 administrator sent you."
                    .into(),
            );
        }
        Err(SignUpError::NameTaken) => return fail(&web, "This user name is taken.".into()),
        Err(SignUpError::Failed(e)) => return Err(e.into()),
    };
    web.rotate(Some(user.id), SessionStage::Full, None).await?;
    security_log::record_from(
        &state,
        user.id,
        &web.caller.ip.to_string(),
        &web.caller.user_agent,
        kind::WEB_SIGNIN,
        "account created",
    )
    .await;
    Ok(web.redirect(next.as_deref().unwrap_or("/-/web/account")))
}

/// `GET /-/web/reauth?next=…`.
pub async fn reauth_form(web: Web, Query(q): Query<HashMap<String, String>>) -> WebResult {
    let user = web.require_user("/-/web/account")?;
    let next =
        safe_next(q.get("next").map(String::as_str)).unwrap_or_else(|| "/-/web/account".into());
    let tfa_on = gate::account_mode(user).is_on();
    Ok(web.page(&ReauthPage {
        chrome: web.chrome(),
        error: None,
        next,
        tfa_on,
    }))
}

/// `POST /-/web/reauth`: the password, or a one-time password or recovery code.
pub async fn reauth_submit(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user("/-/web/account")?.clone();
    let next = safe_next(field(&form, "next")).unwrap_or_else(|| "/-/web/account".into());
    let secret = raw_field(&form, "secret").unwrap_or("");
    let tfa_on = gate::account_mode(&user).is_on();
    let looks_like_code = tessera_otp::normalize_code(secret).is_some()
        || tessera_otp::normalize_recovery_code(secret).is_some();
    let caller = web.caller_with(None);
    let result = if tfa_on && looks_like_code {
        let ip = web.caller.ip.to_string();
        let origin = Origin {
            ip: &ip,
            user_agent: &web.caller.user_agent,
            base_url: None,
        };
        second_factor::verify(
            &web.state,
            &origin,
            &user,
            &caller.credential_id(),
            Some(secret),
        )
        .await
        .map(|_| ())
    } else {
        enrolment::check_password(&web.state, &caller, &user, Some(secret)).await
    };
    match result {
        Ok(()) => {
            let hash = web
                .session
                .as_ref()
                .map(|s| s.id_hash.clone())
                .unwrap_or_default();
            web.state
                .store
                .reauthenticate_session(&hash, web.state.clock.now_ms())
                .await?;
            Ok(web.redirect(&next))
        }
        Err(e) => {
            let msg = if e.status.as_u16() == 429 {
                e.message
            } else {
                "That did not match. Try again.".into()
            };
            Ok(web.page(&ReauthPage {
                chrome: web.chrome(),
                error: Some(msg),
                next,
                tfa_on,
            }))
        }
    }
}
