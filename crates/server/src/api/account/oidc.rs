//! The trusted-publishing exchange: `POST /-/npm/v1/oidc/token/exchange/package/:pkg` with a CI
//! identity token as the bearer credential (npm ≥ 11.5.1, pnpm and yarn send it from CI). The
//! identity is verified against its issuer and matched against the package's trusted
//! publishers; a match gets a token that can only publish that package (only stage it, for a
//! publisher allowed nothing more), for `oidc.token_lifetime`. Every exchange, accepted or refused, is in the security log of the
//! package's maintainers (of whoever configured a pending publisher, for a new package).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use tessera_store::{Permission, TokenGrants, TokenKind, TrustedPublisher, UserId};

use crate::clock::iso8601;
use crate::config::IssuerKind;
use crate::http::error::{ApiError, ApiResult};
use crate::services::security_log::{self, kind};
use crate::services::tokens::{self, TokenSpec};
use crate::state::AppState;
use crate::trust::identity::{self, Identity, refused};
use crate::trust::publishers::{self, CREATE_PACKAGE, CREATE_STAGED_PACKAGE};

/// The longest detail a refused exchange leaves in a security log.
const MAX_LOGGED: usize = 1000;

/// Records `what` in the security logs of `users`.
async fn log_to(state: &AppState, users: &[UserId], what: &str, detail: &str) {
    for u in users {
        security_log::record_from(state, *u, "ci", "trusted publishing", what, detail).await;
    }
}

/// Whether `p` lets `id` publish; `Ok(ids to bind)` or why not.
fn matching(p: &TrustedPublisher, id: &Identity) -> Result<Option<Map<String, Value>>, String> {
    if may_publish(p).is_none() {
        return Err("it has no permission".into());
    }
    let kind = IssuerKind::parse(&p.kind).ok_or("an unknown kind")?;
    let claims: Map<String, Value> =
        serde_json::from_str(&p.claims).map_err(|_| "unreadable claims")?;
    let bound: Option<Map<String, Value>> = match &p.bound {
        Some(b) => Some(serde_json::from_str(b).map_err(|_| "unreadable bound ids")?),
        None => None,
    };
    publishers::matches(kind, &claims, bound.as_ref(), id)
}

/// The kind of token `p` mints: one that publishes (`createPackage`), one that may only stage
/// (`createStagedPackage` alone), or none.
fn may_publish(p: &TrustedPublisher) -> Option<TokenKind> {
    let permissions: Vec<String> = serde_json::from_str(&p.permissions).unwrap_or_default();
    if permissions.iter().any(|x| x == CREATE_PACKAGE) {
        Some(TokenKind::Oidc)
    } else if permissions.iter().any(|x| x == CREATE_STAGED_PACKAGE) {
        Some(TokenKind::OidcStage)
    } else {
        None
    }
}

/// `POST /-/npm/v1/oidc/token/exchange/package/:pkg`.
pub async fn exchange(
    State(state): State<AppState>,
    Path(pkg): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            refused(
                401,
                "an identity token is required as the bearer credential",
            )
        })?;
    let audience = identity::audience(&state.config)?;
    let id = identity::verify(&state, token, &audience).await?;
    let presented = publishers::describe(&id);
    let doc = state.store.package_doc(&pkg).await?;
    let candidates = state.store.trusted_publishers(&pkg).await?;
    // who hears about it: the maintainers, or (new package) whoever configured it
    let mut audience_of_log: Vec<UserId> = match &doc {
        Some(d) => d.maintainers.iter().map(|m| m.id).collect(),
        None => candidates.iter().map(|p| p.created_by).collect(),
    };
    audience_of_log.sort_unstable();
    audience_of_log.dedup();
    if candidates.is_empty() {
        return Err(refused(
            404,
            format!("package not found, or it has no trusted publisher ({pkg})"),
        ));
    }
    // A name nobody has yet: its pending publishers must all be one account's, or whoever
    // configured one first could take the package another meant to create.
    if doc.is_none() && audience_of_log.len() > 1 {
        tracing::warn!(package = %pkg, "pending trusted publishers of several accounts");
        return Err(refused(
            409,
            format!(
                "{pkg} has pending trusted publishers of several accounts; an administrator must settle it"
            ),
        ));
    }
    let mut reasons = Vec::new();
    for p in &candidates {
        let bind = match matching(p, &id) {
            Ok(b) => b,
            Err(why) => {
                reasons.push(format!("{}: {why}", p.id));
                continue;
            }
        };
        // whoever configured it must still be able to publish the package
        let Some(owner) = state.store.user_by_id(p.created_by).await? else {
            reasons.push(format!("{}: its owner's account is gone", p.id));
            continue;
        };
        if owner.locked || doc.as_ref().is_some_and(|d| !d.is_maintainer(owner.id)) {
            reasons.push(format!(
                "{}: {} no longer maintains the package",
                p.id, owner.name
            ));
            continue;
        }
        if let Some(ids) = bind {
            let ids = serde_json::to_string(&ids).map_err(ApiError::internal)?;
            if !state.store.bind_trusted_publisher(&p.id, &ids).await? {
                // another exchange bound it meanwhile: match against what it bound
                let now_bound = state
                    .store
                    .trusted_publishers(&pkg)
                    .await?
                    .into_iter()
                    .find(|q| q.id == p.id);
                if now_bound.is_none_or(|q| matching(&q, &id).is_err()) {
                    reasons.push(format!("{}: bound meanwhile to other ids", p.id));
                    continue;
                }
            }
        }
        let now = state.clock.now_ms();
        let expires = now + state.config.oidc.token_lifetime.as_ms();
        let spec = TokenSpec {
            kind: may_publish(p).unwrap_or(TokenKind::OidcStage),
            name: Some(format!("trusted publishing of {pkg}")),
            description: Some(presented.clone()),
            grants: TokenGrants {
                packages: vec![pkg.clone()],
                packages_and_scopes_permission: Some(Permission::ReadWrite),
                ..TokenGrants::default()
            },
            expires_at: Some(expires),
            ..TokenSpec::default()
        };
        let (value, _) = tokens::issue(&state, &owner, spec).await?;
        log_to(
            &state,
            &audience_of_log,
            kind::OIDC_EXCHANGE,
            &format!("{pkg}: publisher {} matched {presented}", p.id),
        )
        .await;
        let mut res = (
            StatusCode::CREATED,
            Json(json!({
                "token_type": "oidc",
                "token": value,
                "created": iso8601(now),
                "expires": iso8601(expires),
            })),
        )
            .into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    }
    let mut detail = format!("{pkg}: {presented}; {}", reasons.join("; "));
    if detail.len() > MAX_LOGGED {
        let cut = (0..=MAX_LOGGED)
            .rev()
            .find(|i| detail.is_char_boundary(*i))
            .unwrap_or(0);
        detail.truncate(cut);
        detail.push('…');
    }
    log_to(
        &state,
        &audience_of_log,
        kind::OIDC_EXCHANGE_REFUSED,
        &detail,
    )
    .await;
    Err(refused(
        401,
        format!("no trusted publisher of {pkg} matches this identity ({presented})"),
    ))
}
