//! `GET /-/npm/v1/keys`: the registry's public signing keys, current and retired, which
//! `npm audit signatures` checks `dist.signatures` against. Public: keys are not secrets.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiResult;
use crate::state::AppState;

/// `GET /-/npm/v1/keys`.
pub async fn keys(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.store.signing_keys().await?;
    let mut res = Json(crate::signing::keys_document(&keys)).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(res)
}
