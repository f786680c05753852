//! `npm deprecate` / `npm undeprecate`: `PUT /:pkg` with the whole document, of which only the
//! versions' `deprecated` fields are taken. An empty message removes the deprecation.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use tessera_store::PackageDoc;

use crate::api::packages::writes::check_rev;
use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::{self, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The deprecation changes a document asks for: `(version, new message or None)`.
pub fn changes(
    doc: &PackageDoc,
    versions: &Map<String, Value>,
) -> ApiResult<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for v in &doc.versions {
        let Some(body) = versions.get(&v.version) else {
            continue;
        };
        let wanted = match body.get("deprecated") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) if s.len() > 1024 => {
                return Err(ApiError::bad_request(
                    "Deprecation messages are limited to 1024 characters",
                ));
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::bad_request("deprecated must be a string")),
        };
        if wanted != v.deprecated {
            out.push((v.version.clone(), wanted));
        }
    }
    Ok(out)
}

/// Applies a deprecation document.
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    doc: PackageDoc,
    versions: &Map<String, Value>,
    rev: Option<&str>,
) -> ApiResult<Response> {
    let permit = authz::authorize(
        state,
        caller,
        Operation::Deprecate,
        Target::Package(&doc.package.name),
    )
    .await?;
    let changes = changes(&doc, versions)?;
    permit.confirm(state, caller).await?;
    check_rev(&doc.package.name, doc.package.rev, rev)?;
    if !changes.is_empty() {
        state
            .store
            .set_deprecations(doc.package.id, &changes, state.clock.now_ms())
            .await?;
        state.packuments.invalidate(&doc.package.name);
    }
    Ok(Json(json!({"ok": true, "id": doc.package.name})).into_response())
}
