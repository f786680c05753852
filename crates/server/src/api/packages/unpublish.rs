//! `npm unpublish`: one version (`PUT /:pkg/-rev/:rev` without it, then
//! `DELETE /:pkg/-/:file/-rev/:rev`), or the whole package (`DELETE /:pkg/-rev/:rev`).
//!
//! Only removals are taken from the client's document; the dist-tags are recomputed here.
//! Unpublished version numbers are retired and can never be published again.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use tessera_store::PackageDoc;

use crate::api::packages::read::version_of_file;
use crate::api::packages::writes::check_rev;
use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::{self, Permit, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::npm::versions;
use crate::state::AppState;

/// Through the door for an unpublish of `name`.
async fn through_door(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Permit> {
    authz::authorize(state, caller, Operation::Unpublish, Target::Package(name)).await
}

/// Deletes tarballs no version refers to any more. Failures are logged: an orphan blob is
/// harmless, and the metadata change has already committed.
///
/// A publish of the same bytes elsewhere may commit a reference between our check and our
/// delete. So the blob is read first, and after the delete the references are checked again:
/// if one appeared, the blob is put back. The publish side checks that its blob exists after
/// its commit. Whichever order the steps run in, one side sees the other.
pub(crate) async fn collect_blobs(state: &AppState, blobs: Vec<String>) {
    for sha in blobs {
        if let Err(e) = collect_blob(state, &sha).await {
            tracing::warn!(error = %e, blob = %sha, "could not delete unpublished tarball");
        }
    }
}

async fn collect_blob(state: &AppState, sha: &str) -> Result<(), tessera_store::StoreError> {
    if state.store.blob_in_use(sha).await? {
        return Ok(());
    }
    let Some(bytes) = state.blobs.get(sha).await? else {
        return Ok(());
    };
    state.blobs.delete(sha).await?;
    if state.store.blob_in_use(sha).await? {
        state.blobs.put(sha, bytes).await?;
    }
    Ok(())
}

/// The dist-tags left after removing versions: tags to removed versions go, and `latest` moves to
/// the highest remaining version.
pub fn remaining_tags(doc: &PackageDoc, removed: &[String]) -> Vec<(String, String)> {
    let left: Vec<&str> = doc
        .versions
        .iter()
        .map(|v| v.version.as_str())
        .filter(|v| !removed.iter().any(|r| r == v))
        .collect();
    let mut tags: Vec<(String, String)> = doc
        .dist_tags
        .iter()
        .filter(|(_, v)| left.contains(&v.as_str()))
        .cloned()
        .collect();
    if !tags.iter().any(|(t, _)| t == "latest")
        && let Some(h) = versions::highest(left.iter().copied())
    {
        tags.push(("latest".into(), h.to_owned()));
    }
    tags
}

/// Removes `removed` from the package as `doc` shows it. The removal, the remaining dist-tags
/// and whether the package goes entirely are computed from `doc`, so the store applies them
/// only if the package is still at `doc`'s revision: a change committed since (a publish, a
/// tag move, another unpublish) makes this a 409 instead of being undone or leaving a dist-tag
/// on a removed version.
async fn remove(state: &AppState, doc: PackageDoc, removed: Vec<String>) -> ApiResult<Response> {
    let name = doc.package.name.clone();
    let (id, rev) = (doc.package.id, doc.package.rev);
    let now = state.clock.now_ms();
    let result = if removed.len() == doc.versions.len() {
        state.store.delete_package(id, rev, now).await
    } else {
        let tags = remaining_tags(&doc, &removed);
        state
            .store
            .remove_versions(id, rev, &removed, &tags, now)
            .await
    };
    let blobs = match result {
        Ok(b) => b,
        Err(tessera_store::StoreError::Conflict) => {
            return Err(ApiError::conflict(
                "Document update conflict: the package changed while it was being unpublished. \
                 Try again.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    state.packuments.invalidate(&name);
    tracing::info!(package = %name, versions = ?removed, "unpublished");
    collect_blobs(state, blobs).await;
    Ok(Json(json!({"ok": true, "id": name})).into_response())
}

/// A document PUT that drops versions.
pub async fn remove_versions(
    state: &AppState,
    caller: &Caller,
    doc: PackageDoc,
    kept: &Map<String, Value>,
    rev: Option<&str>,
) -> ApiResult<Response> {
    let permit = through_door(state, caller, &doc.package.name).await?;
    if let Some(extra) = kept.keys().find(|v| doc.version(v).is_none()) {
        // a document read before a racing unpublish: a conflict to retry, not a bad request
        check_rev(&doc.package.name, doc.package.rev, rev)?;
        return Err(ApiError::bad_request(format!(
            "Version {extra} is not published; an unpublish can only remove versions"
        )));
    }
    permit.confirm(state, caller).await?;
    check_rev(&doc.package.name, doc.package.rev, rev)?;
    let removed: Vec<String> = doc
        .versions
        .iter()
        .filter(|v| !kept.contains_key(&v.version))
        .map(|v| v.version.clone())
        .collect();
    remove(state, doc, removed).await
}

/// `DELETE /:pkg/-rev/:rev`: the whole package.
pub async fn delete_package(
    state: &AppState,
    caller: &Caller,
    name: &str,
    rev: &str,
) -> ApiResult<Response> {
    let doc = authz::enforce(state, caller, Operation::Unpublish, Target::Package(name))
        .await?
        .doc
        .ok_or_else(ApiError::not_found)?;
    check_rev(name, doc.package.rev, Some(rev).filter(|r| !r.is_empty()))?;
    let all = doc.versions.iter().map(|v| v.version.clone()).collect();
    remove(state, doc, all).await
}

/// `DELETE /:pkg/-/:file/-rev/:rev`: the tarball of a version, usually already removed from
/// the document by the PUT before it.
pub async fn delete_tarball(
    state: &AppState,
    caller: &Caller,
    name: &str,
    file: &str,
    _rev: &str,
) -> ApiResult<Response> {
    let permit = through_door(state, caller, name).await?;
    let version = version_of_file(name, file)
        .ok_or_else(ApiError::not_found)?
        .to_owned();
    // npm sends this after the document PUT that already removed the version: nothing left to
    // do, so no one-time password is spent on it (a web-OTP code is good for one write).
    if permit.doc().is_none_or(|d| d.version(&version).is_none()) {
        return Ok(Json(json!({"ok": true})).into_response());
    }
    let doc = permit
        .confirm(state, caller)
        .await?
        .doc
        .ok_or_else(ApiError::not_found)?;
    remove(state, doc, vec![version]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::{Access, Package, VersionRecord};

    fn doc(vs: &[&str], tags: &[(&str, &str)]) -> PackageDoc {
        PackageDoc {
            package: Package {
                id: 1,
                name: "a".into(),
                access: Access::Public,
                rev: 1,
                description: None,
                keywords: vec![],
                policy: tessera_store::PackageTfaPolicy::None,
                staged_publishes: false,
                provenance_required: false,
                created_at: 0,
                modified_at: 0,
            },
            versions: vs
                .iter()
                .map(|v| VersionRecord {
                    version: (*v).into(),
                    manifest: "{}".into(),
                    readme: None,
                    tarball_sha512: String::new(),
                    shasum: String::new(),
                    integrity: String::new(),
                    size: 0,
                    deprecated: None,
                    publisher: None,
                    published_at: 0,
                    signatures: None,
                    provenance: None,
                    attested: false,
                })
                .collect(),
            dist_tags: tags
                .iter()
                .map(|(t, v)| ((*t).into(), (*v).into()))
                .collect(),
            maintainers: vec![],
            stars: vec![],
        }
    }

    #[test]
    fn latest_moves_to_the_highest_remaining_release() {
        let d = doc(
            &["1.0.0", "1.1.0", "2.0.0-rc.1"],
            &[("latest", "1.1.0"), ("next", "2.0.0-rc.1")],
        );
        let t = remaining_tags(&d, &["1.1.0".into()]);
        assert!(t.contains(&("latest".into(), "1.0.0".into())));
        assert!(t.contains(&("next".into(), "2.0.0-rc.1".into())));
        let t = remaining_tags(&d, &["2.0.0-rc.1".into()]);
        assert_eq!(t, vec![("latest".to_string(), "1.1.0".to_string())]);
    }
}
