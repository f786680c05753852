//! `npm publish`: `PUT /:pkg` with one new version and its tarball in `_attachments`.
//!
//! The registry trusts nothing the client computed: it checks the name and version against the
//! tarball's own package.json, checks the tarball against the integrity npm sent, and computes
//! `dist` itself (npm sends a wrong tarball URL for scoped packages). The tarball is stored,
//! content-addressed, before the metadata commits in one transaction, so a failure at any point
//! leaves at most an unreferenced blob.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use tessera_store::{
    Access, NewVersion, PackageDoc, Provenance, StoreError, UserId, VersionRecord,
};

use crate::authn::caller::Caller;
use crate::authz::gate::Operation;
use crate::authz::{self, Target};
use crate::config::DefaultAccess;
use crate::http::error::{ApiError, ApiResult};
use crate::npm::names::{self, bare_name, scope_of};
use crate::npm::tarball::{self, Digests, TarballLimits};
use crate::npm::versions::clean_version;
use crate::state::AppState;

/// The placeholder npm puts in `readme` when a package has none.
const NO_README: &str = "ERROR: No README data found!";

/// Keys of a version object that the registry owns and never takes from the client.
const SERVER_KEYS: &[&str] = &[
    "_id",
    "dist",
    "readme",
    "_attachments",
    "_npmUser",
    "maintainers",
    "deprecated",
    "_rev",
];

/// A publish body, checked: the one new version, its tarball and what is stored of it.
pub struct Upload {
    /// The version.
    pub version: String,
    /// The tarball.
    pub bytes: Bytes,
    /// Its digests.
    pub digests: Digests,
    /// The dist-tags to point at it (at least `latest`).
    pub tags: Vec<String>,
    /// The visibility asked for with `--access`, if any.
    pub requested_access: Option<Access>,
    /// The visibility a new package gets.
    pub access: Access,
    /// The version object as stored (JSON).
    pub manifest: String,
    /// The README, if any.
    pub readme: Option<String>,
    /// For search.
    pub description: Option<String>,
    /// For search.
    pub keywords: Vec<String>,
    /// The verified provenance bundle, if one was attached.
    pub provenance: Option<Provenance>,
}

/// The visibility a new package gets when its first publish asks for none.
pub fn default_access(state: &AppState, name: &str) -> Access {
    if scope_of(name).is_some() && state.config.scoped_default_access == DefaultAccess::Restricted {
        Access::Restricted
    } else {
        Access::Public
    }
}

/// Handles a publish body.
pub async fn publish(
    state: &AppState,
    caller: &Caller,
    name: &str,
    doc: Map<String, Value>,
) -> ApiResult<Response> {
    let user = caller.require_user()?;
    names::validate_package_name(name)
        .map_err(|e| ApiError::bad_request(format!("Invalid package name {name:?}: {e}")))?;
    // Who may publish (a package the caller cannot see is a 404, as a missing one would be);
    // the second factor is asked once the body has been checked.
    let permit = authz::authorize(state, caller, Operation::Publish, Target::Package(name)).await?;
    let upload = prepare(state, name, &doc, permit.doc()).await?;
    permit.confirm(state, caller).await?;
    let version = upload.version.clone();
    store_version(state, name, upload, user.id, None).await?;
    tracing::info!(package = name, version = %version, user = %user.name, "published");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"ok": true, "success": true, "id": name})),
    )
        .into_response())
}

/// Checks a publish body (`npm publish`, `npm stage publish`) against the package as it is:
/// exactly one new version, named as the package, with a tarball that matches it.
pub async fn prepare(
    state: &AppState,
    name: &str,
    doc: &Map<String, Value>,
    existing: Option<&PackageDoc>,
) -> ApiResult<Upload> {
    // Which version is new: exactly one (npm 5–9's 409 retry sends the merged document).
    let versions = doc
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("A publish must contain a versions object"))?;
    let fresh: Vec<(&String, &Value)> = versions
        .iter()
        .filter(|(v, _)| existing.as_ref().is_none_or(|d| d.version(v).is_none()))
        .collect();
    let (raw_version, manifest) = match fresh.as_slice() {
        [one] => *one,
        [] => {
            let v = versions.keys().next().cloned().unwrap_or_default();
            return Err(ApiError::conflict(format!(
                "You cannot publish over the previously published versions: {v}."
            )));
        }
        _ => {
            return Err(ApiError::bad_request(
                "A publish must contain exactly one new version",
            ));
        }
    };
    let version = clean_version(raw_version).map_err(ApiError::bad_request)?;
    if &version != raw_version {
        return Err(ApiError::bad_request(format!(
            "Version {raw_version:?} is not a clean SemVer version (expected {version:?})"
        )));
    }
    let Value::Object(manifest) = manifest else {
        return Err(ApiError::bad_request("A version must be a JSON object"));
    };
    state
        .uplinks
        .check_merged_version(state, name, &version)
        .await?;
    if manifest.get("name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::bad_request(
            "The version's name does not match the package name",
        ));
    }
    if manifest.get("version").and_then(Value::as_str) != Some(version.as_str()) {
        return Err(ApiError::bad_request(
            "The version's version field does not match its key",
        ));
    }

    // The tarball.
    let attachments = doc
        .get("_attachments")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("A publish must contain _attachments"))?;
    let expected = format!("{name}-{version}.tgz");
    let attachment = attachments
        .iter()
        .find(|(k, _)| k.ends_with(".tgz"))
        .ok_or_else(|| ApiError::bad_request("A publish must attach a .tgz tarball"))?;
    if attachment.0 != &expected && attachment.0 != &format!("{}-{version}.tgz", bare_name(name)) {
        return Err(ApiError::bad_request(format!(
            "Attachment {:?} does not match the version being published (expected {expected:?})",
            attachment.0
        )));
    }
    let data = attachment
        .1
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("The tarball attachment has no data"))?;
    let bytes = data_encoding::BASE64
        .decode(data.as_bytes())
        .map_err(|_| ApiError::bad_request("The tarball attachment is not valid base64"))?;
    if let Some(len) = attachment.1.get("length").and_then(Value::as_u64)
        && len != bytes.len() as u64
    {
        return Err(ApiError::bad_request(format!(
            "The tarball is {} bytes but its attachment says {len}",
            bytes.len()
        )));
    }
    let digests = Digests::of(&bytes);
    let provenance = provenance_of(state, name, &version, attachments, &bytes, existing).await?;
    let dist = manifest.get("dist").and_then(Value::as_object);
    if let Some(sri) = dist
        .and_then(|d| d.get("integrity"))
        .and_then(Value::as_str)
        && !digests.matches_integrity(sri)
    {
        return Err(ApiError::bad_request(
            "Integrity check failed: the tarball does not match dist.integrity",
        ));
    }
    if let Some(sum) = dist.and_then(|d| d.get("shasum")).and_then(Value::as_str)
        && !sum.eq_ignore_ascii_case(&digests.shasum)
    {
        return Err(ApiError::bad_request(
            "Integrity check failed: the tarball does not match dist.shasum",
        ));
    }
    let limits = TarballLimits {
        max_unpacked: state.config.max_unpacked_size.0,
        ..TarballLimits::default()
    };
    let bytes = Bytes::from(bytes);
    let inner = {
        let b = bytes.clone();
        tokio::task::spawn_blocking(move || tarball::read_manifest(&b, limits))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::bad_request(format!("Invalid tarball: {e}")))?
    };
    if inner.get("name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::bad_request(format!(
            "The package.json inside the tarball names {:?}, not {name:?}",
            inner
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("nothing")
        )));
    }
    let inner_version = inner
        .get("version")
        .and_then(Value::as_str)
        .map(clean_version);
    if inner_version != Some(Ok(version.clone())) {
        return Err(ApiError::bad_request(format!(
            "The package.json inside the tarball has version {:?}, not {version:?}",
            inner
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("nothing")
        )));
    }

    // dist-tags: each must point at the new version.
    let mut tags = Vec::new();
    if let Some(t) = doc.get("dist-tags").and_then(Value::as_object) {
        for (tag, v) in t {
            names::validate_tag(tag).map_err(ApiError::bad_request)?;
            if v.as_str() != Some(version.as_str()) {
                if existing.as_ref().is_some_and(|d| d.tag(tag) == v.as_str()) {
                    continue; // an unchanged tag in npm 5–9's merged document
                }
                return Err(ApiError::bad_request(format!(
                    "dist-tag {tag:?} must point at {version}"
                )));
            }
            tags.push(tag.clone());
        }
    }
    if tags.is_empty() {
        tags.push("latest".into());
    }

    // Visibility: only a new package takes it from the body (`--access`).
    let requested = super::access::access_field(doc)?;
    let scoped = scope_of(name).is_some();
    if requested == Some(Access::Restricted) && !scoped {
        return Err(ApiError::bad_request(
            "Unscoped packages cannot be restricted; publish it under a scope (@you/name)",
        ));
    }
    let access = requested.unwrap_or_else(|| default_access(state, name));

    // What is stored of the manifest.
    let readme = manifest
        .get("readme")
        .or_else(|| doc.get("readme"))
        .and_then(Value::as_str)
        .filter(|r| *r != NO_README && !r.is_empty())
        .map(str::to_owned);
    let mut stored = manifest.clone();
    for k in SERVER_KEYS {
        stored.remove(*k);
    }
    crate::npm::packument::drop_private_fields(&mut stored);
    stored.retain(|_, v| !v.is_null());
    let description = stored
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let keywords = match stored.get("keywords") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s
            .split([',', ' '])
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };

    Ok(Upload {
        version,
        bytes,
        digests,
        tags,
        requested_access: requested,
        access,
        manifest: serde_json::to_string(&stored).map_err(ApiError::internal)?,
        readme,
        description,
        keywords,
        provenance,
    })
}

/// The `<name>-<version>.sigstore` attachment `npm publish --provenance` sends, verified (see
/// `provenance`); refuses a publish without one when the registry or the package requires it.
async fn provenance_of(
    state: &AppState,
    name: &str,
    version: &str,
    attachments: &Map<String, Value>,
    tarball: &[u8],
    existing: Option<&PackageDoc>,
) -> ApiResult<Option<Provenance>> {
    let mut bundles = attachments.iter().filter(|(k, _)| k.ends_with(".sigstore"));
    let data = match bundles.next() {
        None => None,
        Some((key, attachment)) => {
            let expected = format!("{name}-{version}.sigstore");
            if key != &expected || bundles.next().is_some() {
                return Err(ApiError::bad_request(format!(
                    "Attachment {key:?} does not match the version being published (expected \
                     one {expected:?})"
                )));
            }
            Some(
                attachment
                    .get("data")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ApiError::bad_request("The provenance attachment has no data")
                    })?,
            )
        }
    };
    let requires = existing.is_some_and(|d| d.package.provenance_required);
    checked_provenance(state, name, version, data, tarball, requires).await
}

/// Verifies a provenance bundle (`data`, as attached) for `name@version` with `tarball`
/// against the package's trusted publishers now; without one, refuses when the registry or
/// the package (`package_requires`) requires provenance. Also used when a staged publish is
/// approved, since the package's rules may have changed since it was staged.
pub async fn checked_provenance(
    state: &AppState,
    name: &str,
    version: &str,
    data: Option<&str>,
    tarball: &[u8],
    package_requires: bool,
) -> ApiResult<Option<Provenance>> {
    let Some(data) = data else {
        if state.config.provenance.required || package_requires {
            let who = if state.config.provenance.required {
                "This registry"
            } else {
                "This package"
            };
            return Err(ApiError::forbidden(format!(
                "{who} requires provenance: publish {name}@{version} from CI with \
                 `npm publish --provenance`"
            )));
        }
        return Ok(None);
    };
    if state.provenance.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This registry cannot verify provenance now: its trust root is unusable (see its log)",
        ));
    }
    let publishers = state.store.trusted_publishers(name).await?;
    let (s, data, name2, version2, tarball) = (
        state.clone(),
        data.to_owned(),
        name.to_owned(),
        version.to_owned(),
        tarball.to_vec(),
    );
    // a package that requires provenance requires it from one of its trusted publishers
    let verified = tokio::task::spawn_blocking(move || {
        s.provenance.as_ref().map(|v| {
            v.verify(
                &data,
                &name2,
                &version2,
                &tarball,
                &publishers,
                package_requires,
            )
        })
    })
    .await
    .map_err(ApiError::internal)?;
    match verified {
        Some(Ok(p)) => Ok(Some(p)),
        Some(Err(crate::provenance::Refusal::TooLarge(n))) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::provenance::Refusal::TooLarge(n).to_string(),
        )),
        Some(Err(e)) => Err(ApiError::bad_request(format!("Provenance refused: {e}"))),
        None => Err(ApiError::internal("no provenance verifier")),
    }
}

/// Stores a checked upload as a published version by `publisher` (approving `staged_id`, if
/// given): the tarball first, then the metadata in one transaction.
pub async fn store_version(
    state: &AppState,
    name: &str,
    upload: Upload,
    publisher: UserId,
    staged_id: Option<String>,
) -> ApiResult<()> {
    let Upload {
        version,
        bytes,
        digests,
        tags,
        access,
        manifest,
        readme,
        description,
        keywords,
        provenance,
        ..
    } = upload;
    state.blobs.put(&digests.sha512_hex, bytes.clone()).await?;
    let now = state.clock.now_ms();
    // the registry signature; a version that cannot be signed now is published unsigned (and
    // signed at the next start), not refused
    let signatures = match state
        .signer
        .sign(
            state.store.as_ref(),
            &state.keys,
            name,
            &version,
            &digests.integrity,
        )
        .await
    {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(package = name, version = %version, error = %e.message,
                "published without a registry signature");
            None
        }
    };
    let new = NewVersion {
        package_name: name.to_owned(),
        access,
        set_access: false,
        version: VersionRecord {
            version: version.clone(),
            manifest,
            readme,
            tarball_sha512: digests.sha512_hex.clone(),
            shasum: digests.shasum.clone(),
            integrity: digests.integrity.clone(),
            size: bytes.len() as i64,
            deprecated: None,
            publisher: None,
            published_at: now,
            signatures: signatures.clone(),
            provenance: None,
            attested: false,
        },
        tags,
        description,
        keywords,
        publisher_id: publisher,
        staged_id,
        provenance,
    };
    let result = state.store.publish(new, now).await;
    state.packuments.invalidate(name);
    match result {
        Ok(published) => {
            super::unpublish::collect_blobs(state, published.dropped_blobs).await;
            crate::signing::resign_if_rotated(state, signatures.as_deref(), now).await;
            // (an unscoped merge rule's name takes from its uplink even when local: its cached
            // copy stays; a scoped one makes its scope local, whose copies go)
            let merged = state.uplinks.merges(name) && names::scope_of(name).is_none();
            if state.uplinks.enabled() && !merged {
                if published.created {
                    // the name (and, for a scoped one, its scope) is local from now on
                    state.uplinks.forget(name);
                    // the publish has happened: a failure here only leaves a cached copy that
                    // is never served (reads check the store first)
                    if let Err(e) = state.store.forget_cached_packument(name).await {
                        tracing::warn!(package = name, error = %e, "cannot drop the cached upstream copy");
                    }
                } else {
                    state.uplinks.watch_local_name(state, name, publisher);
                }
            }
            // An unpublish of another package with the same tarball may have deleted the blob
            // between our put (a no-op when it existed) and our commit: put it back. Together
            // with the unpublish side's re-check after its delete, one of the two always sees
            // the other (`unpublish::collect_blobs`).
            if !state.blobs.exists(&digests.sha512_hex).await? {
                tracing::warn!(blob = %digests.sha512_hex, "tarball deleted by a concurrent unpublish: stored again");
                state.blobs.put(&digests.sha512_hex, bytes.clone()).await?;
            }
            // the registry's own attestation of this publish, when it logs them
            let stored = crate::signing::Stored {
                name,
                version: &version,
                integrity: &digests.integrity,
                sha512: &digests.sha512_hex,
            };
            crate::publish_attestation::after_publish(state, published.package_id, stored, &bytes)
                .await;
            Ok(())
        }
        Err(StoreError::VersionExists) => Err(ApiError::conflict(format!(
            "You cannot publish over the previously published versions: {version}. \
             (A version staged for approval holds its number too: see npm stage list.)"
        ))),
        Err(StoreError::NotMaintainer) | Err(StoreError::Conflict) => {
            Err(ApiError::forbidden(format!(
                "You do not have permission to publish \"{name}\". Are you logged in as the correct user?"
            )))
        }
        Err(StoreError::NotFound) => Err(ApiError::not_found_msg(
            "This staged version was approved or rejected meanwhile",
        )),
        Err(e) => Err(e.into()),
    }
}
