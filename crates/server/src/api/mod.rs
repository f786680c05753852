//! The npm API: one file per route family, in `account/` (logins, profile, 2FA, tokens) and
//! `packages/` (reads, publishes and every package change), and the router that ties them together.

pub mod account;
pub mod packages;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{delete, get, post, put};

use tessera_store::{Access, Package, Token, User};

use crate::authz::token_scope;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Builds the npm API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/-/ping", get(account::misc::ping))
        .route("/-/whoami", get(account::misc::whoami))
        .route("/-/v1/login", post(account::web_login::start))
        .route("/-/v1/done/{id}", get(account::web_login::done))
        .route("/-/user/token/{token}", delete(account::login::logout))
        .route(
            "/-/user/{user}",
            put(account::login::couch_put).get(account::login::couch_get),
        )
        .route(
            "/-/user/{user}/-rev/{rev}",
            put(account::login::couch_put_rev),
        )
        .route(
            "/-/user/{user}/package",
            get(packages::access::user_packages),
        )
        .route("/-/org/{org}/package", get(packages::access::org_packages))
        .route(
            "/-/npm/v1/user",
            get(account::profile::get).post(account::profile::post),
        )
        .route(
            "/-/npm/v1/tokens",
            get(account::tokens::list).post(account::tokens::create),
        )
        .route(
            "/-/npm/v1/tokens/token/{key}",
            delete(account::tokens::revoke),
        )
        .route("/-/v1/search", get(packages::search::search))
        .route(
            "/-/_view/starredByUser",
            get(packages::star::starred_by_user),
        )
        .route("/-/package/{pkg}/dist-tags", get(packages::dist_tags::list))
        .route(
            "/-/package/{pkg}/dist-tags/{tag}",
            put(packages::dist_tags::add).delete(packages::dist_tags::remove),
        )
        .route(
            "/-/package/{pkg}/visibility",
            get(packages::access::visibility),
        )
        .route(
            "/-/package/{pkg}/access",
            get(packages::access::get).post(packages::access::set),
        )
        .route(
            "/-/package/{pkg}/collaborators",
            get(packages::access::collaborators),
        )
        .merge(crate::web::router())
        .fallback(packages::paths::dispatch)
        .with_state(state)
}

/// The base URL for links in responses: `public_url`, or the request's own origin.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let proto = if state.config.trust_proxy {
        headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|p| *p == "https")
            .unwrap_or("http")
    } else {
        "http"
    };
    format!("{proto}://{host}")
}

/// Whether `user`, with `token` if it came with one, may see the package `name` with this
/// visibility and these maintainers. A granular token limited to other packages does not see
/// private packages outside them.
pub fn can_read(
    state: &AppState,
    name: &str,
    access: Access,
    maintainers: &[i64],
    user: Option<&User>,
    token: Option<&Token>,
) -> bool {
    if access == Access::Restricted && !token_scope::may_read_private(token, name) {
        return false;
    }
    match (access, user) {
        (_, Some(u)) if u.is_admin => true,
        (Access::Public, u) => u.is_some() || !state.config.read_requires_auth,
        (Access::Restricted, Some(u)) => maintainers.contains(&u.id),
        (Access::Restricted, None) => false,
    }
}

/// Refuses anonymous readers when the registry requires authentication to read.
pub fn check_read_allowed(state: &AppState, user: Option<&User>) -> ApiResult<()> {
    if state.config.read_requires_auth && user.is_none() {
        return Err(ApiError::login_required());
    }
    Ok(())
}

/// Loads a package the caller may see, or 404 (hiding restricted packages).
pub async fn visible_package(
    state: &AppState,
    name: &str,
    user: Option<&User>,
    token: Option<&Token>,
) -> ApiResult<Package> {
    let pkg = state
        .store
        .package(name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if pkg.access == Access::Public && can_read(state, name, pkg.access, &[], user, token) {
        return Ok(pkg);
    }
    let doc = state
        .store
        .package_doc(name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let ids: Vec<i64> = doc.maintainers.iter().map(|m| m.id).collect();
    if can_read(state, name, pkg.access, &ids, user, token) {
        Ok(pkg)
    } else {
        Err(ApiError::not_found())
    }
}

/// Decodes a package name from a path parameter and checks its shape.
pub fn package_param(raw: &str) -> ApiResult<String> {
    crate::npm::names::validate_package_name(raw).map_err(ApiError::bad_request)?;
    Ok(raw.to_owned())
}
