//! `npm access`: visibility (`get/set status`), the package's 2FA policy (`set mfa=…`),
//! collaborators, and the packages of a user. Teams and organisations are not offered.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use tessera_store::{Access, Package, PackageTfaPolicy};

use crate::authn::caller::Caller;
use crate::authz::gate::{Operation, PackagePolicy, package_policy};
use crate::authz::{self, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::npm::names::scope_of;
use crate::state::AppState;

fn policy_name(p: &Package) -> &'static str {
    match package_policy(p) {
        PackagePolicy::None => "none",
        PackagePolicy::Publish => "publish",
        PackagePolicy::Automation => "automation",
        PackagePolicy::PublishNoTokens => "publish",
    }
}

/// The `access` field of a request body (`public` or `restricted`), if it has one.
pub fn access_field(body: &Map<String, Value>) -> ApiResult<Option<Access>> {
    match body.get("access") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Access::parse(s).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "access must be \"public\" or \"restricted\", not {s:?}"
            ))
        }),
        Some(_) => Err(ApiError::bad_request("access must be a string")),
    }
}

/// `GET /-/package/:pkg/visibility` → `{"public": bool}`.
pub async fn visibility(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = authz::reader(&state, &caller)?.package(&pkg).await?;
    Ok(Json(json!({"public": p.access == Access::Public})))
}

/// `GET /-/package/:pkg/access`: the current access flags, including the 2FA policy.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = authz::reader(&state, &caller)?.package(&pkg).await?;
    Ok(Json(json!({
        "name": p.name,
        "access": p.access.as_str(),
        "mfa": policy_name(&p),
        "publish_requires_tfa": p.policy.flags().0,
        "automation_token_overrides_tfa": p.policy.flags().1,
        "tokens_refused": p.policy.tokens_refused(),
        "staged_publishes": p.staged_publishes,
        "provenance_required": p.provenance_required,
    })))
}

/// `POST /-/package/:pkg/access` with `{access}` or the 2FA flags.
pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    // The door's refusals first (a hidden package is a 404, a non-maintainer a 403); which
    // change's 2FA rules apply is known once the body is read.
    authz::precheck(
        &state,
        &caller,
        Operation::AccessChange,
        Target::Package(&pkg),
    )
    .await?;
    let bytes = read_body(&headers, body, 64 * 1024).await?;
    let body: Map<String, Value> = parse_json(&bytes)?;
    let access = access_field(&body)?;
    let flag = |k: &str| -> ApiResult<Option<bool>> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be true or false"))),
        }
    };
    let requires = flag("publish_requires_tfa")?;
    let overrides = flag("automation_token_overrides_tfa")?;
    let no_tokens = flag("tokens_refused")?;
    let staged = flag("staged_publishes")?;
    let provenance = flag("provenance_required")?;
    let policy_change = requires.is_some()
        || overrides.is_some()
        || no_tokens.is_some()
        || staged.is_some()
        || provenance.is_some();
    if access.is_none() && !policy_change {
        return Err(ApiError::bad_request(
            "Nothing to change: send access, publish_requires_tfa, \
             automation_token_overrides_tfa, tokens_refused, staged_publishes or \
             provenance_required",
        ));
    }

    if access == Some(Access::Restricted) && scope_of(&pkg).is_none() {
        return Err(ApiError::bad_request(
            "Unscoped packages cannot be made private",
        ));
    }
    // Each change has its own 2FA rules: both pass the door before either asks for the code.
    let mut ops = Vec::new();
    if access.is_some() {
        ops.push(Operation::AccessChange);
    }
    if policy_change {
        ops.push(Operation::PackageMfaChange);
    }
    let mut permits = Vec::new();
    for op in ops {
        permits.push(authz::authorize(&state, &caller, op, Target::Package(&pkg)).await?);
    }
    // the policy it would make, checked before a one-time password is spent on it
    let current = permits
        .last()
        .and_then(|p| p.doc())
        .map(|d| d.package.policy)
        .ok_or_else(ApiError::not_found)?;
    let (r, o) = current.flags();
    let policy = PackageTfaPolicy::from_columns(
        requires.unwrap_or(r),
        overrides.unwrap_or(o),
        no_tokens.unwrap_or(current.tokens_refused()),
    );
    if no_tokens == Some(true) && !policy.tokens_refused() {
        return Err(ApiError::bad_request(
            "tokens_refused needs the package to require 2FA for publishing: \
             npm access set mfa=publish first",
        ));
    }
    let mut p = None;
    for permit in permits {
        p = permit
            .confirm(&state, &caller)
            .await?
            .doc
            .map(|d| d.package);
    }
    let p = p.ok_or_else(ApiError::not_found)?;
    let now = state.clock.now_ms();
    if let Some(a) = access {
        state.store.set_access(p.id, a, now).await?;
    }
    // `npm access set mfa=…` sends only the pair: tokens stay refused while it stays `publish`
    if requires.is_some() || overrides.is_some() || no_tokens.is_some() {
        state.store.set_mfa_policy(p.id, policy, now).await?;
    }
    if let Some(on) = staged {
        state.store.set_staged_publishes(p.id, on, now).await?;
    }
    if let Some(on) = provenance {
        state.store.set_provenance_required(p.id, on, now).await?;
    }
    state.packuments.invalidate(&pkg);
    Ok(Json(json!({"ok": true})))
}

/// `GET /-/package/:pkg/collaborators` → `{"alice": "write"}`.
pub async fn collaborators(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
) -> ApiResult<Json<Value>> {
    let doc = authz::reader(&state, &caller)?.package_doc(&pkg).await?;
    let m: Map<String, Value> = doc
        .maintainers
        .into_iter()
        .map(|m| (m.name, Value::String("write".into())))
        .collect();
    Ok(Json(Value::Object(m)))
}

/// `GET /-/user/:name/package` → `{"<pkg>": "write"}` for the packages the user maintains that
/// the caller may see.
pub async fn user_packages(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let reader = authz::reader(&state, &caller)?;
    let user = state
        .store
        .user_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found_msg("User not found"))?;
    let mut out = Map::new();
    for p in state.store.packages_of(user.id).await? {
        if p.access == Access::Public || reader.package(&p.name).await.is_ok() {
            out.insert(p.name, Value::String("write".into()));
        }
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /-/org/:org/package`: organisations are not offered, so npm falls back to the user's
/// packages on this 404.
pub async fn org_packages(Path(_org): Path<String>) -> ApiError {
    ApiError::not_found_msg("Organizations are not supported by this registry")
}
