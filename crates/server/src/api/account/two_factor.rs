//! `npm profile enable-2fa` / `disable-2fa`: the `tfa` key of `POST /-/npm/v1/user` (`{tfa: {password,
//! mode}}` to start or change, `{tfa: {otp}}` to confirm, `{tfa: {password, mode: "disable"}}`). The state machine itself is in `crate::two_factor::enrolment`.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use tessera_store::{TwoFactorMode, User};

use crate::authn::caller::Caller;
use crate::authz::gate::{self, Operation, TfaMode};
use crate::authz::{self, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::two_factor::enrolment;

pub use crate::two_factor::enrolment::check_password;

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
        Value::Array(codes) => {
            let code = codes.first().and_then(Value::as_str).unwrap_or("");
            let recovery = enrolment::confirm(state, caller, user, code).await?;
            Ok(no_store(json!({"tfa": recovery})))
        }
        Value::Object(o) => change(state, caller, user, o).await,
        _ => Err(ApiError::bad_request(
            "To turn two-factor authentication off, run `npm profile disable-2fa`: it needs your \
             password and a one-time password",
        )),
    }
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
    let op = match (wanted, gate::account_mode(user)) {
        (None, TfaMode::Off | TfaMode::Pending) => Operation::TfaCancelPending,
        (None, _) => Operation::TfaDisable,
        (Some(_), TfaMode::Off | TfaMode::Pending) => Operation::TfaEnable,
        (Some(_), _) => Operation::TfaModeChange,
    };
    authz::precheck(state, caller, op, Target::Account).await?;
    enrolment::check_password(
        state,
        caller,
        user,
        o.get("password").and_then(Value::as_str),
    )
    .await?;
    match (wanted, gate::account_mode(user)) {
        (None, TfaMode::Off) => Ok(Json(json!({"tfa": false})).into_response()),
        (None, TfaMode::Pending) => {
            enrolment::cancel_pending(state, caller, user).await?;
            Ok(Json(json!({"tfa": false})).into_response())
        }
        (None, _) => {
            enrolment::disable(state, caller, user).await?;
            Ok(Json(json!({"tfa": false})).into_response())
        }
        (Some(mode), TfaMode::Off | TfaMode::Pending) => {
            let e = enrolment::start(state, caller, user, mode).await?;
            Ok(no_store(json!({"tfa": e.uri})))
        }
        (Some(mode), _) => {
            enrolment::change_mode(state, caller, user, mode).await?;
            // npm ≥ 11.4 expects the new state; npm ≤ 11.3 prints "mode changed" only for null.
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
