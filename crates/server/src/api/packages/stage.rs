//! `npm stage`: a version uploaded without a second factor (from CI, or by a maintainer who
//! wants to look again) waits on the stage until a maintainer approves it with one, or rejects
//! it. A staged version holds its number, and cannot be published over.
//!
//! - `POST /-/stage/package/:pkg` (`npm stage publish`): a publish body; `201 {message, stageId}`.
//! - `GET /-/stage?package&page&perPage` (`npm stage list`): `{items, total}`.
//! - `GET /-/stage/:id` (`npm stage view`), `GET /-/stage/:id/tarball` (`npm stage download`).
//! - `POST /-/stage/:id/approve` (`npm stage approve`): publishes it; a second factor always.
//! - `DELETE /-/stage/:id` (`npm stage reject`): removes it; a second factor always.
//!
//! A staged version is seen by the maintainers of its package (for a name nobody has yet, by the
//! account it was staged for) and by nobody else: any other caller gets 404, as for an unknown
//! id.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use tessera_store::{Access, StagedVersion, StoreError, UserId};

use crate::api::packages::publish::{self, Upload};
use crate::authn::caller::{Caller, CredentialKind};
use crate::authz::gate::{Denial, Operation};
use crate::authz::{self, Target, token_scope};
use crate::clock::iso8601;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::npm::ids;
use crate::npm::names;
use crate::npm::tarball::Digests;
use crate::services::security_log::{self, kind};
use crate::state::AppState;

/// The most items one page of `npm stage list` holds.
const MAX_PER_PAGE: i64 = 100;

/// How many staged versions a token limited to some packages is filtered from.
const MAX_FILTERED: i64 = 10_000;

/// A staged version as npm shows it.
fn shown(s: &StagedVersion) -> Value {
    json!({
        "id": s.id,
        "packageName": s.package_name,
        "version": s.version,
        "tag": s.tag,
        "createdAt": iso8601(s.created_at),
        "actor": s.actor,
        "actorType": s.actor_type,
        "access": s.access.map(Access::as_str),
        "shasum": s.shasum,
        "integrity": s.integrity,
    })
}

/// Who is staging, as `npm stage view` shows it: the account, or the CI identity.
fn actor(caller: &Caller, account: &str) -> (String, &'static str) {
    match caller.kind {
        CredentialKind::OidcToken => (
            caller
                .token
                .as_ref()
                .and_then(|t| t.description.clone())
                .unwrap_or_else(|| "trusted publishing".into()),
            "oidc",
        ),
        CredentialKind::PublishToken | CredentialKind::AutomationToken => {
            (account.to_owned(), "token")
        }
        _ => (account.to_owned(), "user"),
    }
}

/// Records `what` (done by `by`, when it is an approval or a rejection) in the security logs of
/// the package's maintainers (or, for a new name, of the account it was staged for).
async fn log_to_maintainers(
    state: &AppState,
    caller: &Caller,
    s: &StagedVersion,
    what: &str,
    by: Option<&str>,
) {
    let mut users: Vec<UserId> = match state.store.package_doc(&s.package_name).await {
        Ok(Some(d)) => d.maintainers.iter().map(|m| m.id).collect(),
        _ => Vec::new(),
    };
    users.push(s.owner_id);
    users.sort_unstable();
    users.dedup();
    let mut detail = format!(
        "{}@{} ({}, staged by {} {})",
        s.package_name, s.version, s.id, s.actor_type, s.actor
    );
    if let Some(by) = by {
        detail.push_str(&format!(", by {by}"));
    }
    for u in users {
        security_log::record(state, u, caller, what, detail.clone()).await;
    }
}

/// `POST /-/stage/package/:pkg`.
pub async fn stage(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // as a publish: an account the registry limits to setting up 2FA cannot stage either
    let account = caller.require_user()?.clone();
    names::validate_package_name(&name)
        .map_err(|e| ApiError::bad_request(format!("Invalid package name {name:?}: {e}")))?;
    let permit =
        authz::authorize(&state, &caller, Operation::Stage, Target::Package(&name)).await?;
    let bytes = read_body(&headers, body, state.config.max_body_size.0 as usize).await?;
    let doc: Value = parse_json(&bytes)?;
    let Value::Object(doc) = doc else {
        return Err(ApiError::bad_request("Expected a JSON object"));
    };
    for key in ["_id", "name"] {
        if let Some(v) = doc.get(key)
            && v.as_str() != Some(name.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "The document's {key} does not match the package name in the URL ({name})"
            )));
        }
    }
    let upload = publish::prepare(&state, &name, &doc, permit.doc()).await?;
    if upload.tags.len() > 1 {
        return Err(ApiError::bad_request(
            "A staged version takes exactly one dist-tag",
        ));
    }
    permit.confirm(&state, &caller).await?;
    let (actor, actor_type) = actor(&caller, &account.name);
    let staged = StagedVersion {
        id: ids::new_uuid(),
        package_name: name.clone(),
        version: upload.version.clone(),
        tag: upload.tags[0].clone(),
        access: upload.requested_access,
        manifest: upload.manifest,
        readme: upload.readme,
        tarball_sha512: upload.digests.sha512_hex.clone(),
        shasum: upload.digests.shasum.clone(),
        integrity: upload.digests.integrity.clone(),
        size: upload.bytes.len() as i64,
        description: upload.description,
        keywords: upload.keywords,
        owner_id: account.id,
        actor,
        actor_type: actor_type.into(),
        created_at: state.clock.now_ms(),
        provenance: upload.provenance,
    };
    state
        .blobs
        .put(&upload.digests.sha512_hex, upload.bytes.clone())
        .await?;
    match state.store.stage_version(&staged).await {
        Ok(()) => {}
        Err(StoreError::VersionExists) => {
            return Err(ApiError::conflict(format!(
                "You cannot publish over the previously published or staged versions: {}.",
                staged.version
            )));
        }
        Err(StoreError::NotMaintainer) => {
            return Err(ApiError::forbidden(format!(
                "You do not have permission to stage \"{name}\". Are you logged in as the correct user?"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    // as after a publish: a concurrent unpublish may have collected the blob before our row
    if !state.blobs.exists(&upload.digests.sha512_hex).await? {
        state
            .blobs
            .put(&upload.digests.sha512_hex, upload.bytes)
            .await?;
    }
    log_to_maintainers(&state, &caller, &staged, kind::VERSION_STAGED, None).await;
    tracing::info!(package = %name, version = %staged.version, id = %staged.id, "staged");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": format!(
                "{name}@{} is staged; a maintainer approves it with `npm stage approve {}`",
                staged.version, staged.id
            ),
            "stageId": staged.id,
        })),
    )
        .into_response())
}

/// The account reading staged versions: any credential of an account but a trusted-publishing
/// token (which only publishes).
fn stage_reader(state: &AppState, caller: &Caller) -> ApiResult<UserId> {
    authz::reader(state, caller)?;
    if caller.kind == CredentialKind::OidcToken {
        return Err(Denial::OidcTokenPublishesOnly.error());
    }
    Ok(caller.require_account()?.id)
}

/// The staged version `id` if the caller may see it; 404 otherwise, as for an unknown id.
async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<StagedVersion> {
    let viewer = stage_reader(state, caller)?;
    let not_found = || ApiError::not_found_msg("No staged version with this id");
    if !ids::is_uuid(id) {
        return Err(not_found());
    }
    // seen by the maintainers (for a new name, the account it was staged for: the store's
    // rule, the one the listing uses), through a token that may read the package privately
    let s = state
        .store
        .staged_version_seen_by(&id.to_ascii_lowercase(), viewer)
        .await?
        .filter(|s| token_scope::may_read_private(caller.token.as_ref(), &s.package_name))
        .ok_or_else(not_found)?;
    Ok(s)
}

/// The query of `GET /-/stage`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only this package's.
    package: Option<String>,
    /// The page, from 0.
    page: Option<i64>,
    /// Items per page (at most 100).
    #[serde(rename = "perPage")]
    per_page: Option<i64>,
}

/// `GET /-/stage`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let viewer = stage_reader(&state, &caller)?;
    let per_page = q.per_page.unwrap_or(MAX_PER_PAGE).clamp(1, MAX_PER_PAGE);
    let page = q.page.unwrap_or(0).max(0);
    let package = q.package.as_deref().filter(|p| !p.is_empty());
    let limited = !token_scope::reads_private_everywhere(caller.token.as_ref());
    let (items, total) = if limited {
        // filtered before paging, so the counts say nothing about other packages
        let (all, _) = state
            .store
            .staged_versions(viewer, package, 0, MAX_FILTERED)
            .await?;
        let mine: Vec<StagedVersion> = all
            .into_iter()
            .filter(|s| token_scope::may_read_private(caller.token.as_ref(), &s.package_name))
            .collect();
        let total = mine.len() as i64;
        let items = mine
            .into_iter()
            .skip(
                page.saturating_mul(per_page)
                    .try_into()
                    .unwrap_or(usize::MAX),
            )
            .take(per_page as usize)
            .collect();
        (items, total)
    } else {
        state
            .store
            .staged_versions(viewer, package, page.saturating_mul(per_page), per_page)
            .await?
    };
    Ok(Json(json!({
        "items": items.iter().map(shown).collect::<Vec<_>>(),
        "total": total,
    })))
}

/// `GET /-/stage/:id`.
pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = find(&state, &caller, &id).await?;
    Ok(Json(shown(&s)))
}

/// `GET /-/stage/:id/tarball`.
pub async fn tarball(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let s = find(&state, &caller, &id).await?;
    let (bytes, _) = staged_tarball(&state, &s).await?;
    let mut res = bytes.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// The staged tarball, checked against its address.
async fn staged_tarball(state: &AppState, s: &StagedVersion) -> ApiResult<(Bytes, Digests)> {
    let bytes = state.blobs.get(&s.tarball_sha512).await?.ok_or_else(|| {
        ApiError::internal(format!("staged tarball {} missing", s.tarball_sha512))
    })?;
    let digests = Digests::of(&bytes);
    if digests.sha512_hex != s.tarball_sha512 {
        return Err(ApiError::internal(format!(
            "staged tarball {} does not match its address",
            s.tarball_sha512
        )));
    }
    Ok((bytes, digests))
}

/// The door for approving or rejecting `s`: a maintainer (for a new name, the account it was
/// staged for) with a second factor, whatever the account's mode.
async fn decide(state: &AppState, caller: &Caller, s: &StagedVersion) -> ApiResult<()> {
    authz::enforce(
        state,
        caller,
        Operation::StageDecide,
        Target::Package(&s.package_name),
    )
    .await
    .map(drop)
}

/// `POST /-/stage/:id/approve`.
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let s = find(&state, &caller, &id).await?;
    let (bytes, digests) = staged_tarball(&state, &s).await?;
    // the package's rules and trusted publishers as they are now, before the second factor
    let requires = state
        .store
        .package(&s.package_name)
        .await?
        .is_some_and(|p| p.provenance_required);
    let provenance = publish::checked_provenance(
        &state,
        &s.package_name,
        &s.version,
        s.provenance.as_ref().map(|p| p.bundle.as_str()),
        &bytes,
        requires,
    )
    .await?;
    decide(&state, &caller, &s).await?;
    let approver = caller.require_account()?.clone();
    let upload = Upload {
        version: s.version.clone(),
        bytes,
        digests,
        tags: vec![s.tag.clone()],
        requested_access: s.access,
        access: s
            .access
            .unwrap_or_else(|| publish::default_access(&state, &s.package_name)),
        manifest: s.manifest.clone(),
        readme: s.readme.clone(),
        description: s.description.clone(),
        keywords: s.keywords.clone(),
        provenance,
    };
    publish::store_version(
        &state,
        &s.package_name,
        upload,
        approver.id,
        Some(s.id.clone()),
    )
    .await?;
    log_to_maintainers(
        &state,
        &caller,
        &s,
        kind::STAGED_VERSION_APPROVED,
        Some(&approver.name),
    )
    .await;
    tracing::info!(package = %s.package_name, version = %s.version, id = %s.id, approver = %approver.name, "staged version approved");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "ok": true,
            "id": s.package_name,
            "version": s.version,
            "message": format!("{}@{} is published", s.package_name, s.version),
        })),
    )
        .into_response())
}

/// `DELETE /-/stage/:id`.
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let s = find(&state, &caller, &id).await?;
    decide(&state, &caller, &s).await?;
    let rejecter = caller.require_account()?.name.clone();
    if !state.store.remove_staged(&s.id).await? {
        return Err(ApiError::not_found_msg(
            "This staged version was approved or rejected meanwhile",
        ));
    }
    super::unpublish::collect_blobs(&state, vec![s.tarball_sha512.clone()]).await;
    log_to_maintainers(
        &state,
        &caller,
        &s,
        kind::STAGED_VERSION_REJECTED,
        Some(&rejecter),
    )
    .await;
    tracing::info!(package = %s.package_name, version = %s.version, id = %s.id, "staged version rejected");
    Ok(StatusCode::NO_CONTENT.into_response())
}
