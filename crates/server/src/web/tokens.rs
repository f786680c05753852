//! The tokens page: list, create (every kind and limit the registry supports; the value shown
//! once) and revoke, under the same rules as `npm token` (the same functions do the work).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::authz::gate::Operation;
use crate::clock::iso8601;
use crate::config::Span;
use crate::services::tokens::{self as service, summary};
use crate::web::templates::{TokenCreatedPage, TokenRow, TokensPage};
use crate::web::{Form, Web, WebResult, field, raw_field};

const HERE: &str = "/-/web/tokens";

async fn tokens_page(web: &Web, error: Option<String>) -> Result<TokensPage, crate::web::WebError> {
    let user = web.require_user(HERE)?;
    let (tokens, _) = service::list(&web.state, user, 0, 1000).await?;
    let limits = &web.state.config.tokens;
    let rows = tokens
        .iter()
        .map(|t| TokenRow {
            key: t.token_hash.clone(),
            prefix: t.display_prefix.clone(),
            summary: summary(t),
            created: iso8601(t.created_at)[..10].to_owned(),
        })
        .collect();
    Ok(TokensPage {
        chrome: web.chrome(),
        error,
        tokens: rows,
        create_otp: web.needs_otp(Operation::TokenCreate).await,
        revoke_otp: web.needs_otp(Operation::TokenRevoke).await,
        default_expiry: limits
            .default_expiry
            .or(limits.max_expiry)
            .map_or_else(|| "never".to_owned(), Span::in_words),
        max_days: limits.max_expiry.map_or(0, Span::whole_days),
    })
}

/// `GET /-/web/tokens`.
pub async fn page(web: Web) -> WebResult {
    web.require_user(HERE)?;
    Ok(web.page(&tokens_page(&web, None).await?))
}

fn list(form: &Form, name: &str) -> Vec<Value> {
    field(form, name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| json!(s))
                .collect()
        })
        .unwrap_or_default()
}

/// The token request the form stands for, in the field names the token service reads.
fn body_of(form: &Form) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert(
        "password".into(),
        json!(raw_field(form, "password").unwrap_or("")),
    );
    // What every kind takes: a name, a description, an expiry and address ranges.
    for (key, name) in [
        ("name", "name"),
        ("description", "description"),
        ("expires", "expires"),
    ] {
        if let Some(v) = field(form, name) {
            b.insert(key.into(), json!(v));
        }
    }
    let cidr = list(form, "cidr");
    if !cidr.is_empty() {
        b.insert("cidr_whitelist".into(), Value::Array(cidr));
    }
    match field(form, "kind").unwrap_or("granular") {
        "publish" => {
            b.insert("readonly".into(), json!(false));
        }
        "read-only" => {
            b.insert("readonly".into(), json!(true));
        }
        "automation" => {
            b.insert("type".into(), json!("automation"));
        }
        _ => {
            // a granular token even when only the defaults are chosen
            b.entry("name").or_insert(Value::Null);
            for key in ["packages", "scopes", "orgs"] {
                let items = list(form, key);
                if !items.is_empty() {
                    b.insert(key.into(), Value::Array(items));
                }
            }
            if field(form, "packages_all") == Some("true") {
                b.insert("packages_all".into(), json!(true));
            }
            if let Some(p) = field(form, "permission") {
                b.insert("packages_and_scopes_permission".into(), json!(p));
            }
            if let Some(p) = field(form, "orgs_permission") {
                b.insert("orgs_permission".into(), json!(p));
            }
            if field(form, "bypass_2fa") == Some("true") {
                b.insert("bypass_2fa".into(), json!(true));
            }
        }
    }
    b
}

/// `POST /-/web/tokens`: create.
pub async fn create(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    web.require_user(HERE)?;
    let caller = web.caller_with(field(&form, "otp"));
    match service::create(&web.state, &caller, &body_of(&form)).await {
        Ok((value, token)) => {
            let host = web
                .caller
                .base_url
                .split("://")
                .nth(1)
                .unwrap_or("")
                .to_owned();
            Ok(web.page(&TokenCreatedPage {
                chrome: web.chrome(),
                token: value,
                summary: summary(&token),
                host,
            }))
        }
        Err(e) => {
            let status = if e.status.is_client_error() {
                e.status
            } else {
                StatusCode::BAD_REQUEST
            };
            Ok(web.page_with_status(status, &tokens_page(&web, Some(e.message)).await?))
        }
    }
}

/// `POST /-/web/tokens/revoke`.
pub async fn revoke(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    web.require_user(HERE)?;
    let caller = web.caller_with(field(&form, "otp"));
    match service::revoke(&web.state, &caller, field(&form, "key").unwrap_or("")).await {
        Ok(()) => Ok(web.redirect(HERE)),
        Err(e) => {
            let status = if e.status.is_client_error() {
                e.status
            } else {
                StatusCode::BAD_REQUEST
            };
            Ok(web.page_with_status(status, &tokens_page(&web, Some(e.message)).await?))
        }
    }
}
