//! `npm trust`: a package's trusted publishers (the CI identities that may publish it through
//! an OIDC exchange). Listing, adding and revoking need a maintainer with 2FA and a second
//! factor; a publisher may be configured before the package exists (a pending publisher, seen
//! and revoked only by whoever configured it).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use tessera_store::{StoreError, TrustedPublisher};

use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::{self, Permit, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::npm::ids;
use crate::services::security_log::{self, kind};
use crate::state::AppState;
use crate::trust::publishers;

/// The most trusted publishers one request adds.
const MAX_PER_REQUEST: usize = 10;

/// A publisher as npm shows it.
fn shown(p: &TrustedPublisher) -> Value {
    json!({
        "id": p.id,
        "type": p.kind,
        "claims": serde_json::from_str::<Value>(&p.claims).unwrap_or(Value::Null),
        "permissions": serde_json::from_str::<Value>(&p.permissions).unwrap_or(Value::Null),
    })
}

/// The publishers of `pkg` the permit's holder may see: all of an existing package's (they
/// maintain it), or the pending ones they configured.
async fn visible_to(
    state: &AppState,
    permit: &Permit,
    caller: &Caller,
    pkg: &str,
) -> ApiResult<Vec<TrustedPublisher>> {
    let all = state.store.trusted_publishers(pkg).await?;
    if permit.doc().is_some() {
        return Ok(all);
    }
    let me = caller.require_account()?.id;
    Ok(all.into_iter().filter(|p| p.created_by == me).collect())
}

/// `GET /-/package/:pkg/trust`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
) -> ApiResult<Json<Value>> {
    let permit = authz::authorize(
        &state,
        &caller,
        Operation::TrustChange,
        Target::Package(&pkg),
    )
    .await?;
    let shown_list: Vec<Value> = visible_to(&state, &permit, &caller, &pkg)
        .await?
        .iter()
        .map(shown)
        .collect();
    permit.confirm(&state, &caller).await?;
    Ok(Json(Value::Array(shown_list)))
}

/// `POST /-/package/:pkg/trust` with `[config, …]` (or one config).
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let permit = authz::authorize(
        &state,
        &caller,
        Operation::TrustChange,
        Target::Package(&pkg),
    )
    .await?;
    let bytes = read_body(&headers, body, 64 * 1024).await?;
    let body: Value = parse_json(&bytes)?;
    let items = match body {
        Value::Array(a) => a,
        o @ Value::Object(_) => vec![o],
        _ => {
            return Err(ApiError::bad_request(
                "The body must be a trust configuration or a list of them",
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_PER_REQUEST {
        return Err(ApiError::bad_request(format!(
            "Send 1 to {MAX_PER_REQUEST} trust configurations"
        )));
    }
    let mut configs = Vec::with_capacity(items.len());
    for item in &items {
        configs.push(publishers::parse(item, &state.config.oidc.issuers)?);
    }
    let user = caller.require_account()?;
    // A name nobody has yet belongs to whoever configured a pending publisher for it first:
    // another account's would let either take the package the other meant to create.
    if permit.doc().is_none() {
        crate::npm::names::validate_package_name(&pkg).map_err(ApiError::bad_request)?;
        let existing = state.store.trusted_publishers(&pkg).await?;
        if existing.iter().any(|p| p.created_by != user.id) {
            return Err(ApiError::conflict(format!(
                "Another account has a pending trusted publisher for {pkg}. Publish it yourself \
                 first, or ask that account to revoke theirs."
            )));
        }
    }
    // every input is valid: now the second factor
    permit.confirm(&state, &caller).await?;
    let now = state.clock.now_ms();
    let mut added = Vec::with_capacity(configs.len());
    for c in configs {
        let claims: BTreeMap<String, Value> = c.claims.into_iter().collect();
        added.push(TrustedPublisher {
            id: ids::new_uuid(),
            package: pkg.clone(),
            kind: c.kind.as_str().to_owned(),
            claims: serde_json::to_string(&claims).map_err(ApiError::internal)?,
            permissions: serde_json::to_string(&c.permissions).map_err(ApiError::internal)?,
            bound: None,
            created_by: user.id,
            created_at: now,
        });
    }
    // all or none
    match state.store.add_trusted_publishers(&added).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::conflict(format!(
                "This trusted publisher is already configured for {pkg} (nothing was added)"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let mut created = Vec::with_capacity(added.len());
    for p in &added {
        security_log::record(
            &state,
            user.id,
            &caller,
            kind::TRUSTED_PUBLISHER_ADDED,
            format!("{pkg}: {} {}", p.kind, p.claims),
        )
        .await;
        created.push(shown(p));
    }
    Ok((StatusCode::CREATED, Json(Value::Array(created))).into_response())
}

/// `DELETE /-/package/:pkg/trust/:id`.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((pkg, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let permit = authz::authorize(
        &state,
        &caller,
        Operation::TrustChange,
        Target::Package(&pkg),
    )
    .await?;
    let found = visible_to(&state, &permit, &caller, &pkg)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| {
            ApiError::not_found_msg(format!("{pkg} has no trusted publisher with id {id}"))
        })?;
    permit.confirm(&state, &caller).await?;
    if !state
        .store
        .remove_trusted_publisher(&pkg, &found.id)
        .await?
    {
        return Err(ApiError::not_found_msg(format!(
            "{pkg} has no trusted publisher with id {id}"
        )));
    }
    let user = caller.require_account()?;
    security_log::record(
        &state,
        user.id,
        &caller,
        kind::TRUSTED_PUBLISHER_REMOVED,
        format!("{pkg}: {} {}", found.kind, found.claims),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
