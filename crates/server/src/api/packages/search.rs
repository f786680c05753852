//! `npm search`: `GET /-/v1/search?text=…&size=…&from=…`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authn::caller::Caller;
use crate::authz;
use crate::clock::iso8601;
use crate::http::error::ApiResult;
use crate::state::AppState;

/// Query parameters npm sends.
#[derive(Deserialize)]
pub struct SearchQuery {
    text: Option<String>,
    size: Option<i64>,
    from: Option<i64>,
}

/// Searches names, descriptions and keywords; every term must match.
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<Value>> {
    let reader = authz::reader(&state, &caller)?;
    let text = q.text.unwrap_or_default();
    let terms: Vec<String> = text
        .split_whitespace()
        .take(10)
        .map(|t| t.chars().take(100).collect())
        .collect();
    let size = q.size.unwrap_or(20).clamp(1, 250);
    let from = q.from.unwrap_or(0).max(0);
    let viewer = reader.search_viewer();
    let (hits, total) = state.store.search(&terms, viewer, from, size).await?;
    let objects: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            let maintainers: Vec<Value> =
                h.maintainers.iter().map(|m| json!({"username": m.name, "email": m.email})).collect();
            json!({
                "package": {
                    "name": h.package.name,
                    "scope": crate::npm::names::scope_of(&h.package.name).map(|s| &s[1..]).unwrap_or("unscoped"),
                    "version": h.latest,
                    "description": h.package.description,
                    "keywords": h.package.keywords,
                    "date": iso8601(h.package.modified_at),
                    "links": {},
                    "publisher": maintainers.first().cloned().unwrap_or(Value::Null),
                    "maintainers": maintainers,
                },
                "score": {"final": 1.0, "detail": {"quality": 1.0, "popularity": 1.0, "maintenance": 1.0}},
                "searchScore": 1.0,
            })
        })
        .collect();
    Ok(Json(
        json!({"objects": objects, "total": total, "time": iso8601(state.clock.now_ms())}),
    ))
}
