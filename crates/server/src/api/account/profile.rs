//! `npm profile get|set`: `/-/npm/v1/user`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use tessera_store::{Profile, User};

use crate::api::account::two_factor;
use crate::authn::caller::Caller;
use crate::authn::passwords;
use crate::authz::gate::Operation;
use crate::authz::{self, Target};
use crate::clock::iso8601;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::npm::names;
use crate::services::accounts::{self, Channel, Client, ProfileChange};
use crate::state::AppState;

/// The profile as npm reads it.
pub fn profile_json(user: &User) -> Value {
    let s = |v: &Option<String>| json!(v.clone().unwrap_or_default());
    json!({
        "name": user.name,
        "email": user.email,
        "email_verified": user.email_verified,
        "tfa": match user.two_factor {
            None => json!(false),
            Some(t) => json!({"pending": t.status.is_pending(), "mode": t.status.mode().as_str()}),
        },
        "cidr_whitelist": null,
        "fullname": s(&user.profile.fullname),
        "homepage": s(&user.profile.homepage),
        "freenode": s(&user.profile.freenode),
        "twitter": s(&user.profile.twitter),
        "github": s(&user.profile.github),
        "created": iso8601(user.created_at),
        "updated": iso8601(user.updated_at),
    })
}

/// `GET /-/npm/v1/user`.
pub async fn get(State(_state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let user = crate::authz::account_reader(&caller)?;
    Ok(Json(profile_json(user)))
}

fn field(
    body: &Map<String, Value>,
    k: &str,
    current: &Option<String>,
) -> ApiResult<Option<String>> {
    match body.get(k) {
        None => Ok(current.clone()),
        Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > 1024 => Err(ApiError::bad_request(format!(
            "{k} is longer than 1024 characters"
        ))),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Some(_) => Err(ApiError::bad_request(format!(
            "{k} must be a string or null"
        ))),
    }
}

/// `POST /-/npm/v1/user`: profile fields and the password (2FA changes arrive here too).
pub async fn post(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let user = caller.require_account()?;
    let bytes = read_body(&headers, body, 64 * 1024).await?;
    let body: Map<String, Value> = parse_json(&bytes)?;
    if let Some(tfa) = body.get("tfa") {
        return two_factor::handle(&state, &caller, user, tfa).await;
    }

    let profile = Profile {
        fullname: field(&body, "fullname", &user.profile.fullname)?,
        homepage: field(&body, "homepage", &user.profile.homepage)?,
        twitter: field(&body, "twitter", &user.profile.twitter)?,
        github: field(&body, "github", &user.profile.github)?,
        freenode: field(&body, "freenode", &user.profile.freenode)?,
    };
    let email = match body.get("email") {
        None => user.email.clone(),
        Some(Value::String(e)) => {
            names::validate_email(e.trim()).map_err(ApiError::bad_request)?;
            e.trim().to_owned()
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "email must be an email address; it cannot be removed",
            ));
        }
    };
    let new_password = match body.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => {
            let old = p.get("old").and_then(Value::as_str).unwrap_or("");
            let new = p.get("new").and_then(Value::as_str).unwrap_or("");
            authz::precheck(&state, &caller, Operation::PasswordChange, Target::Account).await?;
            if two_factor::check_password(&state, &caller, user, Some(old))
                .await
                .is_err()
            {
                return Err(ApiError::unauthorized(
                    "Your current password is incorrect.",
                ));
            }
            passwords::check_policy(new, state.config.min_password_length)?;
            Some(new.to_owned())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "password must be {\"old\": …, \"new\": …}",
            ));
        }
    };
    let fields_changed = profile != user.profile || email != user.email;
    if new_password.is_some() {
        authz::enforce(&state, &caller, Operation::PasswordChange, Target::Account).await?;
    }
    if fields_changed {
        authz::enforce(&state, &caller, Operation::ProfileWrite, Target::Account).await?;
    }
    let ip = caller.ip.to_string();
    let client = Client {
        ip: &ip,
        user_agent: &caller.user_agent,
    };
    if let Some(p) = new_password {
        accounts::change_password(&state, user, &p, client).await?;
    }
    let updated = if fields_changed {
        let change = ProfileChange { email, profile };
        accounts::update_profile(&state, user, change, client, Channel::Npm).await?
    } else {
        state
            .store
            .user_by_id(user.id)
            .await?
            .ok_or_else(ApiError::not_found)?
    };
    Ok(Json(profile_json(&updated)).into_response())
}
