//! Package-namespace paths, parsed by hand because npm spells them several ways:
//! `/demo`, `/@scope%2fname` (any case of `%2f`), `/@scope/name`, tarballs at
//! `/<name>/-/<file>.tgz`, and the CouchDB-style `/-rev/<rev>` suffixes of writes.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use crate::api::packages::{read, unpublish, writes as package_writes};
use crate::authn::caller::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What a package path points at.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// `/<name>`
    Packument(String),
    /// `/<name>/<version or tag>`
    Version(String, String),
    /// `/<name>/-/<file>`
    Tarball(String, String),
    /// `/<name>/-rev/<rev>`
    Rev(String, String),
    /// `/<name>/-/<file>/-rev/<rev>`
    TarballRev(String, String, String),
}

/// A path segment percent-decoded (borrowed when it holds no escape); `None` if not UTF-8.
fn decode(s: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(s).decode_utf8().ok()
}

/// Parses a raw (still percent-encoded) path.
pub fn parse(path: &str) -> Option<Target> {
    let mut segs = path.trim_start_matches('/').split('/');
    let first = decode(segs.next()?)?;
    if first.is_empty() {
        return None;
    }
    let name = if first.starts_with('@') && !first.contains('/') {
        let second = decode(segs.next()?)?;
        let mut name = String::with_capacity(first.len() + 1 + second.len());
        name.push_str(&first);
        name.push('/');
        name.push_str(&second);
        name
    } else {
        first.into_owned()
    };
    let rest: Vec<Cow<'_, str>> = segs.map(decode).collect::<Option<_>>()?;
    let rest: Vec<&str> = rest.iter().map(|s| s.as_ref()).collect();
    // npm's own (bogus) scoped tarball links put the scope in the file part: `-/@scope/x.tgz`.
    let file = |parts: &[&str]| -> Option<String> {
        match parts {
            [f] => Some((*f).to_owned()),
            [scope, f] if scope.starts_with('@') => Some((*f).to_owned()),
            _ => None,
        }
    };
    Some(match rest.as_slice() {
        [] => Target::Packument(name),
        ["-rev", rev] => Target::Rev(name, (*rev).to_owned()),
        ["-", parts @ .., "-rev", rev] => Target::TarballRev(name, file(parts)?, (*rev).to_owned()),
        ["-", parts @ ..] => Target::Tarball(name, file(parts)?),
        [spec] if !spec.is_empty() => Target::Version(name, (*spec).to_owned()),
        _ => return None,
    })
}

/// Handles every request the named routes did not.
pub async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    match route(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(state: AppState, req: Request) -> ApiResult<Response> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if path.starts_with("/-/") {
        return Err(ApiError::not_found());
    }
    let target = parse(&path).ok_or_else(ApiError::not_found)?;
    let caller = Caller::from_request_parts(&mut parts, &state).await?;
    let query = parts.uri.query().unwrap_or("").to_owned();
    let headers = parts.headers;
    let method = parts.method;
    let body: Body = body;
    match (method, target) {
        (Method::GET | Method::HEAD, Target::Packument(name)) => {
            read::packument(&state, &caller, &headers, &query, &name).await
        }
        (Method::GET | Method::HEAD, Target::Version(name, spec)) => {
            read::version(&state, &caller, &headers, &name, &spec).await
        }
        (Method::GET | Method::HEAD, Target::Tarball(name, file)) => {
            read::tarball(&state, &caller, &headers, &name, &file).await
        }
        // The writes' futures are boxed: several KiB each, they would otherwise make every
        // read's future as large, and it is moved (copied) on each request.
        (Method::PUT, Target::Packument(name)) => {
            Box::pin(package_writes::put(
                &state, &caller, &headers, body, &name, None,
            ))
            .await
        }
        (Method::PUT, Target::Rev(name, rev)) => {
            Box::pin(package_writes::put(
                &state,
                &caller,
                &headers,
                body,
                &name,
                Some(rev),
            ))
            .await
        }
        (Method::DELETE, Target::Rev(name, rev)) => {
            Box::pin(unpublish::delete_package(&state, &caller, &name, &rev)).await
        }
        (Method::DELETE, Target::TarballRev(name, file, rev)) => {
            Box::pin(unpublish::delete_tarball(
                &state, &caller, &name, &file, &rev,
            ))
            .await
        }
        (Method::DELETE, Target::Tarball(name, file)) => {
            Box::pin(unpublish::delete_tarball(&state, &caller, &name, &file, "")).await
        }
        _ => Err(ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_npm_spellings() {
        assert_eq!(parse("/demo"), Some(Target::Packument("demo".into())));
        assert_eq!(
            parse("/@alice%2fscoped"),
            Some(Target::Packument("@alice/scoped".into()))
        );
        assert_eq!(
            parse("/@alice%2Fscoped"),
            Some(Target::Packument("@alice/scoped".into()))
        );
        assert_eq!(
            parse("/@alice/scoped"),
            Some(Target::Packument("@alice/scoped".into()))
        );
        assert_eq!(
            parse("/demo/1.0.0"),
            Some(Target::Version("demo".into(), "1.0.0".into()))
        );
        assert_eq!(
            parse("/demo/-rev/3-abc"),
            Some(Target::Rev("demo".into(), "3-abc".into()))
        );
        assert_eq!(
            parse("/demo/-/demo-1.0.0.tgz"),
            Some(Target::Tarball("demo".into(), "demo-1.0.0.tgz".into()))
        );
        assert_eq!(
            parse("/@alice/scoped/-/scoped-1.0.0.tgz"),
            Some(Target::Tarball(
                "@alice/scoped".into(),
                "scoped-1.0.0.tgz".into()
            ))
        );
        assert_eq!(
            parse("/@alice/scoped/-/@alice/scoped-1.0.0.tgz"),
            Some(Target::Tarball(
                "@alice/scoped".into(),
                "scoped-1.0.0.tgz".into()
            ))
        );
        assert_eq!(
            parse("/demo/-/demo-1.1.0.tgz/-rev/6-x"),
            Some(Target::TarballRev(
                "demo".into(),
                "demo-1.1.0.tgz".into(),
                "6-x".into()
            ))
        );
        assert_eq!(parse("/"), None);
        assert_eq!(parse("/demo/a/b"), None);
        assert_eq!(parse("/demo/-/a/b/c"), None);
        assert_eq!(parse("/%ff"), None);
    }
}
