//! The tokens page: list, create (every kind and limit the registry supports; the value shown
//! once) and revoke, under the same rules as `npm token` (the same functions do the work).

use axum::http::StatusCode;

use crate::authz::gate::Operation;
use crate::clock::iso8601;
use crate::config::{Lifetimes, Span};
use crate::http::error::ApiError;
use crate::services::tokens::{self as service, Requested, TokenRequest, summary};
use crate::web::templates::{TokenCreatedPage, TokenRow, TokensPage};
use crate::web::{Form, Web, WebResult, field, raw_field};

const HERE: &str = "/-/web/tokens";

async fn tokens_page(web: &Web, error: Option<String>) -> Result<TokensPage, crate::web::WebError> {
    let user = web.require_user(HERE)?;
    let (tokens, _) = service::list(&web.state, user, true, 0, 1000).await?;
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
        default_expiry: {
            let words = |l: Lifetimes| {
                l.default
                    .or(l.max)
                    .map_or_else(|| "never".to_owned(), Span::in_words)
            };
            format!(
                "{}; read-only: {}",
                words(limits.lifetimes(false)),
                words(limits.lifetimes(true))
            )
        },
        // the form's bound is the looser of the two; the server checks each kind's own
        max_days: match (limits.lifetimes(false).max, limits.lifetimes(true).max) {
            (Some(w), Some(r)) => w.max(r).whole_days(),
            _ => 0,
        },
    })
}

/// `GET /-/web/tokens`.
pub async fn page(web: Web) -> WebResult {
    web.require_user(HERE)?;
    Ok(web.page(&tokens_page(&web, None).await?))
}

fn list(form: &Form, name: &str) -> Vec<String> {
    field(form, name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The token request the form stands for.
fn request_of(form: &Form) -> Result<TokenRequest, ApiError> {
    let text = |name: &str| field(form, name).map(str::to_owned);
    let permission = |name: &str, label: &str| {
        field(form, name)
            .map(|w| service::parse_permission(label, w))
            .transpose()
    };
    let request = TokenRequest {
        name: text("name"),
        description: text("description"),
        expires: text("expires"),
        cidr_whitelist: list(form, "cidr"),
        ..TokenRequest::default()
    };
    Ok(match field(form, "kind").unwrap_or("granular") {
        "publish" => TokenRequest {
            kind: Requested::Publish,
            ..request
        },
        "read-only" => TokenRequest {
            kind: Requested::ReadOnly,
            ..request
        },
        "automation" => TokenRequest {
            kind: Requested::Automation,
            ..request
        },
        _ => TokenRequest {
            kind: Requested::Granular,
            packages: list(form, "packages"),
            scopes: list(form, "scopes"),
            orgs: list(form, "orgs"),
            packages_all: field(form, "packages_all") == Some("true"),
            packages_and_scopes_permission: permission(
                "permission",
                "packages_and_scopes_permission",
            )?,
            orgs_permission: permission("orgs_permission", "orgs_permission")?,
            bypass_2fa: field(form, "bypass_2fa") == Some("true"),
            ..request
        },
    })
}

/// `POST /-/web/tokens`: create.
pub async fn create(web: Web, form: Form) -> WebResult {
    web.check_post(field(&form, "csrf"))?;
    web.require_user(HERE)?;
    let caller = web.caller_with(field(&form, "otp"));
    let password = raw_field(&form, "password").unwrap_or("");
    let created = match request_of(&form) {
        Ok(request) => service::create(&web.state, &caller, password, request).await,
        Err(e) => Err(e),
    };
    match created {
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
