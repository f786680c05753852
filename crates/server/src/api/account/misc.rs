//! `npm ping` and `npm whoami`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::authn::caller::Caller;
use crate::http::error::ApiResult;
use crate::state::AppState;

/// `GET /-/ping` (npm ≤ 10.8 adds `?write=true`).
pub async fn ping() -> Json<Value> {
    Json(json!({}))
}

/// `GET /-/whoami` → `{"username": …}`.
pub async fn whoami(State(_state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let user = caller.require_account()?;
    Ok(Json(json!({"username": user.name})))
}
