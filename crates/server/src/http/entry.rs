//! The service every connection runs. Package reads (`GET` of a path outside `/-/`: packuments,
//! versions, tarballs, which are nearly all of an install's requests) go straight to their
//! handler; everything else goes through the router and its middleware.
//!
//! The router would send those reads to the same handler (its fallback), through a route
//! lookup that finds nothing, two middleware layers that do nothing for them (`npm-notice` is
//! only for writes and `whoami`) and boxed services cloned per request. On the bench's 2-core
//! machine that was about a tenth of a small cached read's time. The access log is kept.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;

use crate::api::packages::paths;
use crate::http::access_log;
use crate::state::AppState;

/// The application as a connection serves it: [`crate::app`] with package reads taken first.
#[derive(Clone)]
pub struct Entry {
    router: Router,
    state: AppState,
}

impl Entry {
    /// The entry of `state`'s application.
    pub fn new(state: AppState) -> Self {
        Entry {
            router: crate::app(state.clone()),
            state,
        }
    }
}

/// Whether a request is a package read, which the package-path handler answers whatever the
/// router holds: no named route is outside `/-/` except the site's root.
pub fn is_package_read(method: &Method, path: &str) -> bool {
    method == Method::GET && path.len() > 1 && !path.starts_with("/-/")
}

impl tower::Service<Request> for Entry {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if is_package_read(req.method(), req.uri().path()) {
            let state = self.state.clone();
            if !access_log::enabled() {
                return Box::pin(async move { Ok(paths::dispatch(State(state), req).await) });
            }
            return Box::pin(async move {
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                Ok(access_log::around(&method, &path, paths::dispatch(State(state), req)).await)
            });
        }
        Box::pin(tower::Service::call(&mut self.router, req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gets_outside_the_api_namespace_are_package_reads() {
        let get = Method::GET;
        assert!(is_package_read(&get, "/demo"));
        assert!(is_package_read(&get, "/@acme%2fwidget"));
        assert!(is_package_read(&get, "/demo/-/demo-1.0.0.tgz"));
        assert!(!is_package_read(&get, "/"));
        assert!(!is_package_read(&get, "/-/whoami"));
        assert!(!is_package_read(&get, "/-/web/"));
        assert!(!is_package_read(&Method::HEAD, "/demo"));
        assert!(!is_package_read(&Method::PUT, "/demo"));
    }
}
