//! `PUT /:pkg` and `PUT /:pkg/-rev/:rev`: several npm commands share these routes, so the body
//! decides what is meant: publish, star, owner
//! change, deprecation and the first step of an unpublish all `PUT` the package document. Each meaning has its own handler file.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::api::packages::{deprecate, owners, publish, star, unpublish};
use crate::authn::caller::Caller;
use crate::authz;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::npm::packument::rev_string;
use crate::state::AppState;

/// What a package document PUT means.
#[derive(Debug, PartialEq, Eq)]
pub enum Meaning {
    /// A body with attachments: a publish (also npm 5–9's merged retry after a 409).
    Publish,
    /// Only `users` besides `_id`/`_rev`: star or unstar.
    Star,
    /// Only `maintainers` besides `_id`/`_rev`: owner add or rm.
    Owners,
    /// A full document: unpublish of versions or deprecation, decided against the stored state.
    Document,
}

/// Classifies a PUT body.
pub fn classify(doc: &Map<String, Value>) -> Option<Meaning> {
    let attachments = doc
        .get("_attachments")
        .and_then(Value::as_object)
        .is_some_and(|a| !a.is_empty());
    if attachments {
        return Some(Meaning::Publish);
    }
    if doc.contains_key("versions") {
        return Some(Meaning::Document);
    }
    let other = |allowed: &[&str]| doc.keys().all(|k| allowed.contains(&k.as_str()));
    if doc.contains_key("maintainers") && other(&["_id", "_rev", "name", "maintainers"]) {
        return Some(Meaning::Owners);
    }
    if doc.contains_key("users") && other(&["_id", "_rev", "name", "users"]) {
        return Some(Meaning::Star);
    }
    None
}

/// Checks an optimistic-concurrency revision (from the URL or the body's `_rev`).
pub fn check_rev(name: &str, current: i64, given: Option<&str>) -> ApiResult<()> {
    match given {
        Some(r) if r != rev_string(name, current) => Err(ApiError::conflict(
            "Document update conflict: the package changed since it was read. Try again.",
        )),
        _ => Ok(()),
    }
}

/// Handles a PUT to a package document.
pub async fn put(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    name: &str,
    url_rev: Option<String>,
) -> ApiResult<Response> {
    caller.require_user()?;
    let bytes = read_body(headers, body, state.config.max_body_size.0 as usize).await?;
    let doc: Value = parse_json(&bytes)?;
    let Value::Object(doc) = doc else {
        return Err(ApiError::bad_request("Expected a JSON object"));
    };
    for key in ["_id", "name"] {
        if let Some(v) = doc.get(key)
            && v.as_str() != Some(name)
        {
            return Err(ApiError::bad_request(format!(
                "The document's {key} does not match the package name in the URL ({name})"
            )));
        }
    }
    let rev = url_rev.or_else(|| doc.get("_rev").and_then(Value::as_str).map(str::to_owned));
    match classify(&doc) {
        Some(Meaning::Publish) => publish::publish(state, caller, name, doc).await,
        Some(Meaning::Star) => star::star(state, caller, name, &doc).await,
        Some(Meaning::Owners) => owners::set(state, caller, name, &doc, rev.as_deref()).await,
        Some(Meaning::Document) => {
            // Which change it is depends on the stored versions: read them as the caller may.
            let stored = authz::reader(state, caller)?.package_doc(name).await?;
            let versions = doc
                .get("versions")
                .and_then(Value::as_object)
                .ok_or_else(|| ApiError::bad_request("versions must be an object"))?;
            if stored
                .versions
                .iter()
                .any(|v| !versions.contains_key(&v.version))
            {
                unpublish::remove_versions(state, caller, stored, versions, rev.as_deref()).await
            } else {
                deprecate::apply(state, caller, stored, versions, rev.as_deref()).await
            }
        }
        None => Err(ApiError::bad_request(
            "Unrecognised package update: expected a publish, an owner change, a star, \
             a deprecation or an unpublish",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn classifies_bodies() {
        assert_eq!(
            classify(&obj(
                json!({"_id":"a","versions":{},"_attachments":{"a-1.0.0.tgz":{}}})
            )),
            Some(Meaning::Publish)
        );
        assert_eq!(
            classify(&obj(json!({"_id":"a","_rev":"1-a","users":{"bob":true}}))),
            Some(Meaning::Star)
        );
        assert_eq!(
            classify(&obj(json!({"_id":"a","_rev":"1-a","maintainers":[]}))),
            Some(Meaning::Owners)
        );
        assert_eq!(
            classify(&obj(
                json!({"_id":"a","_rev":"1-a","versions":{},"users":{}})
            )),
            Some(Meaning::Document)
        );
        assert_eq!(classify(&obj(json!({"_id":"a","_attachments":{}}))), None);
        assert_eq!(
            classify(&obj(json!({"_id":"a","maintainers":[],"evil":1}))),
            None
        );
    }

    #[test]
    fn revs_are_checked() {
        assert!(check_rev("a", 3, None).is_ok());
        assert!(check_rev("a", 3, Some(&rev_string("a", 3))).is_ok());
        assert!(check_rev("a", 3, Some(&rev_string("a", 2))).is_err());
    }
}
