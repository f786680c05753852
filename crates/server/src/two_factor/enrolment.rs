//! The 2FA state machine, shared by the npm API (`routes/two_factor.rs`) and the website.
//!
//! off → (password) → pending, with a new sealed secret and its `otpauth://` URI → (first code)
//! → on, with ten recovery codes. While pending nothing is enforced; starting again makes a new
//! secret; the password alone cancels it. Once on, changing the mode, disabling, regenerating
//! the recovery codes or changing the web-OTP preference needs the password (where npm sends
//! it) and a second factor, through the gate. The secret is never shown again after
//! confirmation.

use tessera_store::{FailureKind, TwoFactorMode, User};

use crate::authn::caller::Caller;
use crate::authn::passwords;
use crate::authn::throttle;
use crate::authz::gate::{self, Operation, TfaMode};
use crate::authz::{self, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::services::security_log::{self, kind};
use crate::state::AppState;

/// A started enrolment: what the user scans or types into an authenticator app.
pub struct Enrolment {
    /// The secret (raw bytes).
    pub secret: Vec<u8>,
    /// The `otpauth://` URI (QR code content).
    pub uri: String,
}

impl Enrolment {
    /// The secret as authenticator apps take it (base32).
    pub fn secret_base32(&self) -> String {
        tessera_otp::secret_base32(&self.secret)
    }
}

/// Checks the account password (throttled like a login; wrong passwords never touch the
/// second-factor counter).
pub async fn check_password(
    state: &AppState,
    caller: &Caller,
    user: &User,
    password: Option<&str>,
) -> ApiResult<()> {
    let ip = caller.ip.to_string();
    match passwords::check_throttled(state, Some(user), password.unwrap_or(""), &ip).await? {
        passwords::PasswordCheck::Right => Ok(()),
        passwords::PasswordCheck::Wrong { .. } => {
            Err(ApiError::unauthorized("Incorrect password."))
        }
    }
}

/// Starts (or restarts) enrolment in `mode`. The caller has checked the password.
pub async fn start(
    state: &AppState,
    caller: &Caller,
    user: &User,
    mode: TwoFactorMode,
) -> ApiResult<Enrolment> {
    if gate::account_mode(user).is_on() {
        return Err(ApiError::conflict(
            "Two-factor authentication is already enabled",
        ));
    }
    authz::enforce(state, caller, Operation::TfaEnable, Target::Account).await?;
    let secret = tessera_otp::generate_secret();
    let sealed = state.keys.seal(user.id, &secret);
    if !state
        .store
        .start_enrolment(user.id, mode, &sealed, state.clock.now_ms())
        .await?
    {
        return Err(ApiError::conflict(
            "Two-factor authentication is already enabled",
        ));
    }
    changed(
        state,
        user,
        caller,
        kind::TFA_ENROLMENT_STARTED,
        mode.as_str(),
    )
    .await?;
    let uri = tessera_otp::otpauth_uri(&state.config.tfa.issuer, &user.name, &secret);
    Ok(Enrolment {
        secret: secret.to_vec(),
        uri,
    })
}

/// The pending enrolment's secret, to show it again on the website's confirmation page while
/// still pending (never once confirmed).
pub async fn pending_enrolment(state: &AppState, user: &User) -> ApiResult<Option<Enrolment>> {
    let Some(record) = state
        .store
        .totp(user.id)
        .await?
        .filter(|r| r.state.status.is_pending())
    else {
        return Ok(None);
    };
    let secret = state
        .keys
        .open(user.id, &record.secret_sealed)
        .map_err(ApiError::internal)?;
    let uri = tessera_otp::otpauth_uri(&state.config.tfa.issuer, &user.name, &secret);
    Ok(Some(Enrolment { secret, uri }))
}

/// Confirms the pending enrolment with its first code; returns the recovery codes.
pub async fn confirm(
    state: &AppState,
    caller: &Caller,
    user: &User,
    code: &str,
) -> ApiResult<Vec<String>> {
    authz::enforce(state, caller, Operation::TfaConfirm, Target::Account).await?;
    let record = match state.store.totp(user.id).await? {
        Some(r) if r.state.status.is_pending() => r,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Two-factor authentication is already enabled",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "Two-factor authentication is not being set up. Run `npm profile enable-2fa` first.",
            ));
        }
    };
    let now = state.clock.now_ms();
    let ttl = state.config.tfa.pending.as_ms();
    if record.state.started_at + ttl < now {
        state.store.cancel_pending(user.id).await?;
        return Err(ApiError::bad_request(
            "This two-factor setup has expired. Start it again.",
        ));
    }
    let step = first_code(state, caller, user, &record.secret_sealed, code).await?;
    let (codes, hashes) = new_recovery_codes();
    let credential = caller.credential_id();
    if !state
        .store
        .confirm_enrolment(
            user.id,
            record.state.started_at,
            step as i64,
            &credential,
            &hashes,
            now,
        )
        .await?
    {
        return Err(ApiError::conflict(
            "The two-factor setup changed meanwhile. Start it again.",
        ));
    }
    changed(
        state,
        user,
        caller,
        kind::TFA_ENABLED,
        record.state.status.mode().as_str(),
    )
    .await?;
    tracing::info!(user = %user.name, mode = record.state.status.mode().as_str(), "2FA enabled");
    Ok(codes)
}

/// Checks the first code of a new secret (throttled and logged like any second factor); returns
/// its time step.
async fn first_code(
    state: &AppState,
    caller: &Caller,
    user: &User,
    sealed: &[u8],
    code: &str,
) -> ApiResult<u64> {
    let now = state.clock.now_ms();
    let ip = caller.ip.to_string();
    let attempt = throttle::begin(state, FailureKind::Otp, Some(user.id), &ip).await?;
    let secret = match state.keys.open(user.id, sealed) {
        Ok(s) => s,
        Err(e) => {
            attempt.succeeded(state).await.ok();
            return Err(ApiError::internal(e));
        }
    };
    let Some(step) =
        tessera_otp::verify(&secret, code, (now / 1000) as u64, state.config.tfa.window)
    else {
        attempt.failed(state).await?;
        security_log::record(
            state,
            user.id,
            caller,
            kind::OTP_FAILED,
            "enrolment confirmation",
        )
        .await;
        return Err(ApiError::bad_request(
            "That code does not match. The authenticator app is not set up yet: enter a \
             current code from it, or start again.",
        ));
    };
    attempt.succeeded(state).await?;
    Ok(step)
}

/// Offers an authenticator app to an account whose 2FA has only security keys (the door let
/// [`Operation::TotpAdd`] through): a new secret, waiting for its first code.
pub async fn offer_app(state: &AppState, caller: &Caller, user: &User) -> ApiResult<Enrolment> {
    let secret = tessera_otp::generate_secret();
    let sealed = state.keys.seal(user.id, &secret);
    if !state
        .store
        .offer_totp(user.id, &sealed, state.clock.now_ms())
        .await?
    {
        return Err(ApiError::conflict(
            "This account already has an authenticator app, or no two-factor authentication to \
             add one to.",
        ));
    }
    changed(
        state,
        user,
        caller,
        kind::TFA_ENROLMENT_STARTED,
        "authenticator app beside security keys",
    )
    .await?;
    let uri = tessera_otp::otpauth_uri(&state.config.tfa.issuer, &user.name, &secret);
    Ok(Enrolment {
        secret: secret.to_vec(),
        uri,
    })
}

/// The app offered to `user` and not confirmed yet, while the offer lasts (`tfa.pending`), with
/// when it was offered.
pub async fn offered_app(state: &AppState, user: &User) -> ApiResult<Option<(Enrolment, i64)>> {
    let now = state.clock.now_ms();
    let Some((record, at)) = state
        .store
        .totp(user.id)
        .await?
        .and_then(|r| r.offered_at.map(|at| (r, at)))
        .filter(|(r, at)| !r.has_totp && at + state.config.tfa.pending.as_ms() >= now)
    else {
        return Ok(None);
    };
    let secret = state
        .keys
        .open(user.id, &record.secret_sealed)
        .map_err(ApiError::internal)?;
    let uri = tessera_otp::otpauth_uri(&state.config.tfa.issuer, &user.name, &secret);
    Ok(Some((Enrolment { secret, uri }, at)))
}

/// Confirms the offered app with its first code: from then on its codes count beside the keys.
pub async fn confirm_app(
    state: &AppState,
    caller: &Caller,
    user: &User,
    code: &str,
) -> ApiResult<()> {
    authz::enforce(state, caller, Operation::TfaConfirm, Target::Account).await?;
    let Some((_, offered_at)) = offered_app(state, user).await? else {
        return Err(ApiError::bad_request(
            "No authenticator app is being set up, or its setup expired. Start again.",
        ));
    };
    let record = state
        .store
        .totp(user.id)
        .await?
        .ok_or_else(|| ApiError::conflict("Two-factor authentication was turned off."))?;
    let step = first_code(state, caller, user, &record.secret_sealed, code).await?;
    if !state
        .store
        .confirm_offered_totp(user.id, offered_at, step as i64, &caller.credential_id())
        .await?
    {
        return Err(ApiError::conflict(
            "The authenticator app's setup changed meanwhile. Start it again.",
        ));
    }
    changed(
        state,
        user,
        caller,
        kind::TFA_MODE_CHANGED,
        "authenticator app added beside security keys",
    )
    .await
}

pub(crate) fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes = tessera_otp::generate_recovery_codes();
    let hashes = codes
        .iter()
        .map(|c| tessera_otp::hash_recovery_code(c))
        .collect();
    (codes, hashes)
}

/// Cancels a pending enrolment (the password alone suffices; the caller checked it).
pub async fn cancel_pending(state: &AppState, caller: &Caller, user: &User) -> ApiResult<()> {
    authz::enforce(state, caller, Operation::TfaCancelPending, Target::Account).await?;
    state.store.cancel_pending(user.id).await?;
    changed(state, user, caller, kind::TFA_ENROLMENT_CANCELLED, "").await?;
    Ok(())
}

/// Changes the mode of active 2FA (second factor through the gate).
pub async fn change_mode(
    state: &AppState,
    caller: &Caller,
    user: &User,
    mode: TwoFactorMode,
) -> ApiResult<()> {
    authz::enforce(state, caller, Operation::TfaModeChange, Target::Account).await?;
    if !state.store.set_two_factor_mode(user.id, mode).await? {
        return Err(ApiError::bad_request(
            "Two-factor authentication is not enabled",
        ));
    }
    changed(state, user, caller, kind::TFA_MODE_CHANGED, mode.as_str()).await?;
    Ok(())
}

/// Turns 2FA off (second factor through the gate; the caller checked the password).
pub async fn disable(state: &AppState, caller: &Caller, user: &User) -> ApiResult<()> {
    authz::enforce(state, caller, Operation::TfaDisable, Target::Account).await?;
    state.store.disable_two_factor(user.id).await?;
    changed(state, user, caller, kind::TFA_DISABLED, "").await?;
    tracing::info!(user = %user.name, "2FA disabled");
    Ok(())
}

/// Replaces the recovery codes; the old set stops working at once.
pub async fn regenerate_codes(
    state: &AppState,
    caller: &Caller,
    user: &User,
) -> ApiResult<Vec<String>> {
    if !gate::account_mode(user).is_on() {
        return Err(ApiError::bad_request(
            "Two-factor authentication is not enabled",
        ));
    }
    authz::enforce(
        state,
        caller,
        Operation::RecoveryCodesRegenerate,
        Target::Account,
    )
    .await?;
    let (codes, hashes) = new_recovery_codes();
    state
        .store
        .replace_recovery_codes(user.id, &hashes, state.clock.now_ms())
        .await?;
    security_log::record(state, user.id, caller, kind::RECOVERY_CODES_REGENERATED, "").await;
    Ok(codes)
}

/// Turns npm's web OTP (confirm in the browser instead of typing a code) on or off.
pub async fn set_web_otp(
    state: &AppState,
    caller: &Caller,
    user: &User,
    on: bool,
) -> ApiResult<()> {
    if on && !gate::account_mode(user).is_on() {
        return Err(ApiError::bad_request(
            "Turn on two-factor authentication first",
        ));
    }
    authz::enforce(state, caller, Operation::TfaModeChange, Target::Account).await?;
    state.store.set_web_otp(user.id, on).await?;
    changed(
        state,
        user,
        caller,
        kind::TFA_MODE_CHANGED,
        if on { "web OTP on" } else { "web OTP off" },
    )
    .await?;
    Ok(())
}

/// The account's mode as npm names it, for display.
pub fn mode_label(user: &User) -> &'static str {
    match gate::account_mode(user) {
        TfaMode::Off => "disabled",
        TfaMode::Pending => "disabled (setup pending)",
        TfaMode::AuthOnly => "auth-only",
        TfaMode::AuthAndWrites => "auth-and-writes",
    }
}

/// Notes a change of the account's 2FA state: its `updated` time and the security log.
async fn changed(
    state: &AppState,
    user: &User,
    caller: &Caller,
    what: &str,
    detail: impl Into<String>,
) -> ApiResult<()> {
    state
        .store
        .touch_user(user.id, state.clock.now_ms())
        .await?;
    security_log::record(state, user.id, caller, what, detail).await;
    Ok(())
}
