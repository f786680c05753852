//! `npm profile enable-2fa` / `disable-2fa`: the `tfa` key of `POST /-/npm/v1/user`
//! (npm-protocol.md §4.4–§4.7).
//!
//! State machine: off → (password) → pending, answered with the `otpauth://` URI → (first code)
//! → on, answered with the recovery codes. While pending nothing is enforced; re-enabling makes a
//! new secret; the password alone cancels it. Once on, changing the mode or disabling needs the
//! password and a second factor. The secret is never shown again after confirmation.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use tessera_store::{FailureKind, TwoFactorMode, User};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::events::{self, kind};
use crate::gate::{self, Operation, Subject, TfaMode};
use crate::passwords;
use crate::state::AppState;
use crate::throttle;

fn no_store(v: Value) -> Response {
    let mut res = Json(v).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Handles a `tfa` request body for `user`.
pub async fn handle(
    state: &AppState,
    caller: &Caller,
    user: &User,
    tfa: &Value,
) -> ApiResult<Response> {
    match tfa {
        Value::Array(codes) => confirm(state, caller, user, codes).await,
        Value::Object(o) => change(state, caller, user, o).await,
        _ => Err(ApiError::bad_request(
            "To turn two-factor authentication off, run `npm profile disable-2fa`: it needs your \
             password and a one-time password",
        )),
    }
}

/// Checks the account password given with a 2FA change (throttled like a login).
pub async fn check_password(
    state: &AppState,
    caller: &Caller,
    user: &User,
    password: Option<&str>,
) -> ApiResult<()> {
    let ip = caller.ip.to_string();
    throttle::check(state, FailureKind::Password, Some(user.id), &ip).await?;
    let ok = match password {
        Some(p) if !p.is_empty() => passwords::verify(&user.password_hash, p).await,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    throttle::record(state, FailureKind::Password, Some(user.id), &ip).await?;
    Err(ApiError::unauthorized("Incorrect password."))
}

async fn change(
    state: &AppState,
    caller: &Caller,
    user: &User,
    o: &Map<String, Value>,
) -> ApiResult<Response> {
    let mode = match o.get("mode") {
        None | Some(Value::Null) => "auth-and-writes",
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return Err(ApiError::bad_request("mode must be a string")),
    };
    let wanted = match mode {
        "disable" => None,
        m => Some(TwoFactorMode::parse(m).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Unknown two-factor mode {m:?}: use auth-only, auth-and-writes or disable"
            ))
        })?),
    };
    check_password(
        state,
        caller,
        user,
        o.get("password").and_then(Value::as_str),
    )
    .await?;
    let current = gate::account_mode(user);
    match (wanted, current) {
        (None, TfaMode::Off) => Ok(Json(json!({"tfa": false})).into_response()),
        (None, TfaMode::Pending) => {
            gate::enforce(state, caller, Operation::TfaCancelPending, Subject::Account).await?;
            state.store.cancel_pending(user.id).await?;
            events::record(state, user.id, caller, kind::TFA_ENROLMENT_CANCELLED, "").await;
            Ok(Json(json!({"tfa": false})).into_response())
        }
        (None, _) => {
            gate::enforce(state, caller, Operation::TfaDisable, Subject::Account).await?;
            state.store.disable_two_factor(user.id).await?;
            events::record(state, user.id, caller, kind::TFA_DISABLED, "").await;
            tracing::info!(user = %user.name, "2FA disabled");
            Ok(Json(json!({"tfa": false})).into_response())
        }
        (Some(mode), TfaMode::Off | TfaMode::Pending) => {
            gate::enforce(state, caller, Operation::TfaEnable, Subject::Account).await?;
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
            events::record(
                state,
                user.id,
                caller,
                kind::TFA_ENROLMENT_STARTED,
                mode.as_str(),
            )
            .await;
            let uri = tessera_otp::otpauth_uri(&state.config.tfa.issuer, &user.name, &secret);
            Ok(no_store(json!({"tfa": uri})))
        }
        (Some(mode), _) => {
            gate::enforce(state, caller, Operation::TfaModeChange, Subject::Account).await?;
            state.store.set_two_factor_mode(user.id, mode).await?;
            events::record(
                state,
                user.id,
                caller,
                kind::TFA_MODE_CHANGED,
                mode.as_str(),
            )
            .await;
            // npm ≥ 11.4 expects the new state; npm ≤ 11.3 prints "mode changed" only for null
            // (npm-protocol.md §4.6).
            let old_npm = caller.npm_version().is_some_and(|v| v < (11, 4, 0));
            let tfa = if old_npm {
                Value::Null
            } else {
                json!({"pending": false, "mode": mode.as_str()})
            };
            Ok(Json(json!({"tfa": tfa})).into_response())
        }
    }
}

async fn confirm(
    state: &AppState,
    caller: &Caller,
    user: &User,
    codes: &[Value],
) -> ApiResult<Response> {
    gate::enforce(state, caller, Operation::TfaConfirm, Subject::Account).await?;
    let record = state.store.totp(user.id).await?;
    let record = match record {
        Some(r) if r.state.pending => r,
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
    let ttl = state.config.tfa.pending_minutes as i64 * 60_000;
    if record.state.started_at + ttl < now {
        state.store.cancel_pending(user.id).await?;
        return Err(ApiError::bad_request(
            "This two-factor setup has expired. Run `npm profile enable-2fa` again.",
        ));
    }
    let code = codes.first().and_then(Value::as_str).unwrap_or("");
    let ip = caller.ip.to_string();
    throttle::check(state, FailureKind::Otp, Some(user.id), &ip).await?;
    let secret = state
        .keys
        .open(user.id, &record.secret_sealed)
        .map_err(ApiError::internal)?;
    let Some(step) =
        tessera_otp::verify(&secret, code, (now / 1000) as u64, state.config.tfa.window)
    else {
        throttle::record(state, FailureKind::Otp, Some(user.id), &ip).await?;
        events::record(
            state,
            user.id,
            caller,
            kind::OTP_FAILED,
            "enrolment confirmation",
        )
        .await;
        return Err(ApiError::bad_request(
            "That code does not match. Two-factor authentication is still pending: enter a \
             current code from your authenticator app, or run `npm profile enable-2fa` again.",
        ));
    };
    let recovery = tessera_otp::generate_recovery_codes();
    let hashes: Vec<String> = recovery
        .iter()
        .map(|c| tessera_otp::hash_recovery_code(c))
        .collect();
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
            "The two-factor setup changed meanwhile. Run `npm profile enable-2fa` again.",
        ));
    }
    events::record(
        state,
        user.id,
        caller,
        kind::TFA_ENABLED,
        record.state.mode.as_str(),
    )
    .await;
    tracing::info!(user = %user.name, mode = record.state.mode.as_str(), "2FA enabled");
    Ok(no_store(json!({"tfa": recovery})))
}
