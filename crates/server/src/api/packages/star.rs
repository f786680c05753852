//! `npm star` / `npm unstar` (`PUT /:pkg` with `users`) and `npm stars`
//! (`GET /-/_view/starredByUser`). Only the caller's own star is ever changed.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::{self, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Stars or unstars for the caller.
pub async fn star(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: &Map<String, Value>,
) -> ApiResult<Response> {
    let user = caller.require_user()?;
    let done = authz::enforce(state, caller, Operation::Star, Target::Package(name)).await?;
    let pkg = done.doc.ok_or_else(ApiError::not_found)?.package;
    let starred = body
        .get("users")
        .and_then(Value::as_object)
        .is_some_and(|u| {
            u.get(&user.name)
                .is_some_and(|v| v.as_bool() != Some(false))
        });
    state
        .store
        .set_star(pkg.id, user.id, starred, state.clock.now_ms())
        .await?;
    state.packuments.invalidate(name);
    Ok(Json(json!({"ok": true, "id": name})).into_response())
}

/// Query of `npm stars`.
#[derive(Deserialize)]
pub struct StarQuery {
    key: Option<String>,
}

/// `GET /-/_view/starredByUser?key="alice"`.
pub async fn starred_by_user(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StarQuery>,
) -> ApiResult<Json<Value>> {
    let reader = authz::reader(&state, &caller)?;
    let key = q.key.unwrap_or_default();
    let name: String = serde_json::from_str(&key).unwrap_or(key);
    let Some(user) = state.store.user_by_name(&name).await? else {
        return Ok(Json(json!({"rows": []})));
    };
    let mut rows = Vec::new();
    for p in state.store.starred_by(user.id).await? {
        if reader.package(&p).await.is_ok() {
            rows.push(json!({"value": p}));
        }
    }
    Ok(Json(json!({"rows": rows})))
}
