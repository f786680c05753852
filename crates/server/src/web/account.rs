//! The account pages: profile, two-factor settings (the same state machine as
//! `npm profile enable-2fa`, in `crate::two_factor::enrolment`) and the security log. 2FA settings ask for
//! re-authentication when the sign-in is older than `web.reauth`, and every 2FA change
//! rotates the session id.

use axum::http::StatusCode;

use tessera_store::{Profile, SessionStage, TwoFactorMode, User};

use crate::authz::gate::{self, Operation};
use crate::authz::policy::KeyRule;
use crate::authz::{self, Target};
use crate::clock::iso8601;
use crate::npm::names;
use crate::services::accounts::{self, Channel, Client, ProfileChange};
use crate::two_factor::enrolment;
use crate::web::qr;
use crate::web::templates::{
    AccountPage, EventRow, KeyRow, RecoveryCodesPage, SecurityPage, SetupPage, TwoFactorPage,
};
use crate::web::{Form, Web, WebError, WebResult, field, raw_field};

const HERE: &str = "/-/web/account";
const TFA: &str = "/-/web/account/2fa";

async fn account_page(web: &Web, user: &User, error: Option<String>) -> AccountPage {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    AccountPage {
        chrome: web.chrome(),
        error,
        name: user.name.clone(),
        email: user.email.clone(),
        fullname: s(&user.profile.fullname),
        homepage: s(&user.profile.homepage),
        github: s(&user.profile.github),
        twitter: s(&user.profile.twitter),
        freenode: s(&user.profile.freenode),
        tfa_on: gate::account_mode(user).is_on(),
        tfa_mode: enrolment::mode_label(user),
        otp_needed: web.needs_otp(Operation::ProfileWrite).await,
    }
}

/// `GET /-/web/account`.
pub async fn page(web: Web) -> WebResult {
    let user = web.require_user(HERE)?.clone();
    Ok(web.page(&account_page(&web, &user, None).await))
}

fn profile_field(form: &Form, name: &str) -> Result<Option<String>, String> {
    match field(form, name) {
        Some(v) if v.chars().count() > 1024 => {
            Err(format!("{name} is longer than 1024 characters"))
        }
        v => Ok(v.map(str::to_owned)),
    }
}

/// `POST /-/web/account/profile`: the same rule as `npm profile set` (an OTP in
/// auth-and-writes mode).
pub async fn profile(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(HERE)?.clone();
    let state = web.state.clone();
    let parsed = (|| -> Result<(String, Profile), String> {
        let email = field(&form, "email").unwrap_or("").to_owned();
        names::validate_email(&email)?;
        let profile = Profile {
            fullname: profile_field(&form, "fullname")?,
            homepage: profile_field(&form, "homepage")?,
            twitter: profile_field(&form, "twitter")?,
            github: profile_field(&form, "github")?,
            freenode: profile_field(&form, "freenode")?,
        };
        Ok((email, profile))
    })();
    let (email, profile) = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Ok(web.page_with_status(
                StatusCode::BAD_REQUEST,
                &account_page(&web, &user, Some(e)).await,
            ));
        }
    };
    if email == user.email && profile == user.profile {
        return Ok(web.redirect(HERE));
    }
    let caller = web.caller_with(field(&form, "otp"));
    if let Err(e) = authz::enforce(&state, &caller, Operation::ProfileWrite, Target::Account).await
    {
        return Ok(
            web.page_with_status(e.status, &account_page(&web, &user, Some(e.message)).await)
        );
    }
    let ip = web.caller.ip.to_string();
    let client = Client {
        ip: &ip,
        user_agent: &web.caller.user_agent,
    };
    let change = ProfileChange { email, profile };
    accounts::update_profile(&state, &user, change, client, Channel::Website).await?;
    Ok(web.redirect(HERE))
}

/// `GET /-/web/account/security`: the user's own security log.
pub async fn security_log(web: Web) -> WebResult {
    let user = web.require_user("/-/web/account/security")?.clone();
    let events = web
        .state
        .store
        .events(user.id, 500)
        .await?
        .into_iter()
        .map(|e| EventRow {
            at: iso8601(e.at),
            kind: e.kind,
            detail: e.detail,
            ip: e.ip,
            user_agent: e.user_agent,
        })
        .collect();
    Ok(web.page(&SecurityPage {
        chrome: web.chrome(),
        events,
    }))
}

pub(crate) async fn tfa_page(
    web: &Web,
    user: &User,
    error: Option<String>,
) -> Result<TwoFactorPage, WebError> {
    let on = gate::account_mode(user).is_on();
    let policy = crate::authz::policy::current(&web.state).await?;
    let keys = web.state.store.security_keys(user.id).await?;
    let key_required = match policy.key_rule() {
        _ if !keys.is_empty() => None,
        KeyRule::None => None,
        KeyRule::Publishers => Some("to publish or change packages"),
        KeyRule::Everyone => Some("to use this registry"),
    };
    Ok(TwoFactorPage {
        chrome: web.chrome(),
        error,
        on,
        totp_offered: policy.totp_enrolment_allowed(),
        has_app: web
            .state
            .store
            .totp(user.id)
            .await?
            .is_some_and(|r| r.has_totp),
        key_required,
        mode: enrolment::mode_label(user),
        codes_left: if on {
            web.state.store.recovery_codes_left(user.id).await?
        } else {
            0
        },
        web_otp: user.web_otp,
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                id: k.id,
                name: k.name,
                added: iso8601(k.created_at),
                last_used: k.last_used_at.map_or_else(|| "never".into(), iso8601),
            })
            .collect(),
    })
}

/// Re-renders the 2FA page with an error, keeping the status of the refusal.
pub(crate) async fn tfa_error(
    web: &Web,
    user: &User,
    e: crate::http::error::ApiError,
) -> WebResult {
    let status = if e.status.is_client_error() {
        e.status
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(web.page_with_status(status, &tfa_page(web, user, Some(e.message)).await?))
}

/// `GET /-/web/account/2fa`.
pub async fn two_factor(web: Web) -> WebResult {
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    Ok(web.page(&tfa_page(&web, &user, None).await?))
}

pub(crate) fn recovery_page(
    web: &Web,
    heading: &'static str,
    codes: Vec<String>,
) -> RecoveryCodesPage {
    let text = codes.join("\n") + "\n";
    let download = format!(
        "data:text/plain;charset=utf-8,{}",
        crate::web::session::encode(&text)
    );
    RecoveryCodesPage {
        chrome: web.chrome(),
        heading,
        codes,
        download,
    }
}

/// Rotates the session id after a 2FA change.
pub(crate) async fn rotate(web: &mut Web) -> Result<(), WebError> {
    let user = web.caller.user.as_ref().map(|u| u.id);
    web.rotate(user, SessionStage::Full, None).await
}

/// `POST /-/web/account/2fa/enable`: password, then the QR code page.
pub async fn enable(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let mode = TwoFactorMode::parse(field(&form, "mode").unwrap_or("auth-and-writes"))
        .unwrap_or(TwoFactorMode::AuthAndWrites);
    let caller = web.caller_with(None);
    if let Err(e) =
        enrolment::check_password(&web.state, &caller, &user, raw_field(&form, "password")).await
    {
        return tfa_error(&web, &user, e).await;
    }
    if let Err(e) = enrolment::start(&web.state, &caller, &user, mode).await {
        return tfa_error(&web, &user, e).await;
    }
    Ok(web.redirect("/-/web/account/2fa/setup"))
}

async fn setup_page(web: &Web, user: &User, error: Option<String>) -> WebResult {
    let Some(e) = enrolment::pending_enrolment(&web.state, user).await? else {
        return Ok(web.redirect(TFA));
    };
    let mode = match user.two_factor.map(|t| t.status.mode()) {
        Some(TwoFactorMode::AuthOnly) => "auth-only",
        _ => "auth-and-writes",
    };
    let page = SetupPage {
        chrome: web.chrome(),
        error,
        qr_svg: qr::svg(&e.uri),
        secret: e.secret_base32(),
        mode,
        expires_in: web.state.config.tfa.pending.in_words(),
        confirm_action: "/-/web/account/2fa/confirm",
        confirm_label: "Turn on",
    };
    Ok(web.page(&page))
}

/// The QR code page of an authenticator app offered beside the account's keys.
async fn app_page(web: &Web, user: &User, error: Option<String>) -> WebResult {
    let Some((e, _)) = enrolment::offered_app(&web.state, user).await? else {
        return Ok(web.redirect(TFA));
    };
    Ok(web.page(&SetupPage {
        chrome: web.chrome(),
        error,
        qr_svg: qr::svg(&e.uri),
        secret: e.secret_base32(),
        mode: enrolment::mode_label(user),
        expires_in: web.state.config.tfa.pending.in_words(),
        confirm_action: "/-/web/account/2fa/app/confirm",
        confirm_label: "Add the app",
    }))
}

/// `POST /-/web/account/2fa/app`: an authenticator app beside the account's security keys
/// (the password, and one of the keys or a recovery code); shows its QR code.
pub async fn add_app(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let caller = web.caller_with(field(&form, "otp"));
    if let Err(e) =
        enrolment::check_password(&web.state, &caller, &user, raw_field(&form, "password")).await
    {
        return tfa_error(&web, &user, e).await;
    }
    let bound_to = crate::web::security_keys::bound(&web);
    let base = web.caller.base_url.clone();
    let key_answer =
        crate::web::security_keys::answer(&user, &bound_to, &base, &form, "ceremony", "credential");
    if let Err(page) = crate::web::security_keys::through_door(
        &web,
        &user,
        &caller,
        Operation::TotpAdd,
        key_answer,
    )
    .await
    {
        return page;
    }
    if let Err(e) = enrolment::offer_app(&web.state, &caller, &user).await {
        return tfa_error(&web, &user, e).await;
    }
    app_page(&web, &user, None).await
}

/// `POST /-/web/account/2fa/app/confirm`: the app's first code adds it.
pub async fn confirm_app(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    let caller = web.caller_with(None);
    let code = field(&form, "code").unwrap_or("");
    match enrolment::confirm_app(&web.state, &caller, &user, code).await {
        Ok(()) => {
            rotate(&mut web).await?;
            Ok(web.redirect(TFA))
        }
        Err(e) => app_page(&web, &user, Some(e.message)).await,
    }
}

/// `GET /-/web/account/2fa/setup`: the pending enrolment's QR code and secret.
pub async fn setup(web: Web) -> WebResult {
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    setup_page(&web, &user, None).await
}

/// `POST /-/web/account/2fa/confirm`: the first code turns 2FA on; the codes are shown once.
pub async fn confirm(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    let caller = web.caller_with(None);
    match enrolment::confirm(
        &web.state,
        &caller,
        &user,
        field(&form, "code").unwrap_or(""),
    )
    .await
    {
        Ok(codes) => {
            rotate(&mut web).await?;
            Ok(web.page(&recovery_page(
                &web,
                "Two-factor authentication is on",
                codes,
            )))
        }
        Err(e) => setup_page(&web, &user, Some(e.message)).await,
    }
}

/// `POST /-/web/account/2fa/mode` (OTP).
pub async fn mode(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let Some(mode) = field(&form, "mode").and_then(TwoFactorMode::parse) else {
        return Err(WebError::forbidden("Unknown mode"));
    };
    let caller = web.caller_with(field(&form, "otp"));
    if let Err(e) = enrolment::change_mode(&web.state, &caller, &user, mode).await {
        return tfa_error(&web, &user, e).await;
    }
    rotate(&mut web).await?;
    Ok(web.redirect(TFA))
}

/// `POST /-/web/account/2fa/disable` (password and OTP or recovery code).
pub async fn disable(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let caller = web.caller_with(field(&form, "otp"));
    let result = async {
        enrolment::check_password(&web.state, &caller, &user, raw_field(&form, "password")).await?;
        enrolment::disable(&web.state, &caller, &user).await
    }
    .await;
    if let Err(e) = result {
        return tfa_error(&web, &user, e).await;
    }
    rotate(&mut web).await?;
    Ok(web.redirect(TFA))
}

/// `POST /-/web/account/2fa/recovery-codes` (password and OTP): a new set, the old one void.
pub async fn regenerate(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let caller = web.caller_with(field(&form, "otp"));
    let result = async {
        enrolment::check_password(&web.state, &caller, &user, raw_field(&form, "password")).await?;
        enrolment::regenerate_codes(&web.state, &caller, &user).await
    }
    .await;
    match result {
        Ok(codes) => {
            rotate(&mut web).await?;
            Ok(web.page(&recovery_page(&web, "New recovery codes", codes)))
        }
        Err(e) => tfa_error(&web, &user, e).await,
    }
}

/// `POST /-/web/account/2fa/web-otp` (OTP): confirm npm commands in the browser, or not.
pub async fn web_otp(mut web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    let user = web.require_user(TFA)?.clone();
    web.require_recent_auth(TFA)?;
    let on = field(&form, "on") == Some("true");
    let caller = web.caller_with(field(&form, "otp"));
    if let Err(e) = enrolment::set_web_otp(&web.state, &caller, &user, on).await {
        return tfa_error(&web, &user, e).await;
    }
    rotate(&mut web).await?;
    Ok(web.redirect(TFA))
}
