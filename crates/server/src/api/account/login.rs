//! Accounts from the CLI: `npm adduser` / `npm login` by the CouchDB-style user document
//! (`PUT /-/user/org.couchdb.user:NAME`), the user lookup `npm owner add` does, and
//! `npm logout`. The browser login is in `web_login.rs`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use tessera_store::User;

use crate::authn::api_tokens;
use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::policy;
use crate::authz::{self, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::services::accounts::{self, Channel, Client, SignInError, SignUp, SignUpError};
use crate::services::security_log::{self, kind};
use crate::services::tokens;
use crate::state::AppState;
use crate::two_factor::second_factor::Satisfied;

const USER_PREFIX: &str = "org.couchdb.user:";

/// The body npm sends to log in or sign up.
#[derive(Deserialize)]
struct CouchUser {
    name: Option<String>,
    password: Option<String>,
    email: Option<String>,
}

/// `PUT /-/user/org.couchdb.user:NAME`.
pub async fn couch_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_doc): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    couch_login(&state, &caller, &user_doc, &headers, body).await
}

/// `PUT /-/user/org.couchdb.user:NAME/-rev/REV`: the old CouchDB retry path, handled alike.
pub async fn couch_put_rev(
    State(state): State<AppState>,
    caller: Caller,
    Path((user_doc, _rev)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    couch_login(&state, &caller, &user_doc, &headers, body).await
}

fn wrong_credentials() -> ApiError {
    ApiError::unauthorized("Incorrect username or password.")
}

async fn couch_login(
    state: &AppState,
    caller: &Caller,
    user_doc: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let name = user_doc
        .strip_prefix(USER_PREFIX)
        .ok_or_else(ApiError::not_found)?;
    let bytes = read_body(headers, body, 64 * 1024).await?;
    let body: CouchUser = parse_json(&bytes)?;
    if body.name.as_deref() != Some(name) {
        return Err(ApiError::bad_request(
            "The user name in the body does not match the URL",
        ));
    }
    let password = body
        .password
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("A password is required"))?;

    let ip = caller.ip.to_string();
    let client = Client {
        ip: &ip,
        user_agent: &caller.user_agent,
    };
    let existing = state.store.user_by_name(name).await?;
    if existing.is_some() || body.email.is_none() {
        let user = accounts::check_password(state, existing, &password, client, Channel::Npm)
            .await
            .map_err(|e| match e {
                SignInError::Wrong => wrong_credentials(),
                SignInError::Locked => ApiError::forbidden(
                    "This account is locked. Contact your registry administrator.",
                ),
                SignInError::Refused(e) => e,
            })?;
        // The second factor is checked only now, after the password.
        let how = authz::enforce(state, caller, Operation::Login, Target::AccountOf(&user))
            .await?
            .second_factor;
        let detail = Satisfied::describe(how);
        security_log::record(state, user.id, caller, kind::LOGIN, detail).await;
        return login_reply(state, &user, StatusCode::CREATED).await;
    }
    let input = SignUp {
        name: name.to_owned(),
        email: body.email.unwrap_or_default(),
        password,
        admin: false,
        invitation: None,
    };
    let user = match accounts::sign_up(state, input, Channel::Npm).await {
        Ok(u) => u,
        Err(SignUpError::Invalid(m)) => return Err(ApiError::bad_request(m)),
        Err(SignUpError::Closed) => {
            return Err(ApiError::forbidden(
                "Sign-up is closed on this registry. Ask an administrator to create your account.",
            ));
        }
        Err(SignUpError::NotInvited) => {
            return Err(ApiError::forbidden(
                "Sign-up on this registry is by invitation: create the account by opening the \
                 invitation link an administrator sent you (tessera admin invite), then run \
                 `npm login`.",
            ));
        }
        // Someone else's name: answered as a failed login, as npm expects.
        Err(SignUpError::NameTaken) => return Err(wrong_credentials()),
        Err(SignUpError::Failed(e)) => return Err(e),
    };
    security_log::record(state, user.id, caller, kind::LOGIN, "account created").await;
    login_reply(state, &user, StatusCode::CREATED).await
}

async fn login_reply(state: &AppState, user: &User, status: StatusCode) -> ApiResult<Response> {
    let now = state.clock.now_ms();
    let (value, _token) = tokens::issue_login_token(state, user).await?;
    let body = json!({
        "ok": true,
        "id": format!("{USER_PREFIX}{}", user.name),
        "rev": format!("1-{}", &api_tokens::hash(&user.name)[..16]),
        "token": value,
    });
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    // During a registry-wide 2FA grace period, npm prints this as `npm notice …`.
    if let Some(text) = policy::current(state).await?.grace_notice(user, now)
        && let Ok(v) = axum::http::HeaderValue::from_str(&text)
    {
        res.headers_mut().insert("npm-notice", v);
    }
    Ok(res)
}

/// `GET /-/user/org.couchdb.user:NAME`: a user's public name and email.
pub async fn couch_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_doc): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::authz::reader(&state, &caller)?;
    let name = user_doc
        .strip_prefix(USER_PREFIX)
        .ok_or_else(ApiError::not_found)?;
    let user = state
        .store
        .user_by_name(name)
        .await?
        .ok_or_else(|| ApiError::not_found_msg("User not found"))?;
    Ok(Json(
        json!({"_id": format!("{USER_PREFIX}{}", user.name), "name": user.name, "email": user.email}),
    ))
}

/// `DELETE /-/user/token/:token` (`npm logout`): revokes the token. Only its owner can, and
/// an unknown token is already logged out.
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> ApiResult<Json<Value>> {
    let hash = api_tokens::hash(&token);
    let Some((stored, owner)) = state.store.token_by_hash(&hash).await? else {
        return Ok(Json(json!({"ok": true})));
    };
    let presented_same = caller
        .presented_token_hash
        .as_deref()
        .is_some_and(|h| api_tokens::same_hash(h, &stored.token_hash));
    if !presented_same {
        let same_owner = caller.user.as_ref().is_some_and(|u| u.id == owner.id);
        if !same_owner {
            return Err(ApiError::forbidden("You can only log out your own tokens"));
        }
        authz::enforce(
            &state,
            &caller,
            Operation::Logout,
            Target::AccountOf(&owner),
        )
        .await
        .map(|a| a.second_factor)?;
    }
    state.store.delete_token(owner.id, &hash).await?;
    tracing::info!(user = %owner.name, "logged out");
    Ok(Json(json!({"ok": true})))
}
