//! The npm API: one file per route family, in `account/` (logins, profile, 2FA, tokens) and
//! `packages/` (reads, publishes and every package change), and the router that ties them together.

pub mod account;
pub mod packages;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, header};
use axum::routing::{delete, get, post, put};

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
            "/-/npm/v1/security/advisories/bulk",
            post(packages::audit::bulk),
        )
        .route(
            "/-/npm/v1/security/audits/quick",
            post(packages::audit::quick),
        )
        .route("/-/npm/v1/keys", get(packages::signatures::keys))
        .route(
            "/-/npm/v1/attestations/{*spec}",
            get(packages::attestations::attestations),
        )
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
        .route(
            "/-/package/{pkg}/trust",
            get(packages::trust::list).post(packages::trust::add),
        )
        .route(
            "/-/package/{pkg}/trust/{id}",
            delete(packages::trust::revoke),
        )
        .route("/-/stage", get(packages::stage::list))
        .route("/-/stage/package/{pkg}", post(packages::stage::stage))
        .route(
            "/-/stage/{id}",
            get(packages::stage::view).delete(packages::stage::reject),
        )
        .route("/-/stage/{id}/tarball", get(packages::stage::tarball))
        .route("/-/stage/{id}/approve", post(packages::stage::approve))
        .route(
            "/-/npm/v1/oidc/token/exchange/package/{pkg}",
            post(account::oidc::exchange),
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
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'))
        })
        .unwrap_or("localhost");
    let proto = if state.config.trust_proxy {
        headers
            .get(&X_FORWARDED_PROTO)
            .and_then(|h| h.to_str().ok())
            .filter(|p| *p == "https")
            .unwrap_or("http")
    } else {
        "http"
    };
    // not `format!`: this runs on every package read
    let mut url = String::with_capacity(proto.len() + 3 + host.len());
    url.push_str(proto);
    url.push_str("://");
    url.push_str(host);
    url
}

/// The `X-Forwarded-Proto` header.
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
