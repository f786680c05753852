//! The npm API, one file per route family, and the router that ties them together.

pub mod access;
pub mod deprecate;
pub mod dist_tags;
pub mod login;
pub mod misc;
pub mod owners;
pub mod package_paths;
pub mod package_writes;
pub mod profile;
pub mod publish;
pub mod read;
pub mod search;
pub mod star;
pub mod tokens;
pub mod two_factor;
pub mod unpublish;
pub mod web_login;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{delete, get, post, put};

use tessera_store::{Access, Package, Token, User};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::token_scope;

/// Builds the npm API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/-/ping", get(misc::ping))
        .route("/-/whoami", get(misc::whoami))
        .route("/-/v1/login", post(web_login::start))
        .route("/-/v1/done/{id}", get(web_login::done))
        .route("/-/user/token/{token}", delete(login::logout))
        .route(
            "/-/user/{user}",
            put(login::couch_put).get(login::couch_get),
        )
        .route("/-/user/{user}/-rev/{rev}", put(login::couch_put_rev))
        .route("/-/user/{user}/package", get(access::user_packages))
        .route("/-/org/{org}/package", get(access::org_packages))
        .route("/-/npm/v1/user", get(profile::get).post(profile::post))
        .route("/-/npm/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/-/npm/v1/tokens/token/{key}", delete(tokens::revoke))
        .route("/-/v1/search", get(search::search))
        .route("/-/_view/starredByUser", get(star::starred_by_user))
        .route("/-/package/{pkg}/dist-tags", get(dist_tags::list))
        .route(
            "/-/package/{pkg}/dist-tags/{tag}",
            put(dist_tags::add).delete(dist_tags::remove),
        )
        .route("/-/package/{pkg}/visibility", get(access::visibility))
        .route(
            "/-/package/{pkg}/access",
            get(access::get).post(access::set),
        )
        .route("/-/package/{pkg}/collaborators", get(access::collaborators))
        .merge(crate::web::router())
        .fallback(package_paths::dispatch)
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
    crate::names::validate_package_name(raw).map_err(ApiError::bad_request)?;
    Ok(raw.to_owned())
}
