//! `npm audit`: `POST /-/npm/v1/security/advisories/bulk` (npm 7 and later) and
//! `POST /-/npm/v1/security/audits/quick` (npm 6), forwarded to the first uplink that serves
//! audits. Names that are local here are taken out first: they are not the public packages of
//! the same name, and their names are not sent out. With no such uplink the answer is "no
//! advisories known", with a notice saying that nothing was checked.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::authn::caller::Caller;
use crate::authz;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{parse_json, read_body};
use crate::npm::names::validate_existing_name;
use crate::state::AppState;
use crate::uplinks::Uplinks;
use crate::uplinks::settings::MergeMode;

/// What npm is told when nothing could be checked.
const NOTHING_CHECKED: &str = "this registry has no advisory source (no uplink serves audits): \
     npm audit found nothing because nothing was checked";

/// Largest audit body accepted, decompressed.
const MAX_AUDIT_BODY: usize = 16 << 20;

/// Most package names one audit request may hold (each is looked up here).
const MAX_AUDIT_NAMES: usize = 20_000;

/// `POST /-/npm/v1/security/advisories/bulk`: `{name: [versions]}` in, `{name: [advisory]}` out.
pub async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let asked = read_request(&state, &caller, &headers, body).await?;
    if asked.len() > MAX_AUDIT_NAMES {
        return Err(ApiError::bad_request(format!(
            "advisories/bulk: more than {MAX_AUDIT_NAMES} packages in one request"
        )));
    }
    for (name, versions) in &asked {
        let ok = versions
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err(ApiError::bad_request(format!(
                "advisories/bulk: {name:?} must map to a list of versions"
            )));
        }
    }
    let Some((audit, client)) = state.uplinks.audit_uplink() else {
        return Ok(nothing_checked(json!({})));
    };
    let mut public = Map::new();
    for (name, versions) in asked {
        if is_public(&state, &name, audit).await? {
            public.insert(name, versions);
        }
    }
    if public.is_empty() {
        return Ok(json_response(StatusCode::OK, Bytes::from_static(b"{}")));
    }
    let body = Bytes::from(serde_json::to_vec(&public).map_err(ApiError::internal)?);
    forward(client, "-/npm/v1/security/advisories/bulk", body).await
}

/// `POST /-/npm/v1/security/audits/quick`: npm 6's whole-tree report.
pub async fn quick(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut tree = read_request(&state, &caller, &headers, body).await?;
    let Some((audit, client)) = state.uplinks.audit_uplink() else {
        let deps = tree
            .get("dependencies")
            .and_then(Value::as_object)
            .map_or(0, Map::len);
        return Ok(nothing_checked(json!({
            "actions": [],
            "advisories": {},
            "muted": [],
            "metadata": {
                "vulnerabilities": {"info": 0, "low": 0, "moderate": 0, "high": 0, "critical": 0},
                "dependencies": deps,
                "devDependencies": 0,
                "optionalDependencies": 0,
                "totalDependencies": deps,
            },
        })));
    };
    let mut budget = MAX_AUDIT_NAMES;
    drop_local(&state, &mut tree, audit, 0, &mut budget).await?;
    // npm 6 sends the project's own name and version too: not the uplink's business
    tree.remove("name");
    tree.remove("version");
    let body = Bytes::from(serde_json::to_vec(&tree).map_err(ApiError::internal)?);
    forward(client, "-/npm/v1/security/audits/quick", body).await
}

/// An audit request as a JSON object, from a caller who may read (anyone, unless reads need a
/// login).
async fn read_request(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Map<String, Value>> {
    authz::reader(state, caller)?;
    parse_json(&decoded(headers, body).await?)
}

/// The body, gunzipped when npm sent it gzipped (npm 7 and later do).
async fn decoded(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let raw = read_body(headers, body, MAX_AUDIT_BODY).await?;
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gzipped {
        return Ok(raw);
    }
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .take(MAX_AUDIT_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("the gzipped body is broken: {e}")))?;
    if out.len() > MAX_AUDIT_BODY {
        return Err(ApiError::too_large(MAX_AUDIT_BODY));
    }
    Ok(Bytes::from(out))
}

/// Whether the audit uplink (index `audit`) answers for `name`: a valid name its rule proxies
/// to that uplink, and not local or claimed here. Other names are not sent out.
async fn is_public(state: &AppState, name: &str, audit: usize) -> ApiResult<bool> {
    let Some(route) = state.uplinks.route(name) else {
        return Ok(false);
    };
    if validate_existing_name(name).is_err() || !route.proxy.contains(&audit) {
        return Ok(false);
    }
    // a merged name is the uplink's package too
    Ok(route.mode == MergeMode::Merge || !Uplinks::claimed_locally(state, name).await?)
}

/// Takes local names out of npm 6's tree (`requires` and nested `dependencies`).
async fn drop_local(
    state: &AppState,
    node: &mut Map<String, Value>,
    audit: usize,
    depth: usize,
    budget: &mut usize,
) -> ApiResult<()> {
    if depth > 64 {
        return Err(ApiError::bad_request("audits/quick: the tree is too deep"));
    }
    let n = node
        .get("requires")
        .and_then(Value::as_object)
        .map_or(0, Map::len)
        + node
            .get("dependencies")
            .and_then(Value::as_object)
            .map_or(0, Map::len);
    *budget = budget.checked_sub(n).ok_or_else(|| {
        ApiError::bad_request(format!(
            "audits/quick: more than {MAX_AUDIT_NAMES} packages in one request"
        ))
    })?;
    if let Some(Value::Object(req)) = node.get_mut("requires") {
        let names: Vec<String> = req.keys().cloned().collect();
        for n in names {
            if !is_public(state, &n, audit).await? {
                req.remove(&n);
            }
        }
    }
    // public packages nested under a local one (not hoisted by npm) move up in its place, so
    // that they are still checked
    let mut orphans: Vec<(String, Value)> = Vec::new();
    if let Some(Value::Object(deps)) = node.get_mut("dependencies") {
        let names: Vec<String> = deps.keys().cloned().collect();
        for n in names {
            if !is_public(state, &n, audit).await? {
                if let Some(Value::Object(mut local)) = deps.remove(&n) {
                    local.remove("requires");
                    Box::pin(drop_local(state, &mut local, audit, depth + 1, budget)).await?;
                    if let Some(Value::Object(nested)) = local.remove("dependencies") {
                        orphans.extend(nested);
                    }
                }
            } else if let Some(Value::Object(child)) = deps.get_mut(&n) {
                Box::pin(drop_local(state, child, audit, depth + 1, budget)).await?;
            }
        }
    }
    if !orphans.is_empty() {
        let deps = node
            .entry("dependencies")
            .or_insert_with(|| Value::Object(Map::new()));
        let mut placed = Vec::new();
        if let Value::Object(deps) = deps {
            for (n, child) in orphans {
                // a name already at this level keeps its place (one entry per name and level)
                if deps.contains_key(&n) {
                    continue;
                }
                if let Some(v) = child.get("version").and_then(Value::as_str) {
                    placed.push((n.clone(), v.to_owned()));
                }
                deps.insert(n, child);
            }
        }
        // required from here, so that the uplink reaches them
        if let Value::Object(req) = node
            .entry("requires")
            .or_insert_with(|| Value::Object(Map::new()))
        {
            for (n, v) in placed {
                req.entry(n).or_insert(Value::String(v));
            }
        }
    }
    Ok(())
}

async fn forward(
    client: &crate::uplinks::client::UplinkClient,
    path: &str,
    body: Bytes,
) -> ApiResult<Response> {
    let ctype = HeaderValue::from_static("application/json");
    match client.post(path, body, Some(&ctype), None).await {
        Ok((status, _, body)) if status.is_success() => {
            if serde_json::from_slice::<Value>(&body).is_err() {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "the uplink {} answered the audit with something other than JSON",
                        client.name
                    ),
                ));
            }
            Ok(json_response(StatusCode::OK, body))
        }
        Ok((status, _, _)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "the uplink {} answered the audit with {status}",
                client.name
            ),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "the uplink {} could not be asked for advisories: {e}",
                client.name
            ),
        )),
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn nothing_checked(body: Value) -> Response {
    let mut res = axum::Json(body).into_response();
    let h = res.headers_mut();
    h.insert("npm-notice", HeaderValue::from_static(NOTHING_CHECKED));
    h.insert(
        header::WARNING,
        HeaderValue::from_static("199 tessera \"no advisory source: nothing was checked\""),
    );
    res
}
