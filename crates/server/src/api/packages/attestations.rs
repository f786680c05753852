//! `GET /-/npm/v1/attestations/<name>@<version>`: a version's attestations, which
//! `npm audit signatures` fetches from the packument's `dist.attestations.url` (always from the
//! registry it installs from) and verifies with Sigstore. A version published here has the
//! registry's publish attestation (when the registry logs them) and its verified provenance
//! bundle, if any; a proxied version has its uplink's document, passed through.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::base_url;
use crate::authn::caller::Caller;
use crate::authz;
use crate::http::error::{ApiError, ApiResult};
use crate::npm::names;
use crate::state::AppState;

/// `GET /-/npm/v1/attestations/{*spec}`.
pub async fn attestations(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(spec): Path<String>,
) -> ApiResult<Response> {
    let (name, version) = split_spec(&spec).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{spec:?} is not <name>@<version> (a version number, not a range or tag)"
        ))
    })?;
    let reader = authz::reader(&state, &caller)?;
    // only what anyone may read is left to shared caches
    let mut shared = !state.config.read_requires_auth;
    let none = || ApiError::not_found_msg(format!("{name}@{version} has no attestations"));
    let body = match reader.package_doc(&name).await {
        // a merged package's upstream versions carry the uplink's attestations
        Ok(doc) if doc.version(&version).is_none() && state.uplinks.merges(&name) => state
            .uplinks
            .merged_attestations(&name, &version)
            .await?
            .ok_or_else(none)?,
        Ok(doc) => {
            if doc.version(&version).is_none() {
                return Err(ApiError::not_found_msg(format!(
                    "{name}@{version} is not published"
                )));
            }
            shared &= doc.package.access == tessera_store::Access::Public;
            // the registry's publish attestation first, as registry.npmjs.org lists them
            let mut list = Vec::new();
            if let Some(a) = state
                .store
                .version_publish_attestation(&name, &version)
                .await?
            {
                list.push(crate::publish_attestation::document_entry(&a)?);
            }
            if let Some(p) = state.store.version_provenance(&name, &version).await? {
                let bundle: Value = serde_json::from_str(&p.bundle).map_err(ApiError::internal)?;
                list.push(json!({"predicateType": p.predicate_type, "bundle": bundle}));
            }
            if list.is_empty() {
                return Err(none());
            }
            bytes::Bytes::from(json!({ "attestations": list }).to_string())
        }
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND && state.uplinks.enabled() => state
            .uplinks
            .proxied_attestations(&state, &name, &version, &base_url(&state, &headers))
            .await?
            .ok_or_else(none)?,
        Err(e) => return Err(e),
    };
    let cache = if shared {
        "public, max-age=300"
    } else {
        "private, max-age=300"
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response())
}

/// `<name>@<version>` (a scoped name's `/` may come as `%2f`): a valid name and an exact
/// version.
fn split_spec(spec: &str) -> Option<(String, String)> {
    let spec = spec.replace("%2f", "/").replace("%2F", "/");
    let at = spec.rfind('@').filter(|&i| i > 0)?;
    let (name, version) = (&spec[..at], &spec[at + 1..]);
    names::validate_package_name(name).ok()?;
    semver::Version::parse(version).ok()?;
    Some((name.to_owned(), version.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_a_name_and_an_exact_version() {
        assert_eq!(
            split_spec("@acme/x@1.0.0"),
            Some(("@acme/x".into(), "1.0.0".into()))
        );
        assert_eq!(
            split_spec("@acme%2fx@1.0.0-rc.1"),
            Some(("@acme/x".into(), "1.0.0-rc.1".into()))
        );
        assert_eq!(
            split_spec("left-pad@1.3.0"),
            Some(("left-pad".into(), "1.3.0".into()))
        );
        for bad in [
            "left-pad",
            "@acme/x",
            "left-pad@^1.0.0",
            "left-pad@latest",
            "../x@1.0.0",
            "@1.0.0",
        ] {
            assert_eq!(split_spec(bad), None, "{bad}");
        }
    }
}
