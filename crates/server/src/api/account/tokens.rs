//! `npm token list|create|revoke`: `/-/npm/v1/tokens`. The work is in `crate::services::tokens`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use tessera_store::{Token, TokenKind};

use crate::authn::caller::Caller;
use crate::clock::iso8601;
use crate::http::error::ApiResult;
use crate::http::extract::{parse_json, read_body};
use crate::services::tokens::{self, summary};
use crate::state::AppState;

/// The JSON npm reads for a token (without its value).
pub fn token_json(t: &Token) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("key".into(), json!(t.token_hash));
    m.insert("token".into(), json!(t.display_prefix));
    m.insert("name".into(), json!(t.name));
    if let Some(d) = &t.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("type".into(), json!(t.kind.as_str()));
    m.insert("readonly".into(), json!(t.read_only()));
    m.insert("automation".into(), json!(t.kind == TokenKind::Automation));
    m.insert("bypass_2fa".into(), json!(t.bypass_2fa));
    m.insert(
        "cidr_whitelist".into(),
        if t.cidr_whitelist.is_empty() {
            Value::Null
        } else {
            json!(t.cidr_whitelist)
        },
    );
    if t.kind == TokenKind::Granular
        && let Ok(Value::Object(g)) = serde_json::to_value(&t.grants)
    {
        m.extend(g);
    }
    if let Some(e) = t.expires_at {
        m.insert("expires".into(), json!(iso8601(e)));
    }
    m.insert("created".into(), json!(iso8601(t.created_at)));
    m.insert("updated".into(), json!(iso8601(t.updated_at)));
    m
}

/// Paging of `npm token list`.
#[derive(Deserialize)]
pub struct Paging {
    page: Option<i64>,
    #[serde(rename = "perPage")]
    per_page: Option<i64>,
}

/// `GET /-/npm/v1/tokens`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<Paging>,
) -> ApiResult<Json<Value>> {
    let user = crate::authz::account_reader(&caller)?;
    if let Some(d) = caller.enrolment_only {
        return Err(d.error());
    }
    let per_page = p.per_page.unwrap_or(100).clamp(1, 1000);
    let page = p.page.unwrap_or(0).max(0);
    let (tokens, total) =
        tokens::list(&state, user, false, page.saturating_mul(per_page), per_page).await?;
    let objects: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut m = token_json(t);
            m.insert("token_name".into(), json!(t.name));
            m.insert("name".into(), json!(summary(t)));
            Value::Object(m)
        })
        .collect();
    let mut urls = Map::new();
    if page.saturating_add(1).saturating_mul(per_page) < total {
        urls.insert(
            "next".into(),
            json!(format!(
                "/-/npm/v1/tokens?page={}&perPage={per_page}",
                page + 1
            )),
        );
    }
    if page > 0 {
        urls.insert(
            "prev".into(),
            json!(format!(
                "/-/npm/v1/tokens?page={}&perPage={per_page}",
                page - 1
            )),
        );
    }
    Ok(Json(
        json!({"objects": objects, "total": total, "urls": urls}),
    ))
}

/// `POST /-/npm/v1/tokens`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(&headers, body, 64 * 1024).await?;
    let body: Map<String, Value> = parse_json(&bytes)?;
    let (value, token) = tokens::create(
        &state,
        &caller,
        body.get("password").and_then(Value::as_str).unwrap_or(""),
        tokens::TokenRequest::from_json(&body)?,
    )
    .await?;
    let mut m = token_json(&token);
    m.insert("token".into(), json!(value));
    let mut res = (StatusCode::CREATED, Json(Value::Object(m))).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `DELETE /-/npm/v1/tokens/token/:key` — by key (hex SHA-256) or by the full token value.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    tokens::revoke(&state, &caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
