//! The read path: packuments (full and abbreviated), single versions, and tarballs.
//!
//! Packuments are rendered once per package revision and served from the cache as bytes, with
//! an ETag for `If-None-Match` revalidation.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::api::base_url;
use crate::authn::caller::Caller;
use crate::authz;
use crate::http::error::{ApiError, ApiResult};
use crate::npm::names::bare_name;
use crate::npm::packument::{self, Part, Rendered, TarballRef};
use crate::state::AppState;
use crate::uplinks::Entry;

const CORGI: &str = "application/vnd.npm.install-v1+json";

/// The rendered packument of `name` for `base`, with `part` made, from the cache or freshly
/// built.
///
/// With a shared database (several instances), a cached rendering is served only after the
/// database confirms it is still the package's current revision: another instance may have
/// published since, and a read must never be staler than the last completed write.
pub async fn rendered(
    state: &AppState,
    name: &str,
    base: &str,
    part: Part,
) -> ApiResult<Option<Arc<Rendered>>> {
    let (hit, _) = state.packuments.get(name, base);
    if let Some(r) = hit {
        let current = !state.store.shared()
            || state.store.package_revision(name).await? == Some((r.package_id, r.rev));
        if current {
            if r.has(part) {
                return Ok(Some(r));
            }
            // the first request for this part: make it from the same revision
            let Some(doc) = state.store.package_doc(name).await? else {
                return Ok(None);
            };
            if (doc.package.id, doc.package.rev) == (r.package_id, r.rev) {
                let added = r.fill(&doc, part);
                state.packuments.grew(name, &r, added);
                return Ok(Some(r));
            }
            // written meanwhile: serve what was read, cache nothing (the writer invalidated)
            let fresh = packument::render(&doc, base);
            fresh.fill(&doc, part);
            return Ok(Some(Arc::new(fresh)));
        }
        state.packuments.invalidate(name);
    }
    // A miss: one rendering per package at a time. Requests that missed together (a popular
    // package just published) wait for the first one's rendering instead of each loading and
    // rendering the whole package: the memory and time of one, not of every connection.
    let _rendering = state.renders.lock(name).await;
    let (hit, latest) = state.packuments.get(name, base);
    if let Some(r) = hit
        && r.has(part)
        && (!state.store.shared()
            || state.store.package_revision(name).await? == Some((r.package_id, r.rev)))
    {
        return Ok(Some(r));
    }
    let epoch = latest;
    let Some(doc) = state.store.package_doc(name).await? else {
        return Ok(None);
    };
    let r = Arc::new(packument::render(&doc, base));
    r.fill(&doc, part);
    state.packuments.put(name, epoch, r.clone());
    Ok(Some(r))
}

/// The rendering of a package the caller may read, or 404; with the uplink's entry when the
/// package is proxied.
///
/// A local package always wins: the uplinks are asked only after the store has no package of
/// that name (and, for a proxied rendering served from memory, only while the local cache's
/// epoch for the name shows that no write happened since that was checked). Under a merge rule
/// a local package is served merged with the uplink's (unless `for_write`: the document npm
/// edits and sends back is the local one), or alone when no uplink answers.
async fn readable(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    name: &str,
    part: Part,
    for_write: bool,
) -> ApiResult<Readable> {
    let reader = authz::reader(state, caller)?;
    let base = base_url(state, headers);
    let proxied = state.uplinks.enabled();
    let epoch = if proxied {
        let (hit, epoch) = state.packuments.get(name, &base);
        if hit.is_none()
            && !state.store.shared()
            && let Some(e) = state
                .uplinks
                .fresh_entry(name, &base, epoch, state.clock.now_ms())
        {
            return Ok(Readable::proxied(e));
        }
        epoch
    } else {
        0
    };
    let Some(r) = rendered(state, name, &base, part).await? else {
        // a merge rule's package unpublished here is not served from the uplink alone: its
        // numbers used here would come back from there
        let unpublished_fork = proxied
            && state.uplinks.merges(name)
            && state.store.unpublished_name(name).await?.is_some();
        if proxied
            && !unpublished_fork
            && let Some(e) = Box::pin(state.uplinks.packument(state, name, &base, epoch)).await?
        {
            return Ok(Readable::proxied(e));
        }
        return Err(ApiError::not_found());
    };
    if !reader.sees(name, r.access, &r.maintainer_ids) {
        return Err(ApiError::not_found());
    }
    if proxied && !for_write && state.uplinks.merges(name) {
        match Box::pin(state.uplinks.packument(state, name, &base, epoch)).await {
            Ok(Some(e)) => {
                let merged = Box::pin(state.uplinks.merged(state, name, &r, &e)).await?;
                return Ok(Readable {
                    r: merged,
                    upstream: Some(e),
                    unreachable: None,
                });
            }
            Ok(None) => {}
            // the local versions are served whatever the uplink's state, marked stale
            Err(e) => {
                tracing::warn!(package = name, error = %e.message, "serving the local half of a merged package");
                return Ok(Readable {
                    r,
                    upstream: None,
                    unreachable: Some(e),
                });
            }
        }
    }
    Ok(Readable {
        r,
        upstream: None,
        unreachable: None,
    })
}

/// What a read serves.
struct Readable {
    /// The rendering.
    r: Arc<Rendered>,
    /// The uplink's entry, for a proxied or merged package.
    upstream: Option<Arc<Entry>>,
    /// A merged package whose uplink could not be asked: only its local half is served.
    unreachable: Option<ApiError>,
}

impl Readable {
    fn proxied(e: Arc<Entry>) -> Readable {
        Readable {
            r: e.rendered.clone(),
            upstream: Some(e),
            unreachable: None,
        }
    }

    /// Whether what is served may be out of date (a stale proxied copy, or a merged package's
    /// local half alone).
    fn stale(&self) -> bool {
        self.unreachable.is_some() || self.upstream.as_ref().is_some_and(|e| e.is_stale())
    }
}

fn wants_corgi(headers: &HeaderMap, query: &str) -> bool {
    if for_write(query) {
        return false;
    }
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains(CORGI))
}

/// Whether npm asks for the document it will edit and send back (`?write=true`).
fn for_write(query: &str) -> bool {
    query.split('&').any(|kv| kv == "write=true")
}

/// Whether the client takes gzip (npm sends `accept-encoding: gzip,deflate`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|e| {
                let mut parts = e.split(';');
                let name = parts.next().unwrap_or("").trim();
                let q0 = parts.any(|p| p.trim().replace(' ', "") == "q=0");
                (name.eq_ignore_ascii_case("gzip") || name == "*") && !q0
            })
        })
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        })
}

fn cache_control(r: &Rendered) -> HeaderValue {
    match r.access {
        tessera_store::Access::Public => HeaderValue::from_static("public, no-cache"),
        tessera_store::Access::Restricted => HeaderValue::from_static("private, no-cache"),
    }
}

/// `GET /:pkg`: the packument, abbreviated when npm asks for it (never with `?write=true`).
pub async fn packument(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    query: &str,
    name: &str,
) -> ApiResult<Response> {
    let corgi = wants_corgi(headers, query);
    let part = if corgi { Part::Abbreviated } else { Part::Full };
    let read = readable(state, caller, headers, name, part, for_write(query)).await?;
    let stale = read.stale();
    let r = read.r;
    let (form, ctype) = if corgi {
        (r.abbreviated(), CORGI)
    } else {
        (r.full(), "application/json")
    };
    let form = form.ok_or_else(|| ApiError::internal("a packument form was not made"))?;
    // a small body goes uncompressed (nginx's `gzip_min_length`): gzip would save a hundred
    // bytes or so and cost a compressor's set-up, about as much as the rest of a first read
    let gzip = accepts_gzip(headers) && form.body.len() >= packument::GZIP_MIN_BYTES;
    let etag = if gzip {
        &form.etag_gzip_header
    } else {
        &form.etag_header
    };
    let mut res = if not_modified(headers, etag.to_str().unwrap_or("")) {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let body = if gzip {
            let (bytes, added) = form.gzip();
            state.packuments.grew(name, &r, added);
            bytes
        } else {
            form.body.clone()
        };
        let mut res = Response::new(Body::from(body));
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        if gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        res
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, cache_control(&r));
    if stale {
        h.insert(
            header::WARNING,
            HeaderValue::from_static("110 tessera \"Response is Stale\""),
        );
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding, Authorization"),
    );
    Ok(res)
}

/// `GET /:pkg/:version-or-tag`: one version's manifest.
pub async fn version(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    name: &str,
    spec: &str,
) -> ApiResult<Response> {
    let read = readable(state, caller, headers, name, Part::Versions, false).await?;
    let r = read.r;
    let v = r.dist_tags.get(spec).map(String::as_str).unwrap_or(spec);
    let doc = match (r.version_doc(v), read.unreachable) {
        (Some(doc), _) => doc,
        // maybe one of the uplink's versions: say why it cannot be told
        (None, Some(e)) => return Err(e),
        (None, None) => {
            return Err(ApiError::not_found_msg(format!(
                "version not found: {spec}"
            )));
        }
    };
    let mut res = Response::new(Body::from(doc.clone()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, cache_control(&r));
    Ok(res)
}

/// The version a tarball file name stands for: `<bare name>-<version>.tgz`.
pub fn version_of_file<'a>(name: &str, file: &'a str) -> Option<&'a str> {
    file.strip_prefix(bare_name(name))?
        .strip_prefix('-')?
        .strip_suffix(".tgz")
}

/// `GET /:pkg/-/:file`: the tarball bytes.
pub async fn tarball(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    name: &str,
    file: &str,
) -> ApiResult<Response> {
    let read = readable(state, caller, headers, name, Part::Meta, false).await?;
    let (r, upstream, unreachable) = (read.r, read.upstream, read.unreachable);
    let version = version_of_file(name, file).ok_or_else(ApiError::not_found)?;
    // a local version first (a merged package has both kinds)
    let local = r.tarballs.get(version);
    let (blob, t) = match upstream.filter(|_| local.is_none()) {
        // of a merged package, only the upstream versions it serves
        Some(_) if r.package_id >= 0 && r.version_doc(version).is_none() => {
            return Err(ApiError::not_found_msg(format!(
                "version not found: {version}"
            )));
        }
        Some(e) => {
            // from memory when it can be, else the whole way (boxed: a large future)
            let t = match state.uplinks.cached_tarball(state, version, &e) {
                Some(t) => t,
                None => Box::pin(state.uplinks.tarball(state, name, version, &e)).await?,
            };
            let r = TarballRef {
                sha512: t.sha512,
                size: t.size,
            };
            (t.body, std::borrow::Cow::Owned(r))
        }
        None => {
            let t = match (local, unreachable) {
                (Some(t), _) => t,
                // maybe one of the uplink's versions, which cannot be fetched now
                (None, Some(e)) => return Err(e),
                (None, None) => return Err(ApiError::not_found()),
            };
            // the memory cache first, then the store (boxed: a large future, seldom awaited)
            let blob = match state.blobs.cached(&t.sha512) {
                Some(bytes) => tessera_store::BlobBody::Whole(bytes),
                None => Box::pin(state.blobs.open(&t.sha512))
                    .await?
                    .ok_or_else(|| {
                        ApiError::internal(format!(
                            "tarball {} of {name}@{version} is missing from the blob store",
                            t.sha512
                        ))
                    })?,
            };
            (blob, std::borrow::Cow::Borrowed(t))
        }
    };
    let body = match blob {
        tessera_store::BlobBody::Whole(bytes) => Body::from(bytes),
        tessera_store::BlobBody::Stream(chunks) => Body::from_stream(chunks),
        tessera_store::BlobBody::File(file, len) => match crate::http::sendable::file(file, len) {
            Ok(whole) => Body::from(whole),
            Err(file) => Body::from_stream(tessera_store::file_chunks(file, len)),
        },
    };
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(t.size));
    let mut etag = String::with_capacity(34);
    etag.push('"');
    etag.push_str(&t.sha512[..32.min(t.sha512.len())]);
    etag.push('"');
    h.insert(
        header::ETAG,
        HeaderValue::try_from(etag).map_err(ApiError::internal)?,
    );
    h.insert(
        header::CACHE_CONTROL,
        match r.access {
            tessera_store::Access::Public => {
                HeaderValue::from_static("public, max-age=31536000, immutable")
            }
            tessera_store::Access::Restricted => {
                HeaderValue::from_static("private, max-age=31536000, immutable")
            }
        },
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip,deflate")));
        assert!(accepts_gzip(&h("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(&h("*")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn tarball_file_names() {
        assert_eq!(version_of_file("demo", "demo-1.0.0.tgz"), Some("1.0.0"));
        assert_eq!(
            version_of_file("@a/demo", "demo-1.0.0-beta.1.tgz"),
            Some("1.0.0-beta.1")
        );
        assert_eq!(version_of_file("demo", "other-1.0.0.tgz"), None);
        assert_eq!(version_of_file("demo", "../../etc/passwd"), None);
    }
}
