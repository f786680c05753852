//! npm's browser flows, the npm side: `POST /-/v1/login` opens a login handshake (npm ≥ 9 runs
//! `npm login` this way by default) and `GET /-/v1/done/:id` is what npm polls, for logins and
//! web-confirmed one-time passwords alike.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use tessera_store::{HandshakeKind, HandshakePoll};

use crate::api::base_url;
use crate::authn::api_tokens;
use crate::authn::caller::Caller;
use crate::authn::handshakes;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::read_body;
use crate::services::security_log::{self, kind};
use crate::services::tokens;
use crate::state::AppState;

/// `POST /-/v1/login` (`{}` for `npm login`, `{"create": true}` for `npm adduser`).
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    if !state.config.web.browser_login {
        return Err(ApiError::not_found_msg(
            "Web login is not available on this registry; use username and password",
        ));
    }
    // Anyone may open a handshake: each address gets a budget of them.
    state
        .anonymous_rows
        .spend(caller.ip, state.clock.now_ms())?;
    let bytes = read_body(&headers, body, 16 * 1024).await?;
    let body: Map<String, Value> = serde_json::from_slice(&bytes).unwrap_or_default();
    let create = body.get("create").and_then(Value::as_bool).unwrap_or(false);
    let urls = handshakes::open(
        &state,
        HandshakeKind::Login,
        None,
        create,
        false,
        &base_url(&state, &headers),
    )
    .await?;
    Ok(Json(
        json!({"loginUrl": urls.browser, "doneUrl": urls.done}),
    ))
}

fn pending() -> Response {
    let mut res = (StatusCode::ACCEPTED, Json(json!({}))).into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /-/v1/done/:id`: 202 with `Retry-After` until the browser decides, then `{"token"}` once.
/// A login mints a login token; a web OTP hands out a one-time code that npm sends back in
/// `npm-otp`.
pub async fn done(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let poll = state
        .store
        .poll_handshake(&api_tokens::hash(&id), state.clock.now_ms())
        .await?;
    let token = match poll {
        HandshakePoll::Pending => return Ok(pending()),
        // npm falls back to the password prompt on a 4xx here.
        HandshakePoll::Gone => {
            return Err(ApiError::not_found_msg(
                "This login request has expired or was already used",
            ));
        }
        HandshakePoll::Denied => {
            return Err(ApiError::forbidden(
                "The request was refused in the browser",
            ));
        }
        HandshakePoll::Approved {
            kind: HandshakeKind::Login,
            user_id,
            ..
        } => {
            let user = state
                .store
                .user_by_id(user_id)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let (value, _) = tokens::issue_login_token(&state, &user).await?;
            security_log::record(&state, user.id, &caller, kind::LOGIN, "browser login").await;
            value
        }
        HandshakePoll::Approved {
            kind: HandshakeKind::Otp,
            id,
            ..
        } => {
            let code = handshakes::new_web_otp();
            state
                .store
                .set_handshake_result(id, &api_tokens::hash(&code))
                .await?;
            code
        }
    };
    let mut res = Json(json!({"token": token})).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
