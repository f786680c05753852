//! `npm dist-tag ls|add|rm`: `/-/package/:pkg/dist-tags[/:tag]`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::{self, Permit, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::npm::names;
use crate::npm::versions::clean_version;
use crate::state::AppState;

/// `GET /-/package/:pkg/dist-tags`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
) -> ApiResult<Json<Value>> {
    let doc = authz::reader(&state, &caller)?.package_doc(&pkg).await?;
    let tags: Map<String, Value> = doc
        .dist_tags
        .into_iter()
        .map(|(t, v)| (t, Value::String(v)))
        .collect();
    Ok(Json(Value::Object(tags)))
}

/// Through the door for a dist-tag change: the permit and the package.
async fn writable(
    state: &AppState,
    caller: &Caller,
    pkg: &str,
) -> ApiResult<(Permit, tessera_store::PackageDoc)> {
    let permit = authz::authorize(
        state,
        caller,
        Operation::DistTagChange,
        Target::Package(pkg),
    )
    .await?;
    let doc = permit.doc().cloned().ok_or_else(ApiError::not_found)?;
    Ok((permit, doc))
}

/// `PUT /-/package/:pkg/dist-tags/:tag` with the version as a JSON string.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path((pkg, tag)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (permit, doc) = writable(&state, &caller, &pkg).await?;
    names::validate_tag(&tag).map_err(ApiError::bad_request)?;
    let bytes = read_body(&headers, body, 64 * 1024).await?;
    let raw: Value = parse_json(&bytes)?;
    let raw = raw.as_str().ok_or_else(|| {
        ApiError::bad_request("The body must be a version string, like \"1.0.0\"")
    })?;
    let version = clean_version(raw).map_err(ApiError::bad_request)?;
    if doc.version(&version).is_none() {
        return Err(ApiError::not_found_msg(format!(
            "{pkg}@{version} is not published"
        )));
    }
    permit.confirm(&state, &caller).await?;
    state
        .store
        .set_dist_tag(doc.package.id, &tag, &version, state.clock.now_ms())
        .await?;
    state.packuments.invalidate(&pkg);
    Ok(Json(json!({"ok": true, "id": pkg, tag: version})))
}

/// `DELETE /-/package/:pkg/dist-tags/:tag`.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((pkg, tag)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (permit, doc) = writable(&state, &caller, &pkg).await?;
    if tag == "latest" {
        return Err(ApiError::bad_request(
            "The latest dist-tag cannot be removed; point it at another version instead",
        ));
    }
    if doc.tag(&tag).is_none() {
        return Err(ApiError::not_found_msg(format!(
            "{pkg} has no dist-tag {tag:?}"
        )));
    }
    permit.confirm(&state, &caller).await?;
    state
        .store
        .remove_dist_tag(doc.package.id, &tag, state.clock.now_ms())
        .await?;
    state.packuments.invalidate(&pkg);
    Ok(Json(json!({"ok": true, "id": pkg})))
}
