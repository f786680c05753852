//! `npm owner add|rm`: `PUT /:pkg/-rev/:rev` with the complete new `maintainers` list.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::api::packages::writes::check_rev;
use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::{self, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Applies an owner change.
pub async fn set(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: &Map<String, Value>,
    rev: Option<&str>,
) -> ApiResult<Response> {
    let permit =
        authz::authorize(state, caller, Operation::OwnerChange, Target::Package(name)).await?;
    let doc = permit.doc().ok_or_else(ApiError::not_found)?;
    let list = body
        .get("maintainers")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("maintainers must be an array"))?;
    let mut wanted: Vec<String> = Vec::new();
    for m in list {
        let n = match m {
            Value::String(s) => s.as_str(),
            Value::Object(o) => o.get("name").and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        if n.is_empty() {
            return Err(ApiError::bad_request("Every maintainer needs a name"));
        }
        if !wanted.iter().any(|w| w == n) {
            wanted.push(n.to_owned());
        }
    }
    if wanted.is_empty() {
        return Err(ApiError::bad_request(
            "A package must keep at least one maintainer",
        ));
    }
    let mut add = Vec::new();
    for n in &wanted {
        if doc.maintainers.iter().any(|m| &m.name == n) {
            continue;
        }
        let u = state.store.user_by_name(n).await?.ok_or_else(|| {
            ApiError::not_found_msg(format!("User {n:?} does not exist on this registry"))
        })?;
        add.push(u.id);
    }
    let remove: Vec<i64> = doc
        .maintainers
        .iter()
        .filter(|m| !wanted.contains(&m.name))
        .map(|m| m.id)
        .collect();
    let (id, current) = (doc.package.id, doc.package.rev);
    permit.confirm(state, caller).await?;
    check_rev(name, current, rev)?;
    if !add.is_empty() || !remove.is_empty() {
        state
            .store
            .change_maintainers(id, &add, &remove, state.clock.now_ms())
            .await?;
        state.packuments.invalidate(name);
        tracing::info!(
            package = name,
            added = add.len(),
            removed = remove.len(),
            "owners changed"
        );
    }
    Ok(Json(json!({"ok": true, "id": name})).into_response())
}
