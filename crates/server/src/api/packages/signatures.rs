//! `GET /-/npm/v1/keys`: the registry's public signing keys, current and retired, which
//! `npm audit signatures` checks `dist.signatures` against, followed by the uplinks' keys (the
//! proxied packages keep their upstream signatures). Public: keys are not secrets.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiResult;
use crate::state::AppState;

/// `GET /-/npm/v1/keys`.
pub async fn keys(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.store.signing_keys().await?;
    let mut doc = crate::signing::keys_document(&keys);
    if state.uplinks.enabled()
        && let Some(list) = doc["keys"].as_array_mut()
    {
        // an uplink cannot speak for one of this registry's own key ids
        for k in state.uplinks.upstream_keys(&state).await {
            if !list.iter().any(|l| l["keyid"] == k["keyid"]) {
                list.push(k);
            }
        }
    }
    let mut res = Json(doc).into_response();
    // short: a rotation is seen within a minute
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(res)
}
